"""What a PyTorch value becomes during conversion: an IR activation in some layout (``Act``),
or a reshape of one not materialized yet (``View``); constants stay numpy arrays or Python
scalars."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tinyc.errors import TinycError

NHWC = (0, 2, 3, 1)  # internal = torch.permute(NHWC) for 4-D NCHW values


def torch_module() -> Any:
    try:
        import torch
    except ImportError:
        raise TinycError("PyTorch models need torch (pip install 'tinyc[torch]')") from None
    return torch


@dataclass(frozen=True)
class Act:
    """An IR activation holding the PyTorch value ``v`` as ``v.permute(perm)``."""

    name: str
    perm: tuple[int, ...]
    shape: tuple[int, ...]  # PyTorch shape

    @property
    def identity(self) -> bool:
        return self.perm == tuple(range(len(self.perm)))


@dataclass(frozen=True)
class View:
    """PyTorch value ``src.reshape(shape)``, not materialized yet."""

    src: Act
    shape: tuple[int, ...]


Value = Any  # Act | View | np.ndarray | python scalar | list | tuple | None


def is_tensor(v: Any) -> bool:
    """True for a value computed from the model input (not a constant)."""
    return isinstance(v, Act | View)


def inverse(p: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argsort(p))


def pair(v: Any) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    v = tuple(int(x) for x in v)
    return (v[0], v[0]) if len(v) == 1 else (v[0], v[1])

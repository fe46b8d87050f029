"""The entry points: an ExportedProgram, a saved ``.pt2``, an ``nn.Module`` with example
inputs, or ``file.py:factory[@state_dict.pt]``."""

from __future__ import annotations

import importlib.util
import sys
import uuid
import warnings
from pathlib import Path
from typing import Any

from tinyc.errors import TinycError
from tinyc.frontend.torch.converter import Converter
from tinyc.frontend.torch.values import torch_module
from tinyc.ir.graph import Graph

_FLAT_WEIGHTS_WARNING = r"The tensor attributes .*_flat_weights\[0\].* were assigned during export"


def from_exported_program(ep: Any, name: str = "model") -> Graph:
    """Convert a ``torch.export.ExportedProgram`` into a float Graph (KroneckerLinear's
    reshape / matmul / sum sequence as KRONECKER_FC: tinyc.passes.fuse_kronecker)."""
    from tinyc.passes.fuse_kronecker import fuse_kronecker

    return fuse_kronecker(Converter(ep, name).run())


def export_module(module: Any, example_inputs: tuple, name: str = "model") -> Graph:
    """``torch.export`` an ``nn.Module`` (in eval mode) and convert it."""
    torch = torch_module()
    module = module.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # nn.LSTM / GRU / RNN rebuild their _flat_weights list in forward; export warns
            # about it, but the weights are lifted as parameters all the same.
            warnings.filterwarnings("ignore", _FLAT_WEIGHTS_WARNING, UserWarning)
            ep = torch.export.export(module, tuple(example_inputs))
    except Exception as e:  # torch raises many kinds of export errors
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TinycError(f"torch.export failed for {name}: {msg}") from None
    return from_exported_program(ep, name)


def load_exported_program(path: str | Path) -> Graph:
    """A program saved with ``torch.export.save`` (``.pt2``)."""
    torch = torch_module()
    import tinyc.torch_skip  # noqa: F401 (registers tinyc::skip_gru / skip_lstm for loading)

    p = Path(path)
    try:
        ep = torch.export.load(str(p))
    except Exception as e:
        raise TinycError(f"{p}: not a loadable torch.export program ({type(e).__name__})") from None
    return from_exported_program(ep, p.stem)


def _import_file(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"tinyc_user_{uuid.uuid4().hex}", path)
    if spec is None or spec.loader is None:
        raise TinycError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise TinycError(f"importing {path} failed: {type(e).__name__}: {e}") from None
    finally:
        sys.path.remove(str(path.parent))
    return module


def load_torch_factory(spec: str) -> Graph:
    """``path/to/file.py:factory`` or ``path/to/file.py:factory@state_dict.pt``."""
    torch = torch_module()
    file_part, _, rest = spec.rpartition(":")
    fn_name, _, weights = rest.partition("@")
    path = Path(file_part)
    if not path.is_file():
        raise TinycError(f"no such file: {path}")
    factory = getattr(_import_file(path), fn_name, None)
    if not callable(factory):
        raise TinycError(f"{path} has no callable {fn_name!r}")
    try:
        made = factory()
    except Exception as e:
        raise TinycError(f"{path}:{fn_name}() failed: {type(e).__name__}: {e}") from None
    if isinstance(made, tuple) and len(made) == 2:
        module, example = made
    else:
        module, example = made, getattr(made, "example_inputs", None)
    if not isinstance(module, torch.nn.Module):
        raise TinycError(f"{path}:{fn_name}() must return an nn.Module or (module, inputs)")
    if example is None:
        raise TinycError(
            f"{path}:{fn_name}(): give example inputs (return (module, inputs) or set "
            "module.example_inputs)"
        )
    if isinstance(example, torch.Tensor):
        example = (example,)
    if weights:
        load_state_dict(module, weights)
    return export_module(module, tuple(example), fn_name)


def load_state_dict(module: Any, weights: str | Path) -> None:
    """Load a ``torch.save``d state_dict into ``module`` with ``strict=True``."""
    torch = torch_module()
    try:
        sd = torch.load(str(weights), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise TinycError(f"no such file: {weights}") from None
    except Exception as e:
        raise TinycError(f"{weights}: not a loadable state_dict ({type(e).__name__})") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    try:
        module.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise TinycError(f"{weights} does not fit the module: {' '.join(first[:3])}") from None

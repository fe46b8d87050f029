"""PyTorch operator -> translation: a function that turns one fx node into IR values.

Translations are looked up by the operator's overload packet name (``conv2d`` for
``aten.conv2d.default``), so one function serves every overload of an operator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tinyc.frontend.torch.values import Value

if TYPE_CHECKING:
    from tinyc.frontend.torch.converter import Converter

Handler = Callable[["Converter", Any, dict[str, Value]], Value]
HANDLERS: dict[str, Handler] = {}
#: operators that read a 3-D input as Conv1d's [N, C, L] (such inputs are stored [N, L, C])
CONV1D = {"conv1d", "convolution", "_convolution"}
#: operators whose result is kept unexpanded (see ops_shape's repeat), so its shape differs
BROADCASTS = {"repeat", "expand", "expand_copy"}


def handles(*names: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        for n in names:
            if n in HANDLERS:
                raise RuntimeError(f"PyTorch operator {n} has two translations")
            HANDLERS[n] = fn
        return fn

    return deco


def target_name(node: Any) -> str:
    """The operator's name without namespace and overload: the registry's key."""
    t = node.target
    packet = getattr(t, "_overloadpacket", None)
    if packet is not None:
        return packet.__name__
    return getattr(t, "__name__", str(t))


def target_label(node: Any) -> str:
    """The operator as users know it, e.g. ``aten.sort`` (for messages)."""
    namespace = getattr(node.target, "namespace", None)
    name = target_name(node)
    return f"{namespace}.{name}" if namespace else name

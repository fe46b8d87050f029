"""The op definition protocol and registry: one class per op kind, defined in one place."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from tinyc.errors import TinycError
from tinyc.ir.fixedpoint import round_half_away
from tinyc.ir.graph import Graph, Node
from tinyc.ir.tensor import Tensor, dtype_range

Spec = tuple[tuple[int, ...], str]
"""An output's (shape, dtype), as shape inference reports it."""

ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


class OpDef:
    """Everything tinyc knows about one op kind.

    A backend adds an emitter per kind in its own folder; nothing else about the op lives
    outside its definition. ``evaluate`` is the numpy reference: for quantized tensors it
    follows TFLite Micro's integer kernels exactly.
    """

    kind: ClassVar[str]
    #: attribute -> default; ``None`` marks a required attribute
    attrs: ClassVar[dict[str, Any]] = {}
    #: the output may share its buffer with input 0 (planner hint)
    in_place: ClassVar[bool] = False
    #: how the int8 output's quantization is chosen: "calibrated" (from observed ranges),
    #: "same_as_input" (data movement: copies input 0's params), or fixed (scale, zero point)
    output_quant: ClassVar[str | tuple[float, int]] = "calibrated"
    #: constant operands the quantizer treats specially: the weight input (per-channel
    #: symmetric int8 along ``weight_axis``) and the bias input (int32, zero point 0, scale
    #: input_scale * weight_scale[c]); None when the op has no such input
    weight_input: ClassVar[int | None] = None
    weight_axis: ClassVar[int] = 0
    bias_input: ClassVar[int | None] = None
    #: outputs may be "" when nothing reads them (tinyc.passes.prune_outputs)
    optional_outputs: ClassVar[bool] = False

    # -- shape inference ----------------------------------------------------------------
    def infer(self, node: Node, g: Graph) -> list[Spec]:
        raise NotImplementedError

    # -- reference ----------------------------------------------------------------------
    def evaluate(self, node: Node, g: Graph, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        if self.quantized(node, g):
            return self.eval_quant(node, g, xs)
        return self.eval_float(node, g, xs)

    def quantized(self, node: Node, g: Graph) -> bool:
        return g.out(node).is_quantized

    def eval_float(self, node: Node, g: Graph, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        raise NotImplementedError

    def eval_quant(self, node: Node, g: Graph, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        return self.eval_float(node, g, xs)

    # -- quantization -------------------------------------------------------------------
    def quantize_attrs(self, node: Node, g: Graph) -> dict[str, Any]:
        """``node``'s attributes for the int8 graph ``g`` (whose tensors already carry their
        int8 parameters); attributes that hold real values are converted here."""
        return dict(node.attrs)

    def internals(self, node: Node, g: Graph, xs: list[np.ndarray | None]) -> dict[str, np.ndarray]:
        """Values inside the op that calibration must see (e.g. a recurrent layer's cell
        state), by key; histogrammed as ``"<node name>#<key>"``."""
        return {}

    def quant_ties(self, node: Node, g: Graph) -> list[list[str]]:
        """Groups of tensor names (or ``"<node name>#<key>"`` internals) that must share one
        set of int8 parameters, beyond what ``output_quant`` says."""
        return []

    def quantize_node(self, node: Node, ctx: Any) -> Node | None:
        """The int8 node for float ``node``, for ops whose constants need more than the
        generic weight / bias rule; ``ctx`` is the quantizer's builder (see
        tinyc.passes.quantize.QuantContext). None: the generic rule applies."""
        return None

    # -- checks -------------------------------------------------------------------------
    def check(self, node: Node, g: Graph) -> None:
        """Raise TinycError when this node cannot be evaluated (e.g. unsupported dtypes)."""

    # -- costs --------------------------------------------------------------------------
    def macs(self, node: Node, g: Graph) -> int:
        return 0

    def params(self, node: Node, g: Graph) -> int:
        return sum(t.size for t in _inputs(node, g) if t.is_const)

    def bytes_moved(self, node: Node, g: Graph) -> tuple[int, int]:
        read = sum(t.nbytes for t in _inputs(node, g))
        written = sum(g.tensors[o].nbytes for o in node.outputs if o)
        return read, written


def _inputs(node: Node, g: Graph) -> list[Tensor]:
    return [g.tensors[i] for i in node.inputs if i]


REGISTRY: dict[str, OpDef] = {}


def register(cls: type[OpDef]) -> type[OpDef]:
    if cls.kind in REGISTRY:
        raise RuntimeError(f"op {cls.kind} defined twice")
    REGISTRY[cls.kind] = cls()
    return cls


def get_op(kind: str) -> OpDef:
    try:
        return REGISTRY[kind]
    except KeyError:
        raise TinycError(f"unknown op kind {kind!r}") from None


def attr(node: Node, name: str) -> Any:
    """An attribute with the op's declared default filled in."""
    if name in node.attrs:
        return node.attrs[name]
    default = REGISTRY[node.op].attrs.get(name)
    if default is None:
        raise TinycError(f"node {node.name!r} ({node.op}) lacks attribute {name!r}")
    return default


# -- helpers shared by several ops ------------------------------------------------------


def quantize_value(scale: np.float32, zero_point: int, value: float) -> int:
    """TFLite's Quantize(): zero_point + round(value / scale) in float32."""
    return zero_point + int(round_half_away(np.float32(value) / np.float32(scale)))


def activation_range_quant(activation: str, out: Tensor) -> tuple[int, int]:
    """CalculateActivationRangeQuantized: the clamp bounds of a fused activation."""
    qmin, qmax = dtype_range(out.dtype)
    assert out.quant is not None
    s, zp = out.quant.s, out.quant.zp
    if activation == "RELU":
        return max(qmin, quantize_value(s, zp, 0.0)), qmax
    if activation == "RELU6":
        return max(qmin, quantize_value(s, zp, 0.0)), min(qmax, quantize_value(s, zp, 6.0))
    if activation == "RELU_N1_TO_1":
        return max(qmin, quantize_value(s, zp, -1.0)), min(qmax, quantize_value(s, zp, 1.0))
    return qmin, qmax


def activation_float(x: np.ndarray, activation: str) -> np.ndarray:
    if activation == "RELU":
        return np.maximum(x, 0)
    if activation == "RELU6":
        return np.clip(x, 0, 6)
    if activation == "RELU_N1_TO_1":
        return np.clip(x, -1, 1)
    return x


def clamp_cast(x: np.ndarray, lo: int, hi: int, dtype: str) -> np.ndarray:
    return np.clip(x, lo, hi).astype(dtype)


def broadcast_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(a, b))
    except ValueError:
        raise TinycError(f"shapes {list(a)} and {list(b)} do not broadcast") from None


def normalize_axis(axis: int, rank: int, node: Node) -> int:
    if not -rank <= axis < rank:
        raise TinycError(f"node {node.name!r}: axis {axis} out of range for rank {rank}")
    return axis % rank

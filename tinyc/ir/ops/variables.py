"""Resource variables: READ_VARIABLE and ASSIGN_VARIABLE on a state tensor.

TFLite writes a model's own persistent values (a streaming model's buffers, kept between
invocations) as resource variables: ``VAR_HANDLE`` names the variable, ``READ_VARIABLE``
copies its value out, ``ASSIGN_VARIABLE`` overwrites it, and a ``CALL_ONCE`` subgraph gives
it its first value. tinyc keeps such a variable as a state tensor (Tensor.variable: its own
persistent RAM, reset by ``tinyc_reset_state()``); the frontend drops the handles and the
init subgraph (tinyc.frontend.tflite) and keeps the two ops below, in the file's order, which
the schedule preserves (a read after an assignment sees the new value, as in TFLM).

Both copy raw values (TFLM memcpys them): an int8 variable keeps one set of quantization
parameters, shared by what reads it and what is assigned to it.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from tinyc.errors import TinycError
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops.base import OpDef, Spec, register
from tinyc.ir.tensor import Tensor


def _same_values(a: Tensor, b: Tensor) -> bool:
    same_quant = a.quant.same_as(b.quant) if a.quant is not None else b.quant is None
    return a.shape == b.shape and a.dtype == b.dtype and same_quant


@register
class ReadVariable(OpDef):
    """y = the variable's current value (a copy)."""

    kind = "READ_VARIABLE"
    output_quant: ClassVar[str] = "same_as_input"

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        v = g.inp(node, 0)
        assert v is not None
        return [(v.shape, v.dtype)]

    def check(self, node: Node, g: Graph) -> None:
        v = g.inp(node, 0)
        if v is None or not v.variable:
            raise TinycError(f"node {node.name!r} (READ_VARIABLE) reads no state tensor")
        if not _same_values(v, g.out(node)):
            raise TinycError(
                f"node {node.name!r} (READ_VARIABLE): the output differs from variable "
                f"{v.name!r} in shape, dtype or quantization"
            )

    def quantized(self, node: Node, g: Graph) -> bool:
        return False

    def eval_float(self, node, g, xs):
        return [np.array(xs[0], copy=True)]


@register
class AssignVariable(OpDef):
    """The variable (input 1, output 0: the same state tensor) := input 0, in place."""

    kind = "ASSIGN_VARIABLE"
    output_quant: ClassVar[str] = "same_as_input"

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        v = g.inp(node, 1)
        assert v is not None
        return [(v.shape, v.dtype)]

    def check(self, node: Node, g: Graph) -> None:
        x, v = g.inp(node, 0), g.inp(node, 1)
        if x is None or v is None or not v.variable or node.outputs != [v.name]:
            raise TinycError(
                f"node {node.name!r} (ASSIGN_VARIABLE) must write a state tensor in place"
            )
        if not _same_values(x, v):
            raise TinycError(
                f"node {node.name!r} (ASSIGN_VARIABLE): the value {x.dtype}{list(x.shape)} "
                f"does not match variable {v.name!r} {v.dtype}{list(v.shape)} (shape, dtype "
                "and quantization must be equal: TFLM copies the raw bytes)"
            )

    def quantized(self, node: Node, g: Graph) -> bool:
        return False

    def eval_float(self, node, g, xs):
        value, var = xs[0], xs[1]
        assert value is not None and var is not None
        var[...] = value  # the state array itself: the new value outlives the invocation
        return [var]

    def bytes_moved(self, node: Node, g: Graph) -> tuple[int, int]:
        v = g.tensors[node.inputs[1]]
        return v.nbytes, v.nbytes

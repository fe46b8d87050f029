"""SVDF: a rank-decomposed time convolution with a state of past feature activations
(TFLite's SVDF; keyword spotting models use it as a cheap recurrent layer).

Per invocation: the state (``memory`` past values of each filter) shifts one step, the
feature matrix writes the newest column, the time weights reduce each filter's memory, the
filters of a unit are summed (``rank`` per unit) with the bias. The state is input 4, a
state tensor (Tensor.variable) updated in place, as in TFLite Micro. int8 follows TFLM's
reference kernel bit for bit: an int8 or int16 state (the time weights' type), no fused
activation in the integer path (TFLM applies none there).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyc.errors import TinycError, UnsupportedError
from tinyc.ir import fixedpoint as fp
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops.base import OpDef, Spec, activation_float, attr, register
from tinyc.ir.tensor import dtype_range

X, WF, WT, B, STATE = range(5)


@dataclass(frozen=True)
class SvdfDims:
    batch: int
    input: int
    filters: int
    units: int
    memory: int
    rank: int


@dataclass
class SvdfQuant:
    input_zp: int
    state_zp: int
    output_zp: int
    scale_1: tuple[int, int]  # feature product -> state
    scale_2: tuple[int, int]  # time product -> output
    state_dtype: str


@register
class Svdf(OpDef):
    kind = "SVDF"
    attrs = {"rank": None, "activation": "NONE"}

    def dims(self, node: Node, g: Graph) -> SvdfDims:
        x, wf, wt, s = (g.inp(node, k) for k in (X, WF, WT, STATE))
        if x is None or wf is None or wt is None or s is None:
            raise TinycError(f"node {node.name!r} (SVDF) needs input, weights and a state")
        rank = int(attr(node, "rank"))
        if len(x.shape) != 2 or len(wf.shape) != 2 or len(wt.shape) != 2 or rank <= 0:
            raise TinycError(f"node {node.name!r} (SVDF): malformed operand shapes")
        filters, memory = wt.shape
        if wf.shape != (filters, x.shape[1]) or filters % rank:
            raise TinycError(
                f"node {node.name!r} (SVDF): feature weights {list(wf.shape)} and time weights "
                f"{list(wt.shape)} do not fit input {list(x.shape)} with rank {rank}"
            )
        if s.size != x.shape[0] * filters * memory:
            raise TinycError(f"node {node.name!r} (SVDF): the state holds {s.size} values")
        return SvdfDims(x.shape[0], x.shape[1], filters, filters // rank, memory, rank)

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        d = self.dims(node, g)
        return [((d.batch, d.units), g.out(node).dtype)]

    def check(self, node: Node, g: Graph) -> None:
        s = g.inp(node, STATE)
        if s is None or not s.variable:
            raise UnsupportedError(f"node {node.name!r} (SVDF): the state must be a state tensor")
        if g.out(node).is_quantized:
            self.quant_params(node, g)

    def quant_params(self, node: Node, g: Graph) -> SvdfQuant:
        x, wf, wt, s = (g.inp(node, k) for k in (X, WF, WT, STATE))
        y = g.out(node)
        where = f"node {node.name!r} (SVDF)"
        ok = (
            x is not None
            and wf is not None
            and wt is not None
            and s is not None
            and x.dtype == "int8"
            and wf.dtype == "int8"
            and wt.dtype in ("int8", "int16")
            and s.dtype == wt.dtype
            and y.dtype == "int8"
        )
        if not ok or not all(t is not None and t.quant for t in (x, wf, wt, s, y)):
            raise UnsupportedError(
                f"{where}: int8 input and feature weights, int8 or int16 time weights and state"
            )
        assert x and wf and wt and s and x.quant and wf.quant and wt.quant and s.quant
        assert y.quant is not None
        b = g.inp(node, B)
        if b is not None and b.dtype != "int32":
            raise UnsupportedError(f"{where}: an int8 SVDF needs an int32 bias")
        f32 = np.float32
        s1 = float(f32(f32(x.quant.s * wf.quant.s) / s.quant.s))
        s2 = float(f32(f32(s.quant.s * wt.quant.s) / y.quant.s))
        return SvdfQuant(
            x.quant.zp,
            s.quant.zp,
            y.quant.zp,
            fp.quantize_multiplier(s1),
            fp.quantize_multiplier(s2),
            s.dtype,
        )

    def quantized(self, node: Node, g: Graph) -> bool:
        return g.out(node).is_quantized

    def _shift(self, state: np.ndarray) -> np.ndarray:
        flat = state.reshape(-1).copy()
        flat[:-1] = flat[1:]
        return flat

    def eval_float(self, node, g, xs):
        d = self.dims(node, g)
        state = self._shift(np.asarray(xs[STATE], np.float32)).reshape(d.batch, d.filters, d.memory)
        x = np.asarray(xs[X], np.float32)
        wf, wt = np.asarray(xs[WF], np.float32), np.asarray(xs[WT], np.float32)
        state[:, :, -1] = x @ wf.T
        scratch = np.einsum("bfm,fm->bf", state, wt)
        out = scratch.reshape(d.batch, d.units, d.rank).sum(axis=2)
        if len(xs) > B and xs[B] is not None:
            out = out + np.asarray(xs[B], np.float32)
        xs[STATE][...] = state.reshape(xs[STATE].shape)
        out = activation_float(out, attr(node, "activation"))
        return [out.astype(np.float32)]

    def eval_quant(self, node, g, xs):
        d = self.dims(node, g)
        q = self.quant_params(node, g)
        lo, hi = dtype_range(q.state_dtype)
        state = self._shift(np.asarray(xs[STATE]).astype(np.int64))
        state = state.reshape(d.batch, d.filters, d.memory)
        x = xs[X].astype(np.int64) - q.input_zp
        dot = x @ xs[WF].astype(np.int64).T
        dot = np.clip(fp.multiply_by_quantized_multiplier(dot, *q.scale_1), lo, hi) + q.state_zp
        # the sum is stored in the state's type: C's narrowing conversion wraps
        width = 16 if q.state_dtype == "int16" else 8
        state[:, :, -1] = ((dot + (1 << (width - 1))) % (1 << width)) - (1 << (width - 1))
        scratch = np.einsum("bfm,fm->bf", state - q.state_zp, xs[WT].astype(np.int64))
        scratch = fp.wrap32(scratch)
        bias = xs[B].astype(np.int64) if len(xs) > B and xs[B] is not None else 0
        out = fp.wrap32(scratch.reshape(d.batch, d.units, d.rank).sum(axis=2) + bias)
        out = fp.multiply_by_quantized_multiplier(out, *q.scale_2) + q.output_zp
        xs[STATE][...] = state.reshape(xs[STATE].shape)
        return [np.clip(out, -128, 127).astype(np.int8)]

    def macs(self, node: Node, g: Graph) -> int:
        d = self.dims(node, g)
        return d.batch * d.filters * (d.input + d.memory)

"""CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED emitters."""

from __future__ import annotations

import numpy as np

from tinyc.backends.cmsis.cwriter import CContext
from tinyc.backends.cmsis.emit.base import Emitter, emitter, require_int8
from tinyc.errors import UnsupportedError
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import attr, get_op
from tinyc.ir.ops.conv import Requant

INT32 = (-(1 << 31), (1 << 31) - 1)


def _bias(node: Node, g: Graph, rq: Requant, fold_zero_point: bool) -> np.ndarray:
    w = g.inp(node, 1)
    b = g.inp(node, 2)
    assert w is not None and w.data is not None
    out_c = len(rq.multiplier)
    bias = np.zeros(out_c, np.int64) if b is None else b.data.astype(np.int64).reshape(-1)
    if fold_zero_point:
        # sum((x - zp) * w) = sum(x * w) - zp * sum(w): the second term is a constant.
        wsum = w.data.reshape(out_c, -1).astype(np.int64).sum(axis=1)
        bias = bias - rq.input_zp * wsum
    if bias.min(initial=0) < INT32[0] or bias.max(initial=0) > INT32[1]:
        raise UnsupportedError(f"node {node.name!r}: folded bias exceeds int32")
    return bias


def _requant_struct(c: CContext, node: Node, rq: Requant, bias: np.ndarray) -> str:
    b = c.const_array(f"bias_{node.name}", bias.astype(np.int32), "int32_t")
    m = c.const_array(f"mult_{node.name}", rq.multiplier.astype(np.int32), "int32_t")
    s = c.const_array(f"shift_{node.name}", rq.shift.astype(np.int32), "int32_t")
    return c.const_struct(
        f"rq_{node.name}",
        "tinyc_requant_t",
        f"{b}, {m}, {s}, {rq.output_zp}, {rq.act_min}, {rq.act_max}",
    )


def window_struct(c: CContext, node: Node, g: Graph, kernel: tuple[int, int], in_zp: int) -> str:
    x, y = g.inp(node, 0), g.out(node)
    assert x is not None
    stride = attr(node, "stride")
    dil = node.attrs.get("dilation", (1, 1))
    pads = attr(node, "pads")
    fields = [
        x.shape[1],
        x.shape[2],
        x.shape[3],
        y.shape[1],
        y.shape[2],
        y.shape[3],
        kernel[0],
        kernel[1],
        stride[0],
        stride[1],
        dil[0],
        dil[1],
        pads[0],
        pads[2],
        in_zp,
    ]
    if max(fields[:6]) > 65535 or max(fields[6:14]) > 255:
        raise UnsupportedError(f"node {node.name!r}: window dimensions too large for the C kernels")
    return c.const_struct(f"win_{node.name}", "tinyc_window_t", ", ".join(map(str, fields)))


def _batched(c: CContext, node: Node, g: Graph, call: str) -> None:
    """Emit ``call`` once per batch element ({n_in}/{n_out}: byte offsets of batch n)."""
    x, y = g.inp(node, 0), g.out(node)
    assert x is not None
    n = x.shape[0]
    step_in, step_out = x.size // n, y.size // n
    for b in range(n):
        c.call(call.format(n_in=b * step_in, n_out=b * step_out))


@emitter
class ConvEmitter(Emitter):
    kinds = ("CONV_2D",)

    def _direct(self, node: Node, g: Graph) -> bool:
        w = g.inp(node, 1)
        assert w is not None
        return w.shape[1] == 1 and w.shape[2] == 1 and tuple(attr(node, "pads")) == (0, 0, 0, 0)

    def scratch(self, node, g):
        w = g.inp(node, 1)
        assert w is not None
        return 0 if self._direct(node, g) else 2 * int(np.prod(w.shape[1:]))

    def emit(self, node, g, c):
        require_int8(node, g)
        rq = get_op("CONV_2D").requant(node, g)
        w = g.inp(node, 1)
        assert w is not None and w.data is not None
        if g.inp(node, 0).shape[3] != w.shape[3]:
            raise UnsupportedError(f"node {node.name!r}: grouped CONV_2D is not supported")
        q = _requant_struct(c, node, rq, _bias(node, g, rq, fold_zero_point=True))
        win = window_struct(c, node, g, (w.shape[1], w.shape[2]), rq.input_zp)
        wsym = c.const_array(f"w_{node.name}", w.data, "int8_t")
        scratch = "0" if self._direct(node, g) else c.scratch()
        c.need("conv_s8.c", "matmul_s8.c")
        _batched(
            c,
            node,
            g,
            f"tinyc_conv_s8(&{win}, &{q}, {c.ptr(node.inputs[0])} + {{n_in}}, {wsym}, "
            f"{c.ptr(node.outputs[0])} + {{n_out}}, {scratch});",
        )


@emitter
class DepthwiseEmitter(Emitter):
    kinds = ("DEPTHWISE_CONV_2D",)

    def emit(self, node, g, c):
        require_int8(node, g)
        rq = get_op("DEPTHWISE_CONV_2D").requant(node, g)
        w = g.inp(node, 1)
        assert w is not None and w.data is not None
        q = _requant_struct(c, node, rq, _bias(node, g, rq, fold_zero_point=False))
        win = window_struct(c, node, g, (w.shape[1], w.shape[2]), rq.input_zp)
        wsym = c.const_array(f"w_{node.name}", w.data, "int8_t")
        c.need("depthwise_s8.c")
        _batched(
            c,
            node,
            g,
            f"tinyc_depthwise_s8(&{win}, &{q}, {c.ptr(node.inputs[0])} + {{n_in}}, {wsym}, "
            f"{c.ptr(node.outputs[0])} + {{n_out}});",
        )


@emitter
class FullyConnectedEmitter(Emitter):
    kinds = ("FULLY_CONNECTED",)

    def emit(self, node, g, c):
        require_int8(node, g)
        rq = get_op("FULLY_CONNECTED").requant(node, g)
        w = g.inp(node, 1)
        x = g.inp(node, 0)
        assert w is not None and w.data is not None and x is not None
        q = _requant_struct(c, node, rq, _bias(node, g, rq, fold_zero_point=True))
        wsym = c.const_array(f"w_{node.name}", w.data, "int8_t")
        rows = x.size // w.shape[1]
        c.need("fc_s8.c", "matmul_s8.c")
        c.call(
            f"tinyc_fc_s8({rows}, {w.shape[1]}, {w.shape[0]}, &{q}, {c.ptr(node.inputs[0])}, "
            f"{wsym}, {c.ptr(node.outputs[0])});"
        )

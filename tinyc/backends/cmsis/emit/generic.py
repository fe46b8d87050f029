"""Generic-kernel fallbacks for rare configurations (plain loops in depthwise_s8.c)."""

from __future__ import annotations

import numpy as np

from tinyc.backends.cmsis.cwriter import CContext
from tinyc.errors import UnsupportedError
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import attr
from tinyc.ir.ops.conv import Requant


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


def emit_depthwise_generic(
    node: Node, g: Graph, c: CContext, rq: Requant, bias: np.ndarray
) -> None:
    w = g.inp(node, 1)
    x, y = g.inp(node, 0), g.out(node)
    assert w is not None and w.data is not None and x is not None
    b = c.const_array(f"bias_{node.name}", bias.astype(np.int32), "int32_t")
    m = c.const_array(f"mult_{node.name}", rq.multiplier.astype(np.int32), "int32_t")
    s = c.const_array(f"shift_{node.name}", rq.shift.astype(np.int32), "int32_t")
    q = c.const_struct(
        f"rq_{node.name}",
        "tinyc_requant_t",
        f"{b}, {m}, {s}, {rq.output_zp}, {rq.act_min}, {rq.act_max}",
    )
    win = window_struct(c, node, g, (w.shape[1], w.shape[2]), rq.input_zp)
    wsym = c.const_array(f"w_{node.name}", w.data, "int8_t")
    c.need("depthwise_s8.c")
    step_in, step_out = x.size // x.shape[0], y.size // y.shape[0]
    for n in range(x.shape[0]):
        c.call(
            f"tinyc_depthwise_s8(&{win}, &{q}, {c.ptr(node.inputs[0])} + {n * step_in}, "
            f"{wsym}, {c.ptr(node.outputs[0])} + {n * step_out});"
        )

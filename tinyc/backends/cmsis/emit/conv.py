"""CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED emitters (kernels of tinyc_nn.h,
specialized per layer by compile-time constant arguments)."""

from __future__ import annotations

import numpy as np

from tinyc.backends.cmsis.cwriter import CContext
from tinyc.backends.cmsis.emit import sparse
from tinyc.backends.cmsis.emit.base import Emitter, emitter, require_int8
from tinyc.backends.cmsis.emit.dwq_asm import DwqGeometry, row_kernel
from tinyc.backends.cmsis.emit.dwq_asm import supported as dwq_supported
from tinyc.backends.cmsis.emit.matrix import CHANNELS, QUADS, MatrixLayout, layout_for
from tinyc.errors import UnsupportedError
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import attr, get_op
from tinyc.ir.ops.conv import Requant
from tinyc.planner import Overlap

INT32 = (-(1 << 31), (1 << 31) - 1)


def folded_bias(node: Node, g: Graph, rq: Requant, fold_zero_point: bool) -> np.ndarray:
    """The int32 bias, optionally with -input_zp * sum(weights) folded in."""
    w = g.inp(node, 1)
    b = g.inp(node, 2)
    assert w is not None and w.data is not None
    out_c = len(rq.multiplier)
    bias = np.zeros(out_c, np.int64) if b is None else b.data.astype(np.int64).reshape(-1)
    if fold_zero_point:
        # sum((x - zp) * w) = sum(x * w) - zp * sum(w): the second term is a constant.
        axis = get_op(node.op).weight_axis  # the output-channel axis of the weights
        wsum = np.moveaxis(w.data, axis, 0).reshape(out_c, -1).astype(np.int64).sum(axis=1)
        bias = bias - rq.input_zp * wsum
    if bias.min(initial=0) < INT32[0] or bias.max(initial=0) > INT32[1]:
        raise UnsupportedError(f"node {node.name!r}: folded bias exceeds int32")
    return bias


def _geometry(node: Node, g: Graph) -> dict[str, int]:
    x, w, y = g.inp(node, 0), g.inp(node, 1), g.out(node)
    assert x is not None and w is not None
    stride, dil, pads = attr(node, "stride"), attr(node, "dilation"), attr(node, "pads")
    return {
        "in_h": x.shape[1],
        "in_w": x.shape[2],
        "in_c": x.shape[3],
        "out_h": y.shape[1],
        "out_w": y.shape[2],
        "out_c": y.shape[3],
        "k_h": w.shape[1],
        "k_w": w.shape[2],
        "s_h": stride[0],
        "s_w": stride[1],
        "dil_h": dil[0],
        "dil_w": dil[1],
        "pad_t": pads[0],
        "pad_l": pads[2],
    }


def conv_lead(geo: dict[str, int], direct: bool, layout: MatrixLayout) -> int:
    """The overlap lead of tinyc_conv_s8. Pair layouts copy each block of output pixels'
    rows into scratch (block sizes by core) before writing them, in order; so after a block,
    the output written so far must end before the first input byte a later pixel reads.
    The quad layout reads a direct (1x1) row in place while writing that pixel's outputs,
    so there the pixel's own input counts as still needed."""
    out_h, out_w, out_c = geo["out_h"], geo["out_w"], geo["out_c"]
    in_w, in_c = geo["in_w"], geo["in_c"]
    pixels = out_h * out_w
    oy, ox = np.divmod(np.arange(pixels), out_w)
    if direct:
        first = (oy * geo["s_h"] * in_w + ox * geo["s_w"]) * in_c
    else:
        y0 = oy * geo["s_h"] - geo["pad_t"]
        x0 = np.where(y0 >= 0, np.maximum(ox * geo["s_w"] - geo["pad_l"], 0), 0)
        first = (np.maximum(y0, 0) * in_w + x0) * in_c
    # smallest first byte over every pixel from p on
    need = np.minimum.accumulate(first[::-1])[::-1]
    in_size = geo["in_h"] * in_w * in_c
    reads_in_place = direct and layout.quads
    lead = -(1 << 30)
    for block in layout.block_rows:
        for start in range(0, pixels, block):
            end = min(start + block, pixels)
            if reads_in_place:
                nxt = int(need[start])
            else:
                nxt = int(need[end]) if end < pixels else in_size
            lead = max(lead, end * out_c - nxt)
    return lead


def ring_bytes(geo: dict[str, int], quad_rows: bool = False, staged: bool = False) -> int:
    """tinyc_dw_s8's scratch: a row of zero points and a ring of padded input rows
    (quad-major rows: channels padded to quads, and a staging row for a fused producer;
    HWC rows of ch % 4 != 0 channels: 4 bytes of slack for the last quad's loads)."""
    padded_w = (geo["out_w"] - 1) * geo["s_w"] + (geo["k_w"] - 1) * geo["dil_w"] + 1
    ch = -(-geo["in_c"] // 4) * 4 if quad_rows else geo["in_c"]
    row = max(padded_w, geo["pad_l"] + geo["in_w"]) * ch
    span = (geo["k_h"] - 1) * geo["dil_h"] + 1
    stage = geo["in_w"] * geo["in_c"] if quad_rows and staged else 0
    slack = 4 if not quad_rows and geo["in_c"] % 4 else 0
    return (span + 1) * row + stage + slack


def dwq_geometry(node: Node, g: Graph, target: str) -> DwqGeometry | None:
    """The generated Helium row kernel's geometry when tinyc_dw_s8 runs one (quad-major
    rows and weights): on MVE cores, every requantization shift a right shift, a
    geometry dwq_asm covers; else None."""
    if target != "mve" or attr(node, "depth_multiplier") != 1:
        return None
    rq = get_op("DEPTHWISE_CONV_2D").requant(node, g)
    if not np.all(rq.shift <= -1):
        return None
    geo = _geometry(node, g)
    dwq = DwqGeometry(
        geo["k_h"], geo["k_w"], geo["s_w"], geo["dil_w"], geo["out_w"],
        clamp_lo=rq.act_min > -128, clamp_hi=rq.act_max < 127,
    )  # fmt: skip
    return dwq if dwq_supported(dwq, geo["in_c"]) else None


#: tinyc_dw_s8's ring kinds (its `quad` argument)
RING_HWC, RING_QUADS, RING_QUADS_U8 = 0, 1, 2


def dw_ring(node: Node, g: Graph, target: str) -> int:
    """How tinyc_dw_s8 keeps its rows: quad-major for the generated Helium kernel;
    quad-major with unsigned values (x + 128) on cores without DSP, where byte loads with
    immediate offsets read them (see tinyc_dwq_row_u8); else as the tensor's HWC rows."""
    if dwq_geometry(node, g, target) is not None:
        return RING_QUADS
    if target == "plain" and attr(node, "depth_multiplier") == 1:
        return RING_QUADS_U8
    return RING_HWC


def quad_rows(node: Node, g: Graph, target: str) -> bool:
    return dw_ring(node, g, target) != RING_HWC


def quad_major_weights(w: np.ndarray) -> np.ndarray:
    """(1, kh, kw, ch) depthwise weights as [quad][tap][4], zero past the last channel."""
    taps, ch = w.shape[1] * w.shape[2], w.shape[3]
    quads = -(-ch // 4)
    out = np.zeros((taps, quads * 4), np.int8)
    out[:, :ch] = w.reshape(taps, ch)
    return np.ascontiguousarray(out.reshape(taps, quads, 4).transpose(1, 0, 2))


def depthwise_lead(geo: dict[str, int]) -> int:
    """The overlap lead of tinyc_dw_s8: each output row is written after the input rows it
    needs were copied into the ring, so only rows below those are still read."""
    span = (geo["k_h"] - 1) * geo["dil_h"] + 1
    row_in = geo["in_w"] * geo["in_c"]
    row_out = geo["out_w"] * geo["out_c"]
    lead = -(1 << 30)
    for oy in range(geo["out_h"]):
        nxt = min(max(oy * geo["s_h"] - geo["pad_t"] + span, 0), geo["in_h"])
        lead = max(lead, (oy + 1) * row_out - nxt * row_in)
    return lead


def _per_image(c: CContext, node: Node, g: Graph, make_call) -> None:
    x, y = g.inp(node, 0), g.out(node)
    assert x is not None
    step_in, step_out = x.size // x.shape[0], y.size // y.shape[0]
    for b in range(x.shape[0]):
        c.call(
            make_call(
                f"{c.ptr(node.inputs[0])} + {b * step_in}",
                f"{c.ptr(node.outputs[0])} + {b * step_out}",
            )
        )


def _records(c: CContext, tag: str, layout: MatrixLayout, rq: Requant, bias: np.ndarray):
    recs, right_only = layout.records(rq, bias)
    return c.const_array(f"q_{tag}", recs, "int32_t"), right_only


@emitter
class ConvEmitter(Emitter):
    kinds = ("CONV_2D",)

    @staticmethod
    def group_in_c(node: Node, g: Graph) -> int:
        """Input channels per group (all of them for an ordinary convolution)."""
        w = g.inp(node, 1)
        assert w is not None
        return w.shape[3]

    def direct(self, node: Node, g: Graph, layout: MatrixLayout) -> bool:
        geo = _geometry(node, g)
        return layout.conv_direct(
            (geo["k_h"], geo["k_w"]), tuple(attr(node, "pads")), self.group_in_c(node, g)
        )

    def scratch(self, node, g, target):
        layout = layout_for(target)
        geo = _geometry(node, g)
        k = geo["k_h"] * geo["k_w"] * self.group_in_c(node, g)
        dense = layout.conv_scratch(k, self.direct(node, g, layout))
        if sparse.use_sparse(node, g, target):  # (a fused member stays dense: the larger)
            return max(dense, sparse.conv_scratch(k, self.sparse_direct(node, g), target))
        return dense

    @staticmethod
    def sparse_direct(node: Node, g: Graph) -> bool:
        """tinyc_spconv_s8 reads a 1x1 unpadded kernel's rows in place (any in_c)."""
        w = g.inp(node, 1)
        assert w is not None
        return tuple(w.shape[1:3]) == (1, 1) and not any(attr(node, "pads"))

    def overlap(self, node, g, target):
        x = g.inp(node, 0)
        assert x is not None
        if x.shape[0] != 1 or self.group_in_c(node, g) != x.shape[3]:
            return None
        if sparse.use_sparse(node, g, target):
            return None  # rows read in place while a block's outputs are written
        layout = layout_for(target)
        lead = conv_lead(_geometry(node, g), self.direct(node, g, layout), layout)
        return Overlap(node.inputs[0], lead)

    def emit(self, node, g, c):
        pixels = g.out(node).shape[1] * g.out(node).shape[2]
        if sparse.use_sparse(node, g, c.target):
            _per_image(c, node, g, lambda i, o: self.sparse_call(node, g, c, i, o, pixels))
            return
        _per_image(c, node, g, lambda i, o: self.calls(node, g, c, i, o, "0", str(pixels),
                                                       c.scratch()))  # fmt: skip

    def sparse_call(self, node: Node, g: Graph, c: CContext, src: str, dst: str,
                    pixels: int) -> str:  # fmt: skip
        """tinyc_spconv_s8 over every output pixel of one image (tinyc_sparse.h)."""
        require_int8(node, g)
        w = g.inp(node, 1)
        assert w is not None and w.data is not None
        geo = _geometry(node, g)
        rq = get_op("CONV_2D").requant(node, g)
        bias = folded_bias(node, g, rq, True)
        q, right_only = _records(c, node.name, CHANNELS, rq, bias)
        cnt, idx, val = sparse.emit_arrays(c, node.name, w.data.reshape(geo["out_c"], -1))
        c.need_header("tinyc_sparse.h")
        dims = ", ".join(str(geo[k]) for k in ("in_h", "in_w", "in_c"))
        dims += f", {geo['in_c']}, {geo['out_w']}, {geo['out_c']}, {geo['out_c']}, "
        dims += ", ".join(str(geo[k]) for k in ("k_h", "k_w", "s_h", "s_w", "dil_h", "dil_w",
                                                 "pad_t", "pad_l"))  # fmt: skip
        return (
            f"tinyc_spconv_s8({src}, {dims}, {rq.input_zp}, "
            f"{int(self.sparse_direct(node, g))}, {cnt}, {idx}, {val}, {q}, {rq.output_zp}, "
            f"{rq.act_min}, {rq.act_max}, {right_only}, 0, {pixels}, {dst}, {c.scratch()});"
        )

    def calls(
        self, node: Node, g: Graph, c: CContext, src: str, dst: str, p0: str, p1: str,
        scratch: str, rows: tuple[str, str] | None = None,
    ) -> str:  # fmt: skip
        """The C statements computing output pixels [p0, p1) of one image from ``src``
        into ``dst`` (one kernel call per group). ``rows``: C expressions (input rows,
        padding rows above them) when ``src`` holds only the rows one output row reads,
        which is then output row 0."""
        require_int8(node, g)
        w = g.inp(node, 1)
        assert w is not None and w.data is not None
        layout = layout_for(c.target)
        geo = _geometry(node, g)
        groups = geo["in_c"] // w.shape[3]
        cin, cout = w.shape[3], geo["out_c"] // groups
        rq = get_op("CONV_2D").requant(node, g)
        # each output channel's weights only meet its own group's inputs: the same fold
        bias = folded_bias(node, g, rq, True)
        direct = self.direct(node, g, layout)
        c.need_header("tinyc_nn.h")
        c.need("tinyc_mm_dsp.S", "tinyc_mm_mve.S", "tinyc_mm_v6m.S")
        geo_c: dict[str, int | str] = dict(geo)
        if rows is not None:
            geo_c.update(in_h=rows[0], pad_t=rows[1], out_h=1)
        dims = (geo_c["in_h"], geo["in_w"], cin, geo["in_c"], geo_c["out_h"], geo["out_w"], cout,
                geo["out_c"], geo["k_h"], geo["k_w"], geo["s_h"], geo["s_w"], geo["dil_h"],
                geo["dil_w"], geo_c["pad_t"], geo["pad_l"], rq.input_zp, int(direct))  # fmt: skip
        args = ", ".join(str(v) for v in dims)
        lines = []
        for gi in range(groups):
            part = slice(gi * cout, (gi + 1) * cout)
            sub = Requant(rq.multiplier[part], rq.shift[part], rq.input_zp, rq.output_zp,
                          rq.act_min, rq.act_max)  # fmt: skip
            tag = node.name if groups == 1 else f"{node.name}_g{gi}"
            w2d = w.data[part].reshape(cout, -1)
            q, right_only = _records(c, tag, layout, sub, layout.kernel_bias(w2d, bias[part]))
            wdata, ctype = layout.pack_weights(w2d)
            wsym = c.const_array(f"w_{tag}", wdata, ctype)
            lines.append(
                f"tinyc_conv_s8({src} + {gi * cin}, {args}, {layout.code}, {wsym}, {q}, "
                f"{rq.output_zp}, {rq.act_min}, {rq.act_max}, {right_only}, {p0}, {p1}, "
                f"{dst} + {gi * cout}, {scratch});"
            )
        return "\n".join(lines)


#: gathered bytes tinyc_dwm_s8 keeps at most (more channels go in chunks)
DWM_GATHER = 2048


def dwm_blocking(geo: dict[str, int], target: str) -> tuple[int, int, int]:
    """tinyc_dwm_s8's (pixels per block, gathered row bytes, channels per chunk) on the
    target's layout (pixels per block: the most any build of it uses)."""
    k = geo["k_h"] * geo["k_w"]
    layout = layout_for(target)
    rows = 2 if layout.quads or layout.unsigned else 3
    k4 = k if layout.quads else -(-k // 4) * 4
    cb = max(1, min(geo["in_c"], DWM_GATHER // (rows * k4)))
    return rows, k4, cb


def dwm_scratch(geo: dict[str, int], target: str) -> int:
    """tinyc_dwm_s8's scratch: widened rows (DSP) then the gathered rows of one chunk."""
    rows, k4, cb = dwm_blocking(geo, target)
    layout = layout_for(target)
    wide = 0 if layout.quads else rows * k4 * (1 if layout.unsigned else 2)
    return wide + rows * cb * k4


def dwm_weights(w: np.ndarray) -> np.ndarray:
    """Depthwise weights (1, k_h, k_w, C * M) as each output channel's filter over its one
    input channel, [C * M, k_h * k_w] (the weights of the grouped convolution)."""
    return np.ascontiguousarray(w.reshape(-1, w.shape[3]).T)


@emitter
class DepthwiseEmitter(Emitter):
    kinds = ("DEPTHWISE_CONV_2D",)

    def overlap(self, node, g, target):
        x = g.inp(node, 0)
        assert x is not None
        geo = _geometry(node, g)
        if x.shape[0] != 1:
            return None
        if attr(node, "depth_multiplier") != 1:
            # blocks of pixels gathered (all channels: one chunk), then written, as CONV_2D
            if dwm_blocking(geo, target)[2] < geo["in_c"]:
                return None
            return Overlap(node.inputs[0], conv_lead(geo, False, layout_for(target)))
        if geo["k_h"] > 16:
            return None
        return Overlap(node.inputs[0], depthwise_lead(geo))

    def scratch(self, node, g, target):
        if attr(node, "depth_multiplier") != 1:
            return dwm_scratch(_geometry(node, g), target)
        return ring_bytes(_geometry(node, g), quad_rows(node, g, target))

    def emit(self, node, g, c):
        if attr(node, "depth_multiplier") != 1:
            self.emit_multiplier(node, g, c)
            return
        self.emit_call(node, g, c, src=None, produce="0")

    def emit_multiplier(self, node: Node, g: Graph, c: CContext) -> None:
        """Depth multiplier M > 1: tinyc_dwm_s8, the grouped convolution on the matrix
        kernels (one group per input channel, M output channels each)."""
        require_int8(node, g)
        rq = get_op("DEPTHWISE_CONV_2D").requant(node, g)
        w = g.inp(node, 1)
        assert w is not None and w.data is not None
        geo = _geometry(node, g)
        layout = layout_for(c.target)
        ch, mult = geo["in_c"], attr(node, "depth_multiplier")
        bias = folded_bias(node, g, rq, True)
        w2d = dwm_weights(w.data)
        # one right_only for every group: a group whose shifts are all right shifts keeps
        # TFLite's signed shift when some other group has one that is not
        right_only = int(bool(np.all(rq.shift <= -1)))
        wparts, qparts = [], []
        for gi in range(ch):
            part = slice(gi * mult, (gi + 1) * mult)
            sub = Requant(rq.multiplier[part], rq.shift[part], rq.input_zp, rq.output_zp,
                          rq.act_min, rq.act_max)  # fmt: skip
            recs, ro = layout.records(sub, layout.kernel_bias(w2d[part], bias[part]))
            if ro and not right_only and not layout.quads:
                recs = recs.copy()
                recs.reshape(-1, 3, layout.group)[:, 2, :] *= -1
            qparts.append(recs.reshape(-1))
            wdata, ctype = layout.pack_weights(w2d[part])
            wparts.append(wdata)
        q = c.const_array(f"q_{node.name}", np.concatenate(qparts), "int32_t")
        wsym = c.const_array(f"w_{node.name}", np.concatenate(wparts), ctype)
        w_step = wparts[0].size * wparts[0].itemsize
        cb = dwm_blocking(geo, c.target)[2]
        c.need_header("tinyc_nn.h")
        c.need("tinyc_mm_dsp.S", "tinyc_mm_mve.S", "tinyc_mm_v6m.S")
        keys = ("in_h", "in_w", "in_c", "out_h", "out_w")
        dims = ", ".join(str(geo[k]) for k in keys)
        keys2 = ("k_h", "k_w", "s_h", "s_w", "dil_h", "dil_w", "pad_t", "pad_l")
        dims2 = ", ".join(str(geo[k]) for k in keys2)

        def call(i: str, o: str) -> str:
            return (
                f"tinyc_dwm_s8({i}, {dims}, {mult}, {dims2}, {rq.input_zp}, {cb}, {layout.code}, "
                f"{wsym}, {w_step}, {q}, {qparts[0].size}, {rq.output_zp}, {rq.act_min}, "
                f"{rq.act_max}, {right_only}, {o}, {c.scratch()});"
            )

        _per_image(c, node, g, call)

    def emit_call(self, node: Node, g: Graph, c: CContext, src: str | None, produce: str) -> None:
        """The depthwise call; ``src``: the input (None: the node's input tensor),
        ``produce``: a row producer function of a fused layer, or "0"."""
        require_int8(node, g)
        rq = get_op("DEPTHWISE_CONV_2D").requant(node, g)
        w = g.inp(node, 1)
        assert w is not None and w.data is not None
        geo = _geometry(node, g)
        if geo["k_h"] > 16:
            from tinyc.backends.cmsis.emit.generic import emit_depthwise_generic

            emit_depthwise_generic(node, g, c, rq, folded_bias(node, g, rq, False))
            return
        # Helium and quad-major rings: channel quads, the zero point folded (the ring rows
        # hold it where the input is padded); elsewhere per-channel records, inputs offset
        # as they load
        ring = dw_ring(node, g, c.target)
        layout = QUADS if c.target == "mve" or ring != RING_HWC else CHANNELS
        bias = folded_bias(node, g, rq, layout.quads)
        if ring == RING_QUADS_U8:  # rows hold x + 128: sum((x + 128) w) - 128 sum(w)
            bias = bias - 128 * w.data.astype(np.int64).reshape(-1, w.shape[3]).sum(axis=0)
        q, right_only = _records(c, node.name, layout, rq, bias)
        wl = "TINYC_WL_QUADS" if layout.quads else "TINYC_WL_PAIRS"
        quad, rowq = ring, "0"
        dwq = dwq_geometry(node, g, c.target)
        if ring == RING_QUADS_U8:
            wsym = c.const_array(f"w_{node.name}", quad_major_weights(w.data), "int8_t")
        elif dwq is not None:
            assert right_only
            wsym = c.const_array(f"w_{node.name}", quad_major_weights(w.data), "int8_t")
            if dwq.name not in c.mve_asm:
                c.mve_asm[dwq.name] = row_kernel(dwq)
                c.decls.append(
                    f"void {dwq.name}(const int8_t *const *rowp, int32_t n, int32_t ch, "
                    "int32_t row_px, const int8_t *w, const int32_t *q, int32_t zp, int32_t lo, "
                    "int32_t hi, int8_t *o);"
                )
            rowq = f"TINYC_DWQ_FN({dwq.name})"
        else:  # HWC; ch % 4 != 0: slack for the last quad's loads (tinyc_dw_row_s8)
            slack = np.zeros(4 if geo["in_c"] % 4 else 0, np.int8)
            wflat = np.concatenate([w.data.reshape(-1), slack])
            wsym = c.const_array(f"w_{node.name}", wflat, "int8_t")
        keys = ("in_h", "in_w", "in_c", "out_h", "out_w", "k_h", "k_w", "s_h", "s_w", "dil_h",
                "dil_w", "pad_t", "pad_l")  # fmt: skip
        dims = ", ".join(str(geo[k]) for k in keys)
        c.need_header("tinyc_nn.h")

        def call(i: str, o: str) -> str:
            return (
                f"tinyc_dw_s8({i}, {dims}, {rq.input_zp}, {wl}, {wsym}, {q}, {rq.output_zp}, "
                f"{rq.act_min}, {rq.act_max}, {right_only}, {o}, {c.scratch()}, {produce}, "
                f"{quad}, {rowq});"
            )

        if src is None:
            _per_image(c, node, g, call)
        else:  # a fused producer supplies the rows (one image)
            c.call(call(src, c.ptr(node.outputs[0])))


def _fc_fast(w: np.ndarray, bias: np.ndarray, rq: Requant, right_only: int) -> int:
    """tinyc_fc_s8's `fast`: 2 (per-tensor) or 1 when its assembly layer kernel applies,
    i.e. right shifts and every accumulator provably below 2^30 in magnitude (inputs are
    within [-128, 127], the zero point being folded into the bias); else 0."""
    if not right_only:
        return 0
    bound = np.abs(bias) + 128 * np.abs(w.astype(np.int64)).reshape(len(bias), -1).sum(axis=1)
    if bound.max(initial=0) >= 1 << 30:
        return 0
    per_tensor = len(set(rq.multiplier.tolist())) == 1 and len(set(rq.shift.tolist())) == 1
    return 2 if per_tensor else 1


@emitter
class FullyConnectedEmitter(Emitter):
    kinds = ("FULLY_CONNECTED",)

    def scratch(self, node, g, target):
        w, x = g.inp(node, 1), g.inp(node, 0)
        assert w is not None and x is not None
        if sparse.use_sparse(node, g, target):
            return 0  # rows read in place
        return layout_for(target).fc_scratch(w.shape[1], x.size // w.shape[1])

    def scratch_over(self, node, g, target):
        if sparse.use_sparse(node, g, target):
            return None
        # one row, nothing gathered: widened to int16 pairs from its end down (DSP), or
        # moved and flipped to x + 128 (cores without DSP; see tinyc_row_s8)
        w, x = g.inp(node, 1), g.inp(node, 0)
        assert w is not None and x is not None
        one_row = x.size == w.shape[1] and x.size % 4 == 0
        return 0 if target in ("dsp", "plain") and one_row else None

    def emit(self, node, g, c):
        require_int8(node, g)
        layout = layout_for(c.target)
        rq = get_op("FULLY_CONNECTED").requant(node, g)
        w, x = g.inp(node, 1), g.inp(node, 0)
        assert w is not None and w.data is not None and x is not None
        out_c, k = w.shape
        bias = folded_bias(node, g, rq, True)
        if sparse.use_sparse(node, g, c.target):
            self.emit_sparse(node, g, c, rq, bias)
            return
        q, right_only = _records(c, node.name, layout, rq, layout.kernel_bias(w.data, bias))
        wdata, ctype = layout.pack_weights(w.data)
        wsym = c.const_array(f"w_{node.name}", wdata, ctype)
        c.need_header("tinyc_nn.h")
        c.need("tinyc_mm_dsp.S", "tinyc_mm_mve.S", "tinyc_mm_v6m.S")
        scratch = c.scratch()
        c.call(
            f"tinyc_fc_s8({c.ptr(node.inputs[0])}, {x.size // k}, {k}, {out_c}, {layout.code}, "
            f"{wsym}, {q}, {rq.output_zp}, {rq.act_min}, {rq.act_max}, {right_only}, "
            f"{_fc_fast(w.data, bias, rq, right_only)}, {c.ptr(node.outputs[0])}, {scratch});"
        )

    def emit_sparse(self, node: Node, g: Graph, c: CContext, rq: Requant, bias: np.ndarray
                    ) -> None:  # fmt: skip
        """tinyc_spfc_s8 / tinyc_spfcg_s8 (tinyc_sparse.h): the weights without their zeros,
        per channel or in groups of channels, as sparse.sparse_choice says."""
        w, x = g.inp(node, 1), g.inp(node, 0)
        assert w is not None and w.data is not None and x is not None
        out_c, k = w.shape
        kernel = sparse.sparse_choice(node, g, c.target)
        q, right_only = _records(c, node.name, CHANNELS, rq, bias)
        grouped = kernel == "tinyc_spfcg_s8"
        cnt, idx, val = sparse.emit_arrays(c, node.name, w.data, grouped)
        c.need_header("tinyc_sparse.h")
        c.call(
            f"{kernel}({c.ptr(node.inputs[0])}, {x.size // k}, {k}, {out_c}, {cnt}, "
            f"{idx}, {val}, {q}, {rq.output_zp}, {rq.act_min}, {rq.act_max}, {right_only}, "
            f"{c.ptr(node.outputs[0])});"
        )

"""LSTM, GRU and RNN emitters (always-inline kernels of tinyc_rnn.h).

Each gate's input-side weights are stacked into one matrix (and the recurrent ones into
another), every gate padded to a multiple of four rows, in the target's matrix layout, so
one step runs the same matrix kernels as FULLY_CONNECTED. A state that is a model state
(Tensor.variable) is updated where it lives; any other initial state is copied into a
working buffer in the node's scratch first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyc.backends.cmsis.cwriter import CContext
from tinyc.backends.cmsis.emit import sparse
from tinyc.backends.cmsis.emit.base import Emitter, emitter
from tinyc.backends.cmsis.emit.matrix import MatrixLayout, layout_for
from tinyc.errors import UnsupportedError
from tinyc.ir import fixedpoint as fp
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import attr, get_op
from tinyc.ir.ops import recurrent as R

INT32 = (-(1 << 31), (1 << 31) - 1)


def _round_up(n: int, m: int) -> int:
    return (n + m - 1) // m * m


def row_scratch(k: int) -> int:
    """TINYC_RNN_ROW_SCRATCH: a row widened, staged or flipped for the matrix kernels."""
    return 3 * _round_up(k, 16)


def xrow_scratch(k: int) -> int:
    """TINYC_RNN_XROW_SCRATCH: a block of input rows (three on DSP cores)."""
    return 7 * _round_up(k, 16)


#: input steps one matrix pass computes, by target (see tinyc_rnn_block in rnn_s8.c)
BLOCK = {"dsp": 3, "plain": 2, "mve": 1}


@dataclass
class Gate:
    """One gate's integer operands: weights, unfolded biases and requantization."""

    w: np.ndarray  # [hidden, input] int8
    r: np.ndarray  # [hidden, hidden] int8
    x_bias: np.ndarray  # int64 [hidden]
    h_bias: np.ndarray  # int64 [hidden]
    gx: tuple[int, int]
    gh: tuple[int, int]


def _data(g: Graph, node: Node, slot: int) -> np.ndarray | None:
    t = g.inp(node, slot)
    if t is None:
        return None
    if t.data is None:
        raise UnsupportedError(f"node {node.name!r} ({node.op}): {t.name!r} must be a constant")
    return t.data


def gates_of(node: Node, g: Graph) -> tuple[list[Gate], int, int]:
    """The gates of a quantized recurrent node, with its input and state zero points."""
    op = get_op(node.op)
    d = op.dims(node, g)
    q = op.quant_params(node, g)
    zero = np.zeros(d.hidden, np.int64)

    def bias(slot: int | None) -> np.ndarray:
        v = _data(g, node, slot) if slot is not None else None
        return zero if v is None else v.astype(np.int64)

    gates = []
    if node.op == "RNN":
        gates.append(
            Gate(_data(g, node, R.NW), _data(g, node, R.NR), bias(R.NB), zero, q["x"], q["h"])
        )
        return gates, q["x_zp"], q["h_zp"]
    for k in range(len(op.gates)):
        if node.op == "LSTM":
            xb, hb = bias(R.BI + k), zero
        else:
            xb, hb = bias(R.GBZ + k), bias(R.GRBH) if k == 2 else zero
        w, r = _data(g, node, op.w_slot + k), _data(g, node, op.r_slot + k)
        assert w is not None and r is not None
        gates.append(Gate(w, r, xb, hb, q.gate_x[k], q.gate_h[k]))
    return gates, q.x_zp, q.h_zp


def stacked(mats: list[np.ndarray]) -> np.ndarray:
    """Every gate's [hidden, k] int8 matrix stacked, each padded to a multiple of 4 rows."""
    hidden, k = mats[0].shape
    h4 = _round_up(hidden, 4)
    w = np.zeros((h4 * len(mats), k), np.int8)
    for gi, m in enumerate(mats):
        w[gi * h4 : gi * h4 + hidden] = m
    return w


def _stack(
    c: CContext,
    layout: MatrixLayout,
    tag: str,
    mats: list[np.ndarray],
    biases: list[np.ndarray],
    rq: list[tuple[int, int]],
    zp: int,
    kind: sparse.GateKind = None,
) -> str:
    """One gate matrix: weights in the target layout (or without their zeros in one of
    tinyc_sparse.h's encodings, ``kind`` ROW or GROUPED), per-row folded bias, multiplier,
    shift; returns the C initializer of its tinyc_gate_mat_t."""
    hidden, k = mats[0].shape
    h4 = _round_up(hidden, 4)
    rows = h4 * len(mats)
    w = stacked(mats)
    bias = np.zeros(rows, np.int64)
    mult = np.array([mu for mu, _ in rq], np.int32)
    shift = np.array([sh for _, sh in rq], np.int32)
    for gi, (m, b) in enumerate(zip(mats, biases, strict=True)):
        # sum((v - zp) * w) = sum(v * w) - zp * sum(w): the last term joins the bias
        bias[gi * h4 : gi * h4 + hidden] = b - zp * m.astype(np.int64).sum(axis=1)
    if kind is not None:
        if bias.min(initial=0) < INT32[0] or bias.max(initial=0) > INT32[1]:
            raise UnsupportedError(f"{tag}: folded bias exceeds int32")
        grouped = kind == sparse.GROUPED
        sw = sparse.encode_grouped(w) if grouped else sparse.encode(w)
        per_gate = h4 // sparse.GROUP if grouped else h4  # entries of per_seg per gate
        starts = np.concatenate([[0], np.cumsum(sw.per_seg.sum(axis=1))])[::per_gate]
        starts = starts[: len(mats)]
        cnt, idx, val = sparse.emit_arrays(c, tag, w, grouped)
        osym = c.const_array(f"so_{tag}", starts.astype(np.int32), "int32_t")
        bsym = c.const_array(f"b_{tag}", bias.astype(np.int32), "int32_t")
        msym = c.const_array(f"m_{tag}", mult, "int32_t")
        ssym = c.const_array(f"s_{tag}", shift, "int32_t")
        group = sparse.GROUP if grouped else 0
        return f"{{0, {bsym}, {msym}, {ssym}, {k}, {h4}, {cnt}, {idx}, {val}, {osym}, {group}}}"
    bias = layout.kernel_bias(w, bias)
    if bias.min(initial=0) < INT32[0] or bias.max(initial=0) > INT32[1]:
        raise UnsupportedError(f"{tag}: folded bias exceeds int32")
    wdata, ctype = layout.pack_weights(w)
    wsym = c.const_array(f"w_{tag}", wdata, ctype, align=16)
    bsym = c.const_array(f"b_{tag}", bias.astype(np.int32), "int32_t")
    msym = c.const_array(f"m_{tag}", mult, "int32_t")
    ssym = c.const_array(f"s_{tag}", shift, "int32_t")
    return f"{{{wsym}, {bsym}, {msym}, {ssym}, {k}, {h4}}}"


def _kernel_scratch(node: Node, g: Graph, target: str) -> int:
    d = get_op(node.op).dims(node, g)
    h4 = _round_up(d.hidden, 4)
    rows = xrow_scratch(d.input) + row_scratch(d.output)
    block = BLOCK[target]
    if node.op == "LSTM":
        return block * 4 * h4 * 2 + rows
    if node.op == "GRU":
        return block * 3 * h4 * 2 + h4 * 2 + h4 + rows
    return block * h4 * 2 + rows


def _work_buffers(node: Node, g: Graph) -> list[tuple[int, int, str]]:
    """(state slot, bytes, C type) of the states that need a working copy in scratch."""
    op = get_op(node.op)
    d = op.dims(node, g)
    out = []
    for slot in op.state_slots:
        t = g.inp(node, slot)
        if t is not None and t.variable:
            continue
        ctype = "int16_t" if (node.op == "LSTM" and slot == R.C0) else "int8_t"
        width = op.state_shape(node, d, slot)[1]
        out.append((slot, _round_up(d.batch * width * (2 if ctype == "int16_t" else 1), 4), ctype))
    return out


@emitter
class RecurrentEmitter(Emitter):
    kinds = ("LSTM", "GRU", "RNN")

    def scratch(self, node, g, target):
        return sum(b for _, b, _ in _work_buffers(node, g)) + _kernel_scratch(node, g, target)

    def emit(self, node, g, c):
        op = get_op(node.op)
        if not op.quantized(node, g):
            raise UnsupportedError(
                f"node {node.name!r} ({node.op}): the C backend runs int8 graphs (quantize the "
                "model first: --calibration)"
            )
        d = op.dims(node, g)
        layout = layout_for(c.target)
        gates, x_zp, h_zp = gates_of(node, g)
        tag = node.name
        xsp, hsp = sparse.use_sparse_gates(node, g, c.target)
        xmat = _stack(c, layout, f"{tag}_x", [gt.w for gt in gates], [gt.x_bias for gt in gates],
                      [gt.gx for gt in gates], x_zp, xsp)  # fmt: skip
        hmat = _stack(c, layout, f"{tag}_h", [gt.r for gt in gates], [gt.h_bias for gt in gates],
                      [gt.gh for gt in gates], h_zp, hsp)  # fmt: skip
        if xsp or hsp:
            c.need_header("tinyc_sparse.h")
        table = c.const_array("tinyc_sigmoid_q16", fp.sigmoid_table_q16().astype(np.uint16),
                              "uint16_t")  # fmt: skip
        common = (
            f".batch = {d.batch}, .steps = {d.time}, .input = {d.input}, .hidden = {d.hidden}, "
            f".time_major = {int(bool(attr(node, 'time_major')))}, "
            f".reverse = {int(bool(attr(node, 'reverse')))}, .wl = {layout.code}, "
            f".x = {xmat}, .h = {hmat}, .h_zp = {h_zp}, .table = {table}"
        )
        c.need("tinyc_mm_dsp.S", "tinyc_mm_mve.S", "tinyc_mm_v6m.S")
        c.need_header("tinyc_rnn.h")
        # working copies of the initial state, then the kernel's own scratch
        scratch = c.scratch()
        offset = 0
        ptrs: dict[int, str] = {}
        for slot, nbytes, ctype in _work_buffers(node, g):
            work = f"(({ctype} *)({scratch} + {offset}))"
            src = g.inp(node, slot)
            if src is None:
                fill = h_zp if ctype == "int8_t" else 0
                c.call(f"memset({work}, {fill & 0xFF}, {nbytes}u);")
            else:
                c.call(f"memcpy({work}, {c.ptr(src.name)}, {src.nbytes}u);")
            ptrs[slot] = work
            offset += nbytes
        for slot in op.state_slots:
            if slot not in ptrs:
                t = g.inp(node, slot)
                assert t is not None
                ptrs[slot] = c.ptr(t.name)
        kscratch = f"({scratch} + {offset})"
        y = c.ptr(node.outputs[0]) if node.outputs[0] else "0"
        x = c.ptr(node.inputs[0])
        if node.op == "LSTM":
            qp = op.quant_params(node, g)
            tm, ts = fp.lstm_tanh_params(qp.cell_power)
            cell_sig = int(op.activation_names(node)[1] == "Sigmoid")
            fields = (
                f"{common}, .forget_mult = {qp.forget_mul[0]}, .forget_shift = {qp.forget_mul[1]}, "
                f".input_mult = {qp.input_mul[0]}, .input_shift = {qp.input_mul[1]}, "
                f".output_mult = {qp.output_mul[0]}, .output_shift = {qp.output_mul[1]}, "
                f".tanh_mult = {fp.int16_lut_params(tm, ts)[0]}, "
                f".tanh_shift = {fp.int16_lut_params(tm, ts)[1]}, .cell_clip = {qp.cell_clip}, "
                f".cell_gate_sigmoid = {cell_sig}"
            )
            p = c.const_struct(f"lstm_{tag}", "tinyc_lstm_t", fields)
            c.call(f"tinyc_lstm_s8(&{p}, {x}, {y}, {ptrs[R.H0]}, {ptrs[R.C0]}, {kscratch});")
        elif node.op == "GRU":
            qg = op.quant_params(node, g)
            fields = (
                f"{common}, .linear_before_reset = {int(bool(attr(node, 'linear_before_reset')))}, "
                f".reset_mult = {qg.reset_mul[0]}, .reset_shift = {qg.reset_mul[1]}, "
                f".keep_mult = {qg.keep_mul[0]}, .keep_shift = {qg.keep_mul[1]}, "
                f".update_mult = {qg.update_mul[0]}, .update_shift = {qg.update_mul[1]}"
            )
            p = c.const_struct(f"gru_{tag}", "tinyc_gru_t", fields)
            c.call(f"tinyc_gru_s8(&{p}, {x}, {y}, {ptrs[R.GH0]}, {kscratch});")
        else:
            qr = op.quant_params(node, g)
            act = {"Tanh": 0, "Sigmoid": 1, "Relu": 2}[qr["act"]]
            fields = (
                f"{common}, .activation = {act}, .out_mult = {qr['out'][0]}, "
                f".out_shift = {qr['out'][1]}"
            )
            p = c.const_struct(f"rnn_{tag}", "tinyc_rnn_t", fields)
            c.call(f"tinyc_rnn_s8(&{p}, {x}, {y}, {ptrs[R.NH0]}, {kscratch});")
        # the final states the model reads
        for k, name in enumerate(node.outputs[1:]):
            if name:
                slot = op.state_slots[k]
                t = g.tensors[name]
                c.call(f"memcpy({c.ptr(name)}, {ptrs[slot]}, {t.nbytes}u);")

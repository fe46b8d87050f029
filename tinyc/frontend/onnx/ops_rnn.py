"""LSTM, GRU and RNN -> the IR's one-direction recurrent ops.

ONNX stacks gates and directions: W is [D, G*H, I], R [D, G*H, H], B [D, 2*G*H] (input then
recurrent biases), gate orders LSTM i,o,f,c (peepholes i,o,f) and GRU z,r,h. The IR takes
one matrix per gate in TFLite's order (LSTM i,f,c,o) and one direction per op, so each ONNX
node becomes one IR op per direction, with Y assembled to ONNX's [T, D, B, H] (layout 0) or
[B, T, D, H] (layout 1) by a RESHAPE or PACK that only adds the direction axis; the
layout bookkeeping (``Value.perm``) absorbs the rest.

Constant weights (initializers, or DequantizeLinear of stored integers, which arrive
dequantized) are cut with numpy, biases folded where the int8 kernels want them folded
(LSTM Wb+Rb always; GRU's z and r recurrent biases into the input biases, and h's too when
``linear_before_reset`` is 0; RNN's Rb into Wb). Run-time weights (the ONNX conformance
tests feed W, R, B as graph inputs) are cut with RESHAPE + SPLIT and kept unfolded except
the LSTM bias, which the IR op takes summed (one ADD per gate).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from tinyc.frontend.onnx import layout as L
from tinyc.frontend.onnx.builder import Builder
from tinyc.frontend.onnx.registry import inputs, onnx_op
from tinyc.ir.ops.recurrent import ACTIVATION_NAMES

#: a piece of a parameter tensor: a constant's values, or the IR tensor holding it
Piece = np.ndarray | str

DIRECTIONS = {"forward": (False,), "reverse": (True,), "bidirectional": (False, True)}

#: activations that take alpha / beta, with ONNX's defaults for them
ALPHA_DEFAULTS = {
    "HardSigmoid": 0.2,
    "LeakyRelu": 0.01,
    "ThresholdedRelu": 1.0,
    "ScaledTanh": 1.0,
    "Affine": 1.0,
    "Elu": 1.0,
}
BETA_DEFAULTS = {"HardSigmoid": 0.5, "ScaledTanh": 1.0, "Affine": 0.0}
_CANONICAL = {n.lower(): n for n in ACTIVATION_NAMES}


@dataclass(frozen=True)
class Cell:
    """What differs between the three ONNX ops."""

    op: str
    gates: int  # G: gate blocks stacked in W and R
    activations: tuple[str, ...]  # the IR op's defaults (ONNX's)
    states: int  # 2 for LSTM (h, c), else 1


LSTM = Cell("LSTM", 4, ("Sigmoid", "Tanh", "Tanh"), 2)
GRU = Cell("GRU", 3, ("Sigmoid", "Tanh"), 1)
RNN = Cell("RNN", 1, ("Tanh",), 1)
#: IR gate order as ONNX gate blocks: LSTM i,f,c,o from i,o,f,c; peepholes i,f,o from i,o,f
LSTM_GATES = (0, 2, 3, 1)
LSTM_PEEPHOLES = (0, 2, 1)


@dataclass(frozen=True)
class Geometry:
    directions: tuple[bool, ...]  # reverse flag per direction
    layout: int  # 0: [T, B, .], 1: [B, T, .]
    time: int
    batch: int
    hidden: int

    @property
    def d(self) -> int:
        return len(self.directions)


# -- checks and attributes ------------------------------------------------------------------


def _geometry(b: Builder, node: onnx.NodeProto, cell: Cell) -> Geometry:
    a = b.attrs(node)
    direction = a.get("direction", "forward")
    if direction not in DIRECTIONS:
        raise b.unsupported(f"direction {direction!r}")
    layout = int(a.get("layout", 0))
    if layout not in (0, 1):
        raise b.unsupported(f"layout {layout}")
    xs, ws, rs = (b.shape(n) for n in node.input[:3])
    if len(xs) != 3 or len(ws) != 3 or len(rs) != 3:
        raise b.unsupported(f"X {list(xs)}, W {list(ws)}, R {list(rs)} (3-D tensors expected)")
    t, batch = (xs[0], xs[1]) if layout == 0 else (xs[1], xs[0])
    dirs = DIRECTIONS[direction]
    if ws[1] % cell.gates:
        raise b.unsupported(f"W has {ws[1]} rows, not a multiple of {cell.gates} gates")
    hidden = ws[1] // cell.gates
    if "hidden_size" in a and int(a["hidden_size"]) != hidden:
        raise b.unsupported(f"hidden_size {a['hidden_size']} but W holds {hidden} units per gate")
    for what, got, want in (("W", ws, xs[2]), ("R", rs, hidden)):
        if tuple(got) != (len(dirs), ws[1], want):
            raise b.unsupported(f"{what} is {list(got)}, expected {[len(dirs), ws[1], want]}")
    if t < 1:
        raise b.unsupported("an empty sequence")
    return Geometry(dirs, layout, t, batch, hidden)


def _check_options(b: Builder, node: onnx.NodeProto, geo: Geometry) -> None:
    a = b.attrs(node)
    if int(a.get("input_forget", 0)):
        raise b.unsupported("input_forget=1 (input and forget gates coupled) is not supported")
    seq = inputs(node, 4)
    if not seq:
        return
    if not b.is_const(seq):
        raise b.unsupported(
            f"sequence_lens {seq!r} is a run-time tensor; tinyc runs every batch entry over "
            f"the whole sequence, so sequence_lens must be a constant equal to {geo.time}"
        )
    lens = np.asarray(b.const(seq, "sequence_lens")).reshape(-1)
    if lens.size != geo.batch or np.any(lens != geo.time):
        raise b.unsupported(
            f"sequence_lens {lens.tolist()} differ from the sequence length {geo.time} "
            "(tinyc runs every batch entry over the whole sequence)"
        )


def _activation_attrs(b: Builder, node: onnx.NodeProto, cell: Cell, dirs: int) -> list[dict]:
    """The IR activation attributes of each direction.

    ONNX lists the activations of every direction one after the other; alpha and beta
    values are consumed in that order by the activations that take them (onnxruntime's
    reading); the IR holds one alpha and beta per activation.
    """
    a = b.attrs(node)
    raw = [s.decode() if isinstance(s, bytes) else str(s) for s in a.get("activations", [])]
    if not raw:
        return [{} for _ in range(dirs)]
    n = len(cell.activations)
    if len(raw) != n * dirs:
        raise b.unsupported(f"{len(raw)} activations for {dirs} direction(s) of {n} each")
    names = []
    for s in raw:
        if s.lower() not in _CANONICAL:
            raise b.unsupported(
                f"activation {s!r} is not supported (tinyc's recurrent ops take "
                f"{', '.join(ACTIVATION_NAMES)})"
            )
        names.append(_CANONICAL[s.lower()])
    alphas = list(a.get("activation_alpha", []))
    betas = list(a.get("activation_beta", []))
    al, be = [], []
    for name in names:
        al.append(alphas.pop(0) if name in ALPHA_DEFAULTS and alphas else ALPHA_DEFAULTS.get(name))
        be.append(betas.pop(0) if name in BETA_DEFAULTS and betas else BETA_DEFAULTS.get(name))
    res = []
    for d in range(dirs):
        part = slice(d * n, (d + 1) * n)
        group = tuple(names[part])
        attrs: dict = {}
        if group != cell.activations:
            attrs["activations"] = group
            attrs["activation_alpha"] = tuple(float(v or 0.0) for v in al[part])
            attrs["activation_beta"] = tuple(float(v or 0.0) for v in be[part])
        res.append(attrs)
    return res


def _op_attrs(b: Builder, node: onnx.NodeProto, cell: Cell, geo: Geometry) -> list[dict]:
    """Per direction: the IR op's attributes, without time_major."""
    a = b.attrs(node)
    common: dict = {}
    if "clip" in a:
        clip = float(a["clip"])
        if not clip > 0:
            raise b.unsupported(f"clip {clip:g} (must be positive)")
        common["clip"] = clip
    if cell is GRU and int(a.get("linear_before_reset", 0)):
        common["linear_before_reset"] = True
    acts = _activation_attrs(b, node, cell, geo.d)
    return [{**common, **acts[d], "reverse": rev} for d, rev in enumerate(geo.directions)]


# -- parameters -----------------------------------------------------------------------------


def _float_value(b: Builder, name: str, what: str) -> None:
    dtype = b.ir_tensor(name).dtype
    if dtype != "float32":
        raise b.unsupported(f"{what} {name!r} is a run-time {dtype} tensor (float32 expected)")


def _pieces(b: Builder, name: str, blocks: int, what: str) -> list[list[Piece]]:
    """ONNX [D, blocks * n, ...] tensor ``name`` cut into ``blocks`` [n, ...] pieces per
    direction: numpy arrays for a constant, IR tensors (RESHAPE + SPLIT) otherwise."""
    shape = b.shape(name)
    dirs, n = shape[0], shape[1] // blocks
    if b.is_const(name):
        data = np.asarray(b.const(name, what), np.float32)
        return [[data[d, k * n : (k + 1) * n] for k in range(blocks)] for d in range(dirs)]
    _float_value(b, name, what)
    src = b.as_layout(name, L.identity(len(shape)))
    rest = tuple(shape[2:])
    count = dirs * blocks
    flat = b.emit(
        "RESHAPE", [src], {"shape": (count, -1)}, f"{name}#blocks", suffix=f"{what}_blocks"
    )
    parts = [flat]
    if count > 1:
        outs = [f"{name}#block{i}" for i in range(count)]
        parts = b.emit_multi(
            "SPLIT", [flat], {"axis": 0, "num_splits": count}, outs, suffix=f"{what}_split"
        )
    pieces = [
        b.emit("RESHAPE", [p], {"shape": (n, *rest)}, f"{p}#{n}", suffix=f"{what}_piece")
        for p in parts
    ]
    return [pieces[d * blocks : (d + 1) * blocks] for d in range(dirs)]


def _states(b: Builder, name: str, geo: Geometry, what: str) -> list[Piece | None]:
    """An initial state (ONNX [D, B, H], layout 1: [B, D, H]) as one [B, H] per direction."""
    if not name:
        return [None] * geo.d
    want = (geo.d, geo.batch, geo.hidden) if geo.layout == 0 else (geo.batch, geo.d, geo.hidden)
    shape = tuple(b.shape(name))
    if shape != want:
        raise b.unsupported(f"{what} is {list(shape)}, expected {list(want)}")
    axis = 0 if geo.layout == 0 else 1
    if b.is_const(name):
        data = np.asarray(b.const(name, what), np.float32)
        return [np.take(data, d, axis=axis) for d in range(geo.d)]
    _float_value(b, name, what)
    src = b.as_layout(name, L.identity(3))
    parts = [src]
    if geo.d > 1:
        outs = [f"{name}#dir{d}" for d in range(geo.d)]
        parts = b.emit_multi(
            "SPLIT", [src], {"axis": axis, "num_splits": geo.d}, outs, suffix=f"{what}_split"
        )
    return [
        b.emit("RESHAPE", [p], {"shape": (geo.batch, geo.hidden)}, f"{p}#2d", suffix=what)
        for p in parts
    ]


def _check_shape(b: Builder, name: str, want: tuple[int, ...], what: str) -> None:
    if name and tuple(b.shape(name)) != want:
        raise b.unsupported(f"{what} is {list(b.shape(name))}, expected {list(want)}")


def _ir(b: Builder, piece: Piece | None, hint: str) -> str:
    if piece is None:
        return ""
    if isinstance(piece, str):
        return piece
    return b.const_tensor(np.ascontiguousarray(piece, np.float32), hint)


def _add(b: Builder, p: Piece, q: Piece, hint: str) -> Piece:
    """p + q: folded for constants, an ADD node for run-time pieces."""
    if not isinstance(p, str) and not isinstance(q, str):
        return (p.astype(np.float64) + q).astype(np.float32)
    return b.emit("ADD", [_ir(b, p, hint), _ir(b, q, hint)], {}, hint, suffix="bias_sum")


# -- the three cells ----------------------------------------------------------------------


def _lstm_operands(b: Builder, node: onnx.NodeProto, geo: Geometry) -> list[list[str]]:
    """Per direction: the IR LSTM's inputs after x (slots 1-19)."""
    name = b.node_name
    w = _pieces(b, node.input[1], 4, "W")
    r = _pieces(b, node.input[2], 4, "R")
    bias, p = inputs(node, 3), inputs(node, 7)
    _check_shape(b, bias, (geo.d, 8 * geo.hidden), "B")
    _check_shape(b, p, (geo.d, 3 * geo.hidden), "P")
    bs = _pieces(b, bias, 8, "B") if bias else None
    ps = _pieces(b, p, 3, "P") if p else None
    h0 = _states(b, inputs(node, 5), geo, "initial_h")
    c0 = _states(b, inputs(node, 6), geo, "initial_c")
    res = []
    for d in range(geo.d):
        tag = f"{name}/d{d}"
        ins = [_ir(b, w[d][k], f"{tag}/W{k}") for k in LSTM_GATES]
        ins += [_ir(b, r[d][k], f"{tag}/R{k}") for k in LSTM_GATES]
        ins += [_ir(b, ps[d][k] if ps else None, f"{tag}/P{k}") for k in LSTM_PEEPHOLES]
        for k in LSTM_GATES:
            piece = _add(b, bs[d][k], bs[d][4 + k], f"{tag}/B{k}") if bs else None
            ins.append(_ir(b, piece, f"{tag}/B{k}"))
        ins += ["", "", _ir(b, h0[d], f"{tag}/h0"), _ir(b, c0[d], f"{tag}/c0")]
        res.append(ins)
    return res


def _gru_operands(b: Builder, node: onnx.NodeProto, geo: Geometry) -> list[list[str]]:
    """Per direction: the IR GRU's inputs after x (slots 1-13). Constant recurrent z and r
    biases (and h's without linear_before_reset) are folded into the input biases."""
    name = b.node_name
    lbr = bool(int(b.attrs(node).get("linear_before_reset", 0)))
    w = _pieces(b, node.input[1], 3, "W")
    r = _pieces(b, node.input[2], 3, "R")
    bias = inputs(node, 3)
    _check_shape(b, bias, (geo.d, 6 * geo.hidden), "B")
    bs = _pieces(b, bias, 6, "B") if bias else None
    h0 = _states(b, inputs(node, 5), geo, "initial_h")
    res = []
    for d in range(geo.d):
        tag = f"{name}/d{d}"
        wb: list[Piece | None] = [None] * 3
        rb: list[Piece | None] = [None] * 3
        if bs:
            wb, rb = list(bs[d][:3]), list(bs[d][3:])
            for k in range(2 if lbr else 3):  # Rb_h stays apart for linear_before_reset
                piece, rpiece = wb[k], rb[k]
                if not isinstance(piece, str) and not isinstance(rpiece, str):
                    wb[k], rb[k] = _add(b, piece, rpiece, f"{tag}/Wb{k}"), None
        ins = [_ir(b, p, f"{tag}/W{k}") for k, p in enumerate(w[d])]
        ins += [_ir(b, p, f"{tag}/R{k}") for k, p in enumerate(r[d])]
        ins += [_ir(b, p, f"{tag}/Wb{k}") for k, p in enumerate(wb)]
        ins += [_ir(b, p, f"{tag}/Rb{k}") for k, p in enumerate(rb)]
        ins.append(_ir(b, h0[d], f"{tag}/h0"))
        res.append(ins)
    return res


def _rnn_operands(b: Builder, node: onnx.NodeProto, geo: Geometry) -> list[list[str]]:
    """Per direction: the IR RNN's inputs after x (slots 1-5); a constant Rb is folded
    into Wb."""
    name = b.node_name
    w = _pieces(b, node.input[1], 1, "W")
    r = _pieces(b, node.input[2], 1, "R")
    bias = inputs(node, 3)
    _check_shape(b, bias, (geo.d, 2 * geo.hidden), "B")
    bs = _pieces(b, bias, 2, "B") if bias else None
    h0 = _states(b, inputs(node, 5), geo, "initial_h")
    res = []
    for d in range(geo.d):
        tag = f"{name}/d{d}"
        wb: Piece | None = None
        rb: Piece | None = None
        if bs:
            wb, rb = bs[d]
            if not isinstance(wb, str) and not isinstance(rb, str):
                wb, rb = _add(b, wb, rb, f"{tag}/Wb"), None
        ins = [_ir(b, w[d][0], f"{tag}/W"), _ir(b, r[d][0], f"{tag}/R")]
        ins += [_ir(b, wb, f"{tag}/Wb"), _ir(b, rb, f"{tag}/Rb"), _ir(b, h0[d], f"{tag}/h0")]
        res.append(ins)
    return res


OPERANDS = {"LSTM": _lstm_operands, "GRU": _gru_operands, "RNN": _rnn_operands}


# -- sequence in, sequences and states out ------------------------------------------------


def _sequence_input(b: Builder, x: str, geo: Geometry) -> tuple[str, bool]:
    """X as an IR tensor [T, B, I] or [B, T, I], whichever it already is; time_major."""
    if b.is_const(x):
        raise b.unsupported("a constant input sequence X")
    _float_value(b, x, "X")
    v = b.value(x)
    time_axis = 0 if geo.layout == 0 else 1
    if v.perm[2] == 2:  # features last: read the sequence in the order it is stored
        return v.ir, v.perm[0] == time_axis
    return b.as_layout(x, L.identity(3)), geo.layout == 0


def _strip(ins: list[str]) -> list[str]:
    while ins and not ins[-1]:
        ins.pop()
    return ins


def _bind_sequence(b: Builder, out: str, ys: list[str], geo: Geometry, time_major: bool) -> None:
    """The directions' [T, B, H] / [B, T, H] sequences as ONNX Y: the IR tensor is
    [a0, a1, D, H] (a0, a1 as the ops stored them), relabelled to ONNX's axis order."""
    pos = {"T": 0, "D": 1, "B": 2, "H": 3} if geo.layout == 0 else {"B": 0, "T": 1, "D": 2, "H": 3}
    a0, a1 = ("T", "B") if time_major else ("B", "T")
    shape = b.g.tensors[ys[0]].shape
    if geo.d == 1:
        ir = b.emit("RESHAPE", ys, {"shape": (*shape[:2], 1, shape[2])}, out, suffix="y")
    else:
        ir = b.emit("PACK", ys, {"axis": 2}, out, suffix="y")
    b.bind(out, ir, (pos[a0], pos[a1], pos["D"], pos["H"]))


def _bind_state(b: Builder, out: str, hs: list[str], geo: Geometry) -> None:
    """The directions' final [B, H] states as ONNX [D, B, H] (layout 1: [B, D, H])."""
    if geo.d == 1:
        shape = (1, geo.batch, geo.hidden) if geo.layout == 0 else (geo.batch, 1, geo.hidden)
        ir = b.emit("RESHAPE", hs, {"shape": shape}, out, suffix="state")
    else:
        ir = b.emit("PACK", hs, {"axis": geo.layout}, out, suffix="state")
    b.bind(out, ir, L.identity(3))


def _recurrent(b: Builder, node: onnx.NodeProto, cell: Cell) -> None:
    geo = _geometry(b, node, cell)
    _check_options(b, node, geo)
    attrs = _op_attrs(b, node, cell, geo)
    x, time_major = _sequence_input(b, node.input[0], geo)
    operands = OPERANDS[cell.op](b, node, geo)
    wanted = [_output(node, i) for i in range(1 + cell.states)]
    kinds = ("y", "h", "c")
    per_dir: list[list[str]] = []
    for d, ins in enumerate(operands):
        tag = ("fw", "bw")[d] if geo.d > 1 else "dir"
        # every output named, also unused final states: passes (fuse_qdq) read them all
        outs = [f"{b.node_name}/{tag}_{k}" for k in kinds[: 1 + cell.states]]
        suffix = None if geo.d == 1 else ("forward", "reverse")[d]
        op_attrs = {**attrs[d], "time_major": time_major}
        per_dir.append(b.emit_multi(cell.op, _strip([x, *ins]), op_attrs, outs, suffix=suffix))
    if wanted[0]:
        _bind_sequence(b, wanted[0], [o[0] for o in per_dir], geo, time_major)
    for i in range(1, 1 + cell.states):
        if wanted[i]:
            _bind_state(b, wanted[i], [o[i] for o in per_dir], geo)


def _output(node: onnx.NodeProto, i: int) -> str:
    """The name of optional output ``i`` of ``node``, or "" when absent."""
    return node.output[i] if i < len(node.output) else ""


@onnx_op("LSTM")
def lstm(b: Builder, node: onnx.NodeProto) -> None:
    _recurrent(b, node, LSTM)


@onnx_op("GRU")
def gru(b: Builder, node: onnx.NodeProto) -> None:
    _recurrent(b, node, GRU)


@onnx_op("RNN")
def rnn(b: Builder, node: onnx.NodeProto) -> None:
    _recurrent(b, node, RNN)

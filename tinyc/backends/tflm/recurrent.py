"""Recurrent layers for TFLite Micro.

LSTM: TFLM has UNIDIRECTIONAL_SEQUENCE_LSTM (``prepare_lstm``). Its kernel takes the
standard LSTM only (no peepholes, projection, layer norm or activation clip; sigmoid gates,
a tanh cell gate - the schema's fused activation has no SIGMOID -, tanh(c) into the
output), runs forward only, has one output
(the sequence), and keeps its hidden and cell state in *variable* tensors that persist
between invocations. So:

* a state that is a tinyc state tensor (``Tensor.variable``: a streaming layer) is written
  as the variable tensor itself;
* any other initial state (none = zeros, a constant, a graph input, a computed value)
  starts every invocation afresh in tinyc: it is copied into a fresh variable tensor by a
  RESHAPE in front of the LSTM, every invocation (TFLM's RESHAPE copies whatever its
  output buffer is, here the variable's persistent one), so the file means the same thing
  to any TFLM runner without a reset call;
* the final hidden state output is the last step of the sequence output (CMSIS-NN's int8
  kernel does not write the variables back, see ``cmsis_nn_lstm_notes``), the final cell
  state a RESHAPE copy of its variable after the LSTM;
* a reverse LSTM runs forward on the input reversed in time (UNPACK + PACK), and its
  sequence output is reversed back.

GRU and RNN: TFLM has no kernel. ``lower_gru`` / ``lower_rnn`` unroll them over the time
steps into operators TFLM runs (FULLY_CONNECTED, ADD, SUB, MUL, LOGISTIC, TANH, UNPACK,
PACK, RESHAPE, QUANTIZE). The input projections of all steps are one FULLY_CONNECTED per
gate (keep_num_dims), unpacked per step. Float graphs compute the same function (to float
rounding). Int8 graphs cannot reproduce tinyc's int8 GRU/RNN kernels (int16 gate
pre-activations) with int8 operators: every intermediate tensor gets int8 parameters from
ranges known without data (gate pre-activations at most +-8, the Q3.12 range of tinyc's
kernels, narrower where the weights bound them; sigmoid/tanh outputs at TFLite's fixed
parameters; the hidden state at the layer output's parameters), and the results follow
TFLM's int8 operators: close to tinyc's GRU/RNN kernel, not equal.

A streaming GRU/RNN (its initial state a tinyc state tensor) reads the variable tensor at
the first step and writes the last hidden state back into it with a RESHAPE copy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyc.errors import UnsupportedError
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import attr, get_op
from tinyc.ir.ops import recurrent as rec
from tinyc.ir.tensor import QuantParams, Tensor

#: |gate pre-activation| beyond which tinyc's int8 kernels saturate (int16 Q3.12)
GATE_RANGE = 8.0
#: TFLite's fixed int8 output parameters of LOGISTIC and TANH
LOGISTIC_Q = (1.0 / 256, -128)
TANH_Q = (1.0 / 128, 0)
#: the inputs beyond which an int8 LOGISTIC / TANH output no longer changes (the function
#: is within half an output step of its bound): a pre-activation needs no wider range
SATURATES = {"LOGISTIC": (-6.24, 5.14), "TANH": (-3.12, 2.57)}
_ACT_OPS = {"Sigmoid": "LOGISTIC", "Tanh": "TANH", "Relu": "RELU"}
#: the cell gate activations a .tflite can state: the schema's ActivationFunctionType has
#: TANH but no SIGMOID (TFLM's kernel would take one; no file can ask for it)
_LSTM_CELL_GATE = ("Tanh",)


@dataclass
class Lowered:
    """What lowering one recurrent node produced: the nodes replacing it (in order) and
    what ``compile`` should say about it."""

    nodes: list[Node]
    note: str | None = None
    #: the int8 results differ from the IR op's own kernel
    changes_numerics: bool = False


class _Builder:
    """Adds tensors and nodes for one lowered node to the graph."""

    def __init__(self, g: Graph, node: Node):
        self.g = g
        self.base = node.name
        self.nodes: list[Node] = []
        self.quantized = get_op(node.op).quantized(node, g)

    def tensor(
        self,
        what: str,
        shape,
        dtype: str | None = None,
        quant: QuantParams | None = None,
        data: np.ndarray | None = None,
        variable: bool = False,
        name: str | None = None,
    ) -> str:
        dtype = dtype or ("int8" if self.quantized else "float32")
        name = name or self.g.unique_name(f"{self.base}/{what}")
        if name in self.g.tensors:
            t = self.g.tensors[name]
            assert t.shape == tuple(shape) and t.dtype == dtype, name
            return name
        self.g.add_tensor(Tensor(name, tuple(shape), dtype, data, quant, variable=variable))
        return name

    def const(self, what: str, data: np.ndarray, dtype: str, quant=None) -> str:
        return self.tensor(what, data.shape, dtype, quant, np.asarray(data))

    def node(self, op: str, inputs: list[str], outputs: list[str], **attrs) -> None:
        name = self.g.unique_name(f"{self.base}/{op.lower()}_{len(self.nodes)}")
        self.nodes.append(Node(op, name, inputs, outputs, attrs))

    def unary(self, op: str, x: str, what: str, quant=None, name: str | None = None) -> str:
        t = self.g.tensors[x]
        y = self.tensor(what, t.shape, t.dtype, quant, name=name)
        self.node(op, [x], [y])
        return y

    def binary(self, op: str, a: str, b: str, what: str, quant=None, act: str = "NONE",
               name: str | None = None) -> str:  # fmt: skip
        ta, tb = self.g.tensors[a], self.g.tensors[b]
        shape = np.broadcast_shapes(ta.shape, tb.shape)
        y = self.tensor(what, shape, ta.dtype, quant, name=name)
        self.node(op, [a, b], [y], activation=act)
        return y

    def fc(self, x: str, w: str, b: str | None, what: str, quant=None, keep_dims=False) -> str:
        tx, tw = self.g.tensors[x], self.g.tensors[w]
        shape = (
            (*tx.shape[:-1], tw.shape[0]) if keep_dims else (tx.size // tw.shape[1], tw.shape[0])
        )
        y = self.tensor(what, shape, tx.dtype, quant)
        ins = [x, w] + ([b] if b else [])
        self.node("FULLY_CONNECTED", ins, [y], activation="NONE", keep_num_dims=keep_dims)
        return y

    def reshape(self, x: str, shape, what: str = "reshape", name: str | None = None,
                variable: bool = False, quant=None) -> str:  # fmt: skip
        t = self.g.tensors[x]
        y = self.tensor(what, shape, t.dtype, quant or t.quant, name=name, variable=variable)
        self.node("RESHAPE", [x], [y], shape=tuple(int(d) for d in shape))
        return y

    def unpack(self, x: str, axis: int, what: str) -> list[str]:
        t = self.g.tensors[x]
        shape = tuple(d for i, d in enumerate(t.shape) if i != axis)
        ys = [self.tensor(f"{what}_{k}", shape, t.dtype, t.quant) for k in range(t.shape[axis])]
        self.node("UNPACK", [x], ys, axis=axis)
        return ys

    def pack(self, xs: list[str], axis: int, what: str, name: str | None = None) -> str:
        t = self.g.tensors[xs[0]]
        shape = list(t.shape)
        shape.insert(axis, len(xs))
        y = self.tensor(what, shape, t.dtype, t.quant, name=name)
        self.node("PACK", list(xs), [y], axis=axis)
        return y


def _time_axis(node: Node) -> int:
    return 0 if attr(node, "time_major") else 1


def _reverse_in_time(b: _Builder, x: str, axis: int, what: str, name: str | None = None) -> str:
    steps = b.unpack(x, axis, f"{what}_step")
    return b.pack(steps[::-1], axis, what, name=name)


# -- LSTM -------------------------------------------------------------------------------------


def _lstm_checks(node: Node, g: Graph) -> None:
    where = f"LSTM node {node.name!r}"
    op = get_op("LSTM")
    names = op.activation_names(node)  # type: ignore[attr-defined]
    if tuple(names) not in (("Sigmoid", gate, "Tanh") for gate in _LSTM_CELL_GATE):
        raise UnsupportedError(
            f"{where}: TFLM's LSTM kernel computes (sigmoid, tanh, tanh) as a .tflite can state "
            f"it (its fused activation has no SIGMOID); the node's activations are {list(names)}"
        )
    if float(attr(node, "clip")) > 0:
        raise UnsupportedError(f"{where}: TFLM's LSTM kernel has no activation clip")
    for slots, what in (
        ((rec.PI, rec.PF, rec.PO), "peepholes"),
        ((rec.PW, rec.PB), "a projection"),
    ):
        if any(g.inp(node, s) is not None for s in slots):
            raise UnsupportedError(f"{where}: TFLM's LSTM kernel has no {what}")
    x = g.inp(node, rec.X)
    assert x is not None
    for slot in range(rec.WI, rec.RO + 1):
        w = g.inp(node, slot)
        assert w is not None  # the IR op requires every gate's weights
        if x.dtype == "float32" and w.dtype != "float32":
            raise UnsupportedError(
                f"{where}: TFLM does not run hybrid LSTMs (float activations, {w.dtype} weights)"
            )


def prepare_lstm(node: Node, g: Graph) -> Lowered:
    """The nodes that run ``node`` (an LSTM) as TFLM's UNIDIRECTIONAL_SEQUENCE_LSTM: the
    LSTM node itself with 20 operand slots, variable state tensors and one output, plus
    the copies and reversals around it (see the module docstring)."""
    _lstm_checks(node, g)
    op = get_op("LSTM")
    d = op.dims(node, g)  # type: ignore[attr-defined]
    b = _Builder(g, node)
    x = g.inp(node, rec.X)
    assert x is not None
    axis = _time_axis(node)
    reverse = bool(attr(node, "reverse")) and d.time > 1
    inputs = list(node.inputs) + [""] * (20 - len(node.inputs))
    if reverse:
        inputs[rec.X] = _reverse_in_time(b, node.inputs[rec.X], axis, "input_reversed")

    # biases: TFLM needs all four
    for k in range(4):
        if not inputs[rec.BI + k]:
            if x.is_quantized:  # the int8 op refuses this; a guard
                raise UnsupportedError(f"LSTM node {node.name!r}: int8 LSTMs need biases")
            inputs[rec.BI + k] = b.const(f"bias_{op.gates[k]}", np.zeros(d.hidden), "float32")

    # states: variable tensors
    states = []
    for slot, what in ((rec.H0, "h"), (rec.C0, "c")):
        t = g.inp(node, slot)
        shape = op.state_shape(node, d, slot)
        if t is not None and t.variable:
            if t.shape != shape:
                # TFLM reads the state width from dimension 1: store the state 2-D (same
                # bytes); this copy of the graph is the writer's own
                if any(n is not node and t.name in n.inputs for n in g.nodes):
                    raise UnsupportedError(
                        f"LSTM node {node.name!r}: state {t.name!r} {list(t.shape)} is read "
                        f"elsewhere too; TFLM needs it {list(shape)}"
                    )
                t.shape = shape
            states.append(t.name)
            continue
        if t is not None:
            dtype, quant = t.dtype, t.quant
            src = t.name
        else:  # float only (the int8 op needs its states)
            dtype, quant = x.dtype, None
            src = b.const(f"{what}_initial", np.zeros(shape), dtype)
        var = b.tensor(f"{what}_state", shape, dtype, quant, variable=True)
        b.reshape(src, shape, name=var)
        states.append(var)
    inputs[rec.H0], inputs[rec.C0] = states

    # the sequence output (TFLM's only one)
    y_name = node.outputs[0] if node.outputs and node.outputs[0] else None
    y_shape = (d.time, d.batch, d.output) if axis == 0 else (d.batch, d.time, d.output)
    hq = g.tensors[states[0]].quant
    if y_name is None or reverse:
        y = b.tensor("sequence", y_shape, x.dtype, g.tensors[y_name].quant if y_name else hq)
    else:
        y = y_name
    attrs = {k: v for k, v in node.attrs.items() if k != "reverse"}
    b.node("LSTM", inputs, [y, "", ""], **attrs)
    steps = None
    if reverse and y_name is not None:
        steps = b.unpack(y, axis, "sequence_step")
        b.pack(steps[::-1], axis, "sequence_reversed", name=y_name)
    # final states. The hidden state: the last step of the sequence TFLM computed (CMSIS-NN's
    # int8 kernel leaves the variable tensors alone); the cell state: a copy of the variable
    # after the LSTM (see cmsis_nn_lstm_notes for int8)
    final_h, final_c = (list(node.outputs[1:3]) + ["", ""])[:2]
    if final_h:
        steps = steps or b.unpack(y, axis, "sequence_step")
        b.reshape(steps[-1], g.tensors[final_h].shape, name=final_h)
    if final_c:
        b.reshape(states[1], g.tensors[final_c].shape, name=final_c)
    for n in b.nodes:
        if n.op == "LSTM":
            n.name = node.name
    return Lowered(b.nodes)


# -- ranges for the int8 lowering of GRU / RNN ---------------------------------------------------


def _real_range(q: QuantParams) -> tuple[float, float]:
    s, zp = float(q.s), q.zp
    return (-128 - zp) * s, (127 - zp) * s


def _sym(r: float) -> QuantParams:
    """int8 parameters for values in [-r, r] (zero point 0)."""
    return QuantParams([np.float32(max(r, 1e-6) / 127.0)], [0])


def _asym(lo: float, hi: float) -> QuantParams:
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    s = max(hi - lo, 1e-6) / 255.0
    zp = int(np.clip(round(-128 - lo / s), -128, 127))
    return QuantParams([np.float32(s)], [zp])


def _pre_activation(act: str, bound: float) -> QuantParams:
    """A gate pre-activation: within +-``bound`` (what the weights allow), and no wider than
    the range where the int8 activation still changes."""
    lo, hi = SATURATES.get(act, (-GATE_RANGE, GATE_RANGE))
    return _asym(max(lo, -bound), min(hi, bound))


def _fixed(q: tuple[float, int]) -> QuantParams:
    return QuantParams([np.float32(q[0])], [q[1]])


def _fc_bound(g: Graph, w: str, bias: str | None, in_q: QuantParams) -> float:
    """The largest |W x + b| over every int8 input x (per output row, then the max)."""
    tw = g.tensors[w]
    assert tw.data is not None and tw.quant is not None
    lo, hi = _real_range(in_q)
    xmax = max(abs(lo), abs(hi))
    rows = np.abs(tw.data.astype(np.float64)).sum(axis=1) * float(tw.quant.s) * xmax
    if bias:
        tb = g.tensors[bias]
        assert tb.data is not None
        rows = rows + np.abs(tb.data.astype(np.float64)) * float(np.float32(in_q.s * tw.quant.s))
    return float(rows.max()) if rows.size else 0.0


# -- GRU / RNN ----------------------------------------------------------------------------------


@dataclass
class _Seq:
    """The per-step pieces a lowered GRU/RNN shares."""

    b: _Builder
    node: Node
    dims: rec.Dims
    axis: int
    steps: list[int]  # time indices in processing order


def _prologue(node: Node, g: Graph) -> _Seq:
    op = get_op(node.op)
    d = op.dims(node, g)  # type: ignore[attr-defined]
    b = _Builder(g, node)
    steps = list(range(d.time))
    if attr(node, "reverse"):
        steps.reverse()
    return _Seq(b, node, d, _time_axis(node), steps)


def _input_projection(s: _Seq, w: str, bias: str | None, what: str, quant) -> list[str]:
    """W x + b for every step: one FULLY_CONNECTED over the whole sequence, unpacked."""
    y = s.b.fc(s.node.inputs[0], w, bias, f"{what}_x", quant, keep_dims=True)
    return s.b.unpack(y, s.axis, f"{what}_x_step")


def _initial_state(s: _Seq, slot: int, hq: QuantParams | None) -> tuple[str, str | None]:
    """(the state read by the first step, the variable to write the last state into)."""
    g, d, b = s.b.g, s.dims, s.b
    t = g.inp(s.node, slot)
    shape = (d.batch, d.output)
    if t is None:
        value = np.full(shape, hq.zp if hq is not None else 0.0)
        return b.const("h_initial", value, "int8" if hq is not None else "float32", hq), None
    name = t.name if t.shape == shape else b.reshape(t.name, shape, "h_initial")
    return name, (t.name if t.variable else None)


def _epilogue(s: _Seq, hs: dict[int, str], h_last: str, var: str | None) -> None:
    """The sequence output, the final state output (unless the last step wrote it) and a
    streaming state's write-back."""
    b, node = s.b, s.node
    if node.outputs and node.outputs[0]:
        b.pack([hs[t] for t in range(s.dims.time)], s.axis, "sequence", name=node.outputs[0])
    final = node.outputs[1] if len(node.outputs) > 1 else ""
    if final and final != h_last:
        b.reshape(h_last, b.g.tensors[final].shape, name=final)
    if var is not None:
        b.reshape(h_last, b.g.tensors[var].shape, name=var)


def _final_name(s: _Seq, last: bool) -> str | None:
    """The last step writes the final state output directly when the shapes agree."""
    outs = s.node.outputs
    if not last or len(outs) < 2 or not outs[1]:
        return None
    return outs[1] if s.b.g.tensors[outs[1]].shape == (s.dims.batch, s.dims.output) else None


def _act_op(node: Node, name: str) -> str:
    if name not in _ACT_OPS:
        raise UnsupportedError(
            f"{node.op} node {node.name!r}: activation {name} has no TFLM operator here "
            f"(lowering takes {', '.join(_ACT_OPS)})"
        )
    return _ACT_OPS[name]


def _float_checks(node: Node, g: Graph) -> None:
    if float(attr(node, "clip")) > 0:
        raise UnsupportedError(
            f"{node.op} node {node.name!r}: no TFLM lowering for an activation clip"
        )


def _add_biases(b: _Builder, slots: tuple[str | None, ...], n: int, what: str) -> str | None:
    """Sum of the float biases present (None when none is)."""
    vals = [b.g.tensors[s].data for s in slots if s]
    if not vals:
        return None
    total = np.sum([np.asarray(v, np.float64) for v in vals], axis=0).astype(np.float32)
    if len(vals) == 1:
        return next(s for s in slots if s)
    return b.const(what, total.reshape(n), "float32")


def _note(node: Node, lowered: Lowered, steps: int, quantized: bool) -> None:
    what = f"{node.op} node {node.name!r}: TFLM has no {node.op} kernel; lowered to " + (
        f"{len(lowered.nodes)} operators over {steps} steps"
    )
    if quantized:
        what += f"; its int8 results follow TFLM's int8 operators, not tinyc's {node.op} kernel"
    lowered.note = what
    lowered.changes_numerics = quantized


def lower_gru(node: Node, g: Graph) -> Lowered:
    """GRU -> TFLM operators, unrolled (see the module docstring)."""
    s = _prologue(node, g)
    b, d = s.b, s.dims
    q = b.quantized
    op = get_op("GRU")
    op.check(node, g)
    inp = [node.inputs[i] if i < len(node.inputs) else "" for i in range(14)]
    lbr = bool(attr(node, "linear_before_reset"))
    f_name, g_name = op.activation_names(node)  # type: ignore[attr-defined]
    f_op, g_op = _act_op(node, f_name), _act_op(node, g_name)
    if not q:
        _float_checks(node, g)
    xq = g.tensors[inp[rec.GX]].quant
    hq = None
    if q:
        h0 = g.inp(node, rec.GH0)
        hq = h0.quant if h0 is not None else g.tensors[node.outputs[0]].quant
        if hq is None:  # the int8 op checks this; a guard
            raise UnsupportedError(f"GRU node {node.name!r}: no hidden state parameters")
    h, var = _initial_state(s, rec.GH0, hq)

    def fc_q(w: str, bias: str | None, in_q) -> QuantParams | None:
        return _sym(min(GATE_RANGE, _fc_bound(g, w, bias, in_q))) if q else None

    # input projections of all steps; float graphs fold every bias that may be folded there
    gx: list[list[str]] = []
    gx_range: list[float] = []
    for k, gate in enumerate(("z", "r", "h")):
        w = inp[rec.GWZ + k]
        if q:
            bias = inp[rec.GBZ + k] or None
            quant = fc_q(w, bias, xq)
        else:
            extra = (inp[rec.GRBZ + k],) if k < 2 or not lbr else ()
            bias = _add_biases(b, (inp[rec.GBZ + k], *extra), d.hidden, f"bias_{gate}")
            quant = None
        gx.append(_input_projection(s, w, bias, gate, quant))
        gx_range.append(float(quant.s) * 127 if quant else 0.0)

    hs: dict[int, str] = {}
    h_lo, h_hi = _real_range(hq) if hq is not None else (0.0, 0.0)
    fixed_f = _fixed(LOGISTIC_Q if f_op == "LOGISTIC" else TANH_Q) if q else None
    fixed_g = _fixed(TANH_Q) if q else None
    rbh = inp[rec.GRBH] or None
    for n_step, t in enumerate(s.steps):
        last = n_step == len(s.steps) - 1
        gates = []
        for k, gate in enumerate(("z", "r")):
            qh = fc_q(inp[rec.GRZ + k], None, hq) if q else None
            rec_part = b.fc(h, inp[rec.GRZ + k], None, f"{gate}_h{t}", qh)
            pre_q = _pre_activation(f_op, gx_range[k] + float(qh.s) * 127) if q else None
            pre = b.binary("ADD", gx[k][t], rec_part, f"{gate}_pre{t}", pre_q)
            gates.append(b.unary(f_op, pre, f"{gate}{t}", fixed_f))
        z, r = gates
        if lbr:
            qh = fc_q(inp[rec.GRH], rbh, hq) if q else None
            hh = b.fc(h, inp[rec.GRH], rbh, f"hh{t}", qh)
            rec_part = b.binary("MUL", r, hh, f"r_hh{t}", qh)
        else:
            rh = b.binary("MUL", r, h, f"r_h{t}", hq)
            qh = fc_q(inp[rec.GRH], rbh if q else None, hq) if q else None
            rec_part = b.fc(rh, inp[rec.GRH], rbh if q else None, f"rh_R{t}", qh)
        pre_q = _pre_activation(g_op, gx_range[2] + float(qh.s) * 127) if q and qh else None
        pre = b.binary("ADD", gx[2][t], rec_part, f"n_pre{t}", pre_q)
        n = b.unary(g_op, pre, f"n{t}", fixed_g)
        # h' = (1 - z) n + z h = n + z (h - n)
        n_lo, n_hi = (-1.0, 1.0) if g_op == "TANH" else (0.0, 1.0)
        d_q = _asym(h_lo - n_hi, h_hi - n_lo) if q else None
        diff = b.binary("SUB", h, n, f"h_minus_n{t}", d_q)
        zd = b.binary("MUL", z, diff, f"z_h_minus_n{t}", d_q)
        out_name = _final_name(s, last)
        h = b.binary("ADD", n, zd, f"h{t}", hq, name=out_name)
        hs[t] = h
    _epilogue(s, hs, h, var)
    lowered = Lowered(b.nodes)
    _note(node, lowered, d.time, q)
    return lowered


def lower_rnn(node: Node, g: Graph) -> Lowered:
    """RNN -> TFLM operators, unrolled (see the module docstring)."""
    s = _prologue(node, g)
    b, d = s.b, s.dims
    q = b.quantized
    op = get_op("RNN")
    op.check(node, g)
    inp = [node.inputs[i] if i < len(node.inputs) else "" for i in range(6)]
    (act_name,) = op.activation_names(node)  # type: ignore[attr-defined]
    act = _act_op(node, act_name)
    if not q:
        _float_checks(node, g)
    xq = g.tensors[inp[rec.NX]].quant
    hq = None
    if q:
        h0 = g.inp(node, rec.NH0)
        hq = h0.quant if h0 is not None else g.tensors[node.outputs[0]].quant
        assert hq is not None
    h, var = _initial_state(s, rec.NH0, hq)
    h_lo, h_hi = _real_range(hq) if hq is not None else (0.0, 0.0)
    # Relu has no saturation: the range of each part is bounded by the weights and by a few
    # times the state's range (beyond it the sum is clipped to the state anyway)
    cap = GATE_RANGE if act != "RELU" else 4 * max(abs(h_lo), abs(h_hi))

    if q:
        bias = inp[rec.NB] or None
        qx = _sym(min(cap, _fc_bound(g, inp[rec.NW], bias, xq)))
        qh = _sym(min(cap, _fc_bound(g, inp[rec.NR], None, hq)))
    else:
        bias = _add_biases(b, (inp[rec.NB], inp[rec.NRB]), d.hidden, "bias")
        qx = qh = None
    gx = _input_projection(s, inp[rec.NW], bias, "w", qx)
    pre_q = _pre_activation(act, float(qx.s + qh.s) * 127) if qx and qh else None
    if act == "RELU":
        pre_q = hq
    fixed = _fixed(LOGISTIC_Q if act == "LOGISTIC" else TANH_Q) if q else None
    hs: dict[int, str] = {}
    for n_step, t in enumerate(s.steps):
        last = n_step == len(s.steps) - 1
        out_name = _final_name(s, last)
        rec_part = b.fc(h, inp[rec.NR], None, f"h_R{t}", qh)
        if act == "RELU":
            h = b.binary("ADD", gx[t], rec_part, f"h{t}", hq, act="RELU", name=out_name)
        else:
            pre = b.binary("ADD", gx[t], rec_part, f"pre{t}", pre_q)
            if q and not (fixed and hq and fixed.same_as(hq)):
                a = b.unary(act, pre, f"act{t}", fixed)
                h = b.unary("QUANTIZE", a, f"h{t}", hq, name=out_name)
            else:
                h = b.unary(act, pre, f"h{t}", fixed, name=out_name)
        hs[t] = h
    _epilogue(s, hs, h, var)
    lowered = Lowered(b.nodes)
    _note(node, lowered, d.time, q)
    return lowered


LOWERINGS = {"GRU": lower_gru, "RNN": lower_rnn}


def lower_recurrent(g: Graph) -> tuple[Graph, list[str], bool]:
    """A copy of ``g`` with every GRU and RNN unrolled into TFLM operators; the notes for
    ``compile``, and whether int8 results changed (then the copy, not ``g``, is what the
    firmware computes)."""
    if not any(n.op in LOWERINGS for n in g.nodes):
        return g, [], False
    g = g.copy()
    nodes: list[Node] = []
    notes: list[str] = []
    changed = False
    for node in list(g.nodes):
        if node.op not in LOWERINGS:
            nodes.append(node)
            continue
        res = LOWERINGS[node.op](node, g)
        nodes.extend(res.nodes)
        if res.note:
            notes.append(res.note)
        changed |= res.changes_numerics
    g.nodes = nodes
    _drop_unused(g)
    return g, notes, changed


def _drop_unused(g: Graph) -> None:
    used = set(g.inputs) | set(g.outputs)
    for n in g.nodes:
        used.update(i for i in n.inputs if i)
        used.update(o for o in n.outputs if o)
    g.tensors = {k: v for k, v in g.tensors.items() if k in used}


def cmsis_nn_lstm_notes(g: Graph) -> list[str]:
    """What TFLM's int8 LSTM with CMSIS-NN kernels cannot do, checked on ``g``.

    TFLM 90b983c2's CMSIS-NN glue (kernels/cmsis_nn/unidirectional_sequence_lstm.cc) gives
    arm_lstm_unidirectional_s8 no hidden state and a scratch buffer as its cell state: every
    invocation starts from a zero state, and the variable tensors are neither read nor
    written (TFLM's reference kernels, which the tflite-micro Python package runs, do both).
    So an int8 LSTM whose initial state is not zero is refused, and a streaming one gets a
    note: the firmware agrees with tinyc on the first invocation after a reset only."""
    notes = []
    for node in g.nodes:
        if node.op != "LSTM" or not get_op("LSTM").quantized(node, g):
            continue
        where = f"LSTM node {node.name!r}"
        streaming = False
        for slot, what in ((rec.H0, "hidden"), (rec.C0, "cell")):
            t = g.inp(node, slot)
            if t is None:
                continue
            if t.variable:
                streaming = True
                continue
            zero = t.quant.zp if t.quant is not None else 0
            if t.data is not None and np.all(t.data == zero):
                continue
            raise UnsupportedError(
                f"{where}: TFLM's int8 LSTM kernel with CMSIS-NN starts every invocation from a "
                f"zero state and would ignore the initial {what} state {t.name!r} (TFLM's "
                "reference kernels honour it); no TFLM project for this layer"
            )
        if len(node.outputs) > 2 and node.outputs[2]:
            raise UnsupportedError(
                f"{where}: TFLM's int8 LSTM kernel with CMSIS-NN does not give its final cell "
                f"state (output {node.outputs[2]!r}); no TFLM project for this layer"
            )
        if streaming:
            notes.append(
                f"{where}: its state carries over from one invocation to the next in tinyc "
                "(and in TFLM's reference kernels), but TFLM's int8 LSTM kernel with CMSIS-NN "
                "starts every invocation from a zero state: the firmware agrees with tinyc on "
                "the first invocation after a reset only"
            )
    return notes

"""LSTM, GRU and RNN: recurrent layers over a whole sequence, with persistent state.

One op per cell kind; a layer runs one direction (a bidirectional layer is two ops). The
operands follow TFLite's UNIDIRECTIONAL_SEQUENCE_LSTM (one weight matrix per gate), so the
TFLite reader and writer map them one to one; ONNX and PyTorch frontends split their stacked
matrices into gates.

State: the initial hidden (and cell) state is an optional input. A state tensor
(``Tensor.variable``) there makes the layer *streaming*: the op starts from the state left
by the previous invocation and writes its final state back, as TFLite Micro does with
variable tensors; a constant, a graph input or nothing (zeros) starts every invocation
afresh. The whole-sequence result is the streaming result fed step by step (see
tinyc.passes.streaming).

int8 numerics:
- LSTM follows TFLite Micro's integer LSTM bit for bit (int8 activations and weights,
  per-tensor weight scales, gate pre-activations as int16 Q3.12, int16 sigmoid/tanh, an
  int16 cell state with a power-of-two scale);
- GRU and RNN (which TFLM has no kernel for) use the same building blocks: int8 x int8
  gate matrices into int16 Q3.12, TFLM's int16 sigmoid/tanh, products rescaled with
  TFLite's MultiplyByQuantizedMultiplier; the state is int8 with the output's parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from tinyc.errors import TinycError, UnsupportedError
from tinyc.ir import fixedpoint as fp
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops.base import OpDef, Spec, attr, register
from tinyc.ir.tensor import QuantParams, Tensor

GATE_SCALE_POWER = -12  # gate pre-activations: int16 Q3.12
GATE_OUT_SCALE = 2.0**-15  # sigmoid / tanh outputs: int16 Q0.15
INT16_MIN, INT16_MAX = -(1 << 15), (1 << 15) - 1


# -- activation functions (ONNX's list; int8 kernels exist for Sigmoid, Tanh, Relu) ----------


def _act_float(name: str, alpha: float | None, beta: float | None) -> Callable:
    a = alpha
    b = beta
    table: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "Sigmoid": lambda x: 0.5 * (1.0 + np.tanh(0.5 * x)),  # no overflow for large |x|
        "Tanh": np.tanh,
        "Relu": lambda x: np.maximum(x, 0.0),
        "HardSigmoid": lambda x: np.clip(
            (0.2 if a is None else a) * x + (0.5 if b is None else b), 0, 1
        ),
        "LeakyRelu": lambda x: np.where(x >= 0, x, (0.01 if a is None else a) * x),
        "ThresholdedRelu": lambda x: np.where(x > (1.0 if a is None else a), x, 0.0),
        "ScaledTanh": lambda x: (1.0 if a is None else a) * np.tanh((1.0 if b is None else b) * x),
        "Affine": lambda x: (1.0 if a is None else a) * x + (0.0 if b is None else b),
        "Elu": lambda x: np.where(x >= 0, x, (1.0 if a is None else a) * (np.exp(x) - 1.0)),
        "Softsign": lambda x: x / (1.0 + np.abs(x)),
        "Softplus": lambda x: np.log1p(np.exp(x)),
    }
    if name not in table:
        raise UnsupportedError(f"recurrent activation {name!r} is not supported")
    return table[name]


ACTIVATION_NAMES = (
    "Sigmoid",
    "Tanh",
    "Relu",
    "HardSigmoid",
    "LeakyRelu",
    "ThresholdedRelu",
    "ScaledTanh",
    "Affine",
    "Elu",
    "Softsign",
    "Softplus",
)


@dataclass(frozen=True)
class Dims:
    batch: int
    time: int
    input: int
    hidden: int  # cell / state units
    output: int  # hidden state width (== hidden without an LSTM projection)


def _seq_index(node: Node, dims: Dims, b: int, t: int) -> tuple[int, int]:
    """(axis-0 index, axis-1 index) of batch b, time t in a [B, T, .] or [T, B, .] tensor."""
    return (t, b) if attr(node, "time_major") else (b, t)


def _steps(node: Node, dims: Dims) -> range:
    return range(dims.time - 1, -1, -1) if attr(node, "reverse") else range(dims.time)


class _Recurrent(OpDef):
    """What the three cells share: shapes, state handling, costs."""

    optional_outputs = True

    #: the gates' names, in operand order
    gates: ClassVar[tuple[str, ...]]
    #: input slots: first input-side weight, first recurrent weight, state inputs
    w_slot: ClassVar[int] = 1
    r_slot: ClassVar[int]
    state_slots: ClassVar[tuple[int, ...]]
    #: output slots of the final states, in the order of state_slots
    final_slots: ClassVar[tuple[int, ...]]
    attrs: ClassVar[dict[str, Any]] = {
        "time_major": False,
        "reverse": False,
        "clip": 0.0,  # ONNX: bound on every activation's input (0: none)
        "activations": (),  # empty: the cell's defaults
        "activation_alpha": (),
        "activation_beta": (),
    }
    default_activations: ClassVar[tuple[str, ...]]

    # -- shapes ---------------------------------------------------------------------------
    def dims(self, node: Node, g: Graph) -> Dims:
        x = g.inp(node, 0)
        w = g.inp(node, self.w_slot)
        r = g.inp(node, self.r_slot)
        if x is None or w is None or r is None:
            raise TinycError(f"node {node.name!r} ({node.op}) needs an input and its weights")
        if len(x.shape) != 3:
            raise TinycError(
                f"node {node.name!r} ({node.op}): the input must be 3-D [batch, time, features] "
                f"or [time, batch, features], not {list(x.shape)}"
            )
        t, b = (x.shape[0], x.shape[1]) if attr(node, "time_major") else x.shape[1::-1]
        hidden, out = w.shape[0], r.shape[1]
        return Dims(b, t, x.shape[2], hidden, out)

    def state_shape(self, node: Node, dims: Dims, slot: int) -> tuple[int, int]:
        return (dims.batch, dims.output)

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        d = self.dims(node, g)
        self.check_operands(node, g, d)
        seq = (
            (d.time, d.batch, d.output) if attr(node, "time_major") else (d.batch, d.time, d.output)
        )
        shapes = [seq] + [self.state_shape(node, d, s) for s in self.state_slots]
        x = g.inp(node, 0)
        assert x is not None
        return [
            (shape, g.tensors[name].dtype if name else x.dtype)
            for shape, name in zip(shapes, node.outputs, strict=False)
        ]

    def check_operands(self, node: Node, g: Graph, d: Dims) -> None:
        for k in range(len(self.gates)):
            for slot, cols in ((self.w_slot + k, d.input), (self.r_slot + k, d.output)):
                t = g.inp(node, slot)
                if t is None:
                    raise UnsupportedError(
                        f"node {node.name!r} ({node.op}): gate {self.gates[k]!r} has no weights"
                    )
                if t.shape != (d.hidden, cols):
                    raise TinycError(
                        f"node {node.name!r} ({node.op}): weights {t.name!r} are "
                        f"{list(t.shape)}, expected {[d.hidden, cols]}"
                    )
        for slot in self.state_slots:
            s = g.inp(node, slot)
            if s is not None and s.size != d.batch * self.state_shape(node, d, slot)[1]:
                raise TinycError(
                    f"node {node.name!r} ({node.op}): state {s.name!r} has {s.size} values, "
                    f"expected {d.batch * self.state_shape(node, d, slot)[1]}"
                )

    def activation_fns(self, node: Node) -> list[Callable]:
        names = tuple(attr(node, "activations")) or self.default_activations
        alphas = tuple(attr(node, "activation_alpha"))
        betas = tuple(attr(node, "activation_beta"))
        return [
            _act_float(
                n, alphas[i] if i < len(alphas) else None, betas[i] if i < len(betas) else None
            )
            for i, n in enumerate(names)
        ]

    def activation_names(self, node: Node) -> tuple[str, ...]:
        return tuple(attr(node, "activations")) or self.default_activations

    # -- evaluation -----------------------------------------------------------------------
    def initial_states(self, node: Node, g: Graph, xs: list, d: Dims, dtype) -> list[np.ndarray]:
        states = []
        for slot in self.state_slots:
            shape = self.state_shape(node, d, slot)
            v = xs[slot] if slot < len(xs) else None
            if v is None:
                states.append(np.zeros(shape, dtype))
            else:
                states.append(np.asarray(v).reshape(shape).copy())
        return states

    def evaluate(self, node: Node, g: Graph, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        outs, finals = super().evaluate(node, g, xs)
        # A state tensor is updated in place: the next invocation starts from here.
        for slot, value in zip(self.state_slots, finals, strict=True):
            t = g.inp(node, slot)
            if t is not None and t.variable and xs[slot] is not None:
                xs[slot][...] = value.reshape(xs[slot].shape)
        return outs

    def _assemble(self, node: Node, g: Graph, seq: np.ndarray, finals: list[np.ndarray]):
        outs: list[np.ndarray] = [seq]
        for k, name in enumerate(node.outputs[1:]):
            outs.append(finals[k] if name else np.zeros(0))
        return outs, finals

    # -- quantization ---------------------------------------------------------------------
    def quantized(self, node: Node, g: Graph) -> bool:
        x = g.inp(node, 0)
        return x is not None and x.is_quantized

    def quant_ties(self, node: Node, g: Graph) -> list[list[str]]:
        """The hidden state, the sequence output and the final hidden state share one set
        of int8 parameters (the state is fed back as the next step's input)."""
        members = [f"{node.name}#h", *(o for o in node.outputs[:2] if o)]
        h0 = g.inp(node, self.state_slots[0])
        if h0 is not None and not h0.is_const:
            members.append(h0.name)
        return [members]

    def bias_plan(self, node: Node) -> list[tuple[tuple[int, ...], int | None]]:
        """Per gate: the bias slots added into the input-side bias (the first one holds the
        sum), and the recurrent-side bias slot kept apart (None when there is none)."""
        raise NotImplementedError

    def quantize_node(self, node: Node, ctx: Any) -> Node:
        """Per-tensor symmetric int8 weights per gate (what TFLM's LSTM takes), int32 biases
        at input scale x weight scale (recurrent biases folded in where the cell allows),
        the hidden state int8 with the output's parameters; see quantize_states."""
        f: Graph = ctx.f
        x = ctx.q.tensors[node.inputs[0]]
        if x.quant is None or x.dtype != "int8":
            raise UnsupportedError(f"node {node.name!r} ({node.op}): the input is not int8")
        hq = ctx.params_of(f"{node.name}#h")
        hidden = self.dims(node, f).hidden
        ins = list(node.inputs) + [""] * (24 - len(node.inputs))
        for k, (summed, kept) in enumerate(self.bias_plan(node)):
            w_name, r_name = ins[self.w_slot + k], ins[self.r_slot + k]
            for name in (w_name, r_name):
                if not f.tensors[name].is_const:
                    raise UnsupportedError(
                        f"node {node.name!r} ({node.op}): int8 needs constant weights; "
                        f"{name!r} is computed at run time"
                    )
            bias = _const_sum(f, [ins[s] for s in summed])
            rbias = _const_sum(f, [ins[kept]]) if kept is not None else None
            ins[self.w_slot + k], wq = ctx.symmetric_weight(w_name, x.quant.s, bias)
            ins[self.r_slot + k], rq = ctx.symmetric_weight(r_name, hq.s, rbias)
            for slot in summed[1:]:
                ins[slot] = ""
            gate = self.gates[k]
            if bias is not None or self.kind == "LSTM":  # TFLM's LSTM needs every bias
                values = bias if bias is not None else np.zeros(hidden, np.float32)
                scale = np.float32(x.quant.s * wq.s)
                ins[summed[0]] = ctx.int32_bias(f"{node.name}/bias_{gate}", values, scale)
            if kept is not None:
                ins[kept] = (
                    ctx.int32_bias(f"{node.name}/rbias_{gate}", rbias, np.float32(hq.s * rq.s))
                    if rbias is not None
                    else ""
                )
        self.quantize_states(node, ctx, ins, hq)
        while ins and not ins[-1]:
            ins.pop()
        return Node(node.op, node.name, ins, list(node.outputs), dict(node.attrs))

    def quantize_states(self, node: Node, ctx: Any, ins: list[str], hq) -> None:
        """The initial hidden state at the hidden state's parameters."""
        slot = self.state_slots[0]
        name = ins[slot]
        if name and ctx.f.tensors[name].is_const:
            ins[slot] = ctx.quantized_const(name, "int8", hq)

    # -- costs ----------------------------------------------------------------------------
    def macs(self, node: Node, g: Graph) -> int:
        d = self.dims(node, g)
        per_step = len(self.gates) * d.hidden * (d.input + d.output)
        return d.batch * d.time * per_step

    def bytes_moved(self, node: Node, g: Graph) -> tuple[int, int]:
        read = sum(g.tensors[i].nbytes for i in node.inputs if i)
        written = sum(g.tensors[o].nbytes for o in node.outputs if o)
        return read, written

    def internals(self, node: Node, g: Graph, xs: list) -> dict[str, np.ndarray]:
        """Values inside the layer that calibration needs (see tinyc.passes.calibration)."""
        return {}


def cell_state_params(max_abs: float) -> QuantParams:
    """The int16 cell state's parameters: symmetric, the smallest power-of-two scale whose
    int16 range covers ``max_abs`` (TFLM's integer LSTM needs a power of two), at most
    2^-15 fine."""
    need = max(float(max_abs), 1e-9) / 32767.0
    power = max(-15, int(np.ceil(np.log2(need))))
    return QuantParams(np.float32(2.0**power), 0)


def _hidden_output(node: Node, g: Graph) -> Tensor:
    """The sequence output, or the final hidden state when the sequence is not used."""
    for name in node.outputs[:2]:
        if name:
            return g.tensors[name]
    raise TinycError(f"node {node.name!r} ({node.op}) has no output")


def _const_sum(g: Graph, names: list[str]) -> np.ndarray | None:
    """The sum of the given constant float tensors ("" skipped), or None when none."""
    present = [g.tensors[n] for n in names if n]
    for t in present:
        if not t.is_const:
            raise UnsupportedError(f"bias {t.name!r} must be a constant for int8")
    if not present:
        return None
    return np.sum([t.data.astype(np.float64) for t in present], axis=0).astype(np.float32)


def _w(xs: list, slot: int) -> np.ndarray | None:
    v = xs[slot] if slot < len(xs) else None
    return None if v is None else np.asarray(v, np.float64)


def _gate_int16(
    acc_x: np.ndarray, acc_h: np.ndarray, mx: tuple[int, int], mh: tuple[int, int]
) -> np.ndarray:
    """A gate's pre-activation as TFLM's LSTM makes it: the input and the recurrent
    products each requantized to int16 Q3.12 (saturating), then added (saturating)."""
    vx = np.clip(fp.multiply_by_quantized_multiplier(acc_x, *mx), INT16_MIN, INT16_MAX)
    vh = np.clip(fp.multiply_by_quantized_multiplier(acc_h, *mh), INT16_MIN, INT16_MAX)
    return np.clip(vx + vh, INT16_MIN, INT16_MAX)


def _peep(v: np.ndarray, peephole: np.ndarray | None, cell: np.ndarray) -> np.ndarray:
    return v if peephole is None else v + peephole * cell


def _clip(x: np.ndarray, clip: float) -> np.ndarray:
    return np.clip(x, -clip, clip) if clip > 0 else x


# -- LSTM -----------------------------------------------------------------------------------

X, WI, WF, WC, WO, RI, RF, RC, RO, PI, PF, PO, BI, BF, BC, BO, PW, PB, H0, C0 = range(20)


@dataclass
class _LstmQuant:
    """TFLM's LSTM integer parameters, as its Prepare computes them."""

    x_zp: int
    h_zp: int
    gate_x: list[tuple[int, int]]  # (multiplier, shift) per gate i, f, c, o
    gate_h: list[tuple[int, int]]
    cell_power: int
    cell_clip: int  # quantized, 0: no clipping
    forget_mul: tuple[int, int]
    input_mul: tuple[int, int]
    output_mul: tuple[int, int]


@register
class Lstm(_Recurrent):
    """LSTM: gates input (i), forget (f), cell (c), output (o); operands in TFLite's order
    (x, W_i..W_o, R_i..R_o, peepholes, biases, projection, h0, c0). ``cell_clip`` bounds
    the cell state, ``proj_clip`` the projection (TFLite); outputs: the whole sequence, and
    optionally the final hidden and cell states."""

    kind = "LSTM"
    gates = ("input", "forget", "cell", "output")
    r_slot = RI
    state_slots = (H0, C0)
    default_activations = ("Sigmoid", "Tanh", "Tanh")
    attrs = {**_Recurrent.attrs, "cell_clip": 0.0, "proj_clip": 0.0}

    def dims(self, node: Node, g: Graph) -> Dims:
        d = super().dims(node, g)
        pw = g.inp(node, PW)
        if pw is not None:
            if pw.shape[1] != d.hidden:
                raise TinycError(
                    f"node {node.name!r}: projection {list(pw.shape)} for {d.hidden} cells"
                )
            return Dims(d.batch, d.time, d.input, d.hidden, pw.shape[0])
        r = g.inp(node, RI)
        assert r is not None
        if r.shape[1] != d.hidden:
            raise TinycError(
                f"node {node.name!r}: recurrent weights {list(r.shape)} need a projection"
            )
        return d

    def state_shape(self, node: Node, dims: Dims, slot: int) -> tuple[int, int]:
        return (dims.batch, dims.hidden if slot == C0 else dims.output)

    def bias_plan(self, node: Node) -> list[tuple[tuple[int, ...], int | None]]:
        return [((BI + k,), None) for k in range(4)]

    def quantize_states(self, node: Node, ctx: Any, ins: list[str], hq) -> None:
        """TFLM's LSTM keeps both states: the hidden state int8 (zero where the model gives
        none), the cell state int16 with the power-of-two scale that covers the largest
        cell value calibration saw."""
        super().quantize_states(node, ctx, ins, hq)
        d = self.dims(node, ctx.f)
        if not ins[H0]:
            zeros = np.full((d.batch, d.output), hq.zp, np.int8)
            ins[H0] = ctx.new_const(f"{node.name}/h0", zeros, "int8", hq)
        cq = cell_state_params(ctx.max_abs(f"{node.name}#c"))
        name = ins[C0]
        if not name:
            ins[C0] = ctx.new_const(
                f"{node.name}/c0", np.zeros((d.batch, d.hidden), np.int16), "int16", cq
            )
        elif ctx.f.tensors[name].is_const:
            ins[C0] = ctx.quantized_const(name, "int16", cq)
        elif ctx.f.tensors[name].variable:
            ctx.retype(name, "int16", cq)
        else:
            raise UnsupportedError(
                f"node {node.name!r} (LSTM): an int8 LSTM cannot take its initial cell state "
                "as a model input (make it a state or a constant)"
            )
        if len(node.outputs) > 2 and node.outputs[2]:
            ctx.retype(node.outputs[2], "int16", cq)

    def macs(self, node: Node, g: Graph) -> int:
        d = self.dims(node, g)
        proj = d.hidden * d.output if g.inp(node, PW) is not None else 0
        return d.batch * d.time * (4 * d.hidden * (d.input + d.output) + proj)

    # -- float ----------------------------------------------------------------------------
    def _run_float(self, node: Node, g: Graph, xs: list, trace: dict | None = None):
        d = self.dims(node, g)
        f_act, g_act, h_act = self.activation_fns(node)
        clip = float(attr(node, "clip"))
        cell_clip, proj_clip = float(attr(node, "cell_clip")), float(attr(node, "proj_clip"))
        x = np.asarray(xs[X], np.float64)
        W = [_w(xs, WI + k) for k in range(4)]
        R = [_w(xs, RI + k) for k in range(4)]
        P = [_w(xs, s) for s in (PI, PF, PO)]
        B = [_w(xs, BI + k) for k in range(4)]
        pw, pb = _w(xs, PW), _w(xs, PB)
        h, c = (s.astype(np.float64) for s in self.initial_states(node, g, xs, d, np.float32))
        seq = np.zeros(self.infer(node, g)[0][0], np.float64)
        hs, cs = [], []
        for t in _steps(node, d):
            xt = x[t] if attr(node, "time_major") else x[:, t]

            mixed = [xt @ W[k].T + h @ R[k].T + (0.0 if B[k] is None else B[k]) for k in range(4)]

            i = f_act(_clip(_peep(mixed[0], P[0], c), clip))
            f = f_act(_clip(_peep(mixed[1], P[1], c), clip))
            gg = g_act(_clip(mixed[2], clip))
            c = f * c + i * gg
            if cell_clip > 0:
                c = np.clip(c, -cell_clip, cell_clip)
            o = f_act(_clip(_peep(mixed[3], P[2], c), clip))
            h = o * h_act(_clip(c, clip))
            if pw is not None:
                h = h @ pw.T + (pb if pb is not None else 0.0)
                if proj_clip > 0:
                    h = np.clip(h, -proj_clip, proj_clip)
            if attr(node, "time_major"):
                seq[t] = h
            else:
                seq[:, t] = h
            hs.append(h)
            cs.append(c)
        if trace is not None:
            trace["h"] = np.stack(hs) if hs else h[None]
            trace["c"] = np.stack(cs) if cs else c[None]
        return seq, [h, c]

    def eval_float(self, node, g, xs):
        seq, finals = self._run_float(node, g, xs)
        f32 = [v.astype(np.float32) for v in finals]
        return self._assemble(node, g, seq.astype(np.float32), f32)

    def internals(self, node, g, xs):
        trace: dict[str, np.ndarray] = {}
        self._run_float(node, g, xs, trace)
        return trace

    # -- int8 (TFLM's int8x8_16 kernel) -------------------------------------------------------
    def check(self, node: Node, g: Graph) -> None:
        names = self.activation_names(node)
        if len(names) != 3:
            raise UnsupportedError(
                f"node {node.name!r} (LSTM): needs 3 activations, has {list(names)}"
            )
        if not self.quantized(node, g):
            return
        if names != ("Sigmoid", "Tanh", "Tanh") and names != ("Sigmoid", "Sigmoid", "Tanh"):
            raise UnsupportedError(
                f"node {node.name!r} (LSTM): int8 LSTMs take the activations (Sigmoid, Tanh, "
                f"Tanh), not {list(names)}"
            )
        for slot, what in ((PI, "peepholes"), (PW, "a projection")):
            if g.inp(node, slot) is not None:
                raise UnsupportedError(f"node {node.name!r} (LSTM): int8 LSTMs with {what}")
        if float(attr(node, "clip")) > 0:
            raise UnsupportedError(f"node {node.name!r} (LSTM): int8 LSTMs with an activation clip")
        self.quant_params(node, g)

    def quant_params(self, node: Node, g: Graph) -> _LstmQuant:
        x, h, c = g.inp(node, X), g.inp(node, H0), g.inp(node, C0)
        y = _hidden_output(node, g)
        where = f"node {node.name!r} (LSTM)"
        if x is None or x.dtype != "int8" or x.quant is None:
            raise UnsupportedError(f"{where}: int8 LSTMs need an int8 input")
        if h is None or c is None or not (h.is_quantized and c.is_quantized):
            raise UnsupportedError(f"{where}: int8 LSTMs need quantized hidden and cell states")
        if h.dtype != "int8" or c.dtype != "int16":
            raise UnsupportedError(
                f"{where}: int8 LSTMs keep an int8 hidden state and an int16 cell state, not "
                f"{h.dtype} and {c.dtype}"
            )
        assert h.quant is not None and c.quant is not None
        if y is not None and not (y.quant is not None and y.quant.same_as(h.quant)):
            raise UnsupportedError(
                f"{where}: the output must share the hidden state's quantization"
            )
        if c.quant.zp != 0:
            raise UnsupportedError(f"{where}: the cell state must be symmetric")
        power = int(np.round(np.log2(float(c.quant.s))))
        if 2.0**power != float(c.quant.s):
            raise UnsupportedError(f"{where}: the cell state scale must be a power of two")
        gate_scale = np.float32(2.0**GATE_SCALE_POWER)

        def fc(inp: Tensor, slot: int) -> tuple[int, int]:
            w = g.inp(node, slot)
            assert w is not None and inp.quant is not None
            if w.dtype != "int8" or w.quant is None or w.quant.per_channel or w.quant.zp != 0:
                raise UnsupportedError(
                    f"{where}: gate weights {w.name!r} must be int8, symmetric and per tensor"
                )
            return fp.quantize_multiplier(
                float(np.float32(inp.quant.s * w.quant.s)) / float(gate_scale)
            )

        for k in range(4):
            b = g.inp(node, BI + k)
            if b is None or b.dtype != "int32":
                raise UnsupportedError(f"{where}: int8 LSTMs need int32 gate biases")
        clip = float(attr(node, "cell_clip"))
        qclip = int(min(max(clip / float(c.quant.s), -32768.0), 32767.0)) if clip > 0 else 0

        def mul(s1: float, s2: float, so: float) -> tuple[int, int]:
            return fp.quantize_multiplier(float(np.float32(s1)) * float(np.float32(s2)) / float(so))

        return _LstmQuant(
            x_zp=x.quant.zp,
            h_zp=h.quant.zp,
            gate_x=[fc(x, WI + k) for k in range(4)],
            gate_h=[fc(h, RI + k) for k in range(4)],
            cell_power=power,
            cell_clip=qclip,
            forget_mul=mul(GATE_OUT_SCALE, float(c.quant.s), float(c.quant.s)),
            input_mul=mul(GATE_OUT_SCALE, GATE_OUT_SCALE, float(c.quant.s)),
            output_mul=mul(GATE_OUT_SCALE, GATE_OUT_SCALE, float(h.quant.s)),
        )

    def eval_quant(self, node, g, xs):
        q = self.quant_params(node, g)
        d = self.dims(node, g)
        h_all, c_all = self.initial_states(node, g, xs, d, np.int64)
        h_all, c_all = h_all.astype(np.int64), c_all.astype(np.int64)
        W = [xs[WI + k].astype(np.int64) for k in range(4)]
        R = [xs[RI + k].astype(np.int64) for k in range(4)]
        B = [xs[BI + k].astype(np.int64) for k in range(4)]
        gate_act = self.activation_names(node)[1]
        tanh_mult, tanh_shift = fp.lstm_tanh_params(q.cell_power)
        x = xs[X].astype(np.int64)
        seq = np.zeros(self.infer(node, g)[0][0], np.int64)
        for t in _steps(node, d):
            xt = x[t] if attr(node, "time_major") else x[:, t]
            h, c = h_all, c_all
            pre = [
                _gate_int16(
                    (xt - q.x_zp) @ W[k].T + B[k], (h - q.h_zp) @ R[k].T, q.gate_x[k], q.gate_h[k]
                )
                for k in range(4)
            ]
            f = fp.sigmoid_int16(pre[1])
            i = fp.sigmoid_int16(pre[0])
            gg = pre[2]
            gg = fp.tanh_int16(gg) if gate_act == "Tanh" else fp.sigmoid_int16(gg)
            fc_ = np.clip(
                fp.multiply_by_quantized_multiplier(f * c, *q.forget_mul), INT16_MIN, INT16_MAX
            )
            ig = np.clip(
                fp.multiply_by_quantized_multiplier(i * gg, *q.input_mul), INT16_MIN, INT16_MAX
            )
            c = np.clip(fc_ + ig, INT16_MIN, INT16_MAX)
            if q.cell_clip:
                c = np.clip(c, -q.cell_clip, q.cell_clip)
            o = fp.sigmoid_int16(pre[3])
            tc = fp.tanh_int16(c, tanh_mult, tanh_shift)
            h = np.clip(
                fp.multiply_by_quantized_multiplier(tc * o, *q.output_mul) + q.h_zp, -128, 127
            )
            h_all, c_all = h, c
            if attr(node, "time_major"):
                seq[t] = h
            else:
                seq[:, t] = h
        finals = [h_all.astype(np.int8), c_all.astype(np.int16)]
        return self._assemble(node, g, seq.astype(np.int8), finals)


# -- GRU ------------------------------------------------------------------------------------

GX, GWZ, GWR, GWH, GRZ, GRR, GRH, GBZ, GBR, GBH, GRBZ, GRBR, GRBH, GH0 = range(14)


@dataclass
class _GruQuant:
    x_zp: int
    h_zp: int
    gate_x: list[tuple[int, int]]  # z, r, h
    gate_h: list[tuple[int, int]]
    reset_mul: tuple[int, int]  # r * (h - zp) -> int8 at h's scale (lbr=0), or r * hh (lbr=1)
    keep_mul: tuple[int, int]  # (1 - z) * n -> h
    update_mul: tuple[int, int]  # z * (h - zp) -> h


@register
class Gru(_Recurrent):
    """GRU (ONNX's definition): update gate z, reset gate r, candidate h~;
    ``linear_before_reset`` applies r after the recurrent matrix (PyTorch's form).
    Operands: x, W_z, W_r, W_h, R_z, R_r, R_h, input biases (z, r, h), recurrent biases
    (z, r, h), h0; outputs: the whole sequence and optionally the final state."""

    kind = "GRU"
    #: TFLM has no GRU kernel: the integer arithmetic is tinyc's (see the module docstring)
    int8_semantics = "tinyc"
    gates = ("update", "reset", "hidden")
    r_slot = GRZ
    state_slots = (GH0,)
    default_activations = ("Sigmoid", "Tanh")
    attrs = {**_Recurrent.attrs, "linear_before_reset": False}

    def bias_plan(self, node: Node) -> list[tuple[tuple[int, ...], int | None]]:
        # z and r: Wb + Rb is one constant; h: Rb stays apart when r multiplies it
        if attr(node, "linear_before_reset"):
            hidden: tuple[tuple[int, ...], int | None] = ((GBH,), GRBH)
        else:
            hidden = ((GBH, GRBH), None)
        return [((GBZ, GRBZ), None), ((GBR, GRBR), None), hidden]

    def _run_float(self, node: Node, g: Graph, xs: list, trace: dict | None = None):
        d = self.dims(node, g)
        f_act, g_act = self.activation_fns(node)
        clip = float(attr(node, "clip"))
        lbr = bool(attr(node, "linear_before_reset"))
        x = np.asarray(xs[GX], np.float64)
        W = [_w(xs, GWZ + k) for k in range(3)]
        R = [_w(xs, GRZ + k) for k in range(3)]
        zero = np.zeros(d.hidden)
        Wb = [_w(xs, GBZ + k) if _w(xs, GBZ + k) is not None else zero for k in range(3)]
        Rb = [_w(xs, GRBZ + k) if _w(xs, GRBZ + k) is not None else zero for k in range(3)]
        (h,) = (s.astype(np.float64) for s in self.initial_states(node, g, xs, d, np.float32))
        seq = np.zeros(self.infer(node, g)[0][0], np.float64)
        hs = []
        for t in _steps(node, d):
            xt = x[t] if attr(node, "time_major") else x[:, t]
            z = f_act(_clip(xt @ W[0].T + h @ R[0].T + Wb[0] + Rb[0], clip))
            r = f_act(_clip(xt @ W[1].T + h @ R[1].T + Wb[1] + Rb[1], clip))
            if lbr:
                n = g_act(_clip(xt @ W[2].T + r * (h @ R[2].T + Rb[2]) + Wb[2], clip))
            else:
                n = g_act(_clip(xt @ W[2].T + (r * h) @ R[2].T + Rb[2] + Wb[2], clip))
            h = (1.0 - z) * n + z * h
            if attr(node, "time_major"):
                seq[t] = h
            else:
                seq[:, t] = h
            hs.append(h)
        if trace is not None:
            trace["h"] = np.stack(hs) if hs else h[None]
        return seq, [h]

    def eval_float(self, node, g, xs):
        seq, finals = self._run_float(node, g, xs)
        return self._assemble(
            node, g, seq.astype(np.float32), [f.astype(np.float32) for f in finals]
        )

    def internals(self, node, g, xs):
        trace: dict[str, np.ndarray] = {}
        self._run_float(node, g, xs, trace)
        return trace

    def check(self, node: Node, g: Graph) -> None:
        names = self.activation_names(node)
        if len(names) != 2:
            raise UnsupportedError(
                f"node {node.name!r} (GRU): needs 2 activations, has {list(names)}"
            )
        if not self.quantized(node, g):
            return
        if names != ("Sigmoid", "Tanh"):
            raise UnsupportedError(
                f"node {node.name!r} (GRU): int8 GRUs take the activations (Sigmoid, Tanh), "
                f"not {list(names)}"
            )
        if float(attr(node, "clip")) > 0:
            raise UnsupportedError(f"node {node.name!r} (GRU): int8 GRUs with an activation clip")
        self.quant_params(node, g)

    def quant_params(self, node: Node, g: Graph) -> _GruQuant:
        x, h = g.inp(node, GX), g.inp(node, GH0)
        y = _hidden_output(node, g)
        where = f"node {node.name!r} (GRU)"
        if x is None or x.dtype != "int8" or x.quant is None:
            raise UnsupportedError(f"{where}: int8 GRUs need an int8 input")
        hq = h.quant if h is not None else y.quant
        if hq is None or (h is not None and h.dtype != "int8"):
            raise UnsupportedError(f"{where}: int8 GRUs keep an int8 hidden state")
        if not (y.quant is not None and y.quant.same_as(hq)):
            raise UnsupportedError(
                f"{where}: the output must share the hidden state's quantization"
            )
        gate = float(np.float32(2.0**GATE_SCALE_POWER))

        def fc(in_scale: float, slot: int) -> tuple[int, int]:
            w = g.inp(node, slot)
            assert w is not None
            if w.dtype != "int8" or w.quant is None or w.quant.per_channel or w.quant.zp != 0:
                raise UnsupportedError(
                    f"{where}: gate weights {w.name!r} must be int8, symmetric and per tensor"
                )
            return fp.quantize_multiplier(
                float(np.float32(np.float32(in_scale) * w.quant.s)) / gate
            )

        for slot in (GBZ, GBR, GBH, GRBH):
            b = g.inp(node, slot)
            if b is not None and b.dtype != "int32":
                raise UnsupportedError(f"{where}: int8 GRUs need int32 biases")
        for slot in (GRBZ, GRBR):
            if g.inp(node, slot) is not None:
                raise UnsupportedError(
                    f"{where}: int8 GRUs fold the recurrent z and r biases into the input biases"
                )
        sh = float(hq.s)
        return _GruQuant(
            x_zp=x.quant.zp,
            h_zp=hq.zp,
            gate_x=[fc(float(x.quant.s), GWZ + k) for k in range(3)],
            gate_h=[fc(sh, GRZ + k) for k in range(3)],
            # r * hh (Q3.12) stays Q3.12 (lbr); r * (h - zp) stays at h's scale (no lbr)
            reset_mul=fp.quantize_multiplier(GATE_OUT_SCALE),
            keep_mul=fp.quantize_multiplier(GATE_OUT_SCALE * GATE_OUT_SCALE / sh),
            update_mul=fp.quantize_multiplier(GATE_OUT_SCALE),
        )

    def eval_quant(self, node, g, xs):
        q = self.quant_params(node, g)
        d = self.dims(node, g)
        lbr = bool(attr(node, "linear_before_reset"))
        (h,) = self.initial_states(node, g, xs, d, np.int64)
        if g.inp(node, GH0) is None:
            h = np.full(h.shape, q.h_zp, np.int64)
        h = h.astype(np.int64)
        W = [xs[GWZ + k].astype(np.int64) for k in range(3)]
        R = [xs[GRZ + k].astype(np.int64) for k in range(3)]
        zero = np.zeros(d.hidden, np.int64)
        Bx = [
            xs[GBZ + k].astype(np.int64) if _w(xs, GBZ + k) is not None else zero for k in range(3)
        ]
        Rbh = xs[GRBH].astype(np.int64) if _w(xs, GRBH) is not None else zero
        x = xs[GX].astype(np.int64)
        seq = np.zeros(self.infer(node, g)[0][0], np.int64)

        def rq16(acc: np.ndarray, m: tuple[int, int]) -> np.ndarray:
            return np.clip(fp.multiply_by_quantized_multiplier(acc, *m), INT16_MIN, INT16_MAX)

        for t in _steps(node, d):
            xt = x[t] if attr(node, "time_major") else x[:, t]
            xc, hc = xt - q.x_zp, h - q.h_zp
            z, r = (
                fp.sigmoid_int16(
                    _gate_int16(xc @ W[k].T + Bx[k], hc @ R[k].T, q.gate_x[k], q.gate_h[k])
                )
                for k in range(2)
            )
            vx = rq16(xc @ W[2].T + Bx[2], q.gate_x[2])
            if lbr:
                hh = rq16(hc @ R[2].T + Rbh, q.gate_h[2])
                rhh = rq16(r * hh, q.reset_mul)
                n = fp.tanh_int16(np.clip(vx + rhh, INT16_MIN, INT16_MAX))
            else:
                rh = np.clip(
                    fp.multiply_by_quantized_multiplier(r * hc, *q.reset_mul),
                    -128 - q.h_zp,
                    127 - q.h_zp,
                )
                vh = rq16(rh @ R[2].T + Rbh, q.gate_h[2])
                n = fp.tanh_int16(np.clip(vx + vh, INT16_MIN, INT16_MAX))
            keep = fp.multiply_by_quantized_multiplier((32768 - z) * n, *q.keep_mul)
            upd = fp.multiply_by_quantized_multiplier(z * hc, *q.update_mul)
            h = np.clip(keep + upd + q.h_zp, -128, 127)
            if attr(node, "time_major"):
                seq[t] = h
            else:
                seq[:, t] = h
        return self._assemble(node, g, seq.astype(np.int8), [h.astype(np.int8)])


# -- RNN ------------------------------------------------------------------------------------

NX, NW, NR, NB, NRB, NH0 = range(6)


@register
class Rnn(_Recurrent):
    """Simple RNN (ONNX's definition): h = f(W x + R h + Wb + Rb).
    Operands: x, W, R, input bias, recurrent bias, h0."""

    kind = "RNN"
    #: TFLM has no RNN kernel: the integer arithmetic is tinyc's (see the module docstring)
    int8_semantics = "tinyc"
    gates = ("hidden",)
    r_slot = NR
    state_slots = (NH0,)
    default_activations = ("Tanh",)

    def bias_plan(self, node: Node) -> list[tuple[tuple[int, ...], int | None]]:
        return [((NB, NRB), None)]

    def _run_float(self, node: Node, g: Graph, xs: list, trace: dict | None = None):
        d = self.dims(node, g)
        (f_act,) = self.activation_fns(node)
        clip = float(attr(node, "clip"))
        x = np.asarray(xs[NX], np.float64)
        W, R = _w(xs, NW), _w(xs, NR)
        zero = np.zeros(d.hidden)
        b = (_w(xs, NB) if _w(xs, NB) is not None else zero) + (
            _w(xs, NRB) if _w(xs, NRB) is not None else zero
        )
        (h,) = (s.astype(np.float64) for s in self.initial_states(node, g, xs, d, np.float32))
        seq = np.zeros(self.infer(node, g)[0][0], np.float64)
        hs = []
        for t in _steps(node, d):
            xt = x[t] if attr(node, "time_major") else x[:, t]
            h = f_act(_clip(xt @ W.T + h @ R.T + b, clip))
            if attr(node, "time_major"):
                seq[t] = h
            else:
                seq[:, t] = h
            hs.append(h)
        if trace is not None:
            trace["h"] = np.stack(hs) if hs else h[None]
        return seq, [h]

    def eval_float(self, node, g, xs):
        seq, finals = self._run_float(node, g, xs)
        return self._assemble(
            node, g, seq.astype(np.float32), [f.astype(np.float32) for f in finals]
        )

    def internals(self, node, g, xs):
        trace: dict[str, np.ndarray] = {}
        self._run_float(node, g, xs, trace)
        return trace

    INT8_ACTIVATIONS: ClassVar[tuple[str, ...]] = ("Tanh", "Sigmoid", "Relu")

    def check(self, node: Node, g: Graph) -> None:
        names = self.activation_names(node)
        if len(names) != 1:
            raise UnsupportedError(
                f"node {node.name!r} (RNN): needs 1 activation, has {list(names)}"
            )
        if not self.quantized(node, g):
            return
        if names[0] not in self.INT8_ACTIVATIONS:
            raise UnsupportedError(
                f"node {node.name!r} (RNN): int8 RNNs take Tanh, Sigmoid or Relu, not {names[0]}"
            )
        if float(attr(node, "clip")) > 0:
            raise UnsupportedError(f"node {node.name!r} (RNN): int8 RNNs with an activation clip")
        if g.inp(node, NRB) is not None:
            raise UnsupportedError(f"node {node.name!r} (RNN): int8 RNNs fold Rb into Wb")
        self.quant_params(node, g)

    def quant_params(self, node: Node, g: Graph) -> dict[str, Any]:
        x, h, y = g.inp(node, NX), g.inp(node, NH0), _hidden_output(node, g)
        where = f"node {node.name!r} (RNN)"
        if x is None or x.dtype != "int8" or x.quant is None:
            raise UnsupportedError(f"{where}: int8 RNNs need an int8 input")
        hq = h.quant if h is not None else y.quant
        if hq is None or not (y.quant is not None and y.quant.same_as(hq)):
            raise UnsupportedError(
                f"{where}: the output must share the hidden state's quantization"
            )
        act = self.activation_names(node)[0]
        # Tanh / Sigmoid: gate pre-activation in Q3.12, int16 table, then to the state's
        # scale; Relu: both products straight to the state's scale.
        target = float(np.float32(2.0**GATE_SCALE_POWER)) if act != "Relu" else float(hq.s)

        def fc(in_scale: float, slot: int) -> tuple[int, int]:
            w = g.inp(node, slot)
            assert w is not None
            if w.dtype != "int8" or w.quant is None or w.quant.per_channel or w.quant.zp != 0:
                raise UnsupportedError(
                    f"{where}: weights {w.name!r} must be int8, symmetric, per tensor"
                )
            return fp.quantize_multiplier(
                float(np.float32(np.float32(in_scale) * w.quant.s)) / target
            )

        b = g.inp(node, NB)
        if b is not None and b.dtype != "int32":
            raise UnsupportedError(f"{where}: int8 RNNs need an int32 bias")
        return {
            "x_zp": x.quant.zp,
            "h_zp": hq.zp,
            "x": fc(float(x.quant.s), NW),
            "h": fc(float(hq.s), NR),
            "out": fp.quantize_multiplier(GATE_OUT_SCALE / float(hq.s)),
            "act": act,
        }

    def eval_quant(self, node, g, xs):
        q = self.quant_params(node, g)
        d = self.dims(node, g)
        (h,) = self.initial_states(node, g, xs, d, np.int64)
        if g.inp(node, NH0) is None:
            h = np.full(h.shape, q["h_zp"], np.int64)
        h = h.astype(np.int64)
        W, R = xs[NW].astype(np.int64), xs[NR].astype(np.int64)
        b = xs[NB].astype(np.int64) if _w(xs, NB) is not None else np.zeros(d.hidden, np.int64)
        x = xs[NX].astype(np.int64)
        seq = np.zeros(self.infer(node, g)[0][0], np.int64)
        zp = q["h_zp"]
        for t in _steps(node, d):
            xt = x[t] if attr(node, "time_major") else x[:, t]
            ax = (xt - q["x_zp"]) @ W.T + b
            ah = (h - zp) @ R.T
            vx = fp.multiply_by_quantized_multiplier(ax, *q["x"])
            vh = fp.multiply_by_quantized_multiplier(ah, *q["h"])
            pre = np.clip(
                np.clip(vx, INT16_MIN, INT16_MAX) + np.clip(vh, INT16_MIN, INT16_MAX),
                INT16_MIN,
                INT16_MAX,
            )
            if q["act"] == "Relu":  # pre-activation at the state's scale
                h = np.clip(pre + zp, max(-128, zp), 127)
            else:
                a = fp.tanh_int16(pre) if q["act"] == "Tanh" else fp.sigmoid_int16(pre)
                h = np.clip(fp.multiply_by_quantized_multiplier(a, *q["out"]) + zp, -128, 127)
            if attr(node, "time_major"):
                seq[t] = h
            else:
                seq[:, t] = h
        return self._assemble(node, g, seq.astype(np.int8), [h.astype(np.int8)])


RECURRENT_OPS = ("LSTM", "GRU", "RNN")

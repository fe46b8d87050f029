"""LSTM and GRU layers written out as their cell's ops, unrolled over time (float graphs).

A fused LSTM / GRU op keeps its gate matrices inside (tinyc_rnn.h runs them); a pass that
changes how a gate matrix is stored or multiplied -- ``--kronecker`` -- needs them as
ordinary fully-connected layers. This pass rewrites a layer as, per time step (in the
layer's direction):

    LSTM:  gates = FC(x_t, [W_i; W_f; W_c; W_o], b) + FC(h, [R_i; R_f; R_c; R_o])
           i, f, g, o = SPLIT(gates)       i, f, o: LOGISTIC, g: TANH (or LOGISTIC)
           c = f * c + i * g               h = o * TANH(c)
    GRU:   z, r, n_x = SPLIT(FC(x_t, [W_z; W_r; W_h], b_x))
           z, r = LOGISTIC(z + FC(h, R_z)), LOGISTIC(r + FC(h, R_r))
           n = TANH(n_x + r * FC(h, R_h, Rb_h))     (linear_before_reset)
           n = TANH(n_x + FC(r * h, R_h))           (otherwise)
           h = n + z * (h - n)

with one stacked input-side matrix and one stacked recurrent matrix per layer, shared by
every step (constants are stored once), and the steps' values of one role (the gates, c,
h, ...) tied to one set of int8 parameters (Tensor.meta[QUANT_TIE]), so that every step
runs the same requantization and lookup tables. The sequence output is the steps' hidden states
PACKed in time order; the final states are the last step's. The float results are the
fused op's up to float rounding (tests/test_lower_recurrent.py); in int8 the cell is
tinyc's ordinary int8 ops (calibrated activations, an int8 cell state), not TFLM's
integer LSTM.

Clips (ONNX's on every activation input, TFLite's on the LSTM cell state) become
MAXIMUM / MINIMUM. Only the plain cells: the default activations, no peepholes or
projection, and an initial state that is absent, constant, a graph input or a state tensor (a
streaming layer: the steps read it, and ASSIGN_VARIABLE writes the final state back into
it, so that it outlives the invocation as the fused op's does).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import get_op
from tinyc.ir.ops.base import attr
from tinyc.ir.ops.recurrent import (
    BI,
    C0,
    GBZ,
    GH0,
    GRBH,
    GRBZ,
    GRZ,
    GWZ,
    H0,
    PI,
    PW,
    RI,
    WI,
    X,
)
from tinyc.ir.tensor import QUANT_TIE, Tensor

LOWERABLE = ("LSTM", "GRU")


def why_not(g: Graph, node: Node) -> str | None:
    """Why ``node`` cannot be lowered, or None."""
    if node.op not in LOWERABLE:
        return f"{node.op} is not an LSTM or GRU"
    op: Any = get_op(node.op)
    if g.is_quantized or any(g.tensors[i].is_quantized for i in node.inputs if i):
        return "an int8 layer (lowering works on float models)"
    defaults = {"LSTM": (("Sigmoid", "Tanh", "Tanh"), ("Sigmoid", "Sigmoid", "Tanh")),
                "GRU": (("Sigmoid", "Tanh"),)}[node.op]  # fmt: skip
    if op.activation_names(node) not in defaults:
        return f"activations {list(op.activation_names(node))}"
    if node.op == "LSTM" and any(g.inp(node, s) is not None for s in (PI, PW)):
        return "peepholes or a projection"
    n = len(op.gates)
    for s in (*range(op.w_slot, op.w_slot + n), *range(op.r_slot, op.r_slot + n)):
        if g.inp(node, s) is None:
            return "a gate without weights"
    for s, name in enumerate(node.inputs):  # weights and biases: constants
        if s != X and s not in op.state_slots and name and not g.tensors[name].is_const:
            return "weights or biases computed at run time"
    for s in op.state_slots:
        t = g.inp(node, s)
        if (
            t is not None
            and t.variable
            and t.shape != tuple(op.state_shape(node, op.dims(node, g), s))
        ):
            return f"a state tensor of shape {list(t.shape)}"
    return None


class _Builder:
    """Adds nodes to ``g`` with their output tensors (shapes from the ops' own infer)."""

    def __init__(self, g: Graph, base: str) -> None:
        self.g = g
        self.base = base
        self.nodes: list[Node] = []
        self.side: dict[str, str] = {}  # fully-connected node -> "input" / "recurrent"

    def const(self, tag: str, value: np.ndarray) -> str:
        name = self.g.unique_name(f"{self.base}/{tag}")
        v = np.asarray(value, np.float32)
        self.g.add_tensor(Tensor(name, v.shape, "float32", v))
        return name

    def op(self, kind: str, tag: str, inputs: list[str], n_out: int = 1,
           attrs: dict | None = None, names: list[str] | None = None) -> list[str]:  # fmt: skip
        outs = names or [self.g.unique_name(f"{self.base}/{tag}{'' if n_out == 1 else f'_{k}'}")
                         for k in range(n_out)]  # fmt: skip
        step = re.match(r"t\d+/(.*)", tag)
        for k, o in enumerate(outs):
            if o not in self.g.tensors:
                self.g.add_tensor(Tensor(o, (1,), "float32"))
                if step:  # every step's value of one role: one set of int8 parameters
                    self.g.tensors[o].meta[QUANT_TIE] = f"{self.base}#{step.group(1)}#{k}"
        node = Node(kind, self.g.unique_name(f"{self.base}/{tag}"), list(inputs), outs,
                    dict(attrs or {}))  # fmt: skip
        for o, (shape, _dtype) in zip(outs, get_op(kind).infer(node, self.g), strict=True):
            self.g.tensors[o].shape = tuple(shape)
        self.nodes.append(node)
        return outs

    def fc(self, tag: str, x: str, w: str, b: str | None, side: str) -> str:
        y = self.op("FULLY_CONNECTED", tag, [x, w, b] if b else [x, w])[0]
        self.side[self.nodes[-1].name] = side
        return y

    def binary(self, kind: str, tag: str, a: str, b: str) -> str:
        return self.op(kind, tag, [a, b])[0]

    def unary(self, kind: str, tag: str, a: str) -> str:
        return self.op(kind, tag, [a])[0]

    def clamp(self, tag: str, a: str, bound: float) -> str:
        """``a`` clipped to [-bound, bound] (bound <= 0: ``a`` itself)."""
        if bound <= 0:
            return a
        lo = self.binary("MAXIMUM", f"{tag}_lo", a, self.const(f"{tag}_min", np.float32(-bound)))
        return self.binary("MINIMUM", f"{tag}_hi", lo, self.const(f"{tag}_max", np.float32(bound)))


def _const(g: Graph, name: str) -> np.ndarray:
    t = g.tensors[name]
    assert t.data is not None
    return t.data.astype(np.float64)


def _bias(g: Graph, node: Node, slots: list[int], rows: int) -> np.ndarray:
    out = np.zeros(rows)
    for s in slots:
        t = g.inp(node, s)
        if t is not None:  # (constant: why_not)
            out = out + _const(g, t.name)
    return out


def _state(b: _Builder, node: Node, slot: int, shape: tuple[int, int], tag: str) -> str:
    t = b.g.inp(node, slot)
    if t is None:
        return b.const(tag, np.zeros(shape))
    if t.shape != shape:
        return b.op("RESHAPE", f"{tag}_2d", [t.name], attrs={"shape": list(shape)})[0]
    return t.name


def lower(g: Graph, node: Node) -> tuple[list[Node], dict[str, str]]:
    """The nodes that replace ``node`` (added tensors go into ``g``), and which matrix each
    new fully-connected node (name) multiplies: "input", "recurrent" (or a GRU's
    "candidate" recurrent matrix)."""
    op: Any = get_op(node.op)
    d = op.dims(node, g)
    b = _Builder(g, node.name)
    time_major = bool(attr(node, "time_major"))
    steps = list(range(d.time))
    if attr(node, "reverse"):
        steps.reverse()
    x = node.inputs[X]
    if d.time == 1:
        xs = b.op("RESHAPE", "x_step", [x], attrs={"shape": [d.batch, d.input]})
    else:
        xs = b.op("UNPACK", "x_steps", [x], d.time, {"axis": 0 if time_major else 1})
    hsz = d.hidden
    clip = float(attr(node, "clip"))  # ONNX: every activation's input
    if node.op == "LSTM":
        cell_clip = float(attr(node, "cell_clip"))  # TFLite: the cell state
        wx = np.concatenate([_const(g, node.inputs[WI + k]) for k in range(4)])
        wh = np.concatenate([_const(g, node.inputs[RI + k]) for k in range(4)])
        bx = np.concatenate([_bias(g, node, [BI + k], hsz) for k in range(4)])
        wx_n, wh_n, bx_n = b.const("w_x", wx), b.const("w_h", wh), b.const("b_x", bx)
        h = _state(b, node, H0, (d.batch, hsz), "h0")
        c = _state(b, node, C0, (d.batch, hsz), "c0")
        cell_act = "LOGISTIC" if op.activation_names(node)[1] == "Sigmoid" else "TANH"
        hs = []
        for t in steps:
            gx = b.fc(f"t{t}/gates_x", xs[t], wx_n, bx_n, "input")
            gh = b.fc(f"t{t}/gates_h", h, wh_n, None, "recurrent")
            pre = b.clamp(f"t{t}/clip", b.binary("ADD", f"t{t}/gates", gx, gh), clip)
            gi, gf, gc, go = b.op("SPLIT", f"t{t}/split", [pre], 4, {"axis": 1, "num_splits": 4})
            i = b.unary("LOGISTIC", f"t{t}/i", gi)
            f = b.unary("LOGISTIC", f"t{t}/f", gf)
            cc = b.unary(cell_act, f"t{t}/g", gc)
            o = b.unary("LOGISTIC", f"t{t}/o", go)
            c = b.binary("ADD", f"t{t}/c", b.binary("MUL", f"t{t}/fc", f, c),
                         b.binary("MUL", f"t{t}/ig", i, cc))  # fmt: skip
            c = b.clamp(f"t{t}/cell_clip", c, cell_clip)
            tc = b.unary("TANH", f"t{t}/tanh_c", b.clamp(f"t{t}/c_clip", c, clip))
            h = b.binary("MUL", f"t{t}/h", o, tc)
            hs.append(h)
        finals = [h, c]
    else:
        lbr = bool(attr(node, "linear_before_reset"))
        wx = np.concatenate([_const(g, node.inputs[GWZ + k]) for k in range(3)])
        r_zr = np.concatenate([_const(g, node.inputs[GRZ + k]) for k in range(2)])
        r_h = _const(g, node.inputs[GRZ + 2])
        bx = np.concatenate(
            [_bias(g, node, [GBZ + k, GRBZ + k], hsz) for k in range(2)]
            + [_bias(g, node, [GBZ + 2] + ([] if lbr else [GRBH]), hsz)]
        )
        wx_n, bx_n = b.const("w_x", wx), b.const("b_x", bx)
        rzr_n, rh_n = b.const("w_h_zr", r_zr), b.const("w_h_n", r_h)
        rbh_n = b.const("b_h_n", _bias(g, node, [GRBH], hsz)) if lbr else None
        h = _state(b, node, GH0, (d.batch, hsz), "h0")
        hs = []
        for t in steps:
            gx = b.fc(f"t{t}/gates_x", xs[t], wx_n, bx_n, "input")
            xz, xr, xn = b.op("SPLIT", f"t{t}/split_x", [gx], 3, {"axis": 1, "num_splits": 3})
            ghzr = b.fc(f"t{t}/gates_h", h, rzr_n, None, "recurrent")
            hz, hr = b.op("SPLIT", f"t{t}/split_h", [ghzr], 2, {"axis": 1, "num_splits": 2})
            zp = b.clamp(f"t{t}/z_clip", b.binary("ADD", f"t{t}/z_pre", xz, hz), clip)
            rp = b.clamp(f"t{t}/r_clip", b.binary("ADD", f"t{t}/r_pre", xr, hr), clip)
            z = b.unary("LOGISTIC", f"t{t}/z", zp)
            r = b.unary("LOGISTIC", f"t{t}/r", rp)
            if lbr:
                hn = b.fc(f"t{t}/cand_h", h, rh_n, rbh_n, "candidate")
                hn = b.binary("MUL", f"t{t}/r_hn", r, hn)
            else:
                rh = b.binary("MUL", f"t{t}/r_h", r, h)
                hn = b.fc(f"t{t}/cand_h", rh, rh_n, None, "candidate")
            n_pre = b.clamp(f"t{t}/n_clip", b.binary("ADD", f"t{t}/n_pre", xn, hn), clip)
            n = b.unary("TANH", f"t{t}/n", n_pre)
            zd = b.binary("MUL", f"t{t}/zd", z, b.binary("SUB", f"t{t}/d", h, n))
            h = b.binary("ADD", f"t{t}/h", n, zd)
            hs.append(h)
        finals = [h]
    _outputs(b, node, hs, steps, finals, time_major)
    for slot, value in zip(op.state_slots, finals, strict=True):
        t = g.inp(node, slot)
        if t is not None and t.variable:  # streaming: the final state outlives the call
            b.op("ASSIGN_VARIABLE", f"keep_{t.name.rsplit('/', 1)[-1]}", [value, t.name],
                 names=[t.name])  # fmt: skip
    return b.nodes, b.side


def _outputs(b: _Builder, node: Node, hs: list[str], steps: list[int], finals: list[str],
             time_major: bool) -> None:  # fmt: skip
    """The sequence output (PACK in time order) and the final states, under the layer's
    own output names (reshaped where the layer's state outputs have another shape)."""
    g = b.g
    seq = node.outputs[0] if node.outputs else ""
    if seq:
        in_order = [h for _, h in sorted(zip(steps, hs, strict=True))]
        shape = g.tensors[seq].shape
        b.op("PACK", "sequence", in_order, attrs={"axis": 0 if time_major else 1}, names=[seq])
        g.tensors[seq].shape = shape
    for name, value in zip(node.outputs[1:], finals, strict=False):
        if name:
            b.op("RESHAPE", "final_state", [value], attrs={"shape": list(g.tensors[name].shape)},
                 names=[name])  # fmt: skip


def lower_recurrent(g: Graph, names: set[str]) -> tuple[Graph, dict[str, tuple[str, str]], dict]:
    """A copy of float ``g`` with the LSTM / GRU layers ``names`` lowered. Returns the graph,
    for each new fully-connected node its (recurrent layer, side), and for every layer not
    lowered the reason."""
    out = g.copy()
    origin: dict[str, tuple[str, str]] = {}
    refused: dict[str, str] = {}
    nodes: list[Node] = []
    for node in out.nodes:
        if node.name not in names:
            nodes.append(node)
            continue
        why = why_not(out, node)
        if why is not None:
            refused[node.name] = why
            nodes.append(node)
            continue
        new, side = lower(out, node)
        nodes += new
        origin.update({k: (node.name, v) for k, v in side.items()})
    out.nodes = nodes
    out.remove_unused()
    return out, origin, refused

"""Recurrent layers: ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` (``aten.lstm``, ``aten.gru``,
``aten.rnn_tanh``, ``aten.rnn_relu``) and their cells (``aten.lstm_cell``, ``aten.gru_cell``,
``aten.rnn_tanh_cell``, ``aten.rnn_relu_cell``) as the IR's LSTM, GRU and RNN ops.

An IR op runs one direction of one layer over the whole sequence with one weight matrix
per gate (TFLite's operand order), so PyTorch's stacked matrices are cut into gates here: a
stack of layers is a chain of ops, a bidirectional layer two ops (the second with
``reverse``) whose outputs are concatenated on the feature axis, and the final states are
packed into PyTorch's ``[num_layers * directions, batch, hidden]``. A cell is the same op
over one time step.

Biases are emitted the way the int8 kernels want them: LSTM's two biases summed; GRU's
recurrent update and reset biases folded into the input biases (the candidate's recurrent
bias stays apart, since the reset gate scales it); RNN's recurrent bias folded into the
input bias.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tinyc.errors import TinycError, UnsupportedError
from tinyc.frontend.torch.liveness import live_nodes
from tinyc.frontend.torch.registry import handles, target_name
from tinyc.frontend.torch.values import Act, Value, View, is_tensor
from tinyc.ir.ops import get_op

if TYPE_CHECKING:
    from tinyc.frontend.torch.converter import Converter


@dataclass(frozen=True)
class _Cell:
    kind: str  # the IR op
    gates: int  # matrices stacked in PyTorch's weight_ih / weight_hh
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def states(self) -> int:
        return len(get_op(self.kind).state_slots)  # type: ignore[attr-defined]


_CELLS = {
    "lstm": _Cell("LSTM", 4),
    "gru": _Cell("GRU", 3, {"linear_before_reset": True}),
    "rnn_tanh": _Cell("RNN", 1),
    "rnn_relu": _Cell("RNN", 1, {"activations": ("Relu",)}),
}

_LSTM_GATES = "ifco"  # PyTorch's i, f, g, o are the IR's input, forget, cell, output gates
_GRU_ROWS = {"z": 1, "r": 0, "h": 2}  # IR gate -> PyTorch's r, z, n block


@dataclass(frozen=True)
class _Weights:
    """One direction of one layer, as PyTorch stores it."""

    w_ih: np.ndarray  # [gates * H, I]
    w_hh: np.ndarray  # [gates * H, H]
    b_ih: np.ndarray | None
    b_hh: np.ndarray | None


def _constant(v: Value, what: str) -> np.ndarray:
    if not isinstance(v, np.ndarray):
        raise UnsupportedError(f"{what} must be constants (parameters or buffers)")
    return v.astype(np.float32)


def _weights(cell: _Cell, w_ih: Value, w_hh: Value, b_ih: Value, b_hh: Value) -> _Weights:
    w = _Weights(
        _constant(w_ih, "recurrent weights"),
        _constant(w_hh, "recurrent weights"),
        None if b_ih is None else _constant(b_ih, "recurrent biases"),
        None if b_hh is None else _constant(b_hh, "recurrent biases"),
    )
    hidden = w.w_hh.shape[1]
    if w.w_ih.shape[0] != cell.gates * hidden or w.w_hh.shape[0] != cell.gates * hidden:
        raise TinycError(
            f"weights {list(w.w_ih.shape)} and {list(w.w_hh.shape)} do not hold "
            f"{cell.gates} gate(s) of {hidden} units"
        )
    return w


def _layer_weights(cell: _Cell, params: list, has_biases: bool, count: int) -> list[_Weights]:
    """PyTorch's flat parameter list, per layer and direction."""
    per = 4 if has_biases else 2
    if cell.kind == "LSTM" and len(params) == (per + 1) * count:
        raise UnsupportedError(
            "LSTM with proj_size > 0 (a projected hidden state) is not supported"
        )
    if len(params) != per * count:
        raise TinycError(f"{len(params)} recurrent parameters for {count} layer direction(s)")
    out = []
    for k in range(count):
        p = params[k * per : (k + 1) * per]
        biases = (p[2], p[3]) if has_biases else (None, None)
        out.append(_weights(cell, p[0], p[1], *biases))
    return out


def _operands(c: Converter, cell: _Cell, w: _Weights, base: str) -> list[str]:
    """The op's inputs after x and before the states, in the op's slot order."""
    hidden = w.w_hh.shape[1]

    def rows(m: np.ndarray, k: int) -> np.ndarray:
        return np.ascontiguousarray(m[k * hidden : (k + 1) * hidden])

    def const(m: np.ndarray, k: int, what: str) -> str:
        return c.const(rows(m, k), f"{base}_{what}")

    if cell.kind == "LSTM":
        # int8 LSTMs need all four biases: zeros stand in for bias=False.
        b = np.zeros(4 * hidden, np.float32) if w.b_ih is None else w.b_ih + w.b_hh
        ws = [const(w.w_ih, k, f"W_{g}") for k, g in enumerate(_LSTM_GATES)]
        rs = [const(w.w_hh, k, f"R_{g}") for k, g in enumerate(_LSTM_GATES)]
        bs = [const(b, k, f"b_{g}") for k, g in enumerate(_LSTM_GATES)]
        return ws + rs + ["", "", ""] + bs
    if cell.kind == "GRU":
        ws = [const(w.w_ih, k, f"W_{g}") for g, k in _GRU_ROWS.items()]
        rs = [const(w.w_hh, k, f"R_{g}") for g, k in _GRU_ROWS.items()]
        if w.b_ih is None or w.b_hh is None:
            return ws + rs + [""] * 6
        z, r, n = _GRU_ROWS["z"], _GRU_ROWS["r"], _GRU_ROWS["h"]
        wb = [
            c.const(rows(w.b_ih, z) + rows(w.b_hh, z), f"{base}_Wb_z"),
            c.const(rows(w.b_ih, r) + rows(w.b_hh, r), f"{base}_Wb_r"),
            const(w.b_ih, n, "Wb_h"),
        ]
        return ws + rs + wb + ["", "", const(w.b_hh, n, "Rb_h")]
    ws, rs = [const(w.w_ih, 0, "W")], [const(w.w_hh, 0, "R")]
    if w.b_ih is None or w.b_hh is None:
        return ws + rs + ["", ""]
    return ws + rs + [c.const(w.b_ih + w.b_hh, f"{base}_Wb"), ""]


def _inputs(cell: _Cell, x: str, operands: list[str], states: list[str]) -> list[str]:
    """x, the operands and the states at their slots; trailing absent inputs left off."""
    inputs = [x, *operands]
    for slot, s in zip(get_op(cell.kind).state_slots, states, strict=True):  # type: ignore[attr-defined]
        inputs += [""] * (slot - len(inputs))
        inputs.append(s)
    while inputs and not inputs[-1]:
        inputs.pop()
    return inputs


def _state_inputs(c: Converter, v: Value, count: int, base: str) -> list[str]:
    """An initial state ``[count, B, H]`` (or ``[B, H]`` for a cell) as one IR tensor per
    layer direction; "" where it is all zeros (the op's default)."""
    if v is None:
        return [""] * count
    if not is_tensor(v):
        data = np.asarray(v, np.float32).reshape((count, *np.shape(v)[-2:]))
        return [
            "" if not data[k].any() else c.const(np.ascontiguousarray(data[k]), f"{base}_{k}")
            for k in range(count)
        ]
    a = c.layout(v, tuple(range(len(v.shape))))
    if count == 1:
        return [a.name]
    return c.emit_multi("UNPACK", [a.name], base, [True] * count, {"axis": 0})


def _stacked(c: Converter, names: list[str], base: str) -> Act:
    """Final states, one ``[B, H]`` per layer direction, as PyTorch's ``[count, B, H]``."""
    if len(names) == 1:
        shape = (1, *c.g.tensors[names[0]].shape)
        out = c.emit("RESHAPE", names, base, {"shape": shape})
    else:
        out = c.emit("PACK", names, base, {"axis": 0})
    return c.act_from(out, (0, 1, 2))


def _used_items(node: Any, count: int) -> list[bool]:
    """Which items of the node's tuple result the outputs depend on."""
    live = live_nodes(node.graph)
    used = [False] * count
    for u in node.users:
        if u.op == "call_function" and u.target is operator.getitem and isinstance(u.args[1], int):
            used[u.args[1]] |= any(x in live for x in u.users)
        elif u in live:
            return [True] * count
    return used


def _sequence_input(c: Converter, v: Value) -> Act:
    """The input sequence stored [T, B, I] or [B, T, I], whichever needs no data movement."""
    if not is_tensor(v):
        raise UnsupportedError("the input sequence must be computed from the model input")
    x = c.materialize(v, (0, 1, 2) if len(v.shape) == 3 else None)
    if len(x.shape) != 3:
        raise UnsupportedError(f"the input sequence must be 3-D, not {list(x.shape)}")
    if x.perm not in ((0, 1, 2), (1, 0, 2)):
        x = c.to_perm(x, (0, 1, 2))
    return x


@handles("lstm", "gru", "rnn_tanh", "rnn_relu")
def _recurrent_layer(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    name = target_name(node)
    cell = _CELLS[name]
    if getattr(node.target, "_overloadname", "input") != "input":
        raise UnsupportedError(
            "packed sequences (nn.utils.rnn.pack_padded_sequence) are not supported: pass the "
            "padded tensor"
        )
    layers, dirs = int(a["num_layers"]), 2 if a["bidirectional"] else 1
    if a["train"] and float(a["dropout"]) > 0 and layers > 1:
        raise UnsupportedError("dropout between layers in training mode (call module.eval())")
    weights = _layer_weights(cell, list(a["params"]), bool(a["has_biases"]), layers * dirs)
    x = _sequence_input(c, a["input"])
    time_dim = 0 if not a["batch_first"] else 1
    time_major = x.perm[0] == time_dim
    hx = list(a["hx"]) if cell.kind == "LSTM" else [a["hx"]]
    states = [
        _state_inputs(c, v, layers * dirs, f"{node.name}_{'hc'[k]}0") for k, v in enumerate(hx)
    ]
    used = _used_items(node, 1 + cell.states)
    finals: list[list[str]] = [[] for _ in range(cell.states)]
    seq = x.name
    for layer in range(layers):
        ys = []
        for d in range(dirs):
            k = layer * dirs + d
            base = f"{node.name}_l{layer}" + ("_reverse" if d else "")
            inputs = _inputs(
                cell, seq, _operands(c, cell, weights[k], base), [s[k] for s in states]
            )
            attrs = {**cell.attrs, "time_major": time_major, "reverse": bool(d)}
            outs = c.emit_multi(cell.kind, inputs, base, [True, *used[1:]], attrs)
            ys.append(outs[0])
            for f, o in zip(finals, outs[1:], strict=False):
                f.append(o)
        seq = ys[0]
        if dirs > 1:
            seq = c.emit("CONCATENATION", ys, f"{node.name}_l{layer}_cat", {"axis": 2})
    result: list[Value] = [c.act_from(seq, x.perm)]
    for k in range(cell.states):
        want = used[1 + k]
        result.append(_stacked(c, finals[k], f"{node.name}_{'hc'[k]}n") if want else None)
    return tuple(result)


@handles("lstm_cell", "gru_cell", "rnn_tanh_cell", "rnn_relu_cell")
def _recurrent_cell(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    """One time step: the layer's op over a [B, 1, I] sequence."""
    cell = _CELLS[target_name(node).removesuffix("_cell")]
    if not is_tensor(a["input"]):
        raise UnsupportedError("the cell input must be computed from the model input")
    x = a["input"]
    if len(x.shape) != 2:
        raise UnsupportedError(f"the cell input must be [batch, features], not {list(x.shape)}")
    x = c.layout(x, (0, 1))
    batch, features = x.shape
    steps = c.emit("RESHAPE", [x.name], f"{node.name}_steps", {"shape": (batch, 1, features)})
    w = _weights(cell, a["w_ih"], a["w_hh"], a.get("b_ih"), a.get("b_hh"))
    hx = list(a["hx"]) if cell.kind == "LSTM" else [a["hx"]]
    states = [_state_inputs(c, v, 1, f"{node.name}_{'hc'[k]}0")[0] for k, v in enumerate(hx)]
    inputs = _inputs(cell, steps, _operands(c, cell, w, node.name), states)
    # h' is the one-step sequence itself; only an LSTM cell also returns its cell state.
    want_c = cell.kind == "LSTM" and _used_items(node, 2)[1]
    wanted = [True, False, want_c][: 1 + cell.states]
    outs = c.emit_multi(cell.kind, inputs, node.name, wanted, {**cell.attrs})
    hidden = w.w_hh.shape[1]
    h = View(Act(outs[0], (0, 1, 2), (batch, 1, hidden)), (batch, hidden))
    if cell.kind != "LSTM":
        return h
    return (h, c.act_from(outs[2], (0, 1)) if want_c else None)

"""Learned state-update skipping: ``tinyc.torch.SkipGRU`` / ``SkipLSTM`` in eval export as one
``tinyc::skip_gru`` / ``tinyc::skip_lstm`` operator (tinyc/torch_skip.py), which becomes the
layer's GRU / LSTM node guarded by a SKIP_GATE_LEARNED gate (tinyc/ir/ops/skip.py).

The layer is emitted in its streaming shape: its hidden (and cell) state are state tensors
(zero at reset, as the operator starts), and the gate before it reads the hidden state the
last step left, its own state ``1 - p`` and its last decision. A whole sequence of such a
graph runs step by step (the interpreter does so); the firmware needs ``--stream``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tinyc.errors import UnsupportedError
from tinyc.frontend.torch.ops_rnn import (
    _CELLS,
    _constant,
    _inputs,
    _operands,
    _sequence_input,
    _used_items,
    _weights,
)
from tinyc.frontend.torch.registry import handles, target_name
from tinyc.frontend.torch.values import Value
from tinyc.ir.graph import Node
from tinyc.ir.ops.skip import GATE_DTYPE
from tinyc.ir.tensor import Tensor

if TYPE_CHECKING:
    from tinyc.frontend.torch.converter import Converter


def skip_layer_nodes(
    c: Any,
    kind: str,
    x: str,
    time_major: bool,
    weights: list[Any],
    wanted: list[bool],
    base: str,
) -> list[str]:
    """The IR of one skip layer (``kind`` "gru" or "lstm") over the IR sequence ``x``
    ([B, T, F], or [T, B, F] when ``time_major``), from PyTorch's parameters ``weights`` =
    (w_ih, w_hh, b_ih, b_hh, gate_w, gate_b): the state tensors, the SKIP_GATE_LEARNED gate
    and the guarded GRU / LSTM. ``c`` builds the graph (``g``, ``const(data, base)``,
    ``emit_multi(kind, inputs, base, wanted, attrs)``: the PyTorch converter, or the ONNX
    frontend's adapter for the ``tinyc.SkipGRU`` / ``SkipLSTM`` nodes the same layers
    export to). ``wanted``: which final states something reads. Returns the layer's
    outputs (the sequence, then the final states; "" where not wanted)."""
    cell = _CELLS[kind]
    t = c.g.tensors[x]
    batch = t.shape[1] if time_major else t.shape[0]
    if batch != 1:
        raise UnsupportedError(
            f"learned skipping decides per sequence: compile one sequence (batch 1), not {batch}"
        )
    w = _weights(cell, *weights[:4])
    hidden = w.w_hh.shape[1]
    gate_w = _constant(weights[4], "the skip gate's weights").reshape(1, hidden)
    gate_b = _constant(weights[5], "the skip gate's bias").reshape(1)

    def state(what: str, shape: tuple[int, ...], dtype: str = "float32") -> str:
        t = Tensor(c.g.unique_name(f"{base}/{what}"), shape, dtype, variable=True)
        return c.g.add_tensor(t).name

    states = [state(s, (batch, hidden)) for s in ("h", "c")[: cell.states]]
    q, gate = state("q", (1,)), state("gate", (1,), GATE_DTYPE)
    gw, gb = c.const(gate_w, f"{base}_gate_w"), c.const(gate_b, f"{base}_gate_b")
    gname = c.g.unique_name(f"{base}/skip_gate")
    c.g.nodes.append(Node("SKIP_GATE_LEARNED", gname, [states[0], gw, gb, q, gate], [gate]))
    inputs = _inputs(cell, x, _operands(c, cell, w, base), states)
    attrs = {**cell.attrs, "time_major": time_major, "guard": gate}
    outs = c.emit_multi(cell.kind, inputs, base, [True, *wanted], attrs)
    return outs + [""] * (1 + cell.states - len(outs))


@handles("skip_gru", "skip_lstm")
def _skip_layer(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    kind = target_name(node).removeprefix("skip_")
    n_states = _CELLS[kind].states
    used = _used_items(node, 3 + n_states)
    if used[1 + n_states] or used[2 + n_states]:
        raise UnsupportedError(
            "the update probability p and the updates of a skip layer are not compiled: "
            "return the sequence or the final states"
        )
    x = _sequence_input(c, a["x"])
    params = [a[k] for k in ("w_ih", "w_hh", "b_ih", "b_hh", "gate_w", "gate_b")]
    outs = skip_layer_nodes(
        c, kind, x.name, x.perm[0] == 1, params, used[1 : 1 + n_states], node.name
    )
    result: list[Value] = [c.act_from(outs[0], x.perm)]
    result += [c.act_from(o, (0, 1)) if o else None for o in outs[1:]]
    return (*result, None, None)

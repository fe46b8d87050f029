"""Learned state-update skipping for PyTorch: Skip-LSTM / Skip-GRU cells (Skip RNN, Campos
et al., ICLR 2018). Exported from ``tinyc.torch``:

    from tinyc.torch import SkipGRU, budget_penalty

    rnn = SkipGRU(40, 64)                        # batch_first, like nn.GRU(batch_first=True)
    y, h, updates = rnn(x)                       # updates: [N, T] of 0 / 1
    loss = task_loss + budget_penalty(updates, 1e-3)

A cell carries its recurrent state and an *update probability* ``p``. Each step:

    u_t   = round(p_t)                       binary (torch.round: 0.5 -> 0); straight through
    s'    = cell(x_t, s_{t-1})               (LSTM: (h, c); GRU: h)
    s_t   = u_t * s' + (1 - u_t) * s_{t-1}   closed gate: the state is copied
    dp    = sigmoid(w . h_t + b)             the next gate, computed from the state
    p_t+1 = u_t * dp + (1 - u_t) * min(p_t + dp, 1)

so a closed gate makes the next step likelier to update (the probability accumulates).
Training computes the cell and masks (the straight-through estimator needs both branches);
in ``eval()`` with one sequence (batch 1) a closed gate really skips the cell: nothing is
computed, the state is returned as it was (bit-identical to holding it).
``budget_penalty(updates, weight)`` is Skip RNN's budget loss, ``weight * mean(u)``: it
trades accuracy for fewer updates.

**How it maps to tinyc's IR** (tinyc/ir/ops/skip.py): in ``eval()`` a ``SkipGRU`` /
``SkipLSTM`` layer called without a state runs the sequence as one custom operator,
``torch.ops.tinyc.skip_gru`` / ``skip_lstm`` (the same eval computation as the cells, step
by step), which ``torch.export`` keeps as one node (it cannot trace the data-dependent
skip) and tinyc's PyTorch frontend compiles to a GRU / LSTM node guarded by a
``SKIP_GATE_LEARNED`` gate: the guard of ``--skip-threshold``'s SKIP_GATE (a closed gate
holds the layer's outputs and leaves its state untouched; the C branches around the
kernel), with a learned criterion -- the gate keeps ``1 - p`` as a state and updates it from
the layer's hidden state by the 1-output linear layer and sigmoid above. Compile with
``--stream`` (one frame per invocation): the firmware then really skips the cell's matrix
work when the gate is closed. Training, calls with an explicit state and eval calls that
need gradients (outside ``torch.export``) use the Python loop. The operator's outputs are
``(y, h_T[, c_T], p_T, updates)``; tinyc compiles ``y`` and the final states, not ``p`` or
``updates``, batch 1. The cells used in a loop of your own are not recognised by the
frontend: use the layers.

ONNX: ``torch.onnx.export(model, (x,), dynamo=True,
custom_translation_table=onnx_translation_table())`` writes each layer as one node of the
custom domain ``tinyc`` (version 1), ``SkipGRU`` or ``SkipLSTM``, with the operator's inputs
(x [N, T, F] batch first, then PyTorch's parameters as they are: weight_ih, weight_hh,
bias_ih, bias_hh -- gates stacked in PyTorch's order -- and the gate's weight [1, H] and
bias [1]) and outputs; tinyc's ONNX frontend compiles it like the PyTorch frontend. Other
ONNX tools do not know the domain (onnxruntime cannot run it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "SkipGRU",
    "SkipGRUCell",
    "SkipLSTM",
    "SkipLSTMCell",
    "budget_penalty",
    "onnx_translation_table",
    "skip_rate",
]


class _RoundST(torch.autograd.Function):
    """round() forward, identity backward (the straight-through estimator)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return grad


def round_st(x: torch.Tensor) -> torch.Tensor:
    return _RoundST.apply(x)  # type: ignore[no-any-return]


def budget_penalty(updates: torch.Tensor, weight: float) -> torch.Tensor:
    """Skip RNN's budget loss: ``weight`` times the mean update rate."""
    return weight * updates.float().mean()


def skip_rate(updates: torch.Tensor) -> float:
    """The fraction of steps skipped."""
    return 1.0 - float(updates.detach().float().mean())


class _SkipCell(nn.Module):
    """The gate shared by both cells; ``_step`` is the wrapped cell."""

    def __init__(self, hidden_size: int, gate_bias: float = 1.0) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.gate = nn.Linear(hidden_size, 1)
        nn.init.constant_(self.gate.bias, gate_bias)  # start out updating most steps

    def initial_state(self, batch: int, device=None) -> tuple:
        z = torch.zeros(batch, self.hidden_size, device=device)
        return (*self._zero_state(z), torch.ones(batch, 1, device=device))

    def _zero_state(self, z: torch.Tensor) -> tuple:
        raise NotImplementedError

    def _step(self, x: torch.Tensor, state: tuple) -> tuple:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, state: tuple | None = None) -> tuple:
        """One step: returns (h, new state (..., p), u) with u [N, 1] in {0, 1}."""
        if state is None:
            state = self.initial_state(x.shape[0], x.device)
        *rec, p = state
        u = round_st(p)
        if not self.training and u.numel() == 1 and float(u.detach()) == 0.0:
            # a closed gate really skips the cell: state copied, probability accumulated
            dp = torch.sigmoid(self.gate(rec[0]))
            return rec[0], (*rec, torch.clamp(p + dp, max=1.0)), u
        new = self._step(x, tuple(rec))
        kept = tuple(u * n + (1 - u) * o for n, o in zip(new, rec, strict=True))
        dp = torch.sigmoid(self.gate(kept[0]))
        p_next = u * dp + (1 - u) * torch.clamp(p + dp, max=1.0)
        return kept[0], (*kept, p_next), u


def _skip_sequence(
    lstm: bool,
    x: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor | None,
    b_hh: torch.Tensor | None,
    gate_w: torch.Tensor,
    gate_b: torch.Tensor,
) -> tuple[torch.Tensor, ...]:
    """The eval computation of a whole skip layer from a zero state and p = 1: exactly
    ``_SkipCell.forward`` in eval, step by step. (y, h[, c], p, updates)."""
    n, steps = x.shape[0], x.shape[1]
    z = x.new_zeros(n, w_hh.shape[1])
    rec: tuple[torch.Tensor, ...] = (z, z.clone()) if lstm else (z,)
    p = x.new_ones(n, 1)
    ys, us = [], []
    for t in range(steps):
        u = torch.round(p)
        if n == 1 and float(u) == 0.0:
            dp = torch.sigmoid(F.linear(rec[0], gate_w, gate_b))
            p = torch.clamp(p + dp, max=1.0)
        else:
            if lstm:
                new = torch.lstm_cell(x[:, t], rec, w_ih, w_hh, b_ih, b_hh)
            else:
                new = (torch.gru_cell(x[:, t], rec[0], w_ih, w_hh, b_ih, b_hh),)
            rec = tuple(u * a + (1 - u) * b for a, b in zip(new, rec, strict=True))
            dp = torch.sigmoid(F.linear(rec[0], gate_w, gate_b))
            p = u * dp + (1 - u) * torch.clamp(p + dp, max=1.0)
        ys.append(rec[0])
        us.append(u[:, 0])
    return (torch.stack(ys, 1), *(r.clone() for r in rec), p, torch.stack(us, 1))


@torch.library.custom_op("tinyc::skip_gru", mutates_args=())
def skip_gru(
    x: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor | None,
    b_hh: torch.Tensor | None,
    gate_w: torch.Tensor,
    gate_b: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A SkipGRU layer in eval over x [N, T, F]: (y [N, T, H], h_T, p_T [N, 1], u [N, T])."""
    return _skip_sequence(False, x, w_ih, w_hh, b_ih, b_hh, gate_w, gate_b)  # type: ignore[return-value]


@torch.library.custom_op("tinyc::skip_lstm", mutates_args=())
def skip_lstm(
    x: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor | None,
    b_hh: torch.Tensor | None,
    gate_w: torch.Tensor,
    gate_b: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A SkipLSTM layer in eval: (y, h_T, c_T, p_T, u), as skip_gru."""
    return _skip_sequence(True, x, w_ih, w_hh, b_ih, b_hh, gate_w, gate_b)  # type: ignore[return-value]


def _fake(lstm: bool):
    def fake(x, w_ih, w_hh, b_ih, b_hh, gate_w, gate_b):
        n, steps, hidden = x.shape[0], x.shape[1], w_hh.shape[1]
        state = [x.new_empty(n, hidden) for _ in range(2 if lstm else 1)]
        return (x.new_empty(n, steps, hidden), *state, x.new_empty(n, 1), x.new_empty(n, steps))

    return fake


skip_gru.register_fake(_fake(False))
skip_lstm.register_fake(_fake(True))


_ONNX_OUTPUTS = {"SkipGRU": ("y", "h", "p", "updates"), "SkipLSTM": ("y", "h", "c", "p", "updates")}


def onnx_translation_table() -> dict:
    """``custom_translation_table`` for ``torch.onnx.export(..., dynamo=True)``: the skip
    layers' operators as ``tinyc.SkipGRU`` / ``tinyc.SkipLSTM`` nodes (see the module).
    Registers the two ONNX schemas in this process (needs onnx and onnxscript)."""
    import onnx
    from onnx.defs import OpSchema
    from onnxscript.values import Opset

    param = OpSchema.FormalParameter
    optional = OpSchema.FormalParameterOption.Optional
    names = ("x", "w_ih", "w_hh", "b_ih", "b_hh", "gate_w", "gate_b")
    for op_type, outs in _ONNX_OUTPUTS.items():
        if onnx.defs.has(op_type, "tinyc"):
            continue
        ins = [
            param(n, "T", param_option=optional) if n[:2] == "b_" else param(n, "T") for n in names
        ]
        onnx.defs.register_schema(
            OpSchema(
                op_type, "tinyc", 1,
                inputs=ins,
                outputs=[param(o, "T") for o in outs],
                type_constraints=[("T", ["tensor(float)"], "float32")],
                doc="tinyc.torch's Skip RNN layer in eval (tinyc/torch_skip.py)",
            )
        )  # fmt: skip
    domain = Opset("tinyc", 1)

    def gru(x, w_ih, w_hh, b_ih, b_hh, gate_w, gate_b):
        return domain.SkipGRU(x, w_ih, w_hh, b_ih, b_hh, gate_w, gate_b)

    def lstm(x, w_ih, w_hh, b_ih, b_hh, gate_w, gate_b):
        return domain.SkipLSTM(x, w_ih, w_hh, b_ih, b_hh, gate_w, gate_b)

    return {torch.ops.tinyc.skip_gru.default: gru, torch.ops.tinyc.skip_lstm.default: lstm}


class SkipLSTMCell(_SkipCell):
    """An LSTM cell with a learned binary update gate (see the module)."""

    def __init__(self, input_size: int, hidden_size: int, gate_bias: float = 1.0) -> None:
        super().__init__(hidden_size, gate_bias)
        self.cell = nn.LSTMCell(input_size, hidden_size)

    def _zero_state(self, z: torch.Tensor) -> tuple:
        return (z, z.clone())

    def _step(self, x: torch.Tensor, state: tuple) -> tuple:
        return self.cell(x, state)


class SkipGRUCell(_SkipCell):
    """A GRU cell with a learned binary update gate (see the module)."""

    def __init__(self, input_size: int, hidden_size: int, gate_bias: float = 1.0) -> None:
        super().__init__(hidden_size, gate_bias)
        self.cell = nn.GRUCell(input_size, hidden_size)

    def _zero_state(self, z: torch.Tensor) -> tuple:
        return (z,)

    def _step(self, x: torch.Tensor, state: tuple) -> tuple:
        return (self.cell(x, state[0]),)


def _exporting() -> bool:
    return bool(torch.compiler.is_exporting())


def _needs_grad(layer: nn.Module, x: torch.Tensor) -> bool:
    """Autograd would record the call (the custom operator has no backward: eval calls that
    need gradients run the Python loop)."""
    if not torch.is_grad_enabled():
        return False
    return x.requires_grad or any(p.requires_grad for p in layer.parameters())


class _SkipLayer(nn.Module):
    cell: _SkipCell

    def forward(self, x: torch.Tensor, state: tuple | None = None):
        """x [N, T, F] -> (y [N, T, H], final state, updates [N, T]). In eval from the
        zero state: one ``tinyc::skip_gru`` / ``skip_lstm`` operator (what tinyc compiles),
        when exporting or when no gradient is needed."""
        if not self.training and state is None and (_exporting() or not _needs_grad(self, x)):
            lstm = isinstance(self.cell, SkipLSTMCell)
            rnn = self.cell.cell
            op = torch.ops.tinyc.skip_lstm if lstm else torch.ops.tinyc.skip_gru
            y, *final, u = op(x, rnn.weight_ih, rnn.weight_hh, rnn.bias_ih, rnn.bias_hh,
                              self.cell.gate.weight, self.cell.gate.bias)  # fmt: skip
            return y, tuple(final), u
        ys, us = [], []
        for t in range(x.shape[1]):
            h, state, u = self.cell(x[:, t], state)
            ys.append(h)
            us.append(u[:, 0])
        return torch.stack(ys, 1), state, torch.stack(us, 1)


class SkipLSTM(_SkipLayer):
    def __init__(self, input_size: int, hidden_size: int, gate_bias: float = 1.0) -> None:
        super().__init__()
        self.cell = SkipLSTMCell(input_size, hidden_size, gate_bias)


class SkipGRU(_SkipLayer):
    def __init__(self, input_size: int, hidden_size: int, gate_bias: float = 1.0) -> None:
        super().__init__()
        self.cell = SkipGRUCell(input_size, hidden_size, gate_bias)

"""Learned state-update skipping for PyTorch: Skip-LSTM / Skip-GRU cells (Skip RNN, Campos
et al., ICLR 2018). Exported from ``tinyc.torch``:

    from tinyc.torch import SkipGRU, budget_penalty

    rnn = SkipGRU(40, 64)                        # batch_first, like nn.GRU(batch_first=True)
    y, h, updates = rnn(x)                       # updates: [N, T] of 0 / 1
    loss = task_loss + budget_penalty(updates, 1e-3)

A cell carries its recurrent state and an *update probability* ``p``. Each step:

    u_t   = round(p_t)                       binary; gradient passed straight through
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

**How it maps to tinyc's IR** (tinyc/ir/ops/skip.py): the guarded recurrent layer is the
same as for ``--skip-threshold`` -- a recurrent node with ``attrs["guard"]`` whose closed
gate holds its outputs and leaves its state untouched, branched around in the C. Only the
gate's criterion differs: instead of SKIP_GATE's input delta, a learned gate reads its
probability state ``p`` (one more state tensor: u = p >= 0.5, then the update of p above,
computed from the new hidden state by a 1-output fully connected layer and a sigmoid). The
frontends do not recognise these modules yet: an exported SkipGRU is not compiled to that
gate today (it would be a gate op of its own kind next to SKIP_GATE, with the guard, the
held outputs and the C branch shared).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SkipGRU", "SkipGRUCell", "SkipLSTM", "SkipLSTMCell", "budget_penalty", "skip_rate"]


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


class _SkipLayer(nn.Module):
    cell: _SkipCell

    def forward(self, x: torch.Tensor, state: tuple | None = None):
        """x [N, T, F] -> (y [N, T, H], final state, updates [N, T])."""
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

"""A TinyLSTMs-style speech enhancer: log STFT magnitude in (257 bins, 32 ms window, 10 ms
hop at 16 kHz), FC -> 2 LSTM layers -> FC -> sigmoid mask on the noisy magnitude.

``Enhancer`` uses ``nn.LSTM`` (tinyc's fused LSTM op, ``--stream``); ``KpEnhancer`` the same
net with ``tinyc.torch.KroneckerLSTM`` gate matrices, trained in Kronecker form (KPRNN).
``StepEnhancer`` is one 10 ms step with the recurrent states as explicit inputs and outputs
(Kronecker cells export unrolled, so this is how they stream); ``StepEnhancer.from_dense``
writes a trained ``Enhancer`` in that form with nn.Linear gate matrices, which
``--kronecker`` can factor after training.
"""

from __future__ import annotations

import torch
from torch import nn

from tinyc.torch import KroneckerLinear, KroneckerLSTM, KroneckerLSTMCell, SkipLSTM

SR, N_FFT, HOP = 16000, 512, 160
BINS = N_FFT // 2 + 1
FLOOR = 1e-3  # log(|X| + FLOOR)


def stft(x: torch.Tensor) -> torch.Tensor:
    """Complex STFT [..., frames, 257] of 16 kHz audio [..., samples] (Hann 512, hop 160)."""
    w = torch.hann_window(N_FFT)
    return torch.stft(x, N_FFT, HOP, window=w, center=True, return_complex=True).transpose(-1, -2)


def istft(spec: torch.Tensor, length: int) -> torch.Tensor:
    """The inverse of ``stft``."""
    w = torch.hann_window(N_FFT)
    return torch.istft(spec.transpose(-1, -2), N_FFT, HOP, window=w, center=True, length=length)


def features(spec: torch.Tensor) -> torch.Tensor:
    """The model's input: log-compressed magnitude."""
    return torch.log(spec.abs() + FLOOR)


class Enhancer(nn.Module):
    """[batch, frames, 257] log magnitude -> [batch, frames, 257] mask in (0, 1)."""

    def __init__(self, hidden: int = 128) -> None:
        super().__init__()
        self.fc_in = nn.Linear(BINS, hidden)
        self.lstm = nn.LSTM(hidden, hidden, num_layers=2, batch_first=True)
        self.fc_out = nn.Linear(hidden, BINS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.lstm(torch.relu(self.fc_in(x)))
        return torch.sigmoid(self.fc_out(y))


class KpEnhancer(nn.Module):
    """``Enhancer`` with Kronecker-product LSTM gate matrices (rank ``rank``, trained in
    factored form from scratch); the two FC layers (257 is prime) stay dense."""

    def __init__(self, hidden: int = 128, rank: int = 1) -> None:
        super().__init__()
        self.fc_in = nn.Linear(BINS, hidden)
        self.lstm1 = KroneckerLSTM(hidden, hidden, rank)
        self.lstm2 = KroneckerLSTM(hidden, hidden, rank)
        self.fc_out = nn.Linear(hidden, BINS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.lstm1(torch.relu(self.fc_in(x)))
        y, _ = self.lstm2(y)
        return torch.sigmoid(self.fc_out(y))


class SkipEnhancer(nn.Module):
    """``Enhancer`` with two ``tinyc.torch.SkipLSTM`` layers (learned state-update skipping:
    a binary gate from each layer's hidden state decides whether the frame updates it).
    ``forward`` returns the mask and the updates [batch, frames] of both layers."""

    def __init__(self, hidden: int = 128, gate_bias: float = 1.0) -> None:
        super().__init__()
        self.fc_in = nn.Linear(BINS, hidden)
        self.lstm1 = SkipLSTM(hidden, hidden, gate_bias)
        self.lstm2 = SkipLSTM(hidden, hidden, gate_bias)
        self.fc_out = nn.Linear(hidden, BINS)

    def forward_updates(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mask, updates [2, batch, frames]): what training and the skip rates use."""
        y, _, u1 = self.lstm1(torch.relu(self.fc_in(x)))
        y, _, u2 = self.lstm2(y)
        return torch.sigmoid(self.fc_out(y)), torch.stack([u1, u2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The mask only (what tinyc compiles: the updates are not outputs)."""
        y = self.lstm1(torch.relu(self.fc_in(x)))[0]
        return torch.sigmoid(self.fc_out(self.lstm2(y)[0]))

    @classmethod
    def from_dense(cls, m: Enhancer, gate_bias: float = 1.0) -> SkipEnhancer:
        """The dense net's weights (the cells have nn.LSTM's parameters); fresh gates."""
        s = cls(m.lstm.hidden_size, gate_bias)
        s.fc_in.load_state_dict(m.fc_in.state_dict())
        s.fc_out.load_state_dict(m.fc_out.state_dict())
        for layer, skip in enumerate((s.lstm1, s.lstm2)):
            for part in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(skip.cell.cell, part).data.copy_(getattr(m.lstm, f"{part}_l{layer}"))
        return s


class DenseCell(nn.Module):
    """``nn.LSTMCell`` written out with two nn.Linear gate layers (exports as
    FULLY_CONNECTED nodes + elementwise gate arithmetic, which ``--kronecker`` can factor)."""

    def __init__(self, input_size: int, hidden: int) -> None:
        super().__init__()
        self.ih = nn.Linear(input_size, 4 * hidden)
        self.hh = nn.Linear(hidden, 4 * hidden)

    def forward(self, x, state):
        h, c = state
        i, f, g, o = (self.ih(x) + self.hh(h)).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class StepEnhancer(nn.Module):
    """One frame: (x [1, 257], h1, c1, h2, c2 [1, H]) -> (mask, h1, c1, h2, c2)."""

    def __init__(self, fc_in: nn.Linear, cell1: nn.Module, cell2: nn.Module, fc_out: nn.Linear):
        super().__init__()
        self.fc_in, self.cell1, self.cell2, self.fc_out = fc_in, cell1, cell2, fc_out

    def forward(self, x, h1, c1, h2, c2):
        h1, c1 = self.cell1(torch.relu(self.fc_in(x)), (h1, c1))
        h2, c2 = self.cell2(h1, (h2, c2))
        return torch.sigmoid(self.fc_out(h2)), h1, c1, h2, c2

    @classmethod
    def from_kp(cls, m: KpEnhancer) -> StepEnhancer:
        return cls(m.fc_in, m.lstm1.cell, m.lstm2.cell, m.fc_out).eval()

    @classmethod
    def from_dense(cls, m: Enhancer) -> StepEnhancer:
        cells = []
        for layer in range(2):
            cell = DenseCell(m.lstm.hidden_size, m.lstm.hidden_size)
            for part in ("ih", "hh"):
                getattr(cell, part).weight.data.copy_(getattr(m.lstm, f"weight_{part}_l{layer}"))
                getattr(cell, part).bias.data.copy_(getattr(m.lstm, f"bias_{part}_l{layer}"))
            cells.append(cell)
        return cls(m.fc_in, cells[0], cells[1], m.fc_out).eval()


def step_inputs(hidden: int) -> tuple[torch.Tensor, ...]:
    """Example inputs of a ``StepEnhancer``."""
    return (torch.zeros(1, BINS), *(torch.zeros(1, hidden) for _ in range(4)))


__all__ = [
    "DenseCell",
    "Enhancer",
    "KpEnhancer",
    "KroneckerLSTMCell",
    "KroneckerLinear",
    "SkipEnhancer",
    "StepEnhancer",
    "features",
    "istft",
    "step_inputs",
    "stft",
]

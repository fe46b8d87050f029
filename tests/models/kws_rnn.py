"""Keyword-spotting recurrent models for tinyc's tests (the factory contract of
``tinyc compile file.py:factory``: a module and its example inputs).

Input: 49 frames of 10 MFCC coefficients (1 s of audio, 40 ms windows, 20 ms hop), as in
the "Hello Edge" KWS models; a 2-layer recurrent stack of 64 units reads the frames, and the
last step's hidden state goes through a linear layer to the 12 Speech Commands classes.
Weights are random (seeded): the tests compare tinyc with PyTorch, not accuracy.
"""

from __future__ import annotations

import torch
from torch import nn

FRAMES, MFCC, HIDDEN, CLASSES = 49, 10, 64, 12


class KwsRnn(nn.Module):
    """MFCC frames [batch, 49, 10] -> 2-layer LSTM or GRU -> last step -> 12 logits."""

    def __init__(self, cell: type[nn.LSTM] | type[nn.GRU]) -> None:
        super().__init__()
        self.rnn = cell(MFCC, HIDDEN, num_layers=2, batch_first=True)
        self.fc = nn.Linear(HIDDEN, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.rnn(x)
        return self.fc(y[:, -1, :])


def _make(cell: type[nn.LSTM] | type[nn.GRU]) -> tuple[nn.Module, tuple[torch.Tensor]]:
    torch.manual_seed(0)
    return KwsRnn(cell).eval(), (torch.zeros(1, FRAMES, MFCC),)


def kws_lstm() -> tuple[nn.Module, tuple[torch.Tensor]]:
    """``tinyc compile tests/models/kws_rnn.py:kws_lstm``"""
    return _make(nn.LSTM)


def kws_gru() -> tuple[nn.Module, tuple[torch.Tensor]]:
    """``tinyc compile tests/models/kws_rnn.py:kws_gru``"""
    return _make(nn.GRU)

"""A fully-connected layer before the first recurrent layer (FC -> LSTM, as in speech
enhancers) streams: the time axis is traced back through the FC, which changes only the
feature axis, and the step-by-step result equals the whole sequence, bit for bit in int8."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from tinyc import interpreter
from tinyc.frontend.torch.loader import export_module
from tinyc.modelio import random_inputs
from tinyc.passes.quantize import QuantOptions, quantize
from tinyc.passes.streaming import run_streaming, to_streaming


class FcLstm(nn.Module):
    """[1, 6, 9] -> FC 9->8 + ReLU -> 2-layer LSTM of 8 -> FC 8->9 -> sigmoid."""

    def __init__(self) -> None:
        super().__init__()
        self.fc_in = nn.Linear(9, 8)
        self.lstm = nn.LSTM(8, 8, num_layers=2, batch_first=True)
        self.fc_out = nn.Linear(8, 9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.lstm(torch.relu(self.fc_in(x)))
        return torch.sigmoid(self.fc_out(y))


def test_fc_before_lstm_streams() -> None:
    torch.manual_seed(0)
    g = export_module(FcLstm(), (torch.zeros(1, 6, 9),), "fc_lstm")
    rng = np.random.default_rng(0)
    data = [[rng.standard_normal((1, 6, 9)).astype(np.float32)] for _ in range(16)]
    q, _ = quantize(g, data, QuantOptions())
    for graph in (g, q):
        plan = to_streaming(graph)
        assert plan.tail is None and plan.steps == 6
        assert plan.step.tensors[plan.step.inputs[0]].shape == (1, 1, 9)
        for seed in range(3):
            xs = random_inputs(graph, seed)
            want = interpreter.run(graph, xs)
            got = run_streaming(plan, xs)
            for name in graph.outputs:
                if graph is q:
                    np.testing.assert_array_equal(got[name], want[name])
                else:
                    np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-5)

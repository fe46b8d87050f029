"""LSTM / GRU lowered to their cells' ops (tinyc.passes.lower_recurrent): the float results
equal the fused op's on every configuration the fused op takes (batches, time-major,
reverse, final states, run-time initial states, GRU with and without linear_before_reset),
and what cannot be lowered says why."""

from __future__ import annotations

import numpy as np
import pytest
from rnn_graphs import Case, float_graph, samples

from tinyc import interpreter
from tinyc.ir.verify import verify
from tinyc.passes.lower_recurrent import lower_recurrent

CASES = [
    Case("LSTM"),
    Case("LSTM", batch=2, time=4, time_major=True, final_state=True),
    Case("LSTM", time=3, reverse=True, state_input=True, final_state=True, sequence=False),
    Case("LSTM", time=1, input=5, hidden=8),
    Case("LSTM", attrs={"clip": 1.5, "cell_clip": 0.8}, final_state=True),
    Case("GRU"),
    Case("GRU", batch=3, time=4, reverse=True, final_state=True),
    Case("GRU", attrs={"linear_before_reset": True, "clip": 1.0}, state_input=True),
    Case("GRU", time=2, time_major=True, attrs={"linear_before_reset": True}, final_state=True),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_lowered_equals_fused(case: Case) -> None:
    g = float_graph(case)
    low, origin, refused = lower_recurrent(g, {"rnn"})
    verify(low)
    assert not refused and all(n.op != case.op for n in low.nodes)
    sides = {side for _, side in origin.values()}
    assert sides >= {"input", "recurrent"}
    fcs = [n for n in low.nodes if n.op == "FULLY_CONNECTED"]
    assert len(fcs) == len(origin) and len({n.inputs[1] for n in fcs}) <= 3  # shared weights
    for s in samples(g, 3, case.seed + 1):
        ref = interpreter.run(g, s)
        got = interpreter.run(low, s)
        for name in g.outputs:
            np.testing.assert_allclose(got[name], ref[name], rtol=1e-5, atol=1e-5)


def test_what_stays_fused_says_why() -> None:
    g = float_graph(Case("LSTM", attrs={"activations": ("Sigmoid", "Relu", "Tanh")}))
    low, origin, refused = lower_recurrent(g, {"rnn"})
    assert refused == {"rnn": "activations ['Sigmoid', 'Relu', 'Tanh']"} and not origin
    assert [n.op for n in low.nodes] == ["LSTM"]
    g = float_graph(Case("RNN"))
    _, _, refused = lower_recurrent(g, {"rnn"})
    assert refused == {"rnn": "RNN is not an LSTM or GRU"}


def test_run_time_weights_stay_fused() -> None:
    """A bias (or weight) the model computes is no constant to stack: the layer stays fused."""
    g = float_graph(Case("GRU"))
    b = g.tensors["rb1"]
    b.data = None
    g.inputs.append("rb1")
    low, origin, refused = lower_recurrent(g, {"rnn"})
    assert refused == {"rnn": "weights or biases computed at run time"} and not origin
    assert [n.op for n in low.nodes] == ["GRU"]

"""PyTorch recurrent layers through torch.export: nn.LSTM / nn.GRU / nn.RNN and their cells
against PyTorch itself, the IR operands they become (gate order, folded biases), slicing
(the last time step), the decomposed programs, two keyword-spotting models loaded as
``file.py:factory``, and the errors for what tinyc refuses."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import REPO

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from tinyc import interpreter  # noqa: E402
from tinyc.errors import UnsupportedError  # noqa: E402
from tinyc.frontend import load_model  # noqa: E402
from tinyc.frontend.torch import export_module, from_exported_program  # noqa: E402
from tinyc.ir.graph import Graph  # noqa: E402
from tinyc.modelio import to_external, to_internal  # noqa: E402

# nn.LSTM & co. rebuild their weight list in forward, which torch.export warns about
pytestmark = pytest.mark.filterwarnings("ignore:The tensor attributes:UserWarning")

RTOL, ATOL = 1e-4, 1e-5


def _run(g: Graph, xs: list[np.ndarray]) -> list[np.ndarray]:
    ins = [to_internal(g, n, x) for n, x in zip(g.inputs, xs, strict=True)]
    out = interpreter.run(g, ins)
    return [to_external(g, n, out[n]) for n in g.outputs]


def _flat(v) -> list:
    if isinstance(v, tuple | list):
        return [x for item in v for x in _flat(item)]
    return [v]


def _compare(g: Graph, module: nn.Module, xs: tuple) -> None:
    with torch.no_grad():
        want = _flat(module(*xs))
    got = _run(g, [x.numpy() for x in xs])
    assert len(got) == len(want)
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        assert a.shape == tuple(b.shape), f"output {i}"
        np.testing.assert_allclose(a, b.numpy(), rtol=RTOL, atol=ATOL, err_msg=f"output {i}")


def _check(module: nn.Module, *shapes: tuple[int, ...], decompose: bool = False) -> Graph:
    """``module`` on random inputs of ``shapes``: tinyc's graph against PyTorch."""
    torch.manual_seed(1)
    module = module.eval()
    xs = tuple(torch.randn(s) for s in shapes)
    if decompose:
        with torch.no_grad():
            ep = torch.export.export(module, xs).run_decompositions()
        g = from_exported_program(ep, type(module).__name__)
    else:
        g = export_module(module, xs, type(module).__name__)
    _compare(g, module, xs)
    return g


def _ops(g: Graph, kind: str) -> list:
    return [n for n in g.nodes if n.op == kind]


class Layer(nn.Module):
    """A recurrent layer whose initial states (if any) are model inputs."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x, *states):
        if not states:
            return self.layer(x)
        lstm = isinstance(self.layer, nn.LSTM | nn.LSTMCell)
        return self.layer(x, tuple(states) if lstm else states[0])


T, B, I, H = 5, 2, 4, 3
SEQ, SEQ_BF = (T, B, I), (B, T, I)


def _state(layers: int = 1, bidirectional: bool = False) -> tuple[int, int, int]:
    return (layers * (2 if bidirectional else 1), B, H)


# (module, input shapes): every configuration the brief names, per layer kind
LAYER_CASES = {
    "lstm": (lambda: nn.LSTM(I, H), [SEQ]),
    "lstm_batch_first": (lambda: nn.LSTM(I, H, batch_first=True), [SEQ_BF]),
    "lstm_2_layers_bidirectional": (
        lambda: nn.LSTM(I, H, num_layers=2, bidirectional=True),
        [SEQ],
    ),
    "lstm_3_layers_batch_first_bidirectional_states": (
        lambda: nn.LSTM(I, H, num_layers=3, batch_first=True, bidirectional=True),
        [SEQ_BF, _state(3, True), _state(3, True)],
    ),
    "lstm_no_bias_states": (lambda: nn.LSTM(I, H, bias=False), [SEQ, _state(), _state()]),
    "lstm_unbatched": (lambda: nn.LSTM(I, H, num_layers=2), [(T, I)]),
    "gru": (lambda: nn.GRU(I, H), [SEQ]),
    "gru_2_layers_batch_first_bidirectional": (
        lambda: nn.GRU(I, H, num_layers=2, batch_first=True, bidirectional=True),
        [SEQ_BF],
    ),
    "gru_2_layers_states": (lambda: nn.GRU(I, H, num_layers=2), [SEQ, _state(2)]),
    "gru_no_bias_bidirectional_states": (
        lambda: nn.GRU(I, H, bias=False, bidirectional=True),
        [SEQ, _state(1, True)],
    ),
    "rnn_tanh": (lambda: nn.RNN(I, H), [SEQ]),
    "rnn_relu_2_layers_batch_first": (
        lambda: nn.RNN(I, H, num_layers=2, nonlinearity="relu", batch_first=True),
        [SEQ_BF],
    ),
    "rnn_tanh_bidirectional_states": (
        lambda: nn.RNN(I, H, bidirectional=True),
        [SEQ, _state(1, True)],
    ),
    "rnn_relu_no_bias_states": (
        lambda: nn.RNN(I, H, nonlinearity="relu", bias=False),
        [SEQ, _state()],
    ),
}

CELL_CASES = {
    "lstm_cell": (lambda: nn.LSTMCell(I, H), [(B, I)]),
    "lstm_cell_states": (lambda: nn.LSTMCell(I, H), [(B, I), (B, H), (B, H)]),
    "lstm_cell_no_bias": (lambda: nn.LSTMCell(I, H, bias=False), [(B, I), (B, H), (B, H)]),
    "gru_cell": (lambda: nn.GRUCell(I, H), [(B, I)]),
    "gru_cell_state": (lambda: nn.GRUCell(I, H), [(B, I), (B, H)]),
    "rnn_cell_tanh_state": (lambda: nn.RNNCell(I, H), [(B, I), (B, H)]),
    "rnn_cell_relu_no_bias": (lambda: nn.RNNCell(I, H, nonlinearity="relu", bias=False), [(B, I)]),
}


@pytest.mark.parametrize("case", list(LAYER_CASES))
def test_recurrent_layers_match_pytorch(case):
    make, shapes = LAYER_CASES[case]
    module = make()
    g = _check(Layer(module), *shapes)
    kind = {nn.LSTM: "LSTM", nn.GRU: "GRU", nn.RNN: "RNN"}[type(module)]
    dirs = 2 if module.bidirectional else 1
    ops = _ops(g, kind)
    assert len(ops) == module.num_layers * dirs
    assert [n.attrs["reverse"] for n in ops] == [False, True][:dirs] * module.num_layers
    assert len(_ops(g, "CONCATENATION")) == (module.num_layers if dirs == 2 else 0)
    assert not _ops(g, "TRANSPOSE")  # time-major or batch-major: whichever the input is


@pytest.mark.parametrize("case", list(CELL_CASES))
def test_recurrent_cells_match_pytorch(case):
    make, shapes = CELL_CASES[case]
    g = _check(Layer(make()), *shapes)
    (op,) = [n for n in g.nodes if n.op in ("LSTM", "GRU", "RNN")]
    x = g.tensors[op.inputs[0]]
    assert x.shape == (B, 1, I)  # one time step
    assert all(not o for o in op.outputs[1:2])  # h' is the one-step sequence


def test_gate_order_and_folded_biases():
    """PyTorch's stacked gates land in the IR's slots; GRU and RNN biases folded as the
    int8 kernels want them."""
    lstm, gru, rnn = nn.LSTM(I, H), nn.GRU(I, H), nn.RNN(I, H)
    x = (torch.randn(SEQ),)

    def const(g, node, slot):
        return g.tensors[node.inputs[slot]].data

    g = export_module(lstm, x)
    (n,) = _ops(g, "LSTM")
    w, b = lstm.weight_ih_l0.detach().numpy(), (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach()
    for k in range(4):  # i, f, g (the cell gate), o
        np.testing.assert_array_equal(const(g, n, 1 + k), w[k * H : (k + 1) * H])
        np.testing.assert_allclose(const(g, n, 12 + k), b[k * H : (k + 1) * H].numpy())
    assert all(g.inp(n, slot) is None for slot in (9, 10, 11, 16, 17, 18, 19))  # no peepholes
    assert n.attrs["time_major"] is True

    g = export_module(gru, x)
    (n,) = _ops(g, "GRU")
    b_ih, b_hh = gru.bias_ih_l0.detach().numpy(), gru.bias_hh_l0.detach().numpy()
    rows = {"r": slice(0, H), "z": slice(H, 2 * H), "n": slice(2 * H, 3 * H)}
    w_hh = gru.weight_hh_l0.detach().numpy()
    for slot, gate in zip((4, 5, 6), "zrn", strict=True):
        np.testing.assert_array_equal(const(g, n, slot), w_hh[rows[gate]])
    np.testing.assert_allclose(const(g, n, 7), b_ih[rows["z"]] + b_hh[rows["z"]])
    np.testing.assert_allclose(const(g, n, 8), b_ih[rows["r"]] + b_hh[rows["r"]])
    np.testing.assert_array_equal(const(g, n, 9), b_ih[rows["n"]])
    assert g.inp(n, 10) is None and g.inp(n, 11) is None
    np.testing.assert_array_equal(const(g, n, 12), b_hh[rows["n"]])
    assert n.attrs["linear_before_reset"] is True

    g = export_module(rnn, x)
    (n,) = _ops(g, "RNN")
    want = (rnn.bias_ih_l0 + rnn.bias_hh_l0).detach().numpy()
    np.testing.assert_allclose(const(g, n, 3), want)
    assert g.inp(n, 4) is None and g.inp(n, 5) is None  # Rb folded into Wb, h0 zeros


class FinalState(nn.Module):
    """Reads only the last layer's final hidden state (``h_n[-1]``)."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(I, H, num_layers=2, batch_first=True)
        self.fc = nn.Linear(H, 2)

    def forward(self, x):
        _, (h, _) = self.lstm(x)
        return self.fc(h[-1])


def test_only_the_outputs_read_are_computed():
    g = _check(FinalState(), SEQ_BF)
    ops = _ops(g, "LSTM")
    assert len(ops) == 2 and all(len(n.outputs) == 2 for n in ops)  # no final cell states
    assert _ops(g, "PACK")


class ConvLstm(nn.Module):
    """Conv1d features read by a batch-first LSTM: the [N, L, C] storage of the Conv1d
    output is already the LSTM's batch-major layout."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(I, 6, 3, padding=1)
        self.lstm = nn.LSTM(6, H, batch_first=True)

    def forward(self, x):
        y, _ = self.lstm(torch.relu(self.conv(x)).permute(0, 2, 1))
        return y[:, -1]


def test_conv1d_into_lstm_moves_no_data():
    g = _check(ConvLstm(), (B, I, 7))
    assert not _ops(g, "TRANSPOSE")
    (n,) = _ops(g, "LSTM")
    assert n.attrs["time_major"] is False


class PermutedGru(nn.Module):
    """A time-major GRU fed a batch-major tensor through permute: it reads the batch-major
    storage as it is, and so does the GRU after it."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.GRU(I, H, bidirectional=True), nn.GRU(2 * H, H)

    def forward(self, x):
        y, _ = self.a(x.permute(1, 0, 2))
        z, h = self.b(y)
        return z.permute(1, 0, 2), h


def test_permuted_input_sets_the_layout_instead_of_moving_data():
    g = _check(PermutedGru(), SEQ_BF)
    assert not _ops(g, "TRANSPOSE")
    assert all(n.attrs["time_major"] is False for n in _ops(g, "GRU"))


class LearnedState(nn.Module):
    """Initial states held as parameters (a learned initial state)."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(I, H, num_layers=2, bidirectional=True)
        self.h0 = nn.Parameter(torch.randn(4, 1, H))
        self.c0 = nn.Parameter(torch.zeros(4, 1, H))

    def forward(self, x):
        h0 = self.h0.expand(-1, x.shape[1], -1).contiguous()
        return self.lstm(x, (h0, self.c0.expand(-1, x.shape[1], -1).contiguous()))


def test_constant_initial_states():
    g = _check(LearnedState(), SEQ)
    for n in _ops(g, "LSTM"):
        h0 = g.inp(n, 18)
        assert h0 is not None and h0.is_const and h0.shape == (B, H)
        assert g.inp(n, 19) is None  # all-zero c0: the op's default


class CellLoop(nn.Module):
    """A cell stepped over the sequence in Python: one op per step, chained by state."""

    def __init__(self) -> None:
        super().__init__()
        self.cell = nn.GRUCell(I, H)

    def forward(self, x):
        h = torch.zeros(x.shape[0], H)
        outs = []
        for t in range(x.shape[1]):
            h = self.cell(x[:, t], h)
            outs.append(h)
        return torch.stack(outs, 1), h


def test_cell_stepped_in_python():
    g = _check(CellLoop(), SEQ_BF)
    assert len(_ops(g, "GRU")) == T and len(_ops(g, "PACK")) == 1


# -- slicing: the last time step and friends -------------------------------------------------


class Slices(nn.Module):
    def forward(self, x):
        a, b = x.chunk(2, dim=2)
        c = x.split([1, 3], dim=2)
        d = x.unbind(1)
        return (
            x[:, -1, :],
            x[-1],
            x[:, 1:3],
            x[:, 0],
            b - a,
            c[1],
            d[1] + d[2],
            x.narrow(1, 1, 2),
            torch.split(x, 3, dim=2)[1],
            x.flip(1),
            x[:, :],
            torch.stack([x.permute(2, 0, 1), x.permute(2, 0, 1) * 2], dim=1),
        )


def test_select_slice_split_unbind_flip_stack_match_pytorch():
    g = _check(Slices(), (2, 3, 4))
    assert {n.op for n in g.nodes} <= {"SPLIT_V", "UNPACK", "PACK", "RESHAPE", "SUB", "ADD", "MUL"}


def test_strided_slice_is_refused_by_name():
    class Strided(nn.Module):
        def forward(self, x):
            return x[:, ::2]

    with pytest.raises(
        UnsupportedError, match=r"node 'slice_1' \(aten.slice\): slicing with step 2"
    ):
        _strict(export_module(Strided(), (torch.randn(2, 5, 3),)))


# -- the decomposed programs (ExportedProgram.run_decompositions) ------------------------------


DECOMPOSED = {
    "lstm": (lambda: nn.LSTM(I, H), [SEQ]),
    "lstm_batch_first": (lambda: nn.LSTM(I, H, batch_first=True), [SEQ_BF]),
    "gru_state": (lambda: nn.GRU(I, H), [SEQ, _state()]),
    "rnn_relu": (lambda: nn.RNN(I, H, nonlinearity="relu"), [SEQ]),
    "lstm_cell": (lambda: nn.LSTMCell(I, H), [(B, I)]),
    "gru_cell": (lambda: nn.GRUCell(I, H), [(B, I), (B, H)]),
    "rnn_cell": (lambda: nn.RNNCell(I, H), [(B, I)]),
    "lstm_2_layers_bidirectional": (lambda: nn.LSTM(I, H, 2, bidirectional=True), [SEQ]),
}


@pytest.mark.parametrize("case", list(DECOMPOSED))
def test_decomposed_recurrent_programs_match_pytorch(case):
    """A program saved after run_decompositions() holds the cell's elementwise pieces
    (addmm, split_with_sizes, sigmoid, tanh, mul, add, slices, cat) instead of aten.lstm."""
    make, shapes = DECOMPOSED[case]
    g = _check(Layer(make()), *shapes, decompose=True)
    assert not [n for n in g.nodes if n.op in ("LSTM", "GRU", "RNN")]


# -- keyword spotting: file.py:factory -------------------------------------------------------


@pytest.mark.parametrize("factory,kind", [("kws_lstm", "LSTM"), ("kws_gru", "GRU")])
def test_kws_factories_match_pytorch(factory, kind):
    from models import kws_rnn

    g = load_model(f"{REPO / 'tests/models/kws_rnn.py'}:{factory}")
    module, (example,) = getattr(kws_rnn, factory)()
    assert g.tensors[g.inputs[0]].shape == tuple(example.shape)
    assert [n.op for n in g.nodes if n.op in ("LSTM", "GRU", "FULLY_CONNECTED")] == [
        kind,
        kind,
        "FULLY_CONNECTED",
    ]
    torch.manual_seed(3)
    for _ in range(2):
        _compare(g, module, (torch.randn(example.shape),))


# -- errors ----------------------------------------------------------------------------------


def test_lstm_projection_is_refused_by_name():
    with pytest.raises(UnsupportedError, match=r"node 'lstm' \(aten.lstm\): LSTM with proj_size"):
        _strict(export_module(Layer(nn.LSTM(I, H, proj_size=2)), (torch.randn(SEQ),)))


def test_training_mode_dropout_is_refused_by_name():
    module = Layer(nn.LSTM(I, H, num_layers=2, dropout=0.5)).train()
    ep = torch.export.export(module, (torch.randn(SEQ),))
    with pytest.raises(UnsupportedError, match=r"node 'lstm' \(aten.lstm\): dropout between"):
        _strict(from_exported_program(ep))


def _strict(g):
    """What compile and infer do first: refuse every node tinyc cannot run, by name."""
    from tinyc.ir.verify import require_supported

    require_supported(g)
    return g


def test_every_unsupported_operator_is_listed_once():
    class Unsupported(nn.Module):
        def forward(self, x):
            a = torch.sort(x, dim=-1).values
            b = torch.sort(a * 2, dim=-1).values
            c = torch.sort(b + 1, dim=-1).values
            d = torch.sort(c - 1, dim=-1).values
            return torch.cumsum(d, -1) + torch.sigmoid(d)

    from tinyc.ir.verify import require_supported

    g = export_module(Unsupported(), (torch.randn(1, 4),), "m")  # loads: inspect shows it
    assert sum(n.op == "UNSUPPORTED" for n in g.nodes) == 5
    with pytest.raises(UnsupportedError) as e:
        require_supported(g, "m")
    assert str(e.value) == (
        "m: 5 unsupported operator(s): "
        "aten.sort x4 (sort, sort_1, sort_2, ...), aten.cumsum (cumsum)"
    )

"""PyTorch frontend: torch.export programs against PyTorch itself, the BC-ResNet acceptance
case (shared state_dict, int8, bit-exact across backends), and HARD_SWISH against TFLM."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import REPO, model_path

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from tinyc import interpreter  # noqa: E402
from tinyc.errors import TinycError, UnsupportedError  # noqa: E402
from tinyc.frontend import load_model  # noqa: E402
from tinyc.frontend.torch import export_module, load_state_dict  # noqa: E402
from tinyc.ir.graph import Graph, Node  # noqa: E402
from tinyc.ir.tensor import QuantParams, Tensor  # noqa: E402
from tinyc.modelio import to_external, to_internal  # noqa: E402
from tinyc.passes.quantize import QuantOptions, quantize  # noqa: E402

BCRESNET_WEIGHTS = "pytorch_bcresnet_sc2/model-sc-2.pt"


def _randomize_bn(m: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(0)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm1d | nn.BatchNorm2d):
            mod.running_mean.uniform_(-1, 1, generator=g)
            mod.running_var.uniform_(0.5, 2, generator=g)
            mod.weight.data.uniform_(0.5, 1.5, generator=g)
            mod.bias.data.uniform_(-1, 1, generator=g)
    return m.eval()


def _run(g: Graph, xs: list[np.ndarray]) -> list[np.ndarray]:
    ins = [to_internal(g, n, x) for n, x in zip(g.inputs, xs, strict=True)]
    out = interpreter.run(g, ins)
    return [to_external(g, n, out[n]) for n in g.outputs]


def _check(module: nn.Module, *shapes: tuple[int, ...], seed: int = 0) -> Graph:
    torch.manual_seed(seed)
    module = _randomize_bn(module)
    xs = tuple(torch.randn(s) for s in shapes)
    g = export_module(module, xs, type(module).__name__)
    with torch.no_grad():
        ref = module(*xs)
    refs = ref if isinstance(ref, tuple) else (ref,)
    for got, want in zip(_run(g, [x.numpy() for x in xs]), refs, strict=True):
        want = want.numpy()
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    return g


class Seq(nn.Module):
    def __init__(self, *layers: nn.Module, fn=None):
        super().__init__()
        self.layers = nn.Sequential(*layers)
        self.fn = fn

    def forward(self, x):
        y = self.layers(x)
        return self.fn(y) if self.fn else y


RGB, QUAD = (1, 3, 8, 8), (1, 4, 8, 8)
CONV_CASES = {
    "conv_bn_relu": (lambda: Seq(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()), RGB),
    "conv_same_dilation": (lambda: Seq(nn.Conv2d(3, 6, (3, 5), padding="same", dilation=2)), RGB),
    "conv_stride_pad": (lambda: Seq(nn.Conv2d(3, 6, 3, stride=2, padding=(2, 1), bias=False)), RGB),
    "depthwise_bn_relu6": (
        lambda: Seq(nn.Conv2d(4, 4, 3, groups=4, padding=1), nn.BatchNorm2d(4), nn.ReLU6()),
        QUAD,
    ),
    "depthwise_multiplier": (lambda: Seq(nn.Conv2d(4, 8, 3, groups=4, stride=2)), QUAD),
    "grouped_silu": (lambda: Seq(nn.Conv2d(6, 9, 3, groups=3, padding=1), nn.SiLU()), (1, 6, 8, 8)),
    "bn_alone": (lambda: Seq(nn.ReLU(), nn.BatchNorm2d(3)), RGB),
    "activations": (
        lambda: Seq(
            nn.Conv2d(3, 4, 1), nn.Hardswish(), nn.Conv2d(4, 4, 1), nn.Sigmoid(), nn.Tanh()
        ),
        RGB,
    ),
    "pools": (lambda: Seq(nn.MaxPool2d(2), nn.AvgPool2d(3, stride=1, padding=1)), RGB),
    "pool_exclude_pad": (
        lambda: Seq(nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)),
        RGB,
    ),
    "pool_ceil": (lambda: Seq(nn.MaxPool2d(3, stride=2, ceil_mode=True)), RGB),
    "adaptive": (
        lambda: Seq(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5)),
        RGB,
    ),
    "flatten_linear_softmax": (
        lambda: Seq(nn.Flatten(), nn.Linear(3 * 8 * 8, 10), nn.Softmax(dim=-1)),
        RGB,
    ),
}


@pytest.mark.parametrize("case", list(CONV_CASES))
def test_conv_and_pool_modules_match_pytorch(case):
    make, shape = CONV_CASES[case]
    _check(make(), shape)


class Conv1dNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(4, 8, 3, padding=1)
        self.bn = nn.BatchNorm1d(8)
        self.dw = nn.Conv1d(8, 8, 5, groups=8, dilation=2, stride=2)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        y = F.relu(self.bn(self.c1(x)))
        y = self.dw(y)
        return self.fc(y.mean(dim=2))


class Elementwise(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1)
        self.b = nn.Conv2d(3, 4, 1)
        self.scale = nn.Parameter(torch.randn(1, 4, 1, 1))

    def forward(self, x):
        a, b = self.a(x), self.b(x)
        y = torch.cat([a * b, a + 0.5, 2.0 - b, a / 4.0], dim=1)
        y = y * self.scale.repeat(1, 4, 1, 1)
        z = y.permute(0, 2, 3, 1).reshape(1, -1, 16)
        pooled = a + a.mean(dim=2, keepdim=True).repeat(1, 1, 6, 1)
        return z.mean(dim=1), y.mean(dim=(2, 3), keepdim=True) + pooled.mean((1, 3), True)


def test_conv1d_and_batchnorm1d_fold():
    g = _check(Conv1dNet(), (1, 4, 20))
    assert "MUL" not in [n.op for n in g.nodes]  # BatchNorm1d folded into the Conv1d


def test_elementwise_cat_permute_reshape_mean():
    _check(Elementwise(), (1, 3, 6, 6))


def test_batchnorm_folds_into_conv_but_not_when_shared():
    g = _check(Seq(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)), (1, 3, 6, 6))
    assert [n.op for n in g.nodes] == ["CONV_2D"]

    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.c, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

        def forward(self, x):
            y = self.c(x)
            return self.bn(y) + y

    g = _check(Shared(), (1, 3, 6, 6))
    assert "MUL" in [n.op for n in g.nodes]


def test_saved_program_and_factory_with_state_dict(tmp_path):
    m = _randomize_bn(Seq(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()))
    x = torch.randn(1, 3, 8, 8)
    ep = torch.export.export(m, (x,))
    torch.export.save(ep, tmp_path / "m.pt2")
    with torch.no_grad():
        want = m(x).numpy()
    g = load_model(tmp_path / "m.pt2")
    np.testing.assert_allclose(_run(g, [x.numpy()])[0], want, rtol=1e-4, atol=1e-5)

    (tmp_path / "net.py").write_text(
        "import torch\nfrom torch import nn\n\n"
        "def make():\n"
        "    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())\n"
        "    return m, (torch.zeros(1, 3, 8, 8),)\n"
    )
    torch.save({k.removeprefix("layers."): v for k, v in m.state_dict().items()}, tmp_path / "w.pt")
    g = load_model(f"{tmp_path / 'net.py'}:make@{tmp_path / 'w.pt'}")
    np.testing.assert_allclose(_run(g, [x.numpy()])[0], want, rtol=1e-4, atol=1e-5)
    with pytest.raises(TinycError, match="no callable 'nope'"):
        load_model(f"{tmp_path / 'net.py'}:nope")
    torch.save({"bogus": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(TinycError, match="does not fit the module"):
        load_model(f"{tmp_path / 'net.py'}:make@{tmp_path / 'bad.pt'}")


def test_unsupported_operator_names_the_node():
    class Sorts(nn.Module):
        def forward(self, x):
            return torch.sort(x, dim=-1).values

    from tinyc.ir.verify import require_supported

    with pytest.raises(UnsupportedError, match=r"aten.sort \(sort\)"):
        require_supported(export_module(Sorts(), (torch.randn(1, 4),)))


# -- HARD_SWISH: TFLM's int8 kernel -------------------------------------------------------------


def _one_op_tflite(kind: str, x: Tensor, y: Tensor) -> bytes:
    """A .tflite holding one unary op with int8 in and out (built directly from the schema,
    so this checks the op definition, not tinyc's writer)."""
    import flatbuffers

    from tinyc.tflite_schema import builtin_codes, schema

    S = schema()

    def tensor(t: Tensor) -> object:
        tt = S.TensorT()
        tt.shape, tt.type, tt.name, tt.buffer = list(t.shape), 9, t.name.encode(), 0
        q = S.QuantizationParametersT()
        q.scale, q.zeroPoint = [float(t.quant.s)], [t.quant.zp]
        tt.quantization = q
        return tt

    op = S.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0], [1]
    sg = S.SubGraphT()
    sg.tensors, sg.inputs, sg.outputs, sg.operators = [tensor(x), tensor(y)], [0], [1], [op]
    code = S.OperatorCodeT()
    code.builtinCode = builtin_codes()[kind]
    code.deprecatedBuiltinCode = min(code.builtinCode, 127)
    code.version = 1
    m = S.ModelT()
    m.version, m.operatorCodes, m.subgraphs, m.buffers = 3, [code], [sg], [S.BufferT()]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


@pytest.mark.parametrize(
    "in_q,out_q",
    [((0.05, -10), (0.03, -60)), ((0.2, 5), (0.1, -100)), ((0.01, 0), (0.5, -120))],
)
def test_hard_swish_int8_is_bit_exact_with_tflm(in_q, out_q):
    from tinyc.backends.tflm import host

    x = Tensor("x", (1, 256), "int8", quant=QuantParams(*in_q))
    y = Tensor("y", (1, 256), "int8", quant=QuantParams(*out_q))
    g = Graph(name="hs", inputs=["x"], outputs=["y"])
    g.add_tensor(x)
    g.add_tensor(y)
    g.nodes = [Node("HARD_SWISH", "y", ["x"], ["y"])]
    data = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    (want,) = host.run(_one_op_tflite("HARD_SWISH", x, y), [data])
    np.testing.assert_array_equal(interpreter.run(g, [data])["y"], want)


# -- BC-ResNet: the shared state_dict, int8, every backend ----------------------------------------


@pytest.fixture(scope="module")
def bcresnet():
    from models.bcresnet import bcresnet_sc2, synthetic_logmel

    module, example = bcresnet_sc2()
    load_state_dict(module, model_path(BCRESNET_WEIGHTS))
    g = export_module(module, example, "bcresnet_sc2")
    return module.eval(), g, synthetic_logmel


def test_bcresnet_state_dict_loads_strictly_and_imports_exactly(bcresnet):
    module, g, logmel = bcresnet
    xs = logmel(4, seed=5)
    with torch.no_grad():
        want = module(torch.from_numpy(xs)).numpy()
    for x, w in zip(xs, want, strict=True):
        (got,) = _run(g, [x[None]])
        np.testing.assert_allclose(got.reshape(-1), w, rtol=1e-4, atol=1e-4 * np.abs(w).max())
    ops = {n.op for n in g.nodes}
    assert "MUL" in ops and "LOGISTIC" in ops  # SiLU
    assert not any(n.op == "ADD" and "shift" in n.name for n in g.nodes)  # SSN folded


def test_bcresnet_int8_runs_and_agrees_bit_exact_across_backends(bcresnet, tmp_path):
    from test_quantize import _assert_tflm_and_c_match

    _, g, logmel = bcresnet
    cal = [[to_internal(g, g.inputs[0], x[None])] for x in logmel(32, seed=1)]
    ev = [[to_internal(g, g.inputs[0], x[None])] for x in logmel(32, seed=2)]
    q, report = quantize(g, cal, QuantOptions(), eval_samples=ev)
    (out,) = report.outputs
    assert out.task == "classifier" and out.top1_agreement >= 0.8, report.format_text()
    assert out.sqnr_db > 12
    _assert_tflm_and_c_match(q, tmp_path)


def test_bcresnet_factory_spec_from_the_cli_form():
    spec = f"{REPO / 'tests/models/bcresnet.py'}:bcresnet_sc2@{model_path(BCRESNET_WEIGHTS)}"
    g = load_model(spec)
    assert g.source_format == "torch" and g.tensors[g.inputs[0]].shape == (1, 40, 32, 1)

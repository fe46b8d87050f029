"""torch.export aten operators of common CNN / transformer-lite modules, against PyTorch
(float, 1e-4 relative, seeded inputs); the ones tinyc refuses are named; and a
MobileNetV3-small-like block (conv, hardswish, squeeze-excitation with hardsigmoid,
residual) through both frontends, quantized, compiled to C and run bit-exact in QEMU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_torch_frontend import _check

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from tinyc.errors import UnsupportedError  # noqa: E402
from tinyc.frontend.torch import export_module  # noqa: E402
from tinyc.ir.verify import require_supported  # noqa: E402


class Fn(nn.Module):
    def __init__(self, fn, *params: torch.Tensor):
        super().__init__()
        self.fn = fn
        self.params = nn.ParameterList([nn.Parameter(p, requires_grad=False) for p in params])

    def forward(self, *xs):
        return self.fn(*xs, *self.params)


IMG = (1, 3, 6, 8)
SEQ = (2, 5, 8)


def _mask(n: int) -> torch.Tensor:
    return torch.ones(n, n).tril().bool()


CASES = {
    "hardsigmoid": (lambda: nn.Hardsigmoid(), IMG),
    "hardswish": (lambda: nn.Hardswish(), IMG),
    "leaky_relu": (lambda: nn.LeakyReLU(0.15), IMG),
    "elu": (lambda: nn.ELU(), IMG),
    "elu_alpha": (lambda: nn.ELU(0.3), IMG),
    "selu": (lambda: nn.SELU(), IMG),
    "gelu": (lambda: nn.GELU(), IMG),
    "gelu_tanh": (lambda: nn.GELU(approximate="tanh"), IMG),
    "erf_exp_log_abs_neg": (
        lambda: Fn(lambda x: torch.erf(x) + torch.exp(x) - torch.log(x.abs() + 0.1) + (-x)),
        IMG,
    ),
    "sqrt_rsqrt": (lambda: Fn(lambda x: torch.sqrt(x.abs()) + torch.rsqrt(x.abs() + 0.5)), IMG),
    "clamp_variants": (
        lambda: Fn(
            lambda x: (
                x.clamp(-1, 1)
                + x.clamp(min=-0.2)
                + x.clamp(max=0.3)
                + torch.clamp_min(x, 0.1)
                + torch.clamp_max(x, -0.1)
                + F.hardtanh(x, -2, 0.5)
                + F.relu6(x)
                + x.clamp(min=0)
            )
        ),
        IMG,
    ),
    "maximum_minimum": (
        lambda: Fn(
            lambda x, k: torch.maximum(x, x * 0.5) + torch.minimum(x, k), torch.randn(1, 3, 1, 1)
        ),
        IMG,
    ),
    "amax_amin_sum": (
        lambda: Fn(lambda x: x.amax(dim=1) + x.amin(dim=(1,)) + x.sum(dim=1) + x.sum()),
        IMG,
    ),
    "max_min_dim": (
        lambda: Fn(
            lambda x: x.max(dim=3).values + x.min(dim=3, keepdim=True)[0].squeeze(3) + x.max()
        ),
        IMG,
    ),
    "upsample_nearest": (lambda: nn.Upsample(scale_factor=2, mode="nearest"), IMG),
    "interpolate_nearest_size": (
        lambda: Fn(lambda x: F.interpolate(x, size=(9, 5), mode="nearest")),
        IMG,
    ),
    "interpolate_nearest_exact": (
        lambda: Fn(lambda x: F.interpolate(x, size=(9, 13), mode="nearest-exact")),
        IMG,
    ),
    "upsample_bilinear": (lambda: nn.Upsample(scale_factor=2, mode="bilinear"), IMG),
    "interpolate_bilinear_align": (
        lambda: Fn(lambda x: F.interpolate(x, size=(7, 11), mode="bilinear", align_corners=True)),
        IMG,
    ),
    "layer_norm": (lambda: nn.LayerNorm(8), SEQ),
    "layer_norm_2d": (lambda: nn.LayerNorm([5, 8], elementwise_affine=False), SEQ),
    "pad_constant": (lambda: Fn(lambda x: F.pad(x, (1, 2, 0, 1), value=0.5)), IMG),
    "pad_zero_3d": (lambda: Fn(lambda x: F.pad(x, (2, 0))), SEQ),
    "adaptive_avg_pool_uneven": (lambda: nn.AdaptiveAvgPool2d((4, 3)), (1, 3, 7, 9)),
    "adaptive_avg_pool_even": (lambda: nn.AdaptiveAvgPool2d((3, 2)), IMG),
    "flatten_variants": (
        lambda: Fn(
            lambda x: torch.cat(
                [x.flatten(1), x.view(x.size(0), -1), nn.Flatten()(x), x.flatten(2).flatten(1)],
                dim=1,
            )
        ),
        IMG,
    ),
    "unflatten": (lambda: Fn(lambda x: x.flatten(1).unflatten(1, (3, 48)).mean(2)), IMG),
    "expand_repeat": (
        lambda: Fn(
            lambda x: torch.cat(
                [x.mean(1, keepdim=True).expand(-1, 4, -1, -1), x.repeat(1, 2, 1, 2)[..., :8]],
                dim=1,
            )
        ),
        IMG,
    ),
    "pixel_shuffle": (lambda: nn.PixelShuffle(2), (1, 8, 3, 4)),
    "pixel_unshuffle": (lambda: nn.PixelUnshuffle(2), (1, 2, 4, 6)),
    "softmax_dim1": (lambda: nn.Softmax(dim=1), IMG),
    "masked_fill_where": (
        lambda: Fn(lambda x, m: torch.where(m, x, -1e4) + x.masked_fill(~m, 0.5), _mask(8)),
        (1, 8, 8),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_aten_op_matches_pytorch(case):
    make, shape = CASES[case]
    g = _check(make(), shape)
    assert "UNSUPPORTED" not in [n.op for n in g.nodes]


class Attention(nn.Module):
    """A transformer-lite block: projections, scaled dot products of two run-time
    tensors (bmm / matmul), a causal mask, softmax, layer norm, GELU MLP."""

    def __init__(self, d: int = 8, heads: int = 2):
        super().__init__()
        self.h = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.register_buffer("mask", torch.ones(5, 5).tril().bool())

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(d, dim=-1)
        q = q.reshape(b, t, self.h, d // self.h).transpose(1, 2)
        k = k.reshape(b, t, self.h, d // self.h).transpose(1, 2)
        v = v.reshape(b, t, self.h, d // self.h).transpose(1, 2)
        s = (q @ k.transpose(-2, -1)) * (d // self.h) ** -0.5
        s = s.masked_fill(~self.mask, float("-inf"))
        ctx = torch.softmax(s, dim=-1) @ v
        x = x + self.out(ctx.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.norm2(x))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.onnx.export(dynamo=False)
def test_attention_block_matches_pytorch(tmp_path):
    g = _check(Attention(), (1, 5, 8))
    ops = [n.op for n in g.nodes]
    assert ops.count("BATCH_MATMUL") == 2 and "UNSUPPORTED" not in ops
    # the same block exported to ONNX (LayerNormalization, Erf, Where, MatMul of two
    # run-time tensors) against onnxruntime
    from test_onnx_frontend import _check_against_ort

    torch.manual_seed(0)
    path = tmp_path / "attention.onnx"
    torch.onnx.export(
        Attention().eval(),
        (torch.randn(1, 5, 8),),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["x"],
        output_names=["y"],
    )
    g2 = _check_against_ort(path.read_bytes())
    assert [n.op for n in g2.nodes].count("BATCH_MATMUL") == 2


def test_attention_block_int8_c_on_host(tmp_path):
    """Quantized (the -inf mask fill saturates to -128), the block's generated C is
    bit-exact with the interpreter: BATCH_MATMUL, SELECT_V2, GELU, SOFTMAX in int8."""
    from c_host import build_host, run_host

    from tinyc import interpreter
    from tinyc.backends.cmsis.codegen import generate_model
    from tinyc.passes.quantize import QuantOptions, quantize

    torch.manual_seed(0)
    g = export_module(Attention().eval(), (torch.randn(1, 5, 8),), "attention")
    rng = np.random.default_rng(0)
    cal = [[rng.standard_normal((1, 5, 8)).astype(np.float32)] for _ in range(8)]
    q, _ = quantize(g, cal, QuantOptions())
    ops = [n.op for n in q.nodes]
    assert {"BATCH_MATMUL", "SELECT_V2", "GELU", "SOFTMAX"} <= set(ops)
    select = next(n for n in q.nodes if n.op == "SELECT_V2")
    fill = [q.tensors[i] for i in select.inputs if q.tensors[i].dtype == "int8"]
    assert any(t.is_const and int(t.data.min()) == -128 for t in fill)
    gen = generate_model(q, q.name, "dsp")
    exe = build_host(gen, tmp_path)
    for seed in range(3):
        x = np.random.default_rng(seed).integers(-128, 128, (1, 5, 8)).astype(np.int8)
        ref = interpreter.run(q, [x])[q.outputs[0]]
        (got,) = run_host(exe, gen, [x])
        np.testing.assert_array_equal(got, ref.reshape(got.shape))


def test_bmm_and_argmax():
    class Bmm(nn.Module):
        def forward(self, a, b):
            y = torch.bmm(a, b)
            return y, y.argmax(dim=-1), torch.mm(a[0], b[0]), torch.matmul(a[0, 0], b)

    torch.manual_seed(0)
    a, b = torch.randn(2, 3, 4), torch.randn(2, 4, 5)
    g = export_module(Bmm(), (a, b))
    from test_torch_frontend import _run

    got = _run(g, [a.numpy(), b.numpy()])
    want = Bmm()(a, b)
    for x, y in zip(got, want, strict=True):
        y = y.numpy()
        if y.dtype == np.int64:
            np.testing.assert_array_equal(x, y)
        else:
            np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)


REFUSED = {
    "bilinear_uneven_scale": (
        lambda x: F.interpolate(x, scale_factor=1.7, mode="bilinear"),
        r"bilinear resizing 6 -> 10 with scale factor 1.7",
    ),
    "reflect_pad": (lambda x: F.pad(x, (1, 1, 1, 1), mode="reflect"), "reflection_pad|pad mode"),
    "runtime_condition": (lambda x: torch.where(x > 0, x, 0.0), "gt|where"),
    "bicubic": (lambda x: F.interpolate(x, scale_factor=2, mode="bicubic"), "bicubic"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_aten_ops_are_named(case):
    fn, pattern = REFUSED[case]
    g = export_module(Fn(fn), (torch.randn(*IMG),))
    with pytest.raises(UnsupportedError, match=pattern):
        require_supported(g, "m")


# -- MobileNetV3-small-like block through both frontends, in QEMU --------------------------


class SqueezeExcite(nn.Module):
    def __init__(self, ch: int, squeeze: int):
        super().__init__()
        self.fc1 = nn.Conv2d(ch, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, ch, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        s = F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))
        return x * s


class MobileNetV3Block(nn.Module):
    """Stem conv + hardswish, then an inverted residual: expand 1x1 (hardswish),
    depthwise 3x3 (hardswish), squeeze-excitation (hardsigmoid gate), project 1x1,
    residual add; a pooled classifier head."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.Hardswish()
        )
        self.expand = nn.Sequential(nn.Conv2d(8, 16, 1), nn.BatchNorm2d(16), nn.Hardswish())
        self.dw = nn.Sequential(
            nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.BatchNorm2d(16), nn.Hardswish()
        )
        self.se = SqueezeExcite(16, 8)
        self.project = nn.Sequential(nn.Conv2d(16, 8, 1), nn.BatchNorm2d(8))
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        x = self.stem(x)
        y = self.project(self.se(self.dw(self.expand(x))))
        x = x + y
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))


def _block() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    m = MobileNetV3Block().eval()
    g = torch.Generator().manual_seed(1)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5, generator=g)
            mod.running_var.uniform_(0.5, 2, generator=g)
    return m, torch.randn(1, 3, 16, 16)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_mobilenetv3_block_float_both_frontends(tmp_path):
    m, x = _block()
    g = _check(m, tuple(x.shape))
    ops = [n.op for n in g.nodes]
    assert "HARD_SWISH" in ops and "UNSUPPORTED" not in ops
    onnx_path = tmp_path / "block.onnx"
    torch.onnx.export(
        m,
        (x,),
        str(onnx_path),
        dynamo=False,
        opset_version=17,
        input_names=["x"],
        output_names=["y"],
    )
    from test_onnx_frontend import _check_against_ort

    g2 = _check_against_ort(onnx_path.read_bytes())
    ops2 = [n.op for n in g2.nodes]
    assert "HARD_SWISH" in ops2 and "UNSUPPORTED" not in ops2


def _calibration(n: int = 8) -> np.ndarray:
    return np.random.default_rng(7).standard_normal((n, 1, 3, 16, 16)).astype(np.float32)


def _int8_block(frontend: str, tmp_path: Path):
    """The block through one frontend, quantized on seeded calibration data."""
    from tinyc.modelio import to_internal
    from tinyc.passes.quantize import QuantOptions, quantize

    m, x = _block()
    if frontend == "torch":
        g = export_module(m, (x,), "mbv3_block")
    else:
        from tinyc.frontend.onnx import load_onnx

        path = tmp_path / "block.onnx"
        torch.onnx.export(
            m,
            (x,),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["x"],
            output_names=["y"],
        )
        g = load_onnx(path)
    samples = [[to_internal(g, g.inputs[0], c)] for c in _calibration()]
    q, _ = quantize(g, samples, QuantOptions())
    return q


@pytest.mark.qemu
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("frontend", ["torch", "onnx"])
def test_mobilenetv3_block_bit_exact_in_qemu(tmp_path: Path, frontend: str) -> None:
    from test_cmsis_backend import HAVE_ARM, _validate

    if not HAVE_ARM:
        pytest.skip("arm-none-eabi-gcc and qemu-system-arm are not installed")
    q = _int8_block(frontend, tmp_path)
    ops = [n.op for n in q.nodes]
    assert {"HARD_SWISH", "CONV_2D", "DEPTHWISE_CONV_2D", "MUL", "ADD"} <= set(ops)
    assert {"MEAN", "AVERAGE_POOL_2D"} & set(ops)  # the squeeze (global average)
    assert all(t.dtype == "int8" for n in q.nodes for t in map(q.tensors.get, n.outputs))
    _, results = _validate(q, "nucleo-f746", tmp_path, cases=3)
    assert results and all(r.bit_exact for r in results), [r.mismatches for r in results]

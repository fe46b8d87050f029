"""Idioms of the torchvision classification classics (MobileNetV3, MnasNet, EfficientNet,
ShuffleNetV2), rebuilt from a few torch.nn layers: the in-place Dropout of their classifier
heads, and ShuffleNet's channel shuffle, which must stay channel-last through both frontends
(one transpose per shuffle, not three)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from tinyc.frontend import load_model  # noqa: E402
from tinyc.frontend.reshape_layout import reshape_layout  # noqa: E402
from tinyc.frontend.torch import export_module  # noqa: E402
from tinyc.ir.verify import unsupported_nodes  # noqa: E402


def _check(module: nn.Module, x: torch.Tensor, g) -> None:
    from test_torch_frontend import _run

    with torch.no_grad():
        want = module(x).numpy()
    (got,) = _run(g, [x.numpy()])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


class Head(nn.Module):
    """MobileNetV3 / MnasNet / EfficientNet classifier: pool, flatten, in-place Dropout."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Dropout(p=0.2, inplace=True), nn.Linear(8, 5))

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.conv(x)), 1))


def test_inplace_dropout_head_is_an_identity():
    torch.manual_seed(0)
    m, x = Head().eval(), torch.randn(1, 3, 9, 9)
    g = export_module(m, (x,), "head")
    assert not unsupported_nodes(g)
    assert [n.op for n in g.nodes].count("FULLY_CONNECTED") == 1
    _check(m, x, g)


def _shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = x.shape
    x = x.view(n, groups, c // groups, h, w)
    return torch.transpose(x, 1, 2).contiguous().view(n, c, h, w)


class ShuffleUnit(nn.Module):
    """Two ShuffleNetV2 units: concat, shuffle, chunk, the right half through 1x1 / 3x3
    depthwise / 1x1 convolutions, concat again."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.left = nn.Conv2d(3, c, 1)
        half = c
        self.branches = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(half, half, 1),
                nn.ReLU(),
                nn.Conv2d(half, half, 3, padding=1, groups=half),
                nn.Conv2d(half, half, 1),
                nn.ReLU(),
            )
            for _ in range(2)
        )
        self.last = nn.Conv2d(2 * c, 4, 1)

    def forward(self, x):
        y = _shuffle(torch.cat((self.stem(x), self.left(x)), dim=1), 2)
        for branch in self.branches:
            a, b = y.chunk(2, dim=1)
            y = _shuffle(torch.cat((a, branch(b)), dim=1), 2)
        return self.last(y)


def _transposes(g) -> int:
    return [n.op for n in g.nodes].count("TRANSPOSE")


def test_channel_shuffle_stays_channel_last_from_pytorch():
    torch.manual_seed(0)
    m, x = ShuffleUnit().eval(), torch.randn(1, 3, 6, 5)
    g = export_module(m, (x,), "shuffle")
    assert _transposes(g) == 3  # one per shuffle: [.., 2, C/2] -> [.., C/2, 2] in NHWC
    _check(m, x, g)


@pytest.mark.parametrize("dynamo", [False, True])
def test_channel_shuffle_stays_channel_last_from_onnx(tmp_path, dynamo):
    torch.manual_seed(0)
    m, x = ShuffleUnit().eval(), torch.randn(1, 3, 6, 5)
    path = tmp_path / "shuffle.onnx"
    if dynamo:
        torch.onnx.export(m, (x,), str(path), external_data=False)
    else:
        torch.onnx.export(m, (x,), str(path), dynamo=False, opset_version=17)
    g = load_model(path)
    assert _transposes(g) == 3
    _check(m, x, g)


def test_shuffle_int8_c_on_host_matches_the_interpreter(tmp_path):
    """Quantized, the shuffles' 5-D transposes and the channel-last splits run bit-exact in
    the generated C."""
    from c_host import build_host, run_host

    from tinyc import interpreter
    from tinyc.backends.cmsis.codegen import generate_model
    from tinyc.passes.quantize import QuantOptions, quantize

    torch.manual_seed(0)
    g = export_module(ShuffleUnit().eval(), (torch.randn(1, 3, 6, 5),), "shuffle")
    rng = np.random.default_rng(0)
    cal = [[rng.standard_normal((1, 6, 5, 3)).astype(np.float32)] for _ in range(8)]
    q, _ = quantize(g, cal, QuantOptions())
    assert {"TRANSPOSE", "SPLIT_V"} <= {n.op for n in q.nodes}
    gen = generate_model(q, q.name, "dsp")
    exe = build_host(gen, tmp_path)
    # the generated C takes and gives PyTorch's NCHW; the quantized graph holds NHWC
    assert gen.graph.tensors[gen.graph.inputs[0]].shape == (1, 3, 6, 5)
    for seed in range(2):
        xq = np.random.default_rng(seed).integers(-128, 128, (1, 3, 6, 5)).astype(np.int8)
        ref = interpreter.run(q, [xq.transpose(0, 2, 3, 1)])[q.outputs[0]]
        (got,) = run_host(exe, gen, [xq])
        np.testing.assert_array_equal(got.transpose(0, 2, 3, 1), ref)


# -- the layout rule itself -----------------------------------------------------------------

NHWC = (0, 2, 3, 1)


@pytest.mark.parametrize(
    "src,perm,dst,prefer,want",
    [
        # split the channels of an NHWC value in place: [1,H,W,C] -> [1,H,W,2,C/2]
        ((1, 8, 3, 3), NHWC, (1, 2, 4, 3, 3), None, (NHWC, (0, 3, 4, 1, 2))),
        # merge them back after transpose(1, 2): one transpose of the two factors
        ((1, 4, 2, 3, 3), (0, 3, 4, 2, 1), (1, 8, 3, 3), None, ((0, 3, 4, 1, 2), NHWC)),
        # flatten of an NHWC image: PyTorch's order (C, H, W) is needed
        ((1, 8, 3, 3), NHWC, (1, 72), None, ((0, 1, 2, 3), (0, 1))),
        # the pooled [1, C, 1, 1] flattens in place
        ((1, 8, 1, 1), NHWC, (1, 8), None, (NHWC, (0, 1))),
        # in PyTorch's order nothing moves, and the result keeps that order
        ((2, 6, 4), (0, 1, 2), (2, 3, 2, 4), None, ((0, 1, 2), (0, 1, 2, 3))),
        # a reader that wants another order gets it with one transpose
        ((1, 4, 2, 3, 3), (0, 3, 4, 2, 1), (1, 8, 3, 3), (0, 1, 2, 3), ((0, 1, 2, 3, 4), None)),
    ],
)
def test_reshape_layout(src, perm, dst, prefer, want):
    before, after = reshape_layout(src, perm, dst, prefer)
    assert before == want[0]
    assert after == (want[1] if want[1] is not None else prefer)
    # the plan is a pure reshape of the data held in `before`
    x = np.arange(int(np.prod(src))).reshape(src)
    held = x.transpose(before).reshape([dst[p] for p in after])
    np.testing.assert_array_equal(held, x.reshape(dst).transpose(after))
    assert reshape_layout((2, 3), (0, 1), (4, 2)) is None

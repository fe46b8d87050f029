"""``tinyc estimate --backend tflm``: which CMSIS-NN function each convolution runs, the loop
counts it is costed by, and that the calibration file covers every such function (fast, no
TFLM needed)."""

from __future__ import annotations

import graphs as G
import pytest

from tinyc.boards import load_board
from tinyc.estimate import estimate_model
from tinyc.estimate.tflm import (
    Window,
    act_inside,
    cmsis_nn_path,
    input_radius,
    inside_radius,
    load_tflm_data,
    node_features,
    tflm_graph,
)
from tinyc.ir.tensor import QuantParams

SAME3 = (1, 1, 1, 1)


def _dw(h, w, c, mult, k, s=(1, 1), d=(1, 1), pads=(0, 0, 0, 0)):
    return G.conv(1, h, w, c, 0, k, s, d, pads, "RELU", "DEPTHWISE_CONV_2D", mult)


def _conv(h, w, c, oc, k, s=(1, 1), d=(1, 1), pads=(0, 0, 0, 0)):
    return G.conv(1, h, w, c, oc, k, s, d, pads, "RELU")


#: (graph, path without Helium, path with Helium)
CASES = [
    (_dw(32, 32, 1, 8, (3, 3), pads=SAME3), "mult4", "to_conv"),
    (_dw(16, 16, 8, 4, (3, 3), pads=SAME3), "mult4", "mult4"),
    (_dw(15, 15, 3, 2, (3, 3), (2, 2), pads=(0, 1, 0, 1)), "generic", "generic"),
    (_dw(40, 5, 16, 1, (9, 1), d=(2, 1), pads=(8, 8, 0, 0)), "generic", "generic"),
    (_dw(9, 31, 12, 1, (1, 7), pads=(0, 0, 3, 3)), "opt", "opt"),
    (_dw(17, 13, 7, 1, (3, 3), (2, 2), pads=SAME3), "3x3", "opt"),
    (_conv(1, 64, 8, 16, (1, 9), pads=(0, 0, 4, 4)), "im2col", "1xn"),
    (_conv(63, 1, 6, 12, (7, 1), (2, 1), pads=(3, 3, 0, 0)), "im2col", "im2col"),
    (_conv(8, 8, 16, 32, (1, 1)), "1x1fast", "1x1fast"),
    (_conv(8, 8, 16, 32, (1, 1), (2, 2)), "1x1", "1x1"),
]


@pytest.mark.parametrize("g,dsp,mve", CASES, ids=[c[0].name + c[1] for c in CASES])
def test_cmsis_nn_path_follows_the_wrappers(g, dsp, mve):
    node = g.nodes[0]
    assert cmsis_nn_path(node, g, mve=False) == dsp
    assert cmsis_nn_path(node, g, mve=True) == mve


def test_inside_counts_the_taps_within_the_input():
    g = _dw(7, 5, 2, 4, (3, 3), (2, 2), (1, 1), (1, 1, 2, 2))
    win = Window.of(g.nodes[0], g)
    taps = rows = 0
    for oy in range(win.oh):
        r = [oy * 2 - 1 + i for i in range(3) if 0 <= oy * 2 - 1 + i < 7]
        rows += len(r) * win.ow
        for ox in range(win.ow):
            taps += len(r) * sum(0 <= ox * 2 - 2 + j < 5 for j in range(3))
    assert win.inside() == (taps, rows)


def test_features_follow_the_function():
    g = _dw(32, 32, 1, 8, (3, 3), pads=SAME3)
    f = node_features(g.nodes[0], g, mve=False)
    # 32x32 pixels x 8 outputs; the taps inside a 32x32 input: 30 rows and columns of 3 + 2
    # edges of 2 per axis
    assert f["DEPTHWISE_CONV_2D/mult4:outputs"] == 32 * 32 * 8
    assert f["DEPTHWISE_CONV_2D/mult4:macs"] == (30 * 3 + 2 * 2) ** 2 * 8
    f = node_features(g.nodes[0], g, mve=True)  # filters transposed, then a convolution
    assert f["DEPTHWISE_CONV_2D/to_conv:weights"] == 9 * 8
    assert f["CONV_2D/im2col:macs"] == 32 * 32 * 8 * 9
    c = _conv(1, 64, 8, 16, (1, 9), pads=(0, 0, 4, 4))
    f = node_features(c.nodes[0], c, mve=False)
    assert f["CONV_2D/im2col:taps"] == 64 * 9 and f["CONV_2D/im2col:im2col"] == 64 * 9 * 8


#: what each kind of core can run (no MVE: the DSP paths)
PATHS = {
    False: {"CONV_2D": ("im2col", "1x1fast", "1x1"),
            "DEPTHWISE_CONV_2D": ("3x3", "opt", "mult4", "generic")},
    True: {"CONV_2D": ("im2col", "1x1fast", "1x1"),
           "DEPTHWISE_CONV_2D": ("opt", "mult4", "generic", "to_conv")},
}  # fmt: skip


def test_calibration_costs_every_cmsis_nn_path():
    """A path without coefficients would cost nothing but the node (a 1xN convolution once
    came out 97 % short that way)."""
    for core, cal in load_tflm_data()["cores"].items():
        coef = cal["instructions"]
        for op, kinds in PATHS["+mve" in core].items():
            for kind in kinds:
                assert any(k.startswith(f"{op}/{kind}:") for k in coef), (core, op, kind)


def test_estimate_costs_the_graph_tflm_runs():
    """Pads that are neither SAME nor VALID: TFLM runs a PAD, then a VALID window."""
    g = _dw(64, 3, 1, 8, (5, 3), pads=(2, 2, 0, 0))
    assert [n.op for n in tflm_graph(g).nodes] == ["PAD", "DEPTHWISE_CONV_2D"]
    est = estimate_model(g, load_board("nucleo-f746"), "tflm")
    assert [x.op for x in est.layers] == ["PAD", "DEPTHWISE_CONV_2D"]
    assert all(x.instructions > 0 for x in est.layers)


def test_input_radius_follows_tflm():
    """CalculateInputRadius(4, input_left_shift) of TFLM's int8 LOGISTIC / TANH: 15 x 2^27
    over 2^shift, shift from frexp(scale x 2^27), i.e. between 7.5 and 15 in real terms."""
    assert input_radius(1 / 16) == 120  # 2^23 = 0.5 x 2^24: 7.5 / scale
    assert input_radius(0.05) == 240  # 0.8 x 2^23: 12 / scale
    assert inside_radius(0.5, 0) == 29 / 256  # |code| < 15
    assert inside_radius(0.05, 20) == 1.0


def test_saturated_activations_cost_less():
    """TFLM computes only the int8 LOGISTIC / TANH inputs inside its radius in fixed point:
    the estimate counts those, on the seeded random input validate runs."""
    g = G.unary(3, "LOGISTIC", (1, 4000))
    x = g.tensors[g.inputs[0]]
    x.quant = QuantParams([0.5], [0])
    inside = act_inside(g)
    assert abs(inside[x.name] - 29 / 256) < 0.02
    f = node_features(g.nodes[0], g, inside=inside)
    assert f["LOGISTIC:inside"] == 4000 * inside[x.name]
    assert node_features(g.nodes[0], g)["LOGISTIC:inside"] == 4000 * 29 / 256
    cheap = estimate_model(g, load_board("nucleo-f746"), "tflm").instructions
    x.quant = QuantParams([0.05], [0])
    assert estimate_model(g, load_board("nucleo-f746"), "tflm").instructions > 4 * cheap


def test_splits_count_their_copies():
    """TFLM's SPLIT copies one slice per output and per index before the axis."""
    g = G.data_movement(1, "SPLIT", [(3, 4, 6)], 2, axis=2, num_splits=2)
    assert node_features(g.nodes[0], g)["SPLIT:copies"] == 3 * 4 * 2


def test_calibration_costs_saturation():
    for core, cal in load_tflm_data()["cores"].items():
        for op in ("LOGISTIC", "TANH"):
            assert cal["instructions"].get(f"{op}:inside", 0) > 100, (core, op)

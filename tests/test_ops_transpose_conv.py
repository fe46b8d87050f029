"""ConvTranspose: stride 1 as CONV_2D / DEPTHWISE_CONV_2D (flipped kernel), larger strides
as TRANSPOSE_CONV; BatchNormalization after it folds into its weights.

Float: tinyc against onnxruntime. int8 TRANSPOSE_CONV: the interpreter against TFLite Micro
(groups == 1, SAME/VALID pads) and the C kernel against the interpreter (any groups, pads,
output padding, batches).
"""

from __future__ import annotations

import numpy as np
import pytest
from graphs import Builder
from onnx import helper
from op_checks import c_vs_interpreter, float_vs_ort, int8_vs_tflm
from test_onnx_frontend import make_model

from tinyc.errors import UnsupportedError
from tinyc.frontend.onnx import load_onnx
from tinyc.frontend.onnx.ops_deconv import conv_weights, ohwi_weights
from tinyc.ir.graph import Graph
from tinyc.ir.verify import require_supported

pytest.importorskip("tflite_micro")


def _ops(g: Graph) -> list[str]:
    return [n.op for n in g.nodes]


def _deconv_model(x_shape, w_shape, bias: bool = True, bn: bool = False, **attrs) -> bytes:
    rng = np.random.default_rng(sum(w_shape))
    ins = ["x", "w", "b"] if bias else ["x", "w"]
    nodes = [helper.make_node("ConvTranspose", ins, ["t" if bn else "y"], **attrs)]
    cout = w_shape[1] * attrs.get("group", 1)
    inits = {"w": rng.standard_normal(w_shape).astype(np.float32)}
    if bias:
        inits["b"] = rng.standard_normal(cout).astype(np.float32)
    if bn:
        nodes.append(helper.make_node("BatchNormalization", ["t", "s", "o", "m", "v"], ["y"]))
        for k in "som":
            inits[k] = rng.standard_normal(cout).astype(np.float32)
        inits["v"] = rng.uniform(0.5, 2.0, cout).astype(np.float32)
    return make_model(nodes, {"x": list(x_shape)}, ["y"], inits, opset=11)


FLOAT_CASES = [
    # the decoder of a streaming speech model: depthwise, dilated in time, cropped
    (
        (1, 4, 11, 9),
        (4, 1, 3, 3),
        dict(group=4, dilations=[5, 1], pads=[10, 1, 10, 1]),
        "DEPTHWISE_CONV_2D",
    ),  # fmt: skip
    ((1, 6, 1, 9), (6, 4, 1, 1), {}, "CONV_2D"),  # pointwise
    ((1, 6, 3, 5), (6, 2, 2, 3), dict(group=3, pads=[0, 1, 1, 0]), "CONV_2D"),  # grouped
    # upsampling along frequency only, grouped
    (
        (1, 4, 1, 7),
        (4, 3, 1, 5),
        dict(group=2, strides=[1, 2], pads=[0, 2, 0, 2]),
        "TRANSPOSE_CONV",
    ),  # fmt: skip
    (
        (2, 3, 4, 5),
        (3, 2, 3, 3),
        dict(strides=[2, 2], pads=[1, 0, 1, 1], output_padding=[1, 1]),
        "TRANSPOSE_CONV",
    ),  # fmt: skip
    ((1, 2, 3, 3), (2, 3, 2, 2), dict(strides=[2, 3], dilations=[2, 1]), "TRANSPOSE_CONV"),
    ((1, 3, 4, 4), (3, 2, 3, 3), dict(pads=[3, 0, 0, 0]), "TRANSPOSE_CONV"),  # crops a lot
]


@pytest.mark.parametrize("x,w,attrs,op", FLOAT_CASES)
def test_conv_transpose_float(x, w, attrs, op):
    g = float_vs_ort(_deconv_model(x, w, **attrs))
    assert op in _ops(g)


def test_conv_transpose_1d_float():
    g = float_vs_ort(_deconv_model((1, 3, 6), (3, 2, 4), strides=[2], pads=[1, 2]))
    assert "TRANSPOSE_CONV" in _ops(g)
    g = float_vs_ort(_deconv_model((1, 3, 6), (3, 2, 3), bias=False, pads=[1, 1]))
    assert "CONV_2D" in _ops(g)


@pytest.mark.parametrize(
    "x,w,attrs",
    [((1, 4, 1, 7), (4, 3, 1, 5), dict(group=2, strides=[1, 2], pads=[0, 2, 0, 2])),
     ((1, 4, 5, 9), (4, 1, 3, 3), dict(group=4, dilations=[2, 1], pads=[4, 1, 4, 1]))],
)  # fmt: skip
def test_batch_norm_folds_into_conv_transpose(x, w, attrs):
    g = float_vs_ort(_deconv_model(x, w, bn=True, **attrs))
    assert not {"MUL", "ADD"} & set(_ops(g))


def test_conv_transpose_refusals():
    with pytest.raises(UnsupportedError, match="output_shape"):
        require_supported(
            load_onnx(
                _deconv_model((1, 2, 3, 3), (2, 2, 3, 3), output_shape=[7, 7], strides=[2, 2])
            )
        )
    with pytest.raises(UnsupportedError, match="auto_pad"):
        require_supported(
            load_onnx(_deconv_model((1, 2, 3, 3), (2, 2, 3, 3), auto_pad="SAME_UPPER"))
        )


def test_weight_layouts():
    w = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2)  # Cin 2, Cout 3
    c = conv_weights(w, 1)
    assert c.shape == (3, 2, 2, 2) and c[1, 0, 0, 0] == w[0, 1, 1, 1]
    t = ohwi_weights(w, 1, (2, 1))
    assert t.shape == (3, 3, 2, 2) and t[1, 2, 0, 1] == w[1, 1, 1, 0] and not t[:, 1].any()
    grouped = ohwi_weights(np.ones((4, 3, 1, 1), np.float32), 2, (1, 1))
    assert grouped.shape == (6, 1, 1, 2)


# -- int8 ---------------------------------------------------------------------------------


def tconv_graph(seed, x_shape, oc, k, stride, pads, groups=1, bias=True, act="NONE") -> Graph:
    b = Builder(f"tconv_{seed}", seed)
    x = b.act("x", x_shape)
    w = b.weights("w", (oc, k[0], k[1], x_shape[3] // groups), 0)
    ins = [x, w] + ([b.bias("b", oc)] if bias else [])
    b.act("y", (1,))
    b.node("TRANSPOSE_CONV", ins, ["y"], stride=stride, pads=pads, activation=act)
    return b.finish([x], ["y"])


TFLM_CASES = [
    tconv_graph(1, (1, 4, 5, 3), 6, (3, 3), (2, 2), (0, 1, 0, 1)),  # SAME
    tconv_graph(2, (1, 1, 9, 8), 2, (1, 5), (1, 2), (0, 0, 2, 2)),  # SAME, along W only
    tconv_graph(3, (1, 3, 3, 4), 5, (3, 2), (2, 1), (0, 0, 0, 0), bias=False),  # VALID
    tconv_graph(4, (2, 3, 4, 2), 3, (4, 4), (2, 2), (1, 1, 1, 1), act="RELU"),  # SAME
]
C_CASES = [
    *TFLM_CASES,
    tconv_graph(5, (1, 1, 9, 16), 16, (1, 5), (1, 2), (0, 0, 2, 2), groups=2),
    tconv_graph(6, (1, 4, 4, 6), 9, (3, 3), (3, 2), (2, -1, 1, 0), groups=3),  # output padding
    tconv_graph(7, (1, 5, 2, 2), 4, (2, 2), (1, 1), (1, 0, 0, 1), act="RELU6"),
]


@pytest.mark.parametrize("g", TFLM_CASES, ids=[g.name for g in TFLM_CASES])
def test_int8_matches_tflm(g):
    int8_vs_tflm(g)


@pytest.mark.parametrize("g", C_CASES, ids=[g.name for g in C_CASES])
def test_c_matches_interpreter(g, tmp_path):
    c_vs_interpreter(g, tmp_path, seeds=range(3))


def test_tflm_writer_refuses_what_tflite_cannot_say():
    from tinyc.backends.tflm.writer import build_model

    with pytest.raises(UnsupportedError, match="grouped"):
        build_model(C_CASES[4])
    with pytest.raises(UnsupportedError, match="neither"):
        build_model(tconv_graph(8, (1, 4, 5, 3), 2, (3, 3), (2, 2), (1, 0, 1, 0)))

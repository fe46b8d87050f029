"""ONNX operators of common CNN / RNN / transformer-lite exports, against onnxruntime.

Float: each op on seeded inputs, tinyc's interpreter within 1e-4 relative of onnxruntime.
QOperator (onnxruntime's quantize_static with QuantFormat.QOperator, uint8 and int8
activations): every int8 op fed onnxruntime's own int8 inputs is within one quantum of
onnxruntime's int8 output (tinyc computes TFLM's integer arithmetic, which rounds twice),
and mnist-8 quantized that way gives onnxruntime's top-1 class. Configurations tinyc does
not take are refused by name (tinyc.ir.verify.require_supported).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from conftest import ONNX_CNN, model_path, reference_cases
from onnx import TensorProto, helper, numpy_helper
from test_onnx_frontend import _as_int8, _check_against_ort, _ops, _ours, _session, make_model

from tinyc.errors import UnsupportedError
from tinyc.frontend.onnx import load_onnx
from tinyc.ir.ops import get_op
from tinyc.ir.verify import require_supported

ort = pytest.importorskip("onnxruntime")
quant = pytest.importorskip("onnxruntime.quantization")


def _w(*shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def _node(op, ins, outs, **kw):
    return helper.make_node(op, ins, outs, name=outs[0], **kw)


def _f(value) -> np.ndarray:
    return np.asarray(value, np.float32)


def _i(value) -> np.ndarray:
    return np.asarray(value, np.int64)


def _model(nodes, inputs, inits, opset=13, out_type=TensorProto.FLOAT) -> bytes:
    """make_model with an output of another element type (ArgMax's int64)."""
    if out_type == TensorProto.FLOAT:
        return make_model(nodes, inputs, ["y"], inits, opset=opset)
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info("y", out_type, None)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model, data_prop=True).SerializeToString()


# -- float operators ------------------------------------------------------------------------

X4 = {"x": [1, 3, 5, 6]}
INT64 = TensorProto.INT64
X2 = {"x": [2, 6]}


def _positive(src: str, out: str) -> list:
    """out = |src| + 0.1 (a positive operand for Log, Reciprocal)."""
    return [_node("Abs", [src], [f"{out}_abs"]), _node("Add", [f"{out}_abs", "tenth"], [out])]


FLOAT_CASES = {
    "hardsigmoid_default": ([_node("HardSigmoid", ["x"], ["y"])], X4, {}, 13),
    "hardsigmoid_torch": (
        [_node("HardSigmoid", ["x"], ["y"], alpha=1 / 6, beta=0.5)],
        X4,
        {},
        13,
    ),
    "hardswish": ([_node("HardSwish", ["x"], ["y"])], X4, {}, 14),
    "leaky_relu": ([_node("LeakyRelu", ["x"], ["y"], alpha=0.1)], X4, {}, 13),
    "elu": ([_node("Elu", ["x"], ["y"])], X4, {}, 13),
    "elu_alpha": ([_node("Elu", ["x"], ["y"], alpha=0.4)], X4, {}, 13),
    "selu": ([_node("Selu", ["x"], ["y"])], X4, {}, 13),
    "gelu": ([_node("Gelu", ["x"], ["y"])], X4, {}, 20),
    "gelu_tanh": ([_node("Gelu", ["x"], ["y"], approximate="tanh")], X4, {}, 20),
    "erf_gelu_pattern": (
        [
            _node("Div", ["x", "sqrt2"], ["d"]),
            _node("Erf", ["d"], ["e"]),
            _node("Add", ["e", "one"], ["a"]),
            _node("Mul", ["x", "a"], ["m"]),
            _node("Mul", ["m", "half"], ["y"]),
        ],
        X4,
        {"sqrt2": _f(np.sqrt(2)), "one": _f(1), "half": _f(0.5)},
        13,
    ),
    "exp_log_abs_neg": (
        [
            _node("Exp", ["x"], ["e"]),
            *_positive("x", "p"),
            _node("Log", ["p"], ["l"]),
            _node("Neg", ["l"], ["n"]),
            _node("Add", ["e", "n"], ["y"]),
        ],
        X4,
        {"tenth": _f(0.1)},
        13,
    ),
    "reciprocal": (
        [*_positive("x", "p"), _node("Reciprocal", ["p"], ["y"])],
        X4,
        {"tenth": _f(0.1)},
        13,
    ),
    "clip_attrs_opset6": ([_node("Clip", ["x"], ["y"], min=-0.5, max=1.0)], X4, {}, 6),
    "clip_min_only": ([_node("Clip", ["x", "lo"], ["y"])], X4, {"lo": _f(-0.3)}, 13),
    "clip_max_only": ([_node("Clip", ["x", "", "hi"], ["y"])], X4, {"hi": _f(0.7)}, 13),
    "clip_both": ([_node("Clip", ["x", "lo", "hi"], ["y"])], X4, {"lo": _f(-1), "hi": _f(1)}, 13),
    "sum_min_max_variadic": (
        [
            _node("Sum", ["x", "c", "x"], ["s"]),
            _node("Max", ["s", "x", "c"], ["mx"]),
            _node("Min", ["mx", "k"], ["y"]),
        ],
        X4,
        {"c": _w(1, 3, 1, 1, seed=1), "k": _f(0.8)},
        13,
    ),
    "where_constant_condition": (
        [_node("Where", ["mask", "x", "neg"], ["y"])],
        {"x": [1, 2, 4, 4]},
        {"mask": np.tril(np.ones((4, 4), bool)), "neg": _f(-1e4)},
        13,
    ),
    "expand_tile": (
        [
            _node("Expand", ["x", "shape"], ["e"]),
            _node("Tile", ["e", "reps"], ["y"]),
        ],
        {"x": [1, 3, 1, 4]},
        {"shape": _i([2, 3, 5, 4]), "reps": _i([1, 2, 1, 3])},
        13,
    ),
    "depth_to_space_dcr": (
        [_node("DepthToSpace", ["x"], ["y"], blocksize=2)],
        {"x": [1, 8, 3, 2]},
        {},
        13,
    ),
    "depth_to_space_crd": (
        [_node("DepthToSpace", ["x"], ["y"], blocksize=2, mode="CRD")],
        {"x": [1, 8, 3, 2]},
        {},
        13,
    ),
    "space_to_depth": (
        [_node("SpaceToDepth", ["x"], ["y"], blocksize=2)],
        {"x": [1, 3, 4, 6]},
        {},
        13,
    ),
    "instance_norm": (
        [_node("InstanceNormalization", ["x", "s", "b"], ["y"], epsilon=1e-3)],
        X4,
        {"s": _w(3, seed=1), "b": _w(3, seed=2)},
        13,
    ),
    "layer_norm_last_axis": (
        [_node("LayerNormalization", ["x", "s", "b"], ["y"])],
        {"x": [2, 5, 8]},
        {"s": _w(8, seed=1), "b": _w(8, seed=2)},
        17,
    ),
    "layer_norm_nchw_axis1": (
        [_node("LayerNormalization", ["x", "s"], ["y"], axis=1)],
        X4,
        {"s": _w(3, 5, 6, seed=1)},
        17,
    ),
    "softmax_channels": ([_node("Softmax", ["x"], ["y"], axis=1)], X4, {}, 13),
    "global_max_pool": ([_node("GlobalMaxPool", ["x"], ["y"])], X4, {}, 13),
    "reduce_max_min_sum": (
        [
            _node("ReduceMax", ["x"], ["a"], axes=[2, 3], keepdims=1),
            _node("ReduceMin", ["x"], ["b"], axes=[1], keepdims=1),
            _node("ReduceSum", ["x", "ax"], ["c"], keepdims=1),
            _node("Add", ["a", "b"], ["ab"]),
            _node("Add", ["ab", "c"], ["y"]),
        ],
        X4,
        {"ax": _i([3])},
        13,
    ),
    "reduce_opset18_no_keepdims": (
        [_node("ReduceMax", ["x", "ax"], ["y"], keepdims=0)],
        X4,
        {"ax": _i([1, 3])},
        18,
    ),
    "gemm_trans_alpha_beta": (
        [_node("Gemm", ["x", "w", "c"], ["y"], transA=1, transB=1, alpha=0.5, beta=2.0)],
        {"x": [6, 2]},
        {"w": _w(4, 6, seed=1), "c": _w(2, 4, seed=2)},
        13,
    ),
    "gemm_runtime_b": (
        [
            _node("Transpose", ["x"], ["xt"]),
            _node("Gemm", ["x", "xt", "c"], ["y"], alpha=0.7, beta=0.5),
        ],
        X2,
        {"c": _w(2, seed=2)},
        13,
    ),
    "gemm_runtime_c": (
        [
            _node("Gemm", ["x", "w"], ["g"], transB=1),
            _node("Gemm", ["x", "w", "g"], ["y"], transB=1, beta=-1.5),
        ],
        X2,
        {"w": _w(3, 6, seed=1)},
        13,
    ),
    "attention_matmul": (
        [
            _node("MatMul", ["x", "wq"], ["q"]),
            _node("MatMul", ["x", "wk"], ["k"]),
            _node("MatMul", ["x", "wv"], ["v"]),
            _node("Reshape", ["q", "heads"], ["qh"]),
            _node("Reshape", ["k", "heads"], ["kh"]),
            _node("Reshape", ["v", "heads"], ["vh"]),
            _node("Transpose", ["qh"], ["qt"], perm=[0, 2, 1, 3]),
            _node("Transpose", ["kh"], ["kt"], perm=[0, 2, 3, 1]),
            _node("Transpose", ["vh"], ["vt"], perm=[0, 2, 1, 3]),
            _node("MatMul", ["qt", "kt"], ["scores"]),
            _node("Mul", ["scores", "scale"], ["scaled"]),
            _node("Where", ["causal", "scaled", "neg"], ["masked"]),
            _node("Softmax", ["masked"], ["p"], axis=-1),
            _node("MatMul", ["p", "vt"], ["ctx"]),
            _node("Transpose", ["ctx"], ["ct"], perm=[0, 2, 1, 3]),
            _node("Reshape", ["ct", "flat"], ["cf"]),
            _node("MatMul", ["cf", "wo"], ["y"]),
        ],
        {"x": [1, 5, 8]},
        {
            "wq": _w(8, 8, seed=1),
            "wk": _w(8, 8, seed=2),
            "wv": _w(8, 8, seed=3),
            "wo": _w(8, 8, seed=4),
            "heads": _i([1, 5, 2, 4]),
            "flat": _i([1, 5, 8]),
            "scale": _f(0.5),
            "causal": np.tril(np.ones((5, 5), bool)),
            "neg": _f(-1e9),
        },
        13,
    ),
    "matmul_constant_a_and_1d": (
        [
            _node("MatMul", ["a", "x"], ["ax"]),
            _node("MatMul", ["ax", "v"], ["y"]),
        ],
        {"x": [3, 4, 5]},
        {"a": _w(2, 4, seed=1), "v": _w(5, seed=2)},
        13,
    ),
    "matmul_batched_constant_b": (
        [_node("MatMul", ["x", "b3"], ["y"])],
        {"x": [3, 4, 5]},
        {"b3": _w(3, 5, 2, seed=1)},
        13,
    ),
    "argmax_keepdims": ([_node("ArgMax", ["x"], ["y"], axis=1, keepdims=1)], X4, {}, 13, INT64),
    "argmax_last_axis": (
        [_node("ArgMax", ["x"], ["y"], axis=-1, keepdims=0)],
        X2,
        {},
        13,
        INT64,
    ),
    "upsample_nearest_opset9": (
        [_node("Upsample", ["x", "sc"], ["y"], mode="nearest")],
        X4,
        {"sc": _f([1, 1, 2, 3])},
        9,
    ),
    "upsample_linear_opset9": (
        [_node("Upsample", ["x", "sc"], ["y"], mode="linear")],
        X4,
        {"sc": _f([1, 1, 2, 2])},
        9,
    ),
}


def _resize_case(
    mode: str, coord: str, nearest: str = "round_prefer_floor", sizes=None, scales=None
):
    inits = {"roi": _f([])}
    ins = ["x", "roi"]
    if scales is not None:
        inits["scales"] = _f(scales)
        ins.append("scales")
    else:
        inits["scales"] = _f([])
        inits["sizes"] = _i(sizes)
        ins += ["scales", "sizes"]
    attrs = {"mode": mode, "coordinate_transformation_mode": coord}
    if mode == "nearest":
        attrs["nearest_mode"] = nearest
    return ([_node("Resize", ins, ["y"], **attrs)], {"x": [1, 2, 5, 6]}, inits, 13)


for _coord in (
    "half_pixel",
    "pytorch_half_pixel",
    "align_corners",
    "asymmetric",
    "tf_half_pixel_for_nn",
):
    for _nearest in ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil"):
        FLOAT_CASES[f"resize_nearest_{_coord}_{_nearest}"] = _resize_case(
            "nearest", _coord, _nearest, sizes=[1, 2, 8, 15]
        )
FLOAT_CASES["resize_nearest_downsample_scales"] = _resize_case(
    "nearest", "half_pixel", scales=[1, 1, 0.6, 0.5]
)
for _coord in ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"):
    FLOAT_CASES[f"resize_linear_{_coord}"] = _resize_case("linear", _coord, scales=[1, 1, 2, 2])
FLOAT_CASES["resize_linear_align_corners_sizes"] = _resize_case(
    "linear", "align_corners", sizes=[1, 2, 7, 9]
)
FLOAT_CASES["resize_linear_half_pixel_sizes"] = _resize_case(
    "linear", "half_pixel", sizes=[1, 2, 7, 9]
)


@pytest.mark.parametrize("case", list(FLOAT_CASES))
def test_float_op_matches_onnxruntime(case):
    nodes, inputs, inits, opset, *out_type = FLOAT_CASES[case]
    model = _model(nodes, inputs, inits, opset, *out_type)
    if out_type:  # ArgMax: int32 indices where onnxruntime gives int64
        g = load_onnx(model)
        sess = _session(model)
        for seed in range(3):
            rng = np.random.default_rng(seed)
            feeds = {i.name: rng.standard_normal(i.shape).astype(np.float32)
                     for i in sess.get_inputs()}  # fmt: skip
            np.testing.assert_array_equal(_ours(g, feeds)["y"], sess.run(None, feeds)[0])
    else:
        g = _check_against_ort(model)
    assert "UNSUPPORTED" not in _ops(g)


def test_translations_use_the_expected_ir_ops():
    def ops(case):
        nodes, inputs, inits, opset, *out_type = FLOAT_CASES[case]
        return _ops(load_onnx(_model(nodes, inputs, inits, opset, *out_type)))

    assert ops("hardsigmoid_torch") == ["ADD", "MUL"]  # RELU6 fused into the ADD
    assert ops("leaky_relu") == ["LEAKY_RELU"]
    assert ops("clip_both") == ["MAXIMUM", "MINIMUM"]
    assert "SELECT_V2" in ops("where_constant_condition")
    assert ops("expand_tile").count("BROADCAST_TO") == 2
    assert ops("depth_to_space_dcr") == ["DEPTH_TO_SPACE"]
    assert ops("attention_matmul").count("BATCH_MATMUL") == 2
    assert "TRANSPOSE" not in ops("attention_matmul")[:6]  # K^T is an adj_y flag
    assert set(ops("resize_nearest_half_pixel_round_prefer_floor")) == {"GATHER"}
    assert ops("resize_linear_half_pixel") == ["RESIZE_BILINEAR"]
    assert ops("argmax_last_axis") == ["ARG_MAX"]


# -- refused configurations -------------------------------------------------------------------

REFUSED = {
    "resize_cubic": (
        [_node("Resize", ["x", "", "sc"], ["y"], mode="cubic")],
        X4,
        {"sc": _f([1, 1, 2, 2])},
        r"Resize\): mode 'cubic'",
    ),
    "where_runtime_condition": (
        [
            _node("Greater", ["x", "zero"], ["c"]),
            _node("Where", ["c", "x", "zero"], ["y"]),
        ],
        X4,
        {"zero": _f(0)},
        "Greater|Where",
    ),
    "layer_norm_statistics_output": (
        [_node("LayerNormalization", ["x", "s"], ["y", "mean"])],
        {"x": [2, 4]},
        {"s": _w(4)},
        r"LayerNormalization\): the Mean / InvStdDev outputs",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_configurations_are_named(case):
    nodes, inputs, inits, pattern = REFUSED[case]
    outs = sorted({o for n in nodes for o in n.output} - {i for n in nodes for i in n.input})
    g = load_onnx(make_model(nodes, inputs, outs, inits, opset=17))
    with pytest.raises(UnsupportedError, match=pattern):
        require_supported(g, "m")


# -- QOperator models -----------------------------------------------------------------------

#: the position of the output zero point among a QOperator node's inputs
_OUT_ZP = {
    "QuantizeLinear": 2,
    "QLinearConv": 7,
    "QLinearMatMul": 7,
    "QGemm": 8,
    "QLinearAdd": 7,
    "QLinearMul": 7,
    "QLinearConcat": 1,
}


def _expose_int8(model: onnx.ModelProto) -> tuple[bytes, list[str]]:
    """The model with every 8-bit intermediate tensor as an extra output (its type taken
    from the producing node's output zero point, or its input's for data movement)."""
    inits = {i.name: i.data_type for i in model.graph.initializer}
    types: dict[str, int] = {}
    for n in model.graph.node:
        if n.op_type == "DequantizeLinear" or not n.output:
            continue
        pos = _OUT_ZP.get(n.op_type, 4 if n.op_type.startswith("QLinear") else None)
        if pos is not None and pos < len(n.input) and n.input[pos] in inits:
            types[n.output[0]] = inits[n.input[pos]]
        elif n.input and n.input[0] in types:
            types[n.output[0]] = types[n.input[0]]
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for name, t in types.items():
        if t in (TensorProto.UINT8, TensorProto.INT8):
            m.graph.output.append(helper.make_tensor_value_info(name, t, None))
    return m.SerializeToString(), list(types)


def qop_layer_diffs(g, ref: dict[str, np.ndarray]) -> dict[str, int]:
    """Each int8 op of ``g`` (with a requantizing QUANTIZE after it, when the op has fixed
    or input-tied output parameters) fed onnxruntime's int8 inputs: the largest difference
    from onnxruntime's int8 output, in quanta. Inputs onnxruntime does not name are
    recomputed through the exact ops in between (RESHAPE, TRANSPOSE, QUANTIZE)."""
    producers, consumers = g.producers(), g.consumers()

    def value(name: str):
        t = g.tensors[name]
        if t.is_const:
            return t.data
        if name in ref:
            r = _as_int8(ref[name]) if ref[name].dtype != np.float32 else ref[name]
            return (r.transpose(0, 2, 3, 1) if r.ndim == 4 else r).reshape(t.shape)
        p = producers.get(name)
        if p is None or p.op not in ("RESHAPE", "TRANSPOSE", "QUANTIZE"):
            return None
        x = value(p.inputs[0])
        return None if x is None else get_op(p.op).evaluate(p, g, [x])[0]

    diffs = {}
    for n in g.nodes:
        if n.op in ("QUANTIZE", "DEQUANTIZE", "RESHAPE", "TRANSPOSE") or g.out(n).dtype != "int8":
            continue
        chain = [n]
        readers = consumers.get(n.outputs[0], [])
        if n.outputs[0] not in ref and len(readers) == 1 and readers[0].op == "QUANTIZE":
            chain.append(readers[0])
        out = chain[-1].outputs[0]
        xs = [value(i) if i else None for i in n.inputs]
        if out not in ref or any(x is None for x, i in zip(xs, n.inputs, strict=True) if i):
            continue
        for op in chain:
            xs = get_op(op.op).evaluate(op, g, xs)
        diffs[n.name] = int(np.abs(xs[0].astype(np.int64) - value(out).astype(np.int64)).max())
    return diffs


class _Reader(quant.CalibrationDataReader):
    def __init__(self, inputs: dict[str, list[int]], count: int = 4, seed: int = 100):
        rng = np.random.default_rng(seed)
        self.data = iter(
            [
                {k: rng.standard_normal(s).astype(np.float32) for k, s in inputs.items()}
                for _ in range(count)
            ]
        )

    def get_next(self):
        return next(self.data, None)


def qoperator(
    tmp_path, model: bytes | str, inputs, act: str, per_channel=False, reader=None
) -> str:
    src, dst = tmp_path / "float.onnx", tmp_path / f"qop_{act}.onnx"
    if isinstance(model, bytes):
        src.write_bytes(model)
    else:
        src = model
    quant.quantize_static(
        str(src),
        str(dst),
        reader if reader is not None else _Reader(inputs),
        quant_format=quant.QuantFormat.QOperator,
        activation_type=getattr(quant.QuantType, act),
        weight_type=quant.QuantType.QInt8,
        per_channel=per_channel,
        # uint8 x int8 products saturate in onnxruntime's x86 kernels (VPMADDUBSW) unless
        # the weights keep to 7 bits; its results would then be off by tens of quanta
        reduce_range=act == "QUInt8",
    )
    return str(dst)


QOP_MODELS = {
    "cnn": (
        [
            _node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
            _node("Relu", ["c1"], ["r1"]),
            _node("Conv", ["r1", "w2", "b2"], ["c2"]),
            _node("LeakyRelu", ["c2"], ["l2"], alpha=0.1),
            _node("Conv", ["r1", "w3"], ["c3"], group=4, pads=[1, 1, 1, 1]),
            _node("Sigmoid", ["c3"], ["s3"]),
            _node("Add", ["l2", "s3"], ["a"]),
            _node("Mul", ["a", "r1"], ["m"]),
            _node("Concat", ["m", "a"], ["cat"], axis=1),
            _node("AveragePool", ["cat"], ["ap"], kernel_shape=[2, 2], strides=[2, 2]),
            _node(
                "MaxPool", ["ap"], ["mp"], kernel_shape=[2, 2], strides=[1, 1], pads=[0, 0, 1, 1]
            ),
            _node("Conv", ["mp", "w4", "b4"], ["c4"]),
            _node("GlobalAveragePool", ["c4"], ["gap"]),
            _node("Flatten", ["gap"], ["f"]),
            _node("Gemm", ["f", "fw", "fb"], ["g"], transB=1),
            _node("MatMul", ["g", "mw"], ["y"]),
        ],
        {"x": [1, 3, 8, 8]},
        {
            "w1": _w(4, 3, 3, 3),
            "b1": _w(4, seed=1),
            "w2": _w(4, 4, 1, 1, seed=2),
            "b2": _w(4, seed=3),
            "w3": _w(4, 1, 3, 3, seed=4),
            "w4": _w(6, 8, 1, 1, seed=5),
            "b4": _w(6, seed=6),
            "fw": _w(10, 6, seed=7),
            "fb": _w(10, seed=8),
            "mw": _w(10, 5, seed=9),
        },
    ),
    "attention": (
        [
            _node("MatMul", ["x", "wq"], ["q"]),
            _node("MatMul", ["x", "wk"], ["k"]),
            _node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
            _node("MatMul", ["q", "kt"], ["s"]),
            _node("Softmax", ["s"], ["p"], axis=-1),
            _node("MatMul", ["p", "x"], ["ctx"]),
            _node("Add", ["ctx", "x"], ["y"]),
        ],
        {"x": [1, 6, 8]},
        {"wq": _w(8, 8, seed=1, scale=0.3), "wk": _w(8, 8, seed=2, scale=0.3)},
    ),
    # Pad, MaxPool and Resize run on the 8-bit tensors directly in this form
    "pad_resize_softmax": (
        [
            _node("Conv", ["x", "w1", "b1"], ["c1"]),
            _node("Pad", ["c1", "pads", "pv"], ["p"]),
            _node("MaxPool", ["p"], ["mp"], kernel_shape=[2, 2], strides=[2, 2]),
            _node("Resize", ["mp", "", "sc"], ["r"], mode="nearest"),
            _node("Conv", ["r", "w2"], ["c2"]),
            _node("Softmax", ["c2"], ["y"], axis=1),
        ],
        {"x": [1, 3, 8, 8]},
        {
            "w1": _w(4, 3, 3, 3),
            "b1": _w(4, seed=1),
            "w2": _w(5, 4, 1, 1, seed=2),
            "pads": _i([0, 0, 1, 1, 0, 0, 1, 1]),
            "pv": _f(0.0),
            "sc": _f([1, 1, 2, 2]),
        },
    ),
}


def _check_qoperator(path: str, seeds=range(3)) -> dict[str, int]:
    g = load_onnx(path)
    model, _ = _expose_int8(onnx.load(path))
    sess = _session(model)
    names = [o.name for o in sess.get_outputs()]
    worst: dict[str, int] = {}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        feeds = {i.name: rng.standard_normal(i.shape).astype(np.float32) for i in sess.get_inputs()}
        ref = dict(zip(names, sess.run(None, feeds), strict=True))
        diffs = qop_layer_diffs(g, {**ref, **feeds})
        for k, v in diffs.items():
            worst[k] = max(worst.get(k, 0), v)
    return worst


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("act", ["QUInt8", "QInt8"])
@pytest.mark.parametrize("key", list(QOP_MODELS))
def test_qoperator_ops_within_one_quantum(tmp_path, key, act, per_channel):
    nodes, inputs, inits = QOP_MODELS[key]
    path = qoperator(tmp_path, make_model(nodes, inputs, ["y"], inits), inputs, act, per_channel)
    ops = {n.op_type for n in onnx.load(path).graph.node}
    g = load_onnx(path)
    assert _ops(g)[0] == "QUANTIZE" and _ops(g)[-1] == "DEQUANTIZE"
    assert all(g.out(n).dtype == "int8" for n in g.nodes[:-1]), _ops(g)
    worst = _check_qoperator(path)
    assert worst and max(worst.values()) <= 1, worst
    if key == "cnn":
        assert {
            "QLinearConv",
            "QLinearAdd",
            "QLinearMul",
            "QLinearSigmoid",
            "QLinearLeakyRelu",
            "QLinearConcat",
            "QLinearAveragePool",
            "QLinearGlobalAveragePool",
            "QGemm",
            "QLinearMatMul",
        } <= ops
        # every QLinear op, the convolutions, the pools and both products got compared
        assert len(worst) >= 14, worst
    elif key == "attention":
        assert "BATCH_MATMUL" in _ops(g)
    else:
        assert {"Pad", "Resize", "QLinearSoftmax"} <= ops
        assert {"PAD", "GATHER", "SOFTMAX"} <= set(_ops(g))


def test_qoperator_mnist8_top1_and_layers(tmp_path):
    rel = ONNX_CNN["mnist-8"]
    src = model_path(rel)
    from onnx import version_converter

    up = tmp_path / "mnist13.onnx"
    onnx.save(version_converter.convert_version(onnx.load(src), 13), up)
    digits = [np.load(c / "input_0.npy") for c in reference_cases(rel)]
    rng = np.random.default_rng(0)
    # the reference digits, shifted and with seeded noise: more digit-like samples
    cases = digits + [
        np.clip(np.roll(d, (dy, dx), axis=(2, 3)) + rng.normal(0, 20, d.shape), 0, 255).astype(
            np.float32
        )
        for d in digits
        for dy, dx in ((1, 0), (0, -2), (-1, 1), (2, 2))
    ]
    calib = digits + [rng.uniform(0, 255, (1, 1, 28, 28)).astype(np.float32) for _ in range(4)]
    name = onnx.load(up).graph.input[0].name

    class Reader(quant.CalibrationDataReader):
        def __init__(self):
            self.data = iter([{name: c} for c in calib])

        def get_next(self):
            return next(self.data, None)

    for act in ("QUInt8", "QInt8"):
        path = qoperator(tmp_path, str(up), None, act, reader=Reader())
        g = load_onnx(path)
        assert "QLinearConv" in {n.op_type for n in onnx.load(path).graph.node}
        # onnxruntime quantizes the reshaped weights of the last MatMul like an activation
        # (with a zero point): a BATCH_MATMUL with a constant operand takes them in int8
        assert {"CONV_2D", "MAX_POOL_2D", "BATCH_MATMUL"} <= set(_ops(g))
        assert all(g.out(n).dtype == "int8" for n in g.nodes[:-1]), _ops(g)
        sess = _session(path)
        exposed, _ = _expose_int8(onnx.load(path))
        full = _session(exposed)
        names = [o.name for o in full.get_outputs()]
        for x in cases:
            ref = sess.run(None, {name: x})[0]
            ours = _ours(g, {name: x})[g.outputs[0]]
            assert ours.argmax() == ref.argmax()
            refs = dict(zip(names, full.run(None, {name: x}), strict=True))
            diffs = qop_layer_diffs(g, {**refs, name: x})
            assert len(diffs) >= 4 and max(diffs.values()) <= 1, diffs


def test_qoperator_uint8_graph_io():
    """An int8 / uint8 model boundary (no Quantize/DequantizeLinear around it) keeps the
    file's integer type; the QLinearConv in between runs as an int8 CONV_2D."""
    inits = {
        "xs": _f(0.05),
        "xz": np.array(130, np.uint8),
        "w": np.random.default_rng(0).integers(-20, 20, (4, 3, 3, 3)).astype(np.int8),
        "ws": _f([0.01, 0.02, 0.015, 0.03]),
        "wz": np.zeros(4, np.int8),
        "ys": _f(0.2),
        "yz": np.array(120, np.uint8),
        "bias": np.arange(4, dtype=np.int32) * 50,
    }
    nodes = [
        _node(
            "QLinearConv",
            ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "bias"],
            ["y"],
            pads=[1, 1, 1, 1],
        ),
    ]
    model = make_model(
        nodes, {"x": [1, 3, 5, 5]}, {"y": [1, 4, 5, 5]}, inits, dtype=TensorProto.UINT8
    )
    g = load_onnx(model)
    assert "CONV_2D" in _ops(g)
    assert g.tensors["x"].dtype == g.tensors["y"].dtype == "uint8"
    sess = _session(model)
    rng = np.random.default_rng(1)
    for _ in range(3):
        x = rng.integers(0, 256, (1, 3, 5, 5)).astype(np.uint8)
        ref = sess.run(None, {"x": x})[0]
        ours = _ours(g, {"x": x})["y"]
        assert ours.dtype == np.uint8
        assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1


def test_qoperator_unquantized_weights_in_the_file_stay_readable():
    """A QLinearMatMul whose B is a run-time tensor (an attention product)."""
    inits = {
        "s": _f(0.05),
        "z": np.array(128, np.uint8),
        "ys": _f(0.3),
        "yz": np.array(128, np.uint8),
    }
    nodes = [
        _node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
        _node("Transpose", ["xq"], ["xt"], perm=[0, 2, 1]),
        _node("QLinearMatMul", ["xq", "s", "z", "xt", "s", "z", "ys", "yz"], ["mq"]),
        _node("DequantizeLinear", ["mq", "ys", "yz"], ["y"]),
    ]
    model = make_model(nodes, {"x": [2, 3, 4]}, {"y": [2, 3, 3]}, inits)
    g = load_onnx(model)
    assert "BATCH_MATMUL" in _ops(g)
    bmm = next(n for n in g.nodes if n.op == "BATCH_MATMUL")
    assert g.out(bmm).dtype == "int8" and bmm.attrs["adj_y"]
    sess = _session(model)
    for seed in range(3):
        x = np.random.default_rng(seed).standard_normal((2, 3, 4)).astype(np.float32)
        ref = sess.run(None, {"x": x})[0]
        ours = _ours(g, {"x": x})["y"]
        assert np.abs(ours - ref).max() <= 0.3 + 1e-6

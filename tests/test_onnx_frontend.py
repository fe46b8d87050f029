"""The ONNX frontend against onnxruntime (graph optimizations disabled).

Float models: tinyc's interpreter within 1e-4 relative of onnxruntime. QDQ models: every
int8 op, fed onnxruntime's own int8 inputs, within one quantum of onnxruntime's int8 output;
end to end the rounding differences of the TFLM integer kernels (double rounding in
MultiplyByQuantizedMultiplier) may add up over a deep network, so the final int8 logits are
held to two quanta and the same top-1 class.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from conftest import ONNX_CNN, model_path, reference_cases
from onnx import TensorProto, helper, numpy_helper

from tinyc import interpreter
from tinyc.cli import main as cli_main
from tinyc.errors import TinycError, UnsupportedError
from tinyc.frontend import load_model
from tinyc.frontend.onnx import load_onnx
from tinyc.ir.ops import get_op
from tinyc.modelio import to_external, to_internal

ort = pytest.importorskip("onnxruntime")

FLOAT_MODELS = ["mnist-8", "model_vww"]
SEEDS = range(5)


# -- helpers ------------------------------------------------------------------------------


def _session(model: str | bytes):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def _ours(g, feeds: dict[str, np.ndarray], keep_all: bool = False) -> dict[str, np.ndarray]:
    """Run the interpreter on inputs in the ONNX layout; outputs back in the ONNX layout."""
    values = interpreter.run(g, [to_internal(g, n, feeds[n]) for n in g.inputs], keep_all)
    if keep_all:
        return values
    return {n: to_external(g, n, values[n]) for n in g.outputs}


def _random_feeds(sess, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        i.name: rng.standard_normal([d if isinstance(d, int) else 1 for d in i.shape]).astype(
            np.float32
        )
        for i in sess.get_inputs()
    }


def _assert_close(ours: np.ndarray, ref: np.ndarray, rtol: float = 1e-4) -> None:
    assert ours.shape == ref.shape and ours.dtype == ref.dtype
    scale = float(np.abs(ref).max()) or 1.0
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=rtol * scale)


def make_model(
    nodes: list[onnx.NodeProto],
    inputs: dict[str, list],
    outputs: list[str] | dict[str, list],
    inits: dict[str, np.ndarray] | None = None,
    opset: int = 13,
    dtype: int = TensorProto.FLOAT,
) -> bytes:
    """A model from nodes; output shapes come from ONNX shape inference unless given."""
    out_shapes = outputs if isinstance(outputs, dict) else dict.fromkeys(outputs)
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, dtype, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, dtype, s) for n, s in out_shapes.items()],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model, data_prop=True).SerializeToString()


def _w(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _check_against_ort(model: bytes, seeds=range(3)) -> object:
    g = load_onnx(model)
    sess = _session(model)
    names = [o.name for o in sess.get_outputs()]
    for seed in seeds:
        feeds = _random_feeds(sess, seed)
        ref = dict(zip(names, sess.run(None, feeds), strict=True))
        ours = _ours(g, feeds)
        for n in names:
            _assert_close(ours[n], ref[n])
    return g


def _ops(g) -> list[str]:
    return [n.op for n in g.nodes]


# -- the shared real models -----------------------------------------------------------------


@pytest.mark.parametrize("key", FLOAT_MODELS)
def test_float_model_matches_onnxruntime(key):
    path = model_path(ONNX_CNN[key])
    g = load_model(path)
    assert g.source_format == "onnx"
    sess = _session(str(path))
    names = [o.name for o in sess.get_outputs()]
    assert g.outputs == names
    cases = reference_cases(ONNX_CNN[key])
    assert cases
    for case in cases:
        feeds = {i.name: np.load(case / "input_0.npy") for i in sess.get_inputs()}
        ours = _ours(g, feeds)
        _assert_close(ours[names[0]], np.load(case / "output_0.npy"))
    for seed in SEEDS:
        feeds = _random_feeds(sess, seed)
        for name, ref in zip(names, sess.run(None, feeds), strict=True):
            _assert_close(_ours(g, feeds)[name], ref)


def test_mnist8_structure():
    """Opset 8; bias Adds folded into the convs and the FC, ReLUs fused, the NCHW flatten
    transpose folded into the FC weights."""
    g = load_onnx(model_path(ONNX_CNN["mnist-8"]))
    assert _ops(g) == [
        "CONV_2D",
        "MAX_POOL_2D",
        "CONV_2D",
        "MAX_POOL_2D",
        "RESHAPE",
        "FULLY_CONNECTED",
    ]
    assert [n.attrs.get("activation") for n in g.nodes if n.op == "CONV_2D"] == ["RELU"] * 2
    assert g.nodes[0].name == "Convolution28"
    assert g.external_perm == {"Input3": (0, 3, 1, 2)}


def test_vww_structure():
    g = load_onnx(model_path(ONNX_CNN["model_vww"]))
    ops = _ops(g)
    assert ops.count("DEPTHWISE_CONV_2D") == 13 and ops.count("CONV_2D") == 14
    assert "TRANSPOSE" not in ops and "RELU" not in ops
    assert g.nodes[1].name == "Conv_2"
    w = g.inp(g.nodes[1], 1)
    assert w.shape == (1, 3, 3, 4)  # ONNX (4, 1, 3, 3) -> 1HWC


def _qdq_sessions(path_or_bytes):
    """onnxruntime with every QuantizeLinear output exposed."""
    m = (
        onnx.load_model_from_string(path_or_bytes)
        if isinstance(path_or_bytes, bytes)
        else (onnx.load(str(path_or_bytes)))
    )
    types = {
        v.name: v.type.tensor_type.elem_type
        for v in onnx.shape_inference.infer_shapes(m).graph.value_info
    }
    qouts = [n.output[0] for n in m.graph.node if n.op_type == "QuantizeLinear"]
    for q in qouts:
        m.graph.output.append(helper.make_tensor_value_info(q, types[q], None))
    return _session(m.SerializeToString()), qouts


def _as_int8(x: np.ndarray) -> np.ndarray:
    return (x.astype(np.int16) - 128).astype(np.int8) if x.dtype == np.uint8 else x


def _isolated_layer_diffs(g, ref: dict[str, np.ndarray]) -> dict[str, int]:
    """Each int8 op (with the requantization after it, if any) fed onnxruntime's int8 values:
    the largest difference from onnxruntime's int8 output, in quanta. An input onnxruntime
    does not expose is recomputed from one it does through the exact ops in between
    (RESHAPE, float -> int8 QUANTIZE)."""
    producers = g.producers()

    def value(name: str) -> np.ndarray | None:
        t = g.tensors[name]
        if t.is_const:
            return t.data
        if name in ref:  # 4-D: NCHW in onnxruntime, NHWC in tinyc
            r = _as_int8(ref[name])
            return (r.transpose(0, 2, 3, 1) if r.ndim == 4 else r).reshape(t.shape)
        p = producers.get(name)
        if p is None or p.op not in ("RESHAPE", "QUANTIZE"):
            return None
        x = value(p.inputs[0])
        return None if x is None else get_op(p.op).evaluate(p, g, [x])[0]

    consumers = g.consumers()
    diffs = {}
    for n in g.nodes:
        if g.tensors[n.outputs[0]].dtype != "int8" or g.tensors[n.inputs[0]].dtype != "int8":
            continue
        chain = [n]  # an op and the int8 requantization after it, if any
        readers = consumers.get(n.outputs[0], [])
        if n.outputs[0] not in ref and len(readers) == 1 and readers[0].op == "QUANTIZE":
            chain.append(readers[0])
        out = chain[-1].outputs[0]
        xs = [value(i) if i else None for i in n.inputs]
        if out not in ref or any(x is None for x, i in zip(xs, n.inputs, strict=True) if i):
            continue
        for op in chain:
            xs = get_op(op.op).evaluate(op, g, xs)
        diffs[n.name] = int(np.abs(xs[0].astype(np.int64) - value(out)).max())
    return diffs


def test_qdq_kws_int8_matches_onnxruntime():
    rel = ONNX_CNN["kws_ref_model_qdq"]
    path = model_path(rel)
    g = load_onnx(path)
    ops = _ops(g)
    # float in/out, int8 inside: QUANTIZE at the entry, DEQUANTIZE before the float softmax
    assert ops[0] == "QUANTIZE" and ops[-2:] == ["DEQUANTIZE", "SOFTMAX"]
    for n in g.nodes[1:-2]:
        assert g.out(n).dtype == "int8", n.name
    convs = [n for n in g.nodes if n.op in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    assert len(convs) == 9
    for n in convs:
        w, b = g.inp(n, 1), g.inp(n, 2)
        assert w.dtype == "int8" and w.quant.per_channel
        assert w.quant.axis == (0 if n.op == "CONV_2D" else 3)
        assert b.dtype == "int32"
    sess, qouts = _qdq_sessions(path)
    names = [o.name for o in sess.get_outputs()]
    logits = "PPQ_Variable_175"  # the FC's int8 output (scale 0.171)
    feeds_list = [{"input_1": np.load(c / "input_0.npy")} for c in reference_cases(rel)]
    feeds_list += [_random_feeds(sess, s) for s in SEEDS]
    for i, feeds in enumerate(feeds_list):
        ref = dict(zip(names, sess.run(None, feeds), strict=True))
        diffs = _isolated_layer_diffs(g, {**ref, **feeds})
        assert len(diffs) == 11, diffs  # 9 convs, MEAN, FULLY_CONNECTED
        assert max(diffs.values()) <= 1, diffs
        values = _ours(g, feeds, keep_all=True)
        assert np.abs(values[logits].astype(int) - ref[logits].astype(int)).max() <= 2
        out = to_external(g, "dense", values["dense"])
        assert out.argmax() == ref["dense"].argmax()
        if i < 2:  # the reference_io cases hold to one quantum end to end
            assert np.abs(values[logits].astype(int) - ref[logits].astype(int)).max() <= 1
        # the float softmax runs on the dequantized int8 logits
        q = g.tensors[logits].quant
        z = (values[logits].astype(np.float64) - q.zp) * float(q.s)
        e = np.exp(z - z.max())
        np.testing.assert_allclose(out, e / e.sum(), rtol=1e-5, atol=1e-7)


def test_uint8_qdq_from_onnxruntime_quantizer(tmp_path):
    """model_vww quantized by onnxruntime's own QDQ quantizer (uint8 activations, per-channel
    int8 weights): every conv runs in int8, each layer within one quantum."""
    quant = pytest.importorskip("onnxruntime.quantization")
    from onnx import version_converter

    src = tmp_path / "vww13.onnx"
    onnx.save(
        version_converter.convert_version(onnx.load(model_path(ONNX_CNN["model_vww"])), 13), src
    )

    class Reader(quant.CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(0)
            shape = (1, 3, 96, 96)
            self.data = iter(
                [{"actual_input_1": rng.standard_normal(shape).astype(np.float32)}] * 2
            )

        def get_next(self):
            return next(self.data, None)

    dst = tmp_path / "vww_qdq.onnx"
    quant.quantize_static(
        str(src),
        str(dst),
        Reader(),
        quant_format=quant.QuantFormat.QDQ,
        activation_type=quant.QuantType.QUInt8,
        weight_type=quant.QuantType.QInt8,
        per_channel=True,
    )
    g = load_onnx(dst)
    assert all(
        g.out(n).dtype == "int8"
        for n in g.nodes
        if n.op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MEAN")
    )
    assert _ops(g)[0] == "QUANTIZE" and _ops(g)[-1] == "DEQUANTIZE"
    sess, _ = _qdq_sessions(dst)
    names = [o.name for o in sess.get_outputs()]
    for seed in range(2):
        feeds = _random_feeds(sess, seed)
        ref = dict(zip(names, sess.run(None, feeds), strict=True))
        diffs = _isolated_layer_diffs(g, {**ref, **feeds})
        assert len(diffs) >= 27
        assert max(diffs.values()) <= 1, diffs


@pytest.mark.parametrize("dtype", [TensorProto.INT8, TensorProto.UINT8])
def test_qdq_with_integer_io(dtype):
    """int8 / uint8 graph I/O around a QDQ conv + ReLU whose float weights go through their
    own QuantizeLinear (folded to int8 constants): a pure int8 CONV_2D, exact here."""
    np_dt = np.uint8 if dtype == TensorProto.UINT8 else np.int8
    zp = 130 if dtype == TensorProto.UINT8 else 3
    inits = {
        "w": _w(4, 3, 3, 3) * 0.3,
        "ws": np.full(4, 0.01, np.float32),
        "wz": np.zeros(4, np.int8),
        "xs": np.array(0.05, np.float32),
        "xz": np.array(zp, np_dt),
        "ys": np.array(0.2, np.float32),
        "yz": np.array(zp - 5, np_dt),
    }
    nodes = [
        helper.make_node("QuantizeLinear", ["w", "ws", "wz"], ["wq"], axis=0),
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wf"], axis=0),
        helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["xf"]),
        helper.make_node("Conv", ["xf", "wf"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("QuantizeLinear", ["r", "ys", "yz"], ["y"]),
    ]
    model = make_model(nodes, {"x": [1, 3, 5, 5]}, ["y"], inits, dtype=dtype)
    g = load_onnx(model)
    ops = _ops(g)
    assert "CONV_2D" in ops and g.out(g.nodes[ops.index("CONV_2D")]).dtype == "int8"
    assert g.nodes[ops.index("CONV_2D")].attrs["activation"] == "RELU"
    assert set(ops) <= {"QUANTIZE", "CONV_2D"}
    assert g.tensors["x"].dtype == g.tensors["y"].dtype == np.dtype(np_dt).name
    sess = _session(model)
    rng = np.random.default_rng(1)
    info = np.iinfo(np_dt)
    for _ in range(3):
        x = rng.integers(info.min, info.max + 1, (1, 3, 5, 5)).astype(np_dt)
        ref = sess.run(None, {"x": x})[0]
        ours = _ours(g, {"x": x})["y"]
        assert ours.dtype == ref.dtype
        assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1


def _ort_quantize(tmp_path, model: bytes, act_type: str) -> str:
    """Quantize a float model with onnxruntime's QDQ quantizer (per-channel int8 weights)."""
    quant = pytest.importorskip("onnxruntime.quantization")
    src, dst = tmp_path / "float.onnx", tmp_path / "qdq.onnx"
    src.write_bytes(model)
    sess = _session(model)

    class Reader(quant.CalibrationDataReader):
        def __init__(self):
            self.data = iter([_random_feeds(sess, 100 + i) for i in range(3)])

        def get_next(self):
            return next(self.data, None)

    quant.quantize_static(
        str(src),
        str(dst),
        Reader(),
        quant_format=quant.QuantFormat.QDQ,
        activation_type=getattr(quant.QuantType, act_type),
        weight_type=quant.QuantType.QInt8,
        per_channel=True,
    )
    return str(dst)


def _qdq_graphs():
    w = _w
    return {
        "grouped_conv_maxpool": (
            [
                helper.make_node("Conv", ["x", "wg"], ["a"], group=2, pads=[1, 1, 1, 1]),
                helper.make_node("MaxPool", ["a"], ["y"], kernel_shape=[2, 2]),
            ],
            {"x": [1, 4, 7, 7]},
            {"wg": w(6, 2, 3, 3)},
        ),
        "concat_requantized": (
            [
                helper.make_node("Conv", ["x", "w1"], ["a"]),
                helper.make_node("Conv", ["x", "w2"], ["b"], pads=[1, 1, 1, 1]),
                helper.make_node("Concat", ["a", "b"], ["c"], axis=1),
                helper.make_node("Conv", ["c", "w3"], ["y"]),
            ],
            {"x": [1, 3, 4, 6]},
            {"w1": w(2, 3, 1, 1), "w2": w(3, 3, 3, 3, seed=1), "w3": w(4, 5, 1, 1)},
        ),
        "add_sigmoid_mul_pool_gemm": (
            [
                helper.make_node("Conv", ["x", "w1"], ["a"]),
                helper.make_node("Conv", ["x", "w2"], ["b"]),
                helper.make_node("Add", ["a", "b"], ["c"]),
                helper.make_node("Sigmoid", ["c"], ["s"]),
                helper.make_node("Mul", ["s", "a"], ["m"]),
                helper.make_node("AveragePool", ["m"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
                helper.make_node("Flatten", ["p"], ["f"]),
                helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1),
            ],
            {"x": [1, 3, 4, 6]},
            {"w1": w(2, 3, 1, 1), "w2": w(2, 3, 1, 1, seed=1), "fw": w(5, 12), "fb": w(5)},
        ),
    }


@pytest.mark.parametrize("act_type", ["QInt8", "QUInt8"])
@pytest.mark.parametrize(
    "key", ["grouped_conv_maxpool", "concat_requantized", "add_sigmoid_mul_pool_gemm"]
)
def test_qdq_ops_quantized_by_onnxruntime(tmp_path, key, act_type):
    nodes, inputs, inits = _qdq_graphs()[key]
    path = _ort_quantize(tmp_path, make_model(nodes, inputs, ["y"], inits), act_type)
    g = load_onnx(path)
    ops = _ops(g)
    assert ops[0] == "QUANTIZE" and ops[-1] == "DEQUANTIZE"
    assert all(g.out(n).dtype == "int8" for n in g.nodes[:-1]), ops
    sess, _ = _qdq_sessions(path)
    names = [o.name for o in sess.get_outputs()]
    for seed in SEEDS:
        feeds = _random_feeds(sess, seed)
        ref = dict(zip(names, sess.run(None, feeds), strict=True))
        diffs = _isolated_layer_diffs(g, {**ref, **feeds})
        assert diffs and max(diffs.values()) <= 1, diffs
        # End to end one LSB of an inner layer can grow by the next layers' gains (up to 3
        # output quanta seen here), so only a coarse bound holds there.
        ours = _ours(g, feeds)["y"]
        assert np.abs(ours - ref["y"]).max() <= 0.05 * np.abs(ref["y"]).max()


# -- the layout rule on small synthetic models ------------------------------------------


def _conv(x, w, y, **kw):
    return helper.make_node("Conv", [x, w], [y], name=y, **kw)


def test_flatten_after_conv_uses_nchw_order():
    nodes = [
        _conv("x", "w", "c", pads=[1, 1, 1, 1]),
        helper.make_node("Flatten", ["c"], ["f"]),
        helper.make_node("Gemm", ["f", "fc", "fb"], ["y"], transB=1),
    ]
    inits = {"w": _w(4, 3, 3, 3), "fc": _w(5, 4 * 6 * 5), "fb": _w(5)}
    g = _check_against_ort(make_model(nodes, {"x": [1, 3, 6, 5]}, ["y"], inits))
    # the NCHW transpose is folded into the FC weights
    assert _ops(g) == ["CONV_2D", "RESHAPE", "FULLY_CONNECTED"]


def test_flatten_of_1x1_spatial_needs_no_transpose():
    nodes = [
        _conv("x", "w", "c"),
        helper.make_node("GlobalAveragePool", ["c"], ["p"]),
        helper.make_node("Reshape", ["p", "shape"], ["r"]),
        helper.make_node("MatMul", ["r", "m"], ["y"]),
    ]
    inits = {"w": _w(4, 3, 1, 1), "shape": np.array([1, -1]), "m": _w(4, 2)}
    g = _check_against_ort(make_model(nodes, {"x": [1, 3, 5, 5]}, ["y"], inits))
    assert "TRANSPOSE" not in _ops(g)


def test_concat_on_channels_then_conv():
    nodes = [
        _conv("x", "w1", "a"),
        _conv("x", "w2", "b", pads=[1, 1, 1, 1]),
        helper.make_node("Concat", ["a", "b"], ["c"], axis=1),
        _conv("c", "w3", "y"),
    ]
    inits = {"w1": _w(2, 3, 1, 1), "w2": _w(3, 3, 3, 3, seed=1), "w3": _w(4, 5, 1, 1)}
    g = _check_against_ort(make_model(nodes, {"x": [1, 3, 4, 6]}, ["y"], inits))
    assert "TRANSPOSE" not in _ops(g)
    assert g.external_perm["y"] == (0, 3, 1, 2)


@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_mean_over_hw(keepdims):
    nodes = [
        _conv("x", "w", "c"),
        helper.make_node("ReduceMean", ["c"], ["y"], axes=[2, 3], keepdims=keepdims),
    ]
    g = _check_against_ort(make_model(nodes, {"x": [1, 3, 4, 5]}, ["y"], {"w": _w(6, 3, 1, 1)}))
    assert _ops(g) == ["CONV_2D", "MEAN"]
    assert g.nodes[1].attrs["axes"] == (1, 2)


def test_reduce_mean_axes_input_opset18():
    nodes = [helper.make_node("ReduceMean", ["x", "axes"], ["y"], keepdims=0)]
    model = make_model(nodes, {"x": [1, 3, 4, 5]}, ["y"], {"axes": np.array([1, -1])}, opset=18)
    _check_against_ort(model)


def test_transpose_is_a_relabel():
    nodes = [
        _conv("x", "w", "c"),
        helper.make_node("Transpose", ["c"], ["t"], perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["t", "s"], ["r"]),
        helper.make_node("Relu", ["t"], ["y2"]),
        helper.make_node("MatMul", ["r", "m"], ["y"]),
    ]
    inits = {"w": _w(4, 3, 1, 1), "s": np.array([1, 3 * 5 * 4]), "m": _w(60, 2)}
    g = _check_against_ort(make_model(nodes, {"x": [1, 3, 3, 5]}, ["y", "y2"], inits))
    # NCHW -> NHWC in ONNX is the IR's own layout: no data moves
    assert "TRANSPOSE" not in _ops(g)
    assert "y2" not in g.external_perm


def test_softmax_axes():
    for opset, axis in [(13, 1), (13, -1), (11, 1), (11, 3)]:
        nodes = [_conv("x", "w", "c"), helper.make_node("Softmax", ["c"], ["y"], axis=axis)]
        model = make_model(nodes, {"x": [1, 3, 2, 4]}, ["y"], {"w": _w(5, 3, 1, 1)}, opset=opset)
        _check_against_ort(model)


def test_squeeze_unsqueeze_pad_split():
    nodes = [
        _conv("x", "w", "c"),
        helper.make_node("Pad", ["c", "pads"], ["p"]),
        helper.make_node("Split", ["p", "split"], ["s1", "s2"], axis=1),
        helper.make_node("GlobalAveragePool", ["s2"], ["g"]),
        helper.make_node("Squeeze", ["g", "sq"], ["q"]),
        helper.make_node("Unsqueeze", ["q", "usq"], ["u"]),
        helper.make_node("Mul", ["s1", "u"], ["y"]),
    ]
    inits = {
        "w": _w(6, 3, 1, 1),
        "pads": np.array([0, 0, 1, 2, 0, 0, 0, 1]),
        "split": np.array([3, 3]),
        "sq": np.array([2, 3]),
        "usq": np.array([2, 3]),
    }
    _check_against_ort(make_model(nodes, {"x": [1, 3, 4, 4]}, ["y"], inits))


def test_batchnorm_folded_after_conv_and_lowered_elsewhere():
    c = 4
    bn = {
        f"{p}{k}": v
        for p in ("a", "b")
        for k, v in zip(
            ("s", "b", "m", "v"),
            (_w(c, seed=1), _w(c, seed=2), _w(c, seed=3), np.abs(_w(c, seed=4)) + 0.1),
            strict=True,
        )
    }
    nodes = [
        helper.make_node("BatchNormalization", ["x", "as", "ab", "am", "av"], ["n0"]),
        _conv("n0", "w", "c"),
        helper.make_node("BatchNormalization", ["c", "bs", "bb", "bm", "bv"], ["n1"]),
        helper.make_node("Relu", ["n1"], ["y"]),
    ]
    inits = {**bn, "w": _w(c, c, 3, 3)}
    g = _check_against_ort(make_model(nodes, {"x": [1, c, 5, 5]}, ["y"], inits))
    assert _ops(g) == ["MUL", "ADD", "CONV_2D"]
    assert g.nodes[-1].attrs["activation"] == "RELU"


def test_grouped_and_depthwise_multiplier_convs():
    nodes = [
        _conv("x", "wg", "a", group=2, pads=[1, 1, 1, 1]),
        _conv("a", "wd", "y", group=6, strides=[2, 2]),
    ]
    inits = {"wg": _w(6, 2, 3, 3), "wd": _w(12, 1, 3, 3, seed=1)}
    g = _check_against_ort(make_model(nodes, {"x": [1, 4, 7, 7]}, ["y"], inits))
    assert _ops(g) == ["CONV_2D", "DEPTHWISE_CONV_2D"]  # the first one grouped (2 groups)
    assert g.tensors[g.nodes[0].inputs[1]].shape[3] == 2
    assert g.nodes[-1].attrs["depth_multiplier"] == 2


def test_conv1d_and_pool1d():
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 2], strides=[2]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["m"], kernel_shape=[2], strides=[2]),
        helper.make_node("Conv", ["m", "w2"], ["y"], group=5, kernel_shape=[3]),
    ]
    inits = {"w": _w(5, 3, 4), "b": _w(5), "w2": _w(5, 1, 3, seed=2)}
    g = _check_against_ort(make_model(nodes, {"x": [1, 3, 20]}, ["y"], inits))
    # NCW in and out, NWC inside; 1-D ops run as 2-D with H = 1, the ReLU fused
    assert g.external_perm == {"x": (0, 2, 1), "y": (0, 2, 1)}
    assert _ops(g) == ["RESHAPE", "CONV_2D", "MAX_POOL_2D", "DEPTHWISE_CONV_2D", "RESHAPE"]
    assert g.nodes[1].attrs["activation"] == "RELU"


def test_pooling_variants():
    nodes = [
        helper.make_node(
            "AveragePool",
            ["x"],
            ["a"],
            kernel_shape=[3, 3],
            pads=[1, 1, 1, 1],
            count_include_pad=1,
        ),
        helper.make_node(
            "AveragePool", ["x"], ["b"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1
        ),
        helper.make_node(
            "MaxPool", ["x"], ["c"], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"
        ),
        helper.make_node("GlobalMaxPool", ["x"], ["d"]),
    ]
    _check_against_ort(make_model(nodes, {"x": [1, 2, 5, 7]}, ["a", "b", "c", "d"]))


def test_gemm_matmul_and_elementwise():
    nodes = [
        helper.make_node("Gemm", ["x", "w", "c"], ["g"], transA=1, alpha=0.5, beta=2.0),
        helper.make_node("Clip", ["g", "lo", "hi"], ["cl"]),
        helper.make_node("Sigmoid", ["cl"], ["s"]),
        helper.make_node("Sub", ["k", "s"], ["d"]),
        helper.make_node("Div", ["d", "k"], ["t"]),
        helper.make_node("Tanh", ["t"], ["y"]),
        helper.make_node("MatMul", ["z", "m"], ["y2"]),
        helper.make_node("Add", ["y2", "z"], ["y3"]),
    ]
    inits = {
        "w": _w(4, 6),
        "c": _w(1, 6),
        "lo": np.array(0.0, np.float32),
        "hi": np.array(6.0, np.float32),
        "k": np.array([1.5], np.float32),
        "m": _w(5, 5, seed=3),
    }
    g = _check_against_ort(make_model(nodes, {"x": [4, 2], "z": [2, 3, 5]}, ["y", "y3"], inits))
    assert "RELU6" in _ops(g) or any(n.attrs.get("activation") == "RELU6" for n in g.nodes)


def test_symbolic_batch_is_set_to_one():
    nodes = [_conv("x", "w", "y")]
    model = make_model(nodes, {"x": ["N", 3, 4, 4]}, ["y"], {"w": _w(2, 3, 1, 1)})
    g = load_onnx(model)
    assert g.tensors["x"].shape == (1, 4, 4, 3)


def test_shape_subgraph_is_folded():
    """Shape -> Gather -> Unsqueeze -> Concat -> Reshape, as PyTorch exports flatten."""
    nodes = [
        _conv("x", "w", "c"),
        helper.make_node("Shape", ["c"], ["sh"]),
        helper.make_node("Gather", ["sh", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "ax"], ["nu"]),
        helper.make_node("Concat", ["nu", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["c", "target"], ["y"]),
    ]
    inits = {
        "w": _w(4, 3, 3, 3),
        "zero": np.array(0, np.int64),
        "ax": np.array([0], np.int64),
        "minus1": np.array([-1], np.int64),
    }
    g = _check_against_ort(make_model(nodes, {"x": [1, 3, 5, 5]}, {"y": ["n", "m"]}, inits))
    assert _ops(g) == ["CONV_2D", "TRANSPOSE", "RESHAPE"]


# -- bad input ----------------------------------------------------------------------------


def test_unsupported_ops_are_listed_together():
    """The model still loads (inspect and estimate show every node); running or compiling
    it names every unsupported operator at once, grouped by type."""
    from tinyc.inspect_model import inspect_graph
    from tinyc.ir.verify import require_supported

    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="relu"),
        helper.make_node("Celu", ["a"], ["b"], name="celu_1"),
        helper.make_node("Relu", ["b"], ["c"], name="relu_2"),
        helper.make_node("Celu", ["c"], ["d"], name="celu_2"),
        helper.make_node("Sin", ["d"], ["y"], name="sin_1"),
    ]
    g = load_onnx(make_model(nodes, {"x": [1, 4]}, ["y"], opset=14))
    info = inspect_graph(g)
    assert [n["op"] for n in info["nodes"]] == ["RELU", "Celu", "RELU", "Celu", "Sin"]
    assert [n["supported"] for n in info["nodes"]] == [True, False, True, False, False]
    assert info["nodes"][4]["output"] == [1, 4]
    with pytest.raises(UnsupportedError) as e:
        require_supported(g)
    assert "3 unsupported operator(s): Celu x2 (celu_1, celu_2), Sin (sin_1)" in str(e.value)


def test_real_model_with_grus_translates():
    """gtcrn_simple (GRUs with Gather/Slice/ScatterND around them) has no unsupported
    operator left; tests/test_onnx_recurrent.py checks its outputs."""
    g = load_onnx(model_path("onnx_gtcrn_simple/gtcrn_simple.onnx"))
    assert "GRU" in _ops(g)


def test_truncated_and_foreign_files(tmp_path):
    data = model_path(ONNX_CNN["mnist-8"]).read_bytes()
    cases = {"cut.onnx": data[: len(data) // 2], "text.onnx": b"hello, not a model\n"}
    for name, content in cases.items():
        p = tmp_path / name
        p.write_bytes(content)
        with pytest.raises(TinycError, match="not a readable ONNX model"):
            load_onnx(p)
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(TinycError, match="not an ONNX model"):
        load_onnx(tmp_path / "empty.onnx")
    with pytest.raises(TinycError, match="no such file"):
        load_onnx(tmp_path / "missing.onnx")


def test_dynamic_dimension_is_an_error():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], {"x": [1, 3, "H", 8]}, ["y"])
    with pytest.raises(TinycError, match=r"input 'x' has dynamic dimension 'H' at axis 2"):
        load_onnx(model)


def test_unsupported_dtype_is_an_error():
    model = make_model(
        [helper.make_node("Relu", ["x"], ["y"])], {"x": [1, 4]}, ["y"], dtype=TensorProto.DOUBLE
    )
    with pytest.raises(UnsupportedError, match="input 'x' has unsupported dtype double"):
        load_onnx(model)


def test_unsupported_attribute_names_the_node():
    from tinyc.ir.verify import require_supported

    nodes = [helper.make_node("Resize", ["x", "", "sc"], ["y"], name="resize7", mode="cubic")]
    inits = {"sc": np.array([1, 1, 2, 2], np.float32)}
    with pytest.raises(UnsupportedError, match=r"node 'resize7' \(Resize\): mode 'cubic'"):
        require_supported(load_onnx(make_model(nodes, {"x": [1, 1, 2, 2]}, ["y"], inits)))
    nodes = [helper.make_node("Conv", ["x", "x"], ["y"], name="dyn_conv")]
    with pytest.raises(UnsupportedError, match="node 'dyn_conv' .* must be constants"):
        require_supported(load_onnx(make_model(nodes, {"x": [1, 1, 1, 1]}, ["y"])))


# -- command line -------------------------------------------------------------------------


def test_cli_infer_and_inspect(tmp_path, capsys):
    rel = ONNX_CNN["mnist-8"]
    case = reference_cases(rel)[0]
    out = tmp_path / "out"
    assert (
        cli_main(["infer", str(model_path(rel)), "-i", str(case / "input_0.npy"), "-o", str(out)])
        == 0
    )
    y = np.load(out / "output_0.npy")
    _assert_close(y, np.load(case / "output_0.npy"))
    assert cli_main(["inspect", str(model_path(rel))]) == 0
    text = capsys.readouterr().out
    assert "Convolution28" in text and "Input3: float32[1,1,28,28]" in text


def test_cli_error_is_one_line(tmp_path, capsys):
    p = tmp_path / "bad.onnx"
    p.write_bytes(b"\x08\x07garbage" * 10)
    assert cli_main(["inspect", str(p)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tinyc: error: ") and "\n" not in err

"""The .tflite writer against TFLite Micro itself.

Round trip: every int8 .tflite of the shared set -> IR -> write_tflite -> TFLM must give
bit-identical outputs to TFLM on the original file and to tinyc's interpreter (every
intermediate tensor too). Graphs built directly in IR (not from a .tflite) exercise what
the frontend never produces: explicit pads, parameters kept as attributes, other layouts.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import FAST_INT8, FLOAT_TFLITE, INT8_TFLITE, model_path, reference_cases

from tinyc import interpreter
from tinyc.backends.tflm import host
from tinyc.backends.tflm.writer import ALIGNMENT, build_model, write_tflite
from tinyc.errors import TinycError, UnsupportedError
from tinyc.frontend.tflite import READERS, load_tflite
from tinyc.ir.graph import Graph, Node
from tinyc.ir.tensor import QuantParams, Tensor
from tinyc.ir.verify import verify
from tinyc.modelio import random_inputs, to_external, to_internal
from tinyc.tflite_schema import builtin_names, schema

pytest.importorskip("tflite_micro")


# -- helpers ------------------------------------------------------------------------------


def _ops(data: bytes) -> list[str]:
    m = schema().ModelT.InitFromPackedBuf(bytearray(data), 0)
    codes = m.operatorCodes
    return [
        builtin_names()[
            max(codes[o.opcodeIndex].builtinCode, codes[o.opcodeIndex].deprecatedBuiltinCode)
        ]
        for o in m.subgraphs[0].operators
    ]


def _assert_tflm_matches_interpreter(g: Graph, data: bytes, seeds: int = 5) -> None:
    """TFLM on ``data`` == tinyc's interpreter on ``g`` == tinyc's interpreter on ``data``
    read back, on every output, bit for bit (float: 1e-5 relative). Reading back checks
    what TFLM may ignore (e.g. it takes split sizes and MEAN's keep_dims from the output
    shapes)."""
    readable = all(op in READERS for op in _ops(data))
    again = load_tflite(data) if readable else g
    verify(again)
    for seed in range(seeds):
        xs = random_inputs(g, seed)
        ref = interpreter.run(g, xs)
        ext_in = [to_external(g, n, x) for n, x in zip(g.inputs, xs, strict=True)]
        outs = host.run(data, ext_in)
        reread = interpreter.run(again, ext_in if readable else xs)
        for name, y, name2 in zip(g.outputs, outs, again.outputs, strict=True):
            want = to_external(g, name, ref[name])
            back = reread[name2] if readable else want
            assert y.shape == want.shape, name
            if y.dtype == np.float32:
                np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6, err_msg=name)
                np.testing.assert_allclose(back, want, rtol=1e-5, atol=1e-6)
            else:
                np.testing.assert_array_equal(y, want, err_msg=f"{name} seed {seed}")
                np.testing.assert_array_equal(back, want, err_msg=f"{name} reread")


def _tensor_values(data: bytes, inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Every tensor TFLM computed, by name."""
    it = host.interpreter(data, preserve_all=True)
    for i, x in enumerate(inputs):
        it.set_input(x, i)
    it.invoke()
    sg = schema().ModelT.InitFromPackedBuf(bytearray(data), 0).subgraphs[0]
    return {
        t.name.decode(): it.GetTensor(i, 0)["tensor_data"]
        for i, t in enumerate(sg.tensors)
        if t.buffer == 0
    }


class Builder:
    """Small IR graphs for the tests: int8 (``quant``) or float32."""

    def __init__(self, quant: bool, seed: int = 0):
        self.g = Graph(name="t", source_format="test")
        self.quant = quant
        self.rng = np.random.default_rng(seed)
        self.dtype = "int8" if quant else "float32"

    def _q(self, spec) -> QuantParams | None:
        if not self.quant:
            return None
        if isinstance(spec, QuantParams):
            return spec
        if spec is None:
            return QuantParams(
                np.float32(self.rng.uniform(0.02, 0.08)), int(self.rng.integers(-20, 20))
            )
        return QuantParams(np.float32(spec[0]), spec[1])

    def input(self, name: str, shape) -> str:
        self.g.add_tensor(Tensor(name, shape, self.dtype, None, self._q(None)))
        self.g.inputs.append(name)
        return name

    def weights(self, name: str, shape, axis: int) -> str:
        if self.quant:
            data = self.rng.integers(-127, 128, shape).astype(np.int8)
            scales = self.rng.uniform(0.002, 0.01, shape[axis]).astype(np.float32)
            q = QuantParams(scales, np.zeros(shape[axis], np.int64), axis)
        else:
            data, q = self.rng.standard_normal(shape).astype(np.float32) * 0.3, None
        self.g.add_tensor(Tensor(name, shape, self.dtype, data, q))
        return name

    def bias(self, name: str, x: str, w: str, n: int) -> str:
        if self.quant:
            sx, sw = self.g.tensors[x].quant.s, self.g.tensors[w].quant.scale
            q = QuantParams((np.float64(sx) * sw).astype(np.float32), np.zeros(n, np.int64), 0)
            data = self.rng.integers(-2000, 2000, n).astype(np.int32)
            self.g.add_tensor(Tensor(name, (n,), "int32", data, q))
        else:
            self.g.add_tensor(Tensor(name, (n,), "float32", self.rng.standard_normal(n)))
        return name

    def op(self, kind: str, inputs: list[str], attrs=None, quant=None, outputs: int = 1):
        """Add a node; ``quant`` = "same" (input 0's), a (scale, zp) pair, or None (fresh)."""
        names = []
        for i in range(outputs):
            name = self.g.unique_name(f"{kind.lower()}_{len(self.g.nodes)}_{i}")
            q = self.g.tensors[inputs[0]].quant if quant == "same" else self._q(quant)
            self.g.add_tensor(Tensor(name, (1,), self.dtype, None, q))
            names.append(name)
        self.g.nodes.append(Node(kind, f"n{len(self.g.nodes)}", inputs, names, attrs or {}))
        verify_partial(self.g)
        return names[0] if outputs == 1 else names

    def finish(self, *outputs: str) -> Graph:
        self.g.outputs = list(outputs)
        verify(self.g)
        return self.g


def verify_partial(g: Graph) -> None:
    """Shape-infer the graph built so far (outputs not declared yet)."""
    saved = g.outputs
    g.outputs = []
    verify(g, fix_shapes=True)
    g.outputs = saved


def window_graph(quant: bool) -> Graph:
    b = Builder(quant)
    x = b.input("x", (1, 8, 8, 3))
    w = b.weights("w", (6, 3, 3, 3), 0)
    # pads (1,1,1,1) at stride 2 on 8 pixels are not SAME (that is (0,1)): needs a PAD
    c = b.op(
        "CONV_2D",
        [x, w, b.bias("b", x, w, 6)],
        {"stride": (2, 2), "pads": (1, 1, 1, 1), "activation": "RELU"},
    )
    dw = b.weights("dw", (1, 3, 3, 12), 3)
    d = b.op(
        "DEPTHWISE_CONV_2D",
        [c, dw, b.bias("db", c, dw, 12)],
        {"pads": (1, 1, 1, 1), "depth_multiplier": 2, "activation": "RELU6"},
    )
    m = b.op(
        "MAX_POOL_2D", [d], {"filter": (2, 2), "stride": (2, 2), "pads": (1, 0, 1, 0)}, quant="same"
    )
    a = b.op("AVERAGE_POOL_2D", [m], {"filter": (3, 3), "pads": (1, 1, 1, 1)}, quant="same")
    mean = b.op("MEAN", [a], {"axes": (1, 2), "keep_dims": True})
    r = b.op("RESHAPE", [mean], {"shape": (1, 12)}, quant="same")
    fw = b.weights("fw", (5, 12), 0)
    f = b.op("FULLY_CONNECTED", [r, fw, b.bias("fb", r, fw, 5)])
    s = b.op("SOFTMAX", [f], {"beta": 1.0}, quant=(1 / 256, -128))
    return b.finish(s, c)


def shapes_graph(quant: bool) -> Graph:
    b = Builder(quant, seed=1)
    x = b.input("x", (1, 4, 6, 8))
    y = b.input("y", (1, 8, 24))
    t = b.op("TRANSPOSE", [x], {"perm": (0, 3, 1, 2)}, quant="same")
    r = b.op("RESHAPE", [t], {"shape": (1, 8, -1)}, quant="same")
    s0, s1 = b.op("SPLIT", [r], {"axis": 1, "num_splits": 2}, quant="same", outputs=2)
    v0, v1 = b.op("SPLIT_V", [s0], {"axis": -1, "size_splits": (10, -1)}, quant="same", outputs=2)
    p = b.op("PACK", [s0, s1], {"axis": 0}, quant="same")
    u0, u1 = b.op("UNPACK", [p], {"axis": 0}, quant="same", outputs=2)
    c = b.op("CONCATENATION", [u0, u1], {"axis": -1}, quant="same")
    padded = b.op("PAD", [c], {"paddings": ((0, 0), (1, 2), (0, 3)), "value": None}, quant="same")
    add = b.op("ADD", [y, r], {"activation": "RELU"})
    sub = b.op("SUB", [add, y])
    mul = b.op("MUL", [sub, r])
    lg = b.op("LOGISTIC", [mul], quant=(1 / 256, -128))
    th = b.op("TANH", [v1], quant=(1 / 128, 0))
    return b.finish(padded, lg, th, v0)


def relu_graph(quant: bool) -> Graph:
    b = Builder(quant, seed=2)
    x = b.input("x", (1, 3, 7))
    relu = b.op("RELU", [x])
    relu6 = b.op("RELU6", [relu], quant="same")
    return b.finish(relu, relu6)


# -- round trips of the shared models ------------------------------------------------------


def _round_trip(model: str, seeds: int) -> None:
    rel = INT8_TFLITE[model]
    path = model_path(rel)
    g = load_tflite(path)
    data = write_tflite(g)
    original = path.read_bytes()
    cases = [
        [np.load(c / f"input_{i}.npy") for i in range(len(g.inputs))] for c in reference_cases(rel)
    ]
    cases += [random_inputs(g, seed) for seed in range(seeds)]
    for xs in cases:
        ours = host.run(data, xs)
        theirs = host.run(original, xs)
        ref = interpreter.run(g, xs)
        for name, a, b in zip(g.outputs, ours, theirs, strict=True):
            np.testing.assert_array_equal(a, b, err_msg=f"{model}: {name} rewritten vs original")
            np.testing.assert_array_equal(a, ref[name].reshape(a.shape), err_msg=name)
    # every intermediate tensor of the rewritten file, by name
    xs = cases[-1]
    values = _tensor_values(data, xs)
    mine = interpreter.run(g, xs, keep_all=True)
    for node in g.nodes:
        for name in node.outputs:
            np.testing.assert_array_equal(
                values[name].reshape(g.tensors[name].shape), mine[name], err_msg=node.name
            )
    # and the rewritten file reads back into an equivalent graph
    g2 = load_tflite(data)
    verify(g2)
    assert [n.op for n in g2.nodes] == [n.op for n in g.nodes]
    again = interpreter.run(g2, xs)
    for name in g.outputs:
        np.testing.assert_array_equal(again[name], mine[name])


@pytest.mark.parametrize("model", FAST_INT8)
def test_int8_round_trip_bit_exact(model):
    _round_trip(model, seeds=5)


@pytest.mark.slow
def test_mobilenet_v2_round_trip_bit_exact():
    _round_trip("mobilenet_v2_quantized_1x3x224x224", seeds=2)


@pytest.mark.parametrize("model", list(FLOAT_TFLITE))
def test_float_round_trip_identical(model):
    path = model_path(FLOAT_TFLITE[model])
    g = load_tflite(path)
    data = write_tflite(g)
    for seed in range(3):
        xs = random_inputs(g, seed)
        for a, b in zip(host.run(data, xs), host.run(path.read_bytes(), xs), strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("model", list(INT8_TFLITE))
def test_buffers_aligned_and_opcodes(model):
    path = model_path(INT8_TFLITE[model])
    data = write_tflite(load_tflite(path))
    m = schema().Model.GetRootAs(data, 0)
    base = np.frombuffer(data, np.uint8).__array_interface__["data"][0]
    aligned = 0
    for i in range(m.BuffersLength()):
        buf = m.Buffers(i)
        if buf.DataLength():
            view = buf.DataAsNumpy()
            offset = view.__array_interface__["data"][0] - base
            assert offset % ALIGNMENT == 0, f"buffer {i} at offset {offset}"
            aligned += 1
    assert aligned > 0
    assert m.Buffers(0).DataLength() == 0  # the sentinel
    original = schema().ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0)
    want = {}
    for oc in original.operatorCodes:
        code = max(oc.builtinCode, oc.deprecatedBuiltinCode)
        want[builtin_names()[code]] = max(want.get(builtin_names()[code], 0), oc.version)
    written = schema().ModelT.InitFromPackedBuf(bytearray(data), 0)
    for oc in written.operatorCodes:
        assert oc.deprecatedBuiltinCode == min(oc.builtinCode, 127)
        name = builtin_names()[oc.builtinCode]
        # the converter's own versions, where its rules have not changed since
        if name in (
            "CONV_2D",
            "DEPTHWISE_CONV_2D",
            "FULLY_CONNECTED",
            "AVERAGE_POOL_2D",
            "SOFTMAX",
            "ADD",
            "MEAN",
            "PAD",
            "TRANSPOSE",
            "RESHAPE",
        ):
            assert oc.version == want[name], name


def test_litert_accepts_written_versions():
    """LiteRT checks operator versions against its kernels (TFLM does not)."""
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    for model in FAST_INT8:
        data = write_tflite(load_tflite(model_path(INT8_TFLITE[model])))
        it = litert.Interpreter(model_content=data)
        it.allocate_tensors()


# -- graphs built in IR -----------------------------------------------------------------------


@pytest.mark.parametrize("quant", [True, False], ids=["int8", "float"])
def test_window_graph_pads_and_params(quant):
    g = window_graph(quant)
    m = build_model(g)
    ops = [r.builtin for r in m.operators]
    # one PAD for the conv (zero point), one PADV2 (-128 / -inf) for the max pool
    assert ops.count("PAD") == 1 and ops.count("PADV2") == 1, ops
    conv = next(r for r in m.operators if r.builtin == "CONV_2D")
    dw = next(r for r in m.operators if r.builtin == "DEPTHWISE_CONV_2D")
    avg = next(r for r in m.operators if r.builtin == "AVERAGE_POOL_2D")
    S = schema()
    assert conv.options.padding == S.Padding.VALID
    assert dw.options.padding == S.Padding.SAME and dw.options.depthMultiplier == 2
    assert avg.options.padding == S.Padding.SAME
    assert "MEAN" in ops and "RESHAPE" in ops
    _assert_tflm_matches_interpreter(g, m.data)
    assert g.nodes[0].attrs["pads"] == (1, 1, 1, 1)  # the caller's graph is untouched


@pytest.mark.parametrize("quant", [True, False], ids=["int8", "float"])
def test_shape_ops_recreate_constant_inputs(quant):
    g = shapes_graph(quant)
    data = write_tflite(g)
    assert set(_ops(data)) >= {
        "TRANSPOSE",
        "RESHAPE",
        "SPLIT",
        "SPLIT_V",
        "PACK",
        "UNPACK",
        "CONCATENATION",
        "PAD",
        "ADD",
        "SUB",
        "MUL",
        "LOGISTIC",
        "TANH",
    }
    _assert_tflm_matches_interpreter(g, data)


@pytest.mark.parametrize("quant", [True, False], ids=["int8", "float"])
def test_standalone_relu(quant):
    g = relu_graph(quant)
    data = write_tflite(g)
    assert _ops(data) == ["RELU", "RELU6"]
    _assert_tflm_matches_interpreter(g, data)


def test_quantize_dequantize_boundary():
    """Float I/O around an int8 body, the way converters write 'float interface' models."""
    b = Builder(True, seed=3)
    g = b.g
    g.add_tensor(Tensor("xf", (1, 5, 5, 2), "float32"))
    g.inputs.append("xf")
    q = b.op("QUANTIZE", ["xf"])
    w = b.weights("w", (4, 3, 3, 2), 0)
    c = b.op("CONV_2D", [q, w, b.bias("b", q, w, 4)], {"pads": (1, 1, 1, 1)})
    name = g.unique_name("yf")
    g.add_tensor(Tensor(name, (1, 5, 5, 4), "float32"))
    g.nodes.append(Node("DEQUANTIZE", "deq", [c], [name]))
    g = b.finish(name)
    _assert_tflm_matches_interpreter(g, write_tflite(g))


def test_missing_bias_gets_a_zero_bias():
    b = Builder(True, seed=4)
    x = b.input("x", (1, 6))
    w = b.weights("w", (3, 6), 0)
    f = b.op("FULLY_CONNECTED", [x, w])
    g = b.finish(f)
    m = build_model(g)
    assert len(m.operators[0].inputs) == 3
    _assert_tflm_matches_interpreter(g, m.data)


def test_file_layout_keeps_nchw_io():
    b = Builder(True, seed=5)
    x = b.input("x", (1, 6, 6, 3))
    w = b.weights("w", (4, 1, 1, 3), 0)
    c = b.op("CONV_2D", [x, w, b.bias("b", x, w, 4)])
    g = b.finish(c)
    g.external_perm = {x: (0, 3, 1, 2), c: (0, 3, 1, 2)}
    data = write_tflite(g)
    sg = schema().ModelT.InitFromPackedBuf(bytearray(data), 0).subgraphs[0]
    assert list(sg.tensors[sg.inputs[0]].shape) == [1, 3, 6, 6]
    assert list(sg.tensors[sg.outputs[0]].shape) == [1, 4, 6, 6]
    assert _ops(data) == ["TRANSPOSE", "CONV_2D", "TRANSPOSE"]
    _assert_tflm_matches_interpreter(g, data)
    # without file_layout the file keeps tinyc's NHWC
    nhwc = write_tflite(g, file_layout=False)
    xs = random_inputs(g, 0)
    y = host.run(nhwc, xs)[0]
    np.testing.assert_array_equal(y, interpreter.run(g, xs)[c])
    assert np.array_equal(to_internal(g, x, to_external(g, x, xs[0])), xs[0])


def test_average_pool_with_other_pads_is_refused():
    b = Builder(True)
    x = b.input("x", (1, 6, 6, 2))
    a = b.op(
        "AVERAGE_POOL_2D",
        [x],
        {"filter": (2, 2), "stride": (2, 2), "pads": (1, 1, 1, 1)},
        quant="same",
    )
    g = b.finish(a)
    with pytest.raises(UnsupportedError, match=r"AVERAGE_POOL_2D.*neither SAME nor VALID"):
        write_tflite(g)


def test_unknown_op_is_refused_with_its_node_name():
    g = window_graph(True)
    g.nodes[1].op = "NOT_AN_OP"
    with pytest.raises(UnsupportedError, match="n1.*NOT_AN_OP"):
        write_tflite(g)


# -- offline memory plan -----------------------------------------------------------------------


def _sequential_plan(g: Graph) -> dict[str, int]:
    """A valid (if wasteful) plan: every activation at its own 16-byte aligned offset."""
    offsets, at = {}, 0
    for t in g.activations():
        offsets[t.name] = at
        at += -(-t.nbytes // 16) * 16
    return offsets


def test_offline_plan_is_honoured_by_tflm():
    g = load_tflite(model_path(INT8_TFLITE["kws_ref_model"]))
    plan = _sequential_plan(g)
    data = write_tflite(g, offline_offsets=plan)
    extent = max(off + g.tensors[n].nbytes for n, off in plan.items())
    online = host.allocations(write_tflite(g))
    offline = host.allocations(data)
    # TFLM's planner shares memory between tensors; the sequential plan does not, and
    # TFLM must follow it: its non-persistent area becomes the plan's extent.
    assert online.head < extent
    assert offline.head == -(-extent // 16) * 16
    _assert_tflm_matches_interpreter(g, data, seeds=2)


def test_offline_plan_rejects_constants_and_unknown_names():
    g = load_tflite(model_path(INT8_TFLITE["hello_world_int8"]))
    const = next(t.name for t in g.constants())
    with pytest.raises(TinycError, match="constant tensor"):
        write_tflite(g, offline_offsets={const: 0})
    with pytest.raises(TinycError, match="does not have"):
        write_tflite(g, offline_offsets={"nope": 0})


@pytest.mark.parametrize("op", ["RELU", "RELU6", "HARD_SWISH"])
def test_standalone_activations_round_trip_through_tflm(op: str) -> None:
    """Written by tinyc, read back by tinyc's frontend and run by TFLM: all three agree."""
    import graphs

    g = graphs.unary(25, op, (1, 30))
    data = write_tflite(g)
    back = load_tflite(data)
    for seed in range(3):
        x = random_inputs(g, seed)
        want = interpreter.run(g, x)[g.outputs[0]]
        np.testing.assert_array_equal(interpreter.run(back, x)[back.outputs[0]], want)
        np.testing.assert_array_equal(host.run(data, x)[0].reshape(want.shape), want)

"""ScatterND, Gather and Slice: DYNAMIC_UPDATE_SLICE, GATHER and STRIDED_SLICE.

Float: tinyc against onnxruntime on single-node ONNX models. int8: the interpreter against
TFLite Micro on the same IR graph written as .tflite, and the C kernels on the host against
the interpreter, bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
from graphs import Builder
from onnx import helper
from op_checks import c_vs_interpreter, float_vs_ort, int8_vs_tflm
from test_onnx_frontend import make_model

from tinyc.backends.cmsis.emit.index import merge_box, position_runs
from tinyc.errors import UnsupportedError
from tinyc.frontend.onnx import load_onnx
from tinyc.frontend.onnx.ops_index import onnx_slice_range, scatter_box
from tinyc.ir.graph import Graph
from tinyc.ir.tensor import Tensor
from tinyc.ir.verify import require_supported

pytest.importorskip("tflite_micro")


def _ops(g: Graph) -> list[str]:
    return [n.op for n in g.nodes]


# -- ScatterND -> DYNAMIC_UPDATE_SLICE ------------------------------------------------------


def _box_indices(shape, start, box, k: int) -> np.ndarray:
    """ScatterND indices addressing ``box`` at ``start`` over the first k axes of ``shape``
    in row-major order (the pattern PyTorch exports for ``cache[..., a:b] = x``)."""
    grid = np.indices(box[:k]).reshape(k, -1).T + np.asarray(start[:k])
    return grid.reshape(*box[:k], k).astype(np.int64)


SCATTER_CASES = [
    # data shape, start, update box, k: a streaming cache's rows (every coordinate given)
    ((1, 4, 6, 5), (0, 0, 2, 0), (1, 4, 3, 5), 4),
    # one leading slot of a stack of states
    ((3, 1, 1, 8), (1, 0, 0, 0), (1, 1, 1, 8), 1),
    # a box in the middle of two axes, the rest whole
    ((2, 5, 4, 3), (0, 1, 1, 0), (2, 3, 2, 3), 3),
]


@pytest.mark.parametrize("shape,start,box,k", SCATTER_CASES)
def test_scatter_nd_box_float(shape, start, box, k):
    """After a Conv (data held NHWC) and on a graph input; tinyc == onnxruntime."""
    idx = _box_indices(shape, start, box, k)
    upd_shape = list(idx.shape[:-1]) + list(shape[k:])
    nodes = [helper.make_node("ScatterND", ["x", "idx", "u"], ["y"])]
    g = float_vs_ort(make_model(nodes, {"x": list(shape), "u": upd_shape}, ["y"], {"idx": idx}))
    assert _ops(g) == ["DYNAMIC_UPDATE_SLICE"]
    conv = [
        helper.make_node("Conv", ["x0", "w"], ["x"]),
        helper.make_node("ScatterND", ["x", "idx", "u"], ["y"]),
    ]
    inits = {"idx": idx, "w": np.eye(shape[1], dtype=np.float32)[:, :, None, None]}
    model = make_model(conv, {"x0": list(shape), "u": upd_shape}, ["y"], inits)
    assert "DYNAMIC_UPDATE_SLICE" in _ops(float_vs_ort(model))


def test_scatter_nd_reshapes_updates_and_replaces_whole():
    """Updates shaped [4] for a [2, 2] box; a box covering all the data is the update."""
    idx = np.array([[1, 0], [1, 1], [2, 0], [2, 1]], np.int64)
    nodes = [helper.make_node("ScatterND", ["x", "idx", "u"], ["y"])]
    float_vs_ort(make_model(nodes, {"x": [4, 2, 3], "u": [4, 3]}, ["y"], {"idx": idx}))
    whole = np.array([[0], [1]], np.int64)
    g = float_vs_ort(make_model(nodes, {"x": [2, 3], "u": [2, 3]}, ["y"], {"idx": whole}))
    assert "DYNAMIC_UPDATE_SLICE" not in _ops(g)


@pytest.mark.parametrize(
    "idx", [np.array([[0], [2]]), np.array([[1], [0]]), np.array([[0, 0], [0, 0]])]
)
def test_scatter_nd_other_patterns_refused(idx):
    nodes = [helper.make_node("ScatterND", ["x", "idx", "u"], ["y"])]
    upd = [idx.shape[0]] + [3, 4][idx.shape[1] - 1 :]
    model = make_model(nodes, {"x": [3, 3, 4], "u": upd}, ["y"], {"idx": idx.astype(np.int64)})
    with pytest.raises(UnsupportedError, match="ScatterND.*one box"):
        require_supported(load_onnx(model))


def test_scatter_box():
    assert scatter_box(np.array([[[1, 2], [1, 3]]]), (3, 5, 2)) == (1, 2, 0)
    assert scatter_box(np.array([[-1]]), (3, 4)) == (2, 0)
    assert scatter_box(np.array([[1, 3], [1, 2]]), (3, 5)) is None  # out of order
    assert scatter_box(np.array([[0], [5]]), (3, 4)) is None  # out of range


# -- Gather and Slice -> GATHER and STRIDED_SLICE ------------------------------------------


GATHER_CASES = [
    (1, np.array(2), "GATHER"),  # scalar: the axis goes (a channel of an NHWC tensor)
    (3, np.array(-1), "GATHER"),
    (3, np.array([[0, 1, 2], [1, 2, 3], [2, 3, 4]]), "GATHER"),  # an unfold
    (3, np.array([4, 0, 0, 2]), "GATHER"),
]


@pytest.mark.parametrize("axis,indices,op", GATHER_CASES)
def test_gather_float(axis, indices, op):
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"]),
        helper.make_node("Gather", ["c", "idx"], ["y"], axis=axis),
    ]
    inits = {"w": np.ones((3, 2, 1, 1), np.float32), "idx": indices.astype(np.int64)}
    g = float_vs_ort(make_model(nodes, {"x": [2, 2, 4, 5]}, ["y"], inits))
    assert op in _ops(g)


def test_gather_of_a_size_one_axis_is_a_reshape():
    nodes = [helper.make_node("Gather", ["x", "idx"], ["y"], axis=1)]
    model = make_model(nodes, {"x": [2, 1, 5]}, ["y"], {"idx": np.zeros((1, 1), np.int64)})
    assert _ops(float_vs_ort(model)) == ["RESHAPE"]


SLICE_CASES = [
    ([1], [3], [1], [1]),  # channels of an NHWC tensor
    ([0, -2], [2**62, 5], [3, 2], [2, 1]),
    ([-1], [-(2**62)], [3], [-1]),  # reversed
    ([4, 0], [0, 2], [3, 1], [-2, 1]),
]


@pytest.mark.parametrize("starts,ends,axes,steps", SLICE_CASES)
def test_slice_float(starts, ends, axes, steps):
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"]),
        helper.make_node("Slice", ["c", "s", "e", "a", "st"], ["y"]),
    ]
    inits = {
        "w": np.ones((4, 2, 1, 1), np.float32),
        "s": np.array(starts, np.int64),
        "e": np.array(ends, np.int64),
        "a": np.array(axes, np.int64),
        "st": np.array(steps, np.int64),
    }
    g = float_vs_ort(make_model(nodes, {"x": [1, 2, 3, 5]}, ["y"], inits))
    assert _ops(g)[-1] == "STRIDED_SLICE"


def test_slice_of_everything_is_free():
    nodes = [helper.make_node("Slice", ["x", "s", "e"], ["y"])]
    inits = {"s": np.array([0], np.int64), "e": np.array([2**62], np.int64)}
    g = float_vs_ort(make_model(nodes, {"x": [3, 4]}, ["y"], inits))
    assert "STRIDED_SLICE" not in _ops(g)  # (a RESHAPE copies the input to the output)


@pytest.mark.parametrize("dim,start,end,step", [(5, -2, 2**62, 1), (5, 9, -9, -1), (5, 4, 0, -2)])
def test_onnx_slice_range(dim, start, end, step):
    assert list(onnx_slice_range(dim, start, end, step)) == list(range(dim))[start:end:step]


# -- int8: TFLM and C ---------------------------------------------------------------------


def _moving(name: str, op: str, shapes, out_shape=(1,), consts=(), **attrs) -> Graph:
    """One data-movement node; every int8 tensor shares scale 0.05 and zero point 3."""
    b = Builder(name, 0)
    ins = [b.act(f"x{i}", s, 0.05, 3) for i, s in enumerate(shapes)]
    for cname, data in consts:
        b.g.add_tensor(Tensor(cname, data.shape, "int32", data))
    b.act("y", out_shape, 0.05, 3)
    b.node(op, ins + [c for c, _ in consts], ["y"], **attrs)
    return b.finish(ins, ["y"])


def _int8_cases() -> list[Graph]:
    pos2 = np.array([[0, 6, 2], [1, 1, 5]], np.int32)
    unfold = np.array([np.arange(k, k + 9) for k in range(3)], np.int32)
    return [
        _moving(
            "dus_rows", "DYNAMIC_UPDATE_SLICE", [(1, 6, 4, 5), (1, 2, 4, 5)], start=(0, 3, 0, 0)
        ),
        _moving(
            "dus_slot", "DYNAMIC_UPDATE_SLICE", [(2, 3, 1, 16), (1, 3, 1, 16)], start=(1, 0, 0, 0)
        ),
        _moving("dus_inner", "DYNAMIC_UPDATE_SLICE", [(2, 5, 7), (2, 2, 3)], start=(0, 1, 4)),
        _moving("gather_2d", "GATHER", [(2, 7, 3)], consts=[("pos", pos2)], axis=1),
        _moving("gather_unfold", "GATHER", [(4, 11)], consts=[("pos", unfold)], axis=1),
        _moving("gather_scalar", "GATHER", [(5, 2, 3)], consts=[("pos", np.array(3, np.int32))]),
        _moving(
            "slice_rev",
            "STRIDED_SLICE",
            [(2, 7, 6)],
            begin=(1, 6, 0),
            end=(2, -1, 6),
            strides=(1, -2, 2),
        ),  # fmt: skip
        _moving(
            "slice_rows",
            "STRIDED_SLICE",
            [(1, 16, 5, 33)],
            begin=(0, 0, 1, 0),
            end=(1, 16, 5, 33),
            strides=(1, 1, 1, 1),
        ),  # fmt: skip
    ]


INT8 = _int8_cases()


@pytest.mark.parametrize("g", INT8, ids=[g.name for g in INT8])
def test_int8_matches_tflm(g):
    int8_vs_tflm(g)


@pytest.mark.parametrize("g", INT8, ids=[g.name for g in INT8])
def test_c_matches_interpreter(g, tmp_path):
    c_vs_interpreter(g, tmp_path)


def test_update_slice_in_place(tmp_path):
    """A cache rewritten by a chain of updates: each may overwrite its operand's bytes."""
    b = Builder("dus_chain", 0)
    x = b.act("x", (1, 8, 6), 0.05, 3)
    u1, u2 = b.act("u1", (1, 2, 6), 0.05, 3), b.act("u2", (1, 3, 6), 0.05, 3)
    b.act("m", (1,), 0.05, 3)
    b.act("y", (1,), 0.05, 3)
    b.node("DYNAMIC_UPDATE_SLICE", [x, u1], ["m"], start=(0, 0, 0))
    b.node("DYNAMIC_UPDATE_SLICE", ["m", u2], ["y"], start=(0, 5, 0))
    g = b.finish([x, u1, u2], ["y"])
    c_vs_interpreter(g, tmp_path)
    int8_vs_tflm(g)


def test_merge_box_and_runs():
    # rows of 33 contiguous bytes out of a [16, 5, 33] box: one axis of 16, 132-byte runs
    assert merge_box([1, 16, 4, 33], [0, 165, 33, 1], [0, 132, 33, 1], 1) == (
        [16],
        [165],
        [132],
        132,
    )
    assert merge_box([1, 1], [1, 1], [1, 1], 4) == ([1], [4], [4], 4)
    assert position_runs(np.array([[0, 1, 2], [1, 2, 3]])).tolist() == [0, 3, 1, 3]

"""TFLite builtins beyond the convolution core: resizing, LEAKY_RELU, MAXIMUM/MINIMUM, the
reductions, ARG_MAX/ARG_MIN, L2_NORMALIZATION, SQUARED_DIFFERENCE, RSQRT, ABS, ELU,
LOG_SOFTMAX, the float-only math (EXP, LOG, NEG, SIN, COS, SQUARE, FLOOR, CEIL, ROUND), the
block rearrangements, GATHER_ND, comparisons and logical ops, SELECT_V2, ADD_N, CAST, FILL,
ZEROS_LIKE, MIRROR_PAD, REVERSE_V2, CUMSUM, SHAPE, REDUCE_ALL, FLOOR_DIV, FLOOR_MOD,
L2_POOL_2D, and the reads of SLICE, SQUEEZE, EXPAND_DIMS, STRIDED_SLICE (masks), GATHER,
DYNAMIC_UPDATE_SLICE, PRELU, DIV, SQRT and TRANSPOSE_CONV.

Each op as a single-operator .tflite (tinyc's writer, or the schema for operators tinyc
never writes) read back by the TFLite reader: TFLM (PyPI tflite-micro) == tinyc's
interpreter bit for bit in int8 (and int32 / bool), within 1e-5 in float; then the
generated C on the host == the interpreter on the "plain", "dsp" and "mve" layouts.
"""

from __future__ import annotations

import numpy as np
import pytest
from builtin_checks import (
    ALL_INT8,
    OpBuilder,
    c_matches,
    compare_file,
    every_value,
    every_value_all_inputs,
    merged,
    options,
    raw_tflite,
    tflm_roundtrip,
    unary_graph,
)

from tinyc import interpreter
from tinyc.errors import UnsupportedError
from tinyc.ir.graph import Graph
from tinyc.ir.ops import get_op
from tinyc.ir.tensor import QuantParams, Tensor
from tinyc.modelio import random_inputs

pytest.importorskip("tflite_micro")

FLOAT_TOL = 1e-5


def _ids(graphs: list[Graph]) -> list[str]:
    return [g.name for g in graphs]


# -- resizing -----------------------------------------------------------------------------

RESIZE_CASES = [  # input, size, align_corners, half_pixel_centers
    ((1, 4, 5, 3), (8, 10), False, False),
    ((2, 5, 3, 2), (7, 4), True, False),
    ((1, 6, 7, 3), (3, 11), False, True),
    ((1, 3, 3, 1), (9, 2), False, True),
    ((1, 7, 5, 2), (4, 13), True, False),
]


def resize_graph(op: str, k: int, dtype: str = "int8") -> Graph:
    shape, size, align, half = RESIZE_CASES[k]
    return unary_graph(op, k, shape, dtype, same=True, size=size, align_corners=align,
                       half_pixel_centers=half)  # fmt: skip


RESIZE = [
    resize_graph(op, k, dt)
    for op in ("RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR")
    for dt in ("int8", "float32")
    for k in range(len(RESIZE_CASES))
]


@pytest.mark.parametrize("g", RESIZE, ids=_ids(RESIZE))
def test_resize_matches_tflm(g):
    tflm_roundtrip(g, tol=FLOAT_TOL)


# -- elementwise, one input ---------------------------------------------------------------

TFLM_INT8_UNARY = [
    ("LEAKY_RELU", {"alpha": 0.2}),
    ("LEAKY_RELU", {"alpha": -0.3}),
    ("LEAKY_RELU", {"alpha": 1.7}),
    ("ABS", {}),
    ("RSQRT", {}),
    ("ELU", {}),
]


def _unary_cases() -> list[Graph]:
    out = []
    for k, (op, attrs) in enumerate(TFLM_INT8_UNARY):
        out.append(unary_graph(op, k, (2, 5, 7), **attrs))
        out.append(unary_graph(op, k + 10, (3, 4), "float32", **attrs))
    out.append(unary_graph("ABS", 30, (4, 64), out=(0.05, 3), **{}))  # equal scales
    out[-1].tensors["x"].quant = QuantParams([0.05], [3])
    out.append(unary_graph("RSQRT", 31, (4, 64), out=(0.05, -128)))  # a usable range
    out[-1].tensors["x"].quant = QuantParams([0.02], [-128])
    return out


UNARY = _unary_cases()


def _non_negative(g: Graph, cases: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    """RSQRT's inputs at or above the zero point (TFLM refuses the others)."""
    x = g.tensors["x"]
    if x.is_quantized:
        return [[np.maximum(c[0], np.int8(x.quant.zp))] for c in cases]
    return [[np.abs(c[0]) + np.float32(0.1)] for c in cases]


@pytest.mark.parametrize("g", UNARY, ids=_ids(UNARY))
def test_unary_matches_tflm(g):
    cases = every_value(g) if g.tensors["x"].is_quantized else None
    if g.nodes[0].op == "RSQRT":
        cases = _non_negative(g, cases or [random_inputs(g, s) for s in range(3)])
    tflm_roundtrip(g, cases, tol=FLOAT_TOL)


FLOAT_ONLY = ["EXP", "LOG", "NEG", "SIN", "COS", "SQUARE", "FLOOR", "CEIL", "ROUND", "SQRT"]


@pytest.mark.parametrize("op", FLOAT_ONLY)
def test_float_only_math_matches_tflm(op):
    """TFLM runs these in float only; tinyc's int8 form is its own table (below)."""
    g = unary_graph(op, 1, (3, 4, 5), "float32")
    cases = [random_inputs(g, s) for s in range(3)]
    if op in ("LOG", "SQRT"):
        cases = [[np.abs(c[0]) + np.float32(0.1)] for c in cases]
    if op == "ROUND":  # halves go to even
        halves = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49, 3.5, 4.5, -3.5], np.float32)
        cases.append([np.resize(halves, (3, 4, 5))])
    tflm_roundtrip(g, cases, tol=FLOAT_TOL)


@pytest.mark.parametrize("op", FLOAT_ONLY[:-1])
def test_float_only_math_int8_is_its_table(op):
    """round(f(real) / s_out) + zp_out for every int8 input; the TFLM writer refuses it."""
    from tinyc.backends.tflm.writer import build_model

    g = unary_graph(op, 2, (4, 64), out=(0.05, 0))
    g.tensors["x"].quant = QuantParams([0.03], [-10])
    y = interpreter.run(g, [ALL_INT8.reshape(4, 64)])["y"].astype(np.int64).reshape(-1)
    real = (ALL_INT8.astype(np.float64) + 10) * float(np.float32(0.03))
    f = get_op(op).table_fn(real)  # type: ignore[attr-defined]
    want = np.clip(np.floor(np.abs(f / float(np.float32(0.05))) + 0.5) * np.sign(f), -128, 127)
    np.testing.assert_array_equal(y, want)
    with pytest.raises(UnsupportedError, match=f"int8 {op}"):
        build_model(g)


# -- elementwise, two inputs --------------------------------------------------------------

BROADCASTS = [((2, 3, 4, 5), (2, 3, 4, 5)), ((2, 3, 4, 5), (1, 1, 1, 5)), ((3, 1, 5), (4, 1)),
              ((7,), (1,))]  # fmt: skip


def binary_graph(
    op: str, k: int, dtype: str = "int8", same: bool = False, out: str | None = None
) -> Graph:
    """a op b with the k-th broadcast; ``same``: one quantization for a, b and y; ``out``:
    a plain output dtype (bool for comparisons)."""
    sa, sb = BROADCASTS[k]
    b = OpBuilder(f"{op.lower()}_{k}_{dtype}", k)
    if dtype == "int8":
        b.act("a", sa)
        if same:
            b.like("b", sb, "a")
        else:
            b.act("b", sb)
        if out:
            b.plain("y", (1,), out)
        elif same:
            b.like("y", (1,), "a")
        else:
            b.act("y", (1,))
    else:
        b.plain("a", sa, dtype)
        b.plain("b", sb, dtype)
        b.plain("y", (1,), out or dtype)
    b.node(op, ["a", "b"], ["y"])
    return b.finish(["a", "b"], ["y"])


COMPARISONS = ["EQUAL", "NOT_EQUAL", "GREATER", "GREATER_EQUAL", "LESS", "LESS_EQUAL"]
BINARY = (
    [binary_graph(op, k, "int8", same=True) for op in ("MAXIMUM", "MINIMUM") for k in range(4)]
    + [binary_graph(op, k, "float32") for op in ("MAXIMUM", "MINIMUM") for k in (1, 2)]
    + [binary_graph("SQUARED_DIFFERENCE", k) for k in range(4)]
    + [binary_graph("SQUARED_DIFFERENCE", k, "float32") for k in (0, 2)]
    + [binary_graph(op, k, "int8", out="bool") for op in COMPARISONS for k in range(3)]
)


@pytest.mark.parametrize("g", BINARY, ids=_ids(BINARY))
def test_binary_matches_tflm(g):
    tflm_roundtrip(g, tol=FLOAT_TOL)


@pytest.mark.parametrize("op", COMPARISONS)
@pytest.mark.parametrize("dtype", ["float32", "int32"])
def test_plain_comparisons_match_tflm(op, dtype):
    g = binary_graph(op, 2, dtype, out="bool")
    rng = np.random.default_rng(3)
    sa, sb = BROADCASTS[2]
    cases = [[rng.integers(-3, 3, sa).astype(dtype), rng.integers(-3, 3, sb).astype(dtype)]]
    tflm_roundtrip(g, cases)


@pytest.mark.parametrize("op", ["LOGICAL_AND", "LOGICAL_OR"])
def test_logical_ops_match_tflm(op):
    b = OpBuilder(op.lower(), 0)
    b.plain("a", (2, 3, 4), "bool")
    b.plain("b", (3, 1), "bool")
    b.plain("y", (1,), "bool")
    b.node(op, ["a", "b"], ["y"])
    g = b.finish(["a", "b"], ["y"])
    rng = np.random.default_rng(1)
    tflm_roundtrip(g, [[rng.integers(0, 2, (2, 3, 4)) > 0, rng.integers(0, 2, (3, 1)) > 0]])


def test_logical_not_matches_tflm():
    g = unary_graph("LOGICAL_NOT", 0, (4, 5), "bool")
    tflm_roundtrip(g, [[np.random.default_rng(0).integers(0, 2, (4, 5)) > 0]])


SELECTS = [((2, 3, 4), (2, 3, 4), (2, 3, 4)), ((3, 1), (2, 3, 4), (4,)), ((4,), (3, 1), (1,))]


def select_graph(k: int, dtype: str = "int8", const_cond: bool = False) -> Graph:
    sc, sx, sy = SELECTS[k]
    b = OpBuilder(f"select_{k}_{dtype}{'_const' if const_cond else ''}", k)
    if const_cond:
        b.const("c", b.rng.integers(0, 2, sc) > 0, "bool")
    else:
        b.plain("c", sc, "bool")
    if dtype == "int8":
        b.act("x", sx)
        b.like("z", sy, "x")
        b.like("y", (1,), "x")
    else:
        b.plain("x", sx)
        b.plain("z", sy)
        b.plain("y", (1,))
    b.node("SELECT_V2", ["c", "x", "z"], ["y"])
    return b.finish(["x", "z"] if const_cond else ["c", "x", "z"], ["y"])


def _select_inputs(g: Graph, seeds=range(2)) -> list[list[np.ndarray]]:
    """Random inputs, bool ones included (modelio's random inputs are numeric)."""
    cases = []
    for s in seeds:
        rng = np.random.default_rng(s)
        xs = []
        for name in g.inputs:
            t = g.tensors[name]
            if t.dtype == "bool":
                xs.append(rng.integers(0, 2, t.shape) > 0)
            elif t.dtype == "int8":
                xs.append(rng.integers(-128, 128, t.shape).astype(np.int8))
            else:
                xs.append(rng.standard_normal(t.shape).astype(np.float32))
        cases.append(xs)
    return cases


@pytest.mark.parametrize("k", range(len(SELECTS)))
@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_select_v2_matches_tflm(k, dtype):
    g = select_graph(k, dtype)
    tflm_roundtrip(g, _select_inputs(g), tol=0.0)


def add_n_graph(n: int, dtype: str = "int8") -> Graph:
    b = OpBuilder(f"add_n_{n}_{dtype}", n)
    names = [f"x{j}" for j in range(n)]
    if dtype == "int8":
        b.act(names[0], (2, 3, 7))
        for name in names[1:]:
            b.like(name, (2, 3, 7), names[0])
        b.act("y", (1,))
    else:
        for name in names:
            b.plain(name, (2, 3, 7))
        b.plain("y", (1,))
    b.node("ADD_N", names, ["y"])
    return b.finish(names, ["y"])


@pytest.mark.parametrize("n", [2, 3, 5])
@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_add_n_matches_tflm(n, dtype):
    """int8 includes TFLM's extra rescaled -zero point term at the start of its sum."""
    tflm_roundtrip(add_n_graph(n, dtype), tol=FLOAT_TOL)


# -- reductions -------------------------------------------------------------------------------

REDUCE_CASES = [((2, 3, 4, 5), (1, 2), True), ((2, 3, 4, 5), (0, 3), False),
                ((3, 7), (-1,), False), ((4, 5, 6), (0, 1, 2), True),
                ((2, 3, 4, 5), (2,), False)]  # fmt: skip


def reduce_graph(op: str, k: int, dtype: str = "int8") -> Graph:
    shape, axes, keep = REDUCE_CASES[k]
    return unary_graph(op, k, shape, dtype, same=op != "SUM", axes=axes, keep_dims=keep)


REDUCE = [
    reduce_graph(op, k, dt)
    for op in ("SUM", "REDUCE_MAX", "REDUCE_MIN")
    for dt in ("int8", "float32")
    for k in range(len(REDUCE_CASES))
]


@pytest.mark.parametrize("g", REDUCE, ids=_ids(REDUCE))
def test_reductions_match_tflm(g):
    tflm_roundtrip(g, tol=FLOAT_TOL)


ARG_CASES = [((2, 3, 4, 5), 3), ((2, 3, 4, 5), 1), ((7,), 0), ((3, 9), -1)]


def arg_graph(op: str, k: int, dtype: str = "int8") -> Graph:
    shape, axis = ARG_CASES[k]
    b = OpBuilder(f"{op.lower()}_{k}_{dtype}", k)
    if dtype == "int8":
        b.act("x", shape)
    else:
        b.plain("x", shape)
    b.plain("y", (1,), "int32")
    b.node(op, ["x"], ["y"], axis=axis)
    return b.finish(["x"], ["y"])


ARGS = [arg_graph(op, k, dt) for op in ("ARG_MAX", "ARG_MIN") for dt in ("int8", "float32")
        for k in range(len(ARG_CASES))]  # fmt: skip


@pytest.mark.parametrize("g", ARGS, ids=_ids(ARGS))
def test_arg_min_max_match_tflm(g):
    """Ties (frequent in int8) go to the first position, as in TFLM."""
    tflm_roundtrip(g)


# -- normalizations ---------------------------------------------------------------------------

NORM_SHAPES = [(2, 3, 5), (1, 4, 4, 8), (7,), (3, 1), (2, 64)]


def l2_graph(k: int) -> Graph:
    return unary_graph("L2_NORMALIZATION", k, NORM_SHAPES[k], out=(1 / 128, 0),
                       activation="NONE")  # fmt: skip


def log_softmax_graph(k: int) -> Graph:
    g = unary_graph("LOG_SOFTMAX", k, NORM_SHAPES[k], out=(16 / 256, 127))
    g.tensors["x"].quant = QuantParams([[0.01, 0.05, 0.2, 0.1, 0.5][k]], [k - 2])
    return g


NORMS = [l2_graph(k) for k in range(len(NORM_SHAPES))] + [
    log_softmax_graph(k) for k in range(len(NORM_SHAPES))
]


@pytest.mark.parametrize("g", NORMS, ids=_ids(NORMS))
def test_normalizations_match_tflm(g):
    tflm_roundtrip(g, every_value(g))


def test_log_softmax_int8_spans_its_range():
    """Not degenerate: outputs from -128 to near 127 (log of a probability near 1)."""
    g = log_softmax_graph(4)
    y = interpreter.run(g, [np.resize(ALL_INT8, (2, 64))])["y"]
    assert y.min() == -128 and y.max() > 100 and len(np.unique(y)) > 20


@pytest.mark.parametrize("op", ["L2_NORMALIZATION", "LOG_SOFTMAX"])
@pytest.mark.parametrize("k", [0, 1, 4])
def test_normalizations_float_match_tflm(op, k):
    attrs = {"activation": "NONE"} if op == "L2_NORMALIZATION" else {}
    tflm_roundtrip(unary_graph(op, k, NORM_SHAPES[k], "float32", **attrs), tol=FLOAT_TOL)


# -- rearrangements -------------------------------------------------------------------------

REARRANGE_CASES = [
    ("DEPTH_TO_SPACE", (1, 2, 3, 8), {"block_size": 2}),
    ("DEPTH_TO_SPACE", (2, 3, 2, 18), {"block_size": 3}),
    ("SPACE_TO_DEPTH", (1, 4, 6, 3), {"block_size": 2}),
    ("SPACE_TO_DEPTH", (2, 6, 3, 2), {"block_size": 3}),
    ("SPACE_TO_BATCH_ND", (1, 4, 6, 3), {"block_shape": (2, 2), "paddings": ((0, 0), (0, 0))}),
    ("SPACE_TO_BATCH_ND", (2, 5, 3, 2), {"block_shape": (2, 3), "paddings": ((1, 0), (2, 1))}),
    ("SPACE_TO_BATCH_ND", (2, 5, 3), {"block_shape": (2,), "paddings": ((1, 2),)}),
    ("SPACE_TO_BATCH_ND", (1, 7, 5, 2), {"block_shape": (3, 2), "paddings": ((2, 3), (1, 0))}),
    ("BATCH_TO_SPACE_ND", (4, 2, 3, 3), {"block_shape": (2, 2), "crops": ((0, 0), (0, 0))}),
    ("BATCH_TO_SPACE_ND", (12, 3, 2, 2), {"block_shape": (2, 3), "crops": ((1, 0), (2, 1))}),
    ("BATCH_TO_SPACE_ND", (4, 5, 3), {"block_shape": (2,), "crops": ((1, 2),)}),
    ("BATCH_TO_SPACE_ND", (6, 3, 4, 2), {"block_shape": (3, 2), "crops": ((2, 1), (0, 3))}),
]


def rearrange_graph(k: int, dtype: str = "int8") -> Graph:
    op, shape, attrs = REARRANGE_CASES[k]
    return unary_graph(op, k, shape, dtype, same=True, **attrs)


REARRANGE = [rearrange_graph(k, dt) for dt in ("int8", "float32")
             for k in range(len(REARRANGE_CASES))]  # fmt: skip


@pytest.mark.parametrize("g", REARRANGE, ids=_ids(REARRANGE))
def test_rearrangements_match_tflm(g):
    """SPACE_TO_BATCH_ND pads with raw 0 in TFLM (not the zero point): so does tinyc."""
    tflm_roundtrip(g, tol=0.0)


GATHER_ND_CASES = [((4, 5, 3), [[1, 2], [3, 0], [0, 4]]), ((4, 5, 3), [[2], [0]]),
                   ((3, 4), [[[0, 1], [2, 3]], [[1, 1], [0, 0]]]),
                   ((2, 3, 4), [[1, 2, 3], [0, 0, 0]])]  # fmt: skip


def gather_nd_graph(k: int, dtype: str = "int8") -> Graph:
    shape, idx = GATHER_ND_CASES[k]
    b = OpBuilder(f"gather_nd_{k}_{dtype}", k)
    if dtype == "int8":
        b.act("x", shape)
        b.like("y", (1,), "x")
    else:
        b.plain("x", shape)
        b.plain("y", (1,))
    b.const("idx", idx, "int32")
    b.node("GATHER_ND", ["x", "idx"], ["y"])
    return b.finish(["x"], ["y"])


@pytest.mark.parametrize("k", range(len(GATHER_ND_CASES)))
@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_gather_nd_matches_tflm(k, dtype):
    tflm_roundtrip(gather_nd_graph(k, dtype), tol=0.0)


CASTS = [("int8", "int32"), ("int8", "float32"), ("int32", "int8"), ("float32", "int32"),
         ("bool", "float32"), ("int16", "int32"), ("int32", "float32"), ("float32", "int8"),
         ("bool", "int8")]  # fmt: skip


@pytest.mark.parametrize("src,dst", CASTS)
def test_cast_matches_tflm(src, dst):
    b = OpBuilder(f"cast_{src}_{dst}", 0)
    b.plain("x", (3, 5), src)
    b.plain("y", (3, 5), dst)
    b.node("CAST", ["x"], ["y"])
    g = b.finish(["x"], ["y"])
    rng = np.random.default_rng(0)
    if src == "float32":
        x = (rng.standard_normal((3, 5)) * 20).astype(np.float32)
    elif src == "bool":
        x = rng.integers(0, 2, (3, 5)) > 0
    elif src == "int32":
        x = rng.integers(-300, 300, (3, 5)).astype(np.int32)
    else:
        x = random_inputs(g, 0)[0]
    tflm_roundtrip(g, [[x]])


@pytest.mark.parametrize("dtype", ["int8", "float32", "int32"])
def test_fill_and_zeros_like_match_tflm(dtype):
    b = OpBuilder(f"fill_{dtype}", 0)
    if dtype == "int8":
        b.act("v", ())
        b.like("y", (1,), "v")
        b.like("z", (2, 3, 4), "v")
    else:
        b.plain("v", (), dtype)
        b.plain("y", (1,), dtype)
        b.plain("z", (2, 3, 4), dtype)
    b.node("FILL", ["v"], ["y"], shape=(2, 3, 4))
    b.node("ZEROS_LIKE", ["y"], ["z"])
    g = b.finish(["v"], ["y", "z"])
    tflm_roundtrip(g, [[np.array(5, dtype)], [np.array(-3, dtype)]])


MORE_MOVES = [  # op, input, attrs
    ("MIRROR_PAD", (2, 3, 4), {"paddings": ((1, 1), (0, 2), (2, 1)), "mode": "REFLECT"}),
    ("MIRROR_PAD", (2, 3, 4), {"paddings": ((2, 1), (3, 0), (0, 4)), "mode": "SYMMETRIC"}),
    (
        "MIRROR_PAD",
        (1, 5, 6, 3),
        {"paddings": ((0, 0), (2, 2), (1, 3), (0, 0)), "mode": "REFLECT"},
    ),  # fmt: skip
    ("REVERSE_V2", (2, 3, 4), {"axes": (1,)}),
    ("REVERSE_V2", (2, 3, 4), {"axes": (1, 2)}),
    ("REVERSE_V2", (1, 5, 6, 3), {"axes": (-1, -2, 1)}),
    ("REVERSE_V2", (7,), {"axes": (0,)}),
]
CUMSUM_CASES = [((2, 3, 4), 1, False, False), ((2, 3, 4), 2, True, False),
                ((3, 5), 0, False, True), ((2, 3, 4), -1, True, True)]  # fmt: skip


def move_graph(k: int, dtype: str = "int8") -> Graph:
    op, shape, attrs = MORE_MOVES[k]
    return unary_graph(op, k, shape, dtype, same=True, **attrs)


def cumsum_graph(k: int, dtype: str = "int8") -> Graph:
    shape, axis, exclusive, reverse = CUMSUM_CASES[k]
    return unary_graph("CUMSUM", k, shape, dtype, axis=axis, exclusive=exclusive,
                       reverse=reverse)  # fmt: skip


MOVES = [move_graph(k, dt) for dt in ("int8", "float32") for k in range(len(MORE_MOVES))] + [
    cumsum_graph(k, dt) for dt in ("int8", "float32") for k in range(len(CUMSUM_CASES))
]


@pytest.mark.parametrize("g", MOVES, ids=_ids(MOVES))
def test_mirror_pad_reverse_cumsum_match_tflm(g):
    """CUMSUM's int8 sum starts, like ADD_N's, from the rescaled -zero point."""
    tflm_roundtrip(g, tol=FLOAT_TOL)


def test_reverse_v2_of_separate_axes_is_not_written_for_tflm():
    from tinyc.backends.tflm.writer import build_model

    g = unary_graph("REVERSE_V2", 0, (2, 3, 4), same=True, axes=(0, 2))
    x = np.arange(24, dtype=np.int8).reshape(2, 3, 4)
    np.testing.assert_array_equal(interpreter.run(g, [x])["y"], x[::-1, :, ::-1])
    with pytest.raises(UnsupportedError, match="contiguous"):
        build_model(g)


def shape_reduce_all_graph() -> Graph:
    b = OpBuilder("shape_reduce_all", 0)
    b.act("a", (2, 3, 4))
    b.act("c", (2, 3, 4))
    b.plain("shape", (1,), "int32")
    b.node("SHAPE", ["a"], ["shape"])
    b.plain("gt", (1,), "bool")
    b.node("GREATER", ["a", "c"], ["gt"])
    b.plain("all", (1,), "bool")
    b.node("REDUCE_ALL", ["gt"], ["all"], axes=(1,), keep_dims=False)
    b.plain("out", (1,), "int32")
    b.node("CAST", ["all"], ["out"])
    return b.finish(["a", "c"], ["shape", "out"])


def test_shape_and_reduce_all_match_tflm(tmp_path):
    g = shape_reduce_all_graph()
    cases = [random_inputs(g, s) for s in range(2)]
    cases.append([np.full((2, 3, 4), 5, np.int8), np.full((2, 3, 4), -100, np.int8)])
    tflm_roundtrip(g, cases)
    c_matches(g, tmp_path, cases, targets=("plain",))


@pytest.mark.parametrize("op", ["FLOOR_DIV", "FLOOR_MOD"])
def test_floor_div_mod_match_tflm(op):
    b = OpBuilder(op.lower(), 0)
    b.plain("a", (2, 3, 4))
    b.plain("c", (3, 1))
    b.plain("y", (1,))
    b.node(op, ["a", "c"], ["y"])
    g = b.finish(["a", "c"], ["y"])
    rng = np.random.default_rng(0)
    cases = [[(rng.standard_normal((2, 3, 4)) * 5).astype(np.float32),
              (rng.standard_normal((3, 1)) * 2).astype(np.float32)]]  # fmt: skip
    tflm_roundtrip(g, cases, tol=FLOAT_TOL)


@pytest.mark.parametrize(
    "shape,filt,stride,pads",
    [((1, 6, 7, 3), (2, 2), (2, 2), (0, 0, 0, 0)), ((1, 5, 5, 2), (3, 3), (1, 1), (1, 1, 1, 1)),
     ((2, 7, 4, 3), (3, 2), (2, 1), (1, 1, 0, 1))],
)  # fmt: skip
def test_l2_pool_matches_tflm(shape, filt, stride, pads):
    g = unary_graph("L2_POOL_2D", 0, shape, "float32", filter=filt, stride=stride, pads=pads)
    tflm_roundtrip(g, tol=FLOAT_TOL)


BMM_CASES = [((2, 3, 4), (2, 4, 5), False, False), ((1, 3, 4, 2), (2, 1, 5, 4), True, True),
             ((3, 4), (2, 5, 4), False, True)]  # fmt: skip


@pytest.mark.parametrize("k", range(len(BMM_CASES)))
@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_batch_matmul_reads_from_tflite(k, dtype):
    """The IR's BATCH_MATMUL (from ONNX / PyTorch) read from and written to TFLite."""
    sa, sb, adj_x, adj_y = BMM_CASES[k]
    b = OpBuilder(f"batch_matmul_{k}_{dtype}", k)
    if dtype == "int8":
        b.act("a", sa)
        b.act("c", sb)
        b.act("y", (1,), 0.5)
    else:
        b.plain("a", sa)
        b.plain("c", sb)
        b.plain("y", (1,))
    b.node("BATCH_MATMUL", ["a", "c"], ["y"], adj_x=adj_x, adj_y=adj_y)
    tflm_roundtrip(b.finish(["a", "c"], ["y"]), tol=1e-4)


@pytest.mark.parametrize(
    "shape,to", [((3, 1), (2, 3, 4)), ((1, 4), (3, 4)), ((2, 1, 5), (2, 3, 5))]
)
@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_broadcast_to_reads_from_tflite(shape, to, dtype):
    b = OpBuilder(f"broadcast_to_{dtype}", 0)
    if dtype == "int8":
        b.act("x", shape)
        b.like("y", (1,), "x")
    else:
        b.plain("x", shape)
        b.plain("y", (1,))
    b.node("BROADCAST_TO", ["x"], ["y"], shape=to)
    tflm_roundtrip(b.finish(["x"], ["y"]), tol=0.0)


# -- reads of operators tinyc's writer does not write --------------------------------------

Q = QuantParams([0.05], [3])


def _t(name: str, shape, dtype: str = "int8", data=None) -> Tensor:
    return Tensor(name, tuple(shape), dtype, None if data is None else np.asarray(data, dtype),
                  Q if dtype == "int8" else None)  # fmt: skip


@pytest.mark.parametrize(
    "shape,begin,size",
    [((3, 5, 4), (1, 0, 2), (2, -1, 2)), ((6,), (2,), (3,)), ((2, 3, 4, 5), (0, 1, 1, 0),
                                                               (-1, 2, 3, 5))],
)  # fmt: skip
def test_slice_reads_as_strided_slice(shape, begin, size):
    out = tuple(d - b if s == -1 else s for d, b, s in zip(shape, begin, size, strict=True))
    n = len(shape)
    ts = [_t("x", shape), _t("b", (n,), "int32", begin), _t("s", (n,), "int32", size),
          _t("y", out)]  # fmt: skip
    data = raw_tflite("SLICE", ts, ["x", "b", "s"], ["y"], options("SliceOptionsT"))
    compare_file(data, "slice", ops=["STRIDED_SLICE"])


def test_squeeze_and_expand_dims_read_as_reshape():
    ts = [_t("x", (1, 3, 1, 4)), _t("y", (3, 4))]
    data = raw_tflite("SQUEEZE", ts, ["x"], ["y"], options("SqueezeOptionsT", squeezeDims=[0, 2]))
    compare_file(data, "squeeze", ops=["RESHAPE"])
    ts = [_t("x", (3, 4)), _t("a", (1,), "int32", [1]), _t("y", (3, 1, 4))]
    data = raw_tflite("EXPAND_DIMS", ts, ["x", "a"], ["y"], options("ExpandDimsOptionsT"))
    compare_file(data, "expand_dims", ops=["RESHAPE"])


@pytest.mark.parametrize(
    "shape,begin,end,strides,begin_mask,end_mask,out",
    [
        ((5, 6), (1, -1), (4, 0), (1, -2), 0, 0, (3, 3)),
        ((5, 6), (0, 0), (0, 0), (1, 1), 3, 3, (5, 6)),
        ((5, 6), (3, 0), (0, -1), (-1, 2), 0, 2, (3, 3)),
        ((4, 7, 3), (-3, 1, 0), (10, -2, 3), (2, 3, 1), 0, 0, (2, 2, 3)),
        ((5, 6), (0, 0), (0, 0), (-1, -1), 3, 3, (5, 6)),
    ],
)
def test_strided_slice_masks_read(shape, begin, end, strides, begin_mask, end_mask, out):
    n = len(shape)
    ts = [_t("x", shape), _t("b", (n,), "int32", begin), _t("e", (n,), "int32", end),
          _t("s", (n,), "int32", strides), _t("y", out)]  # fmt: skip
    o = options("StridedSliceOptionsT", beginMask=begin_mask, endMask=end_mask)
    compare_file(raw_tflite("STRIDED_SLICE", ts, ["x", "b", "e", "s"], ["y"], o), "ss",
                 ops=["STRIDED_SLICE"])  # fmt: skip


def test_strided_slice_shrink_mask_is_unsupported():
    ts = [_t("x", (5, 6)), _t("b", (2,), "int32", (1, 0)), _t("e", (2,), "int32", (2, 6)),
          _t("s", (2,), "int32", (1, 1)), _t("y", (6,))]  # fmt: skip
    o = options("StridedSliceOptionsT", shrinkAxisMask=1)
    from tinyc.frontend.tflite import load_tflite

    g = load_tflite(raw_tflite("STRIDED_SLICE", ts, ["x", "b", "e", "s"], ["y"], o))
    assert g.nodes[0].op == "UNSUPPORTED" and "shrink" in g.nodes[0].attrs["reason"]


def _existing_ops() -> list[Graph]:
    """IR ops that ONNX already produced, now read from TFLite too."""
    out = []
    b = OpBuilder("gather", 1)
    b.act("x", (2, 4, 6))
    b.const("pos", [[5, 0, 1], [2, 3, 3]], "int32")
    b.like("y", (1,), "x")
    b.node("GATHER", ["x", "pos"], ["y"], axis=2)
    out.append(b.finish(["x"], ["y"]))
    b = OpBuilder("strided_slice", 1)
    b.act("x", (1, 4, 6, 8))
    b.like("y", (1,), "x")
    b.node("STRIDED_SLICE", ["x"], ["y"], begin=(0, 3, 0, 1), end=(1, -1, 6, 8),
           strides=(1, -2, 2, 3))  # fmt: skip
    out.append(b.finish(["x"], ["y"]))
    b = OpBuilder("dynamic_update_slice", 1)
    b.act("x", (1, 4, 6, 8))
    b.like("u", (1, 2, 6, 8), "x")
    b.like("y", (1,), "x")
    b.node("DYNAMIC_UPDATE_SLICE", ["x", "u"], ["y"], start=(0, 1, 0, 0))
    out.append(b.finish(["x", "u"], ["y"]))
    b = OpBuilder("prelu", 1)
    b.act("x", (1, 3, 4, 6))
    b.const_int8("alpha", (1, 1, 1, 6))
    b.act("y", (1,))
    b.node("PRELU", ["x", "alpha"], ["y"])
    out.append(b.finish(["x"], ["y"]))
    for k, (stride, pads) in enumerate([((2, 2), (0, 1, 0, 1)), ((2, 2), (0, 0, 0, 0)),
                                        ((1, 1), (1, 1, 1, 1))]):  # fmt: skip
        b = OpBuilder(f"transpose_conv_{k}", k)
        b.act("x", (1, 4, 5, 4))
        w, bias = b.weights("w", (6, 3, 4, 4), 0), b.bias("b", 6)
        b.act("y", (1,))
        b.node("TRANSPOSE_CONV", ["x", w, bias], ["y"], stride=stride, pads=pads)
        out.append(b.finish(["x"], ["y"]))
    return out


EXISTING = _existing_ops()


@pytest.mark.parametrize("g", EXISTING, ids=_ids(EXISTING))
def test_existing_ops_read_from_tflite(g):
    tflm_roundtrip(g)


def test_div_reads_from_tflite():
    b = OpBuilder("div", 1)
    b.act("a", (1, 3, 4, 5))
    b.act("d", (1, 3, 4, 5))
    sa, sd = (float(b.g.tensors[n].quant.s) for n in "ad")
    b.act("y", (1,), sa / (sd * 100))
    b.node("DIV", ["a", "d"], ["y"])
    g = b.finish(["a", "d"], ["y"])
    zp = g.tensors["d"].quant.zp
    cases = [[a, np.where(d == zp, np.int8(zp + 1), d)] for a, d in
             (random_inputs(g, s) for s in range(3))]  # fmt: skip
    tflm_roundtrip(g, cases)


# -- the C kernels on the host ---------------------------------------------------------------


def c_bundle() -> Graph:
    """One int8 graph, a branch per new C kernel (each build covers them all)."""
    b = OpBuilder("builtins_c", 7)
    x = b.act("x", (1, 4, 6, 8), 0.05, 3)
    v = b.act("v", (1, 1, 6, 8), 0.04, -7)
    outs: list[str] = []

    def out(name: str, scale=None, zp=None, like: str | None = None, dtype="int8") -> str:
        if like:
            b.like(name, (1,), like)
        elif dtype != "int8":
            b.plain(name, (1,), dtype)
        else:
            b.act(name, (1,), scale, zp)
        outs.append(name)
        return name

    for op, attrs in [("LEAKY_RELU", {"alpha": 0.1}), ("ABS", {}), ("RSQRT", {}), ("ELU", {}),
                      ("EXP", {}), ("LOG", {}), ("NEG", {}), ("SIN", {}), ("COS", {}),
                      ("SQUARE", {}), ("FLOOR", {}), ("CEIL", {}), ("ROUND", {})]:  # fmt: skip
        b.node(op, [x], [out(op.lower())], **attrs)
    b.node("RESIZE_NEAREST_NEIGHBOR", [x], [out("nearest", like=x)], size=(7, 13),
           align_corners=False, half_pixel_centers=True)  # fmt: skip
    b.node("RESIZE_BILINEAR", [x], [out("bilinear", like=x)], size=(9, 4), align_corners=True,
           half_pixel_centers=False)  # fmt: skip
    b.like("v2", (1, 1, 6, 8), x)
    b.node("QUANTIZE", [v], ["v2"])
    b.node("MAXIMUM", [x, "v2"], [out("maximum", like=x)])
    b.node("MINIMUM", ["v2", x], [out("minimum", like=x)])
    b.node("SQUARED_DIFFERENCE", [x, v], [out("sqdiff")])
    b.plain("gt", (1,), "bool")
    b.node("GREATER", [x, v], ["gt"])
    b.plain("le", (1,), "bool")
    b.node("LESS_EQUAL", [v, x], ["le"])
    b.plain("ne", (1,), "bool")
    b.node("NOT_EQUAL", [x, v], ["ne"])
    b.plain("both", (1,), "bool")
    b.node("LOGICAL_AND", ["gt", "ne"], ["both"])
    b.plain("either", (1,), "bool")
    b.node("LOGICAL_OR", ["le", "both"], ["either"])
    b.plain("neither", (1,), "bool")
    b.node("LOGICAL_NOT", ["either"], ["neither"])
    b.node("SELECT_V2", ["neither", x, "v2"], [out("select", like=x)])
    b.node("CAST", ["both"], [out("cast_bool", dtype="int32")])
    b.node("CAST", [x], [out("cast_float", dtype="float32")])
    b.like("x2", (1, 4, 6, 8), x)
    b.node("RELU", [x], ["x2"])
    b.node("ADD_N", [x, "x2", x], [out("add_n")])
    b.node("SUM", [x], [out("sum")], axes=(1, 3), keep_dims=False)
    b.node("REDUCE_MAX", [x], [out("reduce_max", like=x)], axes=(0, 2), keep_dims=True)
    b.node("REDUCE_MIN", [x], [out("reduce_min", like=x)], axes=(3,), keep_dims=False)
    b.node("ARG_MAX", [x], [out("arg_max", dtype="int32")], axis=3)
    b.node("ARG_MIN", [x], [out("arg_min", dtype="int32")], axis=1)
    b.node("L2_NORMALIZATION", [x], [out("l2", 1 / 128, 0)], activation="NONE")
    b.node("LOG_SOFTMAX", [x], [out("log_softmax", 16 / 256, 127)])
    b.node("DEPTH_TO_SPACE", [x], [out("d2s", like=x)], block_size=2)
    b.node("SPACE_TO_DEPTH", [x], [out("s2d", like=x)], block_size=2)
    b.node("SPACE_TO_BATCH_ND", [x], [out("s2b", like=x)], block_shape=(3, 2),
           paddings=((1, 1), (2, 0)))  # fmt: skip
    b.node("BATCH_TO_SPACE_ND", ["s2b"], [out("b2s", like=x)], block_shape=(3, 2),
           crops=((1, 1), (2, 0)))  # fmt: skip
    b.const("idx", [[0, 3, 5], [0, 1, 0]], "int32")
    b.node("GATHER_ND", [x, "idx"], [out("gather_nd", like=x)])
    b.node("ZEROS_LIKE", [x], [out("zeros", like=x)])
    b.const("seven", 7, "int8", b.g.tensors[x].quant)
    b.node("FILL", ["seven"], [out("fill", like=x)], shape=(3, 5))
    b.node("MIRROR_PAD", [x], [out("mirror", like=x)], paddings=((0, 0), (2, 1), (0, 3), (1, 1)),
           mode="REFLECT")  # fmt: skip
    b.node("REVERSE_V2", [x], [out("reverse", like=x)], axes=(1, 2))
    b.node("CUMSUM", [x], [out("cumsum")], axis=2, exclusive=True, reverse=False)
    b.plain("all", (1,), "bool")
    b.node("REDUCE_ALL", ["gt"], ["all"], axes=(0, 3), keep_dims=True)
    b.node("CAST", ["all"], [out("cast_all", dtype="int8")])
    b.node("SHAPE", [x], [out("shape", dtype="int32")])
    return b.finish([x, v], outs)


C_BUNDLE = c_bundle()


def test_c_kernels_match_interpreter(tmp_path):
    """Every target's layouts (the portable C paths on the host)."""
    g = C_BUNDLE
    cases = every_value(g)
    c_matches(g, tmp_path, cases)
    ref = interpreter.run(g, cases[-1])
    np.testing.assert_array_equal(ref["b2s"], cases[-1][0])  # BATCH_TO_SPACE undoes it


C_VARIANTS = {
    "rearrange": [rearrange_graph(k) for k in range(len(REARRANGE_CASES))]
    + [gather_nd_graph(k) for k in range(len(GATHER_ND_CASES))],
    "resize": [
        resize_graph(op, k)
        for op in ("RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR")
        for k in range(len(RESIZE_CASES))
    ],  # fmt: skip
    "reduce": [
        reduce_graph(op, k)
        for op in ("SUM", "REDUCE_MAX", "REDUCE_MIN")
        for k in range(len(REDUCE_CASES))
    ]  # fmt: skip
    + [arg_graph(op, k) for op in ("ARG_MAX", "ARG_MIN") for k in range(len(ARG_CASES))],
    "binary": [binary_graph("SQUARED_DIFFERENCE", k) for k in range(len(BROADCASTS))]
    + [binary_graph("MAXIMUM", k, same=True) for k in range(len(BROADCASTS))]
    + [select_graph(k, const_cond=True) for k in range(len(SELECTS))],
    "take": [move_graph(k) for k in range(len(MORE_MOVES))]
    + [cumsum_graph(k) for k in range(len(CUMSUM_CASES))],
    "norm": [log_softmax_graph(k) for k in range(len(NORM_SHAPES))]
    + [l2_graph(k) for k in range(len(NORM_SHAPES))],
}


@pytest.mark.parametrize("family", list(C_VARIANTS))
def test_c_kernel_variants_match_interpreter(family, tmp_path):
    """Each op's geometries (broadcasts, crops and paddings, axes), side by side in one
    graph, on one layout."""
    g = merged(C_VARIANTS[family], f"variants_{family}")
    c_matches(g, tmp_path, every_value_all_inputs(g), targets=("plain",))


def test_quantized_float_chain_matches_tflm():
    """A float graph of the new ops through tinyc's quantizer: the int8 graph (fixed output
    parameters, shared ones where TFLM does not rescale) == TFLM."""
    from tinyc.passes.quantize import quantize

    b = OpBuilder("float_chain", 0)
    b.plain("x", (1, 4, 6, 8))
    steps = [
        (
            "RESIZE_BILINEAR",
            ["x"],
            {"size": (8, 12), "align_corners": False, "half_pixel_centers": True},
        ),  # fmt: skip
        ("LEAKY_RELU", None, {"alpha": 0.1}),
        ("MAXIMUM", ["c"], {}),
        ("ELU", None, {}),
        ("SQUARED_DIFFERENCE", ["s0"], {}),
        ("LOG_SOFTMAX", None, {}),
    ]
    b.const("c", np.full((1, 1, 1, 8), 0.3), "float32")
    prev = "x"
    for k, (op, extra, attrs) in enumerate(steps):
        b.plain(f"s{k}", (1,))
        ins = extra if op == "RESIZE_BILINEAR" else [prev, *(extra or [])]
        b.node(op, ins, [f"s{k}"], **attrs)
        prev = f"s{k}"
    b.plain("sum", (1,))
    b.node("SUM", ["s2"], ["sum"], axes=(1, 2), keep_dims=True)
    b.plain("l2", (1,))
    b.node("L2_NORMALIZATION", ["sum"], ["l2"], activation="NONE")
    b.plain("arg", (1,), "int32")
    b.node("ARG_MAX", [prev], ["arg"], axis=3)
    g = b.finish(["x"], ["l2", "arg"])
    rng = np.random.default_rng(0)
    q, _ = quantize(g, [[rng.standard_normal((1, 4, 6, 8)).astype(np.float32)] for _ in range(8)])
    assert q.tensors["l2"].quant.zp == 0 and q.tensors[prev].quant.zp == 127
    tflm_roundtrip(q)


def test_int8_float_only_builtins_stay_unsupported():
    """TFLM runs L2_POOL_2D, FLOOR_DIV and FLOOR_MOD in float only: int8 ones are marked."""
    from tinyc.frontend.tflite import load_tflite

    ts = [_t("x", (1, 4, 4, 2)), _t("y", (1, 2, 2, 2))]
    o = options("Pool2DOptionsT", padding=1, strideH=2, strideW=2, filterHeight=2, filterWidth=2)
    g = load_tflite(raw_tflite("L2_POOL_2D", ts, ["x"], ["y"], o))
    assert g.nodes[0].op == "UNSUPPORTED" and "float32 only" in g.nodes[0].attrs["reason"]

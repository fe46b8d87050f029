"""EMBEDDING_LOOKUP and BROADCAST_ARGS: read from one-operator .tflite files, the interpreter
== TFLM on them, the generated C == the interpreter, the TFLM backend writes them back."""

from __future__ import annotations

import numpy as np
import pytest
from builtin_checks import c_matches, compare_file, raw_tflite, tflm_roundtrip

from tinyc.errors import TinycError
from tinyc.frontend.tflite import load_tflite
from tinyc.interpreter import run
from tinyc.ir.tensor import QuantParams, Tensor

IDS = [np.array([3, 0, 9, 3], np.int32), np.array([7, 7, 1, 2], np.int32)]


def _table(dtype: str, zp: int = -5) -> Tensor:
    rng = np.random.default_rng(0)
    if dtype == "float32":
        return Tensor("table", (10, 2, 3), "float32", rng.standard_normal((10, 2, 3), np.float32))
    data = rng.integers(-128, 128, (10, 2, 3)).astype(np.int8)
    return Tensor("table", (10, 2, 3), "int8", data, QuantParams(0.05, zp))


@pytest.mark.parametrize(
    "table_dtype,out_dtype", [("float32", "float32"), ("int8", "int8"), ("int8", "float32")]
)
def test_embedding_lookup_matches_tflm(table_dtype, out_dtype, tmp_path):
    table = _table(table_dtype, zp=0 if out_dtype == "float32" else -5)
    quant = table.quant if out_dtype == "int8" else None
    ts = [Tensor("ids", (4,), "int32"), table, Tensor("y", (4, 2, 3), out_dtype, None, quant)]
    data = raw_tflite("EMBEDDING_LOOKUP", ts, ["ids", "table"], ["y"])
    g = compare_file(data, "lookup", [[x] for x in IDS], ops=["EMBEDDING_LOOKUP"])
    if out_dtype == "int8":
        c_matches(g, tmp_path, [[x] for x in IDS], targets=("plain", "dsp"))
        tflm_roundtrip(g, [[x] for x in IDS])


def test_embedding_lookup_refuses_an_id_outside_the_table():
    ts = [Tensor("ids", (4,), "int32"), _table("float32"), Tensor("y", (4, 2, 3), "float32")]
    g = load_tflite(raw_tflite("EMBEDDING_LOOKUP", ts, ["ids", "table"], ["y"]), "lookup")
    with pytest.raises(TinycError, match="id 10 is outside the table's 10 rows"):
        run(g, [np.array([0, 10, 1, 2], np.int32)])


def test_broadcast_args_matches_tflm(tmp_path):
    ts = [Tensor("a", (3,), "int32"), Tensor("b", (2,), "int32"), Tensor("y", (3,), "int32")]
    data = raw_tflite("BROADCAST_ARGS", ts, ["a", "b"], ["y"])
    cases = [
        [np.array([2, 1, 3], np.int32), np.array([5, 1], np.int32)],
        [np.array([1, 4, 1], np.int32), np.array([4, 6], np.int32)],
    ]
    g = compare_file(data, "bargs", cases, ops=["BROADCAST_ARGS"])
    assert run(g, cases[0])["y"].tolist() == [2, 5, 3]
    c_matches(g, tmp_path, cases, targets=("plain",))
    tflm_roundtrip(g, cases)

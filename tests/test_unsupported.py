"""A model with operators tinyc cannot compile: inspect and estimate still show every node
(the unsupported ones marked, with what is known about them); compile, infer, run refuse it
with one line naming every unsupported operator, grouped by type."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import flatbuffers
import pytest
from conftest import INT8_TFLITE, model_path

from tinyc.errors import UnsupportedError
from tinyc.frontend.tflite import load_tflite
from tinyc.ir.verify import require_supported
from tinyc.tflite_schema import builtin_codes, schema


def _kws_with(tmp: Path, replace: dict[str, str]) -> Path:
    """The kws model with some of its operators renamed to ones tinyc does not translate."""
    m = schema().ModelT.InitFromPackedBuf(
        bytearray(model_path(INT8_TFLITE["kws_ref_model"]).read_bytes()), 0
    )
    codes = builtin_codes()
    for oc in m.operatorCodes:
        name = {v: k for k, v in codes.items()}[max(oc.builtinCode, oc.deprecatedBuiltinCode)]
        if name in replace:
            oc.builtinCode = oc.deprecatedBuiltinCode = codes[replace[name]]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    path = tmp / "kws_odd.tflite"
    path.write_bytes(bytes(b.Output()))
    return path


def _tinyc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tinyc.cli", *args], capture_output=True, text=True
    )


def test_tflite_keeps_unsupported_nodes_with_their_shapes(tmp_path: Path) -> None:
    path = _kws_with(
        tmp_path, {"AVERAGE_POOL_2D": "HASHTABLE_LOOKUP", "SOFTMAX": "LOCAL_RESPONSE_NORMALIZATION"}
    )
    g = load_tflite(path)
    bad = [n for n in g.nodes if n.op == "UNSUPPORTED"]
    assert [n.attrs["op"] for n in bad] == ["HASHTABLE_LOOKUP", "LOCAL_RESPONSE_NORMALIZATION"]
    assert g.tensors[bad[0].outputs[0]].shape == (1, 1, 1, 64)
    with pytest.raises(UnsupportedError) as e:
        require_supported(g, "kws_odd")
    assert str(e.value).startswith(
        "kws_odd: 2 unsupported operator(s): HASHTABLE_LOOKUP "
        "(functional_1/average_pooling2d/AvgPool), LOCAL_RESPONSE_NORMALIZATION (Identity)"
    )


def test_inspect_and_estimate_show_every_node(tmp_path: Path) -> None:
    path = _kws_with(tmp_path, {"AVERAGE_POOL_2D": "HASHTABLE_LOOKUP"})
    r = _tinyc("inspect", str(path), "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["totals"]["nodes"] == 13 and info["totals"]["unsupported"] == 1
    (pool,) = [n for n in info["nodes"] if not n["supported"]]
    assert pool["op"] == "HASHTABLE_LOOKUP" and pool["output"] == [1, 1, 1, 64]
    r = _tinyc("estimate", str(path), "--board", "nucleo-f746")
    assert r.returncode == 0, r.stderr
    assert "PARTIAL estimate" in r.stdout and "HASHTABLE_LOOKUP (!)" in r.stdout
    assert "functional_1/dense/BiasAdd" in r.stdout  # nodes after it are shown too


def test_compile_names_them_all_in_one_line(tmp_path: Path) -> None:
    path = _kws_with(
        tmp_path, {"AVERAGE_POOL_2D": "HASHTABLE_LOOKUP", "SOFTMAX": "LOCAL_RESPONSE_NORMALIZATION"}
    )
    r = _tinyc("compile", str(path), "--board", "nucleo-f746", "-o", str(tmp_path / "p"))
    assert r.returncode == 2
    err = r.stderr.strip()
    assert err.startswith("tinyc: error: kws_odd: 2 unsupported operator(s):") and "\n" not in err
    assert not (tmp_path / "p").exists()


def test_grouping_counts_and_truncates() -> None:
    from tinyc.ir.verify import unsupported_message

    msg = unsupported_message({"GRU": [f"g{i}" for i in range(14)], "ScatterND": ["s"]})
    assert msg == "15 unsupported operator(s): GRU x14 (g0, g1, g2, ...), ScatterND (s)"


def test_toco_bias_axis_is_read_like_tflm(tmp_path: Path) -> None:
    """Per-channel parameters on a 1-D bias with the filter's axis (TOCO's files): TFLM runs
    them (it never reads a bias's scales), tinyc too, with a note."""
    from tinyc import interpreter
    from tinyc.modelio import random_inputs

    src = model_path(INT8_TFLITE["kws_ref_model"])
    m = schema().ModelT.InitFromPackedBuf(bytearray(src.read_bytes()), 0)
    bias = next(t for t in m.subgraphs[0].tensors if t.type == 2 and len(t.shape) == 1)
    n = int(bias.shape[0])
    bias.quantization.scale = [float(bias.quantization.scale[0])] * n
    bias.quantization.zeroPoint = [0] * n
    bias.quantization.quantizedDimension = 3
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    path = tmp_path / "toco.tflite"
    path.write_bytes(bytes(b.Output()))
    g = load_tflite(path)
    assert any("read as axis 0" in note for note in g.notes)
    ref = load_tflite(src)
    xs = random_inputs(ref, 0)
    np_out = interpreter.run(g, xs)[g.outputs[0]]
    assert (np_out == interpreter.run(ref, xs)[ref.outputs[0]]).all()


def test_tensors_of_dtypes_no_op_computes_are_shown_and_named(tmp_path: Path) -> None:
    """A uint32 tensor (TFLM's signal-library models have them) no longer stops the reader:
    inspect shows the model, and compile names the nodes that touch it."""
    path = _kws_with(tmp_path, {})
    m = schema().ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0)
    sg = m.subgraphs[0]
    out = sg.tensors[sg.outputs[0]]
    out.type, out.quantization = 15, None  # uint32
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    path.write_bytes(bytes(b.Output()))
    g = load_tflite(path)
    assert g.tensors[g.outputs[0]].dtype == "uint32"
    shown = _tinyc("inspect", str(path))
    assert shown.returncode == 0 and "uint32" in shown.stdout
    r = _tinyc("compile", str(path), "--board", "nucleo-f746", "-o", str(tmp_path / "p"))
    assert r.returncode == 2 and not (tmp_path / "p").exists()
    assert r.stderr.startswith("tinyc: error: ") and len(r.stderr.splitlines()) == 1
    assert r.stderr.rstrip().endswith("1 unsupported operator(s): SOFTMAX on uint32 (Identity)")

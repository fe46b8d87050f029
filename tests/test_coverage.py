"""The operator coverage table (tinyc.coverage, `tinyc ops`): read from the code, and the
README's copy equal to it."""

from __future__ import annotations

import json

from click.testing import CliRunner
from conftest import REPO

from tinyc import coverage as cov
from tinyc.cli import cli
from tinyc.frontend.tflite import READERS
from tinyc.frontend.tflite_variables import RESOURCE_OPS
from tinyc.ir.ops import REGISTRY


def test_readme_table_is_current():
    table = cov.markdown(cov.coverage())
    readme = cov.readme_section((REPO / "README.md").read_text())
    assert readme == table, (
        "README.md's operator table is stale: run `tinyc ops --update-readme README.md`"
    )


def test_every_op_and_tflite_reader_is_covered():
    c = cov.coverage()
    assert {o.op for o in c.ops} == set(REGISTRY) - {"UNSUPPORTED"}
    # every TFLite reader names the IR op it makes; WHILE is unrolled into its body's ops
    assert c.unmapped["tflite"] == ["IF", "WHILE"]
    by_op = {o.op: o for o in c.ops}
    assert by_op["RESHAPE"].tflite == ["EXPAND_DIMS", "RESHAPE", "SQUEEZE"]
    assert by_op["STRIDED_SLICE"].tflite == ["SLICE", "STRIDED_SLICE"]
    assert by_op["LSTM"].tflite == ["UNIDIRECTIONAL_SEQUENCE_LSTM"]
    assert set(READERS) | set(RESOURCE_OPS) | {"IF", "WHILE"} == set(c.frontend_ops["tflite"])
    assert by_op["READ_VARIABLE"].tflite == ["READ_VARIABLE", "VAR_HANDLE"]


def test_int8_semantics_and_backends():
    by_op = {o.op: o for o in cov.coverage().ops}
    assert by_op["CONV_2D"].int8 == "tflm" and by_op["CONV_2D"].tflm == "yes"
    assert by_op["EXP"].int8 == "tinyc" and by_op["EXP"].tflm == "float"
    assert by_op["SQRT"].int8 == "tinyc"
    assert by_op["RESHAPE"].int8 == "tflm"  # values move unchanged
    assert by_op["ARG_MAX"].int8 == "tflm"
    assert by_op["LOGICAL_AND"].int8 == "" and by_op["LOGICAL_AND"].float
    assert not by_op["QUANTIZE"].float and by_op["QUANTIZE"].int8 == "tflm"
    assert all(o.c for o in by_op.values() if o.op in ("RESIZE_BILINEAR", "LOG_SOFTMAX", "SUM"))


def test_shared_translators_split_by_name():
    """ARG_MAX and ARG_MIN share a reader pattern; PAD and PADV2 share one reader."""
    by_op = {o.op: o for o in cov.coverage().ops}
    assert by_op["PAD"].tflite == ["PAD", "PADV2"]
    assert by_op["ARG_MAX"].tflite == ["ARG_MAX"]


def test_tflm_builtins_missing_are_not_read():
    c = cov.coverage()
    missing = c.tflm_builtins_missing()
    assert not set(missing) & set(READERS)
    counts = c.counts()
    assert counts["tflm_builtins_read"] + len(missing) == len(cov.TFLM_BUILTINS)


def test_cli_ops():
    runner = CliRunner()
    res = runner.invoke(cli, ["ops", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["counts"]["ir_ops"] == len(data["ops"])
    res = runner.invoke(cli, ["ops", "--markdown"])
    assert res.exit_code == 0 and res.output == cov.markdown(cov.coverage())
    res = runner.invoke(cli, ["ops"])
    assert res.exit_code == 0 and "RESIZE_BILINEAR" in res.output


def test_update_readme(tmp_path):
    p = tmp_path / "README.md"
    p.write_text(f"# x\n\n{cov.README_BEGIN}\nold\n{cov.README_END}\n\nrest\n")
    res = CliRunner().invoke(cli, ["ops", "--update-readme", str(p)])
    assert res.exit_code == 0, res.output
    text = p.read_text()
    assert cov.readme_section(text) == cov.markdown(cov.coverage())
    assert text.startswith("# x\n") and text.endswith("\n\nrest\n")

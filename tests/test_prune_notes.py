"""What compile, run and validate say about a pruned model: the TFLM backend's note that it
keeps the zeros (TFLM has no sparse kernels), the pruning report in tinyc.json, and the
pruning table on run / validate as on compile."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import graphs
import numpy as np
import pytest
from conftest import INT8_TFLITE, model_path

from tinyc.compiler import CompileOptions, compile_model
from tinyc.passes.prune import PruneOptions

needs_arm = pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
    reason="arm-none-eabi-gcc and qemu-system-arm are not installed",
)


def _fc(sparsity: float):
    g = graphs.fully_connected(3, 1, 128, 32, "RELU")
    w = g.tensors["w"]
    keep = np.random.default_rng(0).random(w.data.shape) >= sparsity
    w.data = np.where(keep, w.data, 0).astype(np.int8)
    return g


def test_tflm_backend_says_it_keeps_the_zeros(tmp_path: Path) -> None:
    opts = CompileOptions(board="nucleo-f746", backend="tflm")
    rep = compile_model(_fc(0.8), opts, tmp_path / "sparse", log=lambda m: None)
    (note,) = [n for n in rep.notes if "sparse kernels" in n]
    assert "TFLM has no sparse kernels" in note and "stores the zeros" in note
    assert "note: " + note in rep.format_text()
    dense = compile_model(_fc(0.0), opts, tmp_path / "dense", log=lambda m: None)
    assert not [n for n in dense.notes if "sparse kernels" in n]


def test_tinyc_json_records_the_pruning(tmp_path: Path) -> None:
    opts = CompileOptions(board="nucleo-f746", prune=PruneOptions.parse("0.5", "magnitude"))
    rep = compile_model(_fc(0.0), opts, tmp_path / "p", log=lambda m: None)
    data = json.loads((tmp_path / "p" / "tinyc.json").read_text())
    assert data["pruning"] == json.loads(json.dumps(rep.pruning.to_json()))
    assert data["pruning"]["spec"] == "0.5" and data["pruning"]["kept"] == "magnitude"
    (res,) = data["pruning"]["results"]
    assert res["zeros"] == 2048 and res["weights"] == 4096


@needs_arm
@pytest.mark.qemu
@pytest.mark.parametrize("command", ["run", "validate"])
def test_run_and_validate_print_the_pruning_table(command: str, capsys) -> None:
    from tinyc.cli import main

    path = str(model_path(INT8_TFLITE["hello_world_int8"]))
    args = [command, path, "-b", "nucleo-f746", "--prune", "0.5"]
    if command == "validate":
        args += ["--cases", "1"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "Pruning 0.5:" in err and "weights zero" in err and "sparsity" in err

"""Fused layer groups (tinyc.backends.cmsis.fusion): every fusion of every fused case, on
every target's portable C paths and in QEMU, bit-exact with the reference interpreter;
and the memory plan's choice of fusions on the shared models."""

from __future__ import annotations

import shutil
from pathlib import Path

import graphs
import numpy as np
import pytest
from c_host import build_host, run_host
from conftest import INT8_TFLITE, MODELS

from tinyc import interpreter
from tinyc.backends.cmsis.codegen import generate_model, plan_with_fusion, prepare_graph
from tinyc.backends.cmsis.fusion import FUSED_CONV_CONV, FUSED_CONV_DW, fused_view, fusions
from tinyc.compiler import CompileOptions, compile_model
from tinyc.frontend.tflite import load_tflite
from tinyc.modelio import random_inputs
from tinyc.runner import EmulatedProject

CASES = graphs.fused_cases()


def test_every_case_has_its_fusion() -> None:
    kinds = [sorted({f.kind for f in fusions(prepare_graph(g))}) for g in CASES]
    assert kinds[:4] == [[FUSED_CONV_CONV]] * 4 and kinds[4] == [FUSED_CONV_DW]
    residual_add = [len(fusions(prepare_graph(g))[0].members) for g in CASES[:3]]
    assert residual_add == [3, 3, 3]


@pytest.mark.parametrize("target", ["dsp", "mve", "plain"])
@pytest.mark.parametrize("g", CASES, ids=[g.name for g in CASES])
def test_fused_on_host_bit_exact(g, target: str, tmp_path: Path) -> None:
    found = fusions(prepare_graph(g))
    gen = generate_model(g, g.name, target, fuse={f.key for f in found})
    src = gen.files["model/model.c"]
    mark = "the window holds producer rows" if found[0].kind == FUSED_CONV_CONV else "ring"
    assert mark in src and "static void rows_" in src
    exe = build_host(gen, tmp_path)
    for seed in range(3):
        case = random_inputs(g, seed)
        ref = interpreter.run(g, case)
        outs = run_host(exe, gen, case)
        for name, got in zip(g.outputs, outs, strict=True):
            np.testing.assert_array_equal(got, ref[name].reshape(got.shape), err_msg=name)


def test_resnet_fuses_its_first_block() -> None:
    """resnet8's first residual block sets the arena; fused, it no longer does."""
    g = prepare_graph(load_tflite(MODELS / INT8_TFLITE["pretrainedResnet_quant"]))
    for target in ("dsp", "mve", "plain"):
        view, plan = plan_with_fusion(g, target)
        fused = [n for n in view.nodes if n.op == FUSED_CONV_CONV]
        assert len(fused) == 1 and fused[0].attrs["add"] is not None
        # the block's input (32x32x16) and one more whole 16 KB tensor no longer coexist
        assert plan.arena_bytes < 2 * 32 * 32 * 16
        plan.check()


HAVE_ARM = shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")


@pytest.mark.skipif(not HAVE_ARM, reason="arm-none-eabi-gcc and qemu-system-arm are not installed")
@pytest.mark.qemu
@pytest.mark.parametrize("board", ["rpi-pico", "nucleo-l4r5zi", "nucleo-f746", "corstone-300"])
def test_fused_in_qemu_bit_exact(board: str, tmp_path: Path, monkeypatch) -> None:
    """Every fusion made, on each core's own code paths (assembly included)."""
    from tinyc.backends.cmsis import codegen

    def fuse_all(g, target="dsp", kernels="tinyc"):
        view = fused_view(g, {f.key for f in fusions(g)})
        return view, codegen._plan_view(view, target, kernels)

    monkeypatch.setattr(codegen, "plan_with_fusion", fuse_all)
    failures = []
    for g in CASES:
        project = tmp_path / g.name
        compile_model(g, CompileOptions(board=board), project, log=lambda m: None)
        assert "static void rows_" in (project / "model/model.c").read_text()
        ep = EmulatedProject.build(project)
        for seed in range(2):
            r = ep.run_case(f"random_{seed}", random_inputs(g, seed))
            if not r.bit_exact:
                failures.append(f"{g.name}: {r.mismatches} values")
    assert not failures, failures

"""DEPTHWISE_CONV_2D with a depth multiplier above 1 (tinyc_dwm_s8: the grouped convolution it
is, on the matrix kernels of CONV_2D), the first layer of many audio and IMU models: bit-exact
with the interpreter on the host (every target's layout) and in QEMU on M0+, M4, M7 and M55,
and the fast path is the one emitted."""

from __future__ import annotations

import shutil
from pathlib import Path

import graphs
import numpy as np
import pytest
from c_host import build_host, run_host

from tinyc import interpreter
from tinyc.backends.cmsis.codegen import generate_model
from tinyc.backends.cmsis.emit.conv import dwm_blocking, dwm_weights
from tinyc.compiler import CompileOptions, compile_model
from tinyc.ir.graph import Graph
from tinyc.ir.ops import get_op
from tinyc.modelio import random_inputs

CASES = graphs.depthwise_multiplier_cases()
BOARDS = {"M0+": "rpi-pico", "M4": "nucleo-l4r5zi", "M7": "nucleo-f746", "M55": "corstone-300"}
needs_arm = pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
    reason="arm-none-eabi-gcc and qemu-system-arm are not installed",
)


def _node_c(g: Graph, target: str) -> str:
    return generate_model(g, g.name, target).files["model/model.c"]


@pytest.mark.parametrize("target", ["dsp", "mve", "plain"])
def test_one_input_channel_takes_the_matrix_kernels(target: str) -> None:
    g = CASES[0]
    assert g.tensors["x"].shape[3] == 1 and g.nodes[0].attrs["depth_multiplier"] == 8
    text = _node_c(g, target)
    assert "tinyc_dwm_s8(" in text
    assert "tinyc_depthwise_s8" not in text and "tinyc_dw_s8(" not in text


def test_several_input_channels_take_the_matrix_kernels() -> None:
    text = _node_c(CASES[3], "dsp")
    assert "tinyc_dwm_s8(" in text and "tinyc_depthwise_s8" not in text


def test_weights_are_the_grouped_convolution() -> None:
    """Output channel c * M + m is a filter over input channel c: CONV_2D with groups = C."""
    g = CASES[3]
    node = g.nodes[0]
    w = g.tensors["w"].data
    rows = dwm_weights(w)
    assert rows.shape == (w.shape[3], w.shape[1] * w.shape[2])
    np.testing.assert_array_equal(rows[5], w[0, :, :, 5].reshape(-1))
    x = random_inputs(g, 0)[0]
    ref = interpreter.run(g, [x])["y"]
    # the same numbers from the grouped CONV_2D reference
    conv = graphs.conv(73, 13, 2, 3, 6, (7, 1), (2, 1), (1, 1), (3, 3, 0, 0), groups=3)
    conv.tensors["x"].quant = g.tensors["x"].quant
    conv.tensors["y"].quant = g.tensors["y"].quant
    conv.tensors["b"].data = g.tensors["b"].data
    wc = conv.tensors["w"]
    wc.data = rows.reshape(wc.shape)
    wc.quant.scale = g.tensors["w"].quant.scale
    assert get_op("CONV_2D").groups(conv.nodes[0], conv) == 3
    np.testing.assert_array_equal(interpreter.run(conv, [x])["y"], ref)
    assert node.attrs["depth_multiplier"] == 2


def test_many_channels_go_in_chunks() -> None:
    g = CASES[5]
    geo_c = g.tensors["x"].shape[3]
    from tinyc.backends.cmsis.emit.conv import _geometry

    _, _, cb = dwm_blocking(_geometry(g.nodes[0], g), "dsp")
    assert cb < geo_c


@pytest.mark.parametrize("target", ["dsp", "mve", "plain"])
@pytest.mark.parametrize("g", CASES, ids=[g.name for g in CASES])
def test_on_host_bit_exact(g: Graph, target: str, tmp_path: Path) -> None:
    gen = generate_model(g, g.name, target)
    exe = build_host(gen, tmp_path)
    for seed in range(3):
        case = random_inputs(g, seed)
        ref = interpreter.run(g, case)
        (got,) = run_host(exe, gen, case)
        np.testing.assert_array_equal(got, ref["y"].reshape(got.shape))


@needs_arm
@pytest.mark.qemu
@pytest.mark.parametrize("core", list(BOARDS))
def test_in_qemu_bit_exact(core: str, tmp_path: Path) -> None:
    from tinyc.runner import EmulatedProject

    failures = []
    for g in CASES:
        project = tmp_path / g.name
        compile_model(g, CompileOptions(board=BOARDS[core]), project, log=lambda m: None)
        ep = EmulatedProject.build(project)
        for seed in range(2):
            r = ep.run_case(str(seed), random_inputs(ep.graph, seed))
            if not r.bit_exact:
                failures.append(f"{g.name}: {r.mismatches} values")
    assert not failures, failures


@pytest.mark.parametrize("target", ["dsp", "mve", "plain"])
def test_output_overlaps_the_input_it_consumes(target: str) -> None:
    """The planner may let a layer's output reach into its input (tinyc_dwm_s8 writes a
    block of pixels only after gathering it); the chain case does (and runs bit-exact)."""
    g = CASES[-1]
    plan = generate_model(g, g.name, target).plan.to_json()
    spans = {b["name"]: (b["offset"], b["offset"] + b["bytes"]) for b in plan["buffers"]}
    (m0, m1), (y0, y1) = spans["m"], spans["y"]
    assert y0 < m1 and m0 < y1

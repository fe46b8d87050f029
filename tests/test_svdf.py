"""SVDF (TFLite's rank-decomposed time convolution with a persistent state): tinyc's
interpreter against TFLM over several invocations (the state carried), the C kernel on the
host and in QEMU, and tinyc's .tflite writer."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from c_host import build_host, run_host

from tinyc import interpreter
from tinyc.backends.cmsis.codegen import generate_model
from tinyc.backends.tflm.writer import write_tflite
from tinyc.ir.graph import Graph, Node
from tinyc.ir.tensor import QuantParams, Tensor
from tinyc.ir.verify import verify
from tinyc.modelio import random_inputs

tflm = pytest.importorskip("tflite_micro").runtime
needs_arm = pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
    reason="arm-none-eabi-gcc and qemu-system-arm are not installed",
)

CASES = [  # batch, input, filters, memory, rank, state dtype, bias
    (1, 12, 8, 5, 1, "int16", True),
    (2, 7, 12, 3, 2, "int8", True),
    (1, 16, 6, 10, 3, "int16", False),
]


def svdf_graph(batch, n_in, filters, memory, rank, sdt, bias, seed=0) -> Graph:
    rng = np.random.default_rng(seed)
    g = Graph(name=f"svdf_{sdt}_r{rank}", source_format="test")
    units = filters // rank
    g.add_tensor(Tensor("x", (batch, n_in), "int8", None, QuantParams(0.05, -3)))
    wf = rng.integers(-127, 128, (filters, n_in)).astype(np.int8)
    g.add_tensor(Tensor("wf", wf.shape, "int8", wf, QuantParams(0.01, 0)))
    lim = 32767 if sdt == "int16" else 127
    wt = rng.integers(-lim, lim + 1, (filters, memory)).astype(sdt)
    g.add_tensor(Tensor("wt", wt.shape, sdt, wt, QuantParams(0.02 if sdt == "int8" else 2e-4, 0)))
    state_q = QuantParams(0.004 if sdt == "int16" else 0.3, 0 if sdt == "int16" else 4)
    g.add_tensor(Tensor("state", (batch, filters * memory), sdt, None, state_q, variable=True))
    ins = ["x", "wf", "wt", "", "state"]
    if bias:
        b = rng.integers(-2000, 2000, units).astype(np.int32)
        g.add_tensor(
            Tensor(
                "b",
                (units,),
                "int32",
                b,
                QuantParams(float(np.float32(state_q.s) * np.float32(g.tensors["wt"].quant.s)), 0),
            )
        )
        ins[3] = "b"
    g.add_tensor(Tensor("y", (batch, units), "int8", None, QuantParams(0.1, 2)))
    g.nodes.append(Node("SVDF", "svdf", ins, ["y"], {"rank": rank}))
    g.inputs, g.outputs = ["x"], ["y"]
    verify(g)
    return g


@pytest.mark.parametrize("case", CASES, ids=[f"{c[5]}-rank{c[4]}-b{c[0]}" for c in CASES])
def test_svdf_matches_tflm_with_its_state(case) -> None:
    g = svdf_graph(*case)
    it = tflm.Interpreter.from_bytes(write_tflite(g), arena_size=1 << 20)
    state = interpreter.State(g)
    for s in range(6):
        xs = random_inputs(g, s)
        it.set_input(xs[0], 0)
        it.invoke()
        got = interpreter.run(g, xs, state=state)["y"]
        np.testing.assert_array_equal(got, it.get_output(0), err_msg=f"invocation {s}")


@pytest.mark.parametrize("target", ["dsp", "mve", "plain"])
def test_svdf_c_on_host(target: str, tmp_path: Path) -> None:
    for k, case in enumerate(CASES):
        g = svdf_graph(*case)
        gen = generate_model(g, g.name, target)
        exe = build_host(gen, tmp_path / str(k))
        for s in range(3):  # each host run starts from a reset state
            xs = random_inputs(g, s)
            np.testing.assert_array_equal(run_host(exe, gen, xs)[0], interpreter.run(g, xs)["y"])


@needs_arm
@pytest.mark.qemu
@pytest.mark.parametrize("board", ["nucleo-f746", "corstone-300"])
def test_svdf_in_qemu_over_a_stream(board: str, tmp_path: Path) -> None:
    """Several invocations in one firmware run: the state carried by the firmware."""
    from tinyc.compiler import CompileOptions, compile_model
    from tinyc.emulate import run_emulated
    from tinyc.runner import EmulatedProject

    g = svdf_graph(*CASES[0])
    compile_model(g, CompileOptions(board=board), tmp_path / "p", log=lambda m: None)
    ep = EmulatedProject.build(tmp_path / "p")
    steps = [random_inputs(g, s) for s in range(5)]
    res = run_emulated(ep.elf, ep.board, steps[0], more_steps=steps[1:])
    state = interpreter.State(g)
    want = b"".join(interpreter.run(g, xs, state=state)["y"].tobytes() for xs in steps)
    assert res.outputs[0] == want

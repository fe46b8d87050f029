"""Checks shared by the op tests: an op's float semantics against onnxruntime, its int8
semantics against TFLite Micro, and its C kernel against the interpreter (test utility)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from c_host import build_host, run_host
from test_onnx_frontend import _assert_close, _ours, _session

from tinyc import interpreter
from tinyc.backends.cmsis.codegen import generate_model
from tinyc.frontend.onnx import load_onnx
from tinyc.ir.graph import Graph
from tinyc.modelio import random_inputs, to_external


def ort_feeds(model: bytes, seed: int, positive: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Seeded N(0, 1) inputs (|x| + 0.5 for the inputs named in ``positive``)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for i in _session(model).get_inputs():
        x = rng.standard_normal(i.shape).astype(np.float32)
        feeds[i.name] = np.abs(x) + np.float32(0.5) if i.name in positive else x
    return feeds


def float_vs_ort(
    model: bytes, seeds=range(3), positive: tuple[str, ...] = (), rtol: float = 1e-5
) -> Graph:
    """tinyc's float interpreter against onnxruntime; returns tinyc's graph."""
    g = load_onnx(model)
    sess = _session(model)
    names = [o.name for o in sess.get_outputs()]
    for seed in seeds:
        feeds = ort_feeds(model, seed, positive)
        ours = _ours(g, feeds)
        for n, ref in zip(names, sess.run(None, feeds), strict=True):
            _assert_close(ours[n], ref, rtol)
    return g


def int8_vs_tflm(g: Graph, inputs: list[list[np.ndarray]] | None = None, seeds=range(5)) -> None:
    """TFLM (PyPI tflite-micro) on ``g`` written as .tflite == tinyc's int8 interpreter,
    bit for bit, on every output."""
    from tinyc.backends.tflm import host
    from tinyc.backends.tflm.writer import build_model

    data = build_model(g).data
    cases = inputs if inputs is not None else [random_inputs(g, s) for s in seeds]
    for k, xs in enumerate(cases):
        ref = interpreter.run(g, xs)
        ext = [to_external(g, n, x) for n, x in zip(g.inputs, xs, strict=True)]
        outs = host.run(data, ext)
        for name, y in zip(g.outputs, outs, strict=True):
            want = to_external(g, name, ref[name])
            assert y.dtype == want.dtype and y.shape == want.shape, name
            diff = np.flatnonzero(y != want)
            assert diff.size == 0, (
                f"case {k} {name}: {diff.size}/{y.size} differ, first at {diff[0]}: "
                f"TFLM {y.flat[diff[0]]} vs tinyc {want.flat[diff[0]]}"
            )


def c_vs_interpreter(
    g: Graph,
    workdir: Path,
    inputs: list[list[np.ndarray]] | None = None,
    seeds=range(4),
    target: str = "dsp",
) -> None:
    """The generated C (host gcc, ASan/UBSan, -Werror) == the interpreter, bit for bit."""
    gen = generate_model(g, g.name, target)
    exe = build_host(gen, workdir)
    cases = inputs if inputs is not None else [random_inputs(gen.graph, s) for s in seeds]
    for k, xs in enumerate(cases):
        ref = interpreter.run(gen.graph, xs)
        for name, got in zip(gen.graph.outputs, run_host(exe, gen, xs), strict=True):
            np.testing.assert_array_equal(got, ref[name].reshape(got.shape), f"case {k} {name}")

"""The TFLM backend: arena sizing against TFLM itself, the generated C++ project, and (when
TFLM_DIR is set) the project built against real TFLM + CMSIS-NN and run under QEMU.

Builds against real TFLM need a tflite-micro checkout in TFLM_DIR and its third-party code
(CMSIS-NN, flatbuffers, gemmlowp, ruy) either in TFLM_DIR's make/downloads or in
CMSIS_NN_DIR / FLATBUFFERS_DIR / GEMMLOWP_DIR / RUY_DIR; the TFLM library is built once per
core into ~/.cache/tinyc-tests (about ten minutes on two cores), or taken from
TINYC_TFLM_LIB_<CORE> (e.g. TINYC_TFLM_LIB_CORTEX_M4=/path/libtflm.a built by cmake/tflm.cmake).
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import graphs
import numpy as np
import pytest
from conftest import FAST_INT8, INT8_TFLITE, model_path
from tflm_build import tflm_library, third_party_vars

from tinyc.backends.tflm import host
from tinyc.backends.tflm.arena import (
    MARGIN,
    _conv_scratch,
    _depthwise_scratch,
    buffer_lifetimes,
    estimate_arena,
    kernel_memory,
    plan_head,
)
from tinyc.backends.tflm.cpp import RESOLVER, model_facts, resolver_calls
from tinyc.backends.tflm.view import ModelView
from tinyc.backends.tflm.writer import write_tflite
from tinyc.compiler import CompileOptions, compile_model
from tinyc.errors import TinycError, UnsupportedError
from tinyc.frontend.tflite import load_tflite

pytest.importorskip("tflite_micro")

#: the int8 models of these tests: the shared set and TFLM's LSTM example (variable tensors,
#: UNIDIRECTIONAL_SEQUENCE_LSTM's scratch buffers and CMSIS-NN's kernel sums)
MODELS = {**INT8_TFLITE, "trained_lstm_int8": "tflm_mnist_lstm/trained_lstm_int8.tflite"}
FAST = [*FAST_INT8, "trained_lstm_int8"]


def _written(model: str) -> bytes:
    return write_tflite(load_tflite(model_path(MODELS[model])))


# -- arena: TFLM's planner, ported ------------------------------------------------------------


@pytest.mark.parametrize("model", list(MODELS))
def test_planner_port_reproduces_the_host_tflm_head(model):
    """TFLM's greedy planner, fed the reference kernels' buffers, lays the tensors out
    exactly as the host TFLM did (its non-persistent 'head')."""
    data = _written(model)
    view = ModelView.read(data)
    head = plan_head(buffer_lifetimes(view, kernel_memory(view, "reference").scratch))
    assert (head + 15) // 16 * 16 == host.allocations(data).head


@pytest.mark.parametrize("model", FAST)
def test_arena_estimate_is_built_from_the_host_measurement(model):
    data = _written(model)
    alloc = host.allocations(data)
    for core in ("none", "dsp", "mve"):
        e = estimate_arena(data, core)
        assert e.host_total == alloc.total and e.host_head == alloc.head
        assert e.host_need >= alloc.total - 16  # TFLM accepted no smaller arena
        with pytest.raises(TinycError):
            host.interpreter(data, arena_size=e.host_need - 1)
        assert e.need_bytes == max(e.head + e.tail + 4, e.planning_peak)
        assert e.arena_bytes % 16 == 0 and e.arena_bytes >= e.need_bytes + MARGIN
        # 32-bit pointers only shrink TFLM's persistent data; MVE adds FC kernel sums
        extra = kernel_memory(ModelView.read(data), "cmsis-nn", core).persistent
        assert e.tail - extra < alloc.tail


def test_host_minimum_arena_is_the_smallest_that_works():
    data = _written("hello_world_int8")
    need = host.minimum_arena(data)
    host.interpreter(data, arena_size=need)
    with pytest.raises(TinycError, match="refused"):
        host.interpreter(data, arena_size=need - 1)


def _cmsis_nn_dir() -> Path | None:
    if os.environ.get("CMSIS_NN_DIR"):
        return Path(os.environ["CMSIS_NN_DIR"])
    tflm = os.environ.get("TFLM_DIR")
    if tflm:
        p = Path(tflm) / "tensorflow/lite/micro/tools/make/downloads/cmsis_nn"
        if p.is_dir():
            return p
    return None


@pytest.fixture(scope="module")
def cmsis_nn_sizes(tmp_path_factory):
    """CMSIS-NN's own buffer-size functions, compiled for this host (ctypes)."""
    root = _cmsis_nn_dir()
    if root is None or shutil.which("gcc") is None:
        pytest.skip("CMSIS_NN_DIR (or TFLM_DIR with make/downloads/cmsis_nn) not set: skipping")
    src = [
        root / "Source/ConvolutionFunctions/arm_convolve_get_buffer_sizes_s8.c",
        root / "Source/ConvolutionFunctions/arm_depthwise_conv_get_buffer_sizes_s8.c",
    ]
    lib = tmp_path_factory.mktemp("cmsis") / "libsizes.so"
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O1", f"-I{root}/Include", *map(str, src), "-o", str(lib)],
        check=True,
    )
    return ctypes.CDLL(str(lib))


class _Tile(ctypes.Structure):
    _fields_ = [("w", ctypes.c_int32), ("h", ctypes.c_int32)]


class _Act(ctypes.Structure):
    _fields_ = [("min", ctypes.c_int32), ("max", ctypes.c_int32)]


class _Dims(ctypes.Structure):
    _fields_ = [(k, ctypes.c_int32) for k in ("n", "h", "w", "c")]


class _ConvParams(ctypes.Structure):
    _fields_ = [
        ("input_offset", ctypes.c_int32),
        ("output_offset", ctypes.c_int32),
        ("stride", _Tile),
        ("padding", _Tile),
        ("dilation", _Tile),
        ("activation", _Act),
    ]


class _DwParams(ctypes.Structure):
    _fields_ = [
        ("input_offset", ctypes.c_int32),
        ("output_offset", ctypes.c_int32),
        ("ch_mult", ctypes.c_int32),
        ("stride", _Tile),
        ("padding", _Tile),
        ("dilation", _Tile),
        ("activation", _Act),
    ]


def test_scratch_sizes_match_cmsis_nn(cmsis_nn_sizes):
    """tinyc's model of CMSIS-NN's scratch buffers against CMSIS-NN's C functions, for the
    DSP and MVE variants (and the plain one this host compiles), on random geometries."""
    lib = cmsis_nn_sizes
    rng = np.random.default_rng(0)
    variants = {
        "dsp": "_dsp",
        "mve": "_mve",
        "none": "",
    }
    for _ in range(300):
        ih, iw = int(rng.integers(1, 20)), int(rng.integers(1, 20))
        ic = int(rng.choice([1, 2, 3, 4, 8, 16, 33]))
        fh, fw = int(rng.choice([1, 3, 5])), int(rng.choice([1, 3, 5]))
        if ih == 1:
            fh = 1
        s = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        d = (1, 1) if rng.random() < 0.8 else (2, 2)
        pad = (int(rng.integers(0, 2)), int(rng.integers(0, 2)))
        oh = max(1, (ih + 2 * pad[0] - ((fh - 1) * d[0] + 1)) // s[0] + 1)
        ow = max(1, (iw + 2 * pad[1] - ((fw - 1) * d[1] + 1)) // s[1] + 1)
        oc = int(rng.choice([1, 4, 8, 12]))
        cp = _ConvParams(0, 0, _Tile(s[1], s[0]), _Tile(pad[1], pad[0]), _Tile(d[1], d[0]))
        ind, fd, od = _Dims(1, ih, iw, ic), _Dims(1, fh, fw, ic), _Dims(1, oh, ow, oc)
        for core, suffix in variants.items():
            fn = getattr(lib, f"arm_convolve_wrapper_s8_get_buffer_size{suffix}")
            want = fn(ctypes.byref(cp), ctypes.byref(ind), ctypes.byref(fd), ctypes.byref(od))
            got = _conv_scratch(core, (ih, iw, ic), (fh, fw, ic), s, d, pad)
            assert got == want, (core, ih, iw, ic, fh, fw, s, d, pad)
        dp = _DwParams(0, 0, 1, _Tile(s[1], s[0]), _Tile(pad[1], pad[0]), _Tile(d[1], d[0]))
        dw_out = ic if rng.random() < 0.7 else ic * 2
        fdw, odw = _Dims(1, fh, fw, dw_out), _Dims(1, oh, ow, dw_out)
        for core, suffix in variants.items():
            if core == "mve" and ic == 1 and dw_out > 1:
                continue  # the wrapper and its _mve variant differ there by design
            fn = getattr(lib, f"arm_depthwise_conv_wrapper_s8_get_buffer_size{suffix}")
            want = fn(ctypes.byref(dp), ctypes.byref(ind), ctypes.byref(fdw), ctypes.byref(odw))
            got = _depthwise_scratch(core, (ih, iw, ic), (fh, fw), dw_out, d, pad, s)
            assert got == want, ("dw", core, ih, iw, ic, fh, fw, s, d, pad, dw_out)


# -- the generated project --------------------------------------------------------------------


def _hex_bytes(text: str) -> bytes:
    return bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", text))


def test_project_holds_the_model_resolver_and_arena(tmp_path):
    path = model_path(INT8_TFLITE["kws_ref_model"])
    out = tmp_path / "p"
    report = compile_model(str(path), CompileOptions(board="mps2-an386", backend="tflm"), out)
    data = write_tflite(load_tflite(path))
    assert (out / "model" / "model.tflite").read_bytes() == data
    data_cc = (out / "model" / "model_data.cc").read_text()
    assert "alignas(16) const uint8_t tinyc_model_tflite" in data_cc
    assert _hex_bytes(data_cc.split("{", 1)[1]) == data
    model_cc = (out / "model" / "model.cc").read_text()
    calls = re.findall(r"resolver\.(Add\w+)\(", model_cc)
    assert sorted(calls) == sorted(RESOLVER[k].method for k in
                                   ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D",
                                    "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"))  # fmt: skip
    assert "Register_CONV_2D_INT8()" in model_cc  # int8-only kernels: less code
    est = estimate_arena(data, "dsp")
    header = (out / "model" / "model.h").read_text()
    assert f"#define TINYC_ARENA_BYTES {est.arena_bytes}" in header
    assert report.arena_bytes == est.arena_bytes
    manifest = json.loads((out / "tinyc.json").read_text())
    assert manifest["backend"] == "tflm" and manifest["arena"]["need_bytes"] == est.need_bytes
    for f in (
        "CMakeLists.txt",
        "Makefile",
        "cmake/tflm.cmake",
        "cmake/arm-none-eabi.cmake",
        "board/emu/linker.ld",
        "board/hw/startup.c",
        "app/main.c",
        "runtime/tinyc_api.h",
    ):
        assert (out / f).is_file(), f  # fmt: skip
    cmake = (out / "cmake" / "tflm.cmake").read_text()
    assert "90b983c2b3f1480642e040bbd2ddb37b998f3424" in cmake
    assert "kernels/cmsis_nn" in cmake


def test_resolver_has_exactly_the_operators_used():
    data = _written("rnnoise_INT8")
    ops = model_facts(data).ops
    calls = resolver_calls(ops)
    assert len(calls) == len({u.name for u in ops}) == 13
    assert {c.split("(")[0] for c in calls} == {RESOLVER[u.name].method for u in ops}


def test_operator_without_resolver_entry_is_refused():
    from tinyc.backends.tflm.cpp import OpUse

    with pytest.raises(UnsupportedError, match="no resolver entry for CUSTOM:foo"):
        resolver_calls((OpUse("CUSTOM:foo", False),))


# -- against real TFLM (TFLM_DIR) ------------------------------------------------------------------


@pytest.fixture(scope="module")
def tflm_env():
    if not os.environ.get("TFLM_DIR"):
        pytest.skip("TFLM_DIR not set: skipping the builds against real TFLM")
    for tool in ("cmake", "arm-none-eabi-g++", "qemu-system-arm"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not found: skipping the builds against real TFLM")
    third = third_party_vars(os.environ["TFLM_DIR"])
    if third is None:
        pytest.skip(
            "TFLM's third-party code not found (set CMSIS_NN_DIR, FLATBUFFERS_DIR, GEMMLOWP_DIR, "
            "RUY_DIR, or run TFLM's make once): skipping the builds against real TFLM"
        )
    return {"TFLM_DIR": os.environ["TFLM_DIR"], **third}


def _build(project: Path, board: str, env: dict[str, str], build_dir: Path, **extra: str):
    from tinyc.boards import load_board
    from tinyc.emulate.build import build_firmware

    make_vars = {**env, "TFLM_LIB": tflm_library(project, load_board(board), env), **extra}
    return build_firmware(project, "emu", build_dir=build_dir, make_vars=make_vars)


BOARDS = ["mps2-an386", "mps3-an547"]  # Cortex-M4 (DSP) and Cortex-M55 (MVE)


@pytest.mark.parametrize("board", BOARDS)
@pytest.mark.parametrize("model", FAST)
def test_tflm_project_runs_bit_exact_and_its_arena_is_tight(model, board, tflm_env, tmp_path):
    """The generated project, built against TFLM + CMSIS-NN, runs in QEMU bit-exact with
    tinyc's interpreter (= TFLM's reference kernels); its arena is at least TFLM's need
    (the firmware allocates) and at most 1.1x it (the arena / 1.1 does not allocate)."""
    from tinyc.boards import load_board
    from tinyc.emulate.qemu import run_emulated
    from tinyc.interpreter import run as run_reference
    from tinyc.modelio import random_inputs, to_external

    g = load_tflite(model_path(MODELS[model]))
    out = tmp_path / "p"
    report = compile_model(g, CompileOptions(board=board, backend="tflm"), out)
    elf = _build(out, board, tflm_env, tmp_path / "b1")
    for seed in range(2):
        xs = random_inputs(g, seed)
        ref = run_reference(g, xs)
        ext = [to_external(g, n, x) for n, x in zip(g.inputs, xs, strict=True)]
        res = run_emulated(elf, load_board(board), ext, count_instructions=False)
        for name, raw in zip(g.outputs, res.outputs, strict=True):
            want = to_external(g, name, ref[name])
            got = np.frombuffer(raw, dtype=want.dtype).reshape(want.shape)
            np.testing.assert_array_equal(got, want, err_msg=f"{model} on {board}: {name}")
    smaller = int(report.arena_bytes / 1.1)
    elf_small = _build(out, board, tflm_env, tmp_path / "b2", TINYC_ARENA_BYTES=str(smaller))
    with pytest.raises(TinycError, match="could not allocate"):
        run_emulated(elf_small, load_board(board), ext, count_instructions=False)


@pytest.mark.parametrize("board", BOARDS[:1])
def test_tflm_project_with_a_transpose_builds_and_runs(board, tflm_env, tmp_path):
    """Kernel headers that are not self-contained (TFLM's transpose.h) still compile: the
    project includes them after the interpreter's."""
    from tinyc.boards import load_board
    from tinyc.emulate.qemu import run_emulated
    from tinyc.interpreter import run as run_reference
    from tinyc.modelio import random_inputs, to_external

    g = graphs.data_movement(38, "TRANSPOSE", [(2, 3, 4)], perm=(2, 0, 1))
    compile_model(g, CompileOptions(board=board, backend="tflm"), tmp_path / "p")
    elf = _build(tmp_path / "p", board, tflm_env, tmp_path / "b")
    xs = random_inputs(g, 0)
    want = to_external(g, g.outputs[0], run_reference(g, xs)[g.outputs[0]])
    ext = [to_external(g, n, x) for n, x in zip(g.inputs, xs, strict=True)]
    res = run_emulated(elf, load_board(board), ext, count_instructions=False)
    got = np.frombuffer(res.outputs[0], dtype=want.dtype).reshape(want.shape)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("board", BOARDS)
def test_tflm_projects_with_recurrent_layers(board, tflm_env, tmp_path):
    """IR-built recurrent layers on real TFLM + CMSIS-NN, three invocations per firmware run
    (the harness's steps; state carries over as on a device):

    * a streaming int8 LSTM: CMSIS-NN's kernel starts every invocation from a zero state
      (TFLM's glue passes it no state), so every step equals a fresh run, and compile says so;
    * a float streaming LSTM (TFLM's reference float path): the state carries over;
    * a reverse int8 LSTM, time-major, with its final hidden state as an output;
    * an unrolled streaming int8 GRU: equals the unrolled graph the project stores, its state
      written back into TFLM's variable tensor."""
    from test_tflm_recurrent import recurrent_graph

    from tinyc.backends.tflm.project import compile_tflm_project
    from tinyc.boards import load_board
    from tinyc.emulate.qemu import run_emulated
    from tinyc.interpreter import State
    from tinyc.interpreter import run as run_reference
    from tinyc.modelio import random_inputs, to_external
    from tinyc.project import load_project_graph

    cases = {
        "lstm_int8_stream": recurrent_graph("LSTM", seed=11, quant=True, state="stream", h_zp=5,
                                            batch=2, time=6, hidden=8),
        "lstm_float_stream": recurrent_graph("LSTM", seed=12, state="stream", batch=2),
        "lstm_int8_reverse": recurrent_graph("LSTM", seed=13, quant=True, reverse=True,
                                             final=True, final_cell=False, time_major=True,
                                             batch=2),
        "gru_int8_stream": recurrent_graph("GRU", seed=14, quant=True, state="stream",
                                           final=True, realistic=True, time=4),
    }  # fmt: skip
    for name, g in cases.items():
        out = tmp_path / name
        opts = CompileOptions(board=board, backend="tflm")
        if g.is_quantized:
            report = compile_model(g, opts, out)
        else:  # compile_model quantizes float graphs; the TFLM project itself takes them
            report = compile_tflm_project(g, load_board(board), out, opts)
        stored = load_project_graph(out)  # the unrolled graph for the GRU
        elf = _build(out, board, tflm_env, tmp_path / f"b_{name}")
        steps = [random_inputs(g, k) for k in range(3)]
        ext = [[to_external(g, n, x) for n, x in zip(g.inputs, xs, strict=True)] for xs in steps]
        res = run_emulated(elf, load_board(board), ext[0], more_steps=ext[1:],
                           count_instructions=False)  # fmt: skip
        fresh_every_step = name == "lstm_int8_stream"
        if fresh_every_step:
            assert any("starts every invocation from a zero state" in n for n in report.notes)
        state = State(stored)
        for k, xs in enumerate(steps):
            ref = run_reference(stored, xs, state=None if fresh_every_step else state)
            if name == "gru_int8_stream":  # the unrolled graph writes its state back by copy
                state.values["h0"][...] = ref["h_final"]
            for i, n in enumerate(g.outputs):
                want = to_external(g, n, ref[n])
                raw = res.outputs[i][k * want.nbytes : (k + 1) * want.nbytes]
                got = np.frombuffer(raw, want.dtype).reshape(want.shape)
                where = f"{name} on {board}, output {n}, step {k}"
                if want.dtype == np.float32:
                    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=where)
                else:
                    np.testing.assert_array_equal(got, want, err_msg=where)

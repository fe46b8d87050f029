"""``--kernels cmsis-nn``: the C backend calling CMSIS-NN's s8 kernels, bit for bit against the
reference interpreter (CMSIS-NN's s8 kernels match TFLM's reference kernels, as the
interpreter does).

The generated project is checked without building (always). Builds against real CMSIS-NN
need a CMSIS-NN source tree in CMSIS_NN_DIR and are skipped without one: its buffer-size
functions against tinyc's model of them, every op configuration of tests/graphs.py (and the
padding cases below) and every fast int8 model of the shared set on the host and in QEMU on
Cortex-M4, M7 and M55, the run-time checks, and the CMake build with its fetch fallback.
CMSIS-NN is compiled once per build kind and core by a project's own Makefile, then linked
into the other projects (CMSIS_NN_LIB_<build>).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import graphs
import numpy as np
import pytest
from conftest import FAST_INT8, INT8_TFLITE, model_path, reference_cases

from tinyc import interpreter
from tinyc.backends import cmsis_nn as nn
from tinyc.backends.cmsis.codegen import generate_model
from tinyc.backends.cmsis.emit.cmsisnn import conv_geometry, runs_on_cmsis_nn
from tinyc.compiler import CompileOptions, compile_model
from tinyc.emulate import build_firmware, run_host
from tinyc.errors import TinycError
from tinyc.frontend.tflite import load_tflite
from tinyc.ir.graph import Graph
from tinyc.modelio import random_inputs, to_external
from tinyc.project import load_project_graph
from tinyc.runner import EmulatedProject

CMSIS_NN_DIR = os.environ.get("CMSIS_NN_DIR", "")
SKIP_REASON = "CMSIS_NN_DIR not set: skipping builds against real CMSIS-NN"
needs_cmsis_nn = pytest.mark.skipif(not CMSIS_NN_DIR, reason=SKIP_REASON)
HAVE_ARM = bool(shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm"))
needs_arm = pytest.mark.skipif(
    not HAVE_ARM, reason="arm-none-eabi-gcc and qemu-system-arm are not installed"
)
BOARDS = {"M4": "nucleo-l4r5zi", "M7": "nucleo-f746", "M55": "corstone-300"}
#: host builds run CMSIS-NN's plain C; the M55 board plans for MVE and for that
HOST_BOARD = "corstone-300"
DW = "DEPTHWISE_CONV_2D"


def _padding_cases() -> list[tuple[Graph, str]]:
    """Layers where a CMSIS-NN fast path would not fit the padding (ONNX-style explicit pads,
    or TFLite's VALID where the MVE 1xN kernel pads the last window), with the function tinyc
    calls instead (the same on every core); and the fast paths they would take otherwise."""
    wrapper, direct = "arm_convolve_wrapper_s8", "arm_convolve_s8"
    conv, fc = graphs.conv, graphs.fully_connected
    return [
        # 1x1 with bottom/right padding: the 1x1 kernels assume none
        (conv(101, 5, 5, 8, 6, (1, 1), (1, 1), (1, 1), (0, 1, 0, 1)), direct),
        (conv(102, 4, 6, 8, 6, (1, 1), (2, 2), (1, 1), (0, 1, 0, 1)), direct),
        (conv(103, 7, 7, 8, 6, (1, 1), (2, 2), (1, 1), (0, 0, 0, 0), "RELU"), wrapper),
        # 1xN (one input row): VALID with an unused last column, SAME, SAME asymmetric, other
        (conv(104, 1, 8, 4, 5, (1, 3), (1, 2), (1, 1), (0, 0, 0, 0)), direct),
        (conv(105, 1, 9, 4, 6, (1, 3), (1, 1), (1, 1), (0, 0, 1, 1)), wrapper),
        (conv(106, 1, 8, 8, 3, (1, 4), (1, 1), (1, 1), (0, 0, 1, 2), "RELU6"), wrapper),
        (conv(107, 1, 8, 4, 5, (1, 3), (1, 1), (1, 1), (0, 0, 2, 0)), direct),
        # depthwise 3x3 reaching two columns of right padding; and within one
        (conv(108, 5, 5, 8, 0, (3, 3), (1, 1), (1, 1), (1, 1, 1, 2), op=DW),
         "arm_depthwise_conv_s8_opt"),
        (conv(109, 6, 6, 8, 0, (3, 3), (2, 2), (1, 1), (0, 1, 0, 1), "RELU", op=DW),
         "arm_depthwise_conv_wrapper_s8"),
        # one input channel: MVE runs it as a convolution (unless that one would not fit)
        (conv(110, 6, 6, 1, 0, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), op=DW, mult=8),
         "arm_depthwise_conv_wrapper_s8"),
        (conv(111, 5, 5, 1, 0, (1, 1), (1, 1), (1, 1), (0, 1, 0, 1), op=DW, mult=4),
         "arm_depthwise_conv_s8"),
        # same-shape MUL, FC over several rows with per-tensor and per-channel weights
        (graphs.binary(112, "MUL", (1, 4, 5, 6), (1, 4, 5, 6), "RELU"), "arm_elementwise_mul_s8"),
        (fc(113, 3, 40, 9, "RELU6", per_channel=False), "arm_fully_connected_s8"),
        (fc(114, 2, 33, 17), "arm_fully_connected_per_channel_s8"),
    ]  # fmt: skip


PADDING_CASES = _padding_cases()
CASES = graphs.all_cases() + [g for g, _ in PADDING_CASES]


def _compile(model: str | Graph, board: str, out: Path):
    opts = CompileOptions(board=board, kernels="cmsis-nn")
    return compile_model(model, opts, out, log=lambda m: None)


# -- the generated project (no CMSIS-NN needed) --------------------------------------------


def test_project_calls_cmsis_nn_and_can_fetch_it(tmp_path: Path) -> None:
    out = tmp_path / "p"
    report = _compile(str(model_path(INT8_TFLITE["kws_ref_model"])), "nucleo-l4r5zi", out)
    src = (out / "model/model.c").read_text()
    assert '#include "arm_nnfunctions.h"' in src
    for fn in ("arm_convolve_wrapper_s8", "arm_depthwise_conv_wrapper_s8", "arm_avgpool_s8",
               "arm_softmax_s8"):  # fmt: skip
        assert f"{fn}(" in src, fn
    assert "arm_fully_connected_s8(" in src or "arm_fully_connected_per_channel_s8(" in src
    # every call's status is checked, and CMSIS-NN's own buffer size against the plan
    assert src.count("TINYC_NN_CHECK(") > 10
    assert "arm_convolve_wrapper_s8_get_buffer_size(" in src
    assert "arm_avgpool_s8_get_buffer_size(" in src
    assert any("CMSIS-NN" in n and "12 of 13" in n for n in report.notes), report.notes
    manifest = (out / "tinyc.json").read_text()
    assert '"kernels": "cmsis-nn"' in manifest and nn.COMMIT in manifest
    # the builds: the Makefile takes CMSIS_NN_DIR, CMake also fetches the pinned release
    mk, cm = (out / "lib/cmsis_nn.mk").read_text(), (out / "lib/cmsis_nn.cmake").read_text()
    assert "CMSIS_NN_DIR" in mk and nn.COMMIT[:12] in mk
    assert "-include $(sort $(wildcard lib/*.mk))" in (out / "Makefile").read_text()
    assert "lib/*.cmake" in (out / "CMakeLists.txt").read_text()
    assert "FetchContent_Declare(" in cm and f"URL {nn.URL}" in cm
    assert f"URL_HASH MD5={nn.URL_MD5}" in cm and nn.COMMIT in cm
    assert "$ENV{CMSIS_NN_DIR}" in cm
    # the users' CI workflow downloads the pinned archive, checks it and sets CMSIS_NN_DIR
    wf = (out / ".github/workflows/tinyc-firmware.yml").read_text()
    assert nn.URL in wf and f"{nn.URL_MD5}  " in wf and "md5sum -c" in wf
    assert 'echo "CMSIS_NN_DIR=' in wf and "$GITHUB_ENV" in wf


def test_scratch_planned_from_cmsis_nn_sizes() -> None:
    """Each CMSIS-NN convolution gets the scratch CMSIS-NN asks for on the board's core and
    in the host's plain C (the larger), and the C checks CMSIS-NN's own size against it."""
    g = load_tflite(model_path(INT8_TFLITE["kws_ref_model"]))
    for target in ("dsp", "mve"):
        gen = generate_model(g, g.name, target, "cmsis-nn")
        src = gen.files["model/model.c"]
        checked = re.findall(r"TINYC_NN_SCRATCH\(.*?arm_convolve_wrapper_s8_get_buffer_size"
                             r"\(.*?\), (\d+)\);", src)  # fmt: skip
        want, planned = [], []
        for i, node in enumerate(gen.graph.nodes):
            if node.op == "CONV_2D":
                p, inp, f, out = conv_geometry(node, gen.graph)
                want.append(
                    max(nn.convolve_wrapper_s8(v, p, inp, f, out) for v in (target, "plain"))
                )
                planned.append(gen.plan.scratch[i][1] if i in gen.plan.scratch else 0)
        assert [int(n) for n in checked] == want == planned
        assert want[0] == (4 * 48 if target == "mve" else 160)  # 10x4 kernel, one channel
        assert want[1:] == [0] * (len(want) - 1)  # 1x1: none


def test_host_build_plain_scratch_is_planned_on_mve() -> None:
    """A 1xN convolution needs less scratch in CMSIS-NN's MVE kernel than in its plain C one:
    the plan holds the plain size, which the host build of the same code needs."""
    g, _ = PADDING_CASES[4]
    p, inp, f, out = conv_geometry(g.nodes[0], g)
    mve, plain = (nn.convolve_wrapper_s8(v, p, inp, f, out) for v in ("mve", "plain"))
    assert mve < plain
    gen = generate_model(g, g.name, "mve", "cmsis-nn")
    assert [s for _, s in gen.plan.scratch.values()] == [plain]


@pytest.mark.parametrize("target", ["plain", "dsp", "mve"])
def test_kernel_choice_follows_the_padding(target: str) -> None:
    for g, fn in PADDING_CASES:
        src = generate_model(g, g.name, target, "cmsis-nn").files["model/model.c"]
        called = {f for f in re.findall(r"\b(arm_\w+)\(", src) if "buffer_size" not in f}
        assert called == {fn}, (g.name, called)
        assert runs_on_cmsis_nn(g.nodes[0], g)


def test_layers_cmsis_nn_lacks_run_tinyc_kernels() -> None:
    by_name = {g.name: g for g in graphs.all_cases()}
    # broadcasting SUB and MUL, and ops CMSIS-NN has no s8 kernel for
    for name in ("sub_19", "mul_20", "logistic_23", "mean_29", "transpose_38"):
        g = by_name[name]
        assert not runs_on_cmsis_nn(g.nodes[0], g), name
        src = generate_model(g, g.name, "dsp", "cmsis-nn").files["model/model.c"]
        assert "arm_nnfunctions.h" not in src and "tinyc_" in src, name
    # while the same-shape ADD is CMSIS-NN's
    g = by_name["add_18"]
    assert runs_on_cmsis_nn(g.nodes[0], g)
    assert (
        "arm_elementwise_add_s8("
        in generate_model(g, g.name, "dsp", "cmsis-nn").files["model/model.c"]
    )


def test_default_kernels_need_no_cmsis_nn(tmp_path: Path) -> None:
    out = tmp_path / "p"
    g = graphs.all_cases()[0]
    compile_model(g, CompileOptions(board="nucleo-l4r5zi"), out, log=lambda m: None)
    assert "arm_" not in (out / "model/model.c").read_text()
    assert not (out / "lib").exists()


def test_makefile_says_how_to_set_cmsis_nn_dir(tmp_path: Path) -> None:
    if shutil.which("make") is None:
        pytest.skip("make not installed")
    out = tmp_path / "p"
    _compile(graphs.all_cases()[0], "nucleo-f746", out)
    env = {k: v for k, v in os.environ.items() if k != "CMSIS_NN_DIR"}
    r = subprocess.run(["make", "-n", "host"], cwd=out, env=env, capture_output=True, text=True)
    assert r.returncode != 0
    assert "CMSIS_NN_DIR is not set" in r.stderr and "make CMSIS_NN_DIR=" in r.stderr
    assert "CMake" in r.stderr
    r = subprocess.run(["make", "clean"], cwd=out, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


# -- against real CMSIS-NN -----------------------------------------------------------------


class _Libraries:
    """libcmsis-nn.a per build kind and core, each built once by a project's Makefile."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.built: dict[str, Path] = {}

    def get(self, board: str, target: str) -> Path:
        key = "host" if target == "host" else board
        if key not in self.built:
            project = self.root / key
            _compile(graphs.fully_connected(1, 1, 8, 4), board, project)
            build_firmware(project, target)
            self.built[key] = project / "build" / target / "libcmsis-nn.a"
            assert self.built[key].is_file()
        return self.built[key]

    def use(self, monkeypatch: pytest.MonkeyPatch, board: str, target: str) -> None:
        monkeypatch.setenv(f"CMSIS_NN_LIB_{target}", str(self.get(board, target)))


@pytest.fixture(scope="session")
def libraries(tmp_path_factory: pytest.TempPathFactory) -> _Libraries:
    if not CMSIS_NN_DIR:
        pytest.skip(SKIP_REASON)
    return _Libraries(tmp_path_factory.mktemp("cmsis-nn-libs"))


def _host_build(model, tmp: Path, libraries: _Libraries, monkeypatch) -> tuple[Path, Graph]:
    project = tmp / "project"
    _compile(model, HOST_BOARD, project)
    libraries.use(monkeypatch, HOST_BOARD, "host")
    return build_firmware(project, "host"), load_project_graph(project)


def _host_case(exe: Path, g: Graph, inputs: list[np.ndarray]) -> None:
    res = run_host(exe, [to_external(g, n, x) for n, x in zip(g.inputs, inputs, strict=True)])
    ref = interpreter.run(g, inputs)
    for name, raw in zip(g.outputs, res.outputs, strict=True):
        want = to_external(g, name, ref[name])
        got = np.frombuffer(raw, dtype=want.dtype).reshape(want.shape)
        np.testing.assert_array_equal(got, want, err_msg=name)


def _model_cases(rel: str, g: Graph, random: int) -> list[list[np.ndarray]]:
    cases = [
        [np.load(c / f"input_{i}.npy") for i in range(len(g.inputs))] for c in reference_cases(rel)
    ]
    return cases + [random_inputs(g, s) for s in range(random)]


@needs_cmsis_nn
def test_buffer_sizes_match_cmsis_nn(tmp_path: Path) -> None:
    """tinyc's model of CMSIS-NN's get-buffer-size functions against the C functions, for
    the plain C build and the DSP and MVE variants, on random geometries (any output size,
    so explicit paddings too)."""
    root = Path(CMSIS_NN_DIR)
    src = [
        root / "Source/ConvolutionFunctions/arm_convolve_get_buffer_sizes_s8.c",
        root / "Source/ConvolutionFunctions/arm_depthwise_conv_get_buffer_sizes_s8.c",
        root / "Source/FullyConnectedFunctions/arm_fully_connected_get_buffer_sizes_s8.c",
        root / "Source/PoolingFunctions/arm_avgpool_get_buffer_sizes_s8.c",
    ]
    lib_path = tmp_path / "libsizes.so"
    cmd = ["gcc", "-shared", "-fPIC", "-O1", f"-I{root}/Include", *map(str, src), "-o"]
    subprocess.run([*cmd, str(lib_path)], check=True)
    lib = ctypes.CDLL(str(lib_path))

    class Tile(ctypes.Structure):
        _fields_ = [("w", ctypes.c_int32), ("h", ctypes.c_int32)]

    class Dims(ctypes.Structure):
        _fields_ = [(k, ctypes.c_int32) for k in ("n", "h", "w", "c")]

    class Conv(ctypes.Structure):
        _fields_ = [("in_off", ctypes.c_int32), ("out_off", ctypes.c_int32), ("stride", Tile),
                    ("padding", Tile), ("dilation", Tile), ("act", Tile)]  # fmt: skip

    class DwConv(ctypes.Structure):
        _fields_ = [("in_off", ctypes.c_int32), ("out_off", ctypes.c_int32),
                    ("ch_mult", ctypes.c_int32), ("stride", Tile), ("padding", Tile),
                    ("dilation", Tile), ("act", Tile)]  # fmt: skip

    def c_dims(d: nn.Dims):
        return ctypes.byref(Dims(d.n, d.h, d.w, d.c))

    suffix = {"plain": "", "dsp": "_dsp", "mve": "_mve"}
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(600):
        ih = 1 if rng.random() < 0.3 else int(rng.integers(1, 12))
        iw = int(rng.integers(1, 14))
        ic = int(rng.choice([1, 2, 3, 4, 8, 12, 33]))
        fh = 1 if ih == 1 and rng.random() < 0.8 else int(rng.choice([1, 2, 3, 5]))
        fw = int(rng.choice([1, 2, 3, 4, 5]))
        s = (int(rng.integers(1, 3)), int(rng.integers(1, 5)))
        d = (1, 1) if rng.random() < 0.8 else (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        pads = [0] * 4 if rng.random() < 0.3 else [int(v) for v in rng.integers(0, 3, size=4)]
        oh = max(1, (ih + pads[0] + pads[1] - (fh - 1) * d[0] - 1) // s[0] + 1)
        ow = max(1, (iw + pads[2] + pads[3] - (fw - 1) * d[1] - 1) // s[1] + 1)
        oc = int(rng.choice([1, 4, 8, 12]))
        p = nn.ConvParams(s, (pads[0], pads[2]), d)
        inp, f, out = nn.Dims(1, ih, iw, ic), nn.Dims(oc, fh, fw, ic), nn.Dims(1, oh, ow, oc)
        cp = Conv(0, 0, Tile(s[1], s[0]), Tile(pads[2], pads[0]), Tile(d[1], d[0]))
        mult = 1 if rng.random() < 0.6 else int(rng.integers(2, 5))
        fdw, odw = nn.Dims(1, fh, fw, ic * mult), nn.Dims(1, oh, ow, ic * mult)
        dp = DwConv(0, 0, mult, Tile(s[1], s[0]), Tile(pads[2], pads[0]), Tile(d[1], d[0]))
        for v, suf in suffix.items():
            fn = getattr(lib, f"arm_convolve_wrapper_s8_get_buffer_size{suf}")
            want = fn(ctypes.byref(cp), c_dims(inp), c_dims(f), c_dims(out))
            assert nn.convolve_wrapper_s8(v, p, inp, f, out) == want, (v, p, inp, f, out)
            seen.add(("conv", v, nn.is_convolve_1x1(p, inp, f), nn.is_convolve_1_x_n(p, inp, f)))
            fn = getattr(lib, "arm_convolve_s8_get_buffer_size" + ("_mve" if v == "mve" else ""))
            assert nn.convolve_s8(v, inp, f) == fn(c_dims(inp), c_dims(f))
            fn = getattr(lib, f"arm_depthwise_conv_wrapper_s8_get_buffer_size{suf}")
            want = fn(ctypes.byref(dp), c_dims(inp), c_dims(fdw), c_dims(odw))
            assert nn.depthwise_conv_wrapper_s8(v, p, inp, fdw, odw) == want, (v, p, inp, fdw)
            seen.add(
                ("dw", v, nn.depthwise_to_conv(inp, odw), nn.is_depthwise_3x3(p, inp, fdw, odw))
            )
            fn = getattr(lib, f"arm_depthwise_conv_s8_opt_get_buffer_size{suf}")
            assert nn.depthwise_conv_s8_opt(v, inp, fdw) == fn(c_dims(inp), c_dims(fdw))
            fn = getattr(lib, f"arm_fully_connected_s8_get_buffer_size{suf}")
            assert nn.fully_connected_s8(v, nn.Dims(ic * iw, 1, 1, oc)) == fn(
                c_dims(nn.Dims(ic * iw, 1, 1, oc))
            )
            fn = getattr(lib, f"arm_avgpool_s8_get_buffer_size{suf}")
            assert nn.avgpool_s8(v, ow, ic) == fn(ow, ic)
    # every dispatch branch was reached, on every variant
    branches = [(False, False), (True, False), (False, True)]
    assert {(k, v, *b) for k in ("conv", "dw") for v in suffix for b in branches} <= seen


@needs_cmsis_nn
@pytest.mark.parametrize("g", CASES, ids=[g.name for g in CASES])
def test_op_on_host_bit_exact(g: Graph, tmp_path: Path, libraries, monkeypatch) -> None:
    exe, pg = _host_build(g, tmp_path, libraries, monkeypatch)
    for seed in range(3):
        _host_case(exe, pg, random_inputs(pg, seed))


@needs_cmsis_nn
@pytest.mark.parametrize("model", FAST_INT8)
def test_model_on_host_bit_exact(model: str, tmp_path: Path, libraries, monkeypatch) -> None:
    rel = INT8_TFLITE[model]
    exe, pg = _host_build(str(model_path(rel)), tmp_path, libraries, monkeypatch)
    for inputs in _model_cases(rel, pg, 2):
        _host_case(exe, pg, inputs)


@needs_cmsis_nn
def test_wrong_scratch_or_failing_call_stops_the_program(
    tmp_path: Path, libraries, monkeypatch
) -> None:
    """The generated checks: CMSIS-NN asking for more scratch than planned, or a CMSIS-NN
    call failing (here: no buffer for arm_convolve_s8), stop the program."""
    g = graphs.conv(120, 6, 6, 4, 5, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1))
    exe, pg = _host_build(g, tmp_path, libraries, monkeypatch)
    _host_case(exe, pg, random_inputs(pg, 0))  # as generated: fine
    model_c = tmp_path / "project/model/model.c"
    src = model_c.read_text()
    edits = {
        "scratch": (r"(TINYC_NN_SCRATCH\(.*, )(\d+)\);", r"\g<1>0);"),
        "status": (r"(cmsis_nn_context ctx_\w+ = \{)[^,]+,", r"\g<1>0,"),
    }
    for what, (pattern, repl) in edits.items():
        edited, n = re.subn(pattern, repl, src)
        assert n == 1, what
        model_c.write_text(edited)
        exe = build_firmware(tmp_path / "project", "host")
        with pytest.raises(TinycError, match="exited with status"):
            _host_case(exe, pg, random_inputs(pg, 0))
    model_c.write_text(src)


@needs_cmsis_nn
@needs_arm
@pytest.mark.qemu
@pytest.mark.parametrize("core", list(BOARDS))
def test_ops_in_qemu_bit_exact(core: str, tmp_path: Path, libraries, monkeypatch) -> None:
    """Every op configuration on the core's CMSIS-NN variant (DSP on M4/M7, MVE on M55)."""
    board = BOARDS[core]
    libraries.use(monkeypatch, board, "emu")
    failures = []
    for g in CASES:
        _compile(g, board, tmp_path / g.name)
        ep = EmulatedProject.build(tmp_path / g.name)
        for seed in range(2):
            r = ep.run_case(str(seed), random_inputs(ep.graph, seed))
            if not r.bit_exact:
                failures.append(f"{g.name}: {r.mismatches} values")
    assert not failures, failures


@needs_cmsis_nn
@needs_arm
@pytest.mark.qemu
@pytest.mark.parametrize("core", list(BOARDS))
@pytest.mark.parametrize("model", FAST_INT8)
def test_model_in_qemu_bit_exact(
    model: str, core: str, tmp_path: Path, libraries, monkeypatch
) -> None:
    board = BOARDS[core]
    libraries.use(monkeypatch, board, "emu")
    rel = INT8_TFLITE[model]
    _compile(str(model_path(rel)), board, tmp_path / "project")
    ep = EmulatedProject.build(tmp_path / "project")
    results = [ep.run_case(str(i), xs) for i, xs in enumerate(_model_cases(rel, ep.graph, 1))]
    assert all(r.bit_exact for r in results), [r.mismatches for r in results]
    assert all(r.instructions and r.instructions > 0 for r in results)


@needs_cmsis_nn
def test_cmake_build_from_cmsis_nn_dir_or_fetched(tmp_path: Path, monkeypatch) -> None:
    """The CMake build, host kind: from CMSIS_NN_DIR; and with it unset, fetching the
    archive named in lib/cmsis_nn.cmake (here a local copy of CMSIS_NN_DIR, zipped, with its
    own MD5: the same FetchContent code path as the pinned release's URL and hash)."""
    if shutil.which("cmake") is None:
        pytest.skip("cmake not installed")
    from tinyc.backends.cmsis.cmsisnn_project import library_files

    g = graphs.conv(121, 5, 4, 8, 6, (3, 1), (1, 1), (1, 1), (1, 1, 0, 0), "RELU")
    project = tmp_path / "project"
    _compile(g, "nucleo-f746", project)
    pg = load_project_graph(project)
    archive = tmp_path / "cmsis-nn.zip"
    with zipfile.ZipFile(archive, "w") as z:
        root = Path(CMSIS_NN_DIR)
        for p in sorted((root / "Include").rglob("*")) + sorted((root / "Source").rglob("*.c")):
            z.write(p, f"CMSIS-NN-{nn.COMMIT}/{p.relative_to(root)}")
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    for how in ("dir", "fetch"):
        build = tmp_path / f"build-{how}"
        env = {k: v for k, v in os.environ.items() if k != "CMSIS_NN_DIR"}
        args = ["-DTINYC_TARGET=host"]
        if how == "dir":
            args.append(f"-DCMSIS_NN_DIR={CMSIS_NN_DIR}")
        else:
            files = library_files(url=archive.as_uri(), md5=md5)
            (project / "lib/cmsis_nn.cmake").write_text(files["lib/cmsis_nn.cmake"])
        logs = []
        for cmd in (["cmake", "-S", str(project), "-B", str(build), *args],
                    ["cmake", "--build", str(build), "-j2"]):  # fmt: skip
            r = subprocess.run(cmd, env=env, capture_output=True, text=True)
            assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
            logs.append(r.stdout)
        assert ("tinyc: fetching CMSIS-NN" in logs[0]) == (how == "fetch")
        _host_case(build / "firmware", pg, random_inputs(pg, 1))

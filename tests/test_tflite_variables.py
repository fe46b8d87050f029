"""TFLite resource variables (VAR_HANDLE, READ_VARIABLE, ASSIGN_VARIABLE, CALL_ONCE) as tinyc
state: over successive invocations the interpreter matches TFLM bit for bit, and the generated
C matches the interpreter."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from builtin_checks import options, pack_subgraphs
from c_host import CFLAGS, SANITIZE

from tinyc import interpreter
from tinyc.backends.cmsis.codegen import generate_model, runtime_files
from tinyc.backends.tflm import host
from tinyc.errors import UnsupportedError
from tinyc.frontend.tflite import load_tflite
from tinyc.tflite_schema import schema

TYPES = {"int8": 9, "float32": 0, "resource": 13}


def _tensor(S, buffers, name, dtype, shape, data=None, quant=None):
    t = S.TensorT()
    t.name, t.type, t.shape = name, TYPES[dtype], list(shape)
    b = S.BufferT()
    if data is not None:
        b.data = list(np.ascontiguousarray(data).tobytes())
    buffers.append(b)
    t.buffer = len(buffers) - 1
    if quant is not None:
        q = S.QuantizationParametersT()
        q.scale, q.zeroPoint = [quant[0]], [quant[1]]
        t.quantization = q
    return t


def _op(S, codes, kind, inputs, outputs, opts=None, opts_type=None):
    if kind not in codes:
        codes.append(kind)
    op = S.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = codes.index(kind), inputs, outputs
    if opts is not None:
        op.builtinOptionsType, op.builtinOptions = opts_type, opts
    return op


def accumulator(dtype: str = "int8", first: float = 0.0, n: int = 6) -> bytes:
    """y = x + acc; acc := y  (acc: a resource variable, first value ``first``, set by a
    CALL_ONCE init subgraph)."""
    S = schema()
    O = S.BuiltinOptions
    q = (0.25, 3) if dtype == "int8" else None
    buffers = [S.BufferT()]
    codes: list[str] = []
    handle = options("VarHandleOptionsT", container=b"", sharedName=b"acc")
    main = S.SubGraphT()
    main.name = "main"
    main.tensors = [
        _tensor(S, buffers, "x", dtype, [1, n], quant=q),
        _tensor(S, buffers, "acc_handle", "resource", []),
        _tensor(S, buffers, "acc_now", dtype, [1, n], quant=q),
        _tensor(S, buffers, "y", dtype, [1, n], quant=q),
    ]
    main.operators = [
        _op(S, codes, "CALL_ONCE", [], [], options("CallOnceOptionsT", initSubgraphIndex=1),
            O.CallOnceOptions),
        _op(S, codes, "VAR_HANDLE", [], [1], handle, O.VarHandleOptions),
        _op(S, codes, "READ_VARIABLE", [1], [2]),
        _op(S, codes, "ADD", [0, 2], [3], options("AddOptionsT"), O.AddOptions),
        _op(S, codes, "ASSIGN_VARIABLE", [1, 3], []),
    ]  # fmt: skip
    main.inputs, main.outputs = [0], [3]
    raw_first = (
        np.full((1, n), round(first / q[0]) + q[1], np.int8)
        if q
        else np.full((1, n), first, np.float32)
    )
    init = S.SubGraphT()
    init.name = "init"
    init.tensors = [
        _tensor(S, buffers, "acc_handle", "resource", []),
        _tensor(S, buffers, "acc_first", dtype, [1, n], raw_first, q),
    ]
    init.operators = [
        _op(S, codes, "VAR_HANDLE", [], [0], handle, O.VarHandleOptions),
        _op(S, codes, "ASSIGN_VARIABLE", [0, 1], []),
    ]
    init.inputs, init.outputs = [], []
    return pack_subgraphs(codes, [main, init], buffers)


def _frames(dtype: str, n_frames: int = 7, n: int = 6) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    if dtype == "int8":
        return [rng.integers(-30, 31, (1, n)).astype(np.int8) for _ in range(n_frames)]
    return [rng.standard_normal((1, n)).astype(np.float32) for _ in range(n_frames)]


@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_state_persists_like_tflm(dtype):
    data = accumulator(dtype)
    g = load_tflite(data, "acc")
    assert [n.op for n in g.nodes] == ["READ_VARIABLE", "ADD", "ASSIGN_VARIABLE"]
    assert [t.name for t in g.states()] == ["acc"]
    frames = _frames(dtype)
    want = [o[0] for o in host.run_invocations(data, [[x] for x in frames])]
    state = interpreter.State(g)
    got = [interpreter.run(g, [x], state=state)[g.outputs[0]] for x in frames]
    for k, (w, o) in enumerate(zip(want, got, strict=True)):
        np.testing.assert_array_equal(o, w, f"invocation {k}")
    assert not np.array_equal(got[0], got[-1])  # the state did carry over
    state.reset()  # a reset starts over: the first invocation again
    again = interpreter.run(g, [frames[0]], state=state)[g.outputs[0]]
    np.testing.assert_array_equal(again, got[0])


MULTI_MAIN = r"""
#include <stdio.h>
#include "model.h"
/* usage: host_model frames.bin outputs.bin: one invocation per frame */
int main(int argc, char **argv) {
  FILE *in, *out;
  if (argc != 3) return 2;
  in = fopen(argv[1], "rb");
  out = fopen(argv[2], "wb");
  if (!in || !out) return 3;
  while (fread(tinyc_inputs[0].data, 1, tinyc_inputs[0].bytes, in) == tinyc_inputs[0].bytes) {
    tinyc_invoke();
    if (fwrite(tinyc_outputs[0].data, 1, tinyc_outputs[0].bytes, out) != tinyc_outputs[0].bytes)
      return 4;
  }
  fclose(in);
  fclose(out);
  return 0;
}
"""


def test_generated_c_keeps_the_variable(tmp_path: Path):
    g = load_tflite(accumulator("int8"), "acc")
    gen = generate_model(g, "acc", "dsp")
    for rel, text in {**gen.files, **runtime_files(gen.runtime_sources)}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    (tmp_path / "main.c").write_text(MULTI_MAIN)
    sources = [tmp_path / "main.c", tmp_path / "model" / "model.c"]
    sources += [tmp_path / "runtime" / s for s in gen.runtime_sources]
    exe = tmp_path / "acc"
    subprocess.run(
        ["gcc", *CFLAGS, *SANITIZE, f"-I{tmp_path / 'model'}", f"-I{tmp_path / 'runtime'}",
         *map(str, sources), "-lm", "-o", str(exe)],
        check=True, capture_output=True,
    )  # fmt: skip
    frames = _frames("int8")
    (tmp_path / "in.bin").write_bytes(b"".join(x.tobytes() for x in frames))
    subprocess.run([str(exe), tmp_path / "in.bin", tmp_path / "out.bin"], check=True)
    got = np.frombuffer((tmp_path / "out.bin").read_bytes(), np.int8).reshape(len(frames), 1, -1)
    state = interpreter.State(g)
    for k, x in enumerate(frames):
        want = interpreter.run(g, [x], state=state)[g.outputs[0]]
        np.testing.assert_array_equal(got[k], want, f"invocation {k}")


def test_a_nonzero_first_value_is_refused_by_name():
    with pytest.raises(UnsupportedError, match="variable 'acc' starts from values other than 0"):
        load_tflite(accumulator("float32", first=1.5), "acc")


@pytest.mark.qemu
@pytest.mark.parametrize("backend", ["cmsis", "tflm"])
def test_firmware_keeps_the_variable_across_invocations(backend, tmp_path: Path):
    """Seven invocations in one firmware run in QEMU, C and TFLM backends: each output is the
    interpreter's, state carried from the previous invocation."""
    from tflm_build import tflm_library, third_party_vars

    from tinyc.boards import load_board
    from tinyc.compiler import CompileOptions, compile_model
    from tinyc.emulate import build_firmware, run_emulated

    for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not found")
    board = load_board("mps2-an386")
    g = load_tflite(accumulator("int8"), "acc")
    project = tmp_path / "p"
    compile_model(g, CompileOptions(board=board.name, backend=backend), project)
    make_vars: dict[str, str] = {}
    if backend == "tflm":
        third = third_party_vars(os.environ.get("TFLM_DIR", "/nonexistent"))
        if not os.environ.get("TFLM_DIR") or third is None or shutil.which("cmake") is None:
            pytest.skip("TFLM_DIR (with TFLM's third-party code) and cmake needed for TFLM builds")
        env = {"TFLM_DIR": os.environ["TFLM_DIR"], **third}
        make_vars = {**env, "TFLM_LIB": tflm_library(project, board, env)}
    elf = build_firmware(project, "emu", make_vars=make_vars)
    frames = _frames("int8")
    res = run_emulated(
        elf, board, [frames[0]], more_steps=[[x] for x in frames[1:]], count_instructions=False
    )
    got = np.frombuffer(res.outputs[0], np.int8).reshape(len(frames), 1, -1)
    state = interpreter.State(g)
    for k, x in enumerate(frames):
        want = interpreter.run(g, [x], state=state)[g.outputs[0]]
        np.testing.assert_array_equal(got[k], want, f"{backend}: invocation {k}")

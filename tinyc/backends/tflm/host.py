"""TFLite Micro on the host (PyPI ``tflite-micro``): run a model, read its allocations.

The reference kernels of the PyPI build are TFLM's ground truth for outputs; the arena
figures are those of a 64-bit host and of the reference kernels (see ``arena.py`` for
what changes on a 32-bit Cortex-M with CMSIS-NN).
"""

from __future__ import annotations

import faulthandler
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinyc.errors import TinycError
from tinyc.tflite_schema import schema


def _runtime() -> Any:
    try:
        from tflite_micro import runtime
    except ImportError:
        raise TinycError(
            "the tflite-micro Python package is needed here (pip install tflite-micro)"
        ) from None
    return runtime


@contextmanager
def _captured_fd2() -> Iterator[list[str]]:
    """Capture what C++ code writes to file descriptor 2 (TFLM logs there)."""
    out: list[str] = []
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield out
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode("utf-8", "replace"))


def interpreter(model: bytes, arena_size: int = 64 << 20, preserve_all: bool = False) -> Any:
    """A host TFLM interpreter; raises TinycError when TFLM refuses the model."""
    rt = _runtime()
    config = (
        rt.InterpreterConfig.kPreserveAllTensors
        if preserve_all
        else rt.InterpreterConfig.kAllocationRecording
    )
    with _captured_fd2() as log:
        try:
            return rt.Interpreter.from_bytes(
                bytes(model), arena_size=arena_size, intrepreter_config=config
            )
        except Exception as e:  # RuntimeError, or struct.error on a damaged file
            err = e
    detail = " ".join(log[0].split())[-300:] if log and log[0] else str(err)
    raise TinycError(f"TFLite Micro refused the model: {detail}")


def run(model: bytes, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Outputs of ``model`` on ``inputs`` (in the file's own layout), by TFLM."""
    return run_invocations(model, [inputs])[0]


def run_invocations(model: bytes, cases: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    """Outputs of successive invocations of one interpreter, one per case: variable
    tensors (recurrent state) carry over from one invocation to the next, as on a device
    that never calls Reset()."""
    it = interpreter(model)
    count = schema().Model.GetRootAs(model, 0).Subgraphs(0).OutputsLength()
    results = []
    for inputs in cases:
        for i, x in enumerate(inputs):
            it.set_input(np.ascontiguousarray(x), i)
        it.invoke()
        results.append([np.array(it.get_output(i)) for i in range(count)])
    return results


@dataclass
class Allocations:
    """TFLM's RecordingMicroAllocator report (bytes on the machine that ran it)."""

    total: int
    head: int
    tail: int
    #: category -> (used bytes, requested bytes, count)
    records: dict[str, tuple[int, int, int]] = field(default_factory=dict)


_TOTAL = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")
_RECORD = re.compile(
    r"'([^']+)' used (\d+) bytes with alignment overhead \(requested (\d+) bytes for (\d+) "
)


def parse_allocations(text: str) -> Allocations:
    sizes = {k: int(v) for k, v in _TOTAL.findall(text)}
    if set(sizes) != {"total", "head", "tail"}:
        raise TinycError("could not read TFLM's allocation report (print_allocations)")
    records = {name: (int(used), int(req), int(n)) for name, used, req, n in _RECORD.findall(text)}
    return Allocations(sizes["total"], sizes["head"], sizes["tail"], records)


def allocations(model: bytes) -> Allocations:
    """What TFLM allocates in its arena for ``model`` on this (64-bit) host."""
    it = interpreter(model)
    with _captured_fd2() as log:
        it.print_allocations()
    return parse_allocations(log[0])


def _fits(model: bytes, size: int) -> bool:
    """Whether the host TFLM allocates ``model`` in ``size`` bytes, asked in a forked child:
    after some refused allocations the PyPI build's next interpreter can crash the process.
    A child that dies counts as "does not fit". (No fork, e.g. Windows: asked here.)"""
    if not hasattr(os, "fork"):
        try:
            interpreter(model, arena_size=size)
        except TinycError:
            return False
        return True
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer, then leave without running Python's exit handlers
        os.close(read)
        faulthandler.disable()  # a crash here is an answer, not news
        try:
            interpreter(model, arena_size=size)
            answer = b"1"
        except BaseException:
            answer = b"0"
        os.write(write, answer)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        answer = pipe.read(1)
    os.waitpid(pid, 0)
    return answer == b"1"


def minimum_arena(model: bytes, total: int | None = None) -> int:
    """The smallest ``arena_size`` the host TFLM accepts, by bisection.

    It can exceed ``arena_used_bytes()`` (``total``): while planning, TFLM holds
    temporary data on top of the persistent tail. Arenas too small for TFLM's own
    allocator objects crash the host interpreter, so the search never goes below
    ``SAFE_FLOOR`` bytes.
    """
    total = total if total is not None else allocations(model).total
    hi = total + 64
    while not _fits(model, hi):
        hi *= 2
    lo = max(SAFE_FLOOR, total // 2)
    if _fits(model, lo):
        hi, lo = lo, SAFE_FLOOR
    while lo + 1 < hi:
        mid = (lo + hi) // 2
        if _fits(model, mid):
            hi = mid
        else:
            lo = mid
    return hi


SAFE_FLOOR = 512
"""Host arenas below this crash tflite-micro's Python interpreter (segmentation fault)."""

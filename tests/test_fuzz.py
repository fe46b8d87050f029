"""Damaged model files: every mutation of every shared model either loads into a graph
that passes verification or raises TinycError (one clean line for the user) — never any
other exception."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import MODELS

from tinyc.errors import TinycError
from tinyc.frontend.onnx import load_onnx
from tinyc.frontend.tflite import load_tflite
from tinyc.ir.verify import verify

FAST_CASES = 600  # spread over every model file (the issue asks for >= 500 in CI)
SLOW_CASES = 6000


def _model_files() -> list:
    if not MODELS.is_dir():
        pytest.skip(f"shared models not found under {MODELS}")
    files = sorted(MODELS.rglob("*.tflite")) + sorted(MODELS.rglob("*.onnx"))
    return [f for f in files if f.stat().st_size < 1_000_000]  # mobilenet_v2: see slow test


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One random damage: truncation, flipped bytes, an overwritten or zeroed run, an
    inserted or deleted run."""
    b = bytearray(data)
    kind = rng.integers(0, 6)
    n = len(b)
    if kind == 0:  # truncate
        return bytes(b[: int(rng.integers(0, n))])
    if kind == 1:  # flip a few random bytes
        for i in rng.integers(0, n, size=int(rng.integers(1, 9))):
            b[i] ^= int(rng.integers(1, 256))
        return bytes(b)
    start = int(rng.integers(0, n))
    length = int(rng.integers(1, 64))
    if kind == 2:  # overwrite a run with random bytes
        b[start : start + length] = rng.integers(
            0, 256, size=len(b[start : start + length]), dtype=np.uint8
        ).tobytes()
    elif kind == 3:  # zero a run
        b[start : start + length] = bytes(len(b[start : start + length]))
    elif kind == 4:  # insert random bytes
        b[start:start] = rng.integers(0, 256, size=length, dtype=np.uint8).tobytes()
    else:  # delete a run
        del b[start : start + length]
    return bytes(b)


def _load(path, data: bytes):
    loader = load_tflite if path.suffix == ".tflite" else load_onnx
    g = loader(data, name=path.stem)
    verify(g)
    return g


def _fuzz(total: int, seed: int) -> None:
    files = _model_files()
    per_file = max(1, total // len(files))
    originals = {f: f.read_bytes() for f in files}
    outcomes = {"graph": 0, "error": 0}
    for k, path in enumerate(files):
        rng = np.random.default_rng(seed + k)
        for case in range(per_file):
            data = mutate(originals[path], rng)
            try:
                _load(path, data)
                outcomes["graph"] += 1
            except TinycError as e:
                assert str(e).strip() and "\n" not in str(e).strip(), (path.name, case, str(e))
                outcomes["error"] += 1
            except Exception as e:  # noqa: BLE001 - any other exception is the failure
                raise AssertionError(
                    f"{path.name} mutation {case} (seed {seed + k}): {type(e).__name__}: {e}"
                ) from e
    assert sum(outcomes.values()) >= min(total, per_file * len(files))
    assert outcomes["error"] > 0


def test_fuzz_model_files() -> None:
    _fuzz(FAST_CASES, seed=1000)


@pytest.mark.slow
def test_fuzz_model_files_long() -> None:
    _fuzz(SLOW_CASES, seed=5000)


@pytest.mark.parametrize(
    "data, what",
    [
        (b"", "empty"),
        (b"hello world, not a model", "text"),
        (bytes(range(256)) * 4, "binary noise"),
        (b"\x1c\x00\x00\x00TFL3" + bytes(64), "TFLite header, nothing else"),
    ],
)
def test_non_model_bytes_are_clean_errors(data: bytes, what: str) -> None:
    for loader in (load_tflite, load_onnx):
        with pytest.raises(TinycError):
            verify(loader(data, name=what))

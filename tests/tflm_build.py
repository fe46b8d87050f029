"""Building tinyc's TFLM projects against a real TFLM checkout: its third-party code and a
libtflm.a per core, built once. Shared by tests/test_tflm_backend.py and
bench/estimate_calibrate.py (never part of the package: users' projects build TFLM with
their own CMake)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from tinyc.boards import Board

#: make variable of the TFLM project -> directory name under TFLM's make downloads
THIRD_PARTY = {
    "CMSIS_NN_DIR": "cmsis_nn",
    "FLATBUFFERS_DIR": "flatbuffers",
    "GEMMLOWP_DIR": "gemmlowp",
    "RUY_DIR": "ruy",
}


def third_party_vars(tflm: str | Path, *roots: Path) -> dict[str, str] | None:
    """Where TFLM's third-party code is: the environment variable, TFLM's make downloads,
    else ``roots`` (directories holding the same sub-directories); None when any is missing."""
    downloads = Path(tflm) / "tensorflow/lite/micro/tools/make/downloads"
    found = {}
    for var, sub in THIRD_PARTY.items():
        cands = [os.environ.get(var), downloads / sub, *(r / sub for r in roots)]
        hit = next((str(c) for c in cands if c and Path(c).is_dir()), None)
        if hit is None:
            return None
        found[var] = hit
    return found


_LIBS: dict[str, str] = {}


def tflm_library(project: Path, board: Board, env: dict[str, str],
                 log: Callable[[str], None] = lambda m: None) -> str:  # fmt: skip
    """libtflm.a for the board's core: TINYC_TFLM_LIB_<CORE>, or built once with the
    project's own cmake/tflm.cmake into ~/.cache/tinyc-tests (keyed by that file and the
    core's gcc flags)."""
    key = board.core.upper().replace("-", "_")
    if os.environ.get(f"TINYC_TFLM_LIB_{key}"):
        return os.environ[f"TINYC_TFLM_LIB_{key}"]
    cmake_text = (project / "cmake" / "tflm.cmake").read_text()
    digest = hashlib.sha256((cmake_text + " ".join(board.gcc_flags)).encode()).hexdigest()[:12]
    if digest in _LIBS:
        return _LIBS[digest]
    build = Path.home() / ".cache" / "tinyc-tests" / f"tflm-{board.core}-{digest}"
    lib = build / "libtflm.a"
    if not lib.exists():
        log(f"  building TFLM for {board.core} into {build} (several minutes)")
        defs = [f"-D{k}={v}" for k, v in env.items()]
        subprocess.run(
            ["cmake", "-S", str(project), "-B", str(build), "-DTINYC_TARGET=emu",
             f"-DCMAKE_TOOLCHAIN_FILE={project / 'cmake' / 'arm-none-eabi.cmake'}", *defs],
            check=True, capture_output=True,
        )  # fmt: skip
        subprocess.run(["cmake", "--build", str(build), "--target", "tflm", "-j2"],
                       check=True, capture_output=True)  # fmt: skip
    _LIBS[digest] = str(lib)
    return str(lib)

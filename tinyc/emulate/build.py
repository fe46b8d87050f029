"""Build a generated project with its own Makefile: the build users get is the build tinyc runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

from tinyc.errors import TinycError

TARGETS = ("board", "emu", "host")
#: characters make reads as syntax in a target or prerequisite path
MAKE_UNSAFE = " =:#;$"
_OUTPUT = {"board": "board/firmware.elf", "emu": "emu/firmware.elf", "host": "host/firmware"}
_INSTALL = {
    "make": "make",
    "arm-none-eabi-gcc": "gcc-arm-none-eabi libnewlib-arm-none-eabi",
    "gcc": "gcc",
}


class BuildError(TinycError):
    """The compiler or linker failed; ``log`` holds the full output."""

    def __init__(self, message: str, log: str) -> None:
        super().__init__(message)
        self.log = log


def check_tools(target: str) -> None:
    """Raise a TinycError naming the missing tool and the Debian package that provides it."""
    needed = ["make", "gcc" if target == "host" else "arm-none-eabi-gcc"]
    for tool in needed:
        if shutil.which(tool) is None:
            raise TinycError(
                f"{tool} not found, needed for the {target} build "
                f"(Debian/Ubuntu: apt-get install {_INSTALL[tool]})"
            )


def _cmake_error(log: str) -> str:
    """The message of the first ``CMake Error`` in ``log`` (CMake wraps it over indented
    lines), on one line; "" when there is none."""
    lines = log.splitlines()
    for i, ln in enumerate(lines):
        if ln.startswith("CMake Error"):
            body = []
            for more in lines[i + 1 :]:
                if not more.startswith("  ") or not more.strip():
                    break
                body.append(more.strip())
            return " ".join(body) or ln.strip()
    return ""


def _first_error(log: str) -> str:
    """The line of a make log that best says what went wrong: tinyc's own message from the
    generated build files first (``tinyc: ...``, e.g. a fetch that cannot work offline)."""
    cmake = _cmake_error(log)
    if cmake:
        return cmake.removeprefix("tinyc: ")
    lines = [
        ln.strip()
        for ln in log.splitlines()
        if ln.strip() and not re.match(r"make(\[\d+\])?: (Entering|Leaving) directory", ln)
    ]
    for ln in lines:
        if ln.startswith("tinyc: ") and not ln.startswith("tinyc: fetching"):
            return ln.removeprefix("tinyc: ")
    for ln in lines:
        if re.search(r"\berror:|undefined reference|overflowed|will not fit", ln, re.IGNORECASE):
            return ln
    for i, ln in enumerate(lines):
        if "***" in ln and ln.startswith("make"):
            return lines[i - 1] if i else ln
    return lines[-1] if lines else "make failed"


def build_firmware(
    project_dir: str | Path,
    target: str = "emu",
    *,
    build_dir: str | Path | None = None,
    make_vars: Mapping[str, str] | None = None,
    jobs: int = 2,
    label: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Run ``make <target>`` in the project; returns the firmware ELF (or host executable).

    ``target`` is ``board`` (the real board, UART), ``emu`` (the emulated twin, semihosting) or
    ``host``. ``build_dir`` defaults to ``<project>/build`` as for users; ``make_vars`` are passed
    on the make command line (e.g. ``{"EXTRA_CFLAGS": "-DFOO=1", "OPT": "-Os"}``). Make rebuilds
    what changed (flags are not tracked: use another ``build_dir`` when changing ``make_vars``);
    running more input cases needs no rebuild at all.

    ``label`` names the project in errors instead of its path (for temporary projects: no
    temporary path reaches the user); ``progress`` receives the build's fetch messages and
    download progress as they come (a TFLM or CMSIS-NN fetch can take a while).
    """
    if target not in TARGETS:
        raise TinycError(f"unknown build target {target!r} (one of {', '.join(TARGETS)})")
    project = Path(project_dir).resolve()
    if not (project / "Makefile").is_file():
        raise TinycError(f"{project} has no Makefile: not a tinyc project")
    check_tools(target)
    build = Path(build_dir).resolve() if build_dir else project / "build"
    unsafe = sorted(set(str(project) + str(build)) & set(MAKE_UNSAFE))
    if unsafe:
        raise TinycError(
            f"make cannot build in {project if set(str(project)) & set(MAKE_UNSAFE) else build}: "
            f"the path holds {' '.join(repr(c) for c in unsafe)}; move the project to a path "
            "without them"
        )
    cmd = ["make", "-C", str(project), f"-j{jobs}", f"BUILD={build}", target]
    cmd += [f"{k}={v}" for k, v in sorted((make_vars or {}).items())]
    env = {**os.environ, "LC_ALL": "C"}
    returncode, log = _run(cmd, env, progress)
    name = label or str(project)

    def hide(text: str) -> str:  # paths inside the project, relative to it
        return text.replace(f"{build}/", "").replace(f"{project}/", "").replace(str(project), name)

    if returncode != 0:
        raise BuildError(f"the {target} build of {name} failed: {hide(_first_error(log))}", log)
    out = build / _OUTPUT[target]
    if not out.is_file():
        raise BuildError(f"the {target} build of {name} did not produce {hide(str(out))}", log)
    return out


_PROGRESS = re.compile(r"tinyc: fetching|\[download (\d+)% complete\]")


def _run(
    cmd: list[str], env: dict[str, str], progress: Callable[[str], None] | None
) -> tuple[int, str]:
    """Run ``cmd``; return its exit status and output. Fetch messages and download progress
    (every 10 %) go to ``progress`` as they come."""
    if progress is None:
        r = subprocess.run(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        return r.returncode, r.stdout
    lines = []
    last = -10
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            m = _PROGRESS.search(line)
            if m is None:
                continue
            if m.group(1) is None:
                progress(line.strip().removeprefix("-- "))
                last = -10
            elif int(m.group(1)) >= last + 10:
                last = int(m.group(1)) // 10 * 10
                progress(f"  {line.strip().removeprefix('-- ')}")
    return proc.returncode, "".join(lines)

"""Run emulated-twin firmware in QEMU (and host builds) on input files; count instructions.

The firmware (``app/main_files.c``) reads ``input_<i>.bin`` and writes ``output_<i>.bin`` and
``stats.txt`` in its working directory through semihosting (and ``input_<i>.<k>.bin`` ->
``output_<i>.<k>.bin`` for the further steps of a stream); each run gets a fresh temporary
directory. The instruction count comes from tinyc's TCG plugin, between the entries of
``tinyc_bench_begin`` and ``tinyc_bench_end`` (one inference plus a constant few instructions of
marker code), and is exact and repeatable.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinyc.boards import Board, load_board
from tinyc.emulate.elfinfo import elf_symbol
from tinyc.emulate.plugin import ensure_plugin, qemu_binary
from tinyc.emulate.project import qemu_args
from tinyc.errors import TinycError

FAULT_EXIT = 70  # the firmware's fault handler exits with this code
_COUNT = re.compile(r"tinyc-insns windows=(\d+) count=(\d+) total=(\d+)")


@dataclass
class RunResult:
    outputs: list[bytes]
    instructions: int | None  # per inference, None when not counted (host runs)
    stack_bytes: int  # stack high-water mark of the whole firmware; 0 = unknown (host)
    stack_size: int  # stack reserved
    stack_inference_bytes: int = 0  # stack used below main's frame: markers + the inference
    total_instructions: int | None = None  # the whole run, start-up and file I/O included
    stats: dict[str, int] = field(default_factory=dict)
    console: str = ""  # what the firmware printed (semihosting stderr)


Case = Sequence[bytes | np.ndarray]


def _step_file(prefix: str, i: int, step: int) -> str:
    return f"{prefix}_{i}.bin" if step == 0 else f"{prefix}_{i}.{step}.bin"


def _inputs_to_files(workdir: Path, inputs: Case, more_steps: Sequence[Case] = ()) -> None:
    for step, case in enumerate([inputs, *more_steps]):
        for i, x in enumerate(case):
            data = np.ascontiguousarray(x).tobytes() if isinstance(x, np.ndarray) else bytes(x)
            (workdir / _step_file("input", i, step)).write_bytes(data)


def _collect(workdir: Path, what: str, console: str) -> tuple[list[bytes], dict[str, int]]:
    """Each output's bytes (the steps of a stream one after the other) and the stats."""
    stats_file = workdir / "stats.txt"
    if not stats_file.is_file():
        raise TinycError(f"{what} wrote no stats.txt: {console.strip() or 'no message'}")
    stats = {}
    for line in stats_file.read_text().splitlines():
        k, _, v = line.partition("=")
        stats[k] = int(v)
    steps = stats.get("steps", 1)
    outputs = [
        b"".join((workdir / _step_file("output", i, s)).read_bytes() for s in range(steps))
        for i in range(stats["outputs"])
    ]
    return outputs, stats


def _machine(board: Board | str) -> str:
    b = load_board(board) if isinstance(board, str) else board
    machine = b.twin().qemu_machine
    assert machine is not None
    return machine


def run_emulated(
    elf: str | Path,
    board: Board | str,
    inputs: Case,
    *,
    more_steps: Sequence[Case] = (),
    count_instructions: bool = True,
    timeout: float = 300.0,
) -> RunResult:
    """Run an ``emu`` firmware ELF on QEMU's twin of ``board`` with one input case.

    ``inputs``: one per model input, the tensor's exact bytes (numpy arrays are taken as their
    raw C-order bytes). ``more_steps``: further cases the same run invokes the model on, in
    order (a streaming model's later time steps; the state carries over); the outputs then
    hold every step's bytes one after the other, and ``instructions`` is the mean per step.
    Raises TinycError if the firmware faults, fails, or times out.
    """
    elf = Path(elf).resolve()
    machine = _machine(board)
    cmd = [qemu_binary(), *qemu_args(machine), "-kernel", str(elf)]
    if count_instructions:
        plugin = ensure_plugin().path
        begin = elf_symbol(elf, "tinyc_bench_begin")
        end = elf_symbol(elf, "tinyc_bench_end")
        cmd += ["-plugin", f"{plugin},begin={begin:#x},end={end:#x}", "-d", "plugin"]
    with tempfile.TemporaryDirectory(prefix="tinyc-qemu-") as d:
        work = Path(d)
        _inputs_to_files(work, inputs, more_steps)
        if count_instructions:
            cmd += ["-D", str(work / "plugin.log")]
        try:
            r = subprocess.run(
                cmd,
                cwd=work,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise TinycError(
                f"{elf.name} did not finish within {timeout:.0f} s in QEMU {machine}"
            ) from None
        console = r.stderr + r.stdout
        what = f"{elf.name} in QEMU {machine}"
        if r.returncode == FAULT_EXIT:
            raise TinycError(f"{what}: the firmware faulted (HardFault or bus fault)")
        if r.returncode != 0:
            detail = " ".join(console.split()) or "no message"
            raise TinycError(f"{what} exited with status {r.returncode}: {detail}")
        outputs, stats = _collect(work, what, console)
        instructions = total = None
        if count_instructions:
            log = (work / "plugin.log").read_text() if (work / "plugin.log").exists() else ""
            m = _COUNT.search(log)
            steps = 1 + len(more_steps)
            if not m or int(m.group(1)) != steps:
                raise TinycError(f"{what}: the instruction counter saw no complete inference")
            instructions, total = round(int(m.group(2)) / steps), int(m.group(3))
    return RunResult(
        outputs=outputs,
        instructions=instructions,
        stack_bytes=stats.get("stack_used_bytes", 0),
        stack_size=stats.get("stack_size_bytes", 0),
        stack_inference_bytes=stats.get("stack_inference_bytes", 0),
        total_instructions=total,
        stats=stats,
        console=console,
    )


def run_host(
    exe: str | Path, inputs: Case, *, more_steps: Sequence[Case] = (), timeout: float = 300.0
) -> RunResult:
    """Run a ``host`` build on one input case (same file protocol, no instruction count)."""
    exe = Path(exe).resolve()
    with tempfile.TemporaryDirectory(prefix="tinyc-host-") as d:
        work = Path(d)
        _inputs_to_files(work, inputs, more_steps)
        try:
            r = subprocess.run(
                [str(exe)], cwd=work, capture_output=True, text=True, timeout=timeout,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise TinycError(f"{exe.name} did not finish within {timeout:.0f} s") from None
        console = r.stderr + r.stdout
        if r.returncode != 0:
            detail = " ".join(console.split()) or "no message"
            raise TinycError(f"{exe.name} exited with status {r.returncode}: {detail}")
        outputs, stats = _collect(work, exe.name, console)
    return RunResult(outputs=outputs, instructions=None, stack_bytes=0, stack_size=0,
                     stats=stats, console=console)  # fmt: skip

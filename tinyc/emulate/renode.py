"""Run a project's real-board image (``make board``) in Renode.

One Renode process serves every case of a run: the board's own platform (plus the additions of
``Board.renode_additions``) is loaded once, and each case resets the machine, writes the case's
input into the image's embedded test input (and the reference output into its expected output,
so that the image's own self-test line means something), and runs until the firmware exits.
Python hooks at the image's benchmark markers print the instruction count and, once the
inference is done, the bytes of every output tensor; the board's console UART carries the
rest (stack use, the self-test verdict). The monitor is driven over stdin.

Renode is found through ``$RENODE`` (the launcher) or ``renode`` on PATH.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from tinyc.boards import Board
from tinyc.errors import TinycError

RENODE_ENV = "RENODE"
INSTALL_HINT = (
    "install Renode (https://renode.io: the renode packages, or the renode-run GitHub action) "
    f"and put `renode` on PATH or set {RENODE_ENV}=/path/to/renode"
)
CASE_TIMEOUT_S = 300.0
# tinyc_tensor_t on 32-bit Arm (runtime/tinyc_api.h): name, data, bytes, ...
_TENSOR_DATA_OFFSET = 4
_TENSOR_BYTES_OFFSET = 8
_MARK = re.compile(r"<<tinyc (\w+) ?([^>]*)>>")
_STACK = re.compile(r"tinyc: stack (\d+) of (\d+) bytes(?: \(inference (\d+)\))?")


def find_renode() -> Path:
    """The Renode launcher: ``$RENODE`` or ``renode`` on PATH."""
    given = os.environ.get(RENODE_ENV)
    if given:
        p = Path(given).expanduser()
        if not (p.is_file() and os.access(p, os.X_OK)):
            raise TinycError(f"{RENODE_ENV}={given} is not an executable Renode launcher")
        return p
    found = shutil.which("renode")
    if found is None:
        raise TinycError(f"Renode not found: {INSTALL_HINT}")
    return Path(found)


def renode_machine(board: Board) -> str:
    """What a report calls the emulated machine: the Renode platform file's name."""
    return Path(board.renode_platform or "?").stem


def check_renode_board(board: Board) -> None:
    if not board.renode_platform:
        raise TinycError(
            f"board {board.name} has no Renode model (Renode has no {board.mcu} platform); "
            f"its image runs on real hardware, and its code in QEMU "
            f"({board.twin().qemu_machine}, the default emulator)"
        )


@dataclass
class RenodeCase:
    outputs: list[bytes]
    instructions: int | None  # per inference, between the benchmark markers
    stack_bytes: int  # stack high-water mark the firmware printed
    stack_size: int
    stack_inference_bytes: int
    console: list[str] = field(default_factory=list)  # the UART lines of this case


def _symbols(elf: Path, names: Sequence[str]) -> dict[str, tuple[int, int]]:
    """name -> (address, size) of those of ``names`` the image defines."""
    with open(elf, "rb") as f:
        e = ELFFile(f)
        symtab = e.get_section_by_name(".symtab")
        if not isinstance(symtab, SymbolTableSection):
            raise TinycError(f"{elf}: no symbol table (was it stripped?)")
        out = {}
        for n in names:
            syms = symtab.get_symbol_by_name(n)
            if syms:
                s = syms[0]
                addr = s["st_value"] & ~1 if s["st_info"]["type"] == "STT_FUNC" else s["st_value"]
                out[n] = (addr, s["st_size"])
        return out


def _hooks(elf: Path, n_inputs: int, n_outputs: int) -> tuple[str, dict[str, tuple[int, int]]]:
    """The monitor commands that add the marker hooks, and the image's symbols."""
    wanted = [
        "tinyc_bench_begin",
        "tinyc_bench_end",
        "tinyc_platform_exit",
        "tinyc_fault_handler",
        "tinyc_outputs",
    ]
    wanted += [f"tinyc_test_input_{i}" for i in range(n_inputs)]
    wanted += [f"tinyc_test_expected_{i}" for i in range(n_outputs)]
    syms = _symbols(elf, wanted)
    missing = [n for n in wanted[:5] if n not in syms]
    if missing:
        raise TinycError(f"{elf} is not a tinyc board image (no {', '.join(missing)})")
    out_addr, out_size = syms["tinyc_outputs"]
    stride = out_size // max(n_outputs, 1)
    dump = "\n".join(
        [
            "bus = machine.SystemBus",
            f"for i in range({n_outputs}):",
            f"    t = 0x{out_addr:x} + {stride} * i",
            f"    d = bus.ReadDoubleWord(t + {_TENSOR_DATA_OFFSET})",
            f"    n = bus.ReadDoubleWord(t + {_TENSOR_BYTES_OFFSET})",
            "    b = bus.ReadBytes(d, n)",
            "    print('<<tinyc OUT %d %s>>' % (i, ''.join(['%02x' % x for x in b])))",
            "print('<<tinyc END %d>>' % self.ExecutedInstructions)",
        ]
    )
    cmds = [
        f"cpu AddHook 0x{syms['tinyc_bench_begin'][0]:x} "
        "\"print('<<tinyc BEGIN %d>>' % self.ExecutedInstructions)\"",
        f'cpu AddHook 0x{syms["tinyc_bench_end"][0]:x} """\n{dump}\n"""',
        f"cpu AddHook 0x{syms['tinyc_platform_exit'][0]:x} \"print('<<tinyc EXIT>>')\"",
        f"cpu AddHook 0x{syms['tinyc_fault_handler'][0]:x} \"print('<<tinyc FAULT>>')\"",
    ]
    return "\n".join(cmds), syms


class _CaseLog:
    """What one case's Renode output says: marker lines and console UART lines."""

    EXIT_GRACE_S = 5.0  # after the exit marker, for the UART log to catch up

    def __init__(self, uart: re.Pattern[str]) -> None:
        self.uart = uart
        self.console: list[str] = []
        self.outputs: dict[int, bytes] = {}
        self.begin: int | None = None
        self.end: int | None = None
        self.fault = False
        self.exited_at: float | None = None

    def feed(self, line: str, now: float) -> None:
        m = self.uart.search(line)
        if m:
            self.console.append(m.group(1).strip())
        for mark, arg in _MARK.findall(line):
            if mark == "BEGIN":
                self.begin = int(arg)
            elif mark == "END":
                self.end = int(arg)
            elif mark == "OUT":
                idx, _, hexdata = arg.partition(" ")
                self.outputs[int(idx)] = bytes.fromhex(hexdata)
            elif mark in ("EXIT", "FAULT"):
                self.exited_at, self.fault = now, mark == "FAULT"

    def finished(self, now: float) -> bool:
        if self.exited_at is None:
            return False
        last = self.console[-1] if self.console else ""
        settled = last == "tinyc: done" or last.startswith("tinyc: fault")
        return settled or now - self.exited_at >= self.EXIT_GRACE_S

    def result(self, n_outputs: int) -> RenodeCase:
        fault_line = next((c for c in self.console if c.startswith("tinyc: fault")), None)
        if self.fault or fault_line:
            raise TinycError(f"the firmware faulted in Renode: {fault_line or 'no console line'}")
        if len(self.outputs) != n_outputs:
            raise TinycError(
                "Renode: the firmware exited before the inference ended "
                f"(console: {' | '.join(self.console[-3:]) or 'nothing'})"
            )
        stack = next((m for m in map(_STACK.search, self.console) if m), None)
        instructions = None
        if self.begin is not None and self.end is not None:
            instructions = self.end - self.begin
        return RenodeCase(
            outputs=[self.outputs[i] for i in range(n_outputs)],
            instructions=instructions,
            stack_bytes=int(stack.group(1)) if stack else 0,
            stack_size=int(stack.group(2)) if stack else 0,
            stack_inference_bytes=int(stack.group(3) or 0) if stack else 0,
            console=self.console,
        )


class RenodeSession:
    """One Renode process running one board image over several cases."""

    def __init__(
        self, elf: str | Path, board: Board, resc: str | Path, n_inputs: int, n_outputs: int
    ) -> None:
        check_renode_board(board)
        self.board = board
        self.elf = Path(elf).resolve()
        self.n_outputs = n_outputs
        self._tmp = tempfile.TemporaryDirectory(prefix="tinyc-renode-")
        self.workdir = Path(self._tmp.name)
        hooks, self.symbols = _hooks(self.elf, n_inputs, n_outputs)
        script = self.workdir / "session.resc"
        script.write_text(
            f"$elf=@{self.elf}\ninclude @{Path(resc).resolve()}\n{hooks}\n", encoding="utf-8"
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._log: list[str] = []
        cmd = [str(find_renode()), "--disable-xwt", "--plain", "--console", str(script)]
        try:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
                cwd=self.workdir,
            )
        except OSError as e:
            self._tmp.cleanup()
            raise TinycError(f"cannot start Renode ({cmd[0]}): {e}") from e
        threading.Thread(target=self._read, daemon=True).start()
        self._uart = re.compile(rf"\b{re.escape(board.renode_uart or '')}: \[[^\]]*\] (.*)$")

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _send(self, *commands: str) -> None:
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write("".join(c + "\n" for c in commands))
            self._proc.stdin.flush()
        except OSError as e:
            raise TinycError(f"Renode stopped: {self._tail()}") from e

    def _tail(self) -> str:
        errors = [ln for ln in self._log if "[ERROR]" in ln]
        last = errors[-1] if errors else (self._log[-1] if self._log else "no output")
        return re.sub(r"^\S+ \[\w+\] ", "", last.strip())

    def _load(self, symbol: str, data: bytes) -> str:
        if symbol not in self.symbols:
            raise TinycError(f"the board image has no {symbol}")
        addr, size = self.symbols[symbol]
        if size != len(data):
            raise TinycError(f"{symbol} holds {size} bytes, the case gives {len(data)}")
        path = self.workdir / f"{symbol}.bin"
        path.write_bytes(data)
        return f"sysbus LoadBinary @{path} 0x{addr:x}"

    def run(self, inputs: Sequence[bytes], expected: Sequence[bytes] | None = None) -> RenodeCase:
        """Reset, write the case into the image, run to the end; outputs and counts."""
        loads = [self._load(f"tinyc_test_input_{i}", bytes(x)) for i, x in enumerate(inputs)]
        if expected is not None:
            loads += [
                self._load(f"tinyc_test_expected_{i}", bytes(x))
                for i, x in enumerate(expected)
                if f"tinyc_test_expected_{i}" in self.symbols
            ]
        self._send("pause", "machine Reset", *loads, "start")
        case = _CaseLog(self._uart)
        deadline = time.monotonic() + CASE_TIMEOUT_S
        while not case.finished(time.monotonic()):
            now = time.monotonic()
            if now >= deadline:
                last = case.console[-1] if case.console else "none"
                raise TinycError(
                    f"Renode: the firmware did not finish within {CASE_TIMEOUT_S:.0f} s "
                    f"(last console line: {last})"
                )
            try:
                line = self._lines.get(timeout=min(0.5, deadline - now))
            except queue.Empty:
                continue
            if line is None:
                raise TinycError(f"Renode exited: {self._tail()}")
            self._log.append(line)
            if "CPU abort" in line:
                raise TinycError(f"Renode: {self._tail()}")
            case.feed(line, time.monotonic())
        return case.result(self.n_outputs)

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self._send("quit")
                self._proc.wait(timeout=20)
            except (TinycError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
        self._tmp.cleanup()

    def __enter__(self) -> RenodeSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

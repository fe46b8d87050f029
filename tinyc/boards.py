"""Board descriptions: one TOML data file per board in ``tinyc/boards/``, loaded into ``Board``.

A board says what the compiler and the firmware templates need: the core and its extensions, the
memory regions and which of them hold code, constants, data, stack and the tensor arena, the
console UART, the gcc flags, and the *emulated twin*: the QEMU machine with the same core that runs
the same code for validation and instruction counting.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from tinyc.errors import TinycError

CORES = ("cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55")
FPUS = ("none", "sp", "dp")
MVES = ("none", "int", "float")
MEMORY_KINDS = ("flash", "sram", "tcm", "ext")
#: what the linker script places, and where
LAYOUT_ROLES = ("code", "rodata", "data", "stack", "arena")
#: cores without the DWT cycle counter (ARMv6-M)
_NO_DWT_CYCCNT = ("cortex-m0plus",)


@dataclass(frozen=True)
class MemoryRegion:
    name: str
    base: int
    size: int
    kind: str  # flash | sram | tcm | ext
    note: str = ""
    usable: bool = True  # False: needs a controller set-up the generated firmware does not do

    @property
    def end(self) -> int:
        return self.base + self.size


@dataclass(frozen=True)
class Npu:
    name: str  # e.g. "ethos-u55-128"
    base: int


@dataclass(frozen=True)
class Console:
    """The UART the real-board firmware prints to; ``params`` are driver-specific register data."""

    name: str
    driver: str
    base: int | None
    baud: int = 115200
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Board:
    name: str
    aliases: tuple[str, ...]
    description: str
    mcu: str
    core: str
    fpu: str
    dsp: bool
    mve: str
    clock_hz: int
    reset_clock_hz: int
    flash_wait_states: int | None
    caches: bool
    memory: tuple[MemoryRegion, ...]
    layout: dict[str, str]
    console: Console
    gcc_mcpu: str
    gcc_float_abi: str
    gcc_fpu: str | None
    emulator: str
    qemu_machine: str | None = None
    npu: Npu | None = None
    renode_platform: str | None = None
    renode_uart: str | None = None
    #: platform-description lines the chip has but Renode's platform lacks (e.g. a RAM block),
    #: loaded after ``renode_platform``
    renode_additions: str | None = None
    boot2: bool = False
    notes: tuple[str, ...] = ()
    #: the start-up clock set-up (``[clock]``: sequence and numbers, see tinyc.clocks)
    clock: dict[str, Any] = field(default_factory=dict)
    #: how the board is flashed (``[flash]``: probe, tools and their parameters, see
    #: tinyc.emulate.readme)
    flash: dict[str, Any] = field(default_factory=dict)

    # ---- derived facts ----
    @property
    def gcc_flags(self) -> list[str]:
        flags = [f"-mcpu={self.gcc_mcpu}", "-mthumb", f"-mfloat-abi={self.gcc_float_abi}"]
        if self.gcc_fpu:
            flags.append(f"-mfpu={self.gcc_fpu}")
        return flags

    @property
    def has_dwt_cyccnt(self) -> bool:
        return self.core not in _NO_DWT_CYCCNT

    @property
    def is_emulator(self) -> bool:
        """True for QEMU machines (their own twin)."""
        return self.qemu_machine is not None

    @property
    def flash_bytes(self) -> int:
        return sum(r.size for r in self.memory if r.kind == "flash")

    @property
    def usable_flash_bytes(self) -> int:
        """Flash the generated firmware can use (not memories it does not set up)."""
        return sum(r.size for r in self.memory if r.kind == "flash" and r.usable)

    @property
    def usable_ram_bytes(self) -> int:
        """On-chip RAM (SRAM and TCMs) the generated firmware can use."""
        return sum(r.size for r in self.memory if r.kind in ("sram", "tcm") and r.usable)

    @property
    def sram_bytes(self) -> int:
        """On-chip RAM: SRAM and TCMs (external memories not counted)."""
        return sum(r.size for r in self.memory if r.kind in ("sram", "tcm"))

    def region(self, name: str) -> MemoryRegion:
        for r in self.memory:
            if r.name == name:
                return r
        names = ", ".join(r.name for r in self.memory)
        raise TinycError(f"board {self.name} has no memory region {name!r} (it has: {names})")

    def clock_plan(self):
        """What the board firmware's start-up sets (tinyc.clocks.ClockPlan)."""
        from tinyc.clocks import clock_plan

        return clock_plan(self)

    def twin(self) -> Board:
        """The emulated twin (a QEMU board with the same core)."""
        return load_board(self.emulator)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly description (addresses as hex strings)."""
        return {
            "name": self.name,
            "aliases": list(self.aliases),
            "description": self.description,
            "mcu": self.mcu,
            "core": self.core,
            "fpu": self.fpu,
            "dsp": self.dsp,
            "mve": self.mve,
            "npu": None
            if self.npu is None
            else {"name": self.npu.name, "base": hex(self.npu.base)},
            "clock_hz": self.clock_hz,
            "reset_clock_hz": self.reset_clock_hz,
            "clock_setup": self.clock_plan().summary,
            "flash_wait_states": self.flash_wait_states,
            "memory": [
                {
                    "name": r.name,
                    "base": hex(r.base),
                    "size": r.size,
                    "kind": r.kind,
                    "usable": r.usable,
                }
                for r in self.memory
            ],
            "layout": dict(self.layout),
            "flash_bytes": self.flash_bytes,
            "sram_bytes": self.sram_bytes,
            "usable_flash_bytes": self.usable_flash_bytes,
            "usable_ram_bytes": self.usable_ram_bytes,
            "console": {
                "name": self.console.name,
                "driver": self.console.driver,
                "base": None if self.console.base is None else hex(self.console.base),
                "baud": self.console.baud,
            },
            "gcc_flags": self.gcc_flags,
            "emulator": self.emulator,
            "qemu_machine": self.twin().qemu_machine,
            "renode_platform": self.renode_platform,
            "notes": list(self.notes),
        }


# ---------------------------------------------------------------------------------------------
# loading


def _board_files() -> dict[str, str]:
    """Board name (file stem) -> TOML text, from the package data."""
    root = resources.files("tinyc") / "boards"
    return {
        p.name[: -len(".toml")]: p.read_text(encoding="utf-8")
        for p in root.iterdir()
        if p.name.endswith(".toml")
    }


def _want(d: dict[str, Any], key: str, typ: type | tuple[type, ...], where: str) -> Any:
    if key not in d:
        raise TinycError(f"{where}: missing key {key!r}")
    v = d[key]
    if not isinstance(v, typ) or (typ is int and isinstance(v, bool)):
        raise TinycError(f"{where}: {key!r} has the wrong type ({type(v).__name__})")
    return v


def _one_of(value: str, allowed: tuple[str, ...], key: str, where: str) -> str:
    if value not in allowed:
        raise TinycError(f"{where}: {key} {value!r} is not one of {', '.join(allowed)}")
    return value


def _parse(stem: str, text: str) -> Board:
    where = f"board file {stem}.toml"
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise TinycError(f"{where}: {e}") from None
    name = _want(d, "name", str, where)
    if name != stem:
        raise TinycError(f"{where}: name {name!r} differs from the file name")
    memory = tuple(
        MemoryRegion(
            name=_want(m, "name", str, where),
            base=_want(m, "base", int, where),
            size=_want(m, "size", int, where),
            kind=_one_of(_want(m, "kind", str, where), MEMORY_KINDS, "memory kind", where),
            note=m.get("note", ""),
            usable=m.get("usable", True),
        )
        for m in _want(d, "memory", list, where)
    )
    by_name = {r.name: r for r in memory}
    if len(by_name) != len(memory):
        raise TinycError(f"{where}: duplicate memory region names")
    ordered = sorted(memory, key=lambda r: r.base)
    for a, b in zip(ordered, ordered[1:], strict=False):
        if a.end > b.base:
            raise TinycError(f"{where}: memory regions {a.name} and {b.name} overlap")
    layout = dict(_want(d, "layout", dict, where))
    for role in LAYOUT_ROLES:
        region = layout.get(role)
        if region not in by_name:
            raise TinycError(f"{where}: layout {role} = {region!r} is not a memory region")
        if not by_name[region].usable:
            raise TinycError(f"{where}: layout {role} = {region!r} is not usable")
    if by_name[layout["stack"]].kind in ("flash",) or by_name[layout["arena"]].kind == "flash":
        raise TinycError(f"{where}: stack and arena must be in RAM")
    c = _want(d, "console", dict, where)
    console = Console(
        name=_want(c, "name", str, where),
        driver=_want(c, "driver", str, where),
        base=c.get("base"),
        baud=c.get("baud", 115200),
        params={k: v for k, v in c.items() if k not in ("name", "driver", "base", "baud")},
    )
    gcc = _want(d, "gcc", dict, where)
    npu = d.get("npu")
    fpu = _one_of(_want(d, "fpu", str, where), FPUS, "fpu", where)
    float_abi = _want(gcc, "float_abi", str, where)
    if (fpu == "none") != (float_abi == "soft"):
        raise TinycError(f"{where}: fpu {fpu!r} does not match -mfloat-abi={float_abi}")
    board = Board(
        name=name,
        aliases=tuple(d.get("aliases", ())),
        description=_want(d, "description", str, where),
        mcu=_want(d, "mcu", str, where),
        core=_one_of(_want(d, "core", str, where), CORES, "core", where),
        fpu=fpu,
        dsp=_want(d, "dsp", bool, where),
        mve=_one_of(_want(d, "mve", str, where), MVES, "mve", where),
        clock_hz=_want(d, "clock_hz", int, where),
        reset_clock_hz=_want(d, "reset_clock_hz", int, where),
        flash_wait_states=d.get("flash_wait_states"),
        caches=d.get("caches", False),
        memory=memory,
        layout=layout,
        console=console,
        gcc_mcpu=_want(gcc, "mcpu", str, where),
        gcc_float_abi=float_abi,
        gcc_fpu=gcc.get("fpu"),
        emulator=_want(d, "emulator", str, where),
        qemu_machine=d.get("qemu_machine"),
        npu=None if npu is None else Npu(name=npu["name"], base=npu["base"]),
        renode_platform=d.get("renode_platform"),
        renode_uart=d.get("renode_uart"),
        renode_additions=d.get("renode_additions"),
        boot2=d.get("boot2", False),
        notes=tuple(d.get("notes", ())),
        clock=dict(d.get("clock", {})),
        flash=dict(d.get("flash", {})),
    )
    from tinyc.clocks import clock_plan

    clock_plan(board)  # refuses a clock set-up that does not give clock_hz
    return board


@functools.cache
def _all_boards() -> dict[str, Board]:
    return {stem: _parse(stem, text) for stem, text in sorted(_board_files().items())}


@functools.cache
def _alias_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for b in _all_boards().values():
        for key in (b.name, *b.aliases):
            k = key.lower()
            if k in index and index[k] != b.name:
                raise TinycError(f"board name or alias {key!r} used by {index[k]} and {b.name}")
            index[k] = b.name
    return index


def list_boards() -> list[Board]:
    """Every board, sorted by name."""
    return list(_all_boards().values())


def load_board(name: str) -> Board:
    """The board called ``name`` or one of its aliases (case-insensitive)."""
    key = _alias_index().get(name.lower())
    if key is None:
        known = ", ".join(b.name for b in list_boards())
        raise TinycError(f"unknown board {name!r} (known boards: {known})")
    board = _all_boards()[key]
    twin = _all_boards().get(board.emulator)
    if twin is None or twin.qemu_machine is None:
        raise TinycError(f"board {board.name}: emulator {board.emulator!r} is not a QEMU board")
    return board


def _kib(n: int) -> str:
    return f"{n >> 20} MB" if n % (1 << 20) == 0 else f"{n // 1024} KB"


def format_boards(boards: list[Board]) -> str:
    """The ``tinyc boards`` table."""
    from tinyc.table import render

    rows = []
    for b in boards:
        ext = [x for x, on in (("DSP", b.dsp), ("MVE", b.mve != "none")) if on]
        fpu = {"none": "-", "sp": "SP", "dp": "DP"}[b.fpu]
        rows.append(
            [
                b.name,
                b.core.removeprefix("cortex-").upper().replace("PLUS", "+"),
                fpu,
                "+".join(ext) or "-",
                b.npu.name if b.npu else "-",
                f"{b.clock_hz / 1e6:g} MHz",
                _kib(b.usable_flash_bytes) if b.usable_flash_bytes else "-",
                _kib(b.usable_ram_bytes),
                ", ".join(f"{r.name} {_kib(r.size)}" for r in b.memory if not r.usable) or "-",
                b.console.name,
                b.twin().qemu_machine or "-",
                Path(b.renode_platform).stem if b.renode_platform else "-",
            ]
        )
    headers = ["board", "core", "FPU", "ext", "NPU", "clock", "flash", "RAM",
               "not set up (not counted)", "console", "QEMU", "Renode"]  # fmt: skip
    return render(headers, rows, right=set()) + (
        "\nflash, RAM: what the generated firmware can use (on-chip RAM: SRAM and TCMs)"
        "\nQEMU: the twin that runs the code (run/validate default); Renode: the platform that "
        "runs the board image (--emulator renode)"
    )

"""Board data files: loading, aliases, consistency, vendor facts, gcc flags vs the compiler."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tinyc.boards import _board_files, _parse, list_boards, load_board
from tinyc.cli import main
from tinyc.errors import TinycError

REQUIRED = {
    "nucleo-f746": "cortex-m7",
    "disco-f746ng": "cortex-m7",
    "nucleo-h743zi2": "cortex-m7",
    "nucleo-l4r5zi": "cortex-m4",
    "stm32f4-discovery": "cortex-m4",
    "nrf52840dk": "cortex-m4",
    "arduino-nano-33-ble": "cortex-m4",
    "rpi-pico": "cortex-m0plus",
    "corstone-300": "cortex-m55",
    "mps2-an386": "cortex-m4",
    "mps2-an500": "cortex-m7",
    "mps3-an547": "cortex-m55",
}
#: QEMU machine of each core's emulated twin (the M0+ runs on the M3 machine: ARMv6-M code)
TWIN_MACHINE = {
    "cortex-m4": "mps2-an386",
    "cortex-m7": "mps2-an500",
    "cortex-m55": "mps3-an547",
    "cortex-m0plus": "mps2-an385",
}


def test_required_boards_and_cores():
    boards = {b.name: b for b in list_boards()}
    for name, core in REQUIRED.items():
        assert boards[name].core == core, name


def test_aliases_and_case():
    assert load_board("nucleo-f746zg").name == "nucleo-f746"
    assert load_board("NUCLEO-F746ZG").name == "nucleo-f746"
    assert load_board("pico").name == "rpi-pico"
    with pytest.raises(TinycError, match="unknown board 'nucleo-f999'.*nucleo-f746"):
        load_board("nucleo-f999")


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_twin_has_the_same_core(name):
    board = load_board(name)
    twin = board.twin()
    assert twin.qemu_machine == TWIN_MACHINE[board.core]
    if board.core != "cortex-m0plus":
        assert twin.core == board.core
    if board.is_emulator:
        assert twin is board


@pytest.mark.parametrize("board", list_boards(), ids=lambda b: b.name)
def test_board_is_consistent(board):
    regions = sorted(board.memory, key=lambda r: r.base)
    for a, b in zip(regions, regions[1:], strict=False):
        assert a.end <= b.base
    for role in ("code", "rodata", "data", "stack", "arena"):
        board.region(board.layout[role])
    assert board.region(board.layout["stack"]).kind != "flash"
    assert (board.fpu == "none") == (board.gcc_float_abi == "soft")
    assert board.console.name and board.console.driver
    assert board.clock_hz >= board.reset_clock_hz > 0
    json.dumps(board.to_dict())


def test_vendor_facts():
    """Spot checks against the vendors' reference manuals / device trees (see the board files)."""
    f746 = load_board("nucleo-f746")
    assert (f746.region("dtcm").base, f746.region("dtcm").size) == (0x20000000, 64 * 1024)
    assert (f746.region("sram1").base, f746.region("sram1").size) == (0x20010000, 240 * 1024)
    assert (f746.region("sram2").base, f746.region("sram2").size) == (0x2004C000, 16 * 1024)
    assert f746.console.name == "USART3" and f746.console.base == 0x40004800
    assert f746.gcc_fpu == "fpv5-sp-d16"
    h7 = load_board("nucleo-h743zi2")
    assert (h7.region("axi_sram").base, h7.region("axi_sram").size) == (0x24000000, 512 * 1024)
    assert h7.fpu == "dp" and h7.gcc_fpu == "fpv5-d16"
    l4 = load_board("nucleo-l4r5zi")
    assert sum(r.size for r in l4.memory if r.kind == "sram") == 640 * 1024
    assert l4.console.name == "LPUART1"
    nano = load_board("arduino-nano-33-ble")
    assert (nano.region("flash").base, nano.region("flash").end) == (0x10000, 0xF8000)
    pico = load_board("rpi-pico")
    assert (pico.region("flash").base, pico.flash_bytes) == (0x10000000, 2 << 20)
    assert pico.sram_bytes == 264 * 1024 and not pico.has_dwt_cyccnt and pico.boot2
    cs300 = load_board("corstone-300")
    assert cs300.npu is not None and (cs300.npu.name, cs300.npu.base) == (
        "ethos-u55-128",
        0x48102000,
    )
    assert cs300.mve == "float"


def test_renode_platforms():
    have = {b.name: b.renode_platform for b in list_boards() if b.renode_platform}
    assert have["disco-f746ng"] == "platforms/boards/stm32f7_discovery-bb.repl"
    assert have["nrf52840dk"] == "platforms/boards/nrf52840dk_nrf52840.repl"
    assert "nucleo-l4r5zi" not in have and "rpi-pico" not in have
    for b in list_boards():
        assert bool(b.renode_platform) == bool(b.renode_uart), b.name


def test_bad_board_files_are_reported():
    good = _board_files()["mps2-an386"]
    with pytest.raises(TinycError, match="differs from the file name"):
        _parse("other", good)
    overlapping = good.replace("base = 0x20000000", "base = 0x00100000")
    with pytest.raises(TinycError, match="overlap"):
        _parse("mps2-an386", overlapping)
    with pytest.raises(TinycError, match="core 'cortex-m99'"):
        _parse("mps2-an386", good.replace('core = "cortex-m4"', 'core = "cortex-m99"'))
    with pytest.raises(TinycError, match="layout arena = 'nowhere'"):
        _parse("mps2-an386", good.replace('arena = "psram"', 'arena = "nowhere"'))


def test_cli_boards(capsys):
    assert main(["boards"]) == 0
    out = capsys.readouterr().out
    assert "nucleo-f746" in out and "mps3-an547" in out and "ethos-u55-128" in out
    assert main(["boards", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    names = [b["name"] for b in data["boards"]]
    assert names == sorted(names) and set(REQUIRED) <= set(names)


def _gcc_macros(flags: list[str]) -> dict[str, str]:
    r = subprocess.run(
        ["arm-none-eabi-gcc", *flags, "-dM", "-E", "-x", "c", "/dev/null"],
        capture_output=True,
        text=True,
        check=True,
    )
    macros = {}
    for line in r.stdout.splitlines():
        _, name, *value = line.split(maxsplit=2)
        macros[name] = value[0] if value else ""
    return macros


@pytest.mark.qemu
@pytest.mark.parametrize("board", list_boards(), ids=lambda b: b.name)
def test_gcc_flags_match_the_board(board):
    """The compiler, given the board's flags, agrees on FPU, DSP and MVE."""
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed")
    macros = _gcc_macros(board.gcc_flags)
    assert ("__ARM_FP" in macros) == (board.fpu != "none")
    assert ("__ARM_FEATURE_DSP" in macros) == board.dsp
    assert ("__ARM_FEATURE_MVE" in macros) == (board.mve != "none")
    if board.fpu != "none":  # __ARM_FP bit 3: double precision
        assert bool(int(macros["__ARM_FP"], 0) & 8) == (board.fpu == "dp")


@pytest.mark.qemu
def test_twin_machines_exist_in_qemu():
    if shutil.which("qemu-system-arm") is None:
        pytest.skip("qemu-system-arm not installed")
    out = subprocess.run(
        ["qemu-system-arm", "-M", "help"], capture_output=True, text=True, check=True
    ).stdout
    machines = {line.split()[0] for line in out.splitlines()[1:] if line.strip()}
    for b in list_boards():
        assert b.twin().qemu_machine in machines, b.name

"""The README.md of a generated project: what is in it, how to build it, flash it, read its
console, and what the firmware prints. Deterministic: the same project gives the same text.

How a board is flashed comes from its board file's ``[flash]`` table: a short description of the
probe and the list of ``tools``, each turned into commands here (with the parameters the table
gives: ``openocd`` arguments, ``pyocd_target``/``pyocd_pack``, the USB ``drive`` name).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinyc.boards import Board
from tinyc.errors import TinycError

BUILD = "build/board"
#: every tool a board file may list, in the order the README shows them
TOOLS = (
    "uf2",
    "picotool",
    "st-flash",
    "stm32cubeprog",
    "nrfjprog",
    "bossac",
    "openocd",
    "pyocd",
    "drive",
    "fvp",
    "qemu",
)


@dataclass(frozen=True)
class FlashMethod:
    tool: str  # the name in the board file
    title: str
    commands: tuple[str, ...]  # shell lines; "# ..." lines are instructions
    note: str = ""


def flash_methods(board: Board, single_image: bool) -> list[FlashMethod]:
    """How to put ``build/board/firmware.*`` on the board, one entry per tool of its board file."""
    f = board.flash
    tools = list(f.get("tools", ()))
    unknown = [t for t in tools if t not in TOOLS]
    if unknown:
        raise TinycError(f"board {board.name}: unknown flash tool(s) {', '.join(unknown)}")
    elf, hexf, binf, uf2 = (f"{BUILD}/firmware.{x}" for x in ("elf", "hex", "bin", "uf2"))
    base = board.region(board.layout["code"]).base
    image = binf if single_image else hexf
    out: list[FlashMethod] = []
    for tool in sorted(tools, key=TOOLS.index):
        if tool == "uf2":
            out.append(
                FlashMethod(
                    tool,
                    "UF2 file (no tool needed)",
                    (
                        "# hold BOOTSEL while plugging in the USB cable: a drive "
                        f"{f.get('drive', 'RPI-RP2')} appears",
                        f"cp {uf2} /media/$USER/{f.get('drive', 'RPI-RP2')}/",
                    ),
                    "The board reboots into the firmware when the copy completes.",
                )
            )
        elif tool == "picotool":
            out.append(
                FlashMethod(
                    tool,
                    "picotool",
                    ("# BOOTSEL mode as above", f"picotool load -x {uf2}"),
                    "-x starts the firmware after loading.",
                )
            )
        elif tool == "st-flash":
            cmd = (
                f"st-flash --reset write {binf} 0x{base:08X}"
                if single_image
                else f"st-flash --reset --format ihex write {hexf}"
            )
            out.append(
                FlashMethod(tool, "st-flash (stlink-tools)", (cmd,), "apt-get install stlink-tools")
            )
        elif tool == "stm32cubeprog":
            out.append(
                FlashMethod(
                    tool,
                    "STM32CubeProgrammer command line",
                    (f"STM32_Programmer_CLI -c port=SWD -w {hexf} -v -rst",),
                )
            )
        elif tool == "nrfjprog":
            out.append(
                FlashMethod(
                    tool,
                    "nrfjprog (nRF Command Line Tools)",
                    (f"nrfjprog -f nrf52 --program {hexf} --sectorerase --verify --reset",),
                )
            )
        elif tool == "bossac":
            out.append(
                FlashMethod(
                    tool,
                    "bossac (the Arduino boot loader)",
                    (
                        "# double-tap the reset button: the orange LED pulses, the boot loader "
                        "shows up as /dev/ttyACM0",
                        f"bossac -d --port=ttyACM0 -U -i -e -w {binf} -R",
                    ),
                    "bossac 1.9.1-arduino2 comes with the Arduino mbed_nano core "
                    "(~/.arduino15/packages/arduino/tools/bossac/); the boot loader writes the "
                    f"image at 0x{base:X}, where it is linked, and keeps itself below it.",
                )
            )
        elif tool == "openocd":
            args = _want(f, "openocd", board)
            probe = "cmsis-dap" in args
            out.append(
                FlashMethod(
                    tool,
                    "OpenOCD",
                    (f'openocd {args} -c "program {elf} verify reset exit"',),
                    "With a CMSIS-DAP probe (e.g. a Raspberry Pi Debug Probe) on the SWD pins."
                    if probe
                    else "",
                )
            )
        elif tool == "pyocd":
            target = _want(f, "pyocd_target", board)
            cmds = [f"pyocd pack install {f['pyocd_pack']}"] if f.get("pyocd_pack") else []
            cmds.append(f"pyocd flash -t {target} {elf}")
            note = "pip install pyocd" + (
                "; the pack install (once) fetches the device's CMSIS pack"
                if f.get("pyocd_pack")
                else ""
            )
            out.append(FlashMethod(tool, "pyOCD", tuple(cmds), note))
        elif tool == "drive":
            drive = f.get("drive")
            out.append(
                FlashMethod(
                    tool,
                    f"USB drive of the debug probe ({drive})"
                    if drive
                    else "USB drive of the debug probe",
                    (f"cp {image} /media/$USER/{drive or '<the probe drive>'}/",),
                    "The probe programs the file it receives and resets the board.",
                )
            )
        elif tool == "fvp":
            out.append(
                FlashMethod(
                    tool,
                    "Arm Corstone-300 FVP",
                    (
                        f"FVP_Corstone_SSE-300_Ethos-U55 -a {elf} "
                        "-C mps3_board.visualisation.disable-visualisation=1 "
                        "-C mps3_board.telnetterminal0.start_telnet=0 "
                        "-C mps3_board.uart0.out_file=- -C ethosu.num_macs=128",
                    ),
                    "UART0 goes to the FVP's standard output. On an MPS3 board, copy the "
                    "image to the board's SD card and name it in its images.txt.",
                )
            )
        elif tool == "qemu":
            machine = board.twin().qemu_machine
            out.append(
                FlashMethod(
                    tool,
                    "QEMU",
                    (f"qemu-system-arm -M {machine} -nographic -kernel {elf}",),
                    "UART0 is the terminal (quit with Ctrl-A x). QEMU does not model the DWT "
                    "cycle counter: the firmware prints 0 cycles there.",
                )
            )
    return out


def _want(f: dict[str, Any], key: str, board: Board) -> str:
    if not f.get(key):
        raise TinycError(f"board {board.name}: [flash] needs {key!r} for its tools")
    return str(f[key])


def fnv1a(data: bytes) -> int:
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def expected_output(
    board: Board,
    model_name: str,
    expected: Sequence[bytes],
    dtypes: Sequence[str | None],
    stack_bytes: int,
) -> list[str]:
    """What app/main.c prints on the console (numbers that vary shown as <...>)."""
    plan = board.clock_plan()
    mhz = plan.sysclk_hz // 1_000_000
    lines = [f"tinyc: {model_name} on {board.name}", f"tinyc: clock {plan.sysclk_hz} Hz"]
    if board.is_emulator:  # QEMU does not model the cycle counter
        lines.append("tinyc: cycles 0")
    else:
        lines.append(f"tinyc: cycles <cycles> (<cycles / {mhz}> us at {mhz} MHz)")
    lines.append(f"tinyc: stack <bytes> of {stack_bytes} bytes (inference <bytes>)")
    if not expected:  # no reference outputs embedded: nothing to compare
        lines.append("tinyc: output <i> fnv1a <hash> values <first 16 values>")
    for i, (data, dtype) in enumerate(zip(expected, dtypes, strict=True)):
        line = f"tinyc: output {i} fnv1a 0x{fnv1a(data):08x}"
        if dtype in ("int8", "uint8"):
            vals = np.frombuffer(data, dtype=dtype)
            line += " values " + " ".join(str(int(v)) for v in vals[:16])
            if len(vals) > 16:
                line += " ..."
        elif dtype is None:
            line += " [values <first 16 values, int8/uint8 outputs>]"
        lines.append(line + " matches")
    lines += ["tinyc: PASS", "tinyc: done"]
    return lines

"""Render the firmware skeleton of a project: everything but ``model/`` and ``runtime/``.

Files written (relative to the project directory)::

    app/main.c, app/test_data.c/.h     real-board main: embedded test input, UART report
    app/main_files.c                   emulator + host main: input_<i>.bin -> output_<i>.bin
    app/tinyc_util.c, tinyc_platform.h benchmark markers, printing, the target-glue interface
    README.md                          what is in it, build, flash, console, expected output
    board/hw/     startup.c clock.c console.c linker.ld     the real board (+ boot2.S on the RP2040)
    board/emu/    startup.c semihost.c linker.ld    its emulated twin (QEMU, semihosting)
    board/host/   platform_host.c                   the host build
    data/input_<i>.bin, data/expected_<i>.bin       test case for make run-emu / run-host / CI
    Makefile, CMakeLists.txt, cmake/arm-none-eabi.cmake
    renode/<board>.resc, renode/<model>.robot       (boards with an upstream Renode platform)
    tools/rp2040_image.py, cmake/rp2040_image.cmake (RP2040: boot loader checksum, UF2)
    .github/workflows/tinyc-firmware.yml

The C backend adds ``model/model.h``, ``model/model.c`` (the contract's API) and ``runtime/``; the
build globs ``model/*.c`` and ``runtime/*.c``. The model must put its tensor arena in the section
``.tinyc_arena`` on Arm (the linker scripts place it in the chosen RAM region, not zeroed) and may
put weights in ``.tinyc_weights`` (placed with ``.rodata``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinyc import __version__
from tinyc.boards import LAYOUT_ROLES, Board, load_board
from tinyc.errors import TinycError
from tinyc.templating import template_env

DEFAULT_STACK_BYTES = 16 * 1024
#: console drivers whose register sequence has run in an emulator (tests/test_emulate.py,
#: tests/test_renode.py: the board image in Renode)
TESTED_DRIVERS = {
    "cmsdk-uart": "QEMU mps2-an386, mps2-an500, mps3-an547",
    "stm32-usart-v1": "QEMU netduinoplus2, whose STM32F405 model has the USART registers but "
    "does not model RCC or GPIO; and Renode's STM32F4 Discovery platform",
    "stm32-usart-v2": "Renode's STM32F746 and STM32H753 platforms",
    "nrf-uarte": "Renode's nRF52840 platform",
}


def qemu_args(machine: str) -> list[str]:
    """QEMU options (everything but -kernel) to run firmware built for ``machine``."""
    return [
        "-M",
        machine,
        "-nographic",
        "-monitor",
        "none",
        "-semihosting-config",
        "enable=on,target=native",
    ]


@dataclass(frozen=True)
class _Blob:
    size: int
    text: str


def _as_bytes(x: bytes | np.ndarray, what: str) -> bytes:
    if isinstance(x, np.ndarray):
        return np.ascontiguousarray(x).tobytes()
    if isinstance(x, bytes | bytearray | memoryview):
        return bytes(x)
    raise TinycError(f"{what}: expected bytes or a numpy array, got {type(x).__name__}")


def _blob(data: bytes) -> _Blob:
    rows = [
        "  " + ", ".join(f"0x{b:02x}" for b in data[i : i + 16]) + ","
        for i in range(0, len(data), 16)
    ]
    return _Blob(size=len(data), text="\n".join(rows))


def _c_string(s: str) -> str:
    """Escape for use inside a C string literal."""
    return "".join(c if c.isprintable() and c not in '"\\' else f"\\{ord(c):03o}" for c in s)


def _ident(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", s) or "model"


def _uart_params(board: Board) -> dict[str, Any]:
    """Driver register values computed from the board's console description, at the UART clock
    after the start-up clock set-up (the firmware computes them at run time; these are for the
    comments, and checked for the reset clock too)."""
    c, p = board.console, board.console.params
    plan = board.clock_plan()
    clk = plan.console_hz
    if c.driver in ("stm32-usart-v1", "stm32-usart-v2", "stm32-lpuart"):
        pin = int(p["tx_pin"][2:])
        brr = round(256 * clk / c.baud) if c.driver == "stm32-lpuart" else round(clk / c.baud)
        for hz in (clk, plan.reset_console_hz):
            lp = round(256 * hz / c.baud)
            if c.driver == "stm32-lpuart" and not 0x300 <= lp < 1 << 20:
                raise TinycError(
                    f"board {board.name}: LPUART clock {hz} Hz cannot make {c.baud} baud"
                )
        return {
            "gpio_base": p["gpio_base"],
            "gpio_af": p["gpio_af"],
            "tx_pin": p["tx_pin"],
            "pin": pin,
            "afr": 0x20 if pin < 8 else 0x24,
            "af_shift": 4 * (pin % 8),
            "brr": brr,
            "enable_bits": [tuple(x) for x in p.get("enable_bits", [])],
        }
    if c.driver == "nrf-uarte":
        port, pin = p["tx_port"], p["tx_pin"]
        return {"port": port, "pin": pin, "gpio_base": 0x50000000 + 0x300 * port,
                "psel": pin | (port << 5)}  # fmt: skip
    if c.driver == "rp2040-uart":
        div = clk / (16 * c.baud)
        ibrd, fbrd = int(div), round((div - int(div)) * 64)
        if fbrd == 64:
            ibrd, fbrd = ibrd + 1, 0
        return {"pin": p["tx_pin"], "ibrd": ibrd, "fbrd": fbrd}
    if c.driver == "cmsdk-uart":
        return {"bauddiv": max(16, clk // c.baud)}
    raise TinycError(f"board {board.name}: unknown console driver {c.driver!r}")


def _layout(
    board: Board, override: Mapping[str, str] | None, arena_bytes: int, stack_bytes: int
) -> dict[str, str]:
    """The board's region roles, with overrides, and the arena moved if it does not fit."""
    layout = dict(board.layout)
    for role, region in (override or {}).items():
        if role not in LAYOUT_ROLES:
            raise TinycError(f"unknown layout role {role!r} (roles: {', '.join(LAYOUT_ROLES)})")
        if not board.region(region).usable:
            raise TinycError(f"board {board.name}: region {region} is not usable ({role})")
        layout[role] = region
    for role in ("stack", "arena", "data"):
        if board.region(layout[role]).kind == "flash":
            raise TinycError(f"board {board.name}: the {role} cannot go in flash ({layout[role]})")

    def free(name: str) -> int:
        return board.region(name).size - (stack_bytes if name == layout["stack"] else 0)

    if stack_bytes > board.region(layout["stack"]).size:
        raise TinycError(
            f"board {board.name}: a {stack_bytes}-byte stack does not fit {layout['stack']}"
        )
    if arena_bytes > free(layout["arena"]) and not (override and "arena" in override):
        # (never at address 0: a tensor there would be a null pointer)
        fitting = [
            r
            for r in board.memory
            if r.kind != "flash" and r.base != 0 and free(r.name) >= arena_bytes
        ]
        if fitting:
            # on-chip first, then the smallest region that fits
            best = min(fitting, key=lambda r: (r.kind == "ext", r.size))
            layout["arena"] = best.name
    if arena_bytes > free(layout["arena"]):
        ram = [r for r in board.memory if r.kind != "flash" and r.usable]
        biggest = max(ram, key=lambda r: free(r.name))
        raise TinycError(
            f"the tensor arena ({arena_bytes} bytes) does not fit in any RAM region of board "
            f"{board.name} (largest free: {biggest.name}, {free(biggest.name)} bytes)"
        )
    return layout


def render_project(
    out_dir: str | Path,
    board: Board | str,
    model_name: str,
    test_inputs: Sequence[bytes | np.ndarray],
    expected_outputs: Sequence[bytes | np.ndarray] | None = None,
    *,
    arena_bytes: int = 0,
    stack_bytes: int = DEFAULT_STACK_BYTES,
    layout: Mapping[str, str] | None = None,
    emu_layout: Mapping[str, str] | None = None,
    extra_sources: Sequence[str] = (),
    extra_include_dirs: Sequence[str] = (),
    extra_cflags: Sequence[str] = (),
    make_vars: Mapping[str, str] | None = None,
    project_path: str = ".",
    fetched_libraries: Sequence[Mapping[str, str]] = (),
    backend: str = "cmsis",
) -> list[str]:
    """Write the firmware skeleton for ``board`` into the existing directory ``out_dir``.

    Args:
        board: a ``Board`` or a board name/alias; its emulated twin is ``board.twin()``.
        model_name: shown in console messages and used for file names (renode/<name>.robot).
        test_inputs: one per model input, in ``tinyc_inputs`` order, each exactly the tensor's
            bytes (``tinyc_inputs[i].bytes``) in the model file's layout and dtype. Embedded in
            the board firmware and written to ``data/input_<i>.bin``.
        expected_outputs: optional, one per output: the board firmware compares with them and
            ``make run-emu``/``run-host``/CI check them (``data/expected_<i>.bin``).
        arena_bytes: size of the ``.tinyc_arena`` section, used to pick a RAM region that holds it
            (the board's ``layout.arena`` if it fits, else the smallest on-chip one that does).
        stack_bytes: the stack reserved (and painted for the high-water mark).
        layout / emu_layout: region-role overrides ({"arena": "sram3", ...}) for the board and
            for the twin.
        extra_sources / extra_include_dirs / extra_cflags: added to every build (e.g. CMSIS-NN
            sources as ``$(CMSIS_NN)/Source/...`` with ``make_vars={"CMSIS_NN": path}``).
        project_path: where the project sits in the user's repository (for the CI workflow).
        fetched_libraries: libraries the build takes from a directory in an environment
            variable ({"name", "env", "url", "md5"}): the CI workflow downloads and checks
            each archive and sets the variable.
        backend: "cmsis" or "tflm", for the README (the TFLM backend replaces the Makefile and
            CMakeLists.txt afterwards).

    Returns the relative paths written, sorted. Same arguments -> byte-identical files.
    """
    out = Path(out_dir)
    if not out.is_dir():
        raise TinycError(f"{out} is not a directory")
    board = load_board(board) if isinstance(board, str) else board
    twin = board.twin()
    inputs = [_as_bytes(x, f"test input {i}") for i, x in enumerate(test_inputs)]
    expected = [_as_bytes(x, f"expected output {i}") for i, x in enumerate(expected_outputs or [])]
    if not inputs or any(len(b) == 0 for b in inputs):
        raise TinycError("a test input is needed for every model input, none may be empty")
    if any(len(b) == 0 for b in expected):
        raise TinycError("expected outputs may not be empty")
    if stack_bytes < 1024 or stack_bytes % 8:
        raise TinycError(f"stack size {stack_bytes} must be a multiple of 8 and at least 1024")

    dtypes = [x.dtype.name if isinstance(x, np.ndarray) else None for x in expected_outputs or []]
    hw_layout = _layout(board, layout, arena_bytes, stack_bytes)
    twin_layout = _layout(twin, emu_layout, arena_bytes, stack_bytes)
    common: dict[str, Any] = {
        "version": __version__,
        "board": board,
        "twin": twin,
        "model_name": _c_string(model_name),
    }
    v6m = board.core == "cortex-m0plus"
    hw = {
        "target_desc": f"the {board.description}",
        "layout": hw_layout,
        "regions": board.memory,
        "stack_size": stack_bytes,
        "caches": board.caches,
        "cycles": "dwt" if board.has_dwt_cyccnt else "systick",
        "boot2": board.boot2,
        "clock_init": True,
    }
    emu = {
        "target_desc": f"the emulated twin of the {board.name}: QEMU {twin.qemu_machine}",
        "layout": twin_layout,
        "regions": twin.memory,
        "stack_size": stack_bytes,
        "caches": False,
        "cycles": "none",
        "boot2": False,
        "clock_init": False,
    }
    name_id = _ident(model_name)
    make_items = sorted((make_vars or {}).items())
    build_ctx = {
        "single_image": hw_layout["rodata"] == hw_layout["code"],
        "extra_sources": " ".join(extra_sources),
        "extra_includes": " ".join(f"-I{d}" for d in extra_include_dirs),
        "extra_cflags": " ".join(extra_cflags),
        "extra_sources_cmake": ";".join(extra_sources).replace("$(", "${").replace(")", "}"),
        "extra_includes_cmake": ";".join(extra_include_dirs).replace("$(", "${").replace(")", "}"),
        "extra_cflags_cmake": " ".join(extra_cflags),
        "make_vars": make_items,
        "qemu_args": " ".join(qemu_args(twin.qemu_machine)),
        "num_expected": len(expected),
        "cmake_name": f"tinyc_{name_id}",
        "project_path": project_path,
        "fetched_libraries": list(fetched_libraries),
    }
    resc_name = f"{board.name}.resc"
    robot_name = f"{name_id}.robot"
    files: dict[str, tuple[str, dict[str, Any]]] = {
        "app/tinyc_platform.h": ("app/tinyc_platform.h.j2", {}),
        "app/tinyc_util.c": ("app/tinyc_util.c.j2", {}),
        "app/main.c": ("app/main.c.j2", {}),
        "app/main_files.c": ("app/main_files.c.j2", {}),
        "app/test_data.h": ("app/test_data.h.j2", {"inputs": inputs, "expected": expected}),
        "app/test_data.c": (
            "app/test_data.c.j2",
            {"inputs": [_blob(b) for b in inputs], "expected": [_blob(b) for b in expected]},
        ),
        "board/hw/startup.c": ("board/startup.c.j2", hw),
        "board/hw/clock.c": ("board/clock.c.j2", {"plan": board.clock_plan()}),
        "board/hw/linker.ld": ("board/linker.ld.j2", hw),
        "board/hw/console.c": (
            "board/console_uart.c.j2",
            {
                "console": _console_ctx(board),
                "uart": _uart_params(board),
                "tested_drivers": TESTED_DRIVERS,
                "v6m": v6m,
            },
        ),
        "board/emu/startup.c": ("board/startup.c.j2", emu),
        "board/emu/linker.ld": ("board/linker.ld.j2", emu),
        "board/emu/semihost.c": ("board/semihost.c.j2", {}),
        "board/host/platform_host.c": ("board/platform_host.c.j2", {}),
        "Makefile": ("build/Makefile.j2", build_ctx),
        "CMakeLists.txt": ("build/CMakeLists.txt.j2", build_ctx),
        "cmake/arm-none-eabi.cmake": ("build/arm-none-eabi.cmake.j2", {}),
        ".github/workflows/tinyc-firmware.yml": ("ci/tinyc-firmware.yml.j2", build_ctx),
    }
    if board.boot2:
        files["board/hw/boot2.S"] = (
            "board/boot2_rp2040.S.j2",
            {"clkdiv": board.flash.get("boot2_clkdiv", 4)},
        )
        files["tools/rp2040_image.py"] = ("tools/rp2040_image.py.j2", {})
        files["cmake/rp2040_image.cmake"] = ("build/rp2040_image.cmake.j2", {})
    files["README.md"] = (
        "project/README.md.j2",
        _readme_ctx(
            board, model_name, hw, build_ctx, expected, dtypes, arena_bytes, stack_bytes, backend
        ),
    )
    if board.renode_platform:
        names = {"resc_name": resc_name, "robot_name": robot_name}
        files[f"renode/{resc_name}"] = ("renode/board.resc.j2", names)
        files[f"renode/{robot_name}"] = ("renode/model.robot.j2", names)

    env = template_env()
    written = []
    for rel, (template, ctx) in files.items():
        text = env.get_template(template).render(**common, **ctx)
        _write(out / rel, text.encode())
        written.append(rel)
    for i, b in enumerate(inputs):
        _write(out / f"data/input_{i}.bin", b)
        written.append(f"data/input_{i}.bin")
    for i, b in enumerate(expected):
        _write(out / f"data/expected_{i}.bin", b)
        written.append(f"data/expected_{i}.bin")
    return sorted(written)


def _readme_ctx(
    board: Board,
    model_name: str,
    hw: Mapping[str, Any],
    build_ctx: Mapping[str, Any],
    expected: Sequence[bytes],
    dtypes: Sequence[str | None],
    arena_bytes: int,
    stack_bytes: int,
    backend: str,
) -> dict[str, Any]:
    from tinyc.boards import _kib
    from tinyc.emulate.readme import expected_output, flash_methods

    c = board.console
    connection = c.params.get("connection", "")
    port = ""
    if "virtual COM port" in connection:
        port = "/dev/ttyACM0"
    elif "USB-serial" in connection:
        port = "/dev/ttyUSB0"
    tx = c.params.get("tx_pin")
    if c.driver == "nrf-uarte":
        tx = f"P{c.params['tx_port']}.{c.params['tx_pin']:02d}"
    elif c.driver == "rp2040-uart":
        tx = f"GP{c.params['tx_pin']}"
    regions = {r.name: f"{r.name} (0x{r.base:08X}, {_kib(r.size)})" for r in board.memory}
    return {
        "model_title": model_name,
        "backend": backend,
        "plan": board.clock_plan(),
        "flash": flash_methods(board, build_ctx["single_image"]),
        "expected": expected_output(board, model_name, expected, dtypes, stack_bytes),
        "console": {
            "name": c.name,
            "baud": c.baud,
            "tx_pin": str(tx) if tx is not None else "",
            "rx_pin": c.params.get("rx_pin", ""),
            "connection": connection,
            "port": port,
        },
        "regions": regions,
        "layout": hw["layout"],
        "caches": hw["caches"],
        "cycles": hw["cycles"],
        "arena_bytes": arena_bytes,
        "stack_bytes": stack_bytes,
        "single_image": build_ctx["single_image"],
        "make_vars": build_ctx["make_vars"],
        "fetched_libraries": build_ctx["fetched_libraries"],
    }


def _console_ctx(board: Board) -> dict[str, Any]:
    c = board.console
    plan = board.clock_plan()
    return {
        "name": c.name,
        "driver": c.driver,
        "base": c.base,
        "baud": c.baud,
        "clock_hz": plan.console_hz,
        "reset_clock_hz": plan.reset_console_hz,
    }


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)

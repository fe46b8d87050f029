"""Start-up clock plans: what a board's firmware (``board/hw/clock.c``) sets before ``main``.

A board file's ``[clock]`` table names the register sequence (``setup``) and its numbers (PLL
input and dividers, bus prescalers); ``clock_plan(board)`` computes the frequencies they give,
checks them against the limits of the vendor's reference manual and against the board's
``clock_hz`` (the clock ``tinyc estimate`` assumes), and returns the register values the
template writes. The sequences themselves are in ``templates/board/clock.c.j2``.

Sequences (``setup``):
- ``stm32f7``: HSI -> PLL -> SYSCLK with over-drive (RM0385 5.3.2, 4.4.1; flash 3.3.2).
- ``stm32f4``: HSI -> PLL -> SYSCLK, voltage scale 1 (RM0090 6.3.2, 5.4.1; flash 3.5.1).
- ``stm32h7``: LDO supply, VOS1 then VOS0 (SYSCFG_PWRCR.ODEN), HSI -> PLL1 (RM0433 6.8, 8.7).
- ``stm32l4plus``: range 1 boost (PWR_CR5.R1MODE), HSI16 -> PLL (RM0432 5.1.8, 6.2.5).
- ``nrf52``: start the 64 MHz crystal oscillator (HFXO) and the NVMC instruction cache.
- ``rp2040``: XOSC -> PLL_SYS -> clk_sys, clk_peri from clk_sys (RP2040 datasheet 2.15-2.18).
- ``none``: nothing (QEMU machines, FPGA images and FVPs run at their fixed clock).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tinyc.errors import TinycError

if TYPE_CHECKING:
    from tinyc.boards import Board

SETUPS = ("none", "stm32f4", "stm32f7", "stm32h7", "stm32l4plus", "nrf52", "rp2040")
MHZ = 1_000_000

#: STM32 prescaler encodings: AHB-type (4 bits: HPRE, D1CPRE) and APB-type (3 bits: PPREx)
_AHB_CODE = {1: 0, 2: 8, 4: 9, 8: 10, 16: 11, 64: 12, 128: 13, 256: 14, 512: 15}
_APB_CODE = {1: 0, 2: 4, 4: 5, 8: 6, 16: 7}


@dataclass(frozen=True)
class ClockPlan:
    """The clocks after the start-up set-up, and the register values that give them."""

    setup: str
    sysclk_hz: int  # the core clock
    console_hz: int  # the console UART's kernel clock
    reset_hz: int  # the core clock if the set-up fails (the reset clock)
    reset_console_hz: int
    buses: tuple[tuple[str, int], ...] = ()  # ("AHB", hz), ("APB1", hz), ...
    steps: tuple[str, ...] = ()  # what the set-up does, in order, for comments and the README
    regs: dict[str, int] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        """One line: ``216 MHz (HSI 16 MHz / 8 x 216 / 2; ...)``."""
        return f"{self.sysclk_hz / MHZ:g} MHz" + (
            f" ({'; '.join(self.steps)})" if self.steps else ""
        )


def _int(c: dict[str, Any], key: str, where: str) -> int:
    v = c.get(key)
    if not isinstance(v, int) or isinstance(v, bool):
        raise TinycError(f"{where}: [clock] needs an integer {key!r}")
    return v


def _pll(c: dict[str, Any], keys: tuple[str, ...], where: str) -> dict[str, int]:
    p = c.get("pll")
    if not isinstance(p, dict):
        raise TinycError(f"{where}: [clock] needs a pll table ({', '.join(keys)})")
    return {k: _int(p, k, where + " [clock.pll]") for k in keys}


def _check(ok: bool, where: str, what: str) -> None:
    if not ok:
        raise TinycError(f"{where}: clock set-up: {what}")


def _div(num: int, den: int, where: str, what: str) -> int:
    _check(den > 0 and num % den == 0, where, f"{what} ({num} / {den}) is not a whole number of Hz")
    return num // den


def _prescalers(c: dict[str, Any], names: tuple[str, ...], where: str) -> dict[str, int]:
    out = {}
    for name in names:
        v = c.get(name, 1)
        table = _AHB_CODE if name in ("ahb_div", "cpu_div") else _APB_CODE
        _check(v in table, where, f"{name} = {v} is not one of {sorted(table)}")
        out[name] = v
    return out


def _mhz(hz: int) -> str:
    return f"{hz / MHZ:g} MHz"


def _plan_none(board: Board, c: dict[str, Any], where: str) -> ClockPlan:
    console = board.console.params.get("kernel_clock_hz", board.reset_clock_hz)
    return ClockPlan("none", board.clock_hz, console, board.reset_clock_hz, console)


def _console_bus(board: Board, buses: dict[str, int], where: str) -> int:
    bus = board.console.params.get("bus")
    if bus not in buses:
        raise TinycError(
            f"{where}: console bus {bus!r} must be one of {', '.join(sorted(buses))} "
            "(the clock that feeds the UART after the set-up)"
        )
    return buses[bus]


def _plan_stm32f4f7(board: Board, c: dict[str, Any], where: str) -> ClockPlan:
    f7 = c["setup"] == "stm32f7"
    # RM0385 (F74x/75x) / RM0090 (F405/407) limits, 2.7-3.6 V
    max_sys, max_apb1, max_apb2 = (216, 54, 108) if f7 else (168, 42, 84)
    _check(c.get("source") == "hsi", where, "the PLL input must be 'hsi' (16 MHz internal RC)")
    src = 16 * MHZ
    p = _pll(c, ("m", "n", "p", "q"), where)
    _check(2 <= p["m"] <= 63 and 50 <= p["n"] <= 432, where, "PLLM 2..63, PLLN 50..432")
    _check(p["p"] in (2, 4, 6, 8) and 2 <= p["q"] <= 15, where, "PLLP 2/4/6/8, PLLQ 2..15")
    vco_in = _div(src, p["m"], where, "VCO input")
    _check(1 * MHZ <= vco_in <= 2 * MHZ, where, f"VCO input {_mhz(vco_in)} not in 1..2 MHz")
    vco = vco_in * p["n"]
    _check(100 * MHZ <= vco <= 432 * MHZ, where, f"VCO {_mhz(vco)} not in 100..432 MHz")
    sys = _div(vco, p["p"], where, "SYSCLK")
    pre = _prescalers(c, ("ahb_div", "apb1_div", "apb2_div"), where)
    hclk = _div(sys, pre["ahb_div"], where, "HCLK")
    apb1 = _div(hclk, pre["apb1_div"], where, "PCLK1")
    apb2 = _div(hclk, pre["apb2_div"], where, "PCLK2")
    _check(sys <= max_sys * MHZ, where, f"SYSCLK {_mhz(sys)} above {max_sys} MHz")
    _check(apb1 <= max_apb1 * MHZ, where, f"PCLK1 {_mhz(apb1)} above {max_apb1} MHz")
    _check(apb2 <= max_apb2 * MHZ, where, f"PCLK2 {_mhz(apb2)} above {max_apb2} MHz")
    # one wait state per 30 MHz of HCLK at 2.7-3.6 V (RM0385 table 5, RM0090 table 10)
    ws = board.flash_wait_states
    need = -(-hclk // (30 * MHZ)) - 1
    _check(ws is not None and need <= ws <= 15, where, f"{need} flash wait states needed at HCLK")
    overdrive = f7 and hclk > 180 * MHZ
    acr = ws | (1 << 8) | ((1 << 9) if f7 else (1 << 9) | (1 << 10))  # PRFTEN, ARTEN | ICEN+DCEN
    regs = {
        # reserved bits 31:28 keep their reset value (0x2 in bits 31:28 of 0x24003010)
        "PLLCFGR": 0x20000000 | p["q"] << 24 | (p["p"] // 2 - 1) << 16 | p["n"] << 6 | p["m"],
        "CFGR": _APB_CODE[pre["apb2_div"]] << 13
        | _APB_CODE[pre["apb1_div"]] << 10
        | _AHB_CODE[pre["ahb_div"]] << 4,
        "FLASH_ACR": acr,
        "WAIT_STATES": ws,
        "OVERDRIVE": int(overdrive),
    }
    steps = [
        f"HSI 16 MHz / M {p['m']} x N {p['n']} / P {p['p']} = {_mhz(sys)}"
        f" (VCO {_mhz(vco)}, PLLQ {_mhz(vco // p['q'])})",
        "voltage scale 1" + (" with over-drive" if overdrive else ""),
        f"{ws} flash wait states, prefetch, "
        + ("ART accelerator" if f7 else "instruction and data caches"),
        f"AHB {_mhz(hclk)}, APB1 {_mhz(apb1)}, APB2 {_mhz(apb2)}",
    ]
    buses = {"ahb": hclk, "apb1": apb1, "apb2": apb2}
    return ClockPlan(
        c["setup"],
        sys,
        _console_bus(board, buses, where),
        board.reset_clock_hz,
        board.console.params.get("kernel_clock_hz", board.reset_clock_hz),
        (("AHB", hclk), ("APB1", apb1), ("APB2", apb2)),
        tuple(steps),
        regs,
    )


def _plan_stm32h7(board: Board, c: dict[str, Any], where: str) -> ClockPlan:
    # RM0433 (STM32H742/743/750/753), revision V silicon, VOS0
    _check(c.get("source") == "hsi", where, "the PLL input must be 'hsi' (64 MHz internal RC)")
    src = 64 * MHZ
    p = _pll(c, ("m", "n", "p", "q", "r"), where)
    _check(1 <= p["m"] <= 63 and 4 <= p["n"] <= 512, where, "DIVM1 1..63, DIVN1 4..512")
    _check(p["p"] % 2 == 0 and 2 <= p["p"] <= 128, where, "DIVP1 must be even, 2..128")
    _check(1 <= p["q"] <= 128 and 1 <= p["r"] <= 128, where, "DIVQ1 and DIVR1 1..128")
    ref = _div(src, p["m"], where, "PLL1 input")
    ranges = [(1, 2), (2, 4), (4, 8), (8, 16)]  # PLL1RGE 0..3
    rge = next((i for i, (lo, hi) in enumerate(ranges) if lo * MHZ <= ref <= hi * MHZ), None)
    _check(rge is not None and ref >= 2 * MHZ, where, f"PLL1 input {_mhz(ref)} not in 2..16 MHz")
    vco = ref * p["n"]
    _check(192 * MHZ <= vco <= 960 * MHZ, where, f"VCO {_mhz(vco)} not in 192..960 MHz (wide)")
    sys = _div(vco, p["p"], where, "sys_ck")
    pre = _prescalers(
        c, ("cpu_div", "ahb_div", "apb1_div", "apb2_div", "apb3_div", "apb4_div"), where
    )
    cpu = _div(sys, pre["cpu_div"], where, "CPU clock")
    hclk = _div(cpu, pre["ahb_div"], where, "HCLK")
    apb = {
        k: _div(hclk, pre[f"{k}_div"], where, k.upper()) for k in ("apb1", "apb2", "apb3", "apb4")
    }
    _check(cpu <= 480 * MHZ and hclk <= 240 * MHZ, where, "CPU <= 480 MHz, AXI/AHB <= 240 MHz")
    _check(all(v <= 120 * MHZ for v in apb.values()), where, "APB clocks <= 120 MHz")
    ws = board.flash_wait_states
    _check(ws is not None and 0 <= ws <= 15, where, "flash_wait_states missing")
    delay = _int(c, "flash_delay", where)  # FLASH_ACR.WRHIGHFREQ (RM0433 table 17)
    regs = {
        # DIVM2/DIVM3 keep their reset value 32; PLLSRC 0 = HSI
        "PLLCKSELR": 32 << 20 | 32 << 12 | p["m"] << 4,
        # reset value (every DIVxyEN set) with PLL1RGE; PLL1VCOSEL 0 = wide VCO, integer mode
        "PLLCFGR": 0x01FF0000 | rge << 2,
        "PLL1DIVR": (p["r"] - 1) << 24 | (p["q"] - 1) << 16 | (p["p"] - 1) << 9 | (p["n"] - 1),
        "D1CFGR": _AHB_CODE[pre["cpu_div"]] << 8
        | _APB_CODE[pre["apb3_div"]] << 4
        | _AHB_CODE[pre["ahb_div"]],
        "D2CFGR": _APB_CODE[pre["apb2_div"]] << 8 | _APB_CODE[pre["apb1_div"]] << 4,
        "D3CFGR": _APB_CODE[pre["apb4_div"]] << 4,
        "FLASH_ACR": delay << 4 | ws,
        "WAIT_STATES": ws,
    }
    steps = [
        "LDO supply, voltage scale 0 (VOS1 + SYSCFG over-drive)",
        f"HSI 64 MHz / DIVM1 {p['m']} x DIVN1 {p['n']} / DIVP1 {p['p']} = {_mhz(sys)}"
        f" (VCO {_mhz(vco)})",
        f"{ws} flash wait states, programming delay {delay}",
        f"CPU {_mhz(cpu)}, AXI/AHB {_mhz(hclk)}, APB1-4 "
        + "/".join(f"{v / MHZ:g}" for v in apb.values())
        + " MHz",
    ]
    buses = {"ahb": hclk, **apb}
    return ClockPlan(
        "stm32h7",
        cpu,
        _console_bus(board, buses, where),
        board.reset_clock_hz,
        board.console.params.get("kernel_clock_hz", board.reset_clock_hz),
        (("AXI/AHB", hclk), *((k.upper(), v) for k, v in apb.items())),
        tuple(steps),
        regs,
    )


def _plan_stm32l4plus(board: Board, c: dict[str, Any], where: str) -> ClockPlan:
    # RM0432 (STM32L4+), range 1 boost mode
    _check(c.get("source") == "hsi16", where, "the PLL input must be 'hsi16'")
    src = 16 * MHZ
    p = _pll(c, ("m", "n", "r"), where)
    _check(1 <= p["m"] <= 16 and 8 <= p["n"] <= 127, where, "PLLM 1..16, PLLN 8..127")
    _check(p["r"] in (2, 4, 6, 8), where, "PLLR 2/4/6/8")
    vco_in = _div(src, p["m"], where, "PLL input")
    _check(2_660_000 <= vco_in <= 16 * MHZ, where, f"PLL input {_mhz(vco_in)} not in 2.66..16 MHz")
    vco = vco_in * p["n"]
    _check(64 * MHZ <= vco <= 344 * MHZ, where, f"VCO {_mhz(vco)} not in 64..344 MHz")
    sys = _div(vco, p["r"], where, "SYSCLK")
    pre = _prescalers(c, ("ahb_div", "apb1_div", "apb2_div"), where)
    hclk = _div(sys, pre["ahb_div"], where, "HCLK")
    apb1 = _div(hclk, pre["apb1_div"], where, "PCLK1")
    apb2 = _div(hclk, pre["apb2_div"], where, "PCLK2")
    _check(sys <= 120 * MHZ, where, f"SYSCLK {_mhz(sys)} above 120 MHz (range 1 boost)")
    # range 1 boost: one wait state per 20 MHz of HCLK (RM0432 table 12)
    ws = board.flash_wait_states
    need = -(-hclk // (20 * MHZ)) - 1
    _check(ws is not None and need <= ws <= 15, where, f"{need} flash wait states needed at HCLK")
    regs = {
        # PLLR, PLLREN, PLLN, PLLM, PLLSRC = HSI16 (2)
        "PLLCFGR": (p["r"] // 2 - 1) << 25 | 1 << 24 | p["n"] << 8 | (p["m"] - 1) << 4 | 2,
        "CFGR": _APB_CODE[pre["apb2_div"]] << 11
        | _APB_CODE[pre["apb1_div"]] << 8
        | _AHB_CODE[pre["ahb_div"]] << 4,
        "CFGR_HALF": _APB_CODE[pre["apb2_div"]] << 11
        | _APB_CODE[pre["apb1_div"]] << 8
        | _AHB_CODE[2] << 4,  # AHB / 2 across the switch to > 80 MHz (RM0432 5.1.8)
        "FLASH_ACR": ws | 1 << 8 | 1 << 9 | 1 << 10,  # PRFTEN, ICEN, DCEN
        "WAIT_STATES": ws,
    }
    steps = [
        "voltage range 1 boost mode",
        f"HSI16 / M {p['m']} x N {p['n']} / R {p['r']} = {_mhz(sys)} (VCO {_mhz(vco)})",
        f"{ws} flash wait states, prefetch, instruction and data caches",
        f"AHB {_mhz(hclk)}, APB1 {_mhz(apb1)}, APB2 {_mhz(apb2)}",
    ]
    buses = {"ahb": hclk, "apb1": apb1, "apb2": apb2}
    return ClockPlan(
        "stm32l4plus",
        sys,
        _console_bus(board, buses, where),
        board.reset_clock_hz,
        board.console.params.get("kernel_clock_hz", board.reset_clock_hz),
        (("AHB", hclk), ("APB1", apb1), ("APB2", apb2)),
        tuple(steps),
        regs,
    )


def _plan_nrf52(board: Board, c: dict[str, Any], where: str) -> ClockPlan:
    # nRF52840: the CPU always runs at 64 MHz; the crystal (HFXO) makes the UART baud accurate
    steps = ("HFCLK from the 64 MHz crystal oscillator (HFXO)", "NVMC instruction cache on")
    return ClockPlan("nrf52", 64 * MHZ, 16 * MHZ, 64 * MHZ, 16 * MHZ, (), steps, {})


def _plan_rp2040(board: Board, c: dict[str, Any], where: str) -> ClockPlan:
    # RP2040 datasheet 2.18.2: REFDIV 1..63, reference >= 5 MHz, FBDIV 16..320,
    # VCO 750..1600 MHz, POSTDIV1/2 1..7; clk_sys up to 133 MHz
    _check(c.get("source") == "xosc", where, "the PLL input must be 'xosc' (12 MHz crystal)")
    src = 12 * MHZ
    p = _pll(c, ("refdiv", "fbdiv", "postdiv1", "postdiv2"), where)
    _check(1 <= p["refdiv"] <= 63 and 16 <= p["fbdiv"] <= 320, where, "REFDIV 1..63, FBDIV 16..320")
    _check(1 <= p["postdiv2"] <= p["postdiv1"] <= 7, where, "1 <= POSTDIV2 <= POSTDIV1 <= 7")
    ref = _div(src, p["refdiv"], where, "PLL reference")
    _check(ref >= 5 * MHZ, where, f"PLL reference {_mhz(ref)} below 5 MHz")
    vco = ref * p["fbdiv"]
    _check(750 * MHZ <= vco <= 1600 * MHZ, where, f"VCO {_mhz(vco)} not in 750..1600 MHz")
    sys = _div(vco, p["postdiv1"] * p["postdiv2"], where, "clk_sys")
    _check(sys <= 133 * MHZ, where, f"clk_sys {_mhz(sys)} above 133 MHz")
    regs = {
        "REFDIV": p["refdiv"],
        "FBDIV": p["fbdiv"],
        "PRIM": p["postdiv1"] << 16 | p["postdiv2"] << 12,
    }
    steps = (
        f"XOSC 12 MHz / {p['refdiv']} x {p['fbdiv']} / {p['postdiv1']} / {p['postdiv2']}"
        f" = {_mhz(sys)} (VCO {_mhz(vco)})",
        "clk_sys and clk_peri from PLL_SYS",
    )
    return ClockPlan(
        "rp2040", sys, sys, board.reset_clock_hz, board.reset_clock_hz, (), steps, regs
    )


_PLANNERS = {
    "none": _plan_none,
    "stm32f4": _plan_stm32f4f7,
    "stm32f7": _plan_stm32f4f7,
    "stm32h7": _plan_stm32h7,
    "stm32l4plus": _plan_stm32l4plus,
    "nrf52": _plan_nrf52,
    "rp2040": _plan_rp2040,
}


def clock_plan(board: Board) -> ClockPlan:
    """The board's start-up clock plan, checked; its core clock is ``board.clock_hz``."""
    where = f"board {board.name}"
    c = dict(board.clock)
    setup = c.setdefault("setup", "none")
    if setup not in _PLANNERS:
        raise TinycError(f"{where}: clock setup {setup!r} is not one of {', '.join(SETUPS)}")
    plan = _PLANNERS[setup](board, c, where)
    if plan.sysclk_hz != board.clock_hz:
        raise TinycError(
            f"{where}: the clock set-up gives {_mhz(plan.sysclk_hz)} but clock_hz is "
            f"{_mhz(board.clock_hz)} (what tinyc estimate assumes)"
        )
    return plan

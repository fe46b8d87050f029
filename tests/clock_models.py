"""Run a board firmware's start-up code (``tinyc_clock_init``, the RP2040 boot2) in unicorn
against small models of the chips' clock registers, and decode what it left there.

A model is written here from the reference manuals, independently of tinyc/clocks.py: reset
values of the registers the set-up touches, and "ready" flags that follow their enable bits
when read (HSIRDY follows HSION, PLLRDY follows PLLON, SWS follows SW, ...). Every write to a
peripheral is recorded in order, so tests can check the sequence (flash latency before the
switch to the PLL) as well as the final values. ``decode_*`` compute the frequencies from the
final register values with the manuals' formulas.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import unicorn
from elftools.elf.elffile import ELFFile
from unicorn import arm_const as A

RETURN = 0x0FFF0000  # a mapped, empty page the called function returns to


def _u32(b: bytes | bytearray) -> int:
    return int.from_bytes(bytes(b), "little")


@dataclass
class Machine:
    uc: unicorn.Uc
    symbols: dict[str, int]
    stack_top: int
    writes: list[tuple[int, int]] = field(default_factory=list)

    def read(self, addr: int) -> int:
        return _u32(self.uc.mem_read(addr, 4))

    def write(self, addr: int, value: int) -> None:
        self.uc.mem_write(addr, (value & 0xFFFFFFFF).to_bytes(4, "little"))

    def call(self, name: str, max_insns: int = 50_000_000) -> int:
        """Call a function of the firmware (no arguments); returns r0."""
        self.uc.reg_write(A.UC_ARM_REG_SP, self.stack_top)
        self.uc.reg_write(A.UC_ARM_REG_LR, RETURN | 1)
        self.uc.emu_start(self.symbols[name] | 1, RETURN, count=max_insns)
        assert self.uc.reg_read(A.UC_ARM_REG_PC) == RETURN, f"{name} did not return"
        return self.uc.reg_read(A.UC_ARM_REG_R0)

    def c_string(self, addr: int) -> str:
        out = bytearray()
        while (b := self.uc.mem_read(addr + len(out), 1)[0]) != 0:
            out.append(b)
        return out.decode()

    def written(self, addr: int) -> list[tuple[int, int]]:
        """(position, value) of every write to ``addr``, in order."""
        return [(i, v) for i, (a, v) in enumerate(self.writes) if a == addr]


def load(elf: Path, board, peripherals: list[tuple[int, int]], cpu: str) -> Machine:
    """The firmware's sections in memory (``.data`` at its run address, initialised), the
    board's memory regions and ``peripherals`` ((base, size) ranges) mapped as plain RAM."""
    uc = unicorn.Uc(unicorn.UC_ARCH_ARM, unicorn.UC_MODE_THUMB)
    uc.ctl_set_cpu_model(getattr(A, f"UC_CPU_ARM_{cpu}"))
    ranges = [(r.base, r.size) for r in board.memory] + peripherals + [(RETURN, 0x1000)]
    for base, size in sorted(set(ranges)):
        lo, hi = base & ~0xFFF, (base + size + 0xFFF) & ~0xFFF
        uc.mem_map(lo, hi - lo)
    with open(elf, "rb") as f:
        e = ELFFile(f)
        symbols = {
            s.name: s["st_value"] & ~1 for s in e.get_section_by_name(".symtab").iter_symbols()
        }
        for sec in e.iter_sections():
            if sec["sh_type"] == "SHT_PROGBITS" and sec["sh_flags"] & 2 and sec["sh_size"]:
                uc.mem_write(sec["sh_addr"], sec.data())  # .data at its VMA: initialised
    return Machine(uc, symbols, symbols["__stack_top"])


def _hook_writes(m: Machine, lo: int, hi: int, on_write=None) -> None:
    def hook(uc, access, addr, size, value, user):
        m.writes.append((addr, value))
        if on_write:
            on_write(addr, value)

    m.uc.hook_add(unicorn.UC_HOOK_MEM_WRITE, hook, begin=lo, end=hi)


def _hook_reads(m: Machine, lo: int, hi: int, on_read) -> None:
    m.uc.hook_add(
        unicorn.UC_HOOK_MEM_READ, lambda uc, acc, addr, size, v, u: on_read(addr), begin=lo, end=hi
    )


def _follow(m: Machine, addr: int, pairs: list[tuple[int, int]]) -> None:
    """Set bit ``dst`` of the register at ``addr`` to its bit ``src``, for each (src, dst)."""
    v = m.read(addr)
    for src, dst in pairs:
        v = (v & ~(1 << dst)) | (((v >> src) & 1) << dst)
    m.write(addr, v)


# ---------------------------------------------------------------------------------------------
# STM32F4 / F7 (RM0090, RM0385): RCC 0x40023800, PWR 0x40007000, FLASH 0x40023C00

F_RCC, F_PWR, F_FLASH = 0x40023800, 0x40007000, 0x40023C00


def model_stm32f4f7(m: Machine, working: bool = True) -> None:
    m.write(F_RCC + 0x00, 0x00000083)  # CR: HSION, HSIRDY
    m.write(F_RCC + 0x04, 0x24003010)  # PLLCFGR reset value
    _hook_writes(m, 0x40000000, 0x4002FFFF)
    if not working:  # no ready flag ever comes (a simulator without RCC)
        m.write(F_RCC, 0)
        return

    def on_read(addr):
        if addr == F_RCC + 0x00:  # HSIRDY <- HSION, PLLRDY <- PLLON
            _follow(m, addr, [(0, 1), (24, 25)])
        elif addr == F_RCC + 0x08:  # SWS <- SW
            v = m.read(addr)
            m.write(addr, (v & ~0xC) | ((v & 3) << 2))
        elif addr == F_PWR + 0x04:  # CSR1: ODRDY <- ODEN, ODSWRDY <- ODSWEN
            cr1 = m.read(F_PWR)
            m.write(addr, cr1 & (3 << 16))

    _hook_reads(m, 0x40000000, 0x4002FFFF, on_read)


def decode_stm32f4f7(m: Machine) -> dict[str, int]:
    pll = m.read(F_RCC + 0x04)
    cfgr = m.read(F_RCC + 0x08)
    assert not (pll >> 22) & 1, "PLL source is not HSI"
    pllm, plln, pllp = pll & 0x3F, (pll >> 6) & 0x1FF, 2 * ((pll >> 16) & 3) + 2
    sys = {0: 16_000_000, 2: 16_000_000 // pllm * plln // pllp}[cfgr & 3]
    ahb = [1] * 8 + [2, 4, 8, 16, 64, 128, 256, 512]
    apb = [1, 1, 1, 1, 2, 4, 8, 16]
    hclk = sys // ahb[(cfgr >> 4) & 0xF]
    return {
        "sysclk": sys,
        "pllm": pllm,
        "plln": plln,
        "pllp": pllp,
        "hclk": hclk,
        "pclk1": hclk // apb[(cfgr >> 10) & 7],
        "pclk2": hclk // apb[(cfgr >> 13) & 7],
        "latency": m.read(F_FLASH) & 0xF,
        "acr": m.read(F_FLASH),
        "pwr_cr1": m.read(F_PWR),
    }


# ---------------------------------------------------------------------------------------------
# STM32H743 (RM0433): RCC 0x58024400, PWR 0x58024800, SYSCFG 0x58000400, FLASH 0x52002000

H_RCC, H_PWR, H_SYSCFG, H_FLASH, H_DBGMCU = (
    0x58024400,
    0x58024800,
    0x58000400,
    0x52002000,
    0x5C001000,
)
H7_PERIPHERALS = [(0x58000000, 0x30000), (H_FLASH, 0x1000), (H_DBGMCU, 0x1000)]


def model_stm32h7(m: Machine) -> None:
    m.write(H_DBGMCU, 0x20036450)  # REV_ID 0x2003 (revision V), DEV_ID 0x450
    m.write(H_RCC + 0x00, 0x00000025)  # CR: HSION, HSIRDY, HSIDIV 1
    m.write(H_RCC + 0x28, 0x02020200)  # PLLCKSELR
    m.write(H_RCC + 0x2C, 0x01FF0000)  # PLLCFGR
    m.write(H_RCC + 0x30, 0x01010280)  # PLL1DIVR
    m.write(H_PWR + 0x0C, 0x00000006)  # CR3: SCUEN, LDOEN
    m.write(H_PWR + 0x18, 0x00004000)  # D3CR: VOS scale 3
    _hook_writes(m, 0x52000000, 0x5C001FFF)

    def on_read(addr):
        if addr == H_RCC:  # HSIRDY <- HSION, PLL1RDY <- PLL1ON
            _follow(m, addr, [(0, 2), (24, 25)])
        elif addr == H_RCC + 0x10:  # SWS <- SW
            v = m.read(addr)
            m.write(addr, (v & ~(7 << 3)) | ((v & 7) << 3))
        elif addr == H_PWR + 0x04:  # CSR1.ACTVOSRDY
            m.write(addr, 1 << 13)
        elif addr == H_PWR + 0x18:  # D3CR.VOSRDY
            m.write(addr, m.read(addr) | 1 << 13)

    _hook_reads(m, 0x58000000, 0x5802FFFF, on_read)


def decode_stm32h7(m: Machine) -> dict[str, int]:
    cksel, cfg, div = (m.read(H_RCC + o) for o in (0x28, 0x2C, 0x30))
    d1, d2, d3 = (m.read(H_RCC + o) for o in (0x18, 0x1C, 0x20))
    assert cksel & 3 == 0, "PLL source is not HSI"
    divm, divn, divp = (cksel >> 4) & 0x3F, (div & 0x1FF) + 1, ((div >> 9) & 0x7F) + 1
    ref = 64_000_000 // divm
    sw = m.read(H_RCC + 0x10) & 7
    sys = {0: 64_000_000, 3: ref * divn // divp}[sw]
    ahb = [1] * 8 + [2, 4, 8, 16, 64, 128, 256, 512]
    apb = [1, 1, 1, 1, 2, 4, 8, 16]
    cpu = sys // ahb[(d1 >> 8) & 0xF]
    hclk = cpu // ahb[d1 & 0xF]
    return {
        "cpu": cpu,
        "vco": ref * divn,
        "pll1rge": (cfg >> 2) & 3,
        "hclk": hclk,
        "apb1": hclk // apb[(d2 >> 4) & 7],
        "apb2": hclk // apb[(d2 >> 8) & 7],
        "apb3": hclk // apb[(d1 >> 4) & 7],
        "apb4": hclk // apb[(d3 >> 4) & 7],
        "latency": m.read(H_FLASH) & 0xF,
        "vos": (m.read(H_PWR + 0x18) >> 14) & 3,
        "oden": m.read(H_SYSCFG + 0x2C) & 1,
        "ldo": m.read(H_PWR + 0x0C) & 7,
    }


# ---------------------------------------------------------------------------------------------
# STM32L4+ (RM0432): RCC 0x40021000, PWR 0x40007000, FLASH 0x40022000

L_RCC, L_PWR, L_FLASH = 0x40021000, 0x40007000, 0x40022000


def model_stm32l4plus(m: Machine) -> None:
    m.write(L_RCC + 0x00, 0x00000063)  # CR: MSION, MSIRDY, MSIRANGE 4 MHz
    m.write(L_RCC + 0x0C, 0x00001000)  # PLLCFGR reset value
    m.write(L_PWR + 0x00, 0x00000200)  # CR1: VOS range 1
    m.write(L_PWR + 0x80, 0x00000100)  # CR5: R1MODE = 1 (normal)
    _hook_writes(m, 0x40000000, 0x4002FFFF)

    def on_read(addr):
        if addr == L_RCC:  # HSIRDY <- HSION, PLLRDY <- PLLON
            _follow(m, addr, [(8, 10), (24, 25)])
        elif addr == L_RCC + 0x08:  # SWS <- SW
            v = m.read(addr)
            m.write(addr, (v & ~0xC) | ((v & 3) << 2))

    _hook_reads(m, 0x40000000, 0x4002FFFF, on_read)


def decode_stm32l4plus(m: Machine) -> dict[str, int]:
    pll, cfgr = m.read(L_RCC + 0x0C), m.read(L_RCC + 0x08)
    assert pll & 3 == 2, "PLL source is not HSI16"
    pllm, plln, pllr = ((pll >> 4) & 0xF) + 1, (pll >> 8) & 0x7F, 2 * ((pll >> 25) & 3) + 2
    sys = {0: 4_000_000, 3: 16_000_000 // pllm * plln // pllr}[cfgr & 3]
    ahb = [1] * 8 + [2, 4, 8, 16, 64, 128, 256, 512]
    apb = [1, 1, 1, 1, 2, 4, 8, 16]
    hclk = sys // ahb[(cfgr >> 4) & 0xF]
    return {
        "sysclk": sys,
        "hclk": hclk,
        "pclk1": hclk // apb[(cfgr >> 8) & 7],
        "pllren": (pll >> 24) & 1,
        "latency": m.read(L_FLASH) & 0xF,
        "boost": not (m.read(L_PWR + 0x80) >> 8) & 1,
        "vos": (m.read(L_PWR) >> 9) & 3,
    }


# ---------------------------------------------------------------------------------------------
# nRF52840: CLOCK 0x40000000, NVMC 0x4001E000


def model_nrf52(m: Machine) -> None:
    def on_write(addr, value):
        if addr == 0x40000000 and value == 1:  # TASKS_HFCLKSTART -> EVENTS_HFCLKSTARTED
            m.write(0x40000100, 1)

    _hook_writes(m, 0x40000000, 0x4002FFFF, on_write)


# ---------------------------------------------------------------------------------------------
# RP2040 (datasheet 2.14-2.18): CLOCKS 0x40008000, RESETS 0x4000C000, XOSC 0x40024000,
# PLL_SYS 0x40028000; each register also has atomic XOR/SET/CLR aliases at +0x1000/2000/3000

R_CLOCKS, R_RESETS, R_XOSC, R_PLL = 0x40008000, 0x4000C000, 0x40024000, 0x40028000


def model_rp2040(m: Machine) -> None:
    m.write(R_RESETS, 0x01FFFFFF)  # everything in reset
    m.write(R_PLL + 0x0, 0x00000001)  # CS: REFDIV 1
    m.write(R_PLL + 0x4, 0x0000002D)  # PWR: PD, DSMPD, POSTDIVPD, VCOPD
    m.write(R_PLL + 0xC, 0x00077000)  # PRIM

    def on_write(addr, value):
        alias = addr & 0x3000
        if alias:
            base = addr & ~0x3000
            v = m.read(base)
            v = {0x1000: v ^ value, 0x2000: v | value, 0x3000: v & ~value}[alias]
            m.write(base, v)

    def on_read(addr):
        if addr == R_XOSC + 0x4:  # STATUS.STABLE once enabled
            m.write(addr, (1 << 31) if m.read(R_XOSC) >> 12 == 0xFAB else 0)
        elif addr == R_CLOCKS + 0x38:  # CLK_REF_SELECTED: one-hot SRC
            m.write(addr, 1 << (m.read(R_CLOCKS + 0x30) & 3))
        elif addr == R_CLOCKS + 0x44:  # CLK_SYS_SELECTED
            m.write(addr, 1 << (m.read(R_CLOCKS + 0x3C) & 1))
        elif addr == R_RESETS + 0x8:  # RESET_DONE
            m.write(addr, ~m.read(R_RESETS) & 0x01FFFFFF)
        elif addr == R_PLL:  # CS.LOCK when powered with a feedback divider
            on = m.read(R_PLL + 0x4) & 0x21 == 0 and m.read(R_PLL + 0x8) >= 16
            m.write(addr, (m.read(addr) & 0x3F) | (on << 31))

    _hook_writes(m, 0x40000000, 0x4006FFFF, on_write)
    _hook_reads(m, 0x40000000, 0x4006FFFF, on_read)


def decode_rp2040(m: Machine) -> dict[str, int]:
    cs, pwr, fb, prim = (m.read(R_PLL + o) for o in (0x0, 0x4, 0x8, 0xC))
    vco = 12_000_000 // (cs & 0x3F) * fb
    pd1, pd2 = (prim >> 16) & 7, (prim >> 12) & 7
    sys_ctrl = m.read(R_CLOCKS + 0x3C)
    on_pll = sys_ctrl & 1 and (sys_ctrl >> 5) & 7 == 0
    return {
        "vco": vco,
        "clk_sys": vco // (pd1 * pd2) if on_pll else 12_000_000,
        "pll_powered": pwr & 0x29 == 0,
        "clk_ref_src": m.read(R_CLOCKS + 0x30) & 3,
    }

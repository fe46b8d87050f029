"""What ``tinyc estimate`` gives: per-layer figures, memory regions and the totals, as text and
JSON (both backends' estimators fill these in: tinyc.estimate.report, tinyc.estimate.tflm).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tinyc.boards import Board
from tinyc.errors import TinycError
from tinyc.table import fmt_int, render


@dataclass
class Layer:
    index: int
    name: str
    op: str
    kernel: str  # the function(s) the node calls, "" for a view
    output_shape: list[int]
    params: int
    macs: int
    weight_bytes: int
    live_bytes: int  # arena bytes live while the layer runs (its scratch included)
    instructions: float
    cycles: float
    flash_wait_cycles: float
    latency_ms: float
    code_bytes: float
    stack_bytes: int
    scratch_bytes: int = 0  # of live_bytes, the layer's own scratch buffer
    state_bytes: int = 0  # persistent state the layer keeps (outside the arena)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "op": self.op,
            "kernel": self.kernel,
            "output_shape": self.output_shape,
            "params": self.params,
            "macs": self.macs,
            "weight_bytes": self.weight_bytes,
            "live_bytes": self.live_bytes,
            "scratch_bytes": self.scratch_bytes,
            "state_bytes": self.state_bytes,
            "instructions": round(self.instructions),
            "cycles": round(self.cycles),
            "flash_wait_cycles": round(self.flash_wait_cycles),
            "latency_ms": round(self.latency_ms, 4),
            "code_bytes": round(self.code_bytes),
            "stack_bytes": self.stack_bytes,
        }


@dataclass
class Region:
    name: str
    kind: str
    size: int
    used: int
    holds: list[str]

    @property
    def percent(self) -> float:
        return 100.0 * self.used / self.size if self.size else float("inf")

    def to_json(self) -> dict[str, Any]:
        return {
            "region": self.name,
            "kind": self.kind,
            "size": self.size,
            "used": self.used,
            "percent": round(self.percent, 2),
            "fits": self.used <= self.size,
            "holds": self.holds,
        }


@dataclass
class Estimate:
    model: str
    board: str
    backend: str
    core: str  # calibrated core variant used
    kernels: str  # kernel variants (plain / dsp / mve) or "tflm"
    clock_hz: int
    layers: list[Layer]
    #: text rodata data bss arena stack flash ram (as the validated firmware's ELF), and
    #: state: the persistent recurrent state (inside data or bss)
    sizes: dict[str, int]
    #: flash by origin (constants, kernel_code, runtime: they add up to sizes["flash"]) and
    #: scratch: the most arena bytes kernel scratch buffers take at one time (inside the arena)
    parts: dict[str, int]
    stack_used: int
    outside_instructions: float
    cpi: float
    board_firmware: dict[str, int]
    budget: list[Region]
    plan: Any = None  # the MemoryPlan (cmsis)
    notes: list[str] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)
    npu: dict[str, Any] | None = None  # Vela's report (NPU boards, --backend tflm)
    extra_cycles: float = 0.0  # cycles outside the layers (the NPU's command stream)

    # ---- totals ----
    @property
    def instructions(self) -> float:
        return sum(x.instructions for x in self.layers) + self.outside_instructions

    @property
    def cycles(self) -> float:
        return (
            sum(x.cycles for x in self.layers)
            + self.outside_instructions * self.cpi
            + self.extra_cycles
        )

    @property
    def latency_ms(self) -> float:
        return 1e3 * self.cycles / self.clock_hz

    @property
    def macs(self) -> int:
        return sum(x.macs for x in self.layers)

    @property
    def params(self) -> int:
        return sum(x.params for x in self.layers)

    def to_json(self) -> dict[str, Any]:
        s = self.sizes
        return {
            "model": self.model,
            "board": self.board,
            "backend": self.backend,
            "core": self.core,
            "kernels": self.kernels,
            "clock_hz": self.clock_hz,
            "sram_bytes": s["ram"],
            "flash_bytes": s["flash"],
            "ram_bytes": s["ram"],
            "arena_bytes": s["arena"],
            "state_bytes": s.get("state", 0),
            "stack_bytes": s["stack"],
            "stack_used_bytes": self.stack_used,
            "peak_ram_bytes": s["arena"] + s["data"] + s["bss"] + self.stack_used,
            "macs": self.macs,
            "params": self.params,
            "instructions": round(self.instructions),
            "cycles": round(self.cycles),
            "flash_wait_cycles": round(sum(x.flash_wait_cycles for x in self.layers)),
            "latency_ms": round(self.latency_ms, 4),
            "elf": {k: v for k, v in s.items() if k != "state"},
            "parts": dict(self.parts),
            "board_firmware": dict(self.board_firmware),
            "budget": [r.to_json() for r in self.budget],
            "layers": [x.to_json() for x in self.layers],
            "notes": list(self.notes),
            "assumptions": list(self.assumptions),
            "npu": self.npu,
        }

    def format_text(self) -> str:
        mhz = self.clock_hz / 1e6
        s, p = self.sizes, self.parts
        state = s.get("state", 0)
        rows = [
            [
                x.index,
                x.name[:32],
                x.op,
                "x".join(map(str, x.output_shape)),
                fmt_int(x.params),
                fmt_int(x.macs),
                fmt_int(x.weight_bytes),
                fmt_int(x.live_bytes),
                fmt_int(x.scratch_bytes),
                *([fmt_int(x.state_bytes)] if state else []),
                fmt_int(round(x.instructions)),
                fmt_int(round(x.cycles)),
                f"{x.latency_ms:.3f}",
            ]
            for x in self.layers
        ]
        head = ["#", "layer", "op", "output", "params", "MACs", "weights B", "live B",
                "scratch B", *(["state B"] if state else []), "instr", "cycles", "ms"]  # fmt: skip
        ram = (
            f"RAM:   {fmt_int(s['ram'])} B = arena {fmt_int(s['arena'])}"
            + (
                f" (of which kernel scratch: at most {fmt_int(p['scratch'])} at one time)"
                if p.get("scratch")
                else ""
            )
            + (f" + state {fmt_int(state)} (persistent, outside the arena)" if state else "")
            + f" + runtime state {fmt_int(s['data'] + s['bss'] - state)}"
            f" + stack {fmt_int(s['stack'])} reserved ({fmt_int(self.stack_used)} used)"
        )
        board = self.board_firmware
        extra = [
            f"{what} {'+' if d >= 0 else '-'}{fmt_int(abs(d))} B"
            for what, d in (
                ("flash", board["flash_bytes"] - s["flash"]),
                ("RAM", board["ram_bytes"] - s["ram"]),
            )
            if d
        ]
        budget_head = f"budget on {self.board}" + (
            f" (the board's build differs by its console driver and self-test data: "
            f"{', '.join(extra)}):"
            if extra
            else ":"
        )
        lines = [
            f"{self.model} on {self.board} ({self.core}, {mhz:g} MHz), {self.backend} backend, "
            f"{self.kernels} kernels",
            "",
            render(head, rows, right={0, *range(4, len(head))}),
            "live B: arena bytes in use while the layer runs, its scratch B included",
            "",
            f"total: {fmt_int(self.macs)} MACs, {fmt_int(round(self.instructions))} "
            f"instructions, {fmt_int(round(self.cycles))} cycles = {self.latency_ms:.3f} ms "
            f"at {mhz:g} MHz",
            f"flash: {fmt_int(s['flash'])} B = weights and constants {fmt_int(p['constants'])}"
            f" + kernel code {fmt_int(p['kernel_code'])} + runtime and start-up "
            f"{fmt_int(p['runtime'])}",
            ram,
            "",
            budget_head,
            render(
                ["region", "kind", "size", "used", "%", "holds"],
                [
                    [
                        r.name,
                        r.kind,
                        fmt_int(r.size),
                        fmt_int(r.used),
                        f"{r.percent:.1f}" + ("" if r.used <= r.size else " OVER"),
                        ", ".join(r.holds),
                    ]
                    for r in self.budget
                ],  # fmt: skip
                right={2, 3, 4},
            ),
        ]
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"assumes: {a}" for a in self.assumptions]
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------


def live_bytes(plan: Any, step: int) -> int:
    """Arena bytes in use while node ``step`` runs: the union of the buffers live then (an
    output may overlap the input it consumes, so their sizes do not simply add up)."""
    spans = sorted((b.offset, b.offset + b.size) for b in plan.buffers
                   if b.first <= step <= b.last and b.size)  # fmt: skip
    total, end = 0, 0
    for lo, hi in spans:
        if hi > end:
            total += hi - max(lo, end)
            end = hi
    return total


def stack_reserved() -> int:
    from tinyc.compiler import CompileOptions

    return CompileOptions(board="").stack_bytes


def firmware_sizes(fixed: dict[str, int], model: dict[str, int], arena: int, stack: int,
           state: int = 0) -> dict[str, int]:  # fmt: skip
    """ELF sizes as tinyc.emulate.elf_sizes reports them: the firmware around the model plus
    the model's parts; ``state``: of data + bss, the persistent recurrent state."""
    s = {k: int(fixed[k]) + int(model[k]) for k in ("text", "rodata", "data", "bss")}
    s["arena"], s["stack"], s["state"] = arena, stack, state
    s["flash"] = s["text"] + s["rodata"] + s["data"]
    s["ram"] = s["data"] + s["bss"] + s["arena"] + s["stack"]
    return s


def budget(board: Board, sizes: dict[str, int]) -> list[Region]:
    """The board's firmware placed in its memory regions as its linker script does (the
    arena moves to another RAM region when its own is too small)."""
    from tinyc.emulate.project import _layout

    try:
        layout = _layout(board, None, sizes["arena"], sizes["stack"])
    except TinycError:
        layout = dict(board.layout)  # fits nowhere: shown over budget in its usual region
    state = sizes.get("state", 0)
    placed = [
        ("code", layout["code"], sizes["text"] + sizes["data"]),
        ("constants", layout["rodata"], sizes["rodata"]),
        ("data", layout["data"], sizes["data"] + sizes["bss"] - state),
        *([("state", layout["data"], state)] if state else []),
        ("stack", layout["stack"], sizes["stack"]),
        ("arena", layout["arena"], sizes["arena"]),
    ]
    regions: dict[str, Region] = {}
    for role, name, used in placed:
        r = board.region(name)
        reg = regions.setdefault(name, Region(name, r.kind, r.size, 0, []))
        reg.used += used
        reg.holds.append(role)
    return list(regions.values())

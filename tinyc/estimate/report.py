"""``tinyc estimate``: per-layer and total SRAM, flash, operations and latency of a model on a
board, without building or running anything.

The model goes through the same front end, quantization and C code generation as ``tinyc
compile`` (the arena is the memory planner's own, the constants are the bytes model.c
declares); code size, instructions and stack come from the calibrated cost model, the
firmware around the model from measured baselines of each board.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tinyc.boards import Board, load_board
from tinyc.errors import TinycError
from tinyc.estimate.calibration import CoreCalibration, board_fixed, core_calibration
from tinyc.estimate.costmodel import (
    FLASH_LINE,
    NodeCost,
    cycles,
    linked_units,
    node_cost,
    weights_in_flash,
)
from tinyc.estimate.csource import ModelSource, const_bytes, read_model_c
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import get_op
from tinyc.ir.verify import verify
from tinyc.table import fmt_int, render

BACKENDS = ("cmsis", "tflm")


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


def int8_graph(model: str | Graph) -> tuple[Graph, list[str]]:
    """The int8 graph ``tinyc compile`` would build from ``model``. A float model is
    quantized on one synthetic sample: its ranges change no size, shape or loop count."""
    from tinyc.frontend import load_model

    g = model if isinstance(model, Graph) else load_model(model)
    verify(g)
    if g.is_quantized:
        return g, []
    from tinyc.passes.calibration import synthetic_calibration
    from tinyc.passes.quantize import QuantOptions, quantize

    q, _ = quantize(g, synthetic_calibration(g, 1), QuantOptions())
    return q, [
        f"{g.name} is a float model: estimated as its int8 version (tinyc compile quantizes "
        "it with --calibration; the data changes no size nor cost)"
    ]


def estimate_model(model: str | Graph, board: str | Board, backend: str = "cmsis") -> Estimate:
    """Estimate ``model`` on ``board`` with ``backend`` (cmsis or tflm)."""
    if backend not in BACKENDS:
        raise TinycError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    b = load_board(board) if isinstance(board, str) else board
    g, notes = int8_graph(model)
    if backend == "tflm":
        from tinyc.estimate.tflm import estimate_tflm

        est = estimate_tflm(g, b)
    else:
        est = estimate_cmsis(g, b)
    est.notes = notes + est.notes
    return est


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


def members(node: Node) -> list[Node]:
    """The model's own nodes behind a node of the backend's view (a fused pair is two)."""
    parts = [v for v in node.attrs.values() if isinstance(v, Node)]
    return parts or [node]


def backend_view(gen: Any, src: ModelSource) -> Graph:
    """The graph the C backend emitted node functions for: its own view, in which some
    layers may be fused (tinyc.backends.cmsis.fusion), checked against the generated code
    (each node function's comment names its op)."""
    view = gen.view if gen.view is not None else gen.graph
    for i, (op, name) in src.node_ops.items():
        if i >= len(view.nodes) or view.nodes[i].op != op:
            raise TinycError(f"internal: node {i} ({op} {name}) of model.c is not in the view")
    return view


def _stack_reserved() -> int:
    from tinyc.compiler import CompileOptions

    return CompileOptions(board="").stack_bytes


def estimate_cmsis(g: Graph, board: Board) -> Estimate:
    from tinyc.backends.cmsis.codegen import generate_model, target_for
    from tinyc.passes.int8_tail import quantize_float_tail

    core = core_calibration(board)
    target = target_for(board)
    g, notes = quantize_float_tail(g)  # as tinyc compile does for the C backend
    notes += [core.note] if core.note else []
    if core.data.get("kernel_variant", target) != target:
        notes.append(
            f"the calibration of {core.key} measured {core.data['kernel_variant']} kernels; "
            f"{board.name} runs {target} kernels"
        )
    gen = generate_model(g, g.name, target)
    src = read_model_c(gen.files["model/model.c"])
    gg = backend_view(gen, src)
    fixed, fixed_note = board_fixed(board, core)
    if fixed_note:
        notes.append(fixed_note)
    layers: list[Layer] = []
    costs: list[NodeCost] = []
    for i, node in enumerate(gg.nodes):
        calls: Counter[str] = src.kernels(i)
        cost = node_cost(core, calls, node, gg, {k: src.call_args(i, k) for k in calls})
        costs.append(cost)
        for k in calls:
            other = core.borrowed(k)
            if other and not any(k in n and other in n for n in notes):
                notes.append(f"{k} was not measured on {core.key}: {other}'s figures stand in")
        if cost.uncalibrated:
            notes.append(
                f"layer {i} ({node.op}) calls {', '.join(cost.uncalibrated)}, which has no "
                "calibration: its instructions and code are not counted"
            )
        cyc, wait = cycles(core, board, cost.instructions, cost.weight_reads)
        parts = members(node)
        layers.append(
            Layer(
                index=i,
                name=node.name,
                op="+".join(n.op for n in parts),
                kernel="+".join(sorted(calls)),
                output_shape=list(gg.out(node).shape),
                params=sum(get_op(n.op).params(n, gg) for n in parts),
                macs=sum(get_op(n.op).macs(n, gg) for n in parts),
                weight_bytes=sum(
                    gg.tensors[x].nbytes
                    for n in parts
                    for x in n.inputs
                    if x and gg.tensors[x].is_const
                ),
                live_bytes=live_bytes(gen.plan, i),
                scratch_bytes=gen.plan.scratch.get(i, (0, 0))[1],
                state_bytes=sum(
                    gg.tensors[x].nbytes
                    for n in parts
                    for x in dict.fromkeys(n.inputs)
                    if x in gen.plan.state_offsets
                ),
                instructions=cost.instructions,
                cycles=cyc,
                flash_wait_cycles=wait,
                latency_ms=1e3 * cyc / board.clock_hz,
                code_bytes=cost.code_bytes,
                stack_bytes=cost.stack_bytes,
            )
        )
    kernels_used = {k for c in costs for k in c.kernels}
    units = linked_units(core, kernels_used, set().union(*(c.links for c in costs)))
    inv = core.data["invoke"]
    kernel_code = round(sum(c.code_bytes for c in costs) + inv["text_base"]
                        + inv["text_per_call"] * len(src.calls))  # fmt: skip
    try:
        constants = const_bytes(src, {**core.data.get("struct_sizeof", {}),
                                      **core.data["struct_bytes"]})  # fmt: skip
    except KeyError as e:
        raise TinycError(
            f"the estimate calibration of {core.key} has no size for the C struct {e.args[0]} "
            "that model.c declares: run python bench/estimate_calibrate.py"
        ) from None
    # the recurrent state: zeros in .bss, or an initial image in .data (flash and RAM)
    state = gen.plan.state_bytes
    model = {
        "text": kernel_code + units["text"],
        "rodata": constants + units["rodata"],
        "data": units["data"] + (state if src.state_initialised else 0),
        "bss": units["bss"] + (0 if src.state_initialised else state),
    }
    stack = _stack_reserved()
    arena = max(gen.plan.arena_bytes, 16)
    emu = fixed["emu"]
    sizes = _sizes(emu, model, arena, stack, state)
    parts = {
        "constants": constants,
        "kernel_code": model["text"] + units["rodata"],
        "runtime": emu["text"] + emu["rodata"] + emu["data"],
        "scratch": max((size for _, size in gen.plan.scratch.values()), default=0),
    }
    stack_used = emu["stack_at_invoke"] + inv["frame"] + max((c.stack_bytes for c in costs),
                                                             default=0)  # fmt: skip
    test_data = sum(gg.tensors[n].nbytes for n in (*gg.inputs, *gg.outputs))
    hw = {**fixed["board"], "rodata": fixed["board"]["rodata"] + test_data}
    hw_sizes = _sizes(hw, model, arena, stack, state)
    return Estimate(
        model=g.name,
        board=board.name,
        backend="cmsis",
        core=core.key,
        kernels=target,
        clock_hz=board.clock_hz,
        layers=layers,
        sizes=sizes,
        parts=parts,
        stack_used=stack_used,
        outside_instructions=float(core.data["outside_instructions"]),
        cpi=float(core.data["cpi"]),
        board_firmware={
            "flash_bytes": hw_sizes["flash"],
            "ram_bytes": hw_sizes["ram"],
            "test_data_bytes": test_data,
        },
        budget=budget(board, hw_sizes),
        plan=gen.plan,
        notes=notes,
        assumptions=_assumptions(core, board),
    )


def _sizes(fixed: dict[str, int], model: dict[str, int], arena: int, stack: int,
           state: int = 0) -> dict[str, int]:  # fmt: skip
    """ELF sizes as tinyc.emulate.elf_sizes reports them: the firmware around the model plus
    the model's parts; ``state``: of data + bss, the persistent recurrent state."""
    s = {k: int(fixed[k]) + int(model[k]) for k in ("text", "rodata", "data", "bss")}
    s["arena"], s["stack"], s["state"] = arena, stack, state
    s["flash"] = s["text"] + s["rodata"] + s["data"]
    s["ram"] = s["data"] + s["bss"] + s["arena"] + s["stack"]
    return s


def _assumptions(core: CoreCalibration, board: Board) -> list[str]:
    out = [
        f"cycles = instructions x {core.data['cpi']} (assumed CPI of {core.key}; QEMU counts "
        "instructions, not cycles)",
    ]
    if weights_in_flash(board) and board.flash_wait_states:
        out.append(
            f"+ {board.flash_wait_states} flash wait states per {FLASH_LINE} bytes of weights "
            "read (no reuse; code fetches hidden by the flash accelerator / caches)"
        )
    return out


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

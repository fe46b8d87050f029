"""``tinyc estimate``: per-layer and total SRAM, flash, operations and latency of a model on a
board, without building or running anything.

The model goes through the same front end, quantization and C code generation as ``tinyc
compile`` (the arena is the memory planner's own, the constants are the bytes model.c
declares); code size, instructions and stack come from the calibrated cost model, the
firmware around the model from measured baselines of each board.
"""

from __future__ import annotations

from collections import Counter
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
from tinyc.estimate.result import (
    Estimate,
    Layer,
    budget,
    firmware_sizes,
    live_bytes,
    stack_reserved,
)
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import get_op
from tinyc.ir.verify import verify

BACKENDS = ("cmsis", "tflm")


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
    stack = stack_reserved()
    arena = max(gen.plan.arena_bytes, 16)
    emu = fixed["emu"]
    sizes = firmware_sizes(emu, model, arena, stack, state)
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
    hw_sizes = firmware_sizes(hw, model, arena, stack, state)
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

"""Per-node cost on a core: instructions, cycles, code bytes and stack, from the kernel
features (``tinyc.estimate.features``) and the core's fitted coefficients.

Cycles are not measured (QEMU counts instructions): they are instructions times an assumed
cycles-per-instruction of the core (in the calibration file), plus flash wait states on the
weights and constant tables the kernels read from flash: each ``FLASH_LINE`` bytes read cost
the board's wait states once (a 128-bit flash line, no reuse assumed; instruction fetches are
assumed hidden by the flash accelerator / caches).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from tinyc.boards import Board
from tinyc.estimate.calibration import CoreCalibration
from tinyc.estimate.features import (
    ALIASES,
    KERNELS,
    VARIANTS,
    Features,
    main_kernels,
    node_features,
)
from tinyc.ir.graph import Graph, Node

FLASH_LINE = 16
#: kernels that a fused node's own kernel calls back (their frames stack on the node's)
HELPER_KERNELS = ("tinyc_conv_s8",)


@dataclass
class NodeCost:
    kernels: dict[str, int]  # kernel function -> calls (empty: no code, e.g. a view)
    instructions: float = 0.0
    code_bytes: float = 0.0
    stack_bytes: int = 0  # node frame + the deepest callee
    weight_reads: float = 0.0  # bytes of flash constants read
    uncalibrated: tuple[str, ...] = ()  # kernels without a cost model (counted as 0)
    links: set[str] = field(default_factory=set)  # variant functions the calls select


def _dot(coef: dict[str, float], feats: dict[str, float]) -> float:
    return sum(coef.get(k, 0.0) * v for k, v in feats.items())


def node_cost(core: CoreCalibration, calls: Counter[str], node: Node, g: Graph,
              args: dict[str, list[list[str]]] | None = None) -> NodeCost:  # fmt: skip
    """Cost of ``node``, which calls each kernel of ``calls`` that many times (``args``: the
    argument expressions of those calls, by kernel)."""
    cost = NodeCost(dict(calls))
    helper = node.op.startswith("tinyc:")  # fused: producers run under the last kernel
    args = args or {}
    costed = main_kernels(calls)
    # a fused node's calls each compute one member: costed one by one
    jobs = (
        [(k, 1, [a]) for k in costed for a in args.get(k, [])]
        if helper
        else [(k, n, args.get(k)) for k, n in costed.items()]
    )
    missing = []
    for kernel, n, kargs in jobs:
        cal = core.kernel(ALIASES.get(kernel, kernel))
        if cal is None or kernel not in KERNELS:
            missing.append(kernel)
            continue
        f: Features = node_features(kernel, node, g, n, core.target, kargs)
        code = {"fn": 1.0, **f.code}
        cost.instructions += _dot(cal["instructions"], f.insn)
        for other, feats in f.borrowed.items():  # (parts costed as another kernel's loops)
            ocal = core.kernel(other)
            cost.instructions += _dot(ocal["instructions"], feats) if ocal else 0.0
        cost.code_bytes += _dot(cal["code"], code)
        frame = min(-(-round(_dot(cal["frame"], code)) // 8) * 8, cal["frame_max"])
        if helper and kernel in HELPER_KERNELS:  # called from the node's frame
            cost.stack_bytes += frame + cal["callee_stack"]
        else:
            cost.stack_bytes = max(cost.stack_bytes, frame + cal["callee_stack"])
        cost.weight_reads += f.weight_reads
        cost.links |= f.links
    cost.code_bytes += core.data.get("fused_code", {}).get(node.op, 0)
    cost.uncalibrated = tuple(sorted(set(missing)))
    return cost


def weights_in_flash(board: Board) -> bool:
    return board.region(board.layout["rodata"]).kind == "flash"


def cycles(core: CoreCalibration, board: Board, instructions: float, weight_reads: float
           ) -> tuple[float, float]:  # fmt: skip
    """(cycles, of which flash wait states) for a node on ``board``."""
    wait = 0.0
    if weights_in_flash(board) and board.flash_wait_states:
        wait = board.flash_wait_states * weight_reads / FLASH_LINE
    return instructions * float(core.data["cpi"]) + wait, wait


def linked_units(core: CoreCalibration, kernels: set[str], links: set[str]) -> dict[str, int]:
    """Bytes per section kind (text, rodata, data, bss) of the runtime and library sections
    the given kernels link, each counted once; of a kernel's conditional sections
    (VARIANTS) only those in ``links``."""
    units: set[str] = set()
    for k in kernels:
        cal = core.kernel(ALIASES.get(k, k))
        if cal is None:
            continue
        for u in cal["units"]:
            if u.startswith(VARIANTS.get(k, ())) and u not in links:
                continue
            units.add(u)
    out = dict.fromkeys(("text", "rodata", "data", "bss"), 0)
    for u in units:
        info = core.data["units"][u]
        if info["kind"] in out:
            out[info["kind"]] += info["bytes"]
    return out

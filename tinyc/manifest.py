"""What a compiled project records and must pass before it is written: the manifest
(``tinyc.json``), the compile report, the embedded test vectors and the flash / arena checks.

Shared by both backends (tinyc.compiler writes C projects, tinyc.backends.tflm.project TFLM
ones) and read back by ``tinyc run`` / ``validate``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinyc import __version__
from tinyc.boards import Board
from tinyc.errors import TinycError
from tinyc.ir.graph import Graph
from tinyc.ir.ops import get_op
from tinyc.modelio import random_inputs

MANIFEST = "tinyc.json"


@dataclass
class CompileReport:
    model: str
    board: str
    backend: str
    kernels: str
    out_dir: str
    files: list[str]
    arena_bytes: int
    weight_bytes: int
    macs: int
    nodes: int
    memory_plan: dict
    quantization: Any = None  # a QuantReport when the model was float
    notes: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    pruning: Any = None  # a PruneReport with --prune (tinyc.prune_report)
    kronecker: Any = None  # a KroneckerReport with --kronecker (tinyc.passes.kronecker)

    def format_text(self) -> str:
        lines = [
            f"compiled {self.model} for {self.board} ({self.backend} backend, "
            f"{self.kernels} kernels) into {self.out_dir}",
            f"  {self.nodes} nodes, {self.macs:,} MACs",
            f"  weights {self.weight_bytes:,} B (flash), arena {self.arena_bytes:,} B (RAM)",
            *(f"  note: {n}" for n in self.notes),
        ]
        if self.pruning is not None:
            lines += ["", self.pruning.format_text()]
        if self.kronecker is not None:
            lines += ["", self.kronecker.format_text()]
        if self.quantization is not None:
            lines += ["", self.quantization.format_text()]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "board": self.board,
            "backend": self.backend,
            "kernels": self.kernels,
            "out_dir": self.out_dir,
            "files": self.files,
            "arena_bytes": self.arena_bytes,
            "weight_bytes": self.weight_bytes,
            "macs": self.macs,
            "nodes": self.nodes,
            "memory_plan": self.memory_plan,
            "quantization": self.quantization.to_json() if self.quantization else None,
            "notes": self.notes,
            **({"pruning": self.pruning.to_json()} if self.pruning is not None else {}),
            **({"kronecker": self.kronecker.to_dict()} if self.kronecker is not None else {}),
            **self.extra,
        }


def total_macs(g: Graph) -> int:
    return sum(get_op(n.op).macs(n, g) for n in g.nodes)


def graph_digest(g: Graph) -> str:
    """A stable hash of the graph's structure and constants (names the source in reports)."""
    h = hashlib.sha256()
    for n in g.nodes:
        h.update(repr((n.op, n.inputs, n.outputs, sorted(n.attrs.items()))).encode())
    for name in sorted(g.tensors):
        t = g.tensors[name]
        h.update(repr((name, t.shape, t.dtype)).encode())
        if t.quant is not None:
            h.update(t.quant.scale.tobytes() + t.quant.zero_point.tobytes())
        if t.data is not None:
            h.update(t.data.tobytes())
    return h.hexdigest()[:16]


def test_vectors(g: Graph, paths: list[str] | None) -> list[np.ndarray]:
    """Internal-layout inputs for the firmware's embedded test: the user's or seeded random."""
    if paths:
        from tinyc.modelio import load_inputs

        return load_inputs(g, paths)
    return random_inputs(g, 0)


def manifest_base(
    g: Graph, board: Board, backend: str, kernels: str, qreport: Any = None
) -> dict[str, Any]:
    """The fields every project's tinyc.json starts with (and, for a model tinyc quantized,
    how the int8 graph agreed with the float one, for ``tinyc run``)."""
    base = {
        "format": "tinyc-project",
        "version": 1,
        "tinyc": __version__,
        "model": g.name,
        "graph": graph_digest(g),
        "board": board.name,
        "backend": backend,
        "kernels": kernels,
    }
    if qreport is not None:
        base["quantization"] = quantization_summary(qreport)
    return base


def quantization_summary(qreport: Any) -> dict[str, Any]:
    """int8 vs float on the held-out samples, as compile measured it (an SQNR of None: no
    error at all)."""
    quality = qreport.quality
    return {
        "compared": "int8 vs float model",
        "calibration_samples": qreport.calibration_samples,
        "eval_samples": qreport.eval_samples,
        "eval_source": qreport.eval_source,
        "outputs": [
            {
                "name": o.name,
                "task": o.task,
                "sqnr_db": None if o.sqnr_db is None else round(o.sqnr_db, 2),
                "top1_agreement": o.top1_agreement,
            }
            for o in qreport.outputs
        ],
        "gate_warning": None if quality is None or quality.ok else quality.headline(),
    }


def io_entry(g: Graph, name: str) -> dict[str, Any]:
    t = g.tensors[name]
    info: dict[str, Any] = {"name": name, "shape": list(t.shape), "dtype": t.dtype}
    if t.quant is not None:
        info["scale"] = float(t.quant.s)
        info["zero_point"] = t.quant.zp
    return info


def check_flash(board: Board, const_bytes: int, g: Graph) -> None:
    """Refuse models whose constants alone exceed the board's constant-data region,
    naming the region, the need, the capacity and the largest tensors."""
    region = board.region(board.layout["rodata"])
    if const_bytes <= region.size:
        return
    biggest = sorted(g.constants(), key=lambda t: -t.nbytes)[:3]
    names = ", ".join(f"{t.name!r} ({t.nbytes:,} B)" for t in biggest)
    raise TinycError(
        f"the model's weights and constants need {const_bytes:,} bytes but {board.name}'s "
        f"{region.name} ({region.kind}) holds {region.size:,} "
        f"({const_bytes - region.size:,} bytes short); largest tensors: {names}"
    )


def check_arena(board: Board, plan, g: Graph) -> None:
    """Refuse models whose activation arena fits no on-chip RAM region of the board, naming
    the region, the need, the capacity and the layer where the most memory is live."""
    rams = [r for r in board.memory if r.kind in ("sram", "tcm") and r.usable]
    if not rams:
        return
    best = max(rams, key=lambda r: r.size)
    if plan.arena_bytes <= best.size:
        return
    step = max(range(len(g.nodes)), key=plan.live_bytes_at, default=0)
    live = sorted((b for b in plan.buffers if b.first <= step <= b.last), key=lambda b: -b.size)[:3]
    names = ", ".join(f"{b.tensors[0] if b.tensors else b.name!r} ({b.size:,} B)" for b in live)
    raise TinycError(
        f"the activation arena needs {plan.arena_bytes:,} bytes but {board.name}'s largest RAM "
        f"region, {best.name}, holds {best.size:,} ({plan.arena_bytes - best.size:,} bytes "
        f"short); the peak is at layer {g.nodes[step].name!r} ({g.nodes[step].op}) with "
        f"{names} live"
    )


def read_manifest(project: str | Path) -> dict[str, Any]:
    p = Path(project) / MANIFEST
    if not p.exists():
        raise TinycError(f"{project} is not a tinyc project (no {MANIFEST}); run tinyc compile")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise TinycError(f"{p} is damaged ({e})") from None

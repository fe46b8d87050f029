"""The compile driver: model -> (quantize) -> backend -> project directory, and its report.

``compile_model`` is what ``tinyc compile`` runs; ``tinyc run`` and ``tinyc validate`` build
on the project it writes.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinyc import __version__
from tinyc.boards import Board, load_board
from tinyc.errors import TinycError
from tinyc.fsutil import atomic_dir
from tinyc.interpreter import run as run_reference
from tinyc.ir.graph import Graph
from tinyc.ir.ops import get_op
from tinyc.ir.verify import require_supported, verify
from tinyc.modelio import random_inputs, to_external

MANIFEST = "tinyc.json"
BACKENDS = ("cmsis", "tflm")
KERNELS = ("tinyc", "cmsis-nn")


@dataclass
class CalibrationOptions:
    """How a float model gets its int8 ranges (see tinyc.passes.quantize)."""

    path: str | None = None
    samples: int | None = None
    synthetic: bool = False
    observer: str = "auto"
    io_dtype: str = "int8"
    eval_samples: int | None = None  # held-out samples for the report (default 64)
    min_sqnr: float | None = None  # an output SQNR below this (dB) is an error
    quant: dict[str, Any] = field(default_factory=dict)  # more QuantOptions fields (cli flags)


@dataclass
class CompileOptions:
    board: str
    backend: str = "cmsis"
    kernels: str = "tinyc"
    force: bool = False
    calibration: CalibrationOptions = field(default_factory=CalibrationOptions)
    test_input: list[str] | None = None  # .npy files for the firmware's embedded test input
    stack_bytes: int = 8192
    stream: bool = False  # one time step per invocation (tinyc.passes.streaming)


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

    def format_text(self) -> str:
        lines = [
            f"compiled {self.model} for {self.board} ({self.backend} backend, "
            f"{self.kernels} kernels) into {self.out_dir}",
            f"  {self.nodes} nodes, {self.macs:,} MACs",
            f"  weights {self.weight_bytes:,} B (flash), arena {self.arena_bytes:,} B (RAM)",
            *(f"  note: {n}" for n in self.notes),
        ]
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


def quantize_if_float(g: Graph, cal: CalibrationOptions, log) -> tuple[Graph, Any]:
    """Return an int8 graph: quantized ones pass through, float ones need calibration
    data (see tinyc.passes.quantize.quantize_with_data)."""
    if g.is_quantized:
        return g, None
    from tinyc.passes.quantize import QuantOptions, quantize_with_data

    opts = QuantOptions(observer=cal.observer, io_dtype=cal.io_dtype, **cal.quant)
    q, report = quantize_with_data(
        g,
        cal.path,
        cal.samples,
        cal.synthetic,
        opts,
        show_progress=sys.stderr.isatty(),
        eval_samples=cal.eval_samples,
        min_sqnr=cal.min_sqnr,
    )
    for line in report.quality.lines():
        log(line)
    return q, report


def test_vectors(g: Graph, paths: list[str] | None) -> list[np.ndarray]:
    """Internal-layout inputs for the firmware's embedded test: the user's or seeded random."""
    if paths:
        from tinyc.modelio import load_inputs

        return load_inputs(g, paths)
    return random_inputs(g, 0)


def _log_stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def compile_model(
    model: str | Graph, opts: CompileOptions, out_dir: str | Path, log=_log_stderr
) -> CompileReport:
    """Compile ``model`` for ``opts.board`` into the project directory ``out_dir``."""
    from tinyc.frontend import load_model

    if opts.backend not in BACKENDS:
        raise TinycError(f"unknown backend {opts.backend!r}; choose from {', '.join(BACKENDS)}")
    if opts.kernels not in KERNELS:
        raise TinycError(f"unknown kernels {opts.kernels!r}; choose from {', '.join(KERNELS)}")
    board = load_board(opts.board)
    g = model if isinstance(model, Graph) else load_model(model)
    require_supported(g, g.name)
    verify(g)
    g, qreport = quantize_if_float(g, opts.calibration, log)
    if opts.stream:
        g = streaming_graph(g)
    if opts.backend == "tflm":
        from tinyc.backends.tflm.project import compile_tflm_project

        return compile_tflm_project(g, board, out_dir, opts, qreport)
    return _compile_cmsis(g, board, opts, Path(out_dir), qreport)


def streaming_graph(g: Graph) -> Graph:
    """The step graph of ``g`` for firmware that runs one time step per invocation; the
    project remembers the sequence it came from (``streaming`` in tinyc.json)."""
    from tinyc.passes.streaming import to_streaming

    plan = to_streaming(g)
    if plan.tail is not None:
        raise TinycError(
            f"--stream: node {plan.tail_node!r} mixes time steps ({plan.describe()}); firmware "
            "that runs one step per invocation needs every layer to work per step (tinyc infer "
            "--stream runs the rest once per sequence)"
        )
    return plan.step


def _compile_cmsis(
    g: Graph, board: Board, opts: CompileOptions, out_dir: Path, qreport: Any
) -> CompileReport:
    from tinyc.backends.cmsis import cmsisnn_project
    from tinyc.backends.cmsis.codegen import generate_model, runtime_files, target_for
    from tinyc.emulate import render_project
    from tinyc.passes.int8_tail import quantize_float_tail
    from tinyc.project import save_project_graph

    g, notes = quantize_float_tail(g)  # the C backend runs int8 only
    notes = list(g.notes) + notes
    gen = generate_model(g, g.name, target_for(board), opts.kernels)
    check_flash(board, gen.const_bytes, g)
    check_arena(board, gen.plan, gen.graph)
    inputs = test_vectors(g, opts.test_input)
    expected = run_reference(g, inputs)
    ext_in = [to_external(g, n, x) for n, x in zip(g.inputs, inputs, strict=True)]
    ext_out = [to_external(g, n, expected[n]) for n in g.outputs]
    with atomic_dir(out_dir, opts.force) as tmp:
        files = {**gen.files, **runtime_files(gen.runtime_sources)}
        if opts.kernels == "cmsis-nn":
            files.update(cmsisnn_project.library_files())
            notes.append(cmsisnn_project.coverage_note(gen.graph))
        for rel, text in sorted(files.items()):
            p = tmp / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
        written = render_project(
            tmp,
            board,
            g.name,
            ext_in,
            ext_out,
            arena_bytes=gen.plan.arena_bytes,
            stack_bytes=opts.stack_bytes,
            fetched_libraries=[cmsisnn_project.fetched_library()]
            if opts.kernels == "cmsis-nn"
            else [],
        )
        saved = [p.name for p in save_project_graph(g, tmp)]
        manifest = {
            **manifest_base(g, board, "cmsis", opts.kernels, qreport),
            "arena_bytes": gen.plan.arena_bytes,
            "weight_bytes": gen.const_bytes,
            "stack_bytes": opts.stack_bytes,
            "macs": total_macs(g),
            "inputs": [_io(gen.graph, n) for n in gen.graph.inputs],
            "outputs": [_io(gen.graph, n) for n in gen.graph.outputs],
            "memory_plan": gen.plan.to_json(),
        }
        if opts.kernels == "cmsis-nn":
            manifest["cmsis_nn"] = cmsisnn_project.manifest_entry()
        if g.stream:
            manifest["streaming"] = dict(g.stream)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        all_files = sorted({*files, *written, *saved, MANIFEST})
    return CompileReport(
        model=g.name,
        board=board.name,
        backend="cmsis",
        kernels=opts.kernels,
        out_dir=str(out_dir),
        files=all_files,
        arena_bytes=gen.plan.arena_bytes,
        weight_bytes=gen.const_bytes,
        macs=total_macs(g),
        nodes=len(g.nodes),
        memory_plan=gen.plan.to_json(),
        quantization=qreport,
        notes=notes + _stream_note(g),
    )


def _stream_note(g: Graph) -> list[str]:
    if not g.stream:
        return []
    return [
        f"streaming: one time step per tinyc_invoke() ({g.stream['steps']} per sequence in the "
        "source model); the recurrent state stays in RAM between invocations, "
        "tinyc_reset_state() starts a new sequence"
    ]


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


def _io(g: Graph, name: str) -> dict[str, Any]:
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

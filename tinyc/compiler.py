"""The compile driver: model -> (quantize) -> backend -> project directory, and its report.

``compile_model`` is what ``tinyc compile`` runs; ``tinyc run`` and ``tinyc validate`` build
on the project it writes.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyc.boards import Board, load_board
from tinyc.errors import TinycError
from tinyc.fsutil import atomic_dir
from tinyc.interpreter import run as run_reference
from tinyc.ir.graph import Graph
from tinyc.ir.verify import require_supported, verify
from tinyc.manifest import (
    MANIFEST,
    CompileReport,
    check_arena,
    check_flash,
    io_entry,
    manifest_base,
    test_vectors,
    total_macs,
)
from tinyc.modelio import to_external

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
    skip_threshold: float = 0.0  # --skip-threshold T with --stream (tinyc.passes.skip_state)
    prune: Any = None  # a tinyc.passes.prune.PruneOptions (--prune)
    kronecker: str | None = None  # --kronecker SPEC (tinyc.passes.kronecker)


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
    preport = None
    if opts.prune is not None:  # zeros first, then int8 (tinyc.passes.prune)
        from tinyc.prune_report import prune_with_data

        g, preport = prune_with_data(g, opts.prune, opts.calibration, log)
    kreport = None
    if opts.kronecker:  # float layers factored, then int8 (tinyc.passes.kronecker)
        from tinyc.passes.kronecker import kronecker_with_data

        g, kreport = kronecker_with_data(g, opts.kronecker, opts.calibration, log)
    if opts.backend == "tflm":  # before int8: TFLite has no Kronecker op, say so now
        from tinyc.backends.tflm.lower import require_tflite_ops

        require_tflite_ops(g)
    source = g
    g, qreport = quantize_if_float(g, opts.calibration, log)
    if opts.stream:
        g = skip_graph(streaming_graph(g), source, opts, log)
    elif opts.skip_threshold and opts.skip_threshold > 0:
        raise TinycError("--skip-threshold needs --stream (it skips a streaming model's steps)")
    if opts.backend == "tflm":
        from tinyc.backends.tflm.project import compile_tflm_project

        report = compile_tflm_project(g, board, out_dir, opts, qreport)
    else:
        report = _compile_cmsis(g, board, opts, Path(out_dir), qreport)
    report.pruning = preport
    report.kronecker = kreport
    if opts.backend == "tflm":
        report.notes += _tflm_zeros_note(g)
    # tinyc.json keeps what the compression passes did
    _record_passes(Path(out_dir), preport.to_json() if preport is not None else None,
                   kreport.to_dict() if kreport is not None else None)  # fmt: skip
    return report


#: a share of zero layer weights from which a TFLM project says it keeps them
TFLM_ZEROS_NOTE = 0.3


def _tflm_zeros_note(g: Graph) -> list[str]:
    """TFLM has no sparse kernels: a pruned graph's zeros are stored and multiplied."""
    from tinyc.passes.prune import layer_sparsity

    per = layer_sparsity(g).values()
    zeros, total = sum(z for z, _ in per), sum(n for _, n in per)
    if not total or zeros < TFLM_ZEROS_NOTE * total:
        return []
    return [
        f"{zeros:,} of {total:,} layer weights are zero ({100 * zeros / total:.0f} %): TFLM has "
        "no sparse kernels, so the .tflite stores the zeros as they are and its kernels multiply "
        "them (no flash or time saved; --backend cmsis runs such layers with sparse kernels, and "
        "on Ethos-U boards Vela compresses the weight stream)"
    ]


def _record_passes(project: Path, pruning: dict | None, kronecker: dict | None) -> None:
    """Add the reports of --prune and --kronecker to the project's tinyc.json."""
    import json

    from tinyc.manifest import MANIFEST

    path = project / MANIFEST
    reports = {k: v for k, v in (("pruning", pruning), ("kronecker", kronecker)) if v is not None}
    if reports and path.exists():
        data = json.loads(path.read_text())
        data.update(reports)
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


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


def skip_graph(step: Graph, whole: Graph, opts: CompileOptions, log) -> Graph:
    """``step`` with its recurrent layers guarded by --skip-threshold (none when off), and
    the skip statistics of its gates (those, and learned gates the model brings: a
    SkipGRU / SkipLSTM) on the calibration stream (--calibration, else --test-input; read
    for ``whole``, the model as loaded) in ``step.stream["skip"]`` (tinyc.json's
    ``streaming.skip``, a report note)."""
    from tinyc.passes.skip_state import (
        add_skip_gates,
        always_update,
        learned_gates,
        skip_stats,
        stream_sequences,
    )

    learned = bool(learned_gates(step))
    if (not opts.skip_threshold or opts.skip_threshold <= 0) and not learned:
        return step
    if opts.backend == "tflm":
        what = "--skip-threshold" if not learned else "learned skip gates"
        raise TinycError(f"{what}: the tflm backend has no skip gate; use --backend cmsis")
    g = add_skip_gates(step, opts.skip_threshold or 0.0)
    if learned:
        g.stream = {**g.stream, "skip_learned": True}
    if opts.calibration.path:
        from tinyc.passes.calibration import load_calibration

        samples = load_calibration(opts.calibration.path, whole, opts.calibration.samples)
    elif opts.test_input:
        samples = [test_vectors(whole, opts.test_input)]
    else:
        samples = []
    if samples:
        stats = skip_stats(g, stream_sequences(g, whole.inputs, samples), always_update(step))
        g.stream["skip"] = stats.to_json()
        log(f"tinyc: {stats.line()} (on the calibration stream)")
    return g


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
    if opts.kernels == "tinyc":
        from tinyc.backends.cmsis.emit.sparse import summary_note

        note = summary_note(gen.graph, target_for(board))
        notes += [note] if note else []
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
            "inputs": [io_entry(gen.graph, n) for n in gen.graph.inputs],
            "outputs": [io_entry(gen.graph, n) for n in gen.graph.outputs],
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
    ] + _skip_note(g)


def _skip_note(g: Graph) -> list[str]:
    from tinyc.passes.skip_state import skip_label

    t, skip = g.stream.get("skip_threshold"), g.stream.get("skip")
    learned = bool(g.stream.get("skip_learned"))
    if not t and not learned:
        return []
    label = skip_label(t, learned)
    if not skip:
        how = (
            "a recurrent update is skipped when its input frame moves less than that"
            if not learned
            else "a recurrent update is skipped when its learned gate closes"
        )
        return [
            f"skip: {label}: {how}; worst case = no skip (give --calibration for the skip rate)"
        ]
    return [
        f"skip: {label}, {skip['steps']} steps of the calibration stream: skip rate "
        f"{100 * skip['skip_rate']:.1f}%, MACs per step mean {skip['macs_per_step_mean']:,.0f}"
        f" / worst {skip['macs_per_step_worst']:,}; largest output change from not skipping "
        f"{skip.get('max_output_diff', 0):.3g}"
    ]

"""The ``tinyc`` command line: thin click commands over the compiler's modules."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import numpy as np

from tinyc import __version__
from tinyc.errors import TinycError

if TYPE_CHECKING:
    from tinyc.compiler import CompileOptions


def _emit_json(obj: object) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=False))


def _warn(msg: str) -> None:
    click.echo(msg, err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tinyc")
@click.option(
    "--debug",
    is_flag=True,
    help="Show Python tracebacks for errors (accepted anywhere on the command line).",
)
def cli(debug: bool) -> None:
    """tinyc: compile TinyML models (ONNX, PyTorch, TFLite) into firmware for microcontrollers.

    MODEL is an .onnx, .tflite or .pt2 file, or FILE.py:FACTORY (a function returning the
    PyTorch module and a tuple of example inputs). -o is always the output directory.
    """


_emulator_option = click.option(
    "--emulator",
    type=click.Choice(["qemu", "renode"]),
    default="qemu",
    show_default=True,
    help="qemu: the board's emulated twin (same core, exact instruction counts); renode: the "
    "board's own image (`make board`) on Renode's model of the chip (Renode on PATH or $RENODE).",
)


def _output_option(help_text: str, required: bool = False) -> Callable[[Any], Any]:
    """``-o`` / ``--output`` / ``--output-dir``: one option, the output directory, everywhere."""
    return click.option(
        "--output",
        "--output-dir",
        "-o",
        "out_dir",
        required=required,
        type=click.Path(file_okay=False, path_type=Path),
        metavar="DIR",
        help=help_text,
    )


@cli.command()
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def inspect(model: str, as_json: bool) -> None:
    """Per-node table of MODEL: op, shapes, dtype, parameters, MACs; then totals."""
    from tinyc.frontend import load_model
    from tinyc.inspect_model import format_inspection, inspect_graph

    info = inspect_graph(load_model(model))
    if as_json:
        _emit_json(info)
    else:
        click.echo(format_inspection(info))


_SKIP_OPTION = click.option(
    "--skip-threshold",
    type=float,
    default=None,
    metavar="T",
    help="With --stream: skip a recurrent layer's update (hold its state and output) when its "
    "input frame differs from the last one it processed by less than T (real units of the "
    "layer's input; int8 models compare ceil(T / scale) int8 steps). T <= 0: no skipping.",
)


@cli.command()
@click.argument("model")
@click.option(
    "--input",
    "-i",
    "inputs",
    multiple=True,
    required=True,
    metavar="X.npy",
    help="One .npy per model input, in the model's own layout and dtype.",
)
@_output_option("Directory to write output_0.npy ... into.", required=True)
@click.option("--force", is_flag=True, help="Replace a non-empty output directory.")
@click.option(
    "--stream",
    is_flag=True,
    help="Feed the sequence one time step at a time (recurrent state carried between steps) "
    "and check that this equals the whole-sequence result.",
)
@_SKIP_OPTION
@click.option("--json", "as_json", is_flag=True, help="List the outputs as JSON.")
def infer(
    model: str,
    inputs: tuple[str, ...],
    out_dir: Path,
    force: bool,
    stream: bool,
    skip_threshold: float | None,
    as_json: bool,
) -> None:
    """Run MODEL on the reference interpreter and write its outputs."""
    from tinyc.frontend import load_model
    from tinyc.fsutil import atomic_dir
    from tinyc.interpreter import run
    from tinyc.ir.verify import require_supported
    from tinyc.modelio import load_inputs, to_external

    g = load_model(model)
    require_supported(g, g.name)
    xs = load_inputs(g, list(inputs))
    results = run(g, xs)
    streamed = None
    if stream:
        from tinyc.passes.streaming import run_streaming, to_streaming

        plan = to_streaming(g)
        step_results = run_streaming(plan, xs)
        diff = max(
            float(np.max(np.abs(step_results[n].astype(np.float64) - results[n])))
            for n in g.outputs
        )
        if g.is_quantized and diff != 0:
            raise TinycError(
                f"--stream: the streamed result differs from the whole sequence by {diff}"
            )
        streamed = {"steps": plan.steps, "plan": plan.describe(), "max_abs_diff": diff}
        results = step_results
        from tinyc.passes.skip_state import learned_gates

        if (skip_threshold and skip_threshold > 0) or learned_gates(plan.step):
            import dataclasses

            from tinyc.passes.skip_state import (
                add_skip_gates,
                always_update,
                skip_stats,
                split_steps,
            )

            # the reference: every layer updates every step (no threshold, learned gates open)
            unskipped = run_streaming(dataclasses.replace(plan, step=always_update(plan.step)), xs)
            plan.step = add_skip_gates(plan.step, skip_threshold or 0.0)
            results = run_streaming(plan, xs)
            skip = skip_stats(
                plan.step,
                [split_steps(plan.step, [xs[g.inputs.index(n)] for n in plan.step.inputs])],
            )
            streamed["skip"] = skip.to_json()
            streamed["skip_max_abs_diff"] = max(
                float(np.max(np.abs(results[n].astype(np.float64) - unskipped[n])))
                for n in g.outputs
            )
    elif skip_threshold and skip_threshold > 0:
        raise TinycError("--skip-threshold needs --stream (it skips a streaming model's steps)")
    listing = []
    with atomic_dir(out_dir, force) as tmp:
        for i, name in enumerate(g.outputs):
            y = to_external(g, name, results[name])
            np.save(tmp / f"output_{i}.npy", y)
            listing.append(
                {
                    "file": str(out_dir / f"output_{i}.npy"),
                    "name": name,
                    "shape": list(y.shape),
                    "dtype": str(y.dtype),
                }
            )
    if as_json:
        _emit_json({"outputs": listing, **({"stream": streamed} if streamed else {})})
    else:
        for o in listing:
            click.echo(f"{o['file']}: {o['name']} {o['dtype']}[{','.join(map(str, o['shape']))}]")
        if streamed:
            same = (
                "bit-exact"
                if streamed["max_abs_diff"] == 0
                else (f"max |difference| {streamed['max_abs_diff']:.3g}")
            )
            click.echo(
                f"streamed {streamed['steps']} steps ({streamed['plan']}): {same} against the "
                "whole-sequence result"
            )
            if "skip" in streamed:
                from tinyc.passes.skip_state import skip_label

                sk = streamed["skip"]
                click.echo(
                    f"skip: {skip_label(sk['threshold'], sk['learned'])}: skip rate "
                    f"{100 * sk['skip_rate']:.1f}%"
                    f", MACs per step mean {sk['macs_per_step_mean']:,.0f} / worst "
                    f"{sk['macs_per_step_worst']:,}; max |difference| from not skipping "
                    f"{streamed['skip_max_abs_diff']:.3g} (the outputs written are skipping's)"
                )


_PRUNE_OPTIONS = [
    click.option(
        "--prune",
        metavar="SPEC",
        help="Set weights of conv/FC/recurrent layers to zero before int8: a fraction of all "
        "of them (0.8, spread by layer sensitivity) or per layer ('conv*=0.7,fc*=0.9').",
    ),
    click.option(
        "--prune-method",
        type=click.Choice(["magnitude", "reconstruction", "both"]),
        help="Pruning method (default: reconstruction with --calibration, else magnitude; "
        "both: report both, keep reconstruction).",
    ),
    click.option(
        "--prune-block",
        type=click.Choice(["1", "2", "4", "8"]),
        help="Prune fully-connected layers in blocks of N output channels (recurrent gate "
        "matrices: N units of a gate) that lose the same input columns (default 1: "
        "unstructured). 4 matches the C backend's grouped sparse kernels: about 2x fewer "
        "instructions per weight kept than unstructured zeros.",
    ),
    click.option(
        "--kronecker",
        metavar="SPEC",
        help="Replace fully-connected matrices by the nearest sum of R Kronecker products "
        "before int8: a rank for every layer (2) or per layer ('fc*=1,dense_3=2').",
    ),
]


def _add_options(options: list):
    """A decorator applying ``options`` (click.option decorators) in their listed order."""

    def apply(f):
        for opt in reversed(options):
            f = opt(f)
        return f

    return apply


def _prune_options(kw: dict):
    """PruneOptions from --prune / --prune-method (None without --prune)."""
    if kw.get("prune") is None:
        for flag in ("prune_method", "prune_block"):
            if kw.get(flag):
                raise click.UsageError(f"--{flag.replace('_', '-')} needs --prune SPEC")
        return None
    from tinyc.passes.prune import PruneOptions

    block = kw.get("prune_block")
    return PruneOptions.parse(kw["prune"], kw.get("prune_method"), int(block) if block else None)


def _compile_options(f):
    """Options shared by compile, run and validate."""
    opts = [
        click.option(
            "--backend",
            type=click.Choice(["cmsis", "tflm"]),
            default="cmsis",
            show_default=True,
            help="Interpreter-free C, or a TFLite Micro project.",
        ),
        click.option(
            "--kernels",
            type=click.Choice(["tinyc", "cmsis-nn"]),
            default="tinyc",
            show_default=True,
            help="C backend kernels: tinyc's own or CMSIS-NN.",
        ),
        click.option(
            "--calibration",
            metavar="DATA",
            help="Float models: calibration inputs (.npz, .npy folder, or case "
            "folders with input_<i>.npy).",
        ),
        click.option(
            "--calibration-samples",
            type=click.IntRange(min=1),
            metavar="N",
            help="Calibrate on N samples drawn by a seeded shuffle (default 100).",
        ),
        click.option(
            "--eval-samples",
            type=click.IntRange(min=0),
            metavar="N",
            help="Hold N other samples apart to measure int8 vs float (default 64).",
        ),
        click.option(
            "--min-sqnr",
            type=float,
            metavar="DB",
            help="Fail (exit 2, nothing written) when an output's int8 SQNR on the held-out "
            "samples is below DB.",
        ),
        click.option(
            "--synthetic-calibration",
            is_flag=True,
            help="Float models without data: calibrate on random inputs (a trial only).",
        ),
        click.option(
            "--observer",
            type=click.Choice(["auto", "minmax", "percentile", "mse"]),
            default="auto",
            show_default=True,
            help="Range observer for activations.",
        ),
        click.option(
            "--per-tensor",
            is_flag=True,
            help="One int8 scale per weight tensor (default: one per output channel).",
        ),
        click.option(
            "--bias-correction/--no-bias-correction",
            default=None,
            help="Move each layer's bias by its mean int8 error on the calibration data "
            "(default: on).",
        ),
        click.option(
            "--equalize",
            is_flag=True,
            help="Cross-layer equalization of conv/depthwise/FC pairs through ReLU before "
            "calibration.",
        ),
        click.option(
            "--adaround",
            is_flag=True,
            help="Choose each weight's rounding on the calibration data (AdaRound; slower).",
        ),
        *_PRUNE_OPTIONS,
        click.option(
            "--stream",
            is_flag=True,
            help="Recurrent models: firmware that runs one time step per invocation, the "
            "state kept between invocations (tinyc_reset_state() starts a new sequence).",
        ),
        _SKIP_OPTION,
        click.option(
            "--io-dtype",
            type=click.Choice(["int8", "float32"]),
            default="int8",
            show_default=True,
            help="Quantized models' input/output type.",
        ),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _quant_flags(kw: dict) -> dict[str, bool]:
    """QuantOptions fields set by --per-tensor, --[no-]bias-correction, --equalize, --adaround."""
    flags = {"per_channel": not kw.get("per_tensor", False)}
    if kw.get("bias_correction") is not None:
        flags["bias_correction"] = kw["bias_correction"]
    flags |= {k: True for k in ("equalize", "adaround") if kw.get(k)}
    return flags


def _options(board: str, **kw) -> CompileOptions:
    from tinyc.compiler import CalibrationOptions, CompileOptions

    cal = CalibrationOptions(
        path=kw.get("calibration"),
        samples=kw.get("calibration_samples"),
        synthetic=kw.get("synthetic_calibration", False),
        observer=kw.get("observer", "auto"),
        io_dtype=kw.get("io_dtype", "int8"),
        eval_samples=kw.get("eval_samples"),
        min_sqnr=kw.get("min_sqnr"),
        quant=_quant_flags(kw),
    )
    return CompileOptions(
        board=board,
        backend=kw.get("backend", "cmsis"),
        kernels=kw.get("kernels", "tinyc"),
        force=kw.get("force", False),
        calibration=cal,
        test_input=list(kw.get("test_input") or []) or None,
        stream=kw.get("stream", False),
        skip_threshold=kw.get("skip_threshold") or 0.0,
        prune=_prune_options(kw),
        kronecker=kw.get("kronecker"),
    )


@cli.command("compile")
@click.argument("model")
@click.option("--board", "-b", required=True, help="Target board (see `tinyc boards`).")
@_output_option("Project directory to write.", required=True)
@click.option("--force", is_flag=True, help="Replace a non-empty output directory.")
@click.option(
    "--test-input",
    multiple=True,
    metavar="X.npy",
    help="Input embedded in the firmware's self-test (default: seeded random).",
)
@_compile_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report.")
def compile_cmd(model: str, board: str, out_dir: Path, as_json: bool, **kw) -> None:
    """Compile MODEL into a firmware project for BOARD."""
    from tinyc.compiler import compile_model

    # the text report ends with the quality gate's warning; with --json it goes to stderr too
    log = _warn if as_json else (lambda m: None)
    report = compile_model(model, _options(board, **kw), out_dir, log=log)
    if as_json:
        _emit_json(report.to_json())
    else:
        click.echo(report.format_text())


def _output_summary(g, name: str, y: np.ndarray) -> dict:
    t = g.tensors[name]
    info = {
        "name": name,
        "dtype": str(y.dtype),
        "shape": list(y.shape),
        "values": y.reshape(-1)[:16].tolist(),
    }
    if t.quant is not None and t.dtype != "float32":
        real = (y.astype(np.float64) - t.quant.zp) * float(t.quant.s)
        info["dequantized"] = [round(v, 6) for v in real.reshape(-1)[:16].tolist()]
    return info


def _comparison_lines(report: dict) -> list[str]:
    """What run / validate compared, one line each."""
    lines = []
    for c in report.get("compared", []):
        what = c["compared"]
        if what == "firmware vs int8 reference":
            verdict = "bit-exact" if c["bit_exact"] else f"{c['mismatches']} mismatching values"
            cases = f"{c['cases']} case{'s' if c['cases'] != 1 else ''}"
            lines.append(f"firmware vs int8 reference interpreter: {verdict} ({cases})")
        elif what == "int8 vs float model":
            if "outputs" not in c:
                lines.append(f"int8 vs float model: {c['detail']}")
                continue
            outs = ", ".join(
                f"{o['name']!r} SQNR "
                + ("exact" if o["sqnr_db"] is None else f"{o['sqnr_db']:.1f} dB")
                + (
                    f", top-1 agreement {100 * o['top1_agreement']:.1f} %"
                    if o.get("top1_agreement") is not None
                    else ""
                )
                for o in c["outputs"]
            )
            lines.append(f"int8 vs float model ({c['detail']}): {outs}")
            if c.get("gate_warning"):
                lines.append(f"WARNING: {c['gate_warning']}")
        elif what == "firmware vs stored expected outputs":
            for o in c["outputs"]:
                if "sqnr_db" in o:
                    db = "exact" if o["sqnr_db"] is None else f"{o['sqnr_db']:.1f} dB"
                    got = f"SQNR {db}"
                    if o.get("top1_agreement") is not None:
                        got += f", top-1 agreement {100 * o['top1_agreement']:.1f} %"
                elif o["tolerance"].startswith("exact"):
                    got = "bit-exact" if o["ok"] else f"{o['mismatches']} mismatching values"
                else:
                    got = f"max |error| {o['max_abs_error']:.3g}"
                    got += f", {o['mismatches']} values outside" if o["mismatches"] else ""
                bad = o.get("mismatching_cases") or []
                verdict = "ok" if o["ok"] else "FAIL" + (f" in {', '.join(bad)}" if bad else "")
                lines.append(
                    f"firmware vs stored expected output_<i>.npy ({c['cases']} cases), "
                    f"{o['name']!r}: {verdict}, {got} (tolerance: {o['tolerance']})"
                )
    return lines


def _print_run(report: dict) -> None:
    n = report["instructions_per_inference"]
    emulator = {"qemu": "QEMU", "renode": "Renode"}[report.get("emulator", "qemu")]
    click.echo(f"{report['model']} on {report['board']} ({emulator} {report['machine']})")
    for line in _comparison_lines(report):
        click.echo(f"  {line}")
    for note in report.get("notes", []):
        click.echo(f"  note: {note}")
    if n is not None and report["instructions_per_mac"] is not None:
        click.echo(
            f"  {n:,} instructions per inference ({report['instructions_per_mac']} per MAC, "
            f"{report['macs']:,} MACs)"
        )
    elif n is not None:
        click.echo(f"  {n:,} instructions per inference")
    click.echo(
        f"  flash {report['flash_bytes']:,} B, RAM {report['ram_bytes']:,} B "
        f"(arena {report['arena_bytes']:,} B, stack used {report['stack_used_bytes']:,} B)"
    )
    for o in report.get("outputs", []):
        more = "..." if int(np.prod(o["shape"])) > len(o["values"]) else ""
        line = f"  {o['name']} {o['dtype']}{o['shape']}: {o['values']}{more}"
        if "dequantized" in o:
            line += f" = {o['dequantized']}{more}"
        click.echo(line)
    if len(report["cases"]) > 1:
        bad = [c["name"] for c in report["cases"] if not c["bit_exact"]]
        if bad:
            click.echo(f"  firmware vs int8 reference: mismatches in {', '.join(bad)}")


@cli.command("run")
@click.argument("target")
@click.option("--board", "-b", help="Board, when TARGET is a model file.")
@click.option(
    "--input",
    "-i",
    "inputs",
    multiple=True,
    metavar="X.npy",
    help="One .npy per model input (default: seeded random).",
)
@_output_option("Also write the firmware's output_<i>.npy into this directory.")
@click.option("--force", is_flag=True, help="Replace a non-empty output directory.")
@_emulator_option
@_compile_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report.")
def run_cmd(
    target: str,
    board: str | None,
    inputs: tuple[str, ...],
    out_dir: Path | None,
    force: bool,
    emulator: str,
    as_json: bool,
    **kw,
) -> None:
    """Build TARGET (a project directory, or a model with --board), run it in an emulator
    (QEMU: the board's emulated twin; Renode: the board's own image), and compare with the
    reference interpreter."""
    import tempfile

    from tinyc.compiler import compile_model
    from tinyc.fsutil import atomic_dir, check_writable_target
    from tinyc.runner import check_emulator, run_project

    is_project = _run_target(target, board)
    if not is_project:
        check_emulator(board or "", emulator)
    if out_dir is not None:
        check_writable_target(out_dir, force)
    with tempfile.TemporaryDirectory(prefix="tinyc-run-") as tmp:
        project = Path(target)
        if not is_project:
            project = Path(tmp) / "project"
            crep = compile_model(target, _options(board or "", **kw), project)
            if crep.pruning is not None:  # the pruning table, as compile prints it
                click.echo(crep.pruning.format_text() + "\n", err=True)
        label = None if is_project else f"the {board} project of {target}"
        report, case, graph = run_project(project, list(inputs) or None, label, emulator)
        report["outputs"] = [
            _output_summary(graph, n, y) for n, y in zip(graph.outputs, case.outputs, strict=True)
        ]
    if out_dir is not None:
        with atomic_dir(out_dir, force) as out:
            for i, y in enumerate(case.outputs):
                np.save(out / f"output_{i}.npy", y)
    _finish_run(report, as_json)


MODEL_SUFFIXES = (".onnx", ".tflite", ".pt2")


def _run_target(target: str, board: str | None) -> bool:
    """True when TARGET is a project directory, False for a model; refuse what is neither."""
    p = Path(target)
    factory = ":" in target and target.rsplit(":", 1)[0].endswith(".py")
    if p.is_dir():
        if board:
            raise click.UsageError("--board applies to model files; a project has its board")
        return True
    if p.is_file() or factory:
        if not board:
            raise click.UsageError(
                f"{target} is a model: running it needs --board B (or give the project "
                "directory tinyc compile wrote)"
            )
        return False
    if p.suffix.lower() in MODEL_SUFFIXES:
        raise TinycError(f"no such model file: {target}")
    raise TinycError(
        f"directory {target} does not exist: give a project directory (tinyc compile MODEL "
        "--board B -o DIR writes one) or a model file with --board"
    )


def _finish_run(report: dict, as_json: bool) -> None:
    """Print a run/validate report; exit status 1 when anything mismatched."""
    if as_json:
        _emit_json(report)
    else:
        _print_run(report)
    if not report.get("ok", report["bit_exact"]):
        sys.exit(1)


@cli.command()
@click.argument("model")
@click.option("--board", "-b", required=True, help="Target board (see `tinyc boards`).")
@click.option(
    "--inputs",
    "inputs_dir",
    type=click.Path(exists=True, file_okay=False),
    help="Folder of case folders with input_<i>.npy (reference_io layout).",
)
@click.option(
    "--cases",
    type=int,
    default=5,
    show_default=True,
    help="Seeded random cases when --inputs is not given.",
)
@_emulator_option
@_compile_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report.")
def validate(
    model: str,
    board: str,
    inputs_dir: str | None,
    cases: int,
    emulator: str,
    as_json: bool,
    **kw,
) -> None:
    """Compile MODEL for BOARD, run every case in an emulator (QEMU: the board's emulated
    twin; Renode: the board's own image) and on the reference interpreter; exit status 1 on
    any mismatch."""
    from tinyc.runner import validate_model

    opts = _options(board, **kw)
    report = validate_model(model, board, inputs_dir, cases, opts, log=_warn, emulator=emulator)
    _finish_run(report, as_json)


@cli.command()
@click.argument("model")
@click.option("--board", "-b", required=True, help="Target board (see `tinyc boards`).")
@click.option(
    "--backend",
    type=click.Choice(["cmsis", "tflm"]),
    default="cmsis",
    show_default=True,
    help="Interpreter-free C, or a TFLite Micro project.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report.")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE.png",
    help="Also draw the arena over the schedule and the per-layer latency.",
)
@_add_options(_PRUNE_OPTIONS)
@click.option("--stream", is_flag=True, help="Estimate the one-step-per-invocation form.")
@_SKIP_OPTION
@click.option(
    "--stream-input",
    metavar="X",
    help="With --skip-threshold: whole sequences (.npy/.npz/folder, as --calibration) for the "
    "skip rate and the mean latency.",
)
def estimate(model: str, board: str, backend: str, as_json: bool, plot: Path | None, **kw) -> None:
    """Per-layer and total SRAM, flash, MACs, instructions and latency of MODEL on BOARD,
    from tinyc's calibrated cost model (nothing is built or run)."""
    from tinyc.estimate import estimate_model
    from tinyc.frontend import load_model
    from tinyc.ir.verify import unsupported_nodes

    g = load_model(model)
    if unsupported_nodes(g):  # still show the model: what is known without the kernels
        from tinyc.inspect_model import format_partial_estimate, partial_estimate

        partial = partial_estimate(g, board)
        if as_json:
            _emit_json(partial)
        else:
            click.echo(format_partial_estimate(partial))
        return
    popts = _prune_options(kw)
    if popts is not None:  # no data here: magnitude, spread by weight sensitivity
        from tinyc.passes.prune import prune, summary

        res = prune(g, popts)
        g = res.graph
    if kw.get("kronecker"):  # no data here: SQNR on seeded random inputs
        from tinyc.passes.kronecker import kronecker_with_data

        g, _ = kronecker_with_data(g, kw["kronecker"])
    skip = None
    if kw.get("stream"):  # the step graph; gated with --skip-threshold (skip_state)
        from tinyc.passes.skip_state import estimate_streaming

        est, skip = estimate_streaming(
            g, board, backend, kw.get("skip_threshold"), kw.get("stream_input")
        )
    elif kw.get("skip_threshold") and kw["skip_threshold"] > 0:
        raise TinycError("--skip-threshold needs --stream (it skips a streaming model's steps)")
    else:
        est = estimate_model(g, board, backend)
    if popts is not None:
        est.notes = [*est.notes, summary(res)]
    written = None
    if plot is not None:
        from tinyc.estimate.plot import plot_estimate

        written = plot_estimate(est, plot)
    if as_json:
        _emit_json(
            {
                **est.to_json(),
                **({"plot": str(written)} if written else {}),
                **({"skip": skip} if skip else {}),
            }
        )
    else:
        click.echo(est.format_text())
        if written is not None:
            click.echo(f"plot: wrote {written}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def boards(as_json: bool) -> None:
    """The supported boards: core, memories, console, the QEMU machine of their twin and the
    Renode platform of their chip."""
    from tinyc.boards import format_boards, list_boards

    if as_json:
        _emit_json({"boards": [b.to_dict() for b in list_boards()]})
    else:
        click.echo(format_boards(list_boards()))


@cli.command("ops")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--markdown", is_flag=True, help="The markdown table of the README.")
@click.option(
    "--update-readme",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Rewrite the table between the ops-table markers of this README.",
)
def ops(as_json: bool, markdown: bool, update_readme: Path | None) -> None:
    """Operator coverage: per IR op, the TFLite / ONNX / PyTorch operators that map to it,
    the interpreter's float and int8 support, and the C and TFLM backends. Read from the
    code's own tables."""
    from tinyc import coverage as cov

    table = cov.coverage()
    if update_readme is not None:
        cov.update_readme(update_readme, table)
        click.echo(f"updated {update_readme}")
    elif as_json:
        _emit_json(table.to_dict())
    elif markdown:
        click.echo(cov.markdown(table), nl=False)
    else:
        click.echo(cov.text(table), nl=False)


@cli.command("setup-emulator")
@click.option("--force", is_flag=True, help="Rebuild the plugin even if it is cached.")
def setup_emulator(force: bool) -> None:
    """Build the QEMU instruction-count plugin for the installed qemu-system-arm.

    Fetches qemu-plugin.h from Debian's source package of the installed QEMU (it is not shipped
    with tinyc) and builds the plugin into the user cache. `tinyc run` does this on first use.
    """
    from tinyc.emulate.plugin import describe, ensure_plugin

    click.echo(describe(ensure_plugin(force=force)), nl=False)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    # --debug anywhere on the command line: before or after the subcommand
    debug = "--debug" in args
    if debug:
        args = ["--debug", *(a for a in args if a != "--debug")]
    try:
        rc = cli.main(args=args, prog_name="tinyc", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("tinyc: error: aborted", err=True)
        return 130
    except click.ClickException as e:
        click.echo(f"tinyc: error: {e.format_message()}", err=True)
        return 2
    except TinycError as e:
        if debug:
            raise
        click.echo(f"tinyc: error: {' '.join(str(e).split())}", err=True)
        return 2
    except KeyboardInterrupt:
        click.echo("tinyc: error: interrupted", err=True)
        return 130
    except Exception as e:  # a bug in tinyc: still one line, the traceback behind --debug
        if debug:
            raise
        click.echo(
            f"tinyc: error: internal error ({type(e).__name__}: {e}); rerun with --debug "
            "and report it",
            err=True,
        )
        return 3
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(main())

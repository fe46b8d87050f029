"""``tinyc run`` and ``tinyc validate``: build a project, run it in an emulator, compare with the
reference interpreter, and count instructions per inference.

Two emulators: QEMU (the default) runs the build for the board's emulated twin (a QEMU machine
with the same core; exact instruction counts, file I/O over semihosting); Renode runs the
board's own image (``make board``: its start-up, clocks, console UART and memory map) on
Renode's model of the chip."""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinyc.boards import load_board
from tinyc.compiler import CompileOptions, compile_model
from tinyc.emulate import build_firmware, elf_sizes, run_emulated
from tinyc.emulate.renode import (
    RenodeSession,
    check_renode_board,
    find_renode,
    renode_machine,
)
from tinyc.errors import TinycError
from tinyc.interpreter import run as run_reference
from tinyc.ir.graph import Graph
from tinyc.manifest import read_manifest
from tinyc.modelio import (
    case_dirs,
    case_inputs,
    external_shape,
    load_inputs,
    random_inputs,
    read_npy,
    to_external,
    to_internal,
)
from tinyc.project import load_project_graph


@dataclass
class CaseResult:
    name: str
    bit_exact: bool
    mismatches: int  # differing output elements
    instructions: int | None
    stack_used: int  # stack high-water mark of the whole firmware run, bytes
    outputs: list[np.ndarray] = field(default_factory=list)


EMULATORS = ("qemu", "renode")
EMULATOR_NAMES = {"qemu": "QEMU", "renode": "Renode"}


def check_emulator(board: str, emulator: str) -> None:
    """Refuse an emulator that cannot run ``board`` (or is not installed) before any work."""
    if emulator not in EMULATORS:
        raise TinycError(f"unknown emulator {emulator!r} (one of {', '.join(EMULATORS)})")
    if emulator == "renode":
        check_renode_board(load_board(board))
        find_renode()


@dataclass
class EmulatedProject:
    """A compiled project built for an emulator: QEMU (the board's emulated twin) or Renode
    (the board's own image)."""

    project: Path
    graph: Graph
    manifest: dict[str, Any]
    elf: Path
    emulator: str = "qemu"
    _renode: RenodeSession | None = None

    @classmethod
    def build(
        cls,
        project: str | Path,
        graph: Graph | None = None,
        label: str | None = None,
        emulator: str = "qemu",
    ) -> EmulatedProject:
        """Build ``project`` for ``emulator`` (``label`` names it in errors; fetch progress of
        TFLM / CMSIS-NN goes to stderr). Call ``close()`` when done (or use ``with``)."""
        project = Path(project)
        manifest = read_manifest(project)
        check_emulator(manifest["board"], emulator)
        graph = graph if graph is not None else load_project_graph(project)
        target = "board" if emulator == "renode" else "emu"
        elf = build_firmware(project, target, label=label, progress=_stderr)
        return cls(project, graph, manifest, elf, emulator)

    @property
    def board(self):
        return load_board(self.manifest["board"])

    @property
    def machine(self) -> str:
        """The emulated machine: the QEMU machine, or the Renode platform."""
        if self.emulator == "renode":
            return renode_machine(self.board)
        return str(self.board.twin().qemu_machine)

    def _run_firmware(self, ext: list[list[np.ndarray]], expected: list[np.ndarray]):
        """One firmware run over the steps ``ext`` (external layout)."""
        if self.emulator == "qemu":
            return run_emulated(self.elf, self.board, ext[0], more_steps=ext[1:])
        if len(ext) > 1:
            raise TinycError(
                "the board image runs one inference per case; a streaming case of "
                f"{len(ext)} steps runs in QEMU (--emulator qemu)"
            )
        if self._renode is None:
            resc = self.project / "renode" / f"{self.board.name}.resc"
            g = self.graph
            self._renode = RenodeSession(self.elf, self.board, resc, len(g.inputs), len(g.outputs))
        as_bytes = [np.ascontiguousarray(x).tobytes() for x in ext[0]]
        want = [np.ascontiguousarray(x).tobytes() for x in expected]
        return self._renode.run(as_bytes, want)

    def close(self) -> None:
        if self._renode is not None:
            self._renode.close()
            self._renode = None

    def __enter__(self) -> EmulatedProject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run_case(self, name: str, inputs: list[np.ndarray]) -> CaseResult:
        """``inputs`` in internal layout (for a streaming project: one step or a whole
        sequence, run step by step in one firmware run); outputs come back in the model
        file's layout."""
        from tinyc.interpreter import State
        from tinyc.passes.streaming import split_steps, stack_steps

        g = self.graph
        steps = split_steps(g, inputs)
        ext = [[to_external(g, n, x) for n, x in zip(g.inputs, xs, strict=True)] for xs in steps]
        state = State(g)
        per_step = [run_reference(g, xs, state=state) for xs in steps]
        ref = {n: stack_steps(g, n, [r[n] for r in per_step]) for n in g.outputs}
        res = self._run_firmware(ext, [to_external(g, n, ref[n]) for n in g.outputs])
        outs, mismatches = [], 0
        for name_out, raw in zip(g.outputs, res.outputs, strict=True):
            want = to_external(g, name_out, ref[name_out])
            got = np.frombuffer(raw, dtype=want.dtype)
            if len(steps) > 1:  # the firmware wrote each step's output after the last one
                step_shape = external_shape(g, name_out)
                got = got.reshape(len(steps), *step_shape)
                got = stack_steps(g, name_out, [to_internal(g, name_out, s) for s in got])
                got = to_external(g, name_out, got).reshape(-1)
            if got.size != want.size:
                raise TinycError(
                    f"the firmware wrote {got.size} values for output {name_out!r}, "
                    f"expected {want.size}"
                )
            got = got.reshape(want.shape)
            mismatches += int(np.count_nonzero(got != want))
            outs.append(got)
        return CaseResult(
            name, mismatches == 0, mismatches, res.instructions, res.stack_bytes, outs
        )

    def report(self, cases: list[CaseResult]) -> dict[str, Any]:
        """The JSON report of ``run`` / ``validate``."""
        sizes = elf_sizes(self.elf)
        counts = [c.instructions for c in cases if c.instructions is not None]
        macs = self.manifest["macs"]
        per_inference = counts[0] if counts else None
        stack = max((c.stack_used for c in cases), default=0)
        static = sizes["data"] + sizes["bss"]
        machine = self.machine
        image = "board image" if self.emulator == "renode" else "firmware"
        bit_exact = all(c.bit_exact for c in cases)
        compared = [
            {
                "compared": "firmware vs int8 reference",
                "detail": f"the {image} in {EMULATOR_NAMES[self.emulator]} {machine} against "
                "tinyc's reference "
                "interpreter running the project's int8 graph on the same inputs",
                "cases": len(cases),
                "bit_exact": bit_exact,
                "mismatches": sum(c.mismatches for c in cases),
            },
            self.float_comparison(),
        ]
        return {
            "model": self.manifest["model"],
            "board": self.manifest["board"],
            "emulator": self.emulator,
            "machine": machine,
            "ok": bit_exact,
            "compared": compared,
            "bit_exact": bit_exact,
            "mismatches": sum(c.mismatches for c in cases),
            "cases": [
                {
                    "name": c.name,
                    "bit_exact": c.bit_exact,
                    "mismatches": c.mismatches,
                    "instructions": c.instructions,
                }
                for c in cases
            ],
            "instructions_per_inference": per_inference,
            "instructions_per_mac": round(per_inference / macs, 3)
            if per_inference and macs
            else None,
            "macs": macs,
            "arena_bytes": self.manifest["arena_bytes"],
            "flash_bytes": sizes["flash"],
            "ram_bytes": sizes["ram"],
            "peak_ram_bytes": sizes["arena"] + static + stack,
            "stack_used_bytes": stack,
            "elf": dict(sizes),
        }

    def float_comparison(self) -> dict[str, Any]:
        """int8 vs float, as ``compile`` measured it on held-out samples, when tinyc
        quantized the model; otherwise say there is no float model to compare with."""
        q = self.manifest.get("quantization")
        if q is None:
            return {
                "compared": "int8 vs float model",
                "detail": "not measured: the model came quantized, tinyc has no float model",
            }
        return {**q, "detail": f"at compile time, on {q['eval_samples']} {q['eval_source']}"}


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_project(
    project: str | Path,
    input_files: list[str] | None,
    label: str | None = None,
    emulator: str = "qemu",
) -> tuple[dict[str, Any], CaseResult, Graph]:
    """Check the inputs against the project's model, build, run once, compare (``label``
    names a temporary project in errors)."""
    project = Path(project)
    read_manifest(project)
    graph = load_project_graph(project)
    notes: list[str] = []
    if input_files:
        inputs = load_inputs(graph, input_files, notes)
    else:
        inputs = random_inputs(graph, 0)
        notes.append("input: seeded random values (give -i X.npy for your own)")
    with EmulatedProject.build(project, graph, label, emulator) as ep:
        case = ep.run_case("input", inputs)
        report = ep.report([case])
    report["notes"] = notes
    return report, case, ep.graph


def validate_model(
    model: str,
    board: str,
    inputs_dir: str | None,
    random_cases: int,
    opts: CompileOptions | None = None,
    log=None,
    emulator: str = "qemu",
) -> dict[str, Any]:
    """Compile ``model`` for ``board`` into a temporary project and run every case:
    the cases of ``inputs_dir`` (reference_io layout) or ``random_cases`` seeded ones.
    Where a case folder also holds ``output_<i>.npy``, the firmware's outputs are compared
    with them too (see ``compare_expected``)."""
    opts = opts or CompileOptions(board=board)
    check_emulator(board, emulator)
    with tempfile.TemporaryDirectory(prefix="tinyc-validate-") as d:
        project = Path(d) / "project"
        crep = compile_model(model, opts, project, log=log or (lambda m: None))
        if crep.pruning is not None and log is not None:  # the table compile prints
            log(crep.pruning.format_text() + "\n")
        graph = load_project_graph(project)
        cases: list[tuple[str, list[np.ndarray], list[Path]]] = []
        if inputs_dir:
            for case in case_dirs(inputs_dir):
                cases.append((case.name, load_inputs(graph, case_inputs(case)), case_outputs(case)))
        else:
            cases = [(f"random_{s}", random_inputs(graph, s), []) for s in range(random_cases)]
        label = f"the {board} project of {model}"
        with EmulatedProject.build(project, graph, label, emulator) as ep:
            results = [ep.run_case(name, xs) for name, xs, _ in cases]
            report = ep.report(results)
        stored = [(name, r, outs) for (name, _, outs), r in zip(cases, results, strict=True)]
        if any(outs for _, _, outs in stored):
            exp = compare_expected(ep, [(n, r, o) for n, r, o in stored if o])
            report["compared"].append(exp)
            report["ok"] = report["ok"] and exp["ok"]
        return report


def case_outputs(case: Path) -> list[Path]:
    """The stored expected outputs of a case folder: output_0.npy, output_1.npy ..."""
    paths = []
    while (case / f"output_{len(paths)}.npy").exists():
        paths.append(case / f"output_{len(paths)}.npy")
    return paths


FLOAT_RTOL = 1e-4
"""Float outputs of a model that came quantized: |got - want| <= FLOAT_RTOL * max|want| plus
one step of the int8 tensor the output is dequantized from."""


def _real(g: Graph, name: str, v: np.ndarray) -> np.ndarray:
    t = g.tensors[name]
    if v.dtype.kind in "iu" and t.quant is not None:
        return t.quant.dequantize(v).astype(np.float64)
    return v.astype(np.float64)


def _output_step(g: Graph, name: str) -> float:
    from tinyc.quant_report import boundary_quant

    found = boundary_quant(g, name)
    return float(found[0].s) if found is not None and not found[0].per_channel else 0.0


def compare_expected(
    ep: EmulatedProject, cases: list[tuple[str, CaseResult, list[Path]]]
) -> dict[str, Any]:
    """The firmware's outputs against the stored ``output_<i>.npy`` of each case.

    Integer outputs: exact. Float outputs of a model tinyc quantized (the stored values come
    from the float model): the quality gate's tolerance over all cases (output SQNR >= 20 dB,
    10 dB for classifiers; top-1 agreement >= 90 %). Float outputs of a model that came
    quantized: every value within FLOAT_RTOL * max|want| + one output quantization step."""
    from tinyc.quality import MIN_SQNR_DB, MIN_TOP1_AGREEMENT
    from tinyc.quant_report import output_task, sqnr_db

    g = ep.graph
    quantized_here = "quantization" in ep.manifest
    per_output = []
    for i, name in enumerate(g.outputs):
        sig = noise = 0.0
        mismatches = agree = rows = 0
        max_err = 0.0
        exact = True
        bad: list[str] = []
        for case, r, paths in cases:
            if i >= len(paths):
                continue
            want = read_npy(paths[i])
            got = r.outputs[i]
            if want.size != got.size:
                raise TinycError(
                    f"{paths[i]} holds {want.dtype}{list(want.shape)}; output {name!r} of the "
                    f"model is {got.dtype}{list(got.shape)}"
                )
            want = want.reshape(got.shape)
            if want.dtype.kind in "iu" and want.dtype == got.dtype:
                n_bad = int(np.count_nonzero(want != got))
                mismatches += n_bad
                bad += [case] if n_bad else []
                continue
            exact = False
            w, q = _real(g, name, want), _real(g, name, got)
            err = np.abs(w - q)
            max_err = max(max_err, float(err.max(initial=0.0)))
            sig += float(np.sum(w * w))
            noise += float(np.sum(err * err))
            if not quantized_here:
                tol = FLOAT_RTOL * float(np.abs(w).max(initial=0.0)) + _output_step(g, name)
                n_bad = int(np.count_nonzero(err > tol))
                mismatches += n_bad
                bad += [case] if n_bad else []
            if output_task(g, name) == "classifier":
                agree += int(w.reshape(-1).argmax() == q.reshape(-1).argmax())
                rows += 1
        entry: dict[str, Any] = {"name": name, "mismatching_cases": bad}
        if exact:
            entry.update(tolerance="exact (integer outputs)", mismatches=mismatches)
            entry["ok"] = mismatches == 0
        elif not quantized_here:
            entry.update(
                tolerance=f"|got - want| <= {FLOAT_RTOL:g} * max|want| + one output step",
                mismatches=mismatches,
                max_abs_error=max_err,
            )
            entry["ok"] = mismatches == 0
        else:
            task = output_task(g, name)
            db = sqnr_db(sig, noise)
            top1 = agree / rows if rows else None
            entry.update(
                tolerance=f"int8 vs float: SQNR >= {MIN_SQNR_DB[task]:g} dB"
                + (f", top-1 agreement >= {100 * MIN_TOP1_AGREEMENT:g} %" if rows else ""),
                sqnr_db=db,
                top1_agreement=top1,
                max_abs_error=max_err,
            )
            entry["ok"] = (db is None or db >= MIN_SQNR_DB[task]) and (
                top1 is None or top1 >= MIN_TOP1_AGREEMENT
            )
        per_output.append(entry)
    return {
        "compared": "firmware vs stored expected outputs",
        "detail": f"output_<i>.npy of {len(cases)} case(s)",
        "cases": len(cases),
        "ok": all(e["ok"] for e in per_output),
        "outputs": per_output,
    }

"""``tinyc run`` and ``tinyc validate``: build a project for the board's emulated twin, run
it in QEMU, compare with the reference interpreter, and count instructions per inference."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinyc.boards import load_board
from tinyc.compiler import CompileOptions, compile_model, read_manifest
from tinyc.emulate import build_firmware, elf_sizes, run_emulated
from tinyc.errors import TinycError
from tinyc.interpreter import run as run_reference
from tinyc.ir.graph import Graph
from tinyc.modelio import (
    case_dirs,
    case_inputs,
    external_shape,
    load_inputs,
    random_inputs,
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


@dataclass
class EmulatedProject:
    """A compiled project built for its board's emulated twin."""

    project: Path
    graph: Graph
    manifest: dict[str, Any]
    elf: Path

    @classmethod
    def build(cls, project: str | Path) -> EmulatedProject:
        project = Path(project)
        manifest = read_manifest(project)
        graph = load_project_graph(project)
        elf = build_firmware(project, "emu")
        return cls(project, graph, manifest, elf)

    @property
    def board(self):
        return load_board(self.manifest["board"])

    def run_case(self, name: str, inputs: list[np.ndarray]) -> CaseResult:
        """``inputs`` in internal layout (for a streaming project: one step or a whole
        sequence, run step by step in one firmware run); outputs come back in the model
        file's layout."""
        from tinyc.interpreter import State
        from tinyc.passes.streaming import split_steps, stack_steps

        g = self.graph
        steps = split_steps(g, inputs)
        ext = [[to_external(g, n, x) for n, x in zip(g.inputs, xs, strict=True)] for xs in steps]
        res = run_emulated(self.elf, self.board, ext[0], more_steps=ext[1:])
        state = State(g)
        per_step = [run_reference(g, xs, state=state) for xs in steps]
        ref = {n: stack_steps(g, n, [r[n] for r in per_step]) for n in g.outputs}
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
        return {
            "model": self.manifest["model"],
            "board": self.manifest["board"],
            "machine": self.board.twin().qemu_machine,
            "bit_exact": all(c.bit_exact for c in cases),
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


def run_project(
    project: str | Path, input_files: list[str] | None
) -> tuple[dict[str, Any], CaseResult, Graph]:
    ep = EmulatedProject.build(project)
    inputs = load_inputs(ep.graph, input_files) if input_files else random_inputs(ep.graph, 0)
    case = ep.run_case("input", inputs)
    return ep.report([case]), case, ep.graph


def validate_model(
    model: str,
    board: str,
    inputs_dir: str | None,
    random_cases: int,
    opts: CompileOptions | None = None,
) -> dict[str, Any]:
    """Compile ``model`` for ``board`` into a temporary project and run every case:
    the cases of ``inputs_dir`` (reference_io layout) or ``random_cases`` seeded ones."""
    opts = opts or CompileOptions(board=board)
    with tempfile.TemporaryDirectory(prefix="tinyc-validate-") as d:
        project = Path(d) / "project"
        compile_model(model, opts, project, log=lambda m: None)
        ep = EmulatedProject.build(project)
        cases: list[tuple[str, list[np.ndarray]]] = []
        if inputs_dir:
            for case in case_dirs(inputs_dir):
                cases.append((case.name, load_inputs(ep.graph, case_inputs(case))))
        else:
            cases = [(f"random_{s}", random_inputs(ep.graph, s)) for s in range(random_cases)]
        return ep.report([ep.run_case(name, xs) for name, xs in cases])

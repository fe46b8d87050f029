"""``tinyc compile --backend tflm``: a C++ project that runs the model with TensorFlow Lite Micro.

The project is the C backend's (same ``app/`` harness, board startup and linker scripts,
test data, QEMU twin) with ``model/`` implementing the same ``model.h`` API over TFLM,
and a CMake build that compiles TFLM with CMSIS-NN's kernels (``cmake/tflm.cmake``; the
Makefile drives CMake). On boards with an Ethos-U NPU the model is first compiled by
Vela; TFLM then runs Vela's ``ethos-u`` operator and whatever Vela left on the CPU.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from tinyc import __version__
from tinyc.backends.tflm.arena import (
    ArenaEstimate,
    buffer_lifetimes,
    core_class,
    estimate_arena,
    kernel_memory,
    plan_head,
)
from tinyc.backends.tflm.cpp import (
    ModelFacts,
    byte_array,
    io_descriptor,
    model_facts,
    resolver_calls,
    resolver_headers,
)
from tinyc.backends.tflm.recurrent import cmsis_nn_lstm_notes, lower_recurrent
from tinyc.backends.tflm.vela import VelaConfig, VelaReport, run_vela
from tinyc.backends.tflm.view import ModelView
from tinyc.backends.tflm.writer import build_model
from tinyc.boards import Board
from tinyc.errors import TinycError
from tinyc.fsutil import atomic_dir
from tinyc.ir.graph import Graph
from tinyc.manifest import (
    MANIFEST,
    CompileReport,
    io_entry,
    manifest_base,
    test_vectors,
    total_macs,
)
from tinyc.templating import template_env

TFLM_COMMIT = "90b983c2b3f1480642e040bbd2ddb37b998f3424"
CMSIS_NN_COMMIT = "4ab83cc3cc98fb85ed6dafb55e8ca02f1628dcae"
ETHOSU_DRIVER_COMMIT = "9622608a5cc318c0933bcce720b59737d03bfb6f"
_GH = "https://github.com"
#: TFLM's third-party code at the versions TFLM 90b983c2 pins (its third_party_downloads.inc)
THIRD_PARTY = [
    {
        "var": "CMSIS_NN_DIR",
        "name": "cmsis_nn",
        "url": f"{_GH}/ARM-software/CMSIS-NN/archive/{CMSIS_NN_COMMIT}.zip",
        "md5": "c960031e7d10cf31c477fb34ef460106",
        "downloads": "cmsis_nn",
    },
    {
        "var": "FLATBUFFERS_DIR",
        "name": "flatbuffers",
        "url": f"{_GH}/google/flatbuffers/archive/refs/tags/v25.9.23.zip",
        "md5": "023eca1e211d64007124420cd6be29c7",
        "downloads": "flatbuffers",
    },
    {
        "var": "GEMMLOWP_DIR",
        "name": "gemmlowp",
        "url": f"{_GH}/google/gemmlowp/archive/719139ce755a0f31cbf1c37f7f98adcc7fc9f425.zip",
        "md5": "7e8191b24853d75de2af87622ad293ba",
        "downloads": "gemmlowp",
    },
    {
        "var": "RUY_DIR",
        "name": "ruy",
        "url": f"{_GH}/google/ruy/archive/d37128311b445e758136b8602d1bbd2a755e115d.zip",
        "md5": "abf7a91eb90d195f016ebe0be885bb6e",
        "downloads": "ruy",
    },
]
#: Ethos-U: the core driver TFLM pins, and CMSIS (cmsis_compiler.h) for it
ETHOS_U_DEPS = [
    {
        "var": "ETHOSU_DRIVER_DIR",
        "name": "ethos_u_core_driver",
        "url": "https://gitlab.arm.com/artificial-intelligence/ethos-u/ethos-u-core-driver/"
        f"-/archive/{ETHOSU_DRIVER_COMMIT}/ethos-u-core-driver-{ETHOSU_DRIVER_COMMIT}.zip",
        "md5": "",
        "downloads": "ethos_u_core_driver",
    },
    {
        "var": "CMSIS_DIR",
        "name": "cmsis",
        "url": f"{_GH}/ARM-software/CMSIS_6/archive/5782d6f8057906d360f4b95ec08a2354afe5c9b9.zip",
        "md5": "563e7c6465f63bdc034359e9b536b366",
        "downloads": "cmsis",
    },
]
#: Corstone-300's Ethos-U55 interrupt (ETHOS_U55_IRQn in Arm's platform headers)
DEFAULT_NPU_IRQ = 56


@dataclass
class TflmModel:
    """The model as the project ships it, and what was learned on the way.

    On NPU boards the project carries two models: Vela's, run by the board build, and
    tinyc's own .tflite, run on the CPU by the emulated twin and the host build (QEMU
    has no NPU), which is how ``make run-emu`` and ``tinyc run`` check the outputs.
    """

    tflite: bytes  # tinyc's .tflite
    facts: ModelFacts
    arena: ArenaEstimate
    vela_model: bytes | None = None
    vela_facts: ModelFacts | None = None
    vela_arena_bytes: int = 0
    vela_arena_note: str = ""
    vela: VelaReport | None = None
    #: what writing the .tflite did that ``compile`` should say (recurrent lowerings)
    notes: list[str] = field(default_factory=list)

    @property
    def max_arena(self) -> int:
        return max(self.arena.arena_bytes, self.vela_arena_bytes)


def npu_arena(data: bytes, core: str) -> tuple[int, str]:
    """Arena for a Vela-compiled model. The host TFLM cannot run the ethos-u operator, so
    the head (Vela's scratch tensors and the I/O) is planned with TFLM's planner and the
    persistent part bounded from the structure (32-bit TFLM structs, see arena.py)."""
    view = ModelView.read(data)
    mem = kernel_memory(view, "cmsis-nn", core)
    head = plan_head(buffer_lifetimes(view, mem.scratch))
    n_io = len(view.inputs) + len(view.outputs)
    # eval tensors, node+registration, I/O tensors with quantization and pointer arrays,
    # the allocator objects and op data (ethos-u keeps ~100 B; CPU kernels less than 300 B
    # each): generous on purpose, this part is not measured
    tail = 12 * len(view.tensors) + 32 * len(view.ops) + 80 * n_io + 1024 + 300 * len(view.ops)
    tail += mem.persistent
    arena = (head + tail + 15) // 16 * 16
    note = (
        f"{arena:,} B = Vela's scratch and the I/O tensors as TFLM's planner lays them out "
        f"({head:,} B) + a bound on TFLM's persistent data ({tail:,} B; not measured: the "
        "host TFLM cannot run the ethos-u operator)"
    )
    return arena, note


def prepare_model(g: Graph, board: Board) -> TflmModel:
    """Write the .tflite, size its arena, and on NPU boards run Vela."""
    kernel_notes = cmsis_nn_lstm_notes(g)  # the project runs CMSIS-NN's kernels
    model = build_model(g)
    data = model.data
    core = core_class(board.core, board.dsp, board.mve)
    notes = model.notes + kernel_notes
    tm = TflmModel(data, model_facts(data), estimate_arena(data, core), notes=notes)
    if board.npu is not None:
        if not g.is_quantized:
            raise TinycError(
                f"board {board.name} has an {board.npu.name} NPU, which runs int8 models only; "
                "quantize the model first (or compile for its emulated twin)"
            )
        result = run_vela(
            data, VelaConfig.for_npu(board.npu.name), g.name, board_clock_hz=board.clock_hz
        )
        tm.vela_model, tm.vela, tm.vela_facts = (
            result.model,
            result.report,
            model_facts(result.model),
        )
        tm.vela_arena_bytes, tm.vela_arena_note = npu_arena(result.model, core)
    return tm


def render_model(tm: TflmModel, board: Board, name: str) -> dict[str, str]:
    """``model/`` and ``cmake/tflm.cmake``: the C++ side of the project (text files)."""
    env = template_env()
    facts = tm.facts
    ethos_u = tm.vela is not None
    npu_ops = tm.vela_facts.ops if tm.vela_facts else ()
    ctx: dict[str, Any] = {
        "model_name": name,
        "version": __version__,
        "inputs": facts.inputs,
        "outputs": facts.outputs,
        "arena_bytes": tm.arena.arena_bytes,
        "arena_note": tm.arena.describe(),
        "npu_arena_bytes": tm.vela_arena_bytes,
        "npu_arena_note": tm.vela_arena_note,
        "resolver_calls": resolver_calls(facts.ops),
        "resource_variables": sum(op.kind == "VAR_HANDLE" for op in ModelView.read(tm.tflite).ops),
        "npu_resolver_calls": resolver_calls(npu_ops) if npu_ops else [],
        "kernel_headers": resolver_headers(tuple(facts.ops) + tuple(npu_ops)),
        "input_descriptors": [io_descriptor(t, "nullptr") for t in facts.inputs],
        "output_descriptors": [io_descriptor(t, "nullptr") for t in facts.outputs],
        "ethos_u": ethos_u,
        "npu": board.npu,
        "npu_irq": getattr(board.npu, "irq", None) or DEFAULT_NPU_IRQ,
        "size": len(tm.tflite),
        "npu_size": len(tm.vela_model) if tm.vela_model else 0,
        "deps": {
            "tflm": {"commit": TFLM_COMMIT},
            "third_party": THIRD_PARTY,
            "ethos_u": ETHOS_U_DEPS if ethos_u else [],
        },
        "npu_arch": _npu_arch(board),
    }
    data_cc = [
        f"/* {name}: generated by tinyc {__version__}. Do not edit. */",
        '#include "model_data.h"',
        "",
    ]
    if tm.vela_model is not None:
        data_cc += [
            "#if defined(TINYC_NPU)",
            "alignas(16) const uint8_t tinyc_model_tflite[TINYC_MODEL_TFLITE_BYTES] = {",
            byte_array(tm.vela_model),
            "};",
            "#else",
        ]
    data_cc += [
        "alignas(16) const uint8_t tinyc_model_tflite[TINYC_MODEL_TFLITE_BYTES] = {",
        byte_array(tm.tflite),
        "};",
    ]
    if tm.vela_model is not None:
        data_cc.append("#endif")
    files = {
        "model/model.h": env.get_template("tflm/model.h.j2").render(**ctx),
        "model/model.cc": env.get_template("tflm/model.cc.j2").render(**ctx),
        "model/model_data.h": env.get_template("tflm/model_data.h.j2").render(**ctx),
        "model/model_data.cc": "\n".join(data_cc) + "\n",
        "cmake/tflm.cmake": env.get_template("tflm/tflm.cmake").render(**ctx),
    }
    api = resources.files("tinyc") / "runtime" / "tinyc_api.h"
    files["runtime/tinyc_api.h"] = api.read_text()
    return files


def _npu_arch(board: Board) -> str:
    if board.npu is None:
        return ""
    return board.npu.name.split("-")[1]  # "u55" from "ethos-u55-128"


def render_build(board: Board, name: str, num_expected: int, ethos_u: bool) -> dict[str, str]:
    """CMakeLists.txt and Makefile of a TFLM project (they replace the C backend's)."""
    from tinyc.emulate.project import _ident, qemu_args

    env = template_env()
    ctx = {
        "model_name": name,
        "version": __version__,
        "board": board,
        "twin": board.twin(),
        "cmake_name": f"tinyc_{_ident(name)}",
        "qemu_args": " ".join(qemu_args(board.twin().qemu_machine)),
        "num_expected": num_expected,
        "single_image": board.layout["rodata"] == board.layout["code"],
        "ethos_u": ethos_u,
        "npu_name": board.npu.name if board.npu else "",
        "deps": {"tflm": {"commit": TFLM_COMMIT}, "cmsis_nn_commit": CMSIS_NN_COMMIT},
    }
    return {
        "CMakeLists.txt": env.get_template("tflm/CMakeLists.txt.j2").render(**ctx),
        "Makefile": env.get_template("tflm/Makefile.j2").render(**ctx),
    }


def compile_tflm_project(
    g: Graph, board: Board, out_dir: str | Path, opts: Any, qreport: Any = None
) -> Any:
    """Write the TFLM project for ``g`` (already int8 or float) into ``out_dir``."""
    from tinyc.emulate import render_project
    from tinyc.interpreter import run as run_reference
    from tinyc.modelio import to_external
    from tinyc.project import save_project_graph

    if getattr(opts, "kernels", "tinyc") not in ("tinyc", "cmsis-nn"):
        raise TinycError(f"unknown kernels {opts.kernels!r}")
    tm = prepare_model(g, board)
    # int8 GRU / RNN layers run as TFLM's int8 operators (see recurrent.py): the firmware
    # computes the unrolled graph, so that is the project's reference and stored graph
    unrolled, _, changed = lower_recurrent(g)
    if changed:
        g = unrolled
    inputs = test_vectors(g, getattr(opts, "test_input", None))
    expected = run_reference(g, inputs)
    ext_in = [to_external(g, n, x) for n, x in zip(g.inputs, inputs, strict=True)]
    ext_out = [to_external(g, n, expected[n]) for n in g.outputs]
    weight_bytes = sum(t.nbytes for t in g.constants())
    where = " (emulated twin and host builds, CPU)" if tm.vela is not None else ""
    notes = [*tm.notes, f"tensor arena{where}: {tm.arena.describe()}"]
    if tm.vela is not None:
        notes.append(f"tensor arena (board build, NPU): {tm.vela_arena_note}")
    if tm.vela is not None:
        notes += tm.vela.format().splitlines()
        if tm.vela.cpu_operators:
            notes.append(
                f"{len(tm.vela.cpu_operators)} operator(s) run on the CPU with TFLM's kernels "
                "(see the CPU fallback lines above)"
            )
    with atomic_dir(out_dir, getattr(opts, "force", False)) as tmp:
        model_files = render_model(tm, board, g.name)
        written = render_project(
            tmp,
            board,
            g.name,
            ext_in,
            ext_out,
            arena_bytes=tm.max_arena,
            stack_bytes=getattr(opts, "stack_bytes", 8192),
            backend="tflm",
        )
        build_files = render_build(board, g.name, len(ext_out), tm.vela is not None)
        for rel, text in {**model_files, **build_files}.items():
            p = tmp / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
        (tmp / "model").mkdir(exist_ok=True)
        (tmp / "model" / "model.tflite").write_bytes(tm.tflite)
        binaries = ["model/model.tflite"]
        if tm.vela_model is not None:
            (tmp / "model" / "model_vela.tflite").write_bytes(tm.vela_model)
            binaries.append("model/model_vela.tflite")
        saved = [p.name for p in save_project_graph(g, tmp)]
        manifest = {
            **manifest_base(g, board, "tflm", "cmsis-nn", qreport),
            "tflm": {"commit": TFLM_COMMIT, "cmsis_nn": CMSIS_NN_COMMIT},
            "arena_bytes": tm.arena.arena_bytes,
            "arena": tm.arena.to_json(),
            "npu_arena_bytes": tm.vela_arena_bytes or None,
            "weight_bytes": weight_bytes,
            "model_bytes": len(tm.tflite),
            "npu_model_bytes": len(tm.vela_model) if tm.vela_model else None,
            "stack_bytes": getattr(opts, "stack_bytes", 8192),
            "macs": total_macs(g),
            "operators": [u.name for u in tm.facts.ops],
            "npu_operators": [u.name for u in tm.vela_facts.ops] if tm.vela_facts else None,
            "inputs": [io_entry(g, n) for n in g.inputs],
            "outputs": [io_entry(g, n) for n in g.outputs],
            "vela": tm.vela.to_json() if tm.vela else None,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        files = sorted({*written, *model_files, *build_files, *binaries, *saved, MANIFEST})
    extra: dict[str, Any] = {"arena": manifest["arena"]}
    if tm.vela is not None:
        extra["vela"] = tm.vela.to_json()
    return CompileReport(
        model=g.name,
        board=board.name,
        backend="tflm",
        kernels="cmsis-nn",
        out_dir=str(out_dir),
        files=files,
        arena_bytes=tm.vela_arena_bytes or tm.arena.arena_bytes,
        weight_bytes=weight_bytes,
        macs=total_macs(g),
        nodes=len(g.nodes),
        memory_plan={},
        quantization=qreport,
        notes=notes,
        extra=extra,
    )

"""Interpreter-free C for a quantized Graph: model.h, model.c and the runtime files it needs.

model.c holds the weights and requantization constants as ``const`` arrays (flash), one
arena in RAM at offsets fixed by the memory planner, and one straight-line
``tinyc_invoke`` with a kernel call per node.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import numpy as np

from tinyc import __version__
from tinyc.backends.cmsis.cwriter import C_TYPES, CContext, format_array
from tinyc.backends.cmsis.emit import get_emitter
from tinyc.backends.cmsis.emit.dwq_asm import assembly_file
from tinyc.backends.cmsis.emit.matrix import TARGETS
from tinyc.backends.cmsis.emit.skip import guard_body
from tinyc.backends.cmsis.fusion import fused_view, fusion_candidates, fusions
from tinyc.errors import UnsupportedError
from tinyc.ir.graph import Graph
from tinyc.ir.tensor import np_dtype
from tinyc.ir.verify import verify
from tinyc.passes.io_layout import materialize_io_layout
from tinyc.planner import MemoryPlan, plan_memory

DTYPE_CODES = {"int8": 1, "int16": 2, "int32": 3, "float32": 4, "uint8": 5}

#: runtime headers every project gets
RUNTIME_HEADERS = (
    "tinyc_api.h",
    "tinyc_fixedpoint.h",
    "tinyc_simd.h",
    "tinyc_kernels.h",
    "tinyc_nn.h",
    "tinyc_rnn.h",
    "tinyc_sparse.h",
)


#: model.c refuses to build where its weight layouts and scratch sizes would not hold
TARGET_GUARDS = {
    "plain": (
        '#include "tinyc_simd.h"',
        "#if TINYC_DSP || TINYC_MVE",
        '#error "tinyc generated this model for cores without the DSP extension: compile it'
        ' again for this board"',
        "#endif",
    ),
}


@dataclass
class GeneratedModel:
    files: dict[str, str]  # relative path -> text
    plan: MemoryPlan
    runtime_sources: list[str]  # runtime .c files the model calls
    const_bytes: int
    graph: Graph  # the graph the code was generated from (I/O in file layout)
    view: Graph | None = None  # its nodes as emitted: one per node function, some fused


def prepare_graph(g: Graph) -> Graph:
    """The backend's view of ``g``: I/O in the file's layout, shapes checked."""
    g = materialize_io_layout(g.copy())
    verify(g)
    return g


def plan_for(g: Graph, target: str = "dsp", kernels: str = "tinyc") -> MemoryPlan:
    """The arena plan of ``g`` (as prepared by prepare_graph) for the backend's kernels."""
    return plan_with_fusion(g, target, kernels)[1]


def plan_with_fusion(
    g: Graph, target: str = "dsp", kernels: str = "tinyc"
) -> tuple[Graph, MemoryPlan]:
    """The backend's view of ``g`` (some layers fused, see tinyc.backends.cmsis.fusion) and
    its arena plan. Fusion saves memory and costs a little time, so: of the fusion choices
    worth trying, the one with the smallest arena; then each fusion in turn is dropped
    where the arena does not grow without it, or added where the arena shrinks with it."""
    if kernels != "tinyc":  # a fused group runs tinyc's kernels
        return g, _plan_view(g, target, kernels)
    plans: dict[frozenset[str], tuple[Graph, MemoryPlan]] = {}

    def plan(fuse: frozenset[str]) -> tuple[Graph, MemoryPlan]:
        if fuse not in plans:
            view = fused_view(g, set(fuse))
            plans[fuse] = (view, _plan_view(view, target, kernels))
        return plans[fuse]

    def arena(fuse: frozenset[str]) -> int:
        return plan(fuse)[1].arena_bytes

    best = min((frozenset(c) for c in fusion_candidates(g)), key=arena)
    for key in [f.key for f in fusions(g)]:
        other = best ^ {key}
        if (key in best and arena(other) <= arena(best)) or arena(other) < arena(best):
            best = other
    return plan(best)


def _plan_view(g: Graph, target: str, kernels: str) -> MemoryPlan:
    def em(n):
        return get_emitter(n, kernels)

    scratch = {i: em(n).scratch(n, g, target) for i, n in enumerate(g.nodes)}
    over = {i: em(n).scratch_over(n, g, target) for i, n in enumerate(g.nodes)}
    return plan_memory(
        g,
        scratch,
        alias_input=lambda n, gg: em(n).alias(n, gg),
        overlap=lambda n, gg: em(n).overlap(n, gg, target),
        scratch_over={i: k for i, k in over.items() if k is not None},
    )


def target_for(board) -> str:
    """The kernel variants a board's core runs: Helium, DSP, or plain C."""
    if getattr(board, "mve", "none") not in ("none", "", None):
        return "mve"
    return "dsp" if getattr(board, "dsp", False) else "plain"


def _c_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _descriptor(g: Graph, name: str, plan: MemoryPlan) -> str:
    t = g.tensors[name]
    if t.dtype not in DTYPE_CODES:
        raise UnsupportedError(f"model input/output {name!r} has dtype {t.dtype}")
    shape = list(t.shape) + [0] * (6 - len(t.shape))
    scale = float(t.quant.s) if t.quant is not None else 0.0
    zp = t.quant.zp if t.quant is not None else 0
    return (
        f"  {{{_c_string(name)}, tinyc_arena + {plan.offsets[name]}, {t.nbytes}, "
        f"{DTYPE_CODES[t.dtype]}, {len(t.shape)}, {{{', '.join(map(str, shape))}}}, "
        f"{scale!r}f, {zp}}}"
    )


def generate_model(
    g: Graph,
    model_name: str,
    target: str = "dsp",
    kernels: str = "tinyc",
    fuse: set[str] | None = None,
) -> GeneratedModel:
    """Emit C for ``g`` (already quantized) with the kernels and layouts of ``target``
    ("plain", "dsp" or "mve"; see target_for) and the kernel library ``kernels`` ("tinyc",
    or "cmsis-nn" for CMSIS-NN calls where CMSIS-NN has the op). The code builds for any
    core; ``target`` picks what runs fastest on the board's. ``fuse``: the fusions to make
    (keys of tinyc.backends.cmsis.fusion.fusions), instead of the memory plan's choice."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}")
    g = prepare_graph(g)
    if len(g.tensors[g.inputs[0]].shape) > 6 or any(len(g.tensors[n].shape) > 6 for n in g.outputs):
        raise UnsupportedError("model inputs/outputs have more than 6 dimensions")
    if fuse is None:
        view, plan = plan_with_fusion(g, target, kernels)
    else:
        view = fused_view(g, fuse)
        plan = _plan_view(view, target, kernels)
    c = CContext(view, plan, target)
    functions: list[str] = []
    calls: list[str] = []
    for i, node in enumerate(view.nodes):
        c.begin_node(i)
        get_emitter(node, kernels).emit(node, view, c)
        if not c.body:
            continue  # e.g. a RESHAPE that is a view of its input
        c.body = guard_body(node, view, c, c.body)  # a skippable node (tinyc.ir.ops.skip)
        ins = [g.tensors[x] for x in node.inputs if x and not g.tensors[x].is_const]
        shapes = " ".join("x".join(map(str, t.shape)) for t in ins)
        out = "x".join(map(str, g.tensors[next(o for o in node.outputs if o)].shape))
        name = node.name[:60].replace("*/", "")
        functions += [
            f"/* {i}: {node.op} {name}: {shapes} -> {out} */",
            f"static void __attribute__((noinline)) tinyc_node_{i}(void) {{",
            *(f"  {line}" for line in c.body),
            "}",
            "",
        ]
        calls.append(f"  tinyc_node_{i}();")
    header = _model_h(g, plan, model_name)
    source = "\n".join(
        [
            f"/* {model_name}: generated by tinyc {__version__}. Do not edit. */",
            "#include <stdint.h>",
            "#include <string.h>",
            "",
            '#include "model.h"',
            '#include "tinyc_kernels.h"',
            *(f'#include "{h}"' for h in sorted(c.headers)),
            *TARGET_GUARDS.get(target, ()),
            "",
            "/* The activation arena: every run-time tensor at a fixed offset. */",
            "static uint8_t tinyc_arena[TINYC_ARENA_BYTES]",
            '    __attribute__((aligned(16), section(".bss.tinyc_arena")));',
            "",
            *_state_source(g, plan),
            "",
            *c.decls,
            "",
            "const tinyc_tensor_t tinyc_inputs[TINYC_NUM_INPUTS] = {\n"
            + ",\n".join(_descriptor(g, n, plan) for n in g.inputs)
            + "\n};",
            "const tinyc_tensor_t tinyc_outputs[TINYC_NUM_OUTPUTS] = {\n"
            + ",\n".join(_descriptor(g, n, plan) for n in g.outputs)
            + "\n};",
            "",
            *functions,
            "void tinyc_invoke(void) {",
            *calls,
            "}",
            "",
        ]
    )
    files = {"model/model.h": header, "model/model.c": source}
    if c.mve_asm:
        files["model/model_mve.S"] = assembly_file([c.mve_asm[k] for k in sorted(c.mve_asm)])
    return GeneratedModel(
        files=files,
        plan=plan,
        runtime_sources=sorted(c.sources),
        const_bytes=c.const_bytes,
        graph=g,
        view=view,
    )


def _model_h(g: Graph, plan: MemoryPlan, model_name: str) -> str:
    lines = [
        f"/* {model_name}: generated by tinyc {__version__}. Do not edit. */",
        "#ifndef TINYC_MODEL_H",
        "#define TINYC_MODEL_H",
        "",
        '#include "tinyc_api.h"',
        "",
        f"#define TINYC_NUM_INPUTS {len(g.inputs)}",
        f"#define TINYC_NUM_OUTPUTS {len(g.outputs)}",
        f"#define TINYC_ARENA_BYTES {max(plan.arena_bytes, 16)}",
        f"#define TINYC_STATE_BYTES {plan.state_bytes}",
        "",
        "/* Inputs: write each before every tinyc_invoke(); outputs: read after it. */",
    ]
    for i, n in enumerate(g.inputs):
        t = g.tensors[n]
        lines.append(f"/*   input {i}: {n} {t.dtype}[{','.join(map(str, t.shape))}] */")
    for i, n in enumerate(g.outputs):
        t = g.tensors[n]
        lines.append(f"/*   output {i}: {n} {t.dtype}[{','.join(map(str, t.shape))}] */")
    lines += [
        "extern const tinyc_tensor_t tinyc_inputs[TINYC_NUM_INPUTS];",
        "extern const tinyc_tensor_t tinyc_outputs[TINYC_NUM_OUTPUTS];",
        "",
        "/* Run one inference. */",
        "void tinyc_invoke(void);",
        "",
        "/* Recurrent state (TINYC_STATE_BYTES of RAM outside the arena) survives from one",
        " * tinyc_invoke() to the next, as in TFLite Micro; it starts at zero (each value's zero",
        " * point). Call this to start a new sequence. */",
        "void tinyc_reset_state(void);",
        "",
        "#endif",
        "",
    ]
    return "\n".join(lines)


def _state_source(g: Graph, plan: MemoryPlan) -> list[str]:
    """The persistent state region, initialised to every value's reset value (so no call is
    needed before the first invocation), and tinyc_reset_state() that restores it."""
    from tinyc.interpreter import reset_value

    states = [g.tensors[n] for n in plan.state_offsets]
    if not states:
        return ["void tinyc_reset_state(void) {}"]
    image = np.zeros(plan.state_bytes, np.uint8)
    for t in states:
        off = plan.state_offsets[t.name]
        value = np.full(t.shape, reset_value(t), np_dtype(t.dtype))
        image[off : off + t.nbytes] = np.frombuffer(value.tobytes(), np.uint8)
    lines = ["/* Recurrent state: persists between invocations (see tinyc_reset_state). */"]
    if image.any():
        lines.append(
            "static uint8_t tinyc_state[TINYC_STATE_BYTES] __attribute__((aligned(16))) = "
            f"{format_array(image, 'uint8_t')};"
        )
    else:
        lines.append("static uint8_t tinyc_state[TINYC_STATE_BYTES] __attribute__((aligned(16)));")
    lines.append("void tinyc_reset_state(void) {")
    for t in states:
        off = plan.state_offsets[t.name]
        first = image[off : off + t.itemsize]
        if t.itemsize == 1 or not first.any():
            lines.append(f"  memset(tinyc_state + {off}, {int(first[0])}, {t.nbytes}u);")
        else:
            lines.append(
                f"  {{ uint32_t i; for (i = 0; i < {t.size}u; ++i) "
                f"(({C_TYPES[t.dtype]} *)(tinyc_state + {off}))[i] = "
                f"({C_TYPES[t.dtype]}){reset_value(t)}; }}"
            )
    lines.append("}")
    return lines


def runtime_files(sources: list[str]) -> dict[str, str]:
    """The runtime headers plus the kernel sources a model calls, keyed runtime/<name>."""
    root = resources.files("tinyc") / "runtime"
    return {f"runtime/{name}": (root / name).read_text() for name in (*RUNTIME_HEADERS, *sources)}


__all__ = ["C_TYPES", "GeneratedModel", "generate_model", "prepare_graph", "runtime_files"]

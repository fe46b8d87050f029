"""``tinyc estimate --backend tflm``: the same model run by TensorFlow Lite Micro with CMSIS-NN.

What a TFLM project adds over tinyc's interpreter-free C, as measured by
``bench/estimate_calibrate.py --tflm`` with tinyc's own TFLM backend (``tinyc compile
--backend tflm``, TFLM and CMSIS-NN at the commits the backend pins) on each core's
calibration board, into ``tinyc/data/estimate_tflm.json``:

- instructions per node of the graph TFLM runs (tinyc's TFLM lowering: a PAD in front of a
  window whose pads are neither SAME nor VALID): per op kind a linear function of the node's
  MACs, output and input elements (pooling windows, tensors of joins and the slices they
  copy, for int8 LOGISTIC / TANH the inputs inside TFLM's fixed-point range on a seeded random
  input: the others only saturate); a convolution by the CMSIS-NN function TFLM's kernel
  calls for its geometry, from that function's loop counts (window_features); fitted on the
  totals of measured inferences, plus the interpreter's fixed cost per invoke;
- flash: the firmware around the model (start-up, harness, TFLM's interpreter), the code each
  op kind links (kernel and CMSIS-NN functions, resolver entry), and the .tflite itself;
- RAM: TFLM's static data, the tensor arena as the TFLM backend sizes it
  (``tinyc.backends.tflm.arena``: TFLM's own planner and 32-bit allocations), the stack.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

import numpy as np

from tinyc.boards import Board
from tinyc.errors import TinycError
from tinyc.estimate.calibration import core_key
from tinyc.estimate.costmodel import FLASH_LINE, weights_in_flash
from tinyc.estimate.result import (
    Estimate,
    Layer,
    budget,
    firmware_sizes,
    live_bytes,
    stack_reserved,
)
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import attr, get_op
from tinyc.ir.tensor import Tensor

DATA_FILE = "data/estimate_tflm.json"
_FALLBACK = {
    "cortex-m55+mve": "cortex-m55",
    "cortex-m55": "cortex-m33",
    "cortex-m33": "cortex-m4",
    "cortex-m7": "cortex-m4",
    "cortex-m4": "cortex-m7",
    "cortex-m3": "cortex-m0plus",
    "cortex-m0plus": "cortex-m3",
}


@functools.cache
def load_tflm_data() -> dict[str, Any]:
    try:
        return json.loads((resources.files("tinyc") / DATA_FILE).read_text())
    except FileNotFoundError:
        raise TinycError(
            f"tinyc's TFLM estimate calibration ({DATA_FILE}) is missing: run "
            "python bench/estimate_calibrate.py --tflm with TFLM_DIR set"
        ) from None


def tflm_calibration(board: Board) -> tuple[str, dict[str, Any], str]:
    """(core key, calibration, note when another core's stands in)."""
    cores = load_tflm_data()["cores"]
    want = key = core_key(board)
    seen = set()
    while key not in cores and key in _FALLBACK and key not in seen:
        seen.add(key)
        key = _FALLBACK[key]
    if key not in cores:
        raise TinycError(f"no TFLM estimate calibration for {want}; have {', '.join(cores)}")
    note = "" if key == want else f"TFLM on {want} is not calibrated: {key}'s figures stand in"
    if note and "+mve" in want and "+mve" not in key:
        note += " (TFLM's Helium kernels run several times fewer instructions than these)"
    return key, cores[key], note


#: channels per block of CMSIS-NN's Helium depthwise kernels (CH_IN_BLOCK_MVE)
MVE_CH_BLOCK = 124


@dataclass(frozen=True)
class Window:
    """The loop bounds of a CONV_2D / DEPTHWISE_CONV_2D as CMSIS-NN sees them (NHWC)."""

    n: int  # batches
    h: int  # input rows, columns, channels
    w: int
    c: int
    oh: int  # output rows, columns, channels
    ow: int
    oc: int
    kh: int  # kernel rows, columns, input channels per filter
    kw: int
    kc: int
    stride: tuple[int, int]
    dil: tuple[int, int]
    pads: tuple[int, int, int, int]  # top, bottom, left, right

    @classmethod
    def of(cls, node: Node, g: Graph) -> Window:
        x, w, y = g.inp(node, 0), g.inp(node, 1), g.out(node)
        assert x is not None and w is not None
        n, h, wd, c = x.shape
        kc = w.shape[3] if node.op == "CONV_2D" else 1
        stride, dil = attr(node, "stride"), node.attrs.get("dilation", (1, 1))
        return cls(n, h, wd, c, y.shape[1], y.shape[2], y.shape[3], w.shape[1], w.shape[2], kc,
                   (stride[0], stride[1]), (dil[0], dil[1]), tuple(attr(node, "pads")))  # fmt: skip

    @property
    def pixels(self) -> int:
        return self.n * self.oh * self.ow

    @property
    def taps(self) -> int:
        return self.kh * self.kw

    def inside(self) -> tuple[int, int]:
        """(kernel taps inside the input, kernel rows inside the input), summed over the
        output pixels: what the kernels that skip the padding loop over."""
        rows = _inside(self.h, self.oh, self.kh, self.stride[0], self.dil[0], self.pads[0])
        cols = _inside(self.w, self.ow, self.kw, self.stride[1], self.dil[1], self.pads[2])
        return self.n * sum(rows) * sum(cols), self.n * sum(rows) * self.ow


def _inside(size: int, out: int, k: int, s: int, d: int, pad: int) -> list[int]:
    """Per output position along one axis, the kernel taps that fall inside the input."""
    return [sum(0 <= o * s - pad + i * d < size for i in range(k)) for o in range(out)]


def conv_path(win: Window, mve: bool) -> str:
    """The CMSIS-NN function arm_convolve_wrapper_s8 ends in (arm_convolve_1_x_n_s8 is
    arm_convolve_s8 on cores without Helium)."""
    if win.kc != win.c:
        return "grouped"
    if (win.kh, win.kw) == (1, 1) and not any(win.pads) and win.dil == (1, 1):
        return "1x1fast" if win.stride == (1, 1) else "1x1"
    one_row = win.h == 1 and win.kh == 1 and win.dil[1] == 1
    if mve and one_row and (win.stride[1] * win.c) % 4 == 0:
        return "1xn"
    return "im2col"


def cmsis_nn_path(node: Node, g: Graph, mve: bool) -> str:
    """Which CMSIS-NN function TFLM's CONV_2D / DEPTHWISE_CONV_2D calls for the node: the
    conditions of arm_convolve_wrapper_s8 and arm_depthwise_conv_wrapper_s8 and of the
    functions they call. A depthwise layer with a multiplier of 4, 8, ... runs
    arm_depthwise_conv_s8's four-outputs-at-a-time loop ("mult4"), other multipliers and
    dilations its one-output loop ("generic"); with Helium a depthwise layer on one input
    channel runs as a convolution ("to_conv")."""
    win = Window.of(node, g)
    if node.op == "CONV_2D":
        return conv_path(win, mve)
    plain = win.dil == (1, 1) and win.n == 1
    mult = win.oc // win.c
    if mve and win.c == 1 and win.oc > 1:
        return "to_conv"
    if mult == 1 and plain:
        if not mve and (win.kh, win.kw) == (3, 3) and max(win.pads) <= 1:
            return "3x3"
        return "opt"
    return "mult4" if mult % 4 == 0 and plain else "generic"


def window_features(win: Window, kind: str, mve: bool) -> dict[str, float]:
    """Loop counts of the CMSIS-NN function ``kind`` names (see cmsis_nn_path)."""
    p, t = win.pixels, win.taps
    outputs = p * win.oc
    if kind in ("im2col", "grouped"):
        # arm_convolve_s8: per output pixel one memcpy / memset of the input channels per
        # kernel tap, the column widened to int16; two columns at a time against two filters
        # (4 values per step, the rest one at a time), an odd last filter against two
        # columns; an odd last column alone
        cols = t * win.kc
        return {
            "pixels": p,
            "taps": p * t * (win.c // win.kc),
            "im2col": p * t * win.c,
            "macs": outputs * cols,
            "rest": outputs * (cols % 4),
            "odd": (win.oc % 2) * p * cols,
            "tail": (p % 2) * win.oc * cols,
            "outputs": outputs,
        }
    if kind in ("1x1fast", "1x1", "1xn"):
        # arm_nn_mat_mult_nt_t_s8 (once per output row for a strided 1x1): per pair of
        # filters their sums times the input offset, then two pixels at a time (16, then
        # 4 values per step, the rest one at a time); an odd last filter one MAC at a time
        calls = win.n * win.oh if kind == "1x1" else 1
        cols = win.c * (win.taps if kind == "1xn" else 1)
        return {"calls": calls if kind == "1x1" else 0, "weights": calls * win.oc * cols,
                "pixels": p, "macs": outputs * cols, "rest": outputs * (cols % 4),
                "odd": (win.oc % 2) * p * cols, "outputs": outputs}  # fmt: skip
    taps, rows = win.inside()
    if kind == "3x3":  # 4 channels at a time over the taps inside the input, then 1 by 1
        c4 = win.c - win.c % 4
        return {"pixels": p, "macs": taps * c4, "rest": taps * (win.c % 4), "outputs": outputs}
    if kind == "opt":
        # per output pixel a widened copy of the whole window (padding as zeros), then 4
        # channels at a time, 2 taps per step; with Helium blocks of channels, 4 pixels at once
        blocks = -(-win.c // MVE_CH_BLOCK) if mve else 1
        return {"pixels": p, "taps": p * t * blocks, "macs": p * t * win.c,
                "rest": 0 if mve else p * t * (win.c % 4), "outputs": outputs}  # fmt: skip
    # mult4: 4 outputs of one input channel at a time; generic: one output at a time (a
    # dilated window's bounds take two divisions per output); both skip the padding
    f = {"pixels": p * win.c, "rows": rows * win.oc, "macs": taps * win.oc, "outputs": outputs}
    if kind == "generic" and win.dil != (1, 1):
        f["dilated"] = outputs
    return f


def conv_node_features(node: Node, g: Graph, mve: bool) -> dict[str, float]:
    """The features of a CONV_2D / DEPTHWISE_CONV_2D node, keyed by the CMSIS-NN function
    that runs it (a depthwise layer run as a convolution: by the convolution's, plus the
    transposition of its filters)."""
    win = Window.of(node, g)
    kind = cmsis_nn_path(node, g, mve)
    f = {f"{node.op}:nodes": 1.0}
    prefix = f"{node.op}/{kind}"
    if kind == "to_conv":
        win = replace(win, kc=1)
        kind = conv_path(win, mve)
        prefix = f"CONV_2D/{kind}"
        f["DEPTHWISE_CONV_2D/to_conv:weights"] = float(win.taps * win.oc)
    f.update({f"{prefix}:{k}": float(v) for k, v in window_features(win, kind, mve).items() if v})
    return f


#: ops with any number of input or output tensors
VARIADIC = ("CONCATENATION", "PACK", "SPLIT", "SPLIT_V", "UNPACK")
#: ... of which those that cut their one input into slices
SPLITS = ("SPLIT", "SPLIT_V", "UNPACK")
#: int8 activations TFLM computes in gemmlowp fixed point, except where saturated
FIXED_POINT_ACTS = ("LOGISTIC", "TANH")


def input_radius(scale: float) -> int:
    """TFLM's ``input_range_radius`` of an int8 LOGISTIC / TANH input of ``scale``
    (CalculateInputRadius(4, input_left_shift)): codes this far or farther from the zero point
    only saturate; those inside take gemmlowp's logistic / tanh in Q4.27 (a few hundred
    instructions each)."""
    if scale <= 0:
        return 1 << 30
    shift = math.frexp(scale * (1 << 27))[1]
    return math.floor(15 * math.ldexp(1.0, 27 - shift))


def inside_radius(scale: float, zero_point: int) -> float:
    """Share of the 256 int8 codes inside TFLM's input radius (inputs spread evenly)."""
    r = input_radius(scale)
    lo, hi = max(-128, zero_point - r + 1), min(127, zero_point + r - 1)
    return max(hi - lo + 1, 0) / 256


def _fixed_point_input(node: Node, g: Graph) -> Tensor | None:
    x = g.inp(node, 0)
    if node.op in FIXED_POINT_ACTS and x is not None and x.dtype == "int8" and x.quant:
        return x
    return None


def act_inside(g: Graph) -> dict[str, float]:
    """Per input tensor of an int8 LOGISTIC / TANH of ``g``: the share of its elements inside
    TFLM's input radius on the seeded random inputs ``tinyc validate`` runs (tinyc's
    interpreter, bit-exact with TFLM). Empty when there is no such node or the interpreter
    cannot run ``g`` (node_features then assumes inputs spread evenly over the codes)."""
    xs = [x for n in g.nodes if (x := _fixed_point_input(n, g)) is not None]
    if not xs:
        return {}
    from tinyc.interpreter import run
    from tinyc.modelio import random_inputs

    try:
        values = run(g, random_inputs(g, 0), keep_all=True)
    except (TinycError, ArithmeticError, AssertionError, KeyError, NotImplementedError,
            ValueError):  # fmt: skip
        return {}
    out = {}
    for x in xs:
        assert x.quant is not None
        v = values.get(x.name)
        if v is not None and v.size:
            d = np.abs(v.astype(np.int32) - x.quant.zp)
            out[x.name] = float(np.mean(d < input_radius(float(x.quant.s))))
    return out


def _outer(node: Node, g: Graph) -> int:
    """Slices before the axis of a join or split (TFLM copies one per tensor per slice)."""
    ref = g.inp(node, 0) if node.op in SPLITS else g.out(node)
    assert ref is not None
    axis = attr(node, "axis") % max(len(ref.shape), 1)
    return math.prod(ref.shape[:axis])


def node_features(
    node: Node, g: Graph, mve: bool = False, inside: dict[str, float] | None = None
) -> dict[str, float]:
    """Per op kind: nodes, MACs, output and input elements, tensors of joins and splits and
    the slices they copy, for pooling the window taps, for int8 LOGISTIC / TANH the elements
    inside TFLM's input radius (``inside``: act_inside's shares; otherwise inputs spread
    evenly over the codes); convolutions per CMSIS-NN function, by its loops (see
    window_features)."""
    op = node.op
    if op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        return conv_node_features(node, g, mve)
    y = g.out(node)
    x = g.inp(node, 0)
    f = {f"{op}:nodes": 1.0, f"{op}:outputs": float(y.size)}
    if x is not None and not x.is_const and x.size != y.size:
        f[f"{op}:inputs"] = float(x.size)
    if op in VARIADIC:  # TFLM's kernels loop over their tensors, one copy per tensor and slice
        ins = [i for i in node.inputs if i and not g.tensors[i].is_const]
        f[f"{op}:tensors"] = float(len(ins) + len(node.outputs))
        f[f"{op}:copies"] = float(_outer(node, g) * len(node.outputs if op in SPLITS else ins))
    macs = get_op(op).macs(node, g)
    if macs:
        f[f"{op}:macs"] = float(macs)
    if op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        k = attr(node, "filter")
        f[f"{op}:window"] = float(y.size * k[0] * k[1])
    if (fx := _fixed_point_input(node, g)) is not None:
        assert fx.quant is not None
        share = (inside or {}).get(fx.name)
        if share is None:
            share = inside_radius(float(fx.quant.s), fx.quant.zp)
        f[f"{op}:inside"] = y.size * share
    return f


def weight_reads(node: Node, g: Graph) -> float:
    """Bytes of weights a CMSIS-NN kernel streams: every weight once per two output pixels
    (its matrix kernels take two columns at a time), once for fully connected layers."""
    consts = sum(g.tensors[i].nbytes for i in node.inputs if i and g.tensors[i].is_const)
    if node.op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        y = g.out(node)
        return consts * max(y.size // y.shape[-1] // 2, 1)
    return float(consts)


def tflm_graph(g: Graph) -> Graph:
    """The graph TFLM runs: tinyc's TFLM lowering of ``g`` (a PAD in front of a window whose
    pads are neither SAME nor VALID, recurrent layers in TFLM's form, TRANSPOSEs to the
    file's I/O layout)."""
    from tinyc.backends.tflm.lower import lower_for_tflite

    return lower_for_tflite(g)


def estimate_tflm(g: Graph, board: Board):
    from tinyc.backends.tflm.project import prepare_model
    from tinyc.planner import plan_memory

    key, cal, note = tflm_calibration(board)
    notes = [note] if note else []
    gg = tflm_graph(g)
    tm = prepare_model(g, board)  # as tinyc compile --backend tflm: on NPU boards, Vela's
    data, arena = tm.tflite, tm.arena
    npu = tm.vela
    on_npu = npu_layer_cycles(npu) if npu is not None else {}
    cpu_names = {c.name for c in npu.cpu_operators} if npu is not None else set()
    plan = plan_memory(gg)
    inside = act_inside(g)
    notes += act_note(gg, inside)
    coef = cal["instructions"]
    cpi = float(cal["cpi"])
    ws = board.flash_wait_states or 0 if weights_in_flash(board) else 0
    layers = []
    kinds = set()
    unknown = set()
    for i, node in enumerate(gg.nodes):
        op = get_op(node.op)
        common = {
            "index": i, "name": node.name, "output_shape": list(gg.out(node).shape),
            "params": op.params(node, gg), "macs": op.macs(node, gg),
            "weight_bytes": sum(gg.tensors[x].nbytes for x in node.inputs
                                if x and gg.tensors[x].is_const),
            "live_bytes": live_bytes(plan, i), "code_bytes": 0.0, "stack_bytes": 0,
        }  # fmt: skip
        if npu is not None and node.outputs[0] not in cpu_names:
            cyc = on_npu.get(node.outputs[0], 0.0)  # (an op Vela merged into the one before)
            layers.append(Layer(**common, op=node.op, kernel="ethos-u", instructions=0.0,
                                cycles=cyc, flash_wait_cycles=0.0,
                                latency_ms=1e3 * cyc / board.clock_hz))  # fmt: skip
            continue
        feats = node_features(node, gg, board.mve != "none", inside)
        kinds.add(node.op)
        if not any(k in coef for k in feats):
            unknown.add(node.op)
        insn = sum(coef.get(k, 0.0) * v for k, v in feats.items())
        wait = ws * weight_reads(node, gg) / FLASH_LINE
        cyc = insn * cpi + wait
        layers.append(Layer(**common, op=node.op, kernel=f"tflm:{node.op}", instructions=insn,
                            cycles=cyc, flash_wait_cycles=wait,
                            latency_ms=1e3 * cyc / board.clock_hz))  # fmt: skip
    if unknown:
        notes.append(
            f"no TFLM measurement for {', '.join(sorted(unknown))}: those layers count only "
            "what the other op kinds' fit gives"
        )
    per_op = cal["ops"]
    constants = len(tm.vela_model) if tm.vela_model is not None else len(data)
    model = {"text": 0, "rodata": constants, "data": 0, "bss": 0}
    for k in kinds:
        for part, v in per_op.get(k, {}).items():
            if part in model:
                model[part] += v
    fixed = cal["fixed"]
    stack = stack_reserved()
    sizes = firmware_sizes(fixed, model, tm.max_arena, stack)
    npu_sized = tm.vela_arena_bytes > arena.arena_bytes
    arena_note = tm.vela_arena_note if npu_sized else arena.describe()
    stack_used = max(
        [fixed["stack_used"], *(per_op.get(k, {}).get("stack_used", 0) for k in kinds)]
    )
    return Estimate(
        model=g.name,
        board=board.name,
        backend="tflm",
        core=key,
        kernels="tflm+cmsis-nn" if npu is None else f"{board.npu.name}+tflm+cmsis-nn",
        clock_hz=board.clock_hz,
        layers=layers,
        sizes=sizes,
        parts={
            "constants": constants,
            "kernel_code": model["text"],
            "runtime": fixed["text"] + fixed["rodata"] + fixed["data"],
            "scratch": arena.head,
        },
        stack_used=int(stack_used),
        outside_instructions=float(coef.get("invoke", 0.0)),
        cpi=cpi,
        board_firmware={
            "flash_bytes": sizes["flash"],
            "ram_bytes": sizes["ram"],
            "test_data_bytes": 0,
        },  # fmt: skip
        budget=budget(board, sizes),
        plan=plan,
        notes=notes + [f"tensor arena: {arena_note}"] + npu_notes(npu),
        assumptions=[
            f"TFLite Micro + CMSIS-NN figures {cal['source']}",
            f"cycles = instructions x {cpi} (assumed CPI of {key})",
        ]
        + (
            [
                f"NPU layers: Vela's cycles ({npu.system_config}, {npu.memory_mode}) at the "
                f"board's {board.clock_hz / 1e6:g} MHz"
            ]
            if npu is not None
            else []
        ),  # fmt: skip
        npu=npu.to_json() if npu is not None else None,
        extra_cycles=npu_overhead(npu, [x for x in layers if x.kernel == "ethos-u"]),
    )


def act_note(g: Graph, inside: dict[str, float]) -> list[str]:
    """What the cost of int8 LOGISTIC / TANH rests on (their inputs' spread)."""
    xs = [(x, g.out(n).size) for n in g.nodes if (x := _fixed_point_input(n, g)) is not None]
    if not xs:
        return []
    if not all(x.name in inside for x, _ in xs):
        return [
            "int8 LOGISTIC / TANH: inputs assumed spread evenly over the int8 codes (TFLM "
            "computes those inside its input radius in fixed point, saturates the others)"
        ]
    n = sum(size * inside[x.name] for x, size in xs)
    total = sum(size for _, size in xs)
    return [
        f"int8 LOGISTIC / TANH: {n:,.0f} of {total:,} input elements inside TFLM's input "
        "radius (computed in fixed point, the others saturate) on a seeded random input; "
        "the count, and the instructions, depend on the data"
    ]


def npu_layer_cycles(npu: Any) -> dict[str, float]:
    """Vela's cycles per operator on the NPU, by the name of the operator's output (Vela
    reports the operators it fuses, e.g. an activation, under the same name)."""
    out: dict[str, float] = {}
    for row in npu.per_layer:
        if row.get("Target") == "NPU":
            out[row["Name"]] = out.get(row["Name"], 0.0) + float(row.get("Op Cycles") or 0)
    return out


def npu_overhead(npu: Any, layers: list[Any]) -> float:
    """Cycles of Vela's total that the NPU layers do not account for (command stream, DMA
    set-up, operators Vela added)."""
    if npu is None:
        return 0.0
    return max(float(npu.cycles_total) - sum(x.cycles for x in layers), 0.0)


def npu_notes(npu: Any) -> list[str]:
    if npu is None:
        return []
    out = [
        f"{npu.npu_operators} of {npu.operators} operators run on the {npu.accelerator} "
        f"(Vela: {npu.cycles_total:,} cycles, SRAM {npu.sram_bytes:,} B, flash "
        f"{npu.off_chip_flash_bytes + npu.on_chip_flash_bytes:,} B); the Ethos-U driver's "
        "code is not counted in flash"
    ]
    for c in npu.cpu_operators:
        why = "; ".join(c.reasons) if c.reasons else "Vela gave no reason"
        out.append(f"CPU fallback: {c.op} {c.name!r} runs on the Cortex-M with TFLM ({why})")
    return out

"""Calibrate ``tinyc estimate``'s cost model on measured layers (tinyc/data/estimate_*.json).

For every core variant (M0+, M3, M4, M7, M33, M55 with and without MVE) this script generates
families of single-layer graphs of varied shapes, one kernel per family (convolutions direct and
gathered, fully connected, depthwise ring, generic and with multipliers, pooling, elementwise,
lookup tables, softmax, mean, data movement, float boundary, recurrent LSTM / GRU / RNN layers,
the three fitted together as the kernels of tinyc_rnn.h), merges each batch of layers into one
graph (every layer has its own graph inputs and outputs), compiles it with the C backend, builds
the board's emulated twin with ``-fstack-usage``, and measures per layer:

- instructions: QEMU runs with the TCG counting plugin windowed from the entry of
  ``tinyc_node_<i>`` to the entry of the next node function (the node, its return and the next
  call), plus one run between the usual benchmark markers for what lies outside the nodes;
- code bytes of ``tinyc_node_<i>`` as placed by the linker (linker map, padding included);
- its stack frame (``.su`` files) and the whole inference's stack depth (painted stack);
- which runtime and library sections each kernel pulls into the firmware (linker map).

Then it fits, per core and per kernel, instructions and code bytes as non-negative linear
combinations of the loop-count features of ``tinyc.estimate.features`` (least squares,
relative error for instructions), and records the measured unit sizes. A baseline build per
board gives the fixed part of each firmware (startup, harness, libc) for the emulated twin and
for the real board, and the stack depth at the inference call.

Measurements are cached under --work (keyed by the generated C, the runtime sources and the
compiler flags), so a re-run after a kernel change only re-measures what changed.

Run: python bench/estimate_calibrate.py [--cores cortex-m4,cortex-m7] [--quick] [--work DIR]
After a change of the recurrent kernels only (about 9 minutes for the seven cores):
     python bench/estimate_calibrate.py --families lstm,gru,rnn --merge --no-boards
TFLM + CMSIS-NN only (tinyc/data/estimate_tflm.json; TFLM_DIR set; --cores "" leaves the C
backend's file alone), refitting only the op kinds of some families (about 40 minutes a core):
     python bench/estimate_calibrate.py --cores "" --no-boards --tflm cortex-m7 --merge \
         --families conv,dw,dw_generic,dwm,conv_geo,conv_1d,dw_geo
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection
from scipy.optimize import nnls

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import graphs as G  # noqa: E402  (tests/graphs.py: the single-op graph builders)
from tflm_build import tflm_library, third_party_vars  # noqa: E402

from tinyc import __version__  # noqa: E402
from tinyc.backends.cmsis.codegen import generate_model, runtime_files, target_for  # noqa: E402
from tinyc.backends.cmsis.fusion import fusions  # noqa: E402
from tinyc.boards import Board, list_boards, load_board  # noqa: E402
from tinyc.compiler import CompileOptions, compile_model  # noqa: E402
from tinyc.emulate import (  # noqa: E402
    build_firmware,
    elf_sizes,
    ensure_plugin,
    qemu_args,
    render_project,  # noqa: E402
    run_emulated,  # noqa: E402
)
from tinyc.emulate.plugin import qemu_binary  # noqa: E402
from tinyc.errors import TinycError  # noqa: E402
from tinyc.estimate.calibration import DATA_FILE, core_key  # noqa: E402
from tinyc.estimate.csource import SCALAR_BYTES, const_bytes, read_model_c  # noqa: E402
from tinyc.estimate.features import (  # noqa: E402
    ALIASES,
    KERNELS,
    RNN_GROUPED,
    Target,
    main_kernels,
    node_features,
)
from tinyc.interpreter import run as run_reference  # noqa: E402
from tinyc.ir.graph import Graph  # noqa: E402
from tinyc.ir.tensor import QuantParams, Tensor  # noqa: E402
from tinyc.ir.verify import verify  # noqa: E402
from tinyc.modelio import random_inputs, to_external  # noqa: E402

# --------------------------------------------------------------------------------------------
# core variants: the board whose emulated twin runs the code, and gcc flags when they differ

VARIANTS: dict[str, dict[str, str]] = {
    "cortex-m0plus": {"board": "rpi-pico"},
    "cortex-m3": {"board": "mps2-an385"},
    "cortex-m4": {"board": "nucleo-l4r5zi"},
    "cortex-m7": {"board": "nucleo-f746"},
    "cortex-m33": {  # on the M55 twin: ARMv8.1-M runs ARMv8-M code (the M4 twin lacks FPv5)
        "board": "corstone-300",
        "arch": "-mcpu=cortex-m33 -mthumb -mfloat-abi=hard -mfpu=fpv5-sp-d16",
        "kernels": "dsp",
    },
    "cortex-m55": {
        "board": "corstone-300",
        "arch": "-mcpu=cortex-m55+nomve -mthumb -mfloat-abi=hard",
        "kernels": "dsp",
    },
    "cortex-m55+mve": {"board": "corstone-300", "tflm_board": "mps3-an547"},
}

#: assumed cycles per instruction of tinyc's int8 kernels (QEMU counts instructions only):
#: in-order single-issue cores with single-cycle MAC, 2-cycle loads (M0+ 2-cycle branches);
#: the M7 dual-issues about a third of its instructions.
CPI = {
    "cortex-m0plus": 1.35,
    "cortex-m3": 1.3,
    "cortex-m4": 1.25,
    "cortex-m7": 0.8,
    "cortex-m33": 1.2,
    "cortex-m55": 1.1,
    "cortex-m55+mve": 1.1,
}

# --------------------------------------------------------------------------------------------
# layer generators: one kernel per family, shapes drawn like those of real models


def _pads(rng, h: int, w: int, k: tuple[int, int], s: tuple[int, int], d: tuple[int, int]):
    """SAME (TFLite's split), VALID, or random small pads."""
    mode = rng.choice(["same", "same", "valid", "random"])
    if mode == "valid":
        return (0, 0, 0, 0)
    if mode == "random":
        return tuple(int(v) for v in rng.integers(0, 3, size=4))
    out = []
    for n, kk, ss, dd in ((h, k[0], s[0], d[0]), (w, k[1], s[1], d[1])):
        eff = (kk - 1) * dd + 1
        total = max((-(-n // ss) - 1) * ss + eff - n, 0)
        out += [total // 2, total - total // 2]
    return tuple(out)


def _out(n: int, k: int, s: int, d: int, p0: int, p1: int) -> int:
    return (n + p0 + p1 - (k - 1) * d - 1) // s + 1


def _fits(h, w, k, s, d, pads) -> tuple[int, int]:
    return (
        _out(h, k[0], s[0], d[0], pads[0], pads[1]),
        _out(w, k[1], s[1], d[1], pads[2], pads[3]),
    )


#: whether generated layers may take the general requantization path (TFLM refuses such
#: layers: their bias scale is then off by more than 2 % of the output scale)
GENERAL_REQUANT = [True]


def _general_requant(g: Graph, rng) -> Graph:
    """Sometimes make the output scale small, so that multipliers exceed 0.5 and the kernel
    takes its general (left-shifting) requantization path."""
    if rng.random() < 0.15 and GENERAL_REQUANT[0]:
        y = g.tensors[g.outputs[0]]
        x = g.tensors[g.inputs[0]]
        w = next(t for t in g.tensors.values() if t.is_const and t.dtype == "int8")
        s = float(x.quant.s) * float(np.min(w.quant.scale)) * 2.0
        y.quant = QuantParams([s], [int(y.quant.zp)])
    return g


def gen_conv(rng, seed: int) -> Graph:
    budget = 600_000
    for _ in range(100):
        pointwise = rng.random() < 0.3
        shapes = [(3, 3), (3, 3), (3, 3), (5, 5), (10, 4), (3, 1), (1, 3), (7, 7), (4, 3), (2, 2)]
        k = (1, 1) if pointwise else tuple(rng.choice([*shapes, (1, 1)]))
        s = (1, 1) if rng.random() < 0.65 else tuple(rng.choice([(2, 2), (2, 2), (1, 2), (2, 1)]))
        d = (2, 2) if (k != (1, 1) and rng.random() < 0.08) else (1, 1)
        cin = int(rng.choice([1, 2, 3, 4, 5, 8, 12, 16, 24, 32, 48, 64, 96, 128]))
        if pointwise:
            cin = int(rng.choice([4, 8, 16, 24, 32, 64, 96, 128]))
        oc = int(rng.choice([1, 2, 3, 5, 8, 12, 16, 24, 32, 48, 64, 96, 128, 7, 33]))
        groups = 1
        if rng.random() < 0.08:
            groups = int(rng.choice([2, 4]))
            cin = max(cin // groups, 1) * groups
            oc = max(oc // groups, 1) * groups
        h, w = int(rng.integers(k[0], 49)), int(rng.integers(k[1], 49))
        pads = (0, 0, 0, 0) if pointwise and rng.random() < 0.8 else _pads(rng, h, w, k, s, d)
        oh, ow = _fits(h, w, k, s, d, pads)
        if oh < 1 or ow < 1 or oh * ow * oc * k[0] * k[1] * cin // groups > budget:
            continue
        act = str(rng.choice(["NONE", "RELU", "RELU6"]))
        g = G.conv(seed, h, w, cin, oc, k, s, d, pads, act, groups=groups)
        return _general_requant(g, rng)
    raise RuntimeError("no conv config")


def gen_fc(rng, seed: int) -> Graph:
    while True:
        rows = 1 if rng.random() < 0.7 else int(rng.integers(2, 9))
        k = int(rng.choice([int(rng.integers(1, 64)), int(rng.integers(1, 300)) * 4,
                            int(rng.integers(1, 1100))]))  # fmt: skip
        oc = int(rng.choice([int(rng.integers(1, 16)), int(rng.integers(1, 400))]))
        if rows * k * oc <= 400_000:
            break
    act = str(rng.choice(["NONE", "RELU", "RELU6"]))
    g = G.fully_connected(seed, rows, k, oc, act, per_channel=bool(rng.random() < 0.8))
    return _general_requant(g, rng)


def gen_fc_small(rng, seed: int) -> Graph:
    """The small one-row layers of tiny models (whose code the row loops unroll)."""
    k, oc = int(rng.integers(1, 65)), int(rng.integers(1, 65))
    act = str(rng.choice(["NONE", "RELU", "RELU6"]))
    return G.fully_connected(seed, 1, k, oc, act, per_channel=bool(rng.random() < 0.7))


def gen_dw(rng, seed: int, kind: str = "ring") -> Graph:
    """A DEPTHWISE_CONV_2D for the kernel ``kind`` names: "ring" (tinyc_dw_s8), "generic"
    (tinyc_depthwise_s8: kernels taller than 16 rows) or "mult" (tinyc_dwm_s8: depth
    multipliers above 1, often on one input channel as in the first layer of audio and IMU
    models)."""
    while True:
        k = tuple(rng.choice([(3, 3), (3, 3), (5, 5), (3, 1), (1, 3), (10, 4), (7, 7), (2, 2)]))
        if kind == "generic":
            k = (int(rng.integers(17, 26)), int(rng.choice([1, 1, 2, 3])))
        s = (1, 1) if rng.random() < 0.65 else tuple(rng.choice([(2, 2), (1, 2), (2, 1)]))
        d = (2, 2) if rng.random() < 0.1 else (1, 1)
        c = int(rng.choice([1, 3, 4, 6, 8, 16, 24, 32, 48, 64, 96, 128, 7, 13]))
        mult = 1
        if kind == "mult":
            c = int(rng.choice([1, 1, 1, 2, 3, 8, 16, 32, 64, c]))
            mult = int(rng.choice([2, 2, 3, 4, 8, int(rng.integers(2, 11))]))
        h, w = int(rng.integers(k[0], 50)), int(rng.integers(k[1], 50))
        pads = _pads(rng, h, w, k, s, d)
        oh, ow = _fits(h, w, k, s, d, pads)
        if oh >= 1 and ow >= 1 and oh * ow * c * mult * k[0] * k[1] <= 300_000:
            break
    act = str(rng.choice(["NONE", "RELU", "RELU6"]))
    g = G.conv(seed, h, w, c, 0, k, s, d, pads, act, "DEPTHWISE_CONV_2D", mult)
    return _general_requant(g, rng)


def gen_pool(rng, seed: int, op: str) -> Graph:
    while True:
        h, w = int(rng.integers(1, 50)), int(rng.integers(1, 50))
        c = int(rng.choice([1, 3, 4, 8, 16, 32, 64, 96, 128, 10]))
        if rng.random() < 0.25:
            k, s, pads = (h, w), (1, 1), (0, 0, 0, 0)
        else:
            k = tuple(int(v) for v in rng.choice([(2, 2), (3, 3), (2, 2), (5, 5), (3, 1)]))
            k = (min(k[0], h), min(k[1], w))
            s = tuple(int(v) for v in rng.choice([(2, 2), (1, 1), (2, 2), (3, 3)]))
            pads = _pads(rng, h, w, k, s, (1, 1))
        oh, ow = _fits(h, w, k, s, (1, 1), pads)
        if oh >= 1 and ow >= 1 and oh * ow * c * k[0] * k[1] <= 200_000:
            break
    act = str(rng.choice(["NONE", "RELU"]))
    return G.pool(seed, op, h, w, c, k, s, pads, act)


def _shape(rng, max_elems: int) -> tuple[int, ...]:
    while True:
        rank = int(rng.integers(2, 5))
        shape = tuple(int(rng.integers(1, 40)) for _ in range(rank))
        if rank == 4:
            shape = (1, *shape[1:])
        if np.prod(shape) <= max_elems:
            return shape


def gen_binary(rng, seed: int, ops: tuple[str, ...]) -> Graph:
    op = str(rng.choice(ops))
    a = _shape(rng, 12_000)
    mode = rng.choice(["same", "same", "last", "scalar", "row"])
    if mode == "same":
        b = a
    elif mode == "last":
        b = (1,) * (len(a) - 1) + (a[-1],)
    elif mode == "scalar":
        b = (1,)
    else:
        b = (1,) * (len(a) - 2) + (a[-2], 1)
    act = str(rng.choice(["NONE", "RELU"]))
    return G.binary(seed, op, a, b, act, const_b=bool(rng.random() < 0.25))


def gen_lut(rng, seed: int) -> Graph:
    op = str(rng.choice(["LOGISTIC", "TANH", "RELU", "RELU6", "QUANTIZE"]))
    shape = _shape(rng, 20_000)
    if op == "QUANTIZE":
        return G.requantize(seed, shape)
    return G.unary(seed, op, shape)


def gen_small_ops(rng, seed: int) -> Graph:
    """The small elementwise layers of recurrent models (a few dozen values each)."""
    shape = (1, int(rng.integers(1, 129)))
    op = str(rng.choice(["LOGISTIC", "TANH", "ADD", "MUL", "SUB"]))
    if op in ("LOGISTIC", "TANH"):
        return G.unary(seed, op, shape)
    return G.binary(seed, op, shape, shape)


def gen_softmax(rng, seed: int) -> Graph:
    depth = int(rng.choice([2, 3, 10, 12, 35, 100, int(rng.integers(2, 1001))]))
    rows = int(rng.integers(1, 9))
    return G.unary(seed, "SOFTMAX", (rows, depth), beta=1.0)


def gen_mean(rng, seed: int) -> Graph:
    h, w, c = int(rng.integers(1, 30)), int(rng.integers(1, 30)), int(rng.integers(1, 100))
    axes = [(1, 2), (1, 2), (2,), (1,), (3,)][int(rng.integers(0, 5))]
    return G.mean(seed, (1, h, w, c), axes, bool(rng.random() < 0.5))


def gen_join(rng, seed: int) -> Graph:
    rank = int(rng.integers(2, 5))
    base = [int(rng.integers(1, 20)) for _ in range(rank)]
    axis = int(rng.integers(0, rank))
    n = int(rng.integers(2, 5))
    if rng.random() < 0.3:
        return G.data_movement(seed, "PACK", [tuple(base)] * n, axis=axis)
    shapes = []
    for _ in range(n):
        s = list(base)
        s[axis] = int(rng.integers(1, 20))
        shapes.append(tuple(s))
    return G.data_movement(seed, "CONCATENATION", shapes, axis=axis)


def gen_split(rng, seed: int) -> Graph:
    rank = int(rng.integers(2, 5))
    shape = [int(rng.integers(1, 20)) for _ in range(rank)]
    axis = int(rng.integers(0, rank))
    kind = rng.choice(["SPLIT", "SPLIT_V", "UNPACK"])
    if kind == "UNPACK":
        return G.data_movement(seed, "UNPACK", [tuple(shape)], shape[axis], axis=axis)
    n = int(rng.integers(2, 5))
    if kind == "SPLIT":
        shape[axis] = n * int(rng.integers(1, 8))
        return G.data_movement(seed, "SPLIT", [tuple(shape)], n, axis=axis, num_splits=n)
    sizes = [int(rng.integers(1, 8)) for _ in range(n)]
    shape[axis] = sum(sizes)
    return G.data_movement(seed, "SPLIT_V", [tuple(shape)], n, axis=axis, size_splits=tuple(sizes))


def gen_pad(rng, seed: int) -> Graph:
    shape = (1, int(rng.integers(1, 30)), int(rng.integers(1, 30)), int(rng.integers(1, 64)))
    pads = ((0, 0),) + tuple(tuple(int(v) for v in rng.integers(0, 3, size=2)) for _ in range(2))
    pads = pads + ((0, 0),)
    return G.data_movement(seed, "PAD", [shape], paddings=pads, value=None)


def gen_transpose(rng, seed: int) -> Graph:
    rank = int(rng.integers(2, 5))
    shape = tuple(int(rng.integers(1, 20)) for _ in range(rank))
    perm = tuple(int(v) for v in rng.permutation(rank))
    return G.data_movement(seed, "TRANSPOSE", [shape], perm=perm)


def gen_float_io(rng, seed: int, op: str) -> Graph:
    shape = _shape(rng, 4000)
    b = G.Builder(f"{op.lower()}_{seed}", seed)
    if op == "QUANTIZE":
        b.g.add_tensor(Tensor("x", shape, "float32"))
        b.act("y", shape)
    else:
        b.act("x", shape)
        b.g.add_tensor(Tensor("y", shape, "float32"))
    b.node(op, ["x"], ["y"])
    return b.finish(["x"], ["y"])


def gen_conv_dw(rng, seed: int) -> Graph:
    """A CONV_2D whose only reader is a depthwise convolution: the C backend fuses them."""
    while True:
        h, w = int(rng.integers(4, 40)), int(rng.integers(4, 40))
        cin = int(rng.choice([3, 4, 8, 16, 32]))
        mid = int(rng.choice([8, 16, 32, 48, 64, 96]))
        k = (1, 1) if rng.random() < 0.6 else (3, 3)
        s = (1, 1) if rng.random() < 0.6 else (2, 2)
        pads = (0, 0, 0, 0) if k == (1, 1) else _pads(rng, h, w, k, (1, 1), (1, 1))
        oh, ow = _fits(h, w, k, (1, 1), (1, 1), pads)
        dpads = _pads(rng, oh, ow, (3, 3), s, (1, 1))
        dh, dw = _fits(oh, ow, (3, 3), s, (1, 1), dpads)
        if min(oh, ow, dh, dw) >= 1 and oh * ow * mid * (k[0] * k[1] * cin + 9) <= 500_000:
            break
    b = G.Builder(f"conv_dw_{seed}", seed)
    x = b.act("x", (1, h, w, cin))
    wc = b.weights("wc", (mid, k[0], k[1], cin), 0)
    b.act("m", (1, 1, 1, mid))
    b.node("CONV_2D", [x, wc, b.bias("bc", mid)], ["m"], stride=(1, 1), dilation=(1, 1),
           pads=pads, activation="RELU")  # fmt: skip
    wd = b.weights("wd", (1, 3, 3, mid), 3)
    b.act("y", (1, 1, 1, mid))
    b.node("DEPTHWISE_CONV_2D", ["m", wd, b.bias("bd", mid)], ["y"], stride=s,
           dilation=(1, 1), pads=dpads, activation="RELU", depth_multiplier=1)  # fmt: skip
    return b.finish([x], ["y"])


def gen_conv_chain(rng, seed: int) -> Graph:
    """Two 3x3 convolutions, the second fed only by the first, half of them with a residual
    ADD (a 1x1 strided convolution on the skip path when the first one strides): the C
    backend computes them row by row through a window (FUSED_CONV_CONV)."""
    while True:
        h, w = int(rng.integers(5, 33)), int(rng.integers(5, 33))
        c = int(rng.choice([4, 8, 16, 32]))
        mid = int(rng.choice([8, 16, 24, 32, 48]))
        stride = 1 if rng.random() < 0.7 else 2
        if h * w * mid * 9 * (c + mid) <= 2_000_000:
            break
    if rng.random() < 0.5:
        return G.conv_chain(seed, h, w, c, mid, int(rng.choice([4, 8, 16])))
    return G.residual(seed, h, w, c, mid if stride == 2 else c, stride, stride == 2)


def _odd_window(rng, k: tuple[int, int], s: tuple[int, int], d: tuple[int, int], one_d: bool
                ) -> tuple[int, int]:  # fmt: skip
    """Input rows and columns for kernel ``k``: often odd, one row (or column) for 1-D
    kernels when ``one_d``."""
    span = [(k[i] - 1) * d[i] + 1 for i in (0, 1)]
    h, w = (int(rng.integers(span[i], 48)) | (s[i] > 1) for i in (0, 1))
    if one_d and k[0] == 1:
        h = 1
    elif one_d and k[1] == 1:
        w = 1
    return h, w


def _dilation(rng, k: tuple[int, int]) -> tuple[int, int]:
    """Dilation 2 now and then, along the axes the kernel spans."""
    if rng.random() < 0.15:
        return (1 if k[0] == 1 else 2, 1 if k[1] == 1 else 2)
    return (1, 1)


def gen_conv_geo(rng, seed: int) -> Graph:
    """A CONV_2D of the geometry first layers of audio and IMU models have: 1xN and Nx1
    kernels (often over one row), few input channels (often one), odd sizes with stride 2,
    dilation; TFLM runs them all through arm_convolve_s8's im2col (--tflm only)."""
    while True:
        n = int(rng.choice([3, 5, 7, 9]))
        k = tuple(rng.choice([(1, n), (n, 1), (3, 3), (5, 5), (3, 3), (7, 7), (10, 4)]))
        s = tuple(rng.choice([(1, 1), (1, 1), (2, 2), (1, 2), (2, 1)]))
        d = _dilation(rng, k)
        cin = int(rng.choice([1, 1, 2, 3, 4, 5, 6, 8, 12, 16, 24]))
        oc = int(rng.choice([1, 3, 5, 7, 8, 12, 16, 24, 32, 48]))
        h, w = _odd_window(rng, k, s, d, rng.random() < 0.5)
        pads = _pads(rng, h, w, k, s, d)
        oh, ow = _fits(h, w, k, s, d, pads)
        if oh >= 1 and ow >= 1 and oh * ow * oc * k[0] * k[1] * cin <= 400_000:
            break
    act = str(rng.choice(["NONE", "RELU", "RELU6"]))
    return G.conv(seed, h, w, cin, oc, k, s, d, pads, act)


def gen_conv_1d(rng, seed: int) -> Graph:
    """A CONV_2D over one row (a 1-D signal as a 1xW image): 1xN kernels, stride 1 or 2,
    input channels often a multiple of 4 (with Helium then arm_convolve_1_x_n_s8), SAME or
    exactly fitting VALID pads (--tflm only)."""
    while True:
        n = int(rng.choice([2, 3, 5, 7, 9]))
        s = int(rng.choice([1, 1, 2]))
        cin = int(rng.choice([4, 8, 12, 16, 24, 32, 1, 3, 6]))
        oc = int(rng.choice([3, 7, 8, 16, 24, 32]))
        w = int(rng.integers(n, 160))
        pads = _pads(rng, 1, w, (1, n), (1, s), (1, 1))
        if any(pads) and pads[:2] != (0, 0) or (not any(pads) and (w - n) % s):
            continue  # SAME along the row, or VALID without a remainder
        ow = _out(w, n, s, 1, pads[2], pads[3])
        if ow >= 1 and ow * oc * n * cin <= 300_000:
            break
    act = str(rng.choice(["NONE", "RELU", "RELU6"]))
    return G.conv(seed, 1, w, cin, oc, (1, n), (1, s), (1, 1), pads, act)


def gen_act_range(rng, seed: int) -> Graph:
    """An int8 LOGISTIC / TANH whose input scale spans 0.01 to 0.5 (log-uniform), so that
    from none to most of the evenly spread inputs lie beyond TFLM's input_range_radius and
    only saturate; recurrent sizes half the time (--tflm only)."""
    op = str(rng.choice(["LOGISTIC", "TANH"]))
    shape = (1, int(rng.integers(1, 129))) if rng.random() < 0.5 else _shape(rng, 8_000)
    g = G.unary(seed, op, shape)
    scale = float(np.exp(rng.uniform(np.log(0.01), np.log(0.5))))
    g.tensors[g.inputs[0]].quant = QuantParams([scale], [int(rng.integers(-30, 31))])
    return g


def gen_dw_geo(rng, seed: int) -> Graph:
    """A DEPTHWISE_CONV_2D of unusual geometry: depth multipliers (multiples of 4 and
    others) often on one input channel, 1xN and Nx1 kernels over one row or column, odd
    sizes with stride 2, dilation (--tflm only: CMSIS-NN's multiplier, generic, 3x3 and
    im2col paths)."""
    while True:
        n = int(rng.choice([3, 5, 7, 9]))
        k = tuple(rng.choice([(1, n), (n, 1), (3, 3), (3, 3), (5, 5), (5, 3), (10, 4)]))
        s = tuple(rng.choice([(1, 1), (1, 1), (2, 2), (1, 2), (2, 1)]))
        d = _dilation(rng, k)
        c = int(rng.choice([1, 1, 1, 2, 3, 5, 7, 8, 12, 16, 24]))
        mult = int(rng.choice([1, 1, 2, 3, 4, 4, 6, 8, 8, 12, 16]))
        h, w = _odd_window(rng, k, s, d, rng.random() < 0.5)
        pads = _pads(rng, h, w, k, s, d)
        oh, ow = _fits(h, w, k, s, d, pads)
        if oh >= 1 and ow >= 1 and oh * ow * c * mult * k[0] * k[1] <= 300_000:
            break
    act = str(rng.choice(["NONE", "RELU", "RELU6"]))
    return G.conv(seed, h, w, c, 0, k, s, d, pads, act, "DEPTHWISE_CONV_2D", mult)


#: multiply-accumulates per generated recurrent layer at most (QEMU time, build size)
RNN_MACS = 1_500_000


def gen_recurrent(rng, seed: int, op: str) -> Graph:
    """An int8 LSTM / GRU / RNN layer (tests/rnn_graphs.py: seeded float weights, tinyc's
    PTQ on seeded data) of sizes like those of keyword spotting and denoising models:
    hidden 4-128, input 1-96, 1-40 steps, batch 1-2, time-major or not, reversed, LSTM cell
    clipping, GRU linear_before_reset both ways, RNN tanh / sigmoid / relu, final-state
    outputs, initial states given at run time, and the streaming form (one step, the state
    in state tensors)."""
    import rnn_graphs as RG

    from tinyc.passes.streaming import to_streaming

    gates = RG.GATES[op]
    while True:
        common_hidden = int(rng.choice([8, 16, 20, 24, 32, 48, 64, 96, 128]))
        hidden = int(rng.choice([int(rng.integers(4, 129)), common_hidden]))
        common_input = int(rng.choice([1, 3, 8, 10, 13, 16, 28, 32, 40, 64, 96]))
        inp = int(rng.choice([int(rng.integers(1, 97)), common_input]))
        steps = int(rng.choice([int(rng.integers(1, 41)), int(rng.integers(1, 7))]))
        batch = 1 if rng.random() < 0.8 else 2
        if batch * steps * gates * hidden * (inp + hidden) <= RNN_MACS:
            break
    attrs: dict[str, Any] = {}
    if op == "LSTM" and rng.random() < 0.25:
        attrs["cell_clip"] = float(rng.choice([0.5, 1.0, 3.0]))
    if op == "GRU":
        attrs["linear_before_reset"] = bool(rng.random() < 0.5)
    if op == "RNN":
        attrs["activations"] = (str(rng.choice(["Tanh", "Sigmoid", "Relu"])),)
    stream = rng.random() < 0.2
    final = rng.random() < 0.3
    case = RG.Case(
        op, batch, steps, inp, hidden,
        time_major=bool(rng.random() < 0.2),
        reverse=bool(rng.random() < 0.2) and not stream,
        final_state=final,
        sequence=not final or rng.random() < 0.6,
        state_input=bool(rng.random() < 0.2) and not stream,
        attrs=attrs,
        seed=seed,
    )  # fmt: skip
    g = RG.int8_graph(case)
    if stream:
        g = to_streaming(g).step
    g.name = f"{op.lower()}_{seed}"
    return g


@dataclass(frozen=True)
class Family:
    name: str
    make: Callable[[Any, int], Graph]
    layers: int  # layers measured per core
    per_graph: int  # layers per build
    keep: bool = False  # keep the layers for the next core (slow to make: quantized here)
    #: a kernel costed inside another's layers (a borrowed part of their features): fitted
    #: alone, on what the layers' other coefficients leave of the measured instructions
    residual: str | None = None


FAMILIES = [
    Family("conv", gen_conv, 150, 12),
    Family("fc", gen_fc, 70, 12),
    Family("fc_small", gen_fc_small, 40, 20),
    Family("dw", gen_dw, 90, 12),
    Family("dw_generic", lambda r, s: gen_dw(r, s, "generic"), 24, 12),
    Family("dwm", lambda r, s: gen_dw(r, s, "mult"), 60, 12),
    Family("avgpool", lambda r, s: gen_pool(r, s, "AVERAGE_POOL_2D"), 30, 15),
    Family("maxpool", lambda r, s: gen_pool(r, s, "MAX_POOL_2D"), 24, 12),
    Family("addsub", lambda r, s: gen_binary(r, s, ("ADD", "SUB")), 30, 15),
    Family("mul", lambda r, s: gen_binary(r, s, ("MUL",)), 24, 12),
    Family("lut", gen_lut, 24, 12),
    Family("small_ops", gen_small_ops, 30, 15),
    Family("softmax", gen_softmax, 20, 10),
    Family("mean", gen_mean, 20, 10),
    Family("join", gen_join, 24, 12),
    Family("split", gen_split, 24, 12),
    Family("pad", gen_pad, 16, 8),
    Family("transpose", gen_transpose, 16, 8),
    Family("quantize", lambda r, s: gen_float_io(r, s, "QUANTIZE"), 12, 6),
    Family("dequantize", lambda r, s: gen_float_io(r, s, "DEQUANTIZE"), 12, 6),
    Family("lstm", lambda r, s: gen_recurrent(r, s, "LSTM"), 48, 8, keep=True),
    Family("gru", lambda r, s: gen_recurrent(r, s, "GRU"), 40, 8, keep=True),
    Family("rnn", lambda r, s: gen_recurrent(r, s, "RNN"), 32, 8, keep=True),
]
#: layers measured to check the model, not fitted: fused pairs are costed from the fits of
#: their two kernels (a row producer per output row of the convolution)
CHECKS = [Family("conv_dw", gen_conv_dw, 24, 6), Family("conv_chain", gen_conv_chain, 18, 6)]

# ---- sparse kernels (tinyc_sparse.h, tinyc/backends/cmsis/emit/sparse.py) -------------------
# Layers whose weights hold random unstructured zeros (30-97 %), measured with the sparse
# kernels forced (TINYC_SPARSE=on: only layers with at least a quarter of zeros, so the dense
# families' random weights keep their dense kernels). Refit with
#     python bench/estimate_calibrate.py --families sparse_fc,sparse_conv,sparse_fc_grouped \
#         --merge --no-boards
# (sparse_rnn_grouped: the grouped gate loops of recurrent layers, fitted on what the
# recurrent kernels' own fit leaves, so after lstm,gru,rnn)


def _sparsify(g: Graph, rng) -> Graph:
    """Zero a random 30-97 % of the weights (unstructured), renamed so its layer is its own."""
    w = g.tensors["w"]
    keep = rng.random(w.data.shape) >= float(rng.uniform(0.3, 0.97))
    w.data = np.where(keep, w.data, 0).astype(w.data.dtype)
    return g


def gen_sparse_fc(rng, seed: int) -> Graph:
    return _sparsify(gen_fc(rng, seed) if rng.random() < 0.7 else gen_fc_small(rng, seed), rng)


def gen_sparse_conv(rng, seed: int) -> Graph:
    while True:
        g = gen_conv(rng, seed)
        if g.tensors["x"].shape[3] == g.tensors["w"].shape[3]:  # one group
            return _sparsify(g, rng)


def gen_sparse_fc_grouped(rng, seed: int) -> Graph:
    """Zeros in whole columns of groups of four output channels (--prune-block 4), 30-97 %
    of the columns of each group: the grouped encoding (tinyc_spfcg_s8)."""
    from tinyc.backends.cmsis.emit.sparse import GROUP

    g = gen_fc(rng, seed) if rng.random() < 0.7 else gen_fc_small(rng, seed)
    w = g.tensors["w"]
    out_c, k = w.data.shape
    sparsity = float(rng.uniform(0.3, 0.97))
    while True:  # (a tiny layer may keep every column by chance: it would run dense)
        keep = rng.random((-(-out_c // GROUP), k)) >= sparsity
        if keep.mean() <= 0.7:
            break
    keep = np.repeat(keep, GROUP, axis=0)[:out_c]
    w.data = np.where(keep, np.where(w.data == 0, 1, w.data), 0).astype(w.data.dtype)
    return g


def gen_sparse_rnn_grouped(rng, seed: int) -> Graph:
    """An LSTM / GRU / RNN layer (gen_recurrent) whose gate matrices lost 30-97 % of their
    (four units, column) blocks (--prune-block 4): the grouped gate loops of tinyc_rnn.h."""
    import rnn_graphs as RG

    g = gen_recurrent(rng, seed, str(rng.choice(["LSTM", "GRU", "RNN"])))
    RG.prune_gates(g, float(rng.uniform(0.3, 0.97)), rng, 4)
    g.name = f"sprnn_{seed}"
    return g


os.environ.setdefault("TINYC_SPARSE", "on")
SPARSE_FAMILIES = [
    Family("sparse_fc", gen_sparse_fc, 60, 12),
    Family("sparse_conv", gen_sparse_conv, 48, 8),
    Family("sparse_fc_grouped", gen_sparse_fc_grouped, 40, 8),
    Family("sparse_rnn_grouped", gen_sparse_rnn_grouped, 40, 8, residual=RNN_GROUPED),
]
FAMILIES += SPARSE_FAMILIES
# ---- end of the sparse kernels' block ------------------------------------------------------

# ---- Kronecker kernel (kron_s8.c, tinyc/backends/cmsis/emit/kronecker.py) -------------------
# KRONECKER_FC layers of random factor shapes (R = 1..3, rows 1..8), as --kronecker and
# tinyc.torch.KroneckerLinear make them; kron_check: held-out shapes the fit does not see.
# Refit with
#     python bench/estimate_calibrate.py --families kron,kron_check --merge --no-boards


def gen_kron(rng, seed: int) -> Graph:
    """An int8 KRONECKER_FC: random int8 factors A [R, p, q], B [R, s, t], the intermediate
    scale a random multiple of its floor, the output scale from the accumulator's spread."""
    from tinyc.ir.ops import get_op
    from tinyc.ir.ops.kronecker import inner_max_for

    dims = [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 13, 16, 20, 24, 25, 32, 40, 48, 64]
    while True:
        rank = int(rng.integers(1, 4))
        pool = dims[:8] if rng.random() < 0.3 else dims  # tiny layers: the fixed costs
        p, q, s, t = (int(rng.choice(pool)) for _ in range(4))
        rows = 1 if rng.random() < 0.7 else int(rng.integers(2, 9))
        if rows * rank * (q * t * s + p * q * s) <= 250_000 and 2 * rank * q * s <= 16_384:
            break
    b = G.Builder(f"kron_{seed}", seed)
    x = b.act("x", (rows, q * t))
    a = b.weights("a", (rank, p, q), 0)
    w = b.weights("b", (rank, s, t), 0)
    ins = [x, a, w] + ([b.bias("bias", p * s)] if rng.random() < 0.8 else [])
    y = b.act("y", (rows, p * s))
    sx = float(b.g.tensors[x].quant.s)
    floor = float((sx * b.g.tensors[a].quant.scale * b.g.tensors[w].quant.scale).max())
    inner = float(np.float32(floor * rng.uniform(1.0, 300.0)))
    act = str(rng.choice(["NONE", "RELU", "RELU6"]))
    b.node("KRONECKER_FC", ins, [y], activation=act, inner_scale=inner,
           inner_max=inner_max_for(rank, q))  # fmt: skip
    g = b.finish([x], [y])
    op = get_op("KRONECKER_FC")
    z = op.inner_int8(g.nodes[0], g, random_inputs(g, 1)[0], g.tensors[w].data)
    acc = np.einsum("rij,nrjk->nik", g.tensors[a].data.astype(np.int64), z)
    g.tensors[y].quant.scale[:] = np.float32(max(4 * float(acc.std()), 1.0) * inner / 127)
    return g


FAMILIES.append(Family("kron", gen_kron, 48, 8))
CHECKS.append(Family("kron_check", gen_kron, 12, 6))
# ---- end of the Kronecker kernel's block ---------------------------------------------------


def _plain(v: Any) -> Any:
    """numpy scalars in attributes -> Python values (graphs are saved as JSON)."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, tuple | list):
        return type(v)(_plain(x) for x in v)
    return v


def merge(name: str, graphs: list[Graph]) -> Graph:
    """One graph running every layer of ``graphs`` on its own inputs and outputs."""
    m = Graph(name=name, source_format="test")
    for i, g in enumerate(graphs):
        p = f"l{i}_"
        for t in g.tensors.values():
            t2 = copy.deepcopy(t)
            t2.name = p + t.name
            t2.shape = tuple(int(d) for d in t.shape)
            m.add_tensor(t2)
        for n in g.nodes:
            n2 = copy.deepcopy(n)
            n2.name = p + n.name
            n2.inputs = [p + x if x else x for x in n.inputs]
            n2.outputs = [p + x if x else x for x in n.outputs]
            n2.attrs = {k: _plain(v) for k, v in n2.attrs.items()}
            m.nodes.append(n2)
        m.inputs += [p + x for x in g.inputs]
        m.outputs += [p + x for x in g.outputs]
    verify(m)
    return m


#: bytes of graph inputs and outputs per calibration build (every layer's I/O stays live, and
#: the arena must fit the smallest board calibrated: the RP2040's 256 KB)
IO_BUDGET = 120_000


def _io_bytes(g: Graph) -> int:
    return sum(g.tensors[n].nbytes for n in (*g.inputs, *g.outputs))


_KEPT: dict[tuple[str, int, int, bool], Graph] = {}


def family_layer(fam: Family, i: int, io_bytes: int) -> Graph:
    """Layer ``i`` of the family: seeded by the family's name and i, redrawn until its inputs
    and outputs take at most ``io_bytes``."""
    key = (fam.name, i, io_bytes, GENERAL_REQUANT[0])
    if key in _KEPT:
        return _KEPT[key]
    seed = int(hashlib.sha256(f"{fam.name}:{i}".encode()).hexdigest()[:8], 16)
    rng = np.random.default_rng(seed)
    layer = fam.make(rng, seed % 100_000)
    while _io_bytes(layer) > io_bytes:
        layer = fam.make(rng, seed % 100_000)
    if fam.keep:
        _KEPT[key] = layer
    return layer


def family_graphs(fam: Family, scale: float) -> Iterator[Graph]:
    n = max(fam.per_graph, int(fam.layers * scale))
    batch: list[Graph] = []
    count = 0
    for i in range(n):
        layer = family_layer(fam, i, IO_BUDGET // 2)
        if batch and (len(batch) == fam.per_graph or
                      sum(map(_io_bytes, batch)) + _io_bytes(layer) > IO_BUDGET):  # fmt: skip
            yield merge(f"cal_{fam.name}_{count}", batch)
            batch, count = [], count + 1
        batch.append(layer)
    if batch:
        yield merge(f"cal_{fam.name}_{count}", batch)


def baseline_graph() -> Graph:
    return G.unary(1, "RELU", (1, 16))


# --------------------------------------------------------------------------------------------
# measuring one build


def gcc_flags(board: Board, arch: str | None) -> list[str]:
    return arch.split() if arch else board.gcc_flags


def has_dsp(flags: list[str]) -> bool:
    """Whether gcc targets the DSP extension with ``flags`` (what TINYC_DSP tests)."""
    macros = subprocess.run(
        ["arm-none-eabi-gcc", *flags, "-dM", "-E", "-x", "c", "-"],
        input="", capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return "__ARM_FEATURE_DSP 1" in macros


def inline_limits(flags: list[str]) -> tuple[int, int]:
    """The largest constant sizes gcc inlines memcpy / memset (constant value) for ``flags``."""
    sizes = [*range(1, 129)]
    src = "#include <string.h>\n" + "".join(
        f"void c{n}(char *d, const char *s) {{ memcpy(d, s, {n}); }}\n"
        f"void s{n}(char *d) {{ memset(d, 5, {n}); }}\n"
        for n in sizes
    )
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "p.c").write_text(src)
        asm = subprocess.run(
            ["arm-none-eabi-gcc", *flags, "-O2", "-S", "-o", "-", "p.c"],
            cwd=d, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    calls: dict[str, bool] = {}
    fn = ""
    for line in asm.splitlines():
        if m := re.match(r"^([cs]\d+):", line):
            fn = m.group(1)
            calls[fn] = False
        elif re.search(r"\tbl?\t(memcpy|memset)\b", line):
            calls[fn] = True

    def limit(prefix: str) -> int:
        best = 0
        for n in sizes:
            if calls.get(f"{prefix}{n}"):
                break
            best = n
        return best

    return limit("c"), limit("s")


_TYPEDEF = re.compile(r"^\} (tinyc_\w+_t);", re.M)


def runtime_struct_sizes(flags: list[str]) -> dict[str, int]:
    """sizeof of every struct type the runtime headers declare (the parameter blocks model.c
    holds as constants), as gcc lays them out for ``flags``."""
    root = Path(str(resources.files("tinyc") / "runtime"))
    headers = sorted(root.glob("*.h"), key=lambda p: (p.name != "tinyc_api.h", p.name))
    types = {h.name: _TYPEDEF.findall(h.read_text()) for h in headers}
    names = [t for ts in types.values() for t in ts]
    src = "".join(f'#include "{h}"\n' for h, ts in types.items() if ts) + "".join(
        f"const unsigned tinyc_sizeof_{t} = sizeof({t});\n" for t in names
    )
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "s.c").write_text(src)
        asm = subprocess.run(
            ["arm-none-eabi-gcc", *flags, "-std=c99", "-O2", "-I", str(root), "-S", "-o", "-",
             "s.c"], cwd=d, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    sizes = dict(re.findall(r"^tinyc_sizeof_(\w+):\s*\n\s*\.word\s+(\d+)", asm, re.M))
    return {t: int(sizes[t]) for t in names if t in sizes}


_INSEC = re.compile(r"^ (\S+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$")
_CONT = re.compile(r"^\s{10,}0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$")
_NAME = re.compile(r"^ (\S+)$")
_FILL = re.compile(r"^ \*fill\*\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)")
_OUT = re.compile(r"^(\.\S+)(?:\s+0x([0-9a-f]+)\s+0x([0-9a-f]+))?")


@dataclass
class InputSection:
    out: str  # output section
    name: str
    addr: int
    size: int  # with the padding that follows it
    obj: str


def read_map(path: Path) -> list[InputSection]:
    """Input sections of a GNU ld map, each with the fill that follows it."""
    text = path.read_text()
    text = text[text.index("Linker script and memory map") :]
    out_sec = ""
    pending: str | None = None
    secs: list[InputSection] = []
    for line in text.splitlines():
        if m := _FILL.match(line):
            if secs and secs[-1].out == out_sec:
                secs[-1].size += int(m.group(2), 16)
            continue
        if pending is not None:
            m = _CONT.match(line)
            if m:
                secs.append(InputSection(out_sec, pending, int(m.group(1), 16),
                                         int(m.group(2), 16), m.group(3).strip()))  # fmt: skip
            pending = None
            continue
        if line.startswith(" *(") or not line.strip():
            continue
        if m := _INSEC.match(line):
            secs.append(InputSection(out_sec, m.group(1), int(m.group(2), 16),
                                     int(m.group(3), 16), m.group(4).strip()))  # fmt: skip
        elif m := _NAME.match(line):
            pending = m.group(1)
        elif line.startswith(".") and (m := _OUT.match(line)):
            out_sec = m.group(1)
    return [s for s in secs if s.size > 0 and s.obj != "linker stubs"]


def section_kinds(elf: Path) -> dict[str, str]:
    """Output section -> text / rodata / data / bss / arena / stack (as tinyc's elf_sizes)."""
    kinds = {}
    with open(elf, "rb") as f:
        for s in ELFFile(f).iter_sections():
            flags = s["sh_flags"]
            if not flags & SH_FLAGS.SHF_ALLOC:
                continue
            if s.name == ".tinyc_arena":
                kinds[s.name] = "arena"
            elif s.name == ".stack":
                kinds[s.name] = "stack"
            elif flags & SH_FLAGS.SHF_EXECINSTR:
                kinds[s.name] = "text"
            elif not flags & SH_FLAGS.SHF_WRITE:
                kinds[s.name] = "rodata"
            elif s["sh_type"] == "SHT_NOBITS":
                kinds[s.name] = "bss"
            else:
                kinds[s.name] = "data"
    return kinds


def function_symbols(elf: Path) -> dict[str, int]:
    out = {}
    with open(elf, "rb") as f:
        e = ELFFile(f)
        symtab = e.get_section_by_name(".symtab")
        assert isinstance(symtab, SymbolTableSection)
        for s in symtab.iter_symbols():
            if s["st_info"]["type"] == "STT_FUNC":
                out[s.name] = s["st_value"] & ~1
            elif s["st_info"]["type"] == "STT_OBJECT":
                out.setdefault(s.name, s["st_value"])
    return out


def object_sizes(elf: Path) -> dict[str, int]:
    out = {}
    with open(elf, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        assert isinstance(symtab, SymbolTableSection)
        for s in symtab.iter_symbols():
            if s["st_info"]["type"] == "STT_OBJECT":
                out[s.name] = s["st_size"]
    return out


def read_su(build: Path) -> dict[str, int]:
    """Static frame sizes (bytes) per function from gcc's -fstack-usage files."""
    frames = {}
    for su in build.glob("emu/obj/**/*.su"):
        for line in su.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 2:
                frames[parts[0].rsplit(":", 1)[-1]] = int(parts[1])
    return frames


def unit_of(sec: InputSection) -> tuple[str, str]:
    """(owner, unit name): owner is model / runtime / lib / harness / test_data."""
    obj = sec.obj
    if "/obj/model/" in obj:
        return "model", sec.name
    if "/obj/runtime/" in obj:
        return "runtime", f"{Path(obj).name}:{sec.name}"
    if "/obj/app/test_data" in obj:
        return "test_data", sec.name
    if "/obj/" in obj:
        return "harness", f"{Path(obj).name}:{sec.name}"
    m = re.search(r"([^/]+\.a)\((.+)\)$", obj)
    name = f"{m.group(1)}({m.group(2)})" if m else Path(obj).name
    return "lib", f"{name}:{sec.name}"


def window_count(elf: Path, machine: str, work: Path, begin: int, end: int) -> int:
    log = work / "plugin.log"
    cmd = [
        qemu_binary(), *qemu_args(machine), "-kernel", str(elf),
        "-plugin", f"{ensure_plugin().path},begin={begin:#x},end={end:#x}", "-d", "plugin",
        "-D", str(log),
    ]  # fmt: skip
    r = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=300)
    m = re.search(r"windows=(\d+) count=(\d+)", log.read_text() if log.exists() else "")
    if r.returncode != 0 or not m or m.group(1) != "1":
        raise RuntimeError(f"window run failed ({r.returncode}): {r.stderr[-300:]}")
    return int(m.group(2))


def _tree_digest(sub: str) -> str:
    h = hashlib.sha256()
    root = Path(str(resources.files("tinyc") / sub))
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


def runtime_digest() -> str:
    return _tree_digest("runtime")


def template_digest() -> str:
    return _tree_digest("templates")


#: layer families whose fusions are all made (in a calibration build every layer's inputs and
#: outputs stay live, so fusing would not shrink the arena and the backend would not fuse)
FUSE_ALL = ("cal_conv_chain_",)


def generate(g: Graph, kernels: str) -> Any:
    """The C backend's model for ``g``, as tinyc compile makes it (FUSE_ALL: fused)."""
    fuse = {f.key for f in fusions(g)} if g.name.startswith(FUSE_ALL) else None
    return generate_model(g, g.name, kernels, fuse=fuse)


def write_project(g: Graph, board: Board, kernels: str, proj: Path, expected: bool) -> None:
    """What tinyc compile writes for the C backend, with the kernel variant chosen here
    (the M55 without Helium runs the DSP kernels on a board that has Helium)."""
    gen = generate(g, kernels)
    if proj.exists():
        shutil.rmtree(proj)
    proj.mkdir(parents=True)
    for rel, text in {**gen.files, **runtime_files(gen.runtime_sources)}.items():
        (proj / rel).parent.mkdir(parents=True, exist_ok=True)
        (proj / rel).write_text(text)
    inputs = random_inputs(g, 0)
    ext_in = [to_external(g, n, x) for n, x in zip(g.inputs, inputs, strict=True)]
    ext_out = None
    if expected:
        ref = run_reference(g, inputs)
        ext_out = [to_external(g, n, ref[n]) for n in g.outputs]
    render_project(proj, board, g.name, ext_in, ext_out, arena_bytes=gen.plan.arena_bytes,
                   stack_bytes=CompileOptions(board=board.name).stack_bytes)  # fmt: skip


def _is_struct(d: Any) -> bool:
    """Whether a constant of model.c is one struct (not an array of scalars)."""
    return d.ctype.endswith("_t") and d.count == 1 and d.ctype not in SCALAR_BYTES


def measure(g: Graph, board: Board, arch: str | None, kernels: str, work: Path, cache: Path,
            target: str = "emu", run: bool = True) -> dict[str, Any]:  # fmt: skip
    """Build and measure ``g`` on ``board`` (gcc flags ``arch``, ``kernels`` variant); cached."""
    gen = generate(g, kernels)
    key = hashlib.sha256(
        (gen.files["model/model.c"] + board.name + str(arch) + target + str(run)
         + runtime_digest() + template_digest()
         + ("helpers-called" if g.name.startswith(FUSE_ALL) else "")).encode()
    ).hexdigest()[:24]  # fmt: skip
    cached = cache / f"{key}.json"
    if cached.exists():
        return json.loads(cached.read_text())
    proj = work / "project"
    write_project(g, board, kernels, proj, expected=target == "board")
    make_vars = {"EXTRA_CFLAGS": "-fstack-usage"}
    if arch:
        make_vars["BOARD_ARCH"] = arch
    if board.boot2 and target == "board":  # a stand-in second-stage bootloader: sizes only
        boot2 = work / "boot2.bin"
        boot2.write_bytes(bytes(256))
        make_vars["BOOT2"] = str(boot2)
    build = proj / "build"
    elf = build_firmware(proj, target, build_dir=build, make_vars=make_vars)
    sections = read_map(elf.with_suffix(".map"))
    kinds = section_kinds(elf)
    units: dict[str, dict[str, Any]] = {}
    node_code: dict[int, int] = {}
    helper_text: dict[str, int] = {}
    invoke_text = 0
    model_rodata = 0
    for s in sections:
        kind = kinds.get(s.out)
        if kind is None:
            continue
        owner, unit = unit_of(s)
        if owner == "model":
            if m := re.match(r"\.text\.tinyc_node_(\d+)$", s.name):
                node_code[int(m.group(1))] = s.size
            elif s.name == ".text.tinyc_invoke":
                invoke_text = s.size
            elif kind == "text" and s.name.startswith(".text."):
                helper_text[s.name[len(".text.") :]] = s.size
            elif kind == "rodata":
                model_rodata += s.size
            continue
        u = units.setdefault(unit, {"owner": owner, "kind": kind, "bytes": 0})
        u["bytes"] += s.size
    frames = read_su(build)
    src = read_model_c(gen.files["model/model.c"])
    sizes = elf_sizes(elf)
    objs = object_sizes(elf)
    rec: dict[str, Any] = {
        "sizes": sizes,
        "units": units,
        "invoke": {
            "text": invoke_text,
            "calls": len(src.calls),
            "frame": frames.get("tinyc_invoke", 0),
        },
        "model_rodata": model_rodata,
        "struct_sizes": {
            d.ctype: objs[d.name] for d in src.consts if d.name in objs and _is_struct(d)
        },  # fmt: skip
        "descriptor_bytes": objs.get("tinyc_inputs", 0) // max(len(g.inputs), 1),
        "nodes": {},
    }
    for i in src.calls:
        # a node's code includes the helpers it passes on or calls (a fused layer's row
        # producer, its residual ADD)
        helpers = {a.strip() for k, args in src.args.get(i, []) for a in (k, *args)}
        helpers &= set(src.helpers)
        code = node_code.get(i, 0) + sum(helper_text.get(h, 0) for h in helpers)
        rec["nodes"][str(i)] = {"code": code, "frame": frames.get(f"tinyc_node_{i}", 0)}
    if run:
        machine = board.twin().qemu_machine
        assert machine is not None
        inputs = [to_external(g, n, x) for n, x in zip(g.inputs, random_inputs(g, 0), strict=True)]
        res = run_emulated(elf, board, inputs)
        rec["total_instructions"] = res.instructions
        rec["stack"] = {"used": res.stack_bytes, "inference": res.stack_inference_bytes}
        syms = function_symbols(elf)
        order = sorted(src.calls)
        qwork = work / "qemu"
        qwork.mkdir(exist_ok=True)
        for i, x in enumerate(inputs):
            (qwork / f"input_{i}.bin").write_bytes(np.ascontiguousarray(x).tobytes())
        for k, i in enumerate(order):
            end = (
                syms[f"tinyc_node_{order[k + 1]}"]
                if k + 1 < len(order)
                else syms["tinyc_bench_end"]
            )
            n = window_count(elf, machine, qwork, syms[f"tinyc_node_{i}"], end)
            rec["nodes"][str(i)]["instructions"] = n
    cached.write_text(json.dumps(rec))
    return rec


# --------------------------------------------------------------------------------------------
# fitting


def fit(
    rows: list[dict[str, float]], y: list[float], relative: bool, base: list[float] | None = None
) -> tuple[dict[str, float], dict]:
    """Non-negative least squares of y on the features; relative=True weighs by 1/y.
    ``base``: a part of each y already accounted for (by coefficients held fixed)."""
    names = sorted({k for r in rows for k in r})
    a = np.array([[r.get(k, 0.0) for k in names] for r in rows], dtype=np.float64)
    b = np.array(y, dtype=np.float64)
    b0 = np.zeros_like(b) if base is None else np.array(base, dtype=np.float64)
    w = 1.0 / np.maximum(b, 1.0) if relative else np.ones_like(b)
    scale = np.maximum(np.abs(a).max(axis=0), 1e-12)
    x, _ = nnls(a * w[:, None] / scale, (b - b0) * w, maxiter=50 * len(names) + 500)
    coef = x / scale
    pred = a @ coef + b0
    err = (pred - b) / np.maximum(b, 1.0)
    stats = {
        "samples": len(b),
        "median_abs_rel_err": round(float(np.median(np.abs(err))), 4) if len(b) else 0.0,
        "max_abs_rel_err": round(float(np.max(np.abs(err))), 4) if len(b) else 0.0,
        "total_rel_err": round(float((pred.sum() - b.sum()) / max(b.sum(), 1.0)), 4),
    }
    return {k: round(float(v), 6) for k, v in zip(names, coef, strict=True) if v > 0}, stats


def fit_residual(samples: list[tuple[str, str, Any, float]], kernels: dict[str, Any]
                 ) -> dict[str, Any]:  # fmt: skip
    """Fits of the kernels measured only as a part of other kernels' layers (Family.residual):
    each sample's other features costed with ``kernels``' coefficients, the part's own
    features fitted on the rest."""
    by: dict[str, tuple[list, list, list]] = defaultdict(lambda: ([], [], []))

    def coef(name: str) -> dict[str, float]:
        if name not in kernels:
            raise RuntimeError(f"{name} is not calibrated (measure its family first)")
        return kernels[name]["instructions"]

    for layer_kernel, part, f, y in samples:
        base = sum(coef(layer_kernel).get(k, 0.0) * v for k, v in f.insn.items())
        for other, feats in f.borrowed.items():
            if other != part:
                base += sum(coef(other).get(k, 0.0) * v for k, v in feats.items())
        rows, ys, bases = by[part]
        rows.append(f.borrowed[part])
        ys.append(y)
        bases.append(base)
    out: dict[str, Any] = {}
    for part, (rows, ys, bases) in by.items():
        ic, stats = fit(rows, ys, relative=True, base=bases)
        out[part] = {"instructions": ic, "code": {}, "frame": {}, "frame_max": 0,
                     "callee_stack": 0, "units": [], "fit": {"instructions": stats}}  # fmt: skip
    return out


def crossval(rows: list[dict[str, float]], y: list[float], relative: bool, folds: int = 5) -> float:
    """Median absolute relative error of held-out layers (k-fold): how the model generalizes."""
    if len(y) < 2 * folds:
        return float("nan")
    idx = np.arange(len(y))
    errs = []
    for f in range(folds):
        test = idx[idx % folds == f]
        train = idx[idx % folds != f]
        coef, _ = fit([rows[i] for i in train], [y[i] for i in train], relative)
        for i in test:
            pred = sum(coef.get(k, 0.0) * v for k, v in rows[i].items())
            errs.append(abs(pred - y[i]) / max(y[i], 1.0))
    return round(float(np.median(errs)), 4)


# --------------------------------------------------------------------------------------------
# TFLite Micro (--tflm): tinyc's TFLM backend built against a TFLM checkout

#: families measured with TFLM only: the geometries whose CMSIS-NN paths the C backend's
#: families do not reach often enough (depth multipliers, 1xN / Nx1, odd strided, dilated),
#: and int8 LOGISTIC / TANH inputs that mostly saturate (TFLM skips their fixed-point math)
TFLM_FAMILIES = [
    Family("conv_geo", gen_conv_geo, 40, 2),
    Family("conv_1d", gen_conv_1d, 16, 1),
    Family("dw_geo", gen_dw_geo, 48, 2),
    Family("act_range", gen_act_range, 48, 2),
]
#: layers per TFLM build and per family (each build is one measured inference)
TFLM_PER_GRAPH = {"conv": 1, "fc": 1, "dw": 1, "dw_generic": 1, "dwm": 1, "conv_1d": 1}
TFLM_LAYERS = {"conv": 48, "fc": 24, "dw": 32, "dw_generic": 8, "dwm": 32, "conv_geo": 40,
               "dw_geo": 48, "lut": 40, "join": 24, "split": 30, "addsub": 24,
               "small_ops": 50, "act_range": 48}  # fmt: skip
TFLM_DEFAULT_LAYERS = 16
#: families the TFLM calibration leaves out: float I/O (the TFLM project's harness differs)
#: and the recurrent layers (TFLM runs them as other operators or CMSIS-NN's LSTM)
TFLM_SKIP = ("quantize", "dequantize", "lstm", "gru", "rnn")


def tflm_env() -> dict[str, str] | None:
    """TFLM_DIR and its third-party code: the environment, TFLM's make downloads, or
    ~/.cache/tinyc-deps (where tinyc's setup fetches them); None when absent."""
    import os

    tflm = os.environ.get("TFLM_DIR") or str(Path.home() / ".cache/tinyc-deps/tflite-micro")
    if not (Path(tflm) / "tensorflow/lite/micro/micro_interpreter.h").exists():
        return None
    third = third_party_vars(tflm, Path.home() / ".cache/tinyc-deps/tflm-third-party")
    return None if third is None else {"TFLM_DIR": tflm, **third}


def tflm_measure(g: Graph, board: Board, env: dict[str, str], work: Path, cache: Path, log,
                 cached_only: bool = False) -> dict[str, Any]:  # fmt: skip
    """Build ``g`` with the TFLM backend for ``board``'s twin, run it; sizes and counts.
    ``cached_only``: only what an earlier run measured (TinycError otherwise)."""
    from tinyc.backends.tflm.writer import write_tflite

    tflite = write_tflite(g)
    key = hashlib.sha256(tflite + (board.name + template_digest()).encode()).hexdigest()[:24]
    cached = cache / f"tflm-{key}.json"
    if cached.exists():
        return json.loads(cached.read_text())
    if cached_only:
        raise NotMeasured(g.name)
    proj = work / "tflm-project"
    if proj.exists():
        shutil.rmtree(proj)
    arena_bytes = compile_model(
        g, CompileOptions(board=board.name, backend="tflm"), proj, log=lambda m: None
    ).arena_bytes
    # a generous arena: the measurement is of instructions and code, not of the arena
    arena = str(2 * arena_bytes + 65536)
    make_vars = {**env, "TFLM_LIB": tflm_library(proj, board, env, log), "TINYC_ARENA_BYTES": arena}
    elf = build_firmware(proj, "emu", build_dir=proj / "build", make_vars=make_vars)
    inputs = [to_external(g, n, x) for n, x in zip(g.inputs, random_inputs(g, 0), strict=True)]
    res = run_emulated(elf, board, inputs)
    rec = {"sizes": elf_sizes(elf), "tflite": len(tflite), "instructions": res.instructions,
           "stack_used": res.stack_bytes}  # fmt: skip
    cached.write_text(json.dumps(rec))
    return rec


class NotMeasured(TinycError):
    """--cached-only: a layer no earlier run measured."""


def _tflm_batches(fam: Family) -> Iterator[Graph]:
    """The family's layers, grouped by op kind, TFLM_PER_GRAPH per build."""
    n = TFLM_LAYERS.get(fam.name, TFLM_DEFAULT_LAYERS)
    by_op: dict[str, list[Graph]] = defaultdict(list)
    GENERAL_REQUANT[0] = False
    for i in range(n):
        layer = family_layer(fam, i, IO_BUDGET // 4)
        by_op[layer.nodes[0].op].append(layer)
    GENERAL_REQUANT[0] = True
    per = TFLM_PER_GRAPH.get(fam.name, 2)
    for op, layers in sorted(by_op.items()):
        for k in range(0, len(layers), per):
            yield merge(f"tflm_{fam.name}_{op.lower()}_{k}", layers[k : k + per])


def _feature_op(key: str) -> str:
    """The op kind a TFLM feature belongs to ("DEPTHWISE_CONV_2D/mult4:macs" -> ...)."""
    return key.split(":")[0].split("/")[0]


def calibrate_tflm(core: str, spec: dict[str, str], work: Path, env: dict[str, str], log,
                   merge_into: dict[str, Any] | None = None,
                   cached_only: bool = False) -> dict[str, Any]:  # fmt: skip
    """Measure the families with TFLM on ``core`` and fit. ``merge_into``: a calibration
    of the core whose figures stay, except those of the op kinds these families measure
    (refitted with every other coefficient, the interpreter's per-invoke cost included,
    held as it is). ``cached_only``: fit on the layers earlier runs measured (an
    interrupted run, or several runs sharing --work), leaving the others out."""
    from tinyc.estimate.tflm import act_inside, tflm_graph
    from tinyc.estimate.tflm import node_features as tflm_features

    board = load_board(spec.get("tflm_board", spec["board"]))  # (no NPU: TFLM on the CPU)
    mve = board.mve != "none"
    cache = work / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    base_graph = G.data_movement(1, "RESHAPE", [(2, 3, 4)], shape=(6, 4))
    base = tflm_measure(base_graph, board, env, work, cache, log, cached_only)
    rows, ys, fams = [{"invoke": 1.0}], [float(base["instructions"])], ["baseline"]
    incs: dict[str, list[dict[str, int]]] = defaultdict(list)
    stacks: dict[str, int] = defaultdict(int)
    refit: set[str] = set()
    for fam in [*FAMILIES, *TFLM_FAMILIES]:
        if fam.name in TFLM_SKIP:
            continue
        t0 = time.time()
        missing = 0
        for g in _tflm_batches(fam):
            try:
                rec = tflm_measure(g, board, env, work, cache, log, cached_only)
            except NotMeasured:
                missing += 1
                continue
            except TinycError as e:
                log(f"  tflm {core}: {g.name} skipped: {' '.join(str(e).split())[:160]}")
                continue
            gg = tflm_graph(g)  # what TFLM runs (a PAD before a window of other pads)
            inside = act_inside(g)  # on the inputs tflm_measure runs
            feats: dict[str, float] = {"invoke": 1.0}
            for node in gg.nodes:
                for k, v in tflm_features(node, gg, mve, inside).items():
                    feats[k] = feats.get(k, 0.0) + v
            rows.append(feats)
            ys.append(float(rec["instructions"]))
            fams.append(fam.name)
            op = g.nodes[0].op
            refit.update(n.op for n in g.nodes)
            inc = {k: rec["sizes"][k] - base["sizes"][k] for k in ("text", "rodata", "data", "bss")}
            inc["rodata"] -= rec["tflite"] - base["tflite"]
            incs[op].append(inc)
            stacks[op] = max(stacks[op], rec["stack_used"])
        log(
            f"  tflm {core} {fam.name}: {time.time() - t0:.1f} s"
            + (f" ({missing} builds not measured yet: left out)" if missing else "")
        )
    held: dict[str, float] = {}
    if merge_into is not None:
        held = {k: v for k, v in merge_into["instructions"].items() if _feature_op(k) not in refit}
        rows, ys, fams = rows[1:], ys[1:], fams[1:]  # the baseline is all held figures
    free = [{k: v for k, v in r.items() if k not in held} for r in rows]
    base_pred = [sum(held.get(k, 0.0) * v for k, v in r.items()) for r in rows]
    coef, stats = fit(free, ys, relative=True, base=base_pred)
    coef = {**held, **coef}
    log_family_errors(f"tflm {core}", rows, ys, fams, coef, log)
    fixed = {k: base["sizes"][k] for k in ("text", "rodata", "data", "bss")}
    fixed["rodata"] -= base["tflite"]
    fixed["stack_used"] = base["stack_used"]
    ops = {
        op: {**{k: int(np.median([i[k] for i in lst])) for k in lst[0]}, "stack_used": stacks[op]}
        for op, lst in incs.items()
    }
    out = {
        "calibration_board": board.name,
        "source": (
            f"measured with tinyc's TFLM backend on {board.name}'s emulated twin "
            f"({len(ys)} inferences, QEMU instruction counts)"
        ),  # fmt: skip
        "cpi": CPI[core],
        "instructions": dict(sorted(coef.items())),
        "fit": stats,
        "fixed": fixed,
        "ops": ops,
    }
    if merge_into is None:
        return out
    merged = copy.deepcopy(merge_into)
    merged["instructions"] = out["instructions"]
    merged["ops"] = {**merged["ops"], **ops}
    when = time.strftime("%Y-%m-%d")
    families = sorted(set(fams))
    merged["merged"] = {**merged.get("merged", {}), **dict.fromkeys(families, when)}
    merged.setdefault("merged_fits", {})[",".join(sorted(refit))] = stats
    return merged


def log_family_errors(what: str, rows: list[dict[str, float]], ys: list[float],
                      fams: list[str], coef: dict[str, float], log) -> None:  # fmt: skip
    """Per family, the median and worst relative error of the fitted model."""
    errs: dict[str, list[float]] = defaultdict(list)
    for r, y, f in zip(rows, ys, fams, strict=True):
        errs[f].append((sum(coef.get(k, 0.0) * v for k, v in r.items()) - y) / max(y, 1.0))
    for f, e in errs.items():
        a = np.abs(e)
        log(f"  {what} {f}: {len(e)} inferences, median |err| {np.median(a):.1%}, "
            f"worst {e[int(np.argmax(a))]:+.1%}")  # fmt: skip


# --------------------------------------------------------------------------------------------
# driver


def measured(fam: Family, scale: float, board: Board, arch: str | None, kernels: str,
             work: Path, cache: Path, log) -> Iterator[tuple[Graph, dict, Any, Any]]:  # fmt: skip
    """The family's builds, measured: (graph, measurements, generated model, its model.c
    read back); a build that fails is logged and skipped."""
    for g in family_graphs(fam, scale):
        try:
            rec = measure(g, board, arch, kernels, work, cache)
        except TinycError as e:
            log(f"  {board.core}: {g.name} skipped: {' '.join(str(e).split())[:200]}")
            continue
        gen = generate(g, kernels)
        yield g, rec, gen, read_model_c(gen.files["model/model.c"])


def calibrate_core(
    core: str,
    spec: dict[str, str],
    work: Path,
    scale: float,
    log,
    strict: bool = False,
    merge_into: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Measure and fit every family on ``core``; ``strict``: raise when a family lost more
    than half its layers to failed builds (a merge must not replace a fit with a poor one).
    ``merge_into``: the calibration a merge will keep the other kernels of (the checks cost their
    layers with it, the fresh fits on top)."""
    board = load_board(spec["board"])
    arch = spec.get("arch")
    flags = gcc_flags(board, arch)
    cpy, mset = inline_limits(flags)
    kernels = spec.get("kernels") or target_for(board)
    target = Target(kernels, has_dsp(flags), cpy, mset)
    cache = work / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    base = measure(baseline_graph(), board, arch, kernels, work, cache)
    harness_units = {u for u, v in base["units"].items() if v["owner"] in ("harness", "lib")}
    insn_rows: dict[str, list[dict[str, float]]] = defaultdict(list)
    insn_y: dict[str, list[float]] = defaultdict(list)
    code_rows: dict[str, list[dict[str, float]]] = defaultdict(list)
    code_y: dict[str, list[float]] = defaultdict(list)
    frames: dict[str, int] = defaultdict(int)
    frame_y: dict[str, list[float]] = defaultdict(list)
    callee: dict[str, int] = defaultdict(int)
    kernel_units: dict[str, set[str]] = defaultdict(set)
    unit_bytes: dict[str, dict[str, Any]] = {}
    outside: list[int] = []
    invoke_pts: list[tuple[int, int]] = []
    struct_sizes: dict[str, int] = {}
    folded: set[str] = set()
    rodata_err: list[float] = []
    residual: list[tuple[str, str, Any, float]] = []  # (layer's kernel, part, features, y)
    descriptor = 0
    for fam in FAMILIES:
        t0 = time.time()
        n_layers = 0
        for g, rec, gen, src in measured(fam, scale, board, arch, kernels, work, cache, log):
            kernels_here: set[str] = set()
            for i_str, m in rec["nodes"].items():
                i = int(i_str)
                calls = main_kernels(src.kernels(i))
                ((kernel, count),) = calls.items()
                if kernel not in KERNELS:
                    log(f"  warning: no features for kernel {kernel} (layer {i} of {g.name})")
                    continue
                key = ALIASES.get(kernel, kernel)  # kernels calibrated together share a key
                kernels_here.add(key)
                args = src.call_args(i, kernel)
                f = node_features(kernel, gen.graph.nodes[i], gen.graph, count, target, args)
                if fam.residual is not None:
                    if fam.residual in f.borrowed:
                        residual.append((key, fam.residual, f, m["instructions"]))
                        n_layers += 1
                    continue
                insn_rows[key].append(f.insn)
                insn_y[key].append(m["instructions"])
                code_rows[key].append({"fn": 1.0, **f.code})
                code_y[key].append(m["code"])
                frames[key] = max(frames[key], m["frame"])
                frame_y[key].append(m["frame"])
                n_layers += 1
            depth = rec["stack"]["inference"] - rec["invoke"]["frame"]
            depth -= max(m["frame"] for m in rec["nodes"].values())
            for k in kernels_here:
                callee[k] = max(callee[k], depth)
            for u, v in rec["units"].items():
                if v["owner"] == "runtime" or (v["owner"] == "lib" and u not in harness_units):
                    # a kernel's own section goes to it, shared ones to every kernel here
                    own = [k for k in kernels_here if u.endswith(f".{k}")]
                    for k in own or kernels_here:
                        kernel_units[k].add(u)
                    unit_bytes[u] = {"kind": v["kind"], "bytes": v["bytes"]}
            outside.append(
                rec["total_instructions"] - sum(m["instructions"] for m in rec["nodes"].values())
            )
            invoke_pts.append((rec["invoke"]["calls"], rec["invoke"]["text"]))
            struct_sizes.update(rec["struct_sizes"])
            # a parameter block the compiler folds into the code (every field a constant
            # of an inlined kernel) is not in the ELF: no flash
            folded.update(d.ctype for d in src.consts if _is_struct(d) and d.ctype not in
                          rec["struct_sizes"])  # fmt: skip
            descriptor = rec["descriptor_bytes"] or descriptor
            est = const_bytes(src, {**dict.fromkeys(folded, 0), **struct_sizes,
                                    "tinyc_tensor_t": descriptor})  # fmt: skip
            rodata_err.append((est - rec["model_rodata"]) / max(rec["model_rodata"], 1))
        log(f"  {core} {fam.name}: {n_layers} layers, {time.time() - t0:.1f} s")
        if strict and n_layers < max(fam.per_graph, int(fam.layers * scale)) / 2:
            raise RuntimeError(f"{core} {fam.name}: only {n_layers} layers measured")
    fitted: dict[str, Any] = {}
    for k in insn_rows:
        ic, istats = fit(insn_rows[k], insn_y[k], relative=True)
        istats["crossval_median_abs_rel_err"] = crossval(insn_rows[k], insn_y[k], True)
        cc, cstats = fit(code_rows[k], code_y[k], relative=False)
        cstats["crossval_median_abs_rel_err"] = crossval(code_rows[k], code_y[k], False)
        fc, fstats = fit(code_rows[k], frame_y[k], relative=False)
        fitted[k] = {
            "instructions": ic,
            "code": cc,
            "frame": fc,
            "frame_max": frames[k],
            "callee_stack": max(callee[k], 0),
            "units": sorted(kernel_units[k]),
            "fit": {"instructions": istats, "code": cstats, "frame": fstats},
        }
    old = merge_into["kernels"] if merge_into else {}
    fitted.update(fit_residual(residual, {**old, **fitted}))
    calls = np.array([p[0] for p in invoke_pts], dtype=float)
    text = np.array([p[1] for p in invoke_pts], dtype=float)
    slope, icept = (
        np.polyfit(calls, text, 1) if len(set(calls)) > 1 else (4.0, text.mean() - 4 * calls.mean())
    )
    out = {
        "calibration_board": board.name,
        "gcc_flags": flags,
        "kernel_variant": kernels,
        "dsp": target.dsp,
        "memcpy_inline_max": cpy,
        "memset_inline_max": mset,
        "cpi": CPI[core],
        "outside_instructions": int(np.median(outside)),
        "invoke": {
            "text_base": round(float(icept), 2),
            "text_per_call": round(float(slope), 3),
            "frame": base["invoke"]["frame"],
        },  # fmt: skip
        # flash bytes per constant struct of model.c (0: folded into the code), and sizeof
        # of every runtime struct (for structs no family measured)
        "struct_bytes": {
            **dict.fromkeys(folded - set(struct_sizes), 0),
            **struct_sizes,
            "tinyc_tensor_t": descriptor,
        },  # fmt: skip
        "struct_sizeof": runtime_struct_sizes(flags),
        "rodata_model_check": {
            "median_rel_err": round(float(np.median(rodata_err)), 4),
            "max_abs_rel_err": round(float(np.max(np.abs(rodata_err))), 4),
        },
        "units": unit_bytes,
        "kernels": fitted,
    }
    checked = merge_core(merge_into, out, []) if merge_into else out
    out["checks"] = check_families(checked, core, board, arch, kernels, work, cache, log)
    out["fused_code"] = checked["fused_code"]
    return out


def check_families(data: dict[str, Any], core: str, board: Board, arch: str | None,
                   kernels: str, work: Path, cache: Path, log) -> dict[str, Any]:  # fmt: skip
    """Measured layers the fits did not see (CHECKS), against what the model predicts."""
    from tinyc.estimate.calibration import CoreCalibration
    from tinyc.estimate.costmodel import node_cost
    from tinyc.estimate.report import backend_view

    cal = CoreCalibration(core, {**data, "fused_code": {}})
    out: dict[str, Any] = {}
    residual: dict[str, list[float]] = defaultdict(list)
    for fam in CHECKS:
        errs, code_errs, total = [], [], [0.0, 0.0]
        for _, rec, gen, src in measured(fam, 1.0, board, arch, kernels, work, cache, log):
            view = backend_view(gen, src)
            for i_str, m in rec["nodes"].items():
                i = int(i_str)
                calls = src.kernels(i)
                cost = node_cost(cal, calls, view.nodes[i], view,
                                 {k: src.call_args(i, k) for k in calls})  # fmt: skip
                errs.append((cost.instructions - m["instructions"]) / m["instructions"])
                code_errs.append((cost.code_bytes - m["code"]) / max(m["code"], 1))
                if view.nodes[i].op.startswith("tinyc:"):
                    residual[view.nodes[i].op].append(m["code"] - cost.code_bytes)
                total[0] += cost.instructions
                total[1] += m["instructions"]
        if errs:
            out[fam.name] = {
                "layers": len(errs),
                "median_rel_err": round(float(np.median(errs)), 4),
                "max_abs_rel_err": round(float(np.max(np.abs(errs))), 4),
                "total_rel_err": round((total[0] - total[1]) / total[1], 4),
                "code_median_rel_err": round(float(np.median(code_errs)), 4),
            }
            log(f"  {core} check {fam.name}: {out[fam.name]}")
    # what a fused node's code holds beyond its kernels' (its loop over rows, the helper
    # functions' frames): the median measured excess, added by the cost model
    data["fused_code"] = {op: round(float(np.median(r))) for op, r in sorted(residual.items())}
    return out


def merge_core(old: dict[str, Any], new: dict[str, Any], families: list[str]) -> dict[str, Any]:
    """``old`` (a core's calibration) with what measuring only ``families`` refitted: their
    kernels' coefficients, the sizes of the sections and structs their builds measured, and
    their checks; everything else (other kernels, the invoke and outside figures fitted over
    every family) stays as it was."""
    out = copy.deepcopy(old)
    out["kernels"].update(new["kernels"])
    out["units"].update(new["units"])
    out["struct_bytes"].update(new["struct_bytes"])
    out["struct_sizeof"] = new["struct_sizeof"]
    out.setdefault("checks", {}).update(new.get("checks", {}))
    out["fused_code"] = {**old.get("fused_code", {}), **new.get("fused_code", {})}
    when = time.strftime("%Y-%m-%d")
    out["merged"] = {**old.get("merged", {}), **{f: when for f in families}}
    return out


def board_fixed(board: Board, arch: str | None, work: Path) -> dict[str, Any]:
    """The firmware around the model, for the emulated twin and for the real board."""
    cache = work / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {}
    for target in ("emu", "board"):
        rec = measure(baseline_graph(), board, arch, target_for(board), work, cache, target,
                      run=target == "emu")  # fmt: skip
        fixed = dict.fromkeys(("text", "rodata", "data", "bss"), 0)
        for unit in rec["units"].values():
            if unit["owner"] in ("harness", "lib") and unit["kind"] in fixed:
                fixed[unit["kind"]] += unit["bytes"]
        entry: dict[str, Any] = {**fixed, "test_data": sum(
            u["bytes"] for u in rec["units"].values() if u["owner"] == "test_data")}  # fmt: skip
        if target == "emu":
            entry["stack_at_invoke"] = rec["stack"]["used"] - rec["stack"]["inference"]
        out[target] = entry
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cores", default=",".join(VARIANTS), help="comma-separated core variants")
    ap.add_argument("--quick", action="store_true", help="a third of the layers (trial runs)")
    ap.add_argument("--families", help="only these layer families (comma-separated; trials, "
                    "or with --merge)")  # fmt: skip
    ap.add_argument("--merge", action="store_true", help="with --families: refit only the "
                    "kernels (with --tflm: op kinds) these families measure, keeping every other "
                    "figure of the existing calibration file (e.g. --families lstm,gru,rnn "
                    "--merge)")  # fmt: skip
    ap.add_argument("--boards", help="per-board baselines only for these boards (default: all)")
    ap.add_argument("--tflm", help="also measure TFLM + CMSIS-NN on these core variants "
                    "(comma-separated; needs a TFLM checkout: TFLM_DIR)")  # fmt: skip
    ap.add_argument("--tflm-output", type=Path, default=REPO / "tinyc" / "data/estimate_tflm.json")
    ap.add_argument("--cached-only", action="store_true", help="with --tflm: fit on the layers "
                    "earlier runs measured under --work, building nothing")  # fmt: skip
    ap.add_argument("--no-boards", action="store_true", help="skip the per-board baselines")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "tinyc-estimate-cal")
    ap.add_argument("--output", type=Path, default=REPO / "tinyc" / DATA_FILE)
    args = ap.parse_args(argv)
    scale = 1 / 3 if args.quick else 1.0
    if args.merge and not args.families:
        ap.error("--merge needs --families")
    if args.families:
        keep = args.families.split(",")
        unknown = sorted(set(keep) - {f.name for f in (*FAMILIES, *CHECKS, *TFLM_FAMILIES)})
        if unknown:
            ap.error(f"unknown families: {', '.join(unknown)}")
        FAMILIES[:] = [f for f in FAMILIES if f.name in keep]
        TFLM_FAMILIES[:] = [f for f in TFLM_FAMILIES if f.name in keep]
        if args.merge:
            CHECKS[:] = [f for f in CHECKS if f.name in keep]
    t0 = time.time()

    def log(msg: str) -> None:
        print(f"[{time.time() - t0:6.0f} s] {msg}", flush=True)

    old = json.loads(args.output.read_text()) if args.output.exists() else {}
    cores = dict(old.get("cores", {}))

    def save(cores: dict[str, Any], boards: dict[str, Any]) -> dict[str, Any]:
        data = {
            "format": "tinyc-estimate-calibration",
            "version": 1,
            "tinyc": __version__,
            "generated_by": "bench/estimate_calibrate.py",
            "compiler": subprocess.run(
                ["arm-none-eabi-gcc", "-dumpversion"], capture_output=True, text=True
            ).stdout.strip(),
            "cores": cores,
            "boards": boards,
        }
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        return data

    boards = dict(old.get("boards", {}))
    c_cores = list(filter(None, args.cores.split(",")))
    for core in c_cores:
        spec = VARIANTS[core]
        log(f"calibrating {core} on {spec['board']} {spec.get('arch', '')}")
        merge_into = cores.get(core) if args.merge else None
        new = calibrate_core(core, spec, args.work / core, scale, log, args.merge, merge_into)
        if args.merge and core in cores:
            new = merge_core(cores[core], new, [f.name for f in FAMILIES])
            log(f"  {core}: merged {', '.join(sorted(new['merged']))} into the calibration")
        cores[core] = new
        save(cores, boards)
    wanted = set(args.boards.split(",")) if args.boards else None
    for b in [] if args.no_boards else list_boards():
        if wanted is not None and b.name not in wanted:
            continue
        key = core_key(b)
        if key not in cores:
            continue
        boards[b.name] = board_fixed(b, None, args.work / "boards" / b.name)
        log(f"  board {b.name}: {boards[b.name]}")
    if c_cores or not args.no_boards:
        data = save(cores, boards)
        log(f"wrote {args.output}")
    else:  # TFLM only (--cores ""): the C backend's file stays as it is
        data = {**old, "compiler": old.get("compiler"), "tinyc": __version__}
    if args.tflm:
        env = tflm_env()
        if env is None:
            log("no TFLM checkout (TFLM_DIR) with its third-party code: TFLM not calibrated")
            return 1
        old = json.loads(args.tflm_output.read_text()) if args.tflm_output.exists() else {}
        tcores = dict(old.get("cores", {}))
        for core in filter(None, args.tflm.split(",")):
            log(f"calibrating TFLM on {core}")
            merge_into = tcores.get(core) if args.merge else None
            tcores[core] = calibrate_tflm(
                core,
                VARIANTS[core],
                args.work / f"tflm-{core}",
                env,
                log,
                merge_into,
                args.cached_only,
            )
        tdata = {**{k: v for k, v in data.items() if k not in ("cores", "boards")},
                 "format": "tinyc-estimate-tflm-calibration", "cores": tcores}  # fmt: skip
        args.tflm_output.write_text(json.dumps(tdata, indent=1, sort_keys=True) + "\n")
        log(f"wrote {args.tflm_output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

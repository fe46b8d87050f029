"""Loop-count features of tinyc's kernels, one function per kernel the C backend calls.

A node's cost is linear in these features: ``instructions = sum(coef[f] * insn[f])`` and
``code bytes = sum(coef[f] * code[f])``, with coefficients fitted per core on measured layers
(``bench/estimate_calibrate.py``). The features count what the kernel's loops do for the
node's shapes: blocks of pixels, calls of the assembly micro-kernels with their single and
four-group passes, requantized outputs, bytes gathered by memcpy / memset (split into the
copies gcc inlines and the ones it calls, by the core's thresholds), taps of unrolled
depthwise bodies, ... Keep them in step with the kernels of ``tinyc/runtime``: a kernel that
changes its loop structure needs its feature function changed, then a new calibration.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tinyc.backends.cmsis.emit.conv import (
    RING_HWC,
    RING_QUADS_U8,
    ConvEmitter,
    dw_ring,
    dwm_blocking,
)
from tinyc.backends.cmsis.emit.conv import _geometry as conv_geometry
from tinyc.backends.cmsis.emit.fused import ChainShape
from tinyc.backends.cmsis.emit.matrix import layout_for
from tinyc.backends.cmsis.fusion import FUSED_CONV_CONV, FUSED_CONV_DW
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import attr
from tinyc.ir.ops.base import activation_range_quant, normalize_axis


@dataclass(frozen=True)
class Target:
    """What the kernels' loop structure depends on, per core."""

    kernels: str  # "plain" | "dsp" | "mve": the C backend's kernel variants (target_for)
    dsp: bool  # the DSP extension (TINYC_DSP): int16-expanded rows, assembly micro-kernels
    memcpy_inline_max: int  # constant-size memcpy up to this many bytes is inlined by gcc
    memset_inline_max: int  # likewise memset with a constant value

    @property
    def quads(self) -> bool:
        """Helium kernels: channel quads, one pixel at a time."""
        return self.kernels == "mve"

    @property
    def rows(self) -> int:
        """Pixels per block of the pair-layout matrix kernels (TINYC_MM_ROWS)."""
        return 3 if self.dsp else 2


@dataclass
class Features:
    insn: dict[str, float] = field(default_factory=dict)
    code: dict[str, float] = field(default_factory=dict)
    weight_reads: float = 0.0  # bytes of flash constants the kernel reads
    links: set[str] = field(default_factory=set)  # variant functions it calls (VARIANTS)
    #: instruction features costed with another kernel's coefficients (kernel -> features):
    #: a recurrent layer's sparse gate matrices, costed as tinyc_spfc_s8's loops
    borrowed: dict[str, dict[str, float]] = field(default_factory=dict)

    def add(self, part: dict[str, float], name: str, value: float) -> None:
        if value:
            part[name] = part.get(name, 0.0) + float(value)


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _copies(f: Features, t: Target, kind: str, size: int, count: float) -> None:
    """``count`` constant-size memcpy (``kind`` "cpy") or memset ("set") of ``size`` bytes."""
    if size <= 0 or count <= 0:
        return
    limit = t.memcpy_inline_max if kind == "cpy" else t.memset_inline_max
    how = "inl" if size <= limit else "call"
    f.add(f.insn, f"{kind}_{how}_n", count)
    f.add(f.insn, f"{kind}_{how}_bytes", count * size)


def _requant(f: Features, node: Node, g: Graph, outputs: float, calls: int,
             vectors: float = 0.0) -> None:  # fmt: skip
    """``outputs`` requantized values; with ``vectors`` (Helium), right-shift-only layers
    requantize that many vectors of four instead."""
    right = right_shifts_only(node, g)
    lo, hi = activation_range_quant(attr(node, "activation"), g.out(node))
    clamps = int(lo > -128) + int(hi < 127)
    if right and vectors:
        f.add(f.insn, "rq_vec", vectors)
    else:
        f.add(f.insn, "rq_right" if right else "rq_general", outputs)
        f.add(f.insn, "rq_clamp", outputs * clamps)
    f.add(f.code, "right_calls" if right else "general_calls", calls)
    f.add(f.code, "clamp_calls", calls * clamps)


def right_shifts_only(node: Node, g: Graph) -> bool:
    """Whether every channel's requantization is a right shift of at least one bit (the
    kernels' ``right_only`` path): every effective multiplier in [2^-32, 0.5). Vectorized, where
    the op's ``requant()`` computes each channel's fixed-point multiplier."""
    x, w, y = g.inp(node, 0), g.inp(node, 1), g.out(node)
    assert x is not None and w is not None and x.quant and w.quant and y.quant
    eff = float(x.quant.s) * np.asarray(w.quant.scale, np.float64) / float(y.quant.s)
    # below 2^-32 TFLite's QuantizeMultiplier gives a zero multiplier with shift 0
    return bool(np.all((eff >= 2.0**-32) & (eff < 0.5)))


def _matrix(f: Features, t: Target, blocks: int, nrows: int, k4: int, oc: int) -> None:
    """tinyc_mm_pairs_s8 over ``blocks`` blocks of ``nrows`` rows of k4 values, oc channels:
    the DSP assembly kernels (3 rows x 1 channel pair, 1 row x 2 pairs), the ARMv6-M ones
    on unsigned rows (2 rows x 1 pair, 1 row x 2 pairs), or C loops."""
    groups = k4 // 4
    if t.kernels == "plain" and layout_for(t.kernels).unsigned:
        tag, per = ("u2", 2) if nrows > 1 else ("u1", 4)
        calls = blocks * _ceil(oc, per)
        f.add(f.insn, f"{tag}_calls", calls)
        f.add(f.insn, f"{tag}_groups", calls * groups)
        f.add(f.insn, "u_flip_groups", blocks * nrows * groups)
        f.links.add("tinyc_mm_v6m.o:.text")
        return
    if not t.dsp:
        f.add(f.insn, "mm_oc", blocks * oc)
        f.add(f.insn, "mm_rows", blocks * oc * nrows)
        f.add(f.insn, "mm_macs", blocks * oc * nrows * k4)
        return
    if nrows == 1:
        quads = _ceil(oc, 4)
        f.add(f.insn, "mm4_calls", blocks * quads)
        f.add(f.insn, "mm4_single", blocks * quads * (groups % 4))
        f.add(f.insn, "mm4_quad", blocks * quads * (groups // 4))
        return
    pairs = _ceil(oc, 2)
    f.add(f.insn, "mm_calls", blocks * pairs)
    f.add(f.insn, "mm_single", blocks * pairs * (groups % 4))
    f.add(f.insn, "mm_quad", blocks * pairs * (groups // 4))


def _loops(f: Features, calls: int, groups: int, chunks: int, sites: int) -> None:
    """Code-size features of the matrix kernels' loops with constant trips: the row
    expansion (``groups`` of 4 values, unrolled when few), the channel loop over ``chunks``
    micro-kernel calls (no loop code for one) and its ``sites`` requantization sequences."""
    f.add(f.code, "loop_calls", calls * int(chunks > 1))
    f.add(f.code, "few_groups", calls * groups * int(groups <= 16))
    f.add(f.code, "rq_sites", calls * sites)


def _rows(f: Features, t: Target, slots: int, k4: int) -> None:
    """tinyc_row_s8 for ``slots`` rows: int16 expansion (DSP) or a memcpy of k4 bytes."""
    if t.dsp:
        f.add(f.insn, "row_groups", slots * (k4 // 4))
    else:
        _copies(f, t, "cpy", k4, slots)


def _im2col(f: Features, t: Target, geo: dict[str, int], cin: int, grouped: bool,
            slots_pix: np.ndarray, k4: int) -> None:  # fmt: skip
    """tinyc_im2col_s8 for the given output pixels (block slots, repeats included)."""
    k_h, k_w, in_h, in_w = geo["k_h"], geo["k_w"], geo["in_h"], geo["in_w"]
    oy, ox = np.divmod(slots_pix, geo["out_w"])
    y0 = oy * geo["s_h"] - geo["pad_t"]
    x0 = ox * geo["s_w"] - geo["pad_l"]
    whole = (geo["dil_w"] == 1) & (not grouped) & (x0 >= 0) & (x0 + k_w <= in_w)
    n = len(slots_pix)
    f.add(f.insn, "i2c_rows", n * k_h)
    for ky in range(k_h):
        iy = y0 + ky * geo["dil_h"]
        outside = (iy < 0) | (iy >= in_h)
        full = ~outside & whole
        part = ~outside & ~whole
        _copies(f, t, "set", k_w * cin, int(outside.sum()))
        _copies(f, t, "cpy", k_w * cin, int(full.sum()))
        nparts = int(part.sum())
        if nparts:
            f.add(f.insn, "i2c_kx", nparts * k_w)
            for kx in range(k_w):
                ix = x0[part] + kx * geo["dil_w"]
                out_x = int(((ix < 0) | (ix >= in_w)).sum())
                _copies(f, t, "set", cin, out_x)
                _copies(f, t, "cpy", cin, nparts - out_x)
    _copies(f, t, "set", k4 - k_h * k_w * cin, n)


def _quads(f: Features, rows: int, k: int, oc: int, pairs: bool, right: bool = False) -> int:
    """tinyc_mm_quads_s8 (Helium), four channels at a time over 16-byte blocks of k: for
    ``rows`` pairs of rows through the assembly kernels (right shifts only: every quad and
    its requantization in one call; otherwise chunks of up to eight quads), or for ``rows``
    single rows with VMLADAVA intrinsics. Returns the channel quads."""
    quads = _ceil(oc, 4)
    tag = ("mmq2" if right else "mmq") if pairs else "mmq1"
    if pairs:
        f.add(f.insn, f"{tag}_calls", rows * (1 if right else _ceil(quads, 8)))
    f.add(f.insn, f"{tag}_quads", rows * quads)
    f.add(f.insn, f"{tag}_blocks", rows * quads * (k // 16))
    f.add(f.insn, f"{tag}_tail", rows * quads * int(k % 16 > 0))
    return quads


def _slots(ranges: list[tuple[int, int]], block: int, lone: bool) -> tuple[np.ndarray, int, int]:
    """Output pixels of the row slots the matrix kernel fills for the pixel ranges it is
    called on: blocks of ``block`` pixels, a short last block repeating its last pixel, or
    (``lone``) a single leftover pixel alone through the one-row kernels. Returns the
    slots' pixels, the full blocks and the one-row blocks."""
    out, full, ones = [], 0, 0
    for p0, p1 in ranges:
        n = p1 - p0
        if lone and n % block == 1:
            out.append(np.arange(p0, p1))
            full, ones = full + n // block, ones + 1
            continue
        m = _ceil(n, block) * block
        out.append(p0 + np.minimum(np.arange(m), n - 1))
        full += m // block
    pixels = np.concatenate(out) if out else np.zeros(0, np.int64)
    return pixels, full, ones


def conv_features(node: Node, g: Graph, ranges: list[tuple[int, int]], t: Target) -> Features:
    """tinyc_conv_s8 called once per pixel range [p0, p1) of one group's output."""
    f = Features()
    geo = conv_geometry(node, g)
    w = g.inp(node, 1)
    assert w is not None
    cin = w.shape[3]
    groups = geo["in_c"] // cin
    cout = geo["out_c"] // groups
    k = geo["k_h"] * geo["k_w"] * cin
    calls = len(ranges)
    direct = ConvEmitter().direct(node, g, layout_for(t.kernels))
    f.add(f.insn, "calls", calls)
    f.add(f.code, "calls", 1)
    f.add(f.code, "im2col_calls", 0 if direct else 1)
    f.add(f.code, "pad_calls", int(any(attr(node, "pads"))))
    block = 2 if t.quads else t.rows
    kp = k if t.quads else _ceil(k, 4) * 4
    slots, blocks, ones = _slots(ranges, block, lone=not t.quads)
    f.add(f.insn, "blocks", blocks + ones)
    f.add(f.insn, "slots", len(slots))
    if not direct:
        _im2col(f, t, geo, cin, groups > 1, slots, kp)
    if t.quads:
        right = right_shifts_only(node, g)
        quads = _quads(f, blocks, k, cout, pairs=True, right=right)
        if right:  # requantized in the assembly kernel
            f.add(f.code, "right_calls", 1)
        else:
            _requant(f, node, g, len(slots) * cout, 1, len(slots) * quads)
        f.weight_reads = blocks * quads * (64 * _ceil(k, 16) + 48)
        return f
    _rows(f, t, len(slots), kp)
    _matrix(f, t, blocks, t.rows, kp, cout)
    if ones:
        _matrix(f, t, ones, 1, kp, cout)
    _requant(f, node, g, len(slots) * cout, 1)
    _loops(f, 1, kp // 4, _ceil(cout, 2), 3 * min(cout, 2))
    f.add(f.code, "odd_calls", cout % 2)
    f.weight_reads = blocks * _ceil(cout, 2) * (2 * kp + 24)
    return f


def conv(node: Node, g: Graph, calls: int, t: Target) -> Features:
    """tinyc_conv_s8: one call per image and group over all its pixels."""
    y = g.out(node)
    f = conv_features(node, g, [(0, y.shape[1] * y.shape[2])], t)
    if calls > 1:  # the same call per image and group (each an inlined copy)
        f.insn = {k: v * calls for k, v in f.insn.items()}
        f.code = {k: v * calls for k, v in f.code.items()}
        f.weight_reads *= calls
    return f


def fully_connected(node: Node, g: Graph, calls: int, t: Target, args: list[list[str]]
                    ) -> Features:  # fmt: skip
    """tinyc_fc_s8: rows one at a time (one row, or Helium) or in blocks; on DSP cores a
    one-row layer whose call sets ``fast`` runs whole in one assembly kernel."""
    f = Features()
    w, x = g.inp(node, 1), g.inp(node, 0)
    assert w is not None and x is not None
    oc, k = w.shape
    rows = x.size // k
    f.add(f.insn, "calls", calls)
    f.add(f.code, "multirow_calls", calls * int(rows > 1))
    if t.quads:
        f.add(f.code, "calls", calls)
        f.add(f.insn, "slots", rows)
        quads = _quads(f, rows, k, oc, pairs=False)
        _requant(f, node, g, rows * oc, calls, rows * quads)
        f.weight_reads = rows * quads * (64 * _ceil(k, 16) + 48)
        return f
    k4 = _ceil(k, 4) * 4
    nrows = 1 if rows == 1 else t.rows
    blocks = _ceil(rows, nrows)
    slots = blocks * nrows
    f.add(f.insn, "blocks", blocks)
    f.add(f.insn, "slots", slots)
    if k != k4:
        _copies(f, t, "cpy", k, slots)
        _copies(f, t, "set", k4 - k, slots)
    _rows(f, t, slots, k4)
    fast = bool(args) and len(args[0]) > _FC_FAST_ARG and args[0][_FC_FAST_ARG].strip() != "0"
    if t.dsp and nrows == 1 and fast:  # tinyc_fc1_dsp_*: quads of channels, groups by 8
        quads, groups = _ceil(oc, 4), k4 // 4
        f.add(f.insn, "fc1_quads", quads)
        f.add(f.insn, "fc1_single", quads * (groups % 8))
        f.add(f.insn, "fc1_oct", quads * (groups // 8))
        lo, hi = activation_range_quant(attr(node, "activation"), g.out(node))
        f.add(f.insn, "fc1_out", oc)
        f.add(f.insn, "fc1_clamp", oc * (int(lo > -128) + int(hi < 127)))
        f.add(f.code, "fast_calls", calls)
        clamp = "n" if lo == -128 and hi == 127 else "l" * (lo > -128) + "h" * (hi < 127)
        tail = "_t" if args[0][_FC_FAST_ARG].strip() == "2" else ""
        f.links.add(f"tinyc_mm_dsp.o:.text.tinyc_fc1_dsp_{clamp}{tail}")
        f.add(f.code, "few_groups", calls * groups * int(groups <= 16))
        f.add(f.code, "gather_calls", calls * int(k != k4))
        f.weight_reads = _ceil(oc, 2) * (2 * k4 + 24)
        return f
    _matrix(f, t, blocks, nrows, k4, oc)
    f.links.add("tinyc_mm_dsp.o:.text")
    f.add(f.code, "calls", calls)  # (the one-call path above has its own base)
    _requant(f, node, g, slots * oc, calls)
    if nrows == 1:
        _loops(f, calls, k4 // 4, _ceil(oc, 4), min(oc, 4))
    else:
        _loops(f, calls, k4 // 4, _ceil(oc, 2), 3 * min(oc, 2))
    f.add(f.code, "gather_calls", calls * int(k != k4))
    f.weight_reads = blocks * _ceil(oc, 2) * (2 * k4 + 24)
    return f


def _ring_fills(geo: dict[str, int]) -> int:
    """Input rows tinyc_dw_s8 brings into its ring (each once, as the window slides)."""
    span = (geo["k_h"] - 1) * geo["dil_h"] + 1
    filled = nxt = 0
    for oy in range(geo["out_h"]):
        y0 = oy * geo["s_h"] - geo["pad_t"]
        for ky in range(geo["k_h"]):
            iy = y0 + ky * geo["dil_h"]
            if iy < 0 or iy >= geo["in_h"]:
                continue
            nxt = max(nxt, iy - span + 1)
            if nxt <= iy:
                filled += iy + 1 - nxt
                nxt = iy + 1
    return filled


def depthwise_ring(node: Node, g: Graph, calls: int, t: Target) -> Features:
    """tinyc_dw_s8: input rows copied (or, fused, produced) once into a ring of padded rows;
    unrolled taps per 4 channels (DSP, a last partial quad included), per 4 pixels x 4
    channels (Helium, right shifts only), or one channel at a time."""
    fused = node.op == FUSED_CONV_DW
    dw = node.attrs["dw"] if fused else node
    f = Features()
    geo = conv_geometry(dw, g)
    ch, k_h, k_w = geo["in_c"], geo["k_h"], geo["k_w"]
    out_h, out_w, pad_l = geo["out_h"], geo["out_w"], geo["pad_l"]
    pw = (out_w - 1) * geo["s_w"] + (k_w - 1) * geo["dil_w"] + 1
    copy_w = min(geo["in_w"], pw - pad_l)
    filled = _ring_fills(geo)
    pixels = out_h * out_w
    taps = k_h * k_w
    right = right_shifts_only(dw, g)
    f.add(f.insn, "calls", calls)
    f.add(f.insn, "out_rows", calls * out_h)
    f.add(f.insn, "row_taps", calls * out_h * k_h)
    f.add(f.insn, "ring_rows", calls * filled)
    quads = tail = part = 0
    ring = dw_ring(dw, g, t.kernels)
    if ring == RING_QUADS_U8:  # unsigned quad-major rows, a channel at a time
        f.add(f.insn, "u8_fill_px", calls * filled * copy_w * ch)
        f.add(f.insn, "u8_ch_rows", calls * out_h * ch)
        f.add(f.insn, "u8_px", calls * pixels * ch)
        f.add(f.insn, "u8_px_taps", calls * pixels * ch * taps)
        _requant(f, dw, g, calls * pixels * ch, calls)
        f.add(f.code, "calls", calls)
        f.add(f.code, "u8_taps_calls", calls * taps)
        f.weight_reads = calls * pixels * (taps * ch + 12 * ch)
        return f
    if ring != RING_HWC:  # quad-major ring rows, a generated Helium row kernel
        quads = _ceil(ch, 4)
        blocks = max(out_w // 4, 1)  # blocks of four pixels, the last taking up to six
        tag = "dwq"
        f.add(f.insn, "q_fill_px", calls * filled * copy_w * _ceil(ch, 16))
        f.add(f.insn, f"{tag}_rows", calls * out_h)
        f.add(f.insn, f"{tag}_blocks", calls * out_h * blocks * quads)
        f.add(f.insn, f"{tag}_block_taps", calls * out_h * blocks * quads * taps)
        f.add(f.insn, f"{tag}_px_taps", calls * pixels * quads * taps)
        f.add(f.insn, f"{tag}_px", calls * pixels * quads)
        f.add(f.code, "calls", calls)
        f.weight_reads = calls * pixels * (taps * ch + 12 * ch)
        return f
    _copies(f, t, "set", max(pw, pad_l + geo["in_w"]) * ch, calls)
    _copies(f, t, "set", pad_l * ch, calls * filled)
    if not fused:
        _copies(f, t, "cpy", copy_w * ch, calls * filled)
    _copies(f, t, "set", (pw - pad_l - copy_w) * ch, calls * filled)
    if t.quads and right:  # four pixels x four channels, a short group repeats its last pixel
        groups = out_h * _ceil(out_w, 4)
        quads = _ceil(ch, 4)
        f.add(f.insn, "pgroups", calls * groups)
        f.add(f.insn, "pg_quads", calls * groups * quads)
        f.add(f.insn, "pg_quad_taps", calls * groups * quads * taps)
        _requant(f, dw, g, calls * groups * 4 * ch, calls, calls * groups * 4 * quads)
    elif t.quads:  # quad records, one channel at a time
        f.add(f.insn, "pixels", calls * pixels)
        f.add(f.insn, "sq_ch", calls * pixels * ch)
        f.add(f.insn, "sq_taps", calls * pixels * ch * taps)
        _requant(f, dw, g, calls * pixels * ch, calls)
    else:
        # DSP: the last ch % 4 channels as one more quad, its spare lanes dropped
        quads = ch // 4 if t.dsp else 0
        part = int(t.dsp and ch % 4 > 0)
        tail = 0 if t.dsp else ch
        f.add(f.insn, "pixels", calls * pixels)
        f.add(f.insn, "part_quads", calls * pixels * part)
        f.add(f.insn, "part_quad_taps", calls * pixels * part * taps)
        f.add(f.insn, "part_lane_taps", calls * pixels * taps * (ch % 4 if t.dsp else 0))
        f.add(f.insn, "quads", calls * pixels * quads)
        f.add(f.insn, "quad_taps", calls * pixels * quads * taps)
        f.add(f.insn, "tail", calls * pixels * tail)
        f.add(f.insn, "tail_taps", calls * pixels * tail * taps)
        _requant(f, dw, g, calls * pixels * ch, calls)
    f.add(f.code, "calls", calls)
    f.add(f.code, "quad_taps_calls", calls * taps * int(quads > 0 or part))
    f.add(f.code, "quad_loop_calls", calls * int(quads > 1))
    f.add(f.code, "part_quad_calls", calls * part)
    f.add(f.code, "tail_calls", calls * int(tail > 0))
    f.add(f.code, "tail_taps_calls", calls * taps * int(tail > 0))
    f.add(f.code, "pad_calls", calls * int(any(attr(dw, "pads"))))
    f.weight_reads = calls * pixels * (taps * ch + 12 * ch)
    return f


def _valid_taps(geo: dict[str, int], k: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Per output pixel: kernel rows and taps that fall inside the input."""
    oy = np.arange(geo["out_h"]) * geo["s_h"] - geo["pad_t"]
    ox = np.arange(geo["out_w"]) * geo["s_w"] - geo["pad_l"]
    ys = oy[:, None] + np.arange(k[0])[None, :] * geo.get("dil_h", 1)
    xs = ox[:, None] + np.arange(k[1])[None, :] * geo.get("dil_w", 1)
    vy = ((ys >= 0) & (ys < geo["in_h"])).sum(axis=1)
    vx = ((xs >= 0) & (xs < geo["in_w"])).sum(axis=1)
    rows = np.add.outer(vy, np.zeros_like(vx))
    return rows, np.multiply.outer(vy, vx)


def depthwise_generic(node: Node, g: Graph, calls: int, t: Target) -> Features:
    """tinyc_depthwise_s8: bounds-checked taps (any depth multiplier)."""
    f = Features()
    geo = conv_geometry(node, g)
    in_c, out_c = geo["in_c"], geo["out_c"]
    mult = out_c // in_c
    rows, taps = _valid_taps(geo, (geo["k_h"], geo["k_w"]))
    pixels = geo["out_h"] * geo["out_w"]
    quads = out_c // 4 if (t.dsp and mult == 1) else 0
    tail = out_c - 4 * quads
    f.add(f.insn, "calls", calls)
    f.add(f.insn, "out_rows", calls * geo["out_h"])
    f.add(f.insn, "pixels", calls * pixels)
    for name, n in (("quad", quads), ("ch", tail)):
        f.add(f.insn, f"{name}s", calls * pixels * n)
        f.add(f.insn, f"{name}_ky", calls * pixels * n * geo["k_h"])
        f.add(f.insn, f"{name}_kx", calls * n * int(rows.sum()) * geo["k_w"])
        f.add(f.insn, f"{name}_taps", calls * n * int(taps.sum()))
    f.add(f.insn, "rq_general", calls * pixels * out_c)
    f.add(f.code, "calls", calls)
    f.weight_reads = calls * (int(taps.sum()) * out_c + pixels * out_c * 12)
    return f


def depthwise_multiplier(node: Node, g: Graph, calls: int, t: Target) -> Features:
    """tinyc_dwm_s8 (depth multiplier above 1): per block of output pixels and chunk of
    channels, each pixel's receptive field gathered channel-major (a memcpy per kernel row
    for one channel), then per channel the matrix kernel over its group's filters."""
    f = Features()
    geo = conv_geometry(node, g)
    ch, k_h, k_w = geo["in_c"], geo["k_h"], geo["k_w"]
    k, mult = k_h * k_w, geo["out_c"] // geo["in_c"]
    _, k4, cb = dwm_blocking(geo, t.kernels)
    chunks = _ceil(ch, cb)
    pixels = geo["out_h"] * geo["out_w"]
    slots, blocks, ones = _slots([(0, pixels)], 2 if t.quads else t.rows, lone=not t.quads)
    oy, ox = np.divmod(slots, geo["out_w"])
    y0, x0 = oy * geo["s_h"] - geo["pad_t"], ox * geo["s_w"] - geo["pad_l"]
    inside = (
        (y0 >= 0)
        & (y0 + (k_h - 1) * geo["dil_h"] < geo["in_h"])
        & (x0 >= 0)
        & (x0 + (k_w - 1) * geo["dil_w"] < geo["in_w"])
    )
    n_in = int(inside.sum())
    f.add(f.insn, "calls", 1)
    f.add(f.insn, "blocks", blocks + ones)
    f.add(f.insn, "chunk_slots", len(slots) * chunks)
    if ch == 1:
        if geo["dil_w"] == 1:
            _copies(f, t, "cpy", k_w, n_in * k_h)
        else:
            f.add(f.insn, "g_taps_in", n_in * k)
        _im2col(f, t, geo, 1, False, slots[~inside], k4)
        f.add(f.code, "one_channel", 1)
    else:
        f.add(f.insn, "g_taps_in", n_in * k * chunks)
        f.add(f.insn, "g_bytes_in", n_in * k * ch)
        f.add(f.insn, "g_taps_edge", (len(slots) - n_in) * k * chunks)
        f.add(f.insn, "g_bytes_edge", (len(slots) - n_in) * k * ch)
    f.add(f.insn, "groups", (blocks + ones) * ch)
    if t.quads:
        right = right_shifts_only(node, g)
        quads = _quads(f, blocks * ch, k, mult, pairs=True, right=right)
        if not right:
            _requant(f, node, g, len(slots) * geo["out_c"], 1, len(slots) * ch * quads)
        else:
            f.add(f.code, "right_calls", 1)
        f.weight_reads = blocks * ch * quads * (64 * _ceil(k, 16) + 48)
    else:
        if t.dsp:
            _rows(f, t, len(slots) * ch, k4)
        _matrix(f, t, blocks * ch, t.rows, k4, mult)
        if ones:
            _matrix(f, t, ones * ch, 1, k4, mult)
        _requant(f, node, g, len(slots) * geo["out_c"], 1)
        _loops(f, 1, k4 // 4, _ceil(mult, 2), 3 * min(mult, 2))
        f.add(f.code, "odd_calls", mult % 2)
        f.weight_reads = (blocks + ones) * ch * _ceil(mult, 2) * (2 * k4 + 24)
    f.add(f.code, "calls", 1)
    # the gather's loops, unrolled (up to 16 trips, constant ones fully) in each inlined copy
    if ch == 1:
        f.add(f.code, "ch1_rows", min(k_h, 16))
    else:
        # gcc unrolls the inside path's tap x channel copies while they stay few
        body = k * min(ch, cb)
        f.add(f.code, "in_body" if body <= 640 else "in_rolled", body if body <= 640 else 1)
        f.add(f.code, "edge_body", min(ch, 16) * int(n_in < len(slots)))
    f.add(f.code, "edge_calls", int(n_in < len(slots)))
    if calls > 1:  # the same call per image (each an inlined copy)
        f.insn = {n: v * calls for n, v in f.insn.items()}
        f.code = {n: v * calls for n, v in f.code.items()}
        f.weight_reads *= calls
    return f


def pool(node: Node, g: Graph, calls: int, t: Target) -> Features:
    """tinyc_avgpool_s8 / tinyc_maxpool_s8: per output pixel, channels in groups (4 on DSP
    cores and a scalar tail; 8 (average) or 16 (max) predicated lanes on Helium; one at a
    time elsewhere), each over the valid window taps."""
    f = Features()
    x, y = g.inp(node, 0), g.out(node)
    assert x is not None
    stride, pads, k = attr(node, "stride"), attr(node, "pads"), tuple(attr(node, "filter"))
    geo = {
        "in_h": x.shape[1], "in_w": x.shape[2], "out_h": y.shape[1], "out_w": y.shape[2],
        "s_h": stride[0], "s_w": stride[1], "pad_t": pads[0], "pad_l": pads[2],
    }  # fmt: skip
    rows, taps = _valid_taps(geo, k)
    ch = x.shape[3]
    pixels = y.shape[1] * y.shape[2]
    if t.quads:
        size = 8 if node.op == "AVERAGE_POOL_2D" else 16
        groups, tail = _ceil(ch, size), 0
    elif t.dsp:
        groups, tail = ch // 4, ch % 4
    else:
        groups, tail = 0, ch
    f.add(f.insn, "calls", calls)
    f.add(f.insn, "out_rows", calls * y.shape[1])
    f.add(f.insn, "pixels", calls * pixels)
    for name, n in (("grp", groups), ("ch", tail)):
        f.add(f.insn, name, calls * pixels * n)
        f.add(f.insn, f"{name}_ky", calls * n * int(rows.sum()))
        f.add(f.insn, f"{name}_taps", calls * n * int(taps.sum()))
    f.add(f.insn, "outputs", calls * pixels * ch)
    f.add(f.code, "calls", calls)
    return f


def _bcast_outer(g: Graph, node: Node) -> int:
    """Iterations of the outer loops of the broadcasting elementwise kernels."""
    shape = list(g.out(node).shape)
    shape = [1] * (5 - len(shape)) + shape
    return int(np.prod(shape[:4]))


def elementwise_flat(node: Node, g: Graph, calls: int, t: Target, args: list[list[str]]
                     ) -> Features:  # fmt: skip
    """tinyc_addsub_n_s8 / tinyc_mul_n_s8: same-shape operands, one inline loop (tables or
    scalar requantization), or Helium vectors of four when the call's ``vec`` flag is set."""
    f = Features()
    n = g.out(node).size
    vec = bool(args) and args[0][_VEC_ARG[node.op]].strip() == "1"
    f.add(f.insn, "calls", calls)
    f.add(f.insn, "vecs" if vec else "elems", _ceil(n, 4) if vec else n)
    f.add(f.code, "calls", calls)
    f.add(f.code, "vec_calls", calls * int(vec))
    f.weight_reads = 0 if vec else 8 * n
    return f


#: position of the ``fast`` argument of tinyc_fc_s8
_FC_FAST_ARG = 11
#: position of the ``vec`` argument of the flat elementwise kernels
_VEC_ARG = {"ADD": 6, "SUB": 6, "MUL": 7}


def elementwise(node: Node, g: Graph, calls: int, t: Target) -> Features:
    """tinyc_addsub_s8 / tinyc_mul_s8: broadcasting loops over five dimensions."""
    f = Features()
    f.add(f.insn, "calls", calls)
    f.add(f.insn, "outer", _bcast_outer(g, node))
    f.add(f.insn, "elems", g.out(node).size)
    f.add(f.code, "calls", calls)
    return f


def per_element(node: Node, g: Graph, calls: int, t: Target) -> Features:
    """tinyc_lut_s8, quantize / dequantize: one loop over the elements."""
    f = Features()
    f.add(f.insn, "calls", calls)
    f.add(f.insn, "elems", g.out(node).size)
    f.add(f.code, "calls", calls)
    f.weight_reads = g.out(node).size
    return f


def softmax(node: Node, g: Graph, calls: int, t: Target) -> Features:
    f = Features()
    y = g.out(node)
    f.add(f.insn, "calls", calls)
    f.add(f.insn, "rows", y.size // y.shape[-1])
    f.add(f.insn, "elems", y.size)
    f.add(f.code, "calls", calls)
    f.weight_reads = 8 * y.size
    return f


def mean(node: Node, g: Graph, calls: int, t: Target) -> Features:
    f = Features()
    x = g.inp(node, 0)
    assert x is not None
    f.add(f.insn, "calls", calls)
    f.add(f.insn, "outputs", g.out(node).size)
    f.add(f.insn, "elems", x.size)
    f.add(f.code, "calls", calls)
    return f


def copy_blocks(node: Node, g: Graph, calls: int, t: Target) -> Features:
    """tinyc_copy_blocks: one memcpy per outer index, per input (join) or output (split)."""
    f = Features()
    joins = node.op in ("CONCATENATION", "PACK")
    parts = node.inputs if joins else node.outputs
    whole = g.out(node) if joins else g.inp(node, 0)
    assert whole is not None
    axis = normalize_axis(attr(node, "axis"), len(whole.shape), node)
    outer = int(np.prod(whole.shape[:axis], dtype=np.int64))
    f.add(f.insn, "calls", calls)
    f.add(f.insn, "blocks", outer * len(parts))
    f.add(f.insn, "bytes", sum(g.tensors[p].nbytes for p in parts))
    f.add(f.code, "calls", calls)
    return f


def pad(node: Node, g: Graph, calls: int, t: Target) -> Features:
    """tinyc_pad: recursion over dimensions, a memcpy per innermost row."""
    f = Features()
    x, y = g.inp(node, 0), g.out(node)
    assert x is not None
    f.add(f.insn, "calls", calls)
    f.add(f.insn, "dims", sum(int(np.prod(x.shape[:d])) for d in range(len(x.shape))))
    f.add(f.insn, "rows", int(np.prod(x.shape[:-1])))
    f.add(f.insn, "in_bytes", x.nbytes)
    f.add(f.insn, "out_bytes", y.nbytes)
    f.add(f.code, "calls", calls)
    return f


def transpose(node: Node, g: Graph, calls: int, t: Target) -> Features:
    f = Features()
    y = g.out(node)
    f.add(f.insn, "calls", calls)
    f.add(f.insn, "elems", y.size)
    f.add(f.insn, "elems_rank", y.size * len(y.shape))
    f.add(f.code, "calls", calls)
    return f


def memcpy(node: Node, g: Graph, calls: int, t: Target) -> Features:
    """A RESHAPE whose input and output sit at different arena offsets: one block copy
    (costed with tinyc_copy_blocks' coefficients, see ALIASES)."""
    f = Features()
    f.add(f.insn, "calls", calls)
    f.add(f.insn, "blocks", calls)
    f.add(f.insn, "bytes", g.out(node).nbytes)
    f.add(f.code, "calls", calls)
    return f


# -- recurrent layers (tinyc_rnn.h) ---------------------------------------------------------

#: the kernels of tinyc_rnn.h and the op each runs
RECURRENT = {"tinyc_lstm_s8": "LSTM", "tinyc_gru_s8": "GRU", "tinyc_rnn_s8": "RNN"}


def _rnn_layout(t: Target) -> tuple[str, int]:
    """The recurrent kernels' matrix path on a target and the steps one input-side pass
    computes (tinyc_rnn_block): DSP pairs 3, unsigned pairs 2, Helium quads (and the pair
    layout in plain C) 1."""
    if t.kernels == "mve":
        return "quads", 1
    if t.kernels == "plain":
        return "upairs", 2
    return ("pairs", 3) if t.dsp else ("c", 1)


def _rnn_rq(f: Features, part: str, shifts: list[int], count: float) -> None:
    """``count`` values through tinyc_rnn_rq with each of ``shifts``: right shifts take the
    short path, the others TFLite's general multiply."""
    general = sum(1 for s in shifts if s >= 0)
    f.add(f.insn, f"{part}_rq", count * len(shifts))
    f.add(f.insn, f"{part}_rq_general", count * general)


def _rnn_copy(f: Features, t: Target, kind: str, size: int, count: float, site: bool) -> None:
    """``count`` constant-size copies of ``size`` bytes from one place in the code (``site``:
    compiled in; an inlined copy's code grows with its size)."""
    _copies(f, t, kind, size, count)
    if site and size > 0:
        limit = t.memcpy_inline_max if kind == "cpy" else t.memset_inline_max
        if size <= limit:
            f.add(f.code, f"{kind}_inl_sites", 1)
            f.add(f.code, f"{kind}_inl_bytes", size)
        else:
            f.add(f.code, f"{kind}_call_sites", 1)


def _rnn_row(f: Features, t: Target, lay: str, k: int, count: float, site: bool) -> None:
    """tinyc_rnn_row for ``count`` rows of k values: copied and flipped (unsigned pairs),
    staged when k % 4 and widened to int16 (DSP pairs), or read in place."""
    k4 = _ceil(k, 4) * 4
    if lay == "upairs":
        _rnn_copy(f, t, "cpy", k, count, site)
        _rnn_copy(f, t, "set", k4 - k, count, site)
        f.add(f.insn, "flip_groups", count * (k4 // 4))
    elif lay == "pairs":
        if k != k4:
            _rnn_copy(f, t, "cpy", k, count, site)
            _rnn_copy(f, t, "set", k4 - k, count, site)
        f.add(f.insn, "row_groups", count * (k4 // 4))
    f.add(f.insn, "rows", count)
    f.add(f.code, "row_sites", int(site))


def _rnn_gates(f: Features, lay: str, k: int, gate_rows: int, shifts: list[int], count: float,
               add: bool) -> None:  # fmt: skip
    """tinyc_rnn_gates over whole gates (one per entry of ``shifts``) of ``gate_rows`` rows
    of k values, ``count`` times: a tinyc_rnn_mv4 per four rows (one-row assembly kernel,
    Helium VMLADAVA blocks of 16, or C), each row requantized to int16 (added to what the
    output holds when ``add``)."""
    k4 = _ceil(k, 4) * 4
    groups = k4 // 4
    quads = count * len(shifts) * gate_rows // 4
    f.add(f.insn, "gates", count * len(shifts))
    f.add(f.insn, "mv_calls", quads)
    f.add(f.code, "gate_sites", 1)
    if lay == "upairs":
        f.add(f.insn, "mv_u_groups", quads * groups)
        f.weight_reads += quads * (4 * k4 + 16)
    elif lay == "pairs":
        f.add(f.insn, "mv_single", quads * (groups % 4))
        f.add(f.insn, "mv_quad", quads * (groups // 4))
        f.weight_reads += quads * (4 * k4 + 16)
    elif lay == "quads":
        f.add(f.insn, "mv_blocks", quads * (k // 16))
        f.add(f.insn, "mv_tail", quads * int(k % 16 > 0))
        f.add(f.code, "mv_tail_sites", int(k % 16 > 0))
        f.weight_reads += quads * (4 * _ceil(k, 16) * 16 + 16)
    else:
        f.add(f.insn, "mv_macs", quads * 4 * k)
        f.weight_reads += quads * (4 * k4 + 16)
    for s in shifts:  # Helium: right-shift gates four rows at a time
        if lay == "quads" and s < 0:
            f.add(f.insn, "g_vec", count * gate_rows // 4)
            f.add(f.insn, "g_add_vec", count * gate_rows // 4 * int(add))
        else:
            _rnn_rq(f, "g", [s], count * gate_rows)
            f.add(f.insn, "g_add", count * gate_rows * int(add))


def _rnn_xblocks(f: Features, t: Target, lay: str, k: int, gate_rows: int,
                 shifts: list[int], nbs: list[int], code: tuple[bool, bool]) -> None:  # fmt: skip
    """tinyc_rnn_xblock for blocks of ``nbs`` steps each: the input-side pre-activations of
    a block in one pass of the three-row (DSP) or two-row (unsigned pairs) kernels over
    every channel pair, or step by step through the one-row path. ``code``: whether the
    block path and the one-row path are compiled in."""
    k4 = _ceil(k, 4) * 4
    groups = k4 // 4
    pairs = len(shifts) * gate_rows // 2
    multi = [nb for nb in nbs if nb > 1 and lay in ("pairs", "upairs")]
    single = sum(nb for nb in nbs if not (nb > 1 and lay in ("pairs", "upairs")))
    f.add(f.insn, "xblocks", len(nbs))
    n = len(multi)
    if code[0]:
        f.add(f.insn, "xm_blocks", n)
        f.add(f.insn, "xm_gates", n * len(shifts))
        f.add(f.insn, "xm_calls", n * pairs)
        if lay == "pairs":
            if k != k4:
                _rnn_copy(f, t, "cpy", k, 3 * n, True)
                _rnn_copy(f, t, "set", k4 - k, 3 * n, True)
            f.add(f.insn, "row_groups", 3 * n * groups)
            f.add(f.insn, "xm_single", n * pairs * (groups % 4))
            f.add(f.insn, "xm_quad", n * pairs * (groups // 4))
            f.weight_reads += n * pairs * (2 * k4 + 8)
        else:
            for _ in range(2):
                _rnn_copy(f, t, "cpy", k, n, True)
                _rnn_copy(f, t, "set", k4 - k, n, True)
            f.add(f.insn, "flip_groups", 2 * n * groups)
            f.add(f.insn, "xm_u_groups", n * pairs * groups)
            f.weight_reads += n * pairs * (2 * k4 + 8)
        # every channel pair requantizes its two channels for each step of the block
        for s in shifts:
            _rnn_rq(f, "x", [s], gate_rows * sum(multi if lay == "pairs" else [2] * n))
    if code[1]:
        _rnn_row(f, t, lay, k, single, True)
        _rnn_gates(f, lay, k, gate_rows, shifts, single, add=False)


#: blocks of three steps up to which gcc (12, -O2) resolves the size of every block of a
#: one-sequence recurrent layer (measured: 12 steps are three-step blocks only, 15 compile
#: the one-step path too; with a batch loop around, every length resolves)
_RNN_KNOWN_BLOCKS = 4


#: the grouped sparse gate loops of the recurrent kernels, costed as a kernel of their own
RNN_GROUPED = "tinyc_rnn_spggates"


def _rnn_sparse(f: Features, t: Target, w2d: np.ndarray, first: int, rows: int,
                count: float, nrows: int = 1, grouped: bool = False, add: bool = False,
                shifts: list[int] | None = None) -> None:  # fmt: skip
    """tinyc_rnn_spgates / tinyc_rnn_spxblock over rows [first, first + rows) of a stacked
    sparse gate matrix, ``count`` times, ``nrows`` steps per decode (three: the DSP input
    side's blocks). Per row: costed with tinyc_spfc_s8's coefficients (a channel's overhead
    and requantization per row; per nonzero its one-row loops, or its multi-row loop).
    ``grouped`` (tinyc_rnn_spggates, one step per decode; ``add``: onto what the output
    holds; ``shifts``: the gates' requantization shifts, a left shift takes TFLite's general
    multiply, and on Helium the scalar path): features of their own (RNN_GROUPED,
    calibrated on what the layer's other features leave, bench/estimate_calibrate.py's
    family sparse_rnn_grouped)."""
    from tinyc.backends.cmsis.emit.sparse import GROUP, encode, encode_grouped

    if grouped:
        per = encode_grouped(w2d[first : first + rows]).per_seg
        bg = f.borrowed.setdefault(RNN_GROUPED, {})

        def addg(name: str, v: float) -> None:
            if v:
                bg[name] = bg.get(name, 0.0) + float(v)

        groups = count * (rows // GROUP)
        addg("spgr_groups", groups)
        addg("spgr_add_groups", groups * int(add))
        general = sum(1 for s in shifts or [] if s >= 0)
        addg("spgr_general_groups", count * general * (rows // GROUP) / max(1, len(shifts or [1])))
        addg("spgr_seg", count * per.size)
        if t.dsp and not t.quads:  # tinyc_spg_dot: two columns at a time, then the odd one
            addg("spgr_pairs", count * int((per // 2).sum()))
            addg("spgr_odd", count * int((per % 2).sum()))
        else:
            addg("spgr_cols", count * int(per.sum()))
        f.weight_reads += count * (per.size + int(per.sum()) * (1 + GROUP) + 4 * rows)
        return
    per = encode(w2d[first : first + rows]).per_seg
    b = f.borrowed.setdefault("tinyc_spfc_s8", {})

    def add1(name: str, v: float) -> None:
        if v:
            b[name] = b.get(name, 0.0) + float(v)

    add1("sp_ch", count * rows * nrows)
    add1("sp_seg", count * per.size)
    if nrows > 1:
        add1("spm_nnz", count * int(per.sum()) * nrows / 4)
        return
    if t.quads:
        add1("sp_vec", count * int((-(-per // 16)).sum()))
    elif t.dsp:  # tinyc_sp_dotp: eight, then four at a time, then the n % 4 last ones
        add1("sp1_eight", count * int((per // 8).sum()))
        add1("sp1_four", count * int((per % 8 // 4).sum()))
        add1("sp1_tail", count * int((per % 4).sum()))
    else:
        add1("sp1_two", count * int((per // 2).sum()))
        add1("sp1_tail", count * int((per % 2).sum()))


def recurrent(node: Node, g: Graph, calls: int, t: Target,
              sides: tuple[str | None, str | None] | None = None) -> Features:  # fmt: skip
    """tinyc_lstm_s8 / tinyc_gru_s8 / tinyc_rnn_s8 (tinyc_rnn.h) and the node function
    around it: per batch, the steps in blocks (the input side of a block in one matrix
    pass), per step the recurrent side over every gate row and the element-wise cell
    update per unit (sigmoid / tanh table interpolations, products requantized), the
    output row copied out; before, the working copies of initial states that are not model
    states; after, the final states the model reads.

    The layer's sizes are constants of the inlined kernel: the code holds only the paths
    they reach, and inlined copies whose code grows with their size."""
    from tinyc.backends.cmsis.emit import sparse
    from tinyc.backends.cmsis.emit.recurrent import _work_buffers, gates_of, stacked
    from tinyc.ir.ops import get_op

    f = Features()
    # sparse gate matrices (``sides``: how the input side and the recurrent side are stored,
    # None dense, "row" or "grouped"; default: the backend's choice on this kernel variant)
    xsp, hsp = sides if sides is not None else sparse.use_sparse_gates(node, g, t.kernels)
    op = get_op(node.op)
    d = op.dims(node, g)
    lay, blk = _rnn_layout(t)
    n, n4 = d.hidden, _ceil(d.hidden, 4) * 4
    gates, _, _ = gates_of(node, g)
    xs = [gt.gx[1] for gt in gates]
    hs = [gt.gh[1] for gt in gates]
    steps = d.batch * d.time
    nbs = [min(blk, d.time - s0) for s0 in range(0, d.time, blk)] * d.batch
    # the compiler knows which block sizes the steps give (constant sizes; blocks of three:
    # up to _RNN_KNOWN_BLOCKS blocks) and leaves out a path no block takes
    multi_code = any(nb > 1 for nb in nbs) and lay in ("pairs", "upairs")
    known = blk != 3 or d.batch > 1 or _ceil(d.time, blk) <= _RNN_KNOWN_BLOCKS
    single_code = not multi_code or any(nb == 1 for nb in nbs) or not known
    f.add(f.insn, "calls", calls)
    f.add(f.insn, "batches", d.batch)
    f.add(f.insn, "steps", steps)
    if xsp:
        wx = stacked([gt.w for gt in gates])
        f.add(f.insn, "xblocks", len(nbs))
        if xsp == sparse.GROUPED:
            _rnn_sparse(f, t, wx, 0, wx.shape[0], steps, grouped=True, shifts=xs)
        else:
            three = sum(1 for nb in nbs if nb >= 3)
            _rnn_sparse(f, t, wx, 0, wx.shape[0], three, 3)
            _rnn_sparse(f, t, wx, 0, wx.shape[0], sum(nb for nb in nbs if nb < 3))
    else:
        _rnn_xblocks(f, t, lay, d.input, n4, xs, nbs, (multi_code, single_code))
    wh = stacked([gt.r for gt in gates]) if hsp else None

    def hgates(first: int, shifts: list[int], add: bool, row: bool = False) -> None:
        if wh is not None:
            _rnn_sparse(f, t, wh, first * n4, len(shifts) * n4, steps,
                        grouped=hsp == sparse.GROUPED, add=add, shifts=shifts)  # fmt: skip
            return
        if row:
            _rnn_row(f, t, lay, n, steps, True)
        _rnn_gates(f, lay, n, n4, shifts, steps, add=add)

    if wh is None:
        _rnn_row(f, t, lay, n, steps, True)  # the hidden state, ready for the matrix kernels
    units = steps * n
    # Helium: the element-wise loops four units at a time when their products requantize
    # by right shifts (else one unit at a time, as elsewhere)
    vec = lay == "quads"
    vecs = steps * _ceil(n, 4)

    def cell_loop(name: str, shifts: list[int]) -> None:
        if vec and all(s < 0 for s in shifts):
            f.add(f.insn, f"{name}_vecs", vecs)
            f.add(f.code, f"{name}_vec", 1)
        else:
            f.add(f.insn, f"{name}_units", units)
            _rnn_rq(f, "c", shifts, units)
        f.add(f.code, "c_general", sum(1 for s in shifts if s >= 0))

    if node.op == "LSTM":
        q = op.quant_params(node, g)
        hgates(0, hs, True)
        cell_loop("lstm", [q.forget_mul[1], q.input_mul[1], q.output_mul[1]])
        if "lstm_units" in f.insn:
            f.add(f.insn, "clip_units", units * int(q.cell_clip > 0))
        f.add(f.code, "clip", int(q.cell_clip > 0))
        tables = 5
    elif node.op == "GRU":
        q = op.quant_params(node, g)
        hgates(0, hs[:2], True)
        if attr(node, "linear_before_reset"):
            hgates(2, hs[2:], False)
            cell_loop("lbr", [q.reset_mul[1]])
            f.add(f.code, "lbr", 1)
        else:
            cell_loop("reset", [q.reset_mul[1]])
            f.add(f.code, "nonlbr", 1)
            hgates(2, hs[2:], True, row=True)
        cell_loop("gru", [q.keep_mul[1], q.update_mul[1]])
        tables = 3
    else:
        q = op.quant_params(node, g)
        hgates(0, hs, True)
        relu = q["act"] == "Relu"
        cell_loop("relu" if relu else "act", [] if relu else [q["out"][1]])
        f.add(f.code, "relu" if relu else "act", 1)
        tables = 0 if relu else 1
    f.weight_reads += 4 * tables * units  # two table entries per sigmoid / tanh
    if node.outputs[0]:
        _rnn_copy(f, t, "cpy", n, steps, True)
    # the node function's working copies of initial states, and its final-state outputs
    for slot, nbytes, _ in _work_buffers(node, g):
        src = g.inp(node, slot)
        if src is None:
            _rnn_copy(f, t, "set", nbytes, 1, True)
        else:
            _rnn_copy(f, t, "cpy", src.nbytes, 1, True)
    for name in node.outputs[1:]:
        if name:
            _rnn_copy(f, t, "cpy", g.tensors[name].nbytes, 1, True)
    f.add(f.code, node.op.lower(), calls)
    f.add(f.code, "x_multi", int(multi_code))
    f.add(f.code, "x_single", int(single_code))
    f.add(f.code, "blocks", int(d.time > blk))
    f.add(f.code, "nb_runtime", int(not known))  # loops over a block's steps left generic
    f.add(f.code, "batch", int(d.batch > 1))
    f.add(f.code, "reverse", int(bool(attr(node, "reverse")) and d.time > 1))
    f.add(f.code, "time_major", int(bool(attr(node, "time_major")) and d.time > 1 and d.batch > 1))
    return f


FeatureFn = Callable[..., Features]

#: kernel function called by a node function -> its features
KERNELS: dict[str, FeatureFn] = {
    "tinyc_conv_s8": conv,
    "tinyc_fc_s8": fully_connected,
    "tinyc_dw_s8": depthwise_ring,
    "tinyc_depthwise_s8": depthwise_generic,
    "tinyc_dwm_s8": depthwise_multiplier,
    "tinyc_avgpool_s8": pool,
    "tinyc_maxpool_s8": pool,
    "tinyc_addsub_s8": elementwise,
    "tinyc_addsub_n_s8": elementwise_flat,
    "tinyc_mul_n_s8": elementwise_flat,
    "tinyc_mul_s8": elementwise,
    "tinyc_lut_s8": per_element,
    "tinyc_quantize_f32_s8": per_element,
    "tinyc_dequantize_s8_f32": per_element,
    "tinyc_softmax_s8": softmax,
    "tinyc_mean_s8": mean,
    "tinyc_copy_blocks": copy_blocks,
    "tinyc_pad": pad,
    "tinyc_transpose": transpose,
    "memcpy": memcpy,
    "tinyc_move_down": memcpy,  # (fused chains only: chain_features)
    **dict.fromkeys(RECURRENT, recurrent),
}


#: runtime sections (by unit-name prefix) a kernel links only when its calls take the path
#: that needs them, as named in Features.links
VARIANTS = {"tinyc_fc_s8": ("tinyc_mm_dsp.o:.text", "tinyc_mm_mve.o:.text")}

#: kernels costed with another kernel's calibration: the same loop without layers of its own
#: (copies), or kernels sharing their parts, calibrated together (the recurrent kernels)
ALIASES = {
    "memcpy": "tinyc_copy_blocks",
    "tinyc_move_down": "tinyc_copy_blocks",
    **dict.fromkeys(RECURRENT, "tinyc_rnn.h"),
}

#: calls in a node function that its main kernel's features count (a recurrent layer's
#: working copies of its states)
ABSORBS = dict.fromkeys(RECURRENT, ("memcpy", "memset"))


def main_kernels(calls: Counter[str]) -> Counter[str]:
    """The calls of a node function the cost model costs one by one: those another call's
    features count (ABSORBS) left out."""
    absorbed = {a for k in calls for a in ABSORBS.get(k, ())}
    return Counter({k: n for k, n in calls.items() if k not in absorbed})


#: op kinds a kernel computes, to find the member of a fused node a call is for
_KERNEL_OPS = {
    "tinyc_conv_s8": ("CONV_2D",),
    "tinyc_dw_s8": ("DEPTHWISE_CONV_2D",),
    "tinyc_addsub_n_s8": ("ADD", "SUB"),
    "tinyc_addsub_s8": ("ADD", "SUB"),
    "tinyc_mul_n_s8": ("MUL",),
    "tinyc_mul_s8": ("MUL",),
}


def _member(kernel: str, node: Node, args: list[list[str]]) -> Node:
    """The member of a fused node a kernel call computes: the one of the kernel's op kind;
    of a chain's two convolutions, the consumer reads a window of rows (its input height,
    the second argument, is an expression), the producer the whole input."""
    members = [v for v in node.attrs.values() if isinstance(v, Node)]
    kind = [m for m in members if m.op in _KERNEL_OPS.get(kernel, ())] or members[-1:]
    if len(kind) > 1 and kernel == "tinyc_conv_s8" and node.op == FUSED_CONV_CONV:
        whole = bool(args) and args[0][1].strip().isdigit()
        return node.attrs["producer"] if whole else node.attrs["consumer"]
    return kind[0]


def _chain_schedule(s: ChainShape) -> tuple[list[tuple[int, int]], int, int]:
    """The loop of a fused convolution chain (FusedConvConvEmitter) replayed: the producer
    row ranges made per call, and the window moves with the bytes they move."""
    gc = s.gc
    k_span = (gc["k_h"] - 1) * gc["dil_h"] + 1
    made: list[tuple[int, int]] = []
    moves = moved = have0 = have1 = 0
    for oy, n, _ in s.steps():
        lo = max(oy * gc["s_h"] - gc["pad_t"], 0)
        hi = min((oy + n - 1) * gc["s_h"] - gc["pad_t"] + k_span, gc["in_h"])
        if lo >= have1:
            have0 = have1 = lo
        elif lo > have0:
            moves, moved = moves + 1, moved + (have1 - lo) * s.row_in
            have0 = lo
        while have1 < hi:
            m = min(s.batch, s.gp["out_h"] - have1)
            made.append((have1, have1 + m))
            have1 += m
    return made, moves, moved


def chain_features(kernel: str, node: Node, g: Graph, t: Target, args: list[list[str]]
                   ) -> Features:  # fmt: skip
    """A kernel of a fused CONV_2D -> CONV_2D [-> ADD] chain: the producer convolution per
    batch of rows, the consumer per step of output rows, the residual ADD per step, and the
    window's moves (an inlined copy loop, costed with the block copy's coefficients)."""
    s = ChainShape(node, g, t.kernels)
    steps = s.steps()
    made, moves, moved = _chain_schedule(s)
    if kernel == "tinyc_move_down":
        f = Features()
        f.add(f.insn, "calls", moves)
        f.add(f.insn, "blocks", moves)
        f.add(f.insn, "bytes", moved)
        f.add(f.code, "calls", 1)
        return f
    member = _member(kernel, node, args)
    if kernel == "tinyc_conv_s8":
        if member is s.producer:
            w = s.gp["out_w"]
            return conv_features(member, g, [(a * w, b * w) for a, b in made], t)
        w = s.gc["out_w"]
        return conv_features(member, g, [(oy * w, (oy + n) * w) for oy, n, _ in steps], t)
    f = KERNELS[kernel](member, g, 1, t, args)  # the residual ADD, once per step
    f.add(f.insn, "calls", len(steps) - 1)
    return f


def fused_features(kernel: str, node: Node, g: Graph, t: Target, args: list[list[str]]
                   ) -> Features:  # fmt: skip
    """A kernel of a fused node (tinyc.backends.cmsis.fusion), costed on the member it
    computes. The members before the last are produced row by row, each row once: a
    convolution is called per output row, an elementwise op per row of its output."""
    if node.op == FUSED_CONV_CONV:
        return chain_features(kernel, node, g, t, args)
    if kernel == "tinyc_dw_s8" and node.op == FUSED_CONV_DW:
        return depthwise_ring(node, g, 1, t)
    member = _member(kernel, node, args)
    y = g.out(member)
    rows = y.shape[1] if len(y.shape) == 4 else 1
    if kernel == "tinyc_conv_s8":
        w = y.shape[2]
        return conv_features(member, g, [(r * w, (r + 1) * w) for r in range(rows)], t)
    fn = KERNELS[kernel]
    f = fn(member, g, 1, t, args) if kernel in WITH_ARGS else fn(member, g, 1, t)
    f.add(f.insn, "calls", rows - 1)  # one call per row
    return f


#: kernels whose features read the arguments of the generated calls
WITH_ARGS = {"tinyc_addsub_n_s8", "tinyc_mul_n_s8", "tinyc_fc_s8"}


def node_features(kernel: str, node: Node, g: Graph, calls: int, t: Target,
                  args: list[list[str]] | None = None) -> Features:  # fmt: skip
    """Features of ``node`` calling ``kernel`` ``calls`` times (``args``: the argument
    expressions of each call, from the generated C); KeyError for an unknown kernel."""
    fn = KERNELS[kernel]
    if node.op.startswith("tinyc:"):
        return fused_features(kernel, node, g, t, args or [])
    if kernel in WITH_ARGS:
        return fn(node, g, calls, t, args or [])
    return fn(node, g, calls, t)


# ---- sparse kernels (tinyc_sparse.h; tinyc.backends.cmsis.emit.sparse) ---------------------


def _sparse_matrix(f: Features, node: Node, g: Graph, t: Target, multi: int, ones: int,
                   oc: int, w2d: np.ndarray) -> None:  # fmt: skip
    """tinyc_spmm_s8 over ``multi`` blocks of TINYC_SP_ROWS rows and ``ones`` single rows:
    per channel and segment a decode of its nonzeros (DSP: eight at a time; Helium: sixteen
    per gather), shared by the rows of a block (Helium: one pass per row)."""
    from tinyc.backends.cmsis.emit.sparse import SP_ROWS, encode

    per = encode(w2d).per_seg.reshape(-1)
    nnz = int(per.sum())
    rows = SP_ROWS[t.kernels]
    blocks = multi + ones
    f.add(f.insn, "sp_blocks", blocks)
    f.add(f.insn, "sp_ch", blocks * oc)
    f.add(f.insn, "sp_seg", blocks * per.size)
    if t.quads:
        vec = int((-(-per // 16)).sum())
        f.add(f.insn, "sp_vec", (ones + multi * rows) * vec)
        f.add(f.insn, "sp_vseg", multi * rows * per.size)
    else:
        if t.dsp:  # eight, then four at a time, then the n % 4 last ones
            f.add(f.insn, "sp1_eight", ones * int((per // 8).sum()))
            f.add(f.insn, "sp1_four", ones * int((per % 8 // 4).sum()))
            f.add(f.insn, "sp1_tail", ones * int((per % 4).sum()))
        else:  # two at a time
            f.add(f.insn, "sp1_two", ones * int((per // 2).sum()))
            f.add(f.insn, "sp1_tail", ones * int((per % 2).sum()))
        f.add(f.insn, "spm_nnz", multi * nnz)
        f.add(f.insn, "spm_odd", multi * int((per % 2).sum()))
    _requant(f, node, g, multi * rows + ones, 1)
    f.weight_reads = blocks * (2 * nnz + per.size + 12 * oc)


def sparse_fc(node: Node, g: Graph, calls: int, t: Target) -> Features:
    """tinyc_spfc_s8: rows in blocks of TINYC_SP_ROWS read in place, a lone last row alone."""
    from tinyc.backends.cmsis.emit.sparse import SP_ROWS

    f = Features()
    w, x = g.inp(node, 1), g.inp(node, 0)
    assert w is not None and w.data is not None and x is not None
    oc, k = w.shape
    rows = x.size // k
    r = SP_ROWS[t.kernels]
    ones = int(rows % r == 1)
    multi = rows // r + int(rows % r >= 2)
    f.add(f.insn, "calls", calls)
    f.add(f.code, "calls", calls)
    f.add(f.code, "multirow_calls", calls * int(rows > 1))
    _sparse_matrix(f, node, g, t, multi, ones, oc, w.data.reshape(oc, -1))
    return f


def sparse_fc_grouped(node: Node, g: Graph, calls: int, t: Target) -> Features:
    """tinyc_spfcg_s8: row after row, per group of four channels and segment its columns
    (DSP: two at a time, then the odd one; Helium and others: one at a time)."""
    from tinyc.backends.cmsis.emit.sparse import encode_grouped

    f = Features()
    w, x = g.inp(node, 1), g.inp(node, 0)
    assert w is not None and w.data is not None and x is not None
    oc, k = w.shape
    rows = x.size // k
    sw = encode_grouped(w.data.reshape(oc, -1))
    per = sw.per_seg.reshape(-1)
    f.add(f.insn, "calls", calls)
    f.add(f.code, "calls", calls)
    f.add(f.insn, "spg_rows", calls * rows)
    f.add(f.insn, "spg_groups", calls * rows * sw.per_seg.shape[0])
    f.add(f.insn, "spg_seg", calls * rows * per.size)
    if t.dsp and not t.quads:
        f.add(f.insn, "spg_pairs", calls * rows * int((per // 2).sum()))
        f.add(f.insn, "spg_odd", calls * rows * int((per % 2).sum()))
    else:
        f.add(f.insn, "spg_cols", calls * rows * int(per.sum()))
    _requant(f, node, g, calls * rows * oc, calls)
    f.weight_reads = calls * rows * (sw.nbytes + 12 * oc)
    return f


def sparse_conv(node: Node, g: Graph, calls: int, t: Target) -> Features:
    """tinyc_spconv_s8: output pixels in blocks of TINYC_SP_ROWS (a short last block repeats
    its last pixel, a lone one goes alone), receptive fields gathered unless 1x1 unpadded."""
    from tinyc.backends.cmsis.emit.conv import ConvEmitter
    from tinyc.backends.cmsis.emit.sparse import SP_ROWS

    f = Features()
    geo = conv_geometry(node, g)
    w = g.inp(node, 1)
    assert w is not None and w.data is not None
    oc = geo["out_c"]
    pixels = geo["out_h"] * geo["out_w"]
    r = SP_ROWS[t.kernels]
    ones = int(pixels % r == 1)
    multi = pixels // r + int(pixels % r >= 2)
    direct = ConvEmitter.sparse_direct(node, g)
    f.add(f.insn, "calls", calls)
    f.add(f.code, "calls", calls)
    f.add(f.code, "im2col_calls", 0 if direct else calls)
    f.add(f.insn, "slots", calls * pixels)
    if not direct:
        k = geo["k_h"] * geo["k_w"] * geo["in_c"]
        _im2col(f, t, geo, geo["in_c"], False, np.arange(pixels), k)
    _sparse_matrix(f, node, g, t, multi, ones, oc, w.data.reshape(oc, -1))
    if calls > 1:
        f.insn = {k: v * calls for k, v in f.insn.items()}
        f.weight_reads *= calls
    return f


def dense_features(node: Node, g: Graph, t: Target) -> Features:
    """The dense kernel's features of a FULLY_CONNECTED / CONV_2D layer as the C backend
    would emit it (the sparse choice compares them with the sparse kernel's)."""
    if node.op == "CONV_2D":
        return conv(node, g, 1, t)
    from tinyc.backends.cmsis.emit.conv import _fc_fast, folded_bias
    from tinyc.ir.ops import get_op

    w = g.inp(node, 1)
    assert w is not None and w.data is not None
    rq = get_op("FULLY_CONNECTED").requant(node, g)
    layout = layout_for(t.kernels)
    bias = folded_bias(node, g, rq, True)
    right_only = layout.records(rq, layout.kernel_bias(w.data, bias))[1]
    fast = _fc_fast(w.data, bias, rq, right_only) if not t.quads else 0
    args = [["0"] * _FC_FAST_ARG + [str(fast)]]
    return fully_connected(node, g, 1, t, args)


KERNELS["tinyc_spfc_s8"] = sparse_fc
KERNELS["tinyc_spconv_s8"] = sparse_conv
KERNELS["tinyc_spfcg_s8"] = sparse_fc_grouped


# ---- Kronecker kernel (kron_s8.c; tinyc.backends.cmsis.emit.kronecker) ----------------------


def _kron_dot(f: Features, t: Target, stage: str, dots: int, n: int, vec: int) -> None:
    """``dots`` dot products of ``n`` values: Helium ``vec`` values per predicated vector,
    DSP four per SMLAD pair then one at a time, plain C one at a time."""
    f.add(f.insn, f"{stage}_dots", dots)
    if t.quads:
        f.add(f.insn, f"{stage}_vec", dots * _ceil(n, vec))
        return
    quads = n // 4 if t.dsp else 0
    f.add(f.insn, f"{stage}_quad", dots * quads)
    f.add(f.insn, f"{stage}_tail", dots * (n - 4 * quads))
    f.add(f.insn, f"{stage}_tails", dots * int(n > 4 * quads))  # the tail loop entered


def kronecker_fc(node: Node, g: Graph, calls: int, t: Target) -> Features:
    """tinyc_kron_fc_s8 per row: stage 1 R*q*s dots of t int8 values (requantized, clamped
    and stored as int16), stage 2 p*s dots of R*q int8 x int16 values (requantized)."""
    from tinyc.ir.ops import get_op

    d = get_op("KRONECKER_FC").dims(node, g)
    f = Features()
    n = d.rows * calls
    f.add(f.insn, "calls", calls)
    f.add(f.insn, "rows", n)
    f.add(f.insn, "s1_loops", n * d.rank * d.q)
    _kron_dot(f, t, "s1", n * d.rank * d.q * d.s, d.t, 16)
    f.add(f.insn, "s2_loops", n * d.p)
    _kron_dot(f, t, "s2", n * d.p * d.s, d.rank * d.q, 8)
    f.add(f.code, "calls", calls)
    f.weight_reads = n * (d.rank * d.q * d.s * d.t + d.p * d.s * d.rank * d.q)
    return f


KERNELS["tinyc_kron_fc_s8"] = kronecker_fc
# ---- end of the Kronecker kernel's block ---------------------------------------------------

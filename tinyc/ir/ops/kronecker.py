"""KRONECKER_FC: a fully-connected layer whose weight matrix is a sum of R Kronecker products,
W = sum_r A_r (x) B_r, applied without ever forming W.

Operands: input 0 ``x`` [..., q*t] (rows of q*t features, as FULLY_CONNECTED's input),
input 1 ``A`` [R, p, q], input 2 ``B`` [R, s, t], input 3 an optional bias [p*s]; the output
has p*s features per row. W = sum_r kron(A_r, B_r) is [p*s, q*t]: W[i*s + k, j*t + l] =
sum_r A_r[i, j] B_r[k, l]. A row x, viewed as X [q, t], gives Y [p, s] = sum_r A_r X B_r^T
(row-major: y = vec(Y)). The product runs in that order: first Z_r = X B_r^T ([q, s]; q*t*s
MACs per r), then Y = sum_r A_r Z_r (p*q*s MACs per r).

int8 (the scheme the C kernel follows bit for bit):

* ``x`` asymmetric int8 (scale sx, zero point zx); ``A`` and ``B`` symmetric int8 with one
  scale per factor (sa_r, sb_r: per channel along axis 0 of the stacked tensors); output
  asymmetric int8 (sy, zy) with the fused activation's clamp.
* Stage 1 (per r, per row): acc1[j, k] = sum_l (X[j, l] - zx) B_r[k, l] in int32, then the
  intermediate Z_r[j, k] = clamp(MBQM(acc1, m1_r), -zmax, zmax) stored as int16, symmetric.
  Its scale is S / sa_r, where S (attribute ``inner_scale``) is one accumulator scale shared
  by all r, so m1_r = quantize_multiplier(sx * sa_r * sb_r / S) (computed in double from the
  float32 scales).
* Stage 2: acc2[i, k] = bias[i*s + k] + sum_r sum_j A_r[i, j] Z_r[j, k] in int32 (bias int32
  at scale S), out = clamp(MBQM(acc2, m2) + zy) with m2 = quantize_multiplier(S / sy).
  MBQM is TFLite's MultiplyByQuantizedMultiplier (tinyc.ir.fixedpoint / tinyc_fixedpoint.h).
* ``inner_max`` (zmax) bounds the int16 intermediate so that the int32 accumulator of stage 2
  cannot overflow: R*q*127*zmax <= 2^30 and |bias| <= 2^30 (the quantizer picks zmax, at
  most 32767, and raises S where a bias would need more).

The quantization rule (``quantize_node``): calibration observes each float Z_r
(``internals``: ``z0``, ``z1``, ...); S = max_r(max|Z_r| * sa_r) / zmax so that no Z_r clips,
raised to at least max_r(sx * sa_r * sb_r) (every m1_r <= 1) and max|bias| / 2^30.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tinyc.errors import TinycError, UnsupportedError
from tinyc.ir import fixedpoint as fp
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops.base import (
    OpDef,
    Spec,
    activation_float,
    activation_range_quant,
    attr,
    register,
)
from tinyc.ir.tensor import QuantParams

X, A, B, BIAS = range(4)
INNER_MAX = 32767
MIN_SCALE = 1e-20


@dataclass(frozen=True)
class KronDims:
    rows: int
    rank: int
    p: int
    q: int
    s: int
    t: int

    @property
    def in_features(self) -> int:
        return self.q * self.t

    @property
    def out_features(self) -> int:
        return self.p * self.s


@dataclass
class KronQuant:
    input_zp: int
    output_zp: int
    mult1: np.ndarray  # int64 [R]
    shift1: np.ndarray  # int64 [R]
    mult2: int
    shift2: int
    inner_max: int
    act_min: int
    act_max: int


def inner_max_for(rank: int, q: int) -> int:
    """The largest int16 bound of Z with R*q*127*zmax at most 2^30: with a bias of at most
    2^30 in magnitude, the int32 accumulator of stage 2 cannot wrap."""
    return int(min(INNER_MAX, (1 << 30) // (127 * rank * q)))


def expand(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The dense matrix sum_r kron(A_r, B_r) ([p*s, q*t])."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return sum(np.kron(a[r], b[r]) for r in range(a.shape[0]))


@register
class KroneckerFC(OpDef):
    kind = "KRONECKER_FC"
    bias_input = BIAS
    #: TFLite has no such op: the int8 definition is tinyc's own (tinyc.coverage)
    int8_semantics = "tinyc"
    attrs = {"activation": "NONE", "keep_num_dims": False, "inner_scale": 0.0, "inner_max": 0}

    def dims(self, node: Node, g: Graph) -> KronDims:
        x, a, b = g.inp(node, X), g.inp(node, A), g.inp(node, B)
        where = f"node {node.name!r} (KRONECKER_FC)"
        if x is None or a is None or b is None:
            raise TinycError(f"{where} needs an input and two factor tensors")
        if len(a.shape) != 3 or len(b.shape) != 3 or a.shape[0] != b.shape[0]:
            raise TinycError(
                f"{where}: factors {list(a.shape)} and {list(b.shape)} are not [R, p, q] and "
                "[R, s, t] with one R"
            )
        r, p, q = a.shape
        _, s, t = b.shape
        if x.size % (q * t):
            raise TinycError(f"{where}: input {list(x.shape)} is not rows of {q}*{t} features")
        bias = g.inp(node, BIAS)
        if bias is not None and bias.size != p * s:
            raise TinycError(f"{where}: bias of {bias.size} values for {p * s} outputs")
        return KronDims(x.size // (q * t), r, p, q, s, t)

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        d = self.dims(node, g)
        x = g.inp(node, X)
        assert x is not None
        if attr(node, "keep_num_dims"):
            if x.shape[-1] != d.in_features:
                raise TinycError(f"node {node.name!r}: keep_num_dims needs {d.in_features} last")
            shape = (*x.shape[:-1], d.out_features)
        else:
            shape = (d.rows, d.out_features)
        return [(shape, g.out(node).dtype)]

    def check(self, node: Node, g: Graph) -> None:
        self.dims(node, g)
        if g.out(node).is_quantized:
            self.quant_params(node, g)

    # -- float --------------------------------------------------------------------------
    def _z(self, d: KronDims, x: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Z_r = X B_r^T per row: [rows, R, q, s]."""
        xr = np.asarray(x, np.float64).reshape(d.rows, d.q, d.t)
        return np.einsum("njl,rkl->nrjk", xr, np.asarray(b, np.float64))

    def eval_float(self, node, g, xs):
        d = self.dims(node, g)
        z = self._z(d, xs[X], xs[B])
        y = np.einsum("rij,nrjk->nik", np.asarray(xs[A], np.float64), z).reshape(d.rows, -1)
        if len(xs) > BIAS and xs[BIAS] is not None:
            y = y + np.asarray(xs[BIAS], np.float64)
        y = activation_float(y, attr(node, "activation"))
        return [y.astype(np.float32).reshape(g.out(node).shape)]

    def internals(self, node: Node, g: Graph, xs: list) -> dict[str, np.ndarray]:
        d = self.dims(node, g)
        z = self._z(d, xs[X], xs[B])
        return {f"z{r}": z[:, r].astype(np.float32) for r in range(d.rank)}

    # -- int8 ---------------------------------------------------------------------------
    def quant_params(self, node: Node, g: Graph) -> KronQuant:
        x, a, b, y = g.inp(node, X), g.inp(node, A), g.inp(node, B), g.out(node)
        where = f"node {node.name!r} (KRONECKER_FC)"
        assert x is not None and a is not None and b is not None
        if not (x.dtype == a.dtype == b.dtype == y.dtype == "int8"):
            raise UnsupportedError(f"{where}: int8 input, factors and output only")
        if not (x.quant and a.quant and b.quant and y.quant):
            raise UnsupportedError(f"{where}: missing quantization parameters")
        bias = g.inp(node, BIAS)
        if bias is not None and bias.dtype != "int32":
            raise UnsupportedError(f"{where}: the bias must be int32, not {bias.dtype}")
        big_s = float(attr(node, "inner_scale"))
        zmax = int(attr(node, "inner_max"))
        if big_s <= 0 or not 0 < zmax <= INNER_MAX:
            raise UnsupportedError(f"{where}: int8 needs inner_scale > 0 and 0 < inner_max")
        rank = a.shape[0]
        sa = np.broadcast_to(a.quant.scale, (rank,))
        sb = np.broadcast_to(b.quant.scale, (rank,))
        ms = [
            fp.quantize_multiplier(float(x.quant.s) * float(sa[r]) * float(sb[r]) / big_s)
            for r in range(rank)
        ]
        m2 = fp.quantize_multiplier(big_s / float(y.quant.s))
        lo, hi = activation_range_quant(attr(node, "activation"), y)
        return KronQuant(
            x.quant.zp,
            y.quant.zp,
            np.array([m for m, _ in ms], np.int64),
            np.array([s for _, s in ms], np.int64),
            m2[0],
            m2[1],
            zmax,
            lo,
            hi,
        )

    def inner_int8(self, node: Node, g: Graph, x: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The int16 intermediate Z_r ([rows, R, q, s]) of the int8 kernel."""
        d, qp = self.dims(node, g), self.quant_params(node, g)
        xm = np.asarray(x, np.int64).reshape(d.rows, d.q, d.t) - qp.input_zp
        acc1 = np.einsum("njl,rkl->nrjk", xm, np.asarray(b, np.int64))
        z = fp.multiply_by_quantized_multiplier(
            acc1, qp.mult1.reshape(1, -1, 1, 1), qp.shift1.reshape(1, -1, 1, 1)
        )
        return np.clip(z, -qp.inner_max, qp.inner_max)

    def eval_quant(self, node, g, xs):
        d, qp = self.dims(node, g), self.quant_params(node, g)
        z = self.inner_int8(node, g, xs[X], xs[B])
        acc = np.einsum("rij,nrjk->nik", np.asarray(xs[A], np.int64), z).reshape(d.rows, -1)
        if len(xs) > BIAS and xs[BIAS] is not None:
            acc = acc + np.asarray(xs[BIAS], np.int64)
        acc = fp.wrap32(acc)
        out = fp.multiply_by_quantized_multiplier(acc, qp.mult2, qp.shift2) + qp.output_zp
        out = np.clip(out, qp.act_min, qp.act_max).astype(np.int8)
        return [out.reshape(g.out(node).shape)]

    def quantize_node(self, node: Node, ctx: Any) -> Node:
        """Per-factor symmetric int8 factors (one scale per A_r, one per B_r), the int16
        intermediate's shared accumulator scale S from the calibrated max|Z_r|, the bias
        int32 at S."""
        f: Graph = ctx.f
        d = self.dims(node, f)
        x = ctx.q.tensors[node.inputs[X]]
        if x.quant is None or x.dtype != "int8":
            raise UnsupportedError(f"node {node.name!r} (KRONECKER_FC): the input is not int8")
        ins = list(node.inputs)
        scales = []
        for slot in (A, B):
            t = f.tensors[ins[slot]]
            if t.data is None:
                raise UnsupportedError(
                    f"node {node.name!r} (KRONECKER_FC): int8 needs constant factors"
                )
            w = t.data.astype(np.float64)
            sc = np.maximum(np.abs(w).reshape(d.rank, -1).max(axis=1) / 127.0, MIN_SCALE)
            sc = sc.astype(np.float32)
            data = np.clip(fp.round_half_away(w / sc.reshape(-1, 1, 1)), -127, 127)
            q = QuantParams(sc, np.zeros(d.rank, np.int64), 0)
            ins[slot] = ctx.new_const(t.name, data.astype(np.int8), "int8", q)
            scales.append(sc)
        sa = scales[0].astype(np.float64)
        zmax = inner_max_for(d.rank, d.q)
        zabs = np.array([ctx.max_abs(f"{node.name}#z{r}") for r in range(d.rank)])
        big_s = max(float((zabs * sa).max()) / zmax, MIN_SCALE)
        # m1_r <= 1: Z_r never holds more than the exact int32 product (no left shift
        # that could wrap on inputs beyond the calibrated range)
        big_s = max(big_s, float((float(x.quant.s) * sa * scales[1].astype(np.float64)).max()))
        bt = f.tensors[ins[BIAS]] if len(ins) > BIAS and ins[BIAS] else None
        if bt is not None:
            if bt.data is None:
                raise UnsupportedError(f"node {node.name!r} (KRONECKER_FC): constant bias only")
            big_s = max(big_s, float(np.abs(bt.data.astype(np.float64)).max()) / (1 << 30))
        big_s = float(np.float32(big_s))
        if bt is not None:
            ins[BIAS] = ctx.int32_bias(bt.name, bt.data, np.float32(big_s))
        attrs = dict(node.attrs, inner_scale=big_s, inner_max=zmax)
        return Node(node.op, node.name, ins, list(node.outputs), attrs)

    # -- costs --------------------------------------------------------------------------
    def macs(self, node: Node, g: Graph) -> int:
        d = self.dims(node, g)
        return d.rows * d.rank * (d.q * d.t * d.s + d.p * d.q * d.s)

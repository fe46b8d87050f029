"""Post-training int8 quantization of a float Graph, to the TFLite int8 spec.

Weights: per-channel symmetric int8 (zero point 0, range [-127, 127]) along the axis the op
definition names; biases int32 with scale input_scale * weight_scale; activations
asymmetric int8 from calibrated ranges. Ops whose int8 kernels cannot rescale (pooling,
reshape, concatenation ... ``output_quant == "same_as_input"``) get one shared set of
parameters for their inputs and outputs; ops with fixed output parameters (SOFTMAX,
LOGISTIC, TANH) get exactly those. Where two fixed choices meet, a QUANTIZE node
requantizes between them. The result is the same kind of graph the TFLite converter makes.
"""

from __future__ import annotations

import fnmatch
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tinyc.errors import TinycError
from tinyc.ir.fixedpoint import round_half_away
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import get_op
from tinyc.ir.ops.base import OpDef
from tinyc.ir.tensor import QUANT_TIE, QuantParams, Tensor
from tinyc.ir.verify import verify
from tinyc.passes.calibration import Sample, observe
from tinyc.passes.fold_constants import fold_constants
from tinyc.passes.fuse_activations import fuse_activations
from tinyc.passes.observers import OBSERVERS, Histogram, ObserverChoice, observe_range, quant_range
from tinyc.quality import judge
from tinyc.quant_report import QuantReport, evaluate

OBSERVER_CHOICES = ("auto", *OBSERVERS)
INT32_MAX = (1 << 31) - 1
MIN_WEIGHT_SCALE = 1e-20
BIAS_LIMIT = float(1 << 30)


@dataclass
class QuantOptions:
    """How to quantize.

    ``observer``: "auto" (min/max for graph inputs/outputs and softmax inputs, where clipping
    changes answers; MSE-optimal elsewhere) or one of ``OBSERVERS`` for every tensor.
    ``overrides``: tensor-name glob -> observer, applied after ``observer``.
    ``io_dtype``: "int8" (graph inputs and outputs are int8, like the converter's int8 models)
    or "float32" (QUANTIZE/DEQUANTIZE at the boundary).
    ``equalize``: cross-layer equalization of conv/depthwise/FC pairs through ReLU before
    calibration (tinyc.passes.equalize). ``bias_correction``: move each layer's float bias by
    its mean int8 error on the calibration data (tinyc.passes.bias_correction). ``adaround``:
    choose each weight's rounding on the calibration data (tinyc.passes.adaround;
    ``adaround_iterations`` optimiser steps per layer; with bias correction it minimises the
    error's variance and leaves the mean to the bias). All three only change float weights
    and biases before ``build_int8``: the int8 graph follows the same TFLite scheme. Bias
    correction is on by default (it raised the SQNR of every model of bench/quantization.py
    and lowered no top-1 agreement); equalization and AdaRound are asked for.
    """

    observer: str = "auto"
    overrides: dict[str, str] = field(default_factory=dict)
    percentile: float = 99.99
    io_dtype: str = "int8"
    per_channel: bool = True
    equalize: bool = False
    bias_correction: bool = True
    adaround: bool = False
    adaround_iterations: int = 1000

    def validate(self) -> None:
        for obs in [self.observer, *self.overrides.values()]:
            if obs not in OBSERVER_CHOICES:
                raise TinycError(
                    f"unknown observer {obs!r}; choose from {', '.join(OBSERVER_CHOICES)}"
                )
        if self.io_dtype not in ("int8", "float32"):
            raise TinycError(f"io dtype must be int8 or float32, not {self.io_dtype!r}")
        if self.adaround_iterations < 1:
            raise TinycError("AdaRound needs at least one iteration")


def affine_params(lo: float, hi: float) -> QuantParams:
    """Asymmetric int8 parameters covering [lo, hi] (widened to contain 0), zero point
    nudged to an integer as TFLite's converter does."""
    lo, hi = quant_range(lo, hi)
    scale = np.float32((hi - lo) / 255.0)
    zp = int(round_half_away(-128.0 - lo / float(scale)))
    return QuantParams(scale, min(127, max(-128, zp)))


def prepare(g: Graph) -> Graph:
    """The float graph the quantizer works on: constants folded, activations fused."""
    if g.is_quantized or any(t.is_quantized for t in g.tensors.values()):
        raise TinycError(f"model {g.name!r} is already quantized")
    for n in g.nodes:
        if n.op in ("QUANTIZE", "DEQUANTIZE"):
            raise TinycError(f"node {n.name!r}: {n.op} in a float model cannot be quantized")
    for name in g.inputs:
        if g.tensors[name].dtype != "float32":
            raise TinycError(f"input {name!r} is {g.tensors[name].dtype}, not float32")
    g = fuse_activations(fold_constants(g.copy()))
    verify(g)
    return g


# -- which tensors share parameters ---------------------------------------------------------


class _Groups:
    """Union-find over tensor names; a group may carry fixed parameters."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self.fixed: dict[str, QuantParams] = {}

    def find(self, a: str) -> str:
        self.parent.setdefault(a, a)
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def fix(self, a: str, q: QuantParams) -> bool:
        r = self.find(a)
        if r in self.fixed and not self.fixed[r].same_as(q):
            return False
        self.fixed[r] = q
        return True

    def union(self, a: str, b: str) -> bool:
        """Tie ``a`` and ``b``; False (and nothing tied) when their fixed params differ."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        fa, fb = self.fixed.get(ra), self.fixed.get(rb)
        if fa is not None and fb is not None and not fa.same_as(fb):
            return False
        self.parent[rb] = ra
        if fb is not None:
            self.fixed[ra] = fb
        self.fixed.pop(rb, None)
        return True


@dataclass
class _Plan:
    groups: _Groups
    requant_edges: list[tuple[int, int]]  # (node index, input index) needing a QUANTIZE


def _fixed(op: OpDef) -> QuantParams | None:
    if isinstance(op.output_quant, tuple):
        scale, zp = op.output_quant
        return QuantParams(np.float32(scale), zp)
    return None


def _plan(g: Graph) -> _Plan:
    groups = _Groups()
    edges: list[tuple[int, int]] = []
    by_tie: dict[str, str] = {}
    for t in g.tensors.values():
        groups.find(t.name)
        tie = t.meta.get(QUANT_TIE)
        if tie is not None and not groups.union(by_tie.setdefault(tie, t.name), t.name):
            raise TinycError(f"tensor {t.name!r} cannot share parameters with {by_tie[tie]!r}")
    for k, node in enumerate(g.nodes):
        op = get_op(node.op)
        for tie in op.quant_ties(node, g):
            for other in tie[1:]:
                if not groups.union(tie[0], other):
                    raise TinycError(f"node {node.name!r}: {tie} cannot share parameters")
        fixed = _fixed(op)
        if fixed is not None:
            for o in node.outputs:
                if not groups.fix(o, fixed):
                    raise TinycError(f"node {node.name!r}: conflicting fixed output parameters")
        if op.output_quant == "same_as_input":
            ins = [
                (i, name)
                for i, name in enumerate(node.inputs)
                if name and g.tensors[name].dtype == "float32"
            ]
            fixed_in = {
                groups.fixed[r].scale.tobytes() + groups.fixed[r].zero_point.tobytes()
                for r in (groups.find(name) for _, name in ins)
                if r in groups.fixed
            }
            for i, name in ins:
                # Inputs whose fixed parameters disagree are each requantized; the output
                # then covers all of them with its own calibrated range.
                if len(fixed_in) > 1 and groups.find(name) in groups.fixed:
                    edges.append((k, i))
                    continue
                for o in node.outputs:
                    if not groups.union(name, o):
                        edges.append((k, i))
                        break
    return _Plan(groups, edges)


# -- ranges -------------------------------------------------------------------------------


def _observers(g: Graph, hists: dict[str, Histogram], plan: _Plan, opts: QuantOptions) -> dict:
    """The observer of every activation tensor.

    "auto" takes min/max where clipping would change answers: groups that hold a graph
    input or output, or feed a SOFTMAX (clipped logits tie the top classes); MSE elsewhere.
    """
    exact = set(g.inputs) | set(g.outputs)
    exact |= {n.inputs[0] for n in g.nodes if n.op == "SOFTMAX"}
    # recurrent state: an int8 clip would feed back into every later step
    exact |= {m for n in g.nodes for tie in get_op(n.op).quant_ties(n, g) for m in tie}
    exact_roots = {plan.groups.find(n) for n in exact}
    chosen = {}
    for name in hists:
        obs = opts.observer
        if obs == "auto":
            obs = "minmax" if plan.groups.find(name) in exact_roots else "mse"
        for pattern, o in opts.overrides.items():
            if fnmatch.fnmatchcase(name, pattern) and o != "auto":
                obs = o
        chosen[name] = obs
    return chosen


def _choose_ranges(
    g: Graph, hists: dict[str, Histogram], plan: _Plan, opts: QuantOptions
) -> tuple[dict[str, QuantParams], dict[str, ObserverChoice]]:
    """Int8 parameters for every float activation tensor, and what each tensor observed.

    Tied tensors share one range: the union of their members' ranges.
    """
    observers = _observers(g, hists, plan, opts)
    choices: dict[str, ObserverChoice] = {}
    spans: dict[str, tuple[float, float]] = {}
    for name, h in hists.items():
        try:
            c = observe_range(h, observers[name], opts.percentile)
        except TinycError as e:
            raise TinycError(f"tensor {name!r}: {e}") from None
        choices[name] = c
        root = plan.groups.find(name)
        lo, hi = spans.get(root, (np.inf, -np.inf))
        spans[root] = (min(lo, c.lo), max(hi, c.hi))
    params: dict[str, QuantParams] = {}
    for name in hists:
        root = plan.groups.find(name)
        fixed = plan.groups.fixed.get(root)
        params[name] = fixed if fixed is not None else affine_params(*spans[root])
    return params, choices


# -- building the int8 graph --------------------------------------------------------------


def _weight_params(
    w: np.ndarray, axis: int, per_channel: bool, bias: np.ndarray | None, in_scale: np.float32
) -> QuantParams:
    """Symmetric scales max|w|/127, raised where needed so the int32 bias fits."""
    if per_channel:
        other = tuple(i for i in range(w.ndim) if i != axis)
        maxabs = np.abs(w.astype(np.float64)).max(axis=other) if other else np.abs(w)
    else:
        maxabs = np.array([np.abs(w.astype(np.float64)).max()])
    scale = maxabs / 127.0
    if bias is not None:
        # |bias_q| <= 2^30 leaves the int32 accumulator (and a bias with the input zero
        # point folded in, as kernels precompute) room for the products.
        need = np.abs(bias.astype(np.float64)) / (float(in_scale) * BIAS_LIMIT)
        scale = np.maximum(scale, need if per_channel else need.max())
    # Channels of (near) zeros keep a small normal float32 scale: their int8 weights are 0.
    scale = np.maximum(scale, MIN_WEIGHT_SCALE).astype(np.float32)
    return QuantParams(scale, np.zeros(scale.shape, np.int64), axis if per_channel else None)


def _quantize_symmetric(w: np.ndarray, q: QuantParams) -> np.ndarray:
    shape = [1] * w.ndim
    if q.axis is not None:
        shape[q.axis] = -1
    x = w.astype(np.float32) / q.scale.reshape(shape)
    return np.clip(round_half_away(x), -127, 127).astype(np.int8)


def _quantize_affine(x: np.ndarray, q: QuantParams) -> np.ndarray:
    from tinyc.ir.ops.quant import quantize_array

    return quantize_array(x, q.s, q.zp, "int8")


class QuantContext:
    """Writes the int8 graph: tensors first, then nodes with their quantized constants.

    Ops with their own quantization rule (``OpDef.quantize_node``) use the public methods.
    """

    def __init__(
        self,
        g: Graph,
        params: dict[str, QuantParams],
        opts: QuantOptions,
        hists: dict[str, Histogram] | None = None,
    ):
        self.f = g
        self.opts = opts
        self.q = Graph(name=g.name, source_format=g.source_format, notes=list(g.notes))
        self.q.external_perm = dict(g.external_perm)
        self.params = params
        self.hists = hists or {}
        self.const_cache: dict[tuple, str] = {}
        for t in g.activations():
            if t.dtype == "float32":
                q = Tensor(t.name, t.shape, "int8", None, params.get(t.name), variable=t.variable)
            else:
                q = Tensor(t.name, t.shape, t.dtype, None, None, dict(t.meta), t.variable)
            self.q.add_tensor(q)

    # -- for ops with their own rule --------------------------------------------------------
    def params_of(self, key: str) -> QuantParams:
        """The int8 parameters calibration chose for a tensor or an op internal."""
        if key not in self.params:
            raise TinycError(f"calibration observed nothing for {key!r}")
        return self.params[key]

    def max_abs(self, key: str) -> float:
        """The largest magnitude calibration saw for a tensor or an op internal."""
        h = self.hists.get(key)
        if h is None or h.n == 0:
            raise TinycError(f"calibration observed nothing for {key!r}")
        return max(abs(h.min), abs(h.max))

    def symmetric_weight(
        self, name: str, in_scale: np.float32, bias: np.ndarray | None = None
    ) -> tuple[str, QuantParams]:
        """Float constant ``name`` as per-tensor symmetric int8 (room for ``bias`` at
        in_scale * weight scale in int32)."""
        w = self.f.tensors[name]
        assert w.data is not None
        q = _weight_params(w.data, 0, False, bias, in_scale)
        key = ("w", q.scale.tobytes(), q.axis)
        qname = self.const(
            name, key, lambda t: Tensor(t.name, t.shape, "int8", _quantize_symmetric(t.data, q), q)
        )
        return qname, q

    def int32_bias(self, base: str, values: np.ndarray, scale: np.float32) -> str:
        """Float ``values`` as an int32 constant at ``scale`` (zero point 0)."""
        q = QuantParams(np.float32(scale), 0)
        v = np.rint(values.astype(np.float64) / float(np.float32(scale)))
        data = np.clip(v, -INT32_MAX, INT32_MAX).astype(np.int32)
        name = self.q.unique_name(base)
        self.q.add_tensor(Tensor(name, data.shape, "int32", data, q))
        return name

    def quantized_const(self, name: str, dtype: str, q: QuantParams) -> str:
        """Float constant ``name`` at the given parameters (any integer dtype)."""
        from tinyc.ir.ops.quant import quantize_array

        def make(s: Tensor) -> Tensor:
            return Tensor(s.name, s.shape, dtype, quantize_array(s.data, q.s, q.zp, dtype), q)

        return self.const(name, (dtype, q.scale.tobytes(), q.zp), make)

    def new_const(self, base: str, data: np.ndarray, dtype: str, q: QuantParams | None) -> str:
        name = self.q.unique_name(base)
        self.q.add_tensor(Tensor(name, data.shape, dtype, data, q))
        return name

    def retype(self, name: str, dtype: str, q: QuantParams) -> None:
        """Give a run-time tensor of the int8 graph another integer type / parameters."""
        t = self.q.tensors[name]
        t.dtype, t.quant = dtype, q

    def const(self, name: str, key: tuple, make: Callable[[Tensor], Tensor]) -> str:
        """A quantized copy of constant ``name`` (one per distinct quantization)."""
        full = (name, *key)
        if full not in self.const_cache:
            src = self.f.tensors[name]
            t = make(src)
            t.name = name if name not in self.q.tensors else self.q.unique_name(name)
            self.q.add_tensor(t)
            self.const_cache[full] = t.name
        return self.const_cache[full]

    def weight(self, node: Node, op: OpDef) -> tuple[str, QuantParams]:
        assert op.weight_input is not None
        wname = node.inputs[op.weight_input]
        w = self.f.tensors[wname]
        b = self.f.inp(node, op.bias_input) if op.bias_input is not None else None
        x = self.q.tensors[node.inputs[0]]
        if x.quant is None:
            raise TinycError(f"node {node.name!r}: input {x.name!r} is not quantized")
        q = _weight_params(
            w.data,
            op.weight_axis,
            self.opts.per_channel,
            b.data if b is not None else None,
            x.quant.s,
        )
        key = ("w", q.scale.tobytes(), q.axis)
        name = self.const(
            wname, key, lambda t: Tensor(t.name, t.shape, "int8", _quantize_symmetric(t.data, q), q)
        )
        return name, q

    def bias(self, node: Node, op: OpDef, wq: QuantParams) -> str:
        assert op.bias_input is not None
        bname = node.inputs[op.bias_input]
        x = self.q.tensors[node.inputs[0]]
        assert x.quant is not None
        scale = (np.float32(x.quant.s) * wq.scale).astype(np.float32)
        axis = 0 if scale.size > 1 else None
        q = QuantParams(scale, np.zeros(scale.shape, np.int64), axis)

        def make(t: Tensor) -> Tensor:
            v = np.rint(t.data.astype(np.float64) / scale.astype(np.float64))
            data = np.clip(v, -INT32_MAX, INT32_MAX).astype(np.int32)
            return Tensor(t.name, t.shape, "int32", data, q)

        return self.const(bname, ("b", scale.tobytes()), make)

    def plain_const(self, name: str, tied: QuantParams | None) -> str:
        t = self.f.tensors[name]
        if t.dtype != "float32":
            return self.const(name, ("raw",), lambda s: Tensor(s.name, s.shape, s.dtype, s.data))
        d = t.data.astype(np.float64)
        q = tied if tied is not None else affine_params(float(d.min()), float(d.max()))

        def make(s: Tensor) -> Tensor:
            return Tensor(s.name, s.shape, "int8", _quantize_affine(s.data, q), q)

        return self.const(name, ("a", q.scale.tobytes(), q.zp), make)

    def node(self, node: Node, tied: Callable[[str], QuantParams | None]) -> Node:
        op = get_op(node.op)
        custom = op.quantize_node(node, self)
        if custom is not None:
            return custom
        inputs = list(node.inputs)
        wq = None
        if op.weight_input is not None and op.weight_input < len(inputs):
            name = inputs[op.weight_input]
            if name and self.f.tensors[name].is_const:
                inputs[op.weight_input], wq = self.weight(node, op)
        for i, name in enumerate(node.inputs):
            if not name or not self.f.tensors[name].is_const or i == op.weight_input:
                continue
            if i == op.bias_input and wq is not None:
                inputs[i] = self.bias(node, op, wq)
            else:
                inputs[i] = self.plain_const(name, tied(name))
        return Node(node.op, node.name, inputs, list(node.outputs), dict(node.attrs))


def _insert_requant(q: Graph, node: Node, i: int, target: QuantParams) -> Node:
    src = q.tensors[node.inputs[i]]
    name = q.unique_name(f"{src.name}_requant")
    q.add_tensor(Tensor(name, src.shape, "int8", None, target))
    node.inputs[i] = name
    return Node("QUANTIZE", name, [src.name], [name])


def _float_boundary(q: Graph, f: Graph) -> None:
    """Float32 graph inputs and outputs: QUANTIZE after each input, DEQUANTIZE before each
    output; the boundary tensors keep the model's names."""
    first: list[Node] = []
    for name in f.inputs:
        t = q.tensors.pop(name)
        inner = q.unique_name(f"{name}_int8")
        q.add_tensor(Tensor(inner, t.shape, "int8", None, t.quant))
        q.add_tensor(Tensor(name, t.shape, "float32"))
        q.rename_tensor_uses(name, inner)
        first.append(Node("QUANTIZE", f"{name}_quantize", [name], [inner]))
    last: list[Node] = []
    for name in f.outputs:
        t = q.tensors.pop(name)
        inner = q.unique_name(f"{name}_int8")
        q.add_tensor(Tensor(inner, t.shape, "int8", None, t.quant))
        for n in q.nodes:
            n.inputs = [inner if i == name else i for i in n.inputs]
            n.outputs = [inner if o == name else o for o in n.outputs]
        q.add_tensor(Tensor(name, t.shape, "float32"))
        last.append(Node("DEQUANTIZE", f"{name}_dequantize", [inner], [name]))
    q.nodes = first + q.nodes + last


def build_int8(
    g: Graph,
    params: dict[str, QuantParams],
    plan: _Plan,
    opts: QuantOptions,
    hists: dict[str, Histogram] | None = None,
) -> Graph:
    b = QuantContext(g, params, opts, hists)

    def tied(const_name: str) -> QuantParams | None:
        root = plan.groups.find(const_name)
        members = [n for n in params if plan.groups.find(n) == root]
        return params[members[0]] if members else plan.groups.fixed.get(root)

    requant = set(plan.requant_edges)
    nodes: list[Node] = []
    for k, node in enumerate(g.nodes):
        qn = b.node(node, tied)
        for i in range(len(qn.inputs)):
            if (k, i) in requant:
                target = b.q.tensors[node.outputs[0]].quant
                assert target is not None
                nodes.append(_insert_requant(b.q, qn, i, target))
        nodes.append(qn)
    q = b.q
    q.nodes = nodes
    q.inputs, q.outputs = list(g.inputs), list(g.outputs)
    for n in q.nodes:
        n.attrs = get_op(n.op).quantize_attrs(n, q)
    if opts.io_dtype == "float32":
        _float_boundary(q, g)
    q.remove_unused()
    verify(q)
    return q


def edit_weights(
    g: Graph, samples: list[Sample], params: dict[str, QuantParams], opts: QuantOptions
) -> Graph:
    """``g`` with the float weights and biases that round best to int8 (AdaRound, bias
    correction, as ``opts`` asks), measured against ``g``'s own layer inputs on the
    calibration samples; ``g`` itself when nothing is asked."""
    if not (opts.adaround or opts.bias_correction):
        return g
    edited = g.copy()
    if opts.adaround:
        from tinyc.passes.adaround import AdaRoundOptions, adaround, layer_grams

        grams = layer_grams(g, samples, params, centered=opts.bias_correction)
        opts_ar = AdaRoundOptions(iterations=opts.adaround_iterations)
        adaround(edited, grams, params, opts.per_channel, opts_ar)
    if opts.bias_correction:
        from tinyc.passes.bias_correction import correct_biases, input_means

        correct_biases(edited, input_means(g, samples, params), params, opts.per_channel)
    return edited


def quantize(
    graph: Graph,
    calibration_samples: list[Sample],
    options: QuantOptions | None = None,
    eval_samples: list[Sample] | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[Graph, QuantReport]:
    """Quantize float ``graph`` to int8 with ranges observed on ``calibration_samples``.

    The report compares int8 with float on ``eval_samples`` (kept apart from calibration
    by the caller), or on the calibration samples when none are given.
    """
    opts = options or QuantOptions()
    opts.validate()
    if not calibration_samples:
        raise TinycError("quantization needs at least one calibration sample")
    g = prepare(graph)
    if opts.equalize:
        from tinyc.passes.equalize import equalize

        equalize(g)  # the float function stays the same: g is still the reference
    hists = observe(g, calibration_samples, progress)
    plan = _plan(g)
    params, choices = _choose_ranges(g, hists, plan, opts)
    q = build_int8(edit_weights(g, calibration_samples, params, opts), params, plan, opts, hists)
    held_out = eval_samples is not None and len(eval_samples) > 0
    fixed = {n for n in hists if plan.groups.find(n) in plan.groups.fixed}
    report = evaluate(g, q, eval_samples if held_out else calibration_samples, choices, fixed)
    report.calibration_samples = len(calibration_samples)
    report.eval_source = "held-out samples" if held_out else "calibration samples"
    report.requantizations = len(plan.requant_edges)
    report.techniques = [
        name
        for name, on in (
            ("per-channel weights" if opts.per_channel else "per-tensor weights", True),
            ("cross-layer equalization", opts.equalize),
            ("AdaRound", opts.adaround),
            ("bias correction", opts.bias_correction),
        )
        if on
    ]
    report.quality = judge(report, q)
    return q, report


DEFAULT_CALIBRATION_SAMPLES = 100
DEFAULT_EVAL_SAMPLES = 64


def draw_samples(path: str, g: Graph, n_cal: int | None, n_eval: int | None) -> tuple[list, list]:
    """The calibration and held-out samples ``compile`` draws from the file at ``path``: one
    seeded shuffle, so quantization, pruning and factorization see the same split."""
    from tinyc.passes.calibration import load_calibration, split_samples

    n_eval = DEFAULT_EVAL_SAMPLES if n_eval is None else n_eval
    return split_samples(load_calibration(path, g), n_cal, n_eval, DEFAULT_CALIBRATION_SAMPLES)


"""Held-out samples (``--eval-samples``) the report and the quality gate are measured on."""
SYNTHETIC_WARNING = (
    "SYNTHETIC CALIBRATION: the int8 ranges come from random N(0,1) inputs, not from real "
    "data; the agreement figures below say nothing about accuracy on real inputs"
)


def quantize_with_data(
    graph: Graph,
    calibration: str | None,
    samples: int | None = None,
    synthetic: bool = False,
    options: QuantOptions | None = None,
    show_progress: bool = True,
    eval_samples: int | None = None,
    min_sqnr: float | None = None,
) -> tuple[Graph, QuantReport]:
    """What ``tinyc compile`` does with a float model: draw ``samples`` calibration samples
    (default 100) from ``calibration`` by a seeded shuffle (never in file order), keep up to
    ``eval_samples`` (default 64) of the others apart for the report and the quality gate
    (tinyc.quality), quantize. ``min_sqnr``: an output SQNR below it is an error. No data:
    refuse, unless ``synthetic`` (then the report warns). A progress bar goes to stderr while
    calibrating."""
    from tinyc.passes.calibration import synthetic_calibration

    n = samples if samples is not None else DEFAULT_CALIBRATION_SAMPLES
    if n <= 0:
        raise TinycError("--calibration-samples must be at least 1")
    n_eval = DEFAULT_EVAL_SAMPLES if eval_samples is None else eval_samples
    if n_eval < 0:
        raise TinycError("--eval-samples must be 0 or more")
    warnings: list[str] = []
    if calibration:
        cal, held_out = draw_samples(calibration, graph, samples, n_eval)
    elif synthetic:
        n = samples if samples is not None else 32
        data = synthetic_calibration(graph, n + min(n_eval, 16))
        cal, held_out = data[:n], data[n:]
        warnings.append(SYNTHETIC_WARNING)
    else:
        raise TinycError(
            f"model {graph.name!r} is float: give --calibration DATA (an .npz with one array "
            "per input, a folder of .npy, or reference_io case folders) to quantize it to "
            "int8, or --synthetic-calibration to try the flow with random data"
        )
    if calibration and len(cal) < n and samples is not None:
        warnings.append(f"{calibration} holds {len(cal)} samples, fewer than the {n} asked for")
    if not held_out:
        warnings.append(
            "no samples left over for evaluation: agreement measured on calibration data"
        )
    if show_progress:
        import click

        with click.progressbar(
            length=len(cal), label=f"calibrating on {len(cal)} samples", file=sys.stderr
        ) as bar:
            q, report = quantize(graph, cal, options, held_out, bar.update)
    else:
        q, report = quantize(graph, cal, options, held_out)
    report.warnings = warnings + report.warnings
    report.quality = judge(report, q, min_sqnr, synthetic=not calibration)
    if report.quality.errors:
        assert min_sqnr is not None
        raise TinycError(report.quality.error_text(min_sqnr))
    return q, report

"""The streaming form of a recurrent model: one time step per invocation.

A whole-sequence model ([batch, time, features] in, recurrent layers inside) becomes a
*step* graph that takes one time step and keeps every recurrent layer's state in a state
tensor (Tensor.variable), so that feeding the sequence step by step gives exactly the
whole-sequence result. Layers after the recurrent ones that mix time steps (a flatten over
the sequence, a mean over time, ...) cannot run per step: they form a *tail* that runs once
per sequence on the stacked step outputs (``tinyc infer --stream`` runs both; firmware
compiled with ``--stream`` needs a model without a tail).

Which ops work step by step along an axis is decided per op kind below (elementwise ops,
activations, fully connected layers over the features, recurrent layers, reshapes and
transposes that keep the time axis whole, ...): a shape check alone would accept a
temporal convolution with "same" padding, which is not step-local.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyc.errors import TinycError, UnsupportedError
from tinyc.interpreter import State
from tinyc.interpreter import run as run_graph
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import attr, get_op
from tinyc.ir.ops.recurrent import RECURRENT_OPS
from tinyc.ir.tensor import Tensor
from tinyc.ir.verify import verify

UNARY = {
    "LOGISTIC",
    "TANH",
    "RELU",
    "RELU6",
    "HARD_SWISH",
    "QUANTIZE",
    "DEQUANTIZE",
    "LEAKY_RELU",
    "PRELU",
    "ABS",
    "EXP",
    "LOG",
    "SQRT",
    "RSQRT",
    "NEG",
    "LUT",
}
BINARY = {"ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE"}


@dataclass
class StreamingPlan:
    """A whole-sequence graph split into its per-step part and its per-sequence tail."""

    source: Graph
    step: Graph  # one time step per invocation, recurrent state in state tensors
    tail: Graph | None  # once per sequence, on the stacked step outputs; None: no tail
    steps: int  # time steps of the whole-sequence model
    time_axis: dict[str, int]  # per step-graph input / output: the axis steps run along
    tail_node: str = ""  # the first node that mixes time steps, when there is a tail

    def describe(self) -> str:
        if self.tail is None:
            return f"every layer runs per time step ({self.steps} steps per sequence)"
        return (
            f"{len(self.step.nodes)} layers run per time step; from node {self.tail_node!r} "
            f"on, {len(self.tail.nodes)} layers run once per sequence of {self.steps} steps"
        )


def _time_steps(g: Graph) -> tuple[int, list[Node]]:
    rec = [n for n in g.nodes if n.op in RECURRENT_OPS]
    if not rec:
        raise TinycError(f"model {g.name!r} has no recurrent layer: there is nothing to stream")
    steps = {get_op(n.op).dims(n, g).time for n in rec}
    if len(steps) != 1:
        raise UnsupportedError(
            f"model {g.name!r}: its recurrent layers run over different sequence lengths "
            f"{sorted(steps)}; streaming needs one"
        )
    for n in rec:
        if attr(n, "reverse"):
            raise UnsupportedError(
                f"node {n.name!r} ({n.op}) runs backwards in time: it needs the whole sequence "
                "and cannot stream"
            )
    return steps.pop(), rec


def _const_local(t: Tensor, axis: int | None, rank: int) -> bool:
    """A constant operand broadcasts over the time axis (size 1 there, or not reaching it)."""
    if axis is None:
        return True
    lead = rank - len(t.shape)
    return axis < lead or t.shape[axis - lead] == 1


def _reshape_axis(src: tuple[int, ...], dst: tuple[int, ...], axis: int) -> int | None:
    """Where the time axis lands when a reshape keeps it whole (same number of elements
    before it, same length), else None."""
    before = int(np.prod(src[:axis], dtype=np.int64))
    acc = 1
    for k, d in enumerate(dst):
        if acc == before and d == src[axis]:
            return k
        acc *= d
    return None


def _local_axis(node: Node, g: Graph, axes: dict[str, int]) -> int | None:
    """The time axis of ``node``'s outputs when it works step by step along the time axes
    of its inputs (``axes``), else None."""
    ins = [g.tensors[i] for i in node.inputs if i]
    timed = [axes[t.name] for t in ins if t.name in axes]
    if not timed:
        return None
    axis = timed[0]
    out = g.tensors[next(o for o in node.outputs if o)]
    op = node.op
    if op in RECURRENT_OPS:
        x = g.inp(node, 0)
        want = 0 if attr(node, "time_major") else 1
        return want if x is not None and axes.get(x.name) == want else None
    if op in UNARY or op in ("SOFTMAX", "L2_NORMALIZATION"):
        if op in ("SOFTMAX", "L2_NORMALIZATION") and axis == len(out.shape) - 1:
            return None
        return axis if len(set(timed)) == 1 else None
    if op in BINARY:
        rank = len(out.shape)
        first = next(t for t in ins if t.name in axes)
        out_axis = axes[first.name] + rank - len(first.shape)
        for t in ins:
            if t.name in axes:
                if axes[t.name] + rank - len(t.shape) != out_axis:
                    return None
            elif not _const_local(t, out_axis, rank):
                return None
        return out_axis
    if op == "FULLY_CONNECTED":
        x = ins[0]
        if not attr(node, "keep_num_dims") or axis == len(x.shape) - 1:
            # without keep_num_dims the rows are every axis but the last, flattened: the
            # time axis survives when it is the only one longer than 1
            if axis == len(x.shape) - 1:
                return None
            if sum(d > 1 for k, d in enumerate(x.shape[:-1]) if k != axis) == 0:
                return 0
            return None
        return axis
    if op == "RESHAPE":
        return _reshape_axis(ins[0].shape, out.shape, axis)
    if op == "TRANSPOSE":
        return tuple(attr(node, "perm")).index(axis)
    if op in ("CONCATENATION", "PACK"):
        if any(t.name not in axes for t in ins) or len(set(timed)) != 1:
            return None
        k = attr(node, "axis") % len(out.shape)
        if op == "PACK":
            return axis + (k <= axis)
        return axis if k != axis else None
    if op in ("SPLIT", "SPLIT_V", "UNPACK"):
        split = attr(node, "axis") % len(ins[0].shape)
        if split == axis:
            return None
        return axis - (op == "UNPACK" and split < axis)
    if op == "MEAN":
        red = set(get_op("MEAN").axes(node, g))
        if axis in red:
            return None
        return axis if attr(node, "keep_dims") else axis - sum(a < axis for a in red)
    return None


def _last_step(node: Node, g: Graph, axes: dict[str, int], used: set[str]) -> str | None:
    """The output of ``node`` that is its one timed input's last time step (``y[:, -1]``
    by whatever op the exporter chose), when nothing reads its other outputs: per step it
    is that step's value, and after the last step the sequence's. Found by running the op
    on a probe whose every value is distinct."""
    ins = [i for i in node.inputs if i]
    if get_op(node.op).output_quant != "same_as_input":
        return None  # only ops that move values unchanged can select a step
    if len(ins) == 0 or ins[0] not in axes or any(i in axes for i in ins[1:]):
        return None
    if any(not g.tensors[i].is_const for i in ins[1:]):
        return None
    x = g.tensors[ins[0]]
    axis = axes[x.name]
    probe = np.random.default_rng(0).permutation(x.size).astype(np.float64).reshape(x.shape)
    probe_t = Tensor(x.name, x.shape, "float32")
    gp = Graph(tensors={**g.tensors, x.name: probe_t})
    try:
        outs = get_op(node.op).evaluate(
            node, gp, [probe.astype(np.float32)] + [g.tensors[i].data for i in node.inputs[1:] if i]
        )
    except Exception:  # an op that cannot run on float probes is simply not a selection
        return None
    last = np.take(probe, [x.shape[axis] - 1], axis=axis)
    hits = [
        o
        for o, v in zip(node.outputs, outs, strict=False)
        if o
        and np.asarray(v).size == last.size
        and np.array_equal(np.asarray(v).reshape(-1), last.reshape(-1))
    ]
    others = [o for o in node.outputs if o and o not in hits and o in used]
    return hits[0] if len(hits) == 1 and not others else None


def _time_axes(g: Graph, steps: int, rec: list[Node]) -> dict[str, int]:
    """The time axis of each graph input that the recurrent layers read step by step:
    traced back from each layer's input through shape-preserving ops."""
    producers = g.producers()
    found: dict[str, int] = {}
    for n in rec:
        x = g.inp(n, 0)
        assert x is not None
        name, axis = x.name, 0 if attr(n, "time_major") else 1
        while name not in g.inputs:
            p = producers.get(name)
            if p is not None and p.op in RECURRENT_OPS:
                break  # fed by another recurrent layer: its time axis comes forward
            src = g.inp(p, 0) if p is not None else None
            if src is None or not _keeps_time(p, src.shape, g.tensors[name].shape, axis):
                raise UnsupportedError(
                    f"cannot tell which axis of the model input is time for node {n.name!r} "
                    f"({n.op}): its input comes from node {p.name if p else name!r}"
                )
            name = src.name
        if name not in g.inputs:
            continue
        if g.tensors[name].shape[axis] != steps:
            raise UnsupportedError(f"input {name!r} has no time axis of {steps} steps")
        found[name] = axis
    return found


def _keeps_time(p: Node, src: tuple[int, ...], dst: tuple[int, ...], axis: int) -> bool:
    """``p`` (reading ``src``, writing ``dst``) keeps the time axis ``axis`` where it is:
    same shape, or a fully-connected layer that changes only the feature (last) axis."""
    if src == dst:
        return True
    return (
        p.op == "FULLY_CONNECTED"
        and len(src) == len(dst)
        and axis < len(dst) - 1
        and src[:-1] == dst[:-1]
    )


def _one_step(shape: tuple[int, ...], axis: int) -> tuple[int, ...]:
    return tuple(1 if k == axis else d for k, d in enumerate(shape))


def to_streaming(g: Graph) -> StreamingPlan:
    """Split ``g`` into its step graph and tail (see the module docstring)."""
    steps, rec = _time_steps(g)
    axes = _time_axes(g, steps, rec)
    step_nodes: list[Node] = []
    tail_nodes: list[Node] = []
    in_tail: set[str] = set()
    used = {i for n in g.nodes for i in n.inputs if i} | set(g.outputs)
    last_steps: dict[str, str] = {}  # node name -> the output holding the last step
    for node in g.nodes:
        reads_tail = any(i in in_tail for i in node.inputs if i)
        picked = None if reads_tail else _last_step(node, g, axes, used)
        if picked is not None:
            step_nodes.append(node)
            last_steps[node.name] = picked
            continue
        axis = None if reads_tail else _local_axis(node, g, axes)
        touches_time = any(i in axes for i in node.inputs if i)
        if axis is not None:
            step_nodes.append(node)
            # a recurrent layer's final states have no time axis: after each step they
            # hold that step's state, after the last one the sequence's
            timed_outputs = node.outputs[:1] if node.op in RECURRENT_OPS else node.outputs
            for o in timed_outputs:
                if o:
                    axes[o] = axis
        elif not touches_time and not reads_tail:
            step_nodes.append(node)  # works on constants or per-step-free inputs only
        else:
            tail_nodes.append(node)
            in_tail.update(o for o in node.outputs if o)
    if any(n.op in RECURRENT_OPS for n in tail_nodes):
        first = next(n for n in tail_nodes if n.op in RECURRENT_OPS)
        raise UnsupportedError(
            f"node {first.name!r} ({first.op}) reads values that mix time steps "
            f"(from node {tail_nodes[0].name!r}); the model cannot stream"
        )
    step = _step_graph(g, step_nodes, tail_nodes, axes, last_steps)
    tail = _tail_graph(g, step, tail_nodes) if tail_nodes else None
    time_axis = {n: axes[n] for n in step.inputs + step.outputs if n in axes}
    step.stream = {"steps": steps, "time_axis": time_axis}
    return StreamingPlan(g, step, tail, steps, time_axis, tail_nodes[0].name if tail_nodes else "")


def _step_graph(
    g: Graph, nodes: list[Node], tail: list[Node], axes: dict[str, int], last: dict[str, str]
) -> Graph:
    s = g.copy()
    s.name = g.name
    kept = {n.name for n in nodes}
    s.nodes = [n for n in s.nodes if n.name in kept]
    for i, n in enumerate(s.nodes):
        if n.name in last:  # one step in, that step out: a reshape at most
            out = last[n.name]
            s.nodes[i] = Node(
                "RESHAPE", n.name, [n.inputs[0]], [out], {"shape": s.tensors[out].shape}
            )
    for name, axis in axes.items():
        t = s.tensors.get(name)
        if t is not None and not t.is_const:
            t.shape = _one_step(t.shape, axis)
    for node in s.nodes:
        if node.op == "RESHAPE" and node.outputs[0] in axes:
            node.attrs["shape"] = _one_step(tuple(attr(node, "shape")), axes[node.outputs[0]])
    # the recurrent layers' initial states become state tensors (zero where none was given)
    for node in s.nodes:
        if node.op not in RECURRENT_OPS:
            continue
        op = get_op(node.op)
        d = op.dims(node, s)
        while len(node.inputs) <= max(op.state_slots):
            node.inputs.append("")
        for slot in op.state_slots:
            src = s.inp(node, slot)
            if src is not None and src.variable:
                continue  # already a state
            if src is not None and not src.is_const:
                raise UnsupportedError(
                    f"node {node.name!r} ({node.op}) takes its initial state from {src.name!r}; "
                    "the streaming form keeps the state inside the model, starting from zero"
                )
            if src is not None and np.any(src.data != _zero_value(src)):
                raise UnsupportedError(
                    f"node {node.name!r} ({node.op}) starts from a non-zero constant state; "
                    "the streaming form starts from zero"
                )
            shape = op.state_shape(node, d, slot)
            if src is not None:
                dtype, quant = src.dtype, src.quant
            else:  # no initial state: zeros, with the hidden state's parameters in int8
                hidden = next(s.tensors[o] for o in node.outputs[:2] if o)
                dtype, quant = hidden.dtype, hidden.quant
            name = s.unique_name(f"{node.name}/state{slot}")
            s.add_tensor(Tensor(name, shape, dtype, None, quant, variable=True))
            node.inputs[slot] = name
    boundary = [
        i for n in tail for i in n.inputs if i and i in axes and any(i in m.outputs for m in nodes)
    ]
    outputs = [o for o in g.outputs if o in axes or any(o in n.outputs for n in nodes)]
    s.outputs = list(dict.fromkeys(outputs + boundary))
    s.inputs = [i for i in g.inputs if any(i in n.inputs for n in s.nodes) or i in s.outputs]
    s.remove_unused()
    verify(s, fix_shapes=True)
    return s


def _zero_value(t: Tensor) -> int:
    return t.quant.zp if t.quant is not None and t.dtype != "float32" else 0


def _tail_graph(g: Graph, step: Graph, nodes: list[Node]) -> Graph:
    t = g.copy()
    kept = {n.name for n in nodes}
    t.nodes = [n for n in t.nodes if n.name in kept]
    produced = {o for n in t.nodes for o in n.outputs}
    needed = {i for n in t.nodes for i in n.inputs if i and i not in produced}
    t.inputs = [n for n in dict.fromkeys(list(g.inputs) + step.outputs) if n in needed]
    t.outputs = [o for o in g.outputs if o in produced]
    t.remove_unused()
    verify(t)
    return t


def run_streaming(
    plan: StreamingPlan, inputs: list[np.ndarray], state: State | None = None
) -> dict[str, np.ndarray]:
    """Feed whole-sequence ``inputs`` (internal layout) through the step graph one step
    at a time (state carried in ``state``, fresh when None), stack the step outputs along
    their time axes, then run the tail. Returns the source graph's outputs by name."""
    src = plan.source
    state = state or State(plan.step)
    by_name = dict(zip(src.inputs, inputs, strict=True))
    collected: dict[str, list[np.ndarray]] = {o: [] for o in plan.step.outputs}
    for t in range(plan.steps):
        xs = []
        for name in plan.step.inputs:
            x = np.asarray(by_name[name])
            axis = plan.time_axis.get(name)
            xs.append(np.take(x, [t], axis=axis) if axis is not None else x)
        out = run_graph(plan.step, xs, state=state)
        for name, v in out.items():
            collected[name].append(v)
    values = {
        name: np.concatenate(vs, axis=plan.time_axis[name]) if name in plan.time_axis else vs[-1]
        for name, vs in collected.items()
    }
    if plan.tail is not None:
        feeds = [values[n] if n in values else by_name[n] for n in plan.tail.inputs]
        values.update(run_graph(plan.tail, feeds))
    return {name: values[name] for name in src.outputs}


def run_stepwise(g: Graph, inputs: list[np.ndarray], keep_all: bool = False) -> dict:
    """``g``'s whole-sequence result as its streaming form fed step by step from a reset
    state (how a graph with a learned skip gate runs whole: tinyc.ir.ops.skip). With
    ``keep_all`` every tensor of ``g``: a per-step value stacked along its time axis, a
    state its initial (reset) value, any other the last step's."""
    plan = to_streaming(g)
    if not keep_all:
        return run_streaming(plan, inputs)
    state = State(plan.step)
    initial = {k: v.copy() for k, v in state.values.items()}
    by_name = dict(zip(g.inputs, inputs, strict=True))
    collected: dict[str, list[np.ndarray]] = {}
    for t in range(plan.steps):
        xs = [
            np.take(np.asarray(by_name[n]), [t], axis=plan.time_axis[n])
            if n in plan.time_axis
            else by_name[n]
            for n in plan.step.inputs
        ]
        for name, v in run_graph(plan.step, xs, keep_all=True, state=state).items():
            collected.setdefault(name, []).append(np.array(v, copy=True))
    values: dict[str, np.ndarray] = {}
    for name, vs in collected.items():
        t = g.tensors.get(name)
        if t is None:
            continue
        if name in initial:
            values[name] = initial[name]
            continue
        axes = [k for k, (a, b) in enumerate(zip(vs[0].shape, t.shape, strict=False)) if a != b]
        if vs[0].shape != t.shape and len(axes) == 1 and len(vs[0].shape) == len(t.shape):
            values[name] = np.concatenate(vs, axis=axes[0])
        else:
            values[name] = vs[-1]
    if plan.tail is not None:
        feeds = [values[n] if n in values else by_name[n] for n in plan.tail.inputs]
        values.update(run_graph(plan.tail, feeds, keep_all=True))
    return values


def split_steps(step: Graph, inputs: list[np.ndarray]) -> list[list[np.ndarray]]:
    """Inputs of a step graph (internal layout) as a list of steps: a whole sequence along
    each input's time axis is cut into its steps; one step stays one."""
    axes = step.stream.get("time_axis", {})
    counts = set()
    for name, x in zip(step.inputs, inputs, strict=True):
        axis = axes.get(name)
        if axis is not None and x.ndim == len(step.tensors[name].shape):
            counts.add(x.shape[axis])
    if not counts or counts == {1}:
        return [inputs]
    if len(counts) != 1:
        raise TinycError(f"the inputs hold different numbers of time steps {sorted(counts)}")
    n = counts.pop()
    return [
        [
            np.take(x, [t], axis=axes[name]) if name in axes else x
            for name, x in zip(step.inputs, inputs, strict=True)
        ]
        for t in range(n)
    ]


def stack_steps(step: Graph, name: str, values: list[np.ndarray]) -> np.ndarray:
    """One output's step values (internal layout) as a sequence along its time axis; an
    output without one (a final state, a per-step classifier) is its last step's value."""
    axis = step.stream.get("time_axis", {}).get(name)
    return np.concatenate(values, axis=axis) if axis is not None else values[-1]

"""TFLite WHILE loops whose trip count is known when the model is compiled, unrolled; IF
whose condition is known then, inlined.

TFLM runs ``WHILE(vars) -> vars'`` as: copy the loop variables into the condition subgraph;
while its boolean output is true, run the body subgraph on the variables and take its outputs
as the new variables. A converter writes such loops for recurrent layers that it does not
fuse (a Keras GRU or SimpleRNN, for one): a counter from 0 to the number of time steps, a
``GATHER`` of the step's input at the counter, the cell's operators, the state carried.

tinyc unrolls them at import: each iteration reads the condition subgraph with the current
variables as its inputs and folds it (every operator whose inputs are all constants is
evaluated with the op's own reference, tinyc.ir.ops); the loop goes on while the folded
condition is true. Each iteration of the body is read the same way and folded, so the
counter and whatever depends only on it (the step index a GATHER reads) become constants,
and what depends on run-time values becomes the iteration's nodes. A condition that depends
on run-time values, or more than ``MAX_ITERATIONS`` iterations, is refused by name: tinyc
compiles straight-line code with a static memory plan.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinyc.errors import TinycError, UnsupportedError
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import get_op
from tinyc.ir.tensor import np_dtype

MAX_ITERATIONS = 4096


def bind_inputs(g: Graph, sg: Any, names: list[str], values: list[str], what: str) -> None:
    """Make the subgraph's inputs stand for ``values`` (tensor names of the caller): TFLM
    copies the raw values, so dtype, shape and quantization must agree."""
    inputs = list(sg.inputs if sg.inputs is not None else [])
    if len(inputs) != len(values):
        raise TinycError(
            f"{what}: a subgraph takes {len(inputs)} inputs, the loop passes {len(values)}"
        )
    for idx, value in zip(inputs, values, strict=True):
        mine, theirs = g.tensors[names[idx]], g.tensors[value]
        same_quant = (
            mine.quant.same_as(theirs.quant) if mine.quant is not None else theirs.quant is None
        )
        if mine.shape != theirs.shape or mine.dtype != theirs.dtype or not same_quant:
            raise UnsupportedError(
                f"{what}: loop variable {value!r} {theirs.dtype}{list(theirs.shape)} does not "
                f"match the subgraph's input {mine.dtype}{list(mine.shape)} (shape, dtype and "
                "quantization must agree)"
            )
        names[idx] = value


def fold(g: Graph, nodes: list[Node]) -> list[Node]:
    """Evaluate the nodes whose inputs are all constants (their outputs become constants);
    return the others, in order."""
    kept = []
    for node in nodes:
        ins = [g.tensors[i] for i in node.inputs if i]
        if node.op == "UNSUPPORTED" or not all(t.is_const for t in ins):
            kept.append(node)
            continue
        op = get_op(node.op)
        op.check(node, g)
        ys = op.evaluate(node, g, [g.tensors[i].data if i else None for i in node.inputs])
        for name, y in zip(node.outputs, ys, strict=True):
            if name:
                t = g.tensors[name]
                t.data = np.asarray(y).astype(np_dtype(t.dtype)).reshape(t.shape)
    return kept


def keep_output_name(g: Graph, body: list[Node], final: str, name: str) -> str:
    """The tensor later operators read for the loop output ``name``, whose value is
    ``final``: the unrolled node that makes ``final`` writes ``name`` instead (the model's
    own output names survive), a constant value is copied into ``name``, and a value the
    loop did not change (an input, an initial value) is read where it is."""
    made = [n for n in body if final in n.outputs]
    t = g.tensors[final]
    if made and final != name:
        del g.tensors[name]
        g.tensors.pop(final)
        t.name = name
        g.tensors[name] = t
        for n in body:
            n.inputs = [name if i == final else i for i in n.inputs]
            n.outputs = [name if o == final else o for o in n.outputs]
        return name
    if t.is_const and final != name:
        g.tensors[name].data = np.array(t.data, copy=True)
        return name
    return final


def unroll_while(
    reader: Any, op: Any, names: list[str], node_name: str
) -> tuple[list[str], list[Node]]:
    """The loop's final variables (tensor names) and the nodes of its unrolled body."""
    o = op.builtinOptions
    if o is None:
        raise TinycError(f"node {node_name!r} (WHILE) has no WhileOptions")
    cond, body = int(o.condSubgraphIndex), int(o.bodySubgraphIndex)
    g: Graph = reader.g
    values = [names[i] for i in op.inputs]
    nodes: list[Node] = []
    for k in range(MAX_ITERATIONS + 1):
        c_names, c_nodes = reader.translate(cond, f"{node_name}/cond{k}/", values)
        left = fold(g, c_nodes)
        out = g.tensors[c_names[reader.model.subgraphs[cond].outputs[0]]]
        if left or out.data is None:
            raise UnsupportedError(
                f"node {node_name!r} (WHILE): the loop condition depends on run-time values "
                "(tinyc unrolls loops whose trip count is known when the model is compiled)"
            )
        if not bool(np.asarray(out.data).reshape(-1)[0]):
            return values, nodes
        if k == MAX_ITERATIONS:
            break
        b_names, b_nodes = reader.translate(body, f"{node_name}/{k}/", values)
        nodes += fold(g, b_nodes)
        values = [b_names[i] for i in reader.model.subgraphs[body].outputs]
    raise UnsupportedError(
        f"node {node_name!r} (WHILE): more than {MAX_ITERATIONS} iterations to unroll"
    )


def inline_if(
    reader: Any, op: Any, names: list[str], node_name: str
) -> tuple[list[str], list[Node]]:
    """The branch outputs (tensor names) and nodes of an IF whose condition (input 0) is a
    constant when the model is compiled; one that is known only at run time is refused."""
    o = op.builtinOptions
    if o is None:
        raise TinycError(f"node {node_name!r} (IF) has no IfOptions")
    g: Graph = reader.g
    cond = g.tensors[names[op.inputs[0]]]
    if cond.data is None:
        raise UnsupportedError(
            f"node {node_name!r} (IF): the condition is known only at run time (tinyc inlines "
            "an IF whose condition is a constant when the model is compiled)"
        )
    taken = int(o.thenSubgraphIndex if bool(np.asarray(cond.data).reshape(-1)[0]) else
                o.elseSubgraphIndex)  # fmt: skip
    b_names, b_nodes = reader.translate(taken, f"{node_name}/", [names[i] for i in op.inputs[1:]])
    return [b_names[i] for i in reader.model.subgraphs[taken].outputs], fold(g, b_nodes)

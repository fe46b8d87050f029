"""Walk the ONNX graph in order: fold constant subgraphs, translate the rest to IR nodes."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from tinyc.errors import TinycError, UnsupportedError
from tinyc.frontend.onnx import (  # noqa: F401 (register)
    ops_activation,
    ops_deconv,
    ops_index,
    ops_math,
    ops_nn,
    ops_norm,
    ops_pointwise,
    ops_qlinear,
    ops_quant,
    ops_rearrange,
    ops_resize,
    ops_rnn,
    ops_shape,
    ops_skip,
)
from tinyc.frontend.onnx.builder import Builder
from tinyc.frontend.onnx.ops_quant import qconst_from_node
from tinyc.frontend.onnx.reader import ACTIVATION_DTYPES, VALUE_DTYPES, OnnxModel, ir_dtype
from tinyc.frontend.onnx.registry import OPS
from tinyc.ir.graph import Graph
from tinyc.ir.verify import NO_TRANSLATION

DEFAULT_DOMAINS = ("", "ai.onnx")


def _label(node: onnx.NodeProto) -> str:
    if node.domain in DEFAULT_DOMAINS:
        return node.op_type
    return f"{node.domain}.{node.op_type}"


def _node_name(node: onnx.NodeProto) -> str:
    return node.name or (node.output[0] if node.output else node.op_type)


def _constness(node: onnx.NodeProto, known, static_shape) -> str | None:
    """How a node becomes a constant: "qconst", "shape", "fold", or None (translated)."""
    if node.domain not in DEFAULT_DOMAINS:
        return None
    ins = [i for i in node.input if i]
    if node.op_type == "DequantizeLinear":
        return "qconst" if ins and all(known(i) for i in ins) else None
    if node.op_type in ("Shape", "Size") and ins and static_shape(ins[0]):
        return "shape"
    if all(known(i) for i in ins):
        return "fold"
    return None


def _is_if(node: onnx.NodeProto) -> bool:
    return node.op_type == "If" and node.domain in DEFAULT_DOMAINS and bool(node.input)


def _branches(node: onnx.NodeProto) -> dict[str, onnx.GraphProto]:
    return {a.name: a.g for a in node.attribute if a.name in ("then_branch", "else_branch")}


def _translatable(node: onnx.NodeProto) -> bool:
    """Default-domain ops by type; others (com.microsoft's QOperator ops) by domain.type."""
    return _label(node) in OPS


def _keep_unsupported(b: Builder, node: onnx.NodeProto, reason: str) -> None:
    """An UNSUPPORTED node in place of ``node``: its run-time inputs, and outputs with the
    shapes ONNX shape inference gives (scalar when unknown), in ONNX's own layout."""
    from tinyc.frontend.onnx import layout as L
    from tinyc.ir.graph import Node
    from tinyc.ir.tensor import Tensor

    ins = [b.as_layout(i, L.identity(b.rank(i))) for i in node.input if i and i in b.values]
    outs = []
    for out in node.output:
        if not out:
            outs.append("")
            continue
        info = b.om.infos.get(out)
        shape = tuple(info.shape) if info is not None and info.shape is not None else ()
        try:
            dtype = ir_dtype(info.dtype, out) if info is not None and info.dtype else "float32"
        except TinycError:
            dtype = "float32"
        name = b.fresh(out)
        b.g.add_tensor(Tensor(name, shape, dtype if dtype in ACTIVATION_DTYPES else "float32"))
        b.bind(out, name, L.identity(len(shape)))
        outs.append(name)
    b.g.nodes.append(
        Node("UNSUPPORTED", b.node_name, ins, outs, {"op": _label(node), "reason": reason})
    )


def _fold(b: Builder, node: onnx.NodeProto) -> None:
    from onnx.reference import ReferenceEvaluator

    feeds = {i: np.asarray(b.const(i, "input")) for i in node.input if i}
    try:
        ev = ReferenceEvaluator(node, opsets={"": b.opset})
        results = ev.run(None, feeds)
    except Exception as e:
        msg = " ".join(str(e).split())[:200]
        raise TinycError(f"{b.where()}: cannot evaluate on constant inputs ({msg})") from None
    for name, value in zip(node.output, results, strict=False):
        if name:
            b.consts[name] = np.asarray(value)


def _shape_const(b: Builder, node: onnx.NodeProto) -> None:
    shape = b.shape(node.input[0])
    if node.op_type == "Size":
        b.consts[node.output[0]] = np.array(int(np.prod(shape, dtype=np.int64)), np.int64)
        return
    a = b.attrs(node)
    start, end = a.get("start", 0), a.get("end", None)
    b.consts[node.output[0]] = np.array(shape[start:end], np.int64)


def _check_outputs(b: Builder, node: onnx.NodeProto) -> None:
    """Cross-check every computed output against ONNX shape inference."""
    for out in node.output:
        if not out or out not in b.values:
            continue
        t = b.ir_tensor(out)
        if t.dtype not in VALUE_DTYPES:
            raise UnsupportedError(f"{b.where()}: output {out!r} has unsupported dtype {t.dtype}")
        info = b.om.infos.get(out)
        ours = b.shape(out)
        if info is not None and info.shape is not None and info.shape != ours:
            raise TinycError(
                f"{b.where()}: output {out!r} computes to shape {list(ours)}, but ONNX shape "
                f"inference says {list(info.shape)}"
            )


def convert(om: OnnxModel, name: str) -> Graph:
    """The IR graph of an ONNX model, before any pass: one IR node (or a few) per ONNX
    node, QuantizeLinear/DequantizeLinear kept as QUANTIZE/DEQUANTIZE nodes."""
    b = Builder(om, name)
    for init in om.graph.initializer:
        try:
            b.consts[init.name] = numpy_helper.to_array(init)
        except Exception as e:
            raise TinycError(f"{om.what}: initializer {init.name!r} is unreadable ({e})") from None
    if om.graph.sparse_initializer:
        raise UnsupportedError(f"{om.what}: sparse initializers are not supported")
    b.add_inputs()

    _translate(b, om.graph.node)
    b.add_outputs()
    return b.g


def _translate(b: Builder, nodes) -> None:
    for node in nodes:
        b.start(node)
        if _is_if(node) and b.is_const(node.input[0]):
            _inline_if(b, node)
            _check_outputs(b, node)
            continue
        kind = _constness(node, b.is_const, b.values.__contains__)
        if kind == "fold":
            _fold(b, node)
        elif kind == "shape":
            _shape_const(b, node)
        elif kind == "qconst":
            b.qconsts[node.output[0]] = qconst_from_node(b, node)
        elif not _translatable(node):
            _keep_unsupported(b, node, NO_TRANSLATION)
        else:
            mark = len(b.g.nodes)
            try:
                OPS[_label(node)](b, node)
                _check_outputs(b, node)
            except TinycError as e:
                after = any(
                    i in b.values and b.g.tensors[b.values[i].ir].shape == ()
                    for i in node.input
                    if i
                )
                if not isinstance(e, UnsupportedError) and not after:
                    raise
                del b.g.nodes[mark:]  # whatever the translation emitted before it gave up
                reason = str(e).split("): ", 1)[-1]
                _keep_unsupported(b, node, reason)


def _inline_if(b: Builder, node: onnx.NodeProto) -> None:
    """An If whose condition is a constant: the taken branch's nodes, translated in place
    (they may read outer-scope values), its outputs bound to the If's."""
    cond = np.asarray(b.const(node.input[0], "the condition"))
    if cond.size != 1:
        raise b.unsupported(f"a condition with {cond.size} values")
    taken = "then_branch" if bool(cond.reshape(-1)[0]) else "else_branch"
    branch = _branches(node).get(taken)
    if branch is None:
        raise b.unsupported(f"no {taken}")
    if len(branch.output) != len(node.output):
        raise b.unsupported(f"{taken} has {len(branch.output)} outputs for {len(node.output)}")
    for init in branch.initializer:
        b.consts[init.name] = numpy_helper.to_array(init)
    _translate(b, branch.node)
    b.start(node)
    for out, sub in zip(node.output, branch.output, strict=True):
        if not out:
            continue
        if sub.name in b.consts:
            b.consts[out] = b.consts[sub.name]
        elif sub.name in b.qconsts:
            b.qconsts[out] = b.qconsts[sub.name]
        else:
            b.values[out] = b.value(sub.name)

"""Walk the ONNX graph in order: fold constant subgraphs, translate the rest to IR nodes."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from tinyc.errors import TinycError, UnsupportedError
from tinyc.frontend.onnx import ops_math, ops_nn, ops_quant, ops_shape  # noqa: F401 (register)
from tinyc.frontend.onnx.builder import Builder
from tinyc.frontend.onnx.ops_quant import qconst_from_node
from tinyc.frontend.onnx.reader import ACTIVATION_DTYPES, OnnxModel
from tinyc.frontend.onnx.registry import OPS
from tinyc.ir.graph import Graph

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


def check_supported(om: OnnxModel) -> None:
    """Raise one error listing every operator that is neither folded nor translatable."""
    known = {i.name for i in om.graph.initializer}
    inputs = {i.name for i in om.real_inputs()}

    def static(name: str) -> bool:
        info = om.infos.get(name)
        return name in inputs or (info is not None and info.shape is not None)

    bad = []
    for node in om.graph.node:
        if _constness(node, known.__contains__, static) is not None:
            known.update(o for o in node.output if o)
        elif node.domain not in DEFAULT_DOMAINS or node.op_type not in OPS:
            bad.append(f"{_label(node)} (node {_node_name(node)!r})")
    if bad:
        raise UnsupportedError(f"{om.what}: {len(bad)} unsupported operator(s): " + ", ".join(bad))


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
        if t.dtype not in ACTIVATION_DTYPES:
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
    check_supported(om)
    b.add_inputs()

    def static(n: str) -> bool:
        return n in b.values

    for node in om.graph.node:
        b.start(node)
        kind = _constness(node, b.is_const, static)
        if kind == "fold":
            _fold(b, node)
        elif kind == "shape":
            _shape_const(b, node)
        elif kind == "qconst":
            b.qconsts[node.output[0]] = qconst_from_node(b, node)
        else:
            OPS[node.op_type](b, node)
            _check_outputs(b, node)
    b.add_outputs()
    return b.g

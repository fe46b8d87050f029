"""Turn QDQ-style graphs (float ops between DEQUANTIZE and QUANTIZE nodes, as ONNX QDQ
models and PyTorch PT2E exports write them) into int8 ops.

A float op becomes int8 when every run-time input comes from a DEQUANTIZE of an int8
tensor and:
- it only moves data (reshape, transpose, pad, concat, split, max pool): its output keeps
  its input's quantization, no QUANTIZE needed after it;
- otherwise its only reader is a per-tensor QUANTIZE, whose parameters become the op's
  output parameters (ops with fixed or input-tied output parameters, e.g. SOFTMAX or
  AVERAGE_POOL_2D, produce those and the QUANTIZE becomes an int8 requantization).
Weights must be symmetric int8 constants (per channel along the output-channel axis);
biases become int32 with scale input_scale * weight_scale (the stored integers are kept
when the file's bias already has that scale). Afterwards each QUANTIZE(DEQUANTIZE(t))
becomes t, or an int8 -> int8 QUANTIZE when the parameters differ. Ops that do not fit
stay float, fed by DEQUANTIZE as before.
"""

from __future__ import annotations

import numpy as np

from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import get_op
from tinyc.ir.ops.base import quantize_value
from tinyc.ir.tensor import QuantParams, Tensor
from tinyc.passes._edit import drop_copy
from tinyc.passes.fuse_activations import FUSABLE

EXACT = {
    "RESHAPE",
    "TRANSPOSE",
    "PAD",
    "CONCATENATION",
    "SPLIT",
    "SPLIT_V",
    "PACK",
    "UNPACK",
    "MAX_POOL_2D",
}
#: weighted ops and the weight axis that indexes output channels
WEIGHTED = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0}
INT32 = np.iinfo(np.int32)


def _dq_source(g: Graph, name: str, producers: dict[str, Node]) -> Tensor | None:
    """The int8 tensor behind a DEQUANTIZE that produces ``name``."""
    p = producers.get(name)
    if p is None or p.op != "DEQUANTIZE":
        return None
    src = g.tensors[p.inputs[0]]
    return src if src.dtype == "int8" and src.quant is not None else None


def _q_reader(g: Graph, name: str, consumers: dict[str, list[Node]]) -> Node | None:
    """The only reader of ``name`` when it is a per-tensor int8 QUANTIZE."""
    readers = consumers.get(name, [])
    if len(readers) != 1 or readers[0].op != "QUANTIZE" or name in g.outputs:
        return None
    y = g.out(readers[0])
    if y.dtype != "int8" or y.quant is None or y.quant.per_channel:
        return None
    return readers[0]


def _weights_ok(node: Node, w: Tensor) -> bool:
    q = w.quant
    if not w.is_const or q is None or np.any(q.zero_point != 0):
        return False
    return not q.per_channel or q.axis == WEIGHTED[node.op]


def _int32_bias(g: Graph, node: Node, b: Tensor, x: Tensor, w: Tensor) -> str | None:
    """The bias as int32 with scale input_scale * weight_scale[c]."""
    assert x.quant is not None and w.quant is not None and b.data is not None
    channels = w.shape[WEIGHTED[node.op]]
    wscale = np.broadcast_to(w.quant.scale.astype(np.float64), (channels,))
    scale = float(x.quant.s) * wscale
    stored = b.meta.get("int32")
    if stored is not None:
        q, qp = stored
        if np.all(qp.zero_point == 0) and np.allclose(
            np.broadcast_to(qp.scale, (channels,)), scale, rtol=1e-6, atol=0
        ):
            data = np.asarray(q, np.int64).reshape(-1)
        else:
            data = None
    else:
        data = None
    if data is None:
        real = b.data.astype(np.float64).reshape(-1)
        data = np.round(real / scale)
    if data.size != channels or np.any(data < INT32.min) or np.any(data > INT32.max):
        return None
    qp = QuantParams(scale.astype(np.float32), np.zeros(channels, np.int64), 0)
    name = g.unique_name(f"{b.name}_int32")
    g.add_tensor(Tensor(name, (channels,), "int32", data.astype(np.int32), qp))
    return name


def _int_inputs(g: Graph, node: Node, producers: dict[str, Node]) -> list[str] | None:
    """The node's inputs with every float operand replaced by its int8 source."""
    new = []
    for i, name in enumerate(node.inputs):
        if not name:
            new.append(name)
            continue
        if node.op in WEIGHTED and i == 2:
            new.append(name)  # converted once the input and weight scales are known
            continue
        t = g.tensors[name]
        if t.dtype != "float32":
            new.append(name)
            continue
        src = _dq_source(g, name, producers)
        if src is None:
            return None
        if node.op in WEIGHTED and i == 1:
            if not _weights_ok(node, src):
                return None
        elif src.quant is None or src.quant.per_channel:
            return None
        new.append(src.name)
    return new


def _output_quant(g: Graph, node: Node, ins: list[str], reader: Node | None) -> QuantParams | None:
    op = get_op(node.op)
    first = g.tensors[ins[0]].quant
    if node.op in EXACT:
        quants = [g.tensors[i].quant for i in ins if i and not g.tensors[i].is_const]
        if node.op == "CONCATENATION":
            quants = [g.tensors[i].quant for i in ins]
        if all(q is not None and q.same_as(quants[0]) for q in quants):
            return quants[0]
        return None
    if reader is None:
        return None
    if isinstance(op.output_quant, tuple):
        scale, zp = op.output_quant
        return QuantParams(np.float32(scale), zp)
    if op.output_quant == "same_as_input":
        return first
    return g.out(reader).quant


def _convert(g: Graph, node: Node, producers, consumers) -> bool:
    if node.op in ("QUANTIZE", "DEQUANTIZE") or get_op(node.op).optional_outputs:
        return False  # recurrent layers need calibrated internal ranges: PTQ, not QDQ
    if "float32" not in {g.tensors[o].dtype for o in node.outputs if o}:
        return False
    ins = _int_inputs(g, node, producers)
    if ins is None or not any(ins):
        return False
    reader = _q_reader(g, node.outputs[0], consumers) if len(node.outputs) == 1 else None
    quant = _output_quant(g, node, ins, reader)
    if quant is None:
        return False
    if node.op in WEIGHTED:
        x, w = g.tensors[ins[0]], g.tensors[ins[1]]
        if len(ins) > 2 and ins[2]:
            bias = g.tensors[ins[2]]
            if not bias.is_const or bias.dtype != "float32":
                return False
            b = _int32_bias(g, node, bias, x, w)
            if b is None:
                return False
            ins[2] = b
    if node.op == "PAD" and isinstance(node.attrs.get("value"), float):
        node.attrs["value"] = quantize_value(quant.s, quant.zp, node.attrs["value"])
    node.inputs = ins
    at = g.nodes.index(node)
    new_outputs = []
    for k, out in enumerate(node.outputs):
        if reader is not None and g.out(reader).quant.same_as(quant):
            # The QUANTIZE after the op becomes the op's own output.
            qname = reader.outputs[0]
            g.nodes.remove(reader)
            new_outputs.append(qname)
            g.tensors.pop(out)
            continue
        t = g.tensors[out]
        qname = g.unique_name(f"{out}_int8")
        g.add_tensor(Tensor(qname, t.shape, "int8", quant=quant))
        new_outputs.append(qname)
        g.nodes.insert(
            at + 1 + k, Node("DEQUANTIZE", f"{node.name}/dequantize_{k}", [qname], [out])
        )
    node.outputs = new_outputs
    return True


def _push_quantize_up(g: Graph, node: Node, producers, consumers) -> bool:
    """A data-movement op read only by a QUANTIZE commutes with it: quantize each float
    input that is not already a DEQUANTIZE output with the same parameters (exact, as
    QUANTIZE(move(x)) == move(QUANTIZE(x))), so its producer can become int8 too, and a
    CONCATENATION of differently quantized inputs gets requantized inputs."""
    if node.op not in EXACT or len(node.outputs) != 1:
        return False
    reader = _q_reader(g, node.outputs[0], consumers)
    if reader is None:
        return False
    quant = g.out(reader).quant
    changed = False
    for i, name in enumerate(node.inputs):
        t = g.tensors[name] if name else None
        if t is None or t.is_const or t.dtype != "float32":
            continue
        src = _dq_source(g, name, producers)
        if src is not None and (node.op != "CONCATENATION" or src.quant.same_as(quant)):
            continue
        q = g.unique_name(f"{name}_int8")
        f = g.unique_name(f"{name}_requantized")
        g.add_tensor(Tensor(q, t.shape, "int8", quant=quant))
        g.add_tensor(Tensor(f, t.shape, "float32"))
        at = g.nodes.index(node)
        g.nodes.insert(at, Node("DEQUANTIZE", f"{node.name}/dequantize_in{i}", [q], [f]))
        g.nodes.insert(at, Node("QUANTIZE", f"{node.name}/quantize_in{i}", [name], [q]))
        node.inputs[i] = f
        changed = True
    return changed


def _collapse(g: Graph) -> None:
    """QUANTIZE(DEQUANTIZE(t)) -> t, or an int8 -> int8 requantization."""
    producers = g.producers()
    for node in list(g.nodes):
        if node.op != "QUANTIZE":
            continue
        p = producers.get(node.inputs[0])
        if p is None or p.op != "DEQUANTIZE":
            continue
        src = g.tensors[p.inputs[0]]
        y = g.out(node)
        node.inputs = [src.name]
        if src.dtype == y.dtype and src.quant is not None and src.quant.same_as(y.quant):
            node.op = "RESHAPE"
            node.attrs = {"shape": y.shape}
            drop_copy(g, node)


def _fuse_activation_before_quantize(g: Graph) -> None:
    """op -> RELU/RELU6 -> QUANTIZE: the activation becomes the op's fused activation (also
    in graphs with int8 inputs/outputs, which fuse_activations leaves alone)."""
    producers, consumers = g.producers(), g.consumers()
    for node in list(g.nodes):
        src = producers.get(node.inputs[0]) if node.op in FUSABLE else None
        if (
            src is None
            or g.out(node).dtype != "float32"
            or _q_reader(g, node.outputs[0], consumers) is None
            or "activation" not in get_op(src.op).attrs
            or src.attrs.get("activation", "NONE") != "NONE"
            or len(src.outputs) != 1
            or len(consumers.get(src.outputs[0], [])) != 1
            or src.outputs[0] in g.outputs
        ):
            continue
        src.attrs["activation"] = FUSABLE[node.op]
        g.tensors.pop(src.outputs[0])
        src.outputs = [node.outputs[0]]
        g.nodes.remove(node)


def fuse_qdq(g: Graph) -> Graph:
    if not any(n.op in ("QUANTIZE", "DEQUANTIZE") for n in g.nodes):
        return g
    _fuse_activation_before_quantize(g)
    changed = True
    while changed:
        changed = False
        producers, consumers = g.producers(), g.consumers()
        for node in list(g.nodes):
            if _push_quantize_up(g, node, producers, consumers) or _convert(
                g, node, producers, consumers
            ):
                changed = True
                break
    _collapse(g)
    g.remove_unused()
    return g

"""Run in int8 the float ops a quantized graph ends with, where int8 needs no calibration.

A QDQ export often leaves its last ops in float: ``DequantizeLinear -> Softmax -> output``.
The C backend runs int8 only. Ops whose output quantization the TFLite int8 spec fixes
(SOFTMAX and LOGISTIC: scale 1/256, zero point -128; TANH: 1/128, 0) or takes from their
input (pooling, reshapes) can take the int8 tensor before the DEQUANTIZE directly, as the TF
converter makes them, with the DEQUANTIZE moved after them: the graph still gives float.
"""

from __future__ import annotations

from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import get_op
from tinyc.ir.tensor import QuantParams, Tensor


def _movable(node: Node, src: str, g: Graph) -> bool:
    """``node`` reads only ``src`` (constants aside) and has one float output whose
    quantization needs no calibration."""
    rule = get_op(node.op).output_quant
    inputs = [i for i in node.inputs if i and not g.tensors[i].is_const]
    return (
        (isinstance(rule, tuple) or rule == "same_as_input")
        and inputs == [src]
        and node.inputs[0] == src
        and len(node.outputs) == 1
        and g.tensors[node.outputs[0]].dtype == "float32"
    )


def _move_past(g: Graph, deq: Node, node: Node) -> str:
    """``node`` reads the int8 input of ``deq``; a new DEQUANTIZE after it gives its old
    float output. Returns a note."""
    x = g.tensors[deq.inputs[0]]
    y = g.tensors[node.outputs[0]]
    rule = get_op(node.op).output_quant
    quant = QuantParams(*rule) if isinstance(rule, tuple) else x.quant
    q = g.add_tensor(Tensor(g.unique_name(f"{y.name}_int8"), y.shape, x.dtype, quant=quant))
    node.inputs[0] = x.name
    node.outputs = [q.name]
    at = g.nodes.index(node) + 1
    name = g.unique_name(f"{node.name}/dequantize")
    g.nodes.insert(at, Node("DEQUANTIZE", name, [q.name], [y.name], {}))
    assert q.quant is not None
    return (
        f"{node.op} {node.name!r} ran in float after a DEQUANTIZE: it runs in int8 (output "
        f"scale {float(q.quant.s):g}, zero point {int(q.quant.zero_point[0])}, as the TFLite "
        "converter makes it) and its output is dequantized: within about one output quantum "
        "of float"
    )


def quantize_float_tail(g: Graph) -> tuple[Graph, list[str]]:
    """``g`` (quantized) with every float op that reads a DEQUANTIZE and can run in int8 without
    calibration (see the module) moved before it; a note per op moved. ``g`` is unchanged."""
    if not g.is_quantized:
        return g, []
    out, notes = g.copy(), []
    changed = True
    while changed:
        changed = False
        readers = out.consumers()
        for deq in out.nodes:
            if deq.op != "DEQUANTIZE" or out.tensors[deq.inputs[0]].quant is None:
                continue
            y = deq.outputs[0]
            for node in readers.get(y, []):
                if _movable(node, y, out):
                    notes.append(_move_past(out, deq, node))
                    changed = True
            if changed:
                out.remove_unused()
                break
    return out, notes

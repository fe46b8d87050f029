"""``tinyc inspect``: what a model is made of, per node and in total."""

from __future__ import annotations

from typing import Any

from tinyc.ir.graph import Graph
from tinyc.ir.ops import get_op
from tinyc.ir.tensor import Tensor
from tinyc.ir.verify import storage_only_dtypes
from tinyc.modelio import external_shape
from tinyc.table import fmt_int, render


def tensor_info(g: Graph, t: Tensor, boundary: bool = False) -> dict[str, Any]:
    info: dict[str, Any] = {
        "name": t.name,
        "shape": list(external_shape(g, t.name) if boundary else t.shape),
        "dtype": t.dtype,
    }
    if t.quant is not None:
        q = t.quant
        info["quantization"] = {
            "scale": [float(s) for s in q.scale],
            "zero_point": [int(z) for z in q.zero_point],
            **({"axis": q.axis} if q.axis is not None else {}),
        }
    return info


def inspect_graph(g: Graph) -> dict[str, Any]:
    from tinyc.passes.prune import layer_sparsity

    sparse = layer_sparsity(g)  # zeros already in the weights (pruned in training or by tinyc)
    nodes = []
    for i, n in enumerate(g.nodes):
        op = get_op(n.op)
        out = g.tensors[next((o for o in n.outputs if o), n.outputs[0])]
        odd = storage_only_dtypes(n, g) if n.op != "UNSUPPORTED" else []
        unsupported = n.op == "UNSUPPORTED" or bool(odd)
        reason = f"no op computes {'/'.join(odd)} tensors" if odd else n.attrs.get("reason", "")
        nodes.append(
            {
                "index": i,
                "name": n.name,
                "op": str(n.attrs.get("op")) if n.op == "UNSUPPORTED" else n.op,
                "supported": not unsupported,
                **({"reason": reason} if unsupported else {}),
                "inputs": [
                    list(g.tensors[x].shape) for x in n.inputs if x and not g.tensors[x].is_const
                ],
                "output": list(out.shape),
                "dtype": out.dtype,
                "params": op.params(n, g),
                "macs": op.macs(n, g),
                **(
                    {"sparsity": round(sparse[n.name][0] / sparse[n.name][1], 4)}
                    if n.name in sparse and sparse[n.name][1]
                    else {}
                ),
            }
        )
    return {
        "model": g.name,
        "format": g.source_format,
        "inputs": [tensor_info(g, g.tensors[n], True) for n in g.inputs],
        "outputs": [tensor_info(g, g.tensors[n], True) for n in g.outputs],
        "nodes": nodes,
        "totals": {
            "nodes": len(nodes),
            "unsupported": sum(not n["supported"] for n in nodes),
            "params": sum(n["params"] for n in nodes),
            "macs": sum(n["macs"] for n in nodes),
            "weight_bytes": sum(t.nbytes for t in g.constants()),
            "weight_sparsity": round(
                sum(z for z, _ in sparse.values()) / max(1, sum(n for _, n in sparse.values())), 4
            ),
        },
    }


def format_inspection(info: dict[str, Any]) -> str:
    def shapes(s: list[list[int]]) -> str:
        return " ".join("x".join(map(str, x)) or "scalar" for x in s)

    rows = [
        [
            n["index"],
            n["name"][:48],
            n["op"] if n["supported"] else f"{n['op']} (!)",
            shapes(n["inputs"]),
            shapes([n["output"]]),
            n["dtype"],
            fmt_int(n["params"]),
            fmt_int(n["macs"]),
            f"{100 * n['sparsity']:.1f}%" if "sparsity" in n else "",
        ]
        for n in info["nodes"]
    ]
    head = [f"model {info['model']} ({info['format']})"]
    for kind in ("inputs", "outputs"):
        for t in info[kind]:
            q = t.get("quantization")
            qs = f"  scale {q['scale'][0]:.6g} zero point {q['zero_point'][0]}" if q else ""
            head.append(
                f"  {kind[:-1]:6} {t['name']}: {t['dtype']}[{','.join(map(str, t['shape']))}]{qs}"
            )
    table = render(
        ["#", "node", "op", "inputs", "output", "dtype", "params", "MACs", "zeros"],
        rows,
        right={0, 6, 7, 8},
    )
    tot = info["totals"]
    foot = (
        f"total: {tot['nodes']} nodes, {fmt_int(tot['params'])} params "
        f"({fmt_int(tot['weight_bytes'])} bytes of constants), {fmt_int(tot['macs'])} MACs, "
        f"{100 * tot.get('weight_sparsity', 0.0):.1f} % of layer weights zero"
    )
    bad = [n for n in info["nodes"] if not n["supported"]]
    if bad:
        foot += (
            f"\n(!) {len(bad)} node(s) tinyc cannot compile: "
            + "; ".join(f"{n['name']} ({n['op']}): {n['reason']}" for n in bad[:5])
            + ("; ..." if len(bad) > 5 else "")
        )
    return "\n".join([*head, "", table, "", foot])


def partial_estimate(g: Graph, board: str) -> dict[str, Any]:
    """What ``tinyc estimate`` can still say about a model some of whose nodes tinyc cannot
    compile: per node, its parameters, MACs and tensor bytes as int8 (flash for constants,
    RAM for the run-time tensors it reads and writes), the unsupported ones marked; no
    instruction or latency figure (nothing can be costed without the kernel)."""
    from tinyc.boards import load_board

    b = load_board(board)
    info = inspect_graph(g)
    rows = []
    for n, node in zip(info["nodes"], g.nodes, strict=True):
        consts = [g.tensors[i] for i in node.inputs if i and g.tensors[i].is_const]
        acts = [g.tensors[i] for i in [*node.inputs, *node.outputs] if i]
        live = sum(t.size for t in acts if not t.is_const)
        rows.append({**n, "flash_bytes": sum(t.size for t in consts), "ram_bytes": live})
    return {
        "model": g.name,
        "board": b.name,
        "partial": True,
        "unsupported": info["totals"]["unsupported"],
        "nodes": rows,
        "totals": {
            "params": info["totals"]["params"],
            "macs": info["totals"]["macs"],
            "flash_bytes_at_least": sum(r["flash_bytes"] for r in rows),
            "ram_bytes_at_least": max((r["ram_bytes"] for r in rows), default=0),
        },
    }


def format_partial_estimate(est: dict[str, Any]) -> str:
    rows = [
        [
            n["index"],
            n["name"][:48],
            n["op"] if n["supported"] else f"{n['op']} (!)",
            "x".join(map(str, n["output"])),
            fmt_int(n["params"]),
            fmt_int(n["macs"]),
            fmt_int(n["flash_bytes"]),
            fmt_int(n["ram_bytes"]),
        ]
        for n in est["nodes"]
    ]
    tot = est["totals"]
    bad = [n for n in est["nodes"] if not n["supported"]]
    lines = [
        f"{est['model']} on {est['board']}: PARTIAL estimate -- tinyc cannot compile "
        f"{len(bad)} of {len(rows)} nodes (marked (!)), so there are no instruction or latency "
        "figures; sizes assume int8 tensors",
        "",
        render(
            ["#", "node", "op", "output", "params", "MACs", "flash B", "tensors B"],
            rows,
            right={0, 4, 5, 6, 7},
        ),
        "",
        f"total: {fmt_int(tot['params'])} params, {fmt_int(tot['macs'])} MACs; flash at least "
        f"{fmt_int(tot['flash_bytes_at_least'])} B of weights, RAM at least "
        f"{fmt_int(tot['ram_bytes_at_least'])} B (the largest layer's inputs and outputs)",
        *(f"(!) {n['name']} ({n['op']}): {n['reason']}" for n in bad[:8]),
    ]
    return "\n".join(lines)

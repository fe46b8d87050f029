"""Which nodes of an exported graph the outputs depend on."""

from __future__ import annotations

from typing import Any


def live_nodes(graph: Any) -> set:
    """The nodes the graph's outputs depend on (export keeps dead code: a getitem for every
    item of a tuple result, read or not, and computations nothing returns)."""
    live: set = set()
    todo = [n for n in graph.nodes if n.op == "output"]
    while todo:
        n = todo.pop()
        if n not in live:
            live.add(n)
            todo.extend(n.all_input_nodes)
    return live

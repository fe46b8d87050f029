"""Graph passes: each a function ``Graph -> Graph`` in its own module; a pipeline is a list."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tinyc.ir.graph import Graph

Pass = Callable[[Graph], Graph]


def run_pipeline(g: Graph, passes: Sequence[Pass]) -> Graph:
    for p in passes:
        g = p(g)
    return g

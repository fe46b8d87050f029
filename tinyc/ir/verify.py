"""Graph checks: known ops, consistent shapes and dtypes, well-formed references."""

from __future__ import annotations

from tinyc.errors import TinycError, UnsupportedError
from tinyc.ir.graph import Graph
from tinyc.ir.ops import REGISTRY


def check_supported(g: Graph) -> None:
    """Raise one error naming every node whose op tinyc does not know."""
    bad = [f"{n.op} (node {n.name!r})" for n in g.nodes if n.op not in REGISTRY]
    if bad:
        raise UnsupportedError(f"{len(bad)} unsupported operator(s): " + ", ".join(bad))


def verify(g: Graph, fix_shapes: bool = False) -> None:
    """Check every node against its op definition.

    With ``fix_shapes`` the inferred output shapes are written into the graph (frontends
    that infer shapes use this); otherwise a disagreement with the declared shape is an
    error, which catches malformed model files.
    """
    check_supported(g)
    defined = set(g.inputs) | {t.name for t in g.constants()} | {t.name for t in g.states()}
    for name in g.inputs + g.outputs:
        if name not in g.tensors:
            raise TinycError(f"graph input/output {name!r} is not a tensor of the graph")
    for t in g.states():
        if t.name in g.inputs:
            raise TinycError(f"state tensor {t.name!r} cannot also be a graph input")
    for node in g.nodes:
        for i in node.inputs:
            if i and i not in defined:
                raise TinycError(f"node {node.name!r} reads {i!r} before anything writes it")
        op = REGISTRY[node.op]
        try:
            specs = op.infer(node, g)
        except TinycError:
            raise
        except (ValueError, IndexError, TypeError, KeyError, ZeroDivisionError) as e:
            raise TinycError(f"node {node.name!r} ({node.op}): malformed ({e})") from None
        if len(specs) != len(node.outputs):
            raise TinycError(
                f"node {node.name!r} ({node.op}) has {len(node.outputs)} outputs, expected "
                f"{len(specs)}"
            )
        for out, (shape, dtype) in zip(node.outputs, specs, strict=True):
            if not out:  # an optional output the model does not use
                continue
            t = g.tensors[out]
            if t.shape != shape:
                if fix_shapes:
                    t.shape = shape
                else:
                    raise TinycError(
                        f"node {node.name!r} ({node.op}): output {out!r} is declared "
                        f"{list(t.shape)} but computes to {list(shape)}"
                    )
            if t.dtype != dtype:
                raise TinycError(f"node {node.name!r}: output {out!r} dtype {t.dtype} != {dtype}")
            defined.add(out)
        op.check(node, g)
    for name in g.outputs:
        if name not in defined:
            raise TinycError(f"graph output {name!r} is never computed")

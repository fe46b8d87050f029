"""Graph checks: known ops, consistent shapes and dtypes, well-formed references."""

from __future__ import annotations

from tinyc.errors import TinycError, UnsupportedError
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import REGISTRY
from tinyc.ir.tensor import STORAGE_ONLY_DTYPES

SHOWN_NAMES = 3


def unsupported_message(bad: dict[str, list[str]]) -> str:
    """One line for all of them, grouped by operator with a count and the first few node
    names: ``5 unsupported operator(s): Foo x4 (a, b, c, ...), Bar (d)``."""
    parts = []
    for label, names in bad.items():
        shown = ", ".join(names[:SHOWN_NAMES]) + (", ..." if len(names) > SHOWN_NAMES else "")
        count = f" x{len(names)}" if len(names) > 1 else ""
        parts.append(f"{label}{count} ({shown})")
    total = sum(len(n) for n in bad.values())
    return f"{total} unsupported operator(s): " + ", ".join(parts)


def unsupported_nodes(g: Graph) -> dict[str, list[str]]:
    """Operator -> names of the nodes tinyc cannot run, in graph order: unknown ones, and
    known ones on a dtype no op computes (labelled ``CAST on uint32``)."""
    bad: dict[str, list[str]] = {}
    for n in g.nodes:
        if n.op == "UNSUPPORTED":
            bad.setdefault(str(n.attrs.get("op")), []).append(n.name)
        elif n.op not in REGISTRY:
            bad.setdefault(n.op, []).append(n.name)
        elif odd := storage_only_dtypes(n, g):
            bad.setdefault(f"{n.op} on {'/'.join(odd)}", []).append(n.name)
    return bad


def storage_only_dtypes(n: Node, g: Graph) -> list[str]:
    """The dtypes no op computes (STORAGE_ONLY_DTYPES) among a node's tensors."""
    dtypes = {g.tensors[t].dtype for t in (*n.inputs, *n.outputs) if t}
    return sorted(dtypes & set(STORAGE_ONLY_DTYPES))


def check_supported(g: Graph) -> None:
    """Raise one error naming every node whose op tinyc does not know."""
    bad: dict[str, list[str]] = {n.op: [] for n in g.nodes if n.op not in REGISTRY}
    for n in g.nodes:
        if n.op not in REGISTRY:
            bad[n.op].append(n.name)
    if bad:
        raise UnsupportedError(unsupported_message(bad))


#: the reason the frontends give for an operator they have no translation for at all
NO_TRANSLATION = "tinyc has no translation for it"


def require_supported(g: Graph, what: str = "") -> None:
    """Raise one error naming every node tinyc cannot run (UNSUPPORTED ones included),
    grouped by operator, with the first few specific reasons; ``what`` names the model."""
    bad = unsupported_nodes(g)
    if not bad:
        return
    reasons = [
        f"node {n.name!r} ({n.attrs.get('op')}): {n.attrs['reason']}"
        for n in g.nodes
        if n.op == "UNSUPPORTED" and n.attrs.get("reason") not in (None, "", NO_TRANSLATION)
    ]
    prefix = f"{what}: " if what else ""
    detail = "; ".join(reasons[:SHOWN_NAMES]) + ("; ..." if len(reasons) > SHOWN_NAMES else "")
    raise UnsupportedError(prefix + unsupported_message(bad) + (f" -- {detail}" if detail else ""))


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

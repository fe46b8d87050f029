"""Static memory planning: every run-time tensor and kernel scratch buffer gets a fixed
offset in one arena.

1. Aliases: outputs that may share their input's bytes (RESHAPE always; elementwise ops
   when the input dies there) join the input's buffer.
2. Live ranges over the node order; graph inputs live from the start, outputs to the end.
3. Offsets: greedy placement (several orderings, the smallest arena wins), each buffer at
   the lowest aligned offset free for its whole live range.
4. ``MemoryPlan.check`` proves that no two simultaneously live buffers overlap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tinyc.errors import TinycError
from tinyc.ir.graph import Graph, Node

ALIGN = 4


def _align(n: int, a: int = ALIGN) -> int:
    return (n + a - 1) // a * a


@dataclass
class Buffer:
    """A region of the arena: one or more aliased tensors, or a node's scratch."""

    name: str
    size: int
    first: int  # first node index at which it is live (-1: before the first node)
    last: int  # last node index at which it is live
    tensors: list[str] = field(default_factory=list)
    offset: int = -1

    def overlaps_in_time(self, other: Buffer) -> bool:
        return not (self.last < other.first or other.last < self.first)


@dataclass
class MemoryPlan:
    arena_bytes: int
    buffers: list[Buffer]
    offsets: dict[str, int]  # tensor name -> arena offset
    scratch: dict[int, tuple[int, int]]  # node index -> (offset, bytes)

    def check(self) -> None:
        """Raise if two buffers that are live at the same time share bytes."""
        for i, a in enumerate(self.buffers):
            if a.offset < 0 or a.offset % ALIGN or a.offset + a.size > self.arena_bytes:
                raise AssertionError(f"buffer {a.name} misplaced at {a.offset}+{a.size}")
            for b in self.buffers[i + 1 :]:
                if (
                    a.overlaps_in_time(b)
                    and a.offset < b.offset + b.size
                    and b.offset < a.offset + a.size
                ):
                    raise AssertionError(f"buffers {a.name} and {b.name} overlap while both live")

    def live_bytes_at(self, step: int) -> int:
        return sum(b.size for b in self.buffers if b.first <= step <= b.last)

    def to_json(self) -> dict:
        return {
            "arena_bytes": self.arena_bytes,
            "buffers": [
                {
                    "name": b.name,
                    "offset": b.offset,
                    "bytes": b.size,
                    "first": b.first,
                    "last": b.last,
                    "tensors": b.tensors,
                }
                for b in sorted(self.buffers, key=lambda b: (b.offset, b.first))
            ],
        }


AliasRule = Callable[[Node, Graph], tuple[int, str] | None]
"""Returns (input index, kind) when the node's output may live in that input's bytes, or
None. kind "view": the output is the same bytes reinterpreted (RESHAPE), both may be read
later; kind "inplace": the kernel overwrites the input, allowed only where the input dies."""


def plan_memory(
    g: Graph,
    scratch_bytes: dict[int, int] | None = None,
    alias_input: AliasRule | None = None,
) -> MemoryPlan:
    """Plan the arena for ``g``. ``scratch_bytes`` maps node index -> scratch size."""
    scratch_bytes = scratch_bytes or {}
    n = len(g.nodes)
    group: dict[str, str] = {}  # tensor -> representative tensor of its buffer

    def root(t: str) -> str:
        while group.get(t, t) != t:
            t = group[t]
        return t

    last_use: dict[str, int] = {}
    for i, node in enumerate(g.nodes):
        for t in node.inputs:
            if t and not g.tensors[t].is_const:
                last_use[t] = i
    for t in g.outputs:
        last_use[t] = n

    if alias_input is not None:
        for i, node in enumerate(g.nodes):
            rule = alias_input(node, g)
            if rule is None:
                continue
            k, kind = rule
            src = node.inputs[k]
            out = node.outputs[0]
            src_t, out_t = g.tensors[src], g.tensors[out]
            if src_t.is_const or src_t.nbytes < out_t.nbytes:
                continue
            # The input's bytes may be taken over only if nothing reads them afterwards,
            # counting every tensor already sharing that buffer.
            group_members = [t for t in last_use if root(t) == root(src)] + [src]
            if kind == "inplace" and any(last_use.get(t, -1) > i for t in group_members):
                continue
            group[out] = root(src)

    spans: dict[str, list[int]] = {}
    sizes: dict[str, int] = {}
    members: dict[str, list[str]] = {}
    first_def: dict[str, int] = {t: -1 for t in g.inputs}
    for i, node in enumerate(g.nodes):
        for t in node.outputs:
            first_def.setdefault(t, i)
    for t, tensor in g.tensors.items():
        if tensor.is_const or (t not in first_def and t not in last_use):
            continue
        r = root(t)
        lo = first_def.get(t, -1)
        hi = max(last_use.get(t, lo), lo)
        span = spans.setdefault(r, [lo, hi])
        span[0], span[1] = min(span[0], lo), max(span[1], hi)
        sizes[r] = max(sizes.get(r, 0), _align(tensor.nbytes))
        members.setdefault(r, []).append(t)

    buffers = [
        Buffer(r, sizes[r], spans[r][0], spans[r][1], sorted(members[r]))
        for r in sorted(spans, key=lambda r: (spans[r][0], r))
    ]
    for i, size in sorted(scratch_bytes.items()):
        if size > 0:
            buffers.append(Buffer(f"scratch:{g.nodes[i].name}", _align(size), i, i))

    best: list[int] | None = None
    best_size = None
    orders = [
        sorted(range(len(buffers)), key=lambda k: (-buffers[k].size, buffers[k].first, k)),
        sorted(
            range(len(buffers)),
            key=lambda k: (-(buffers[k].last - buffers[k].first), -buffers[k].size, k),
        ),
        sorted(
            range(len(buffers)),
            key=lambda k: (-buffers[k].size * (buffers[k].last - buffers[k].first + 1), k),
        ),
        sorted(range(len(buffers)), key=lambda k: (buffers[k].first, -buffers[k].size, k)),
    ]
    for order in orders:
        offsets = _greedy(buffers, order)
        size = max((offsets[k] + buffers[k].size for k in range(len(buffers))), default=0)
        if best_size is None or size < best_size:
            best, best_size = offsets, size
    assert best is not None or not buffers
    for k, b in enumerate(buffers):
        b.offset = best[k] if best else 0
    plan = MemoryPlan(
        arena_bytes=_align(best_size or 0, 16),
        buffers=buffers,
        offsets={t: b.offset for b in buffers for t in b.tensors},
        scratch={
            i: (b.offset, b.size)
            for b in buffers
            if b.name.startswith("scratch:")
            for i in [b.first]
        },
    )
    plan.check()
    return plan


def _greedy(buffers: list[Buffer], order: list[int]) -> list[int]:
    """Place buffers in ``order``, each at the lowest offset free during its live range."""
    offsets = [-1] * len(buffers)
    placed: list[int] = []
    for k in order:
        b = buffers[k]
        busy = sorted(
            (offsets[j], offsets[j] + buffers[j].size)
            for j in placed
            if buffers[j].overlaps_in_time(b)
        )
        at = 0
        for lo, hi in busy:
            if at + b.size <= lo:
                break
            at = max(at, _align(hi))
        offsets[k] = at
        placed.append(k)
    return offsets


def check_fits(plan: MemoryPlan, capacity: int, region: str, g: Graph) -> None:
    if plan.arena_bytes > capacity:
        worst = max(range(len(g.nodes)), key=plan.live_bytes_at, default=0)
        raise TinycError(
            f"the activation arena needs {plan.arena_bytes} bytes but {region} has {capacity}"
            f" ({plan.arena_bytes - capacity} bytes short); peak at node {g.nodes[worst].name!r}"
        )

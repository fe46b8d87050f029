"""Static memory planning: every run-time tensor and kernel scratch buffer gets a fixed
offset in one arena.

1. Aliases: outputs that are the same bytes as an input (RESHAPE: a "view") or that an
   elementwise kernel writes over its dying input ("inplace") join that input's buffer.
2. Overlaps: a kernel that consumes its input in order may write its output over the
   part it has finished reading. It states a ``lead``: the output is safe anywhere
   starting at least ``lead`` bytes before the input (a negative lead: up to that many
   bytes after it). A kernel that widens its input into its scratch from the last element
   down may put the scratch anywhere at or after the input's start. Only used when the
   input dies at that node. Each such pair of buffers carries a ``Window`` of the start
   offsets (relative to the input) at which the second may overlap the first.
3. Live ranges over the node order; graph inputs live from the start, outputs to the end.
4. Offsets: several greedy placements (by size, by time with overlap hints, ...); the
   smallest arena wins. ``MemoryPlan.check`` proves no two live buffers collide.
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

    @property
    def end(self) -> int:
        return self.offset + self.size

    def overlaps_in_time(self, other: Buffer) -> bool:
        return not (self.last < other.first or other.last < self.first)


@dataclass(frozen=True)
class Overlap:
    """The output of a node may start ``lead`` bytes before input ``tensor`` (or earlier)
    and cover the bytes the kernel has already consumed."""

    tensor: str
    lead: int


@dataclass(frozen=True)
class Window:
    """Where the dependent buffer of an overlap pair may start, relative to its input's
    offset, when the two share bytes (any other overlap is forbidden)."""

    lo: int
    hi: int

    @property
    def preferred(self) -> int:
        """The start tried first: the highest bound when there is one, else the lowest."""
        return self.hi if self.hi < UNBOUNDED else self.lo


UNBOUNDED = 1 << 40


def behind(lead: int) -> Window:
    """An overlap output's window: anywhere ``lead`` bytes or more before the input."""
    return Window(-UNBOUNDED, -lead)


#: a scratch widened from its input's end down: at or after the input's start
AT_OR_AFTER = Window(0, UNBOUNDED)


AliasRule = Callable[[Node, Graph], tuple[int, str] | None]
"""Returns (input index, kind) when the node's output may live in that input's bytes, or
None. kind "view": the output is the same bytes reinterpreted (RESHAPE), both may be read
later; kind "inplace": the kernel overwrites the input, allowed only where the input dies."""

OverlapRule = Callable[[Node, Graph], Overlap | None]


def _forbidden(
    b: Buffer, j: Buffer, pairs: dict[tuple[int, int], Window], bi: int, ji: int
) -> list[tuple[int, int]]:
    """Open intervals of offsets where ``b`` may not start, given placed ``j``."""
    lo, hi = j.offset - b.size, j.end  # any overlap at all
    if (ji, bi) in pairs:  # j is the input, b depends on it
        w = pairs[(ji, bi)]
        cuts = [(lo, j.offset + w.lo), (j.offset + w.hi, hi)]
    elif (bi, ji) in pairs:  # b is the input, j already depends on it
        w = pairs[(bi, ji)]
        cuts = [(lo, j.offset - w.hi), (j.offset - w.lo, hi)]
    else:
        return [(lo, hi)]
    return [(max(a, lo), min(z, hi)) for a, z in cuts if max(a, lo) < min(z, hi)]


@dataclass
class MemoryPlan:
    arena_bytes: int
    buffers: list[Buffer]
    offsets: dict[str, int]  # tensor name -> arena offset
    scratch: dict[int, tuple[int, int]]  # node index -> (offset, bytes)
    pairs: dict[tuple[int, int], Window] = field(default_factory=dict)  # (input, dependent)
    #: state tensors (Tensor.variable): their own persistent region, never the arena
    state_offsets: dict[str, int] = field(default_factory=dict)
    state_bytes: int = 0

    def check(self) -> None:
        """Raise if two buffers that are live at the same time share bytes illegally."""
        for i, a in enumerate(self.buffers):
            if a.offset < 0 or a.offset % ALIGN or a.end > self.arena_bytes:
                raise AssertionError(f"buffer {a.name} misplaced at {a.offset}+{a.size}")
            for k in range(i + 1, len(self.buffers)):
                b = self.buffers[k]
                if not a.overlaps_in_time(b):
                    continue
                if any(lo < b.offset < hi for lo, hi in _forbidden(b, a, self.pairs, k, i)):
                    raise AssertionError(f"buffers {a.name} and {b.name} overlap while both live")

    def live_bytes_at(self, step: int) -> int:
        return sum(b.size for b in self.buffers if b.first <= step <= b.last)

    def to_json(self) -> dict:
        return {
            "arena_bytes": self.arena_bytes,
            "state_bytes": self.state_bytes,
            "states": [
                {"name": name, "offset": off} for name, off in sorted(self.state_offsets.items())
            ],
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


def plan_memory(
    g: Graph,
    scratch_bytes: dict[int, int] | None = None,
    alias_input: AliasRule | None = None,
    overlap: OverlapRule | None = None,
    scratch_over: dict[int, int] | None = None,
) -> MemoryPlan:
    """Plan the arena for ``g``. ``scratch_bytes`` maps node index -> scratch size;
    ``scratch_over`` node index -> the input whose bytes its scratch may take over (the
    kernel widens that input into the scratch from its last element down)."""
    scratch_bytes = scratch_bytes or {}
    scratch_over = scratch_over or {}
    n = len(g.nodes)
    group: dict[str, str] = {}  # tensor -> representative tensor of its buffer

    def root(t: str) -> str:
        while group.get(t, t) != t:
            t = group[t]
        return t

    last_use: dict[str, int] = {}
    for i, node in enumerate(g.nodes):
        for t in node.inputs:
            if t and not g.tensors[t].is_const and not g.tensors[t].variable:
                last_use[t] = i
    for t in g.outputs:
        last_use[t] = n

    def dies_at(t: str, i: int) -> bool:
        """No tensor sharing ``t``'s buffer is read after node i."""
        return all(last_use.get(m, -1) <= i for m in last_use if root(m) == root(t))

    if alias_input is not None:
        for i, node in enumerate(g.nodes):
            rule = alias_input(node, g)
            if rule is None:
                continue
            k, kind = rule
            src, out = node.inputs[k], node.outputs[0]
            if g.tensors[src].is_const or g.tensors[src].nbytes < g.tensors[out].nbytes:
                continue
            if kind == "inplace" and not dies_at(src, i):
                continue
            group[out] = root(src)

    spans: dict[str, list[int]] = {}
    sizes: dict[str, int] = {}
    members: dict[str, list[str]] = {}
    first_def: dict[str, int] = {t: -1 for t in g.inputs}
    for i, node in enumerate(g.nodes):
        for t in node.outputs:
            if t:
                first_def.setdefault(t, i)
    for t, tensor in g.tensors.items():
        if tensor.is_const or tensor.variable or (t not in first_def and t not in last_use):
            continue
        r = root(t)
        lo = first_def.get(t, -1)
        hi = max(last_use.get(t, lo), lo)
        span = spans.setdefault(r, [lo, hi])
        span[0], span[1] = min(span[0], lo), max(span[1], hi)
        sizes[r] = max(sizes.get(r, 0), _align(tensor.nbytes))
        members.setdefault(r, []).append(t)

    roots = sorted(spans, key=lambda r: (spans[r][0], r))
    buffers = [Buffer(r, sizes[r], spans[r][0], spans[r][1], sorted(members[r])) for r in roots]
    index = {r: k for k, r in enumerate(roots)}
    pairs: dict[tuple[int, int], Window] = {}
    for i, size in sorted(scratch_bytes.items()):
        if size > 0:
            buffers.append(Buffer(f"scratch:{g.nodes[i].name}", _align(size), i, i))
            src_t = g.nodes[i].inputs[scratch_over[i]] if i in scratch_over else None
            if src_t and not g.tensors[src_t].is_const and dies_at(src_t, i):
                src = index[root(src_t)]
                if buffers[src].last == i:
                    pairs[(src, len(buffers) - 1)] = AT_OR_AFTER
    if overlap is not None:
        for i, node in enumerate(g.nodes):
            ov = overlap(node, g)
            if ov is None or not dies_at(ov.tensor, i):
                continue
            src, dst = index[root(ov.tensor)], index[root(node.outputs[0])]
            if src != dst and buffers[src].last == i and buffers[dst].first == i:
                pairs[(src, dst)] = behind(ov.lead)

    candidates: list[list[int]] = []
    by_size = sorted(range(len(buffers)), key=lambda k: (-buffers[k].size, buffers[k].first, k))
    by_time = sorted(range(len(buffers)), key=lambda k: (buffers[k].first, -buffers[k].size, k))
    for order in (
        by_size,
        by_time,
        sorted(range(len(buffers)), key=lambda k: (buffers[k].first - buffers[k].last, k)),
    ):
        candidates.append(_greedy(buffers, order, pairs, hints=False))
        if pairs:
            for below_zero in (False, True):
                for reserve in (False, True):
                    candidates.append(_greedy(buffers, order, pairs, True, below_zero, reserve))

    def extent(offsets: list[int]) -> int:
        return max((offsets[k] + buffers[k].size for k in range(len(buffers))), default=0)

    best = min(candidates, key=extent) if candidates else []
    for k, b in enumerate(buffers):
        b.offset = best[k]
    state_offsets, state_bytes = plan_state(g)
    plan = MemoryPlan(
        arena_bytes=_align(extent(best), 16),
        buffers=buffers,
        offsets={t: b.offset for b in buffers for t in b.tensors},
        scratch={b.first: (b.offset, b.size) for b in buffers if b.name.startswith("scratch:")},
        pairs=pairs,
        state_offsets=state_offsets,
        state_bytes=state_bytes,
    )
    plan.check()
    return plan


def plan_state(g: Graph) -> tuple[dict[str, int], int]:
    """Offsets of the state tensors in their persistent region (in graph order), and its
    size: they live from one invocation to the next, so nothing else may use their bytes."""
    offsets: dict[str, int] = {}
    at = 0
    for t in g.states():
        offsets[t.name] = at
        at += _align(t.nbytes)
    return offsets, at


def _lowest_fit(forbidden: list[tuple[int, int]], start: int = 0) -> int:
    at = start
    moved = True
    while moved:
        moved = False
        for lo, hi in forbidden:
            if lo < at < hi:
                at = _align(hi)
                moved = True
    return at


def _greedy(
    buffers: list[Buffer],
    order: list[int],
    pairs: dict[tuple[int, int], Window],
    hints: bool,
    below_zero: bool = False,
    reserve: bool = False,
) -> list[int]:
    """Place buffers in ``order``, each at the lowest offset where it collides with no
    buffer live at the same time. With ``hints``, a dependent buffer of an overlap pair
    first tries its window's preferred start, and an overlap output's input is placed with
    ``lead`` bytes kept free below it for as long as its output lives (``reserve``)."""
    offsets: list[int | None] = [None] * len(buffers)
    placed: list[int] = []
    hint_of = {dst: (src, w) for (src, dst), w in pairs.items()}
    feeds = {src: (dst, w) for (src, dst), w in pairs.items()}

    def forbidden_for(k: int, size: int, first: int, last: int) -> list[tuple[int, int]]:
        probe = Buffer(buffers[k].name, size, first, last)
        out = []
        for j in placed:
            if buffers[j].overlaps_in_time(probe):
                buffers[j].offset = offsets[j]  # type: ignore[assignment]
                out.extend(_forbidden(probe, buffers[j], pairs, k, j))
        return out

    for k in order:
        b = buffers[k]
        forbidden = forbidden_for(k, b.size, b.first, b.last)
        at = None
        if hints and k in hint_of and offsets[hint_of[k][0]] is not None:
            src, w = hint_of[k]
            # may fall below zero: the whole placement is shifted up at the end
            want = (offsets[src] + w.preferred) // ALIGN * ALIGN
            if (want >= 0 or below_zero) and not any(lo < want < hi for lo, hi in forbidden):
                at = want
        if at is None and reserve and k in feeds and offsets[feeds[k][0]] is None:
            dst, w = feeds[k]
            margin = _align(max(-w.hi, 0)) if w.hi < UNBOUNDED else 0
            if margin:
                # room for the output to start `lead` bytes lower while both are live
                span = forbidden_for(k, b.size + margin, b.first, buffers[dst].last)
                cand = _lowest_fit(span) + margin
                if not any(lo < cand < hi for lo, hi in forbidden):
                    at = cand
        if at is None:
            at = _lowest_fit(forbidden)
        offsets[k] = at
        placed.append(k)
    low = min((o for o in offsets if o is not None), default=0)
    return [o - low for o in offsets]  # type: ignore[operator]


def check_fits(plan: MemoryPlan, capacity: int, region: str, g: Graph) -> None:
    if plan.arena_bytes > capacity:
        worst = max(range(len(g.nodes)), key=plan.live_bytes_at, default=0)
        raise TinycError(
            f"the activation arena needs {plan.arena_bytes} bytes but {region} has {capacity}"
            f" ({plan.arena_bytes - capacity} bytes short); peak at node {g.nodes[worst].name!r}"
        )

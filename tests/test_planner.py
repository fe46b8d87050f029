"""The memory planner: no two live buffers collide, overlap windows are honoured, and
the checker catches a plan that breaks either rule."""

from __future__ import annotations

import dataclasses

import graphs
import pytest

from tinyc.backends.cmsis.codegen import plan_for
from tinyc.planner import AT_OR_AFTER, Buffer, MemoryPlan, _forbidden, behind, plan_memory


def _live_peak(plan: MemoryPlan, n_nodes: int) -> int:
    return max(plan.live_bytes_at(i) for i in range(-1, n_nodes + 1))


@pytest.mark.parametrize("g", graphs.all_cases(), ids=lambda g: g.name)
def test_every_case_plans_and_checks(g) -> None:
    for target in ("plain", "dsp", "mve"):
        plan = plan_for(g, target)
        plan.check()
        # the arena holds everything live at once except where a window lets buffers share
        if not plan.pairs:
            assert plan.arena_bytes >= _live_peak(plan, len(g.nodes))


def test_scratch_window_is_at_or_after_the_input() -> None:
    src = Buffer("x", 64, -1, 0, offset=100)
    scratch = Buffer("s", 128, 0, 0)
    pairs = {(0, 1): AT_OR_AFTER}
    forbidden = _forbidden(scratch, src, pairs, 1, 0)

    def allowed(at: int) -> bool:
        return not any(lo < at < hi for lo, hi in forbidden)

    assert allowed(100) and allowed(132) and allowed(164) and allowed(100 - 128)
    assert not allowed(96) and not allowed(40)
    # the same rule seen from the input placed after the scratch
    scratch.offset = 200
    back = _forbidden(src, scratch, pairs, 0, 1)
    assert not any(lo < 200 < hi for lo, hi in back)  # input at the scratch's start
    assert not any(lo < 160 < hi for lo, hi in back)  # scratch 40 bytes into the input
    assert any(lo < 210 < hi for lo, hi in back)  # input after the scratch's start: no
    assert not any(lo < 120 < hi for lo, hi in back)  # fully below: fine


def test_overlap_window_is_lead_bytes_behind() -> None:
    src = Buffer("x", 64, -1, 0, offset=100)
    out = Buffer("y", 64, 0, 1)
    forbidden = _forbidden(out, src, {(0, 1): behind(16)}, 1, 0)
    assert not any(lo < 84 < hi for lo, hi in forbidden)
    assert not any(lo < 60 < hi for lo, hi in forbidden)
    assert any(lo < 88 < hi for lo, hi in forbidden)
    assert any(lo < 100 < hi for lo, hi in forbidden)


def test_fc_scratch_takes_over_its_dying_input() -> None:
    g = graphs.mlp(1, [640, 128, 128, 8])
    plan = plan_memory(g, {0: 1280}, scratch_over={0: 0})
    scratch_off, size = plan.scratch[0]
    assert size == 1280 and scratch_off >= plan.offsets["x"]
    # input 640 + output 128 would need 2048 with a separate 1280-byte scratch
    assert plan.arena_bytes == 1280 + 128
    without = plan_memory(g, {0: 1280})
    assert without.arena_bytes == 640 + 1280 + 128


def _two(scratch_at: int) -> MemoryPlan:
    x = Buffer("x", 64, -1, 0, ["x"], offset=128)
    s = Buffer("scratch:n", 128, 0, 0, offset=scratch_at)
    return MemoryPlan(512, [x, s], {"x": 128}, {0: (scratch_at, 128)}, {(0, 1): AT_OR_AFTER})


def test_check_enforces_the_window() -> None:
    _two(128).check()
    _two(132).check()
    _two(0).check()  # no overlap at all
    with pytest.raises(AssertionError):
        _two(124).check()


def test_check_rejects_a_collision() -> None:
    g = graphs.mlp(2, [64, 32, 16])
    plan = plan_memory(g, {0: 128}, scratch_over={0: 0})
    plan.check()
    by_name = {b.name: b for b in plan.buffers}
    x, h = by_name["x"], by_name["h0"]
    clash = dataclasses.replace(h, offset=x.offset)
    broken = dataclasses.replace(plan, buffers=[clash if b is h else b for b in plan.buffers])
    with pytest.raises(AssertionError):
        broken.check()

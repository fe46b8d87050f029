"""``tinyc estimate --plot``: the arena over the schedule and the per-layer latency, one PNG."""

from __future__ import annotations

from pathlib import Path

from tinyc.errors import TinycError
from tinyc.estimate.report import Estimate


def plot_estimate(est: Estimate, path: str | Path) -> Path:
    """Top: every arena buffer as a box from the layer that writes it to the last that reads
    it, at its offset (the peak layer marked); bottom: estimated milliseconds per layer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    path = Path(path)
    n = len(est.layers)
    fig, (ax, bx) = plt.subplots(
        2, 1, figsize=(max(8.0, min(0.35 * n + 4, 24.0)), 8.5), sharex=True,
        gridspec_kw={"height_ratios": [3, 2]},
    )  # fmt: skip
    plan = est.plan
    cmap = plt.get_cmap("tab20")
    top = 0
    if plan is not None:
        for k, b in enumerate(sorted(plan.buffers, key=lambda b: (b.first, b.offset))):
            first, last = max(b.first, -0.5), min(b.last, n - 0.5)
            scratch = b.name.startswith("scratch:")
            ax.add_patch(Rectangle(
                (first - 0.4, b.offset), last - first + 0.8, b.size,
                facecolor="0.85" if scratch else cmap(k % 20), edgecolor="0.3", linewidth=0.5,
                hatch="//" if scratch else None, alpha=0.9,
            ))  # fmt: skip
            if b.size > 0.04 * max(plan.arena_bytes, 1) and last - first >= 1:
                label = "scratch" if scratch else (b.tensors[0] if b.tensors else b.name)
                ax.text((first + last) / 2, b.offset + b.size / 2, label[-24:], ha="center",
                        va="center", fontsize=6)  # fmt: skip
            top = max(top, b.offset + b.size)
        live = [x.live_bytes for x in est.layers]
        peak = max(range(n), key=live.__getitem__) if n else 0
        ax.axvline(peak, color="red", linestyle="--", linewidth=1)
        ax.axhline(plan.arena_bytes, color="black", linewidth=0.8)
        ax.annotate(
            f"peak: layer {peak}, {live[peak]:,} B live; arena {plan.arena_bytes:,} B",
            xy=(peak, plan.arena_bytes), xytext=(4, 4), textcoords="offset points",
            color="red", fontsize=8,
        )  # fmt: skip
    ax.set_ylim(0, max(top, 1) * 1.08)
    ax.set_ylabel("arena offset (bytes)")
    state = est.sizes.get("state", 0)
    ax.set_title(
        f"{est.model} on {est.board} ({est.backend}): {est.sizes['arena']:,} B arena"
        + (f" + {state:,} B persistent state" if state else "")
        + f", {est.latency_ms:.2f} ms estimated"
    )
    ops = sorted({x.op for x in est.layers})
    color = {op: cmap(i % 20) for i, op in enumerate(ops)}
    xs = [x.index for x in est.layers]
    ms = [x.latency_ms for x in est.layers]
    bars = bx.bar(xs, ms, color=[color[x.op] for x in est.layers])
    handles = {x.op: bars[i] for i, x in enumerate(est.layers)}
    bx.legend(handles.values(), handles.keys(), fontsize=7, ncol=min(len(handles), 4))
    bx.set_ylabel("estimated ms")
    bx.set_xlabel("layer (execution order)")
    bx.set_xlim(-0.7, max(n - 0.3, 0.7))
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except OSError as e:
        raise TinycError(f"cannot write the plot {path}: {e.strerror or e}") from None
    finally:
        plt.close(fig)
    return path

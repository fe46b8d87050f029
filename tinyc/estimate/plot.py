"""``tinyc estimate --plot``: the arena over the schedule and the per-layer latency, one PNG."""

from __future__ import annotations

from pathlib import Path

from tinyc.errors import TinycError
from tinyc.estimate.result import Estimate


def plot_estimate(est: Estimate, path: str | Path) -> Path:
    """Top: every arena buffer as a box from the layer that writes it to the last that reads
    it, at its offset, coloured by the op of the layer that writes it (kernel scratch
    hatched grey; the peak layer and the arena size marked); bottom: estimated milliseconds
    per layer in the same colours. Legends explain colours, hatching and lines; no text is
    drawn inside the boxes, so nothing overlaps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Rectangle

    path = Path(path)
    n = len(est.layers)
    fig, (ax, bx) = plt.subplots(
        2, 1, figsize=(max(8.0, min(0.35 * n + 4, 24.0)), 9.0), sharex=True,
        gridspec_kw={"height_ratios": [3, 2]},
    )  # fmt: skip
    cmap = plt.get_cmap("tab20")
    ops = list(dict.fromkeys(x.op for x in est.layers))
    color = {op: cmap(i % 20) for i, op in enumerate(ops)}
    plan = est.plan
    top = 0
    handles: list = []
    if plan is not None:
        writer = {}
        for x in est.layers:
            writer.setdefault(x.index, x.op)
        for b in sorted(plan.buffers, key=lambda b: (b.first, b.offset)):
            first, last = max(b.first, -0.5), min(b.last, n - 0.5)
            scratch = b.name.startswith("scratch:")
            face = "0.85" if scratch else color.get(writer.get(b.first, ""), "0.6")
            ax.add_patch(Rectangle(
                (first - 0.4, b.offset), last - first + 0.8, b.size, facecolor=face,
                edgecolor="0.3", linewidth=0.5, hatch="//" if scratch else None, alpha=0.9,
            ))  # fmt: skip
            top = max(top, b.offset + b.size)
        live = [x.live_bytes for x in est.layers]
        peak = max(range(n), key=live.__getitem__) if n else 0
        ax.axvline(peak, color="red", linestyle="--", linewidth=1)
        ax.axhline(plan.arena_bytes, color="black", linewidth=0.8)
        inputs = any(b.first < 0 and not b.name.startswith("scratch:") for b in plan.buffers)
        handles = [
            Patch(facecolor="white", edgecolor="0.3",
                  label="tensor, coloured by the op that writes it (legend below)"),
            *([Patch(facecolor="0.6", edgecolor="0.3", label="model input")] if inputs else []),
            Patch(facecolor="0.85", edgecolor="0.3", hatch="//", label="kernel scratch"),
            Line2D([], [], color="black", linewidth=0.8,
                   label=f"arena size {plan.arena_bytes:,} B"),
            Line2D([], [], color="red", linestyle="--", linewidth=1,
                   label=f"peak: layer {peak}, {live[peak]:,} B live"),
        ]  # fmt: skip
    ax.set_ylim(0, max(top, 1) * 1.05)
    ax.set_ylabel("arena offset (bytes)")
    if handles:
        ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.01), ncol=3,
                  fontsize=8, frameon=False, borderaxespad=0.0)  # fmt: skip
    state = est.sizes.get("state", 0)
    fig.suptitle(
        f"{est.model} on {est.board} ({est.backend}): {est.sizes['arena']:,} B arena"
        + (f" + {state:,} B persistent state" if state else "")
        + f", {est.latency_ms:.2f} ms estimated"
    )
    xs = [x.index for x in est.layers]
    ms = [x.latency_ms for x in est.layers]
    bx.bar(xs, ms, color=[color[x.op] for x in est.layers])
    bx.legend(
        handles=[Patch(facecolor=color[op], label=op) for op in ops],
        loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=min(len(ops), 4), fontsize=8,
        frameon=False,
    )  # fmt: skip
    bx.set_ylabel("estimated ms")
    bx.set_xlabel("layer (execution order)")
    bx.set_xlim(-0.7, max(n - 0.3, 0.7))
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110, bbox_inches="tight")
    except OSError as e:
        raise TinycError(f"cannot write the plot {path}: {e.strerror or e}") from None
    finally:
        plt.close(fig)
    return path

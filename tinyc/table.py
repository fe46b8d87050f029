"""Plain-text tables for reports (deterministic, no terminal dependencies)."""

from __future__ import annotations

from collections.abc import Sequence


def fmt_int(n: int) -> str:
    return f"{n:,}"


def render(
    headers: Sequence[str], rows: Sequence[Sequence[object]], right: set[int] | None = None
) -> str:
    """Columns padded to width; columns in ``right`` (or numeric cells) right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = (
        right
        if right is not None
        else {
            i
            for i in range(len(headers))
            if rows and all(isinstance(r[i], int | float) for r in rows)
        }
    )

    def line(r: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)

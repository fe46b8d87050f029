"""Range observers for post-training quantization: min/max, percentile and MSE-optimal.

Each activation tensor gets a streaming :class:`Histogram` of the values it takes over the
calibration samples; an observer turns that histogram into the real range ``[lo, hi]`` the
int8 grid will cover (always containing 0, as the TFLite spec requires).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyc.errors import TinycError

OBSERVERS = ("minmax", "percentile", "mse")
BINS = 2048
QLEVELS = 255  # int8 steps between qmin and qmax


class Histogram:
    """Counts of a tensor's values over a range that widens as new values arrive.

    Widening re-bins the old counts by their bin centres into the new bins, which moves a
    count by at most one old bin width: negligible next to an int8 step (1/255 of the range
    versus 1/2048).
    """

    def __init__(self, bins: int = BINS) -> None:
        self.bins = bins
        self.counts = np.zeros(bins, np.float64)
        self.lo = 0.0
        self.hi = 0.0
        self.min = np.inf
        self.max = -np.inf
        self.n = 0

    @property
    def edges(self) -> np.ndarray:
        return np.linspace(self.lo, self.hi, self.bins + 1)

    @property
    def centers(self) -> np.ndarray:
        e = self.edges
        return (e[:-1] + e[1:]) / 2

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, np.float64).reshape(-1)
        x = x[np.isfinite(x)]
        if x.size == 0:
            return
        xmin, xmax = float(x.min()), float(x.max())
        if self.n == 0:
            self.lo, self.hi = xmin, xmax if xmax > xmin else xmin + 1e-12
        elif xmin < self.lo or xmax > self.hi:
            lo, hi = min(self.lo, xmin), max(self.hi, xmax)
            old_centers, old_counts = self.centers, self.counts
            self.lo, self.hi = lo, hi
            self.counts = np.histogram(old_centers, self.edges, weights=old_counts)[0]
        self.counts += np.histogram(x, self.edges)[0]
        self.min, self.max = min(self.min, xmin), max(self.max, xmax)
        self.n += x.size


def quant_range(lo: float, hi: float) -> tuple[float, float]:
    """The range widened to contain 0 and made non-empty."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo < 1e-12:
        hi = lo + 1e-6
    return lo, hi


def minmax_range(h: Histogram) -> tuple[float, float]:
    return quant_range(h.min, h.max)


def percentile_range(h: Histogram, percentile: float = 99.99) -> tuple[float, float]:
    """Clip the lowest and highest ``100 - percentile`` percent of the values."""
    if not 50.0 < percentile <= 100.0:
        raise TinycError(f"percentile must be in (50, 100], not {percentile}")
    cdf = np.cumsum(h.counts) / max(h.counts.sum(), 1.0)
    tail = (100.0 - percentile) / 100.0
    e = h.edges
    lo = e[int(np.searchsorted(cdf, tail, side="right"))]
    hi = e[min(int(np.searchsorted(cdf, 1.0 - tail, side="left")) + 1, h.bins)]
    return quant_range(max(lo, h.min), min(hi, h.max))


def _expected_mse(h: Histogram, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Expected squared error per value of quantizing the histogram to 255 steps over
    [lo, hi] (arrays of candidates): rounding noise step^2/12 inside, clipping outside."""
    c, n = h.centers, h.counts
    cum_n = np.concatenate([[0.0], np.cumsum(n)])
    cum_c = np.concatenate([[0.0], np.cumsum(n * c)])
    cum_c2 = np.concatenate([[0.0], np.cumsum(n * c * c)])
    total = cum_n[-1]
    i_lo = np.searchsorted(c, lo, side="left")  # bins [0, i_lo) lie below lo
    i_hi = np.searchsorted(c, hi, side="right")  # bins [i_hi, end) lie above hi
    below = cum_c2[i_lo] - 2 * lo * cum_c[i_lo] + lo * lo * cum_n[i_lo]
    a_n, a_c, a_c2 = total - cum_n[i_hi], cum_c[-1] - cum_c[i_hi], cum_c2[-1] - cum_c2[i_hi]
    above = a_c2 - 2 * hi * a_c + hi * hi * a_n
    inside = cum_n[i_hi] - cum_n[i_lo]
    step = (hi - lo) / QLEVELS
    return (below + above + inside * step * step / 12.0) / max(total, 1.0)


def mse_range(h: Histogram, steps: int = 128) -> tuple[float, float]:
    """The clipping range with the least expected quantization error, searched over the
    observed minimum and maximum scaled by factors in (0, 1]."""
    lo0, hi0 = quant_range(h.min, h.max)
    f = np.linspace(1.0 / steps, 1.0, steps)
    lo_c = lo0 * f if lo0 < 0 else np.zeros(1)
    hi_c = hi0 * f if hi0 > 0 else np.zeros(1)
    lo_g, hi_g = np.meshgrid(lo_c, hi_c, indexing="ij")
    lo_g, hi_g = lo_g.reshape(-1), hi_g.reshape(-1)
    ok = hi_g - lo_g > 0
    err = np.where(ok, _expected_mse(h, lo_g, np.where(ok, hi_g, lo_g + 1)), np.inf)
    best = int(np.argmin(err))
    return quant_range(lo_g[best], hi_g[best])


@dataclass
class ObserverChoice:
    """The range an observer picked for one tensor, with its name for the report."""

    observer: str
    lo: float
    hi: float


def observe_range(h: Histogram, observer: str, percentile: float = 99.99) -> ObserverChoice:
    if h.n == 0:
        raise TinycError("a tensor saw no finite values during calibration")
    if observer == "minmax":
        lo, hi = minmax_range(h)
    elif observer == "percentile":
        lo, hi = percentile_range(h, percentile)
    elif observer == "mse":
        lo, hi = mse_range(h)
    else:
        raise TinycError(f"unknown observer {observer!r}; choose from {', '.join(OBSERVERS)}")
    return ObserverChoice(observer, lo, hi)

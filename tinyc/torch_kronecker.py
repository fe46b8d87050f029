"""Kronecker-factored layers for PyTorch, trained in factored form from scratch (KPRNN:
Kronecker-product RNNs, Thakker et al. 2019), exported as they are and compiled by tinyc to
its KRONECKER_FC op (tinyc/ir/ops/kronecker.py). Exported from ``tinyc.torch``:

    from tinyc.torch import KroneckerLinear

    fc = KroneckerLinear(256, 128, rank=2)              # A [2, 8, 16], B [2, 16, 16]
    fc = KroneckerLinear(256, 128, shapes=((4, 8), (32, 32)))   # A [R, 4, 8], B [R, 32, 32]

``KroneckerLinear(in, out, rank, shapes)`` computes ``y = x W^T + bias`` with
``W = sum_r kron(A_r, B_r)`` ([p*s, q*t]; p*s = out, q*t = in) without forming W: a row x
viewed as X [q, t] gives Y = sum_r A_r X B_r^T ([p, s]), two batched matmuls.

**The pattern both frontends recognise** (``tinyc.passes.fuse_kronecker``), as
``torch.export`` and ``torch.onnx.export`` write it::

    Reshape(x, [-1, 1, q, t])            X  [N, 1, q, t]
    MatMul(X, B^T)                       Z  [N, R, q, s]     B^T: a constant [R, t, s]
    MatMul(A, Z)                         [N, R, p, s]        A: a constant [R, p, q]
    ReduceSum(axis=1, keepdims=0)        [N, p, s]
    Reshape(..., [..., p*s])             [..., p*s]
    Add(bias)                            (optional, a constant [p*s])

(aten, as ``torch.export`` writes it: ``reshape``, ``transpose`` of the parameter B (folded
at import), ``matmul``, ``matmul``, ``sum.dim_IntList``, ``reshape``, ``add``.) Any model
that computes exactly this sequence on constant factors becomes one KRONECKER_FC node;
nothing else is touched. The match works on tinyc's IR after either frontend, not on the
module type, so a saved ``.pt2`` or ``.onnx`` needs no tinyc code to be recognised.

**Recurrent cells.** ``KroneckerLSTMCell`` / ``KroneckerGRUCell`` (and ``KroneckerLSTM`` /
``KroneckerGRU`` over a sequence) are ``nn.LSTMCell`` / ``nn.GRUCell`` with KroneckerLinear
input and recurrent matrices, PyTorch's gate order. Exported, they unroll over time: each
step's gate matmuls are KRONECKER_FC nodes, the gate arithmetic the IR's elementwise ops
(tinyc's fused LSTM / GRU ops take dense matrices).

**Initialisation.** The factors of one term are drawn i.i.d. normal with one standard
deviation sigma for A and B, chosen so that W's entries have nn.Linear's variance
(1 / (3 in)): R sigma^4 = 1 / (3 in). Balanced scales keep the gradients of A and B of one
magnitude, which is what lets the factors train from scratch (KPRNN); the bias is nn.Linear's.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = [
    "KroneckerGRU",
    "KroneckerGRUCell",
    "KroneckerLSTM",
    "KroneckerLSTMCell",
    "KroneckerLinear",
    "kronecker_shapes",
]

#: ((p, q), (s, t)): A_r is p x q, B_r is s x t
Shapes = tuple[tuple[int, int], tuple[int, int]]


def balanced_split(n: int) -> tuple[int, int]:
    """(a, b) with a * b = n, a <= b, a the largest divisor of n not above sqrt(n)."""
    if n < 1:
        raise ValueError(f"cannot factor {n} features")
    a = max(d for d in range(1, math.isqrt(n) + 1) if n % d == 0)
    return a, n // a


def kronecker_shapes(in_features: int, out_features: int) -> Shapes:
    """The default factor shapes ((p, q), (s, t)): the most balanced factorisations of the
    layer's sizes, out = p * s (p <= s) and in = q * t (q <= t)."""
    p, s = balanced_split(out_features)
    q, t = balanced_split(in_features)
    return (p, q), (s, t)


class KroneckerLinear(nn.Module):
    """``nn.Linear(in_features, out_features)`` whose weight is ``sum_r kron(A_r, B_r)``.

    ``shapes``: ((p, q), (s, t)) with p*s = out_features and q*t = in_features (default:
    ``kronecker_shapes``). Parameters ``a`` [rank, p, q], ``b`` [rank, s, t], ``bias``
    [out_features] (or None). Inputs [..., in_features], outputs [..., out_features].
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rank: int = 1,
        shapes: Shapes | None = None,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError(f"rank {rank} must be at least 1")
        if shapes is None:
            shapes = kronecker_shapes(in_features, out_features)
        (p, q), (s, t) = shapes
        if p * s != out_features or q * t != in_features:
            raise ValueError(
                f"factor shapes ({p}, {q}) and ({s}, {t}) give a {p * s}x{q * t} matrix, not "
                f"{out_features}x{in_features}"
            )
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.shapes = ((p, q), (s, t))
        self.a = nn.Parameter(torch.empty(rank, p, q))
        self.b = nn.Parameter(torch.empty(rank, s, t))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        sigma = (1.0 / (3.0 * self.in_features * self.rank)) ** 0.25
        nn.init.normal_(self.a, 0.0, sigma)
        nn.init.normal_(self.b, 0.0, sigma)
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features)
            nn.init.uniform_(self.bias, -bound, bound)

    def weight(self) -> torch.Tensor:
        """The dense matrix sum_r kron(A_r, B_r) ([out_features, in_features]; for checks)."""
        return sum(torch.kron(self.a[r], self.b[r]) for r in range(self.rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (p, q), (s, t) = self.shapes
        lead = x.shape[:-1]
        z = torch.matmul(x.reshape(-1, 1, q, t), self.b.transpose(1, 2))  # [N, R, q, s]
        y = torch.matmul(self.a, z).sum(dim=1)  # [N, p, s]
        y = y.reshape(*lead, p * s)
        return y + self.bias if self.bias is not None else y

    def extra_repr(self) -> str:
        (p, q), (s, t) = self.shapes
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"rank={self.rank}, a=({p}, {q}), b=({s}, {t}), bias={self.bias is not None}"
        )


# -- recurrent cells with Kronecker gate matrices (KPRNN) ------------------------------------


class KroneckerLSTMCell(nn.Module):
    """``nn.LSTMCell`` whose input and recurrent matrices ([4 H, I] and [4 H, H], gates in
    PyTorch's order i, f, g, o) are KroneckerLinear layers (``shapes_ih`` / ``shapes_hh``:
    their factor shapes, default balanced). ``forward(x, (h, c)) -> (h', c')``.

    Exported, each step's two gate matmuls become KRONECKER_FC nodes and the gate
    nonlinearities the IR's elementwise ops (LOGISTIC, TANH, MUL, ADD): tinyc's fused LSTM op
    takes dense matrices, so a Kronecker cell stays an unrolled graph of these nodes."""

    gates = 4

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        rank: int = 1,
        shapes_ih: Shapes | None = None,
        shapes_hh: Shapes | None = None,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        n = self.gates * hidden_size
        self.ih = KroneckerLinear(input_size, n, rank, shapes_ih, bias)
        self.hh = KroneckerLinear(hidden_size, n, rank, shapes_hh, bias)
        # nn.LSTMCell's spread: U(-1/sqrt(H), 1/sqrt(H)), variance 1 / (3 H), for both
        for layer in (self.ih, self.hh):
            sigma = (1.0 / (3.0 * hidden_size * rank)) ** 0.25
            nn.init.normal_(layer.a, 0.0, sigma)
            nn.init.normal_(layer.b, 0.0, sigma)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = state
        i, f, g, o = (self.ih(x) + self.hh(h)).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class KroneckerGRUCell(KroneckerLSTMCell):
    """``nn.GRUCell`` with KroneckerLinear input and recurrent matrices ([3 H, I], [3 H, H],
    gates r, z, n as PyTorch; the recurrent bias of n inside the reset product).
    ``forward(x, h) -> h'``."""

    gates = 3

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        xr, xz, xn = self.ih(x).chunk(3, dim=-1)
        hr, hz, hn = self.hh(h).chunk(3, dim=-1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return n + z * (h - n)


class _KroneckerRecurrent(nn.Module):
    """A cell run over a sequence [batch, time, features] (``batch_first``) or
    [time, batch, features] from zero states (or ``state``); returns (outputs, final state)."""

    cell_type: type[KroneckerLSTMCell] = KroneckerLSTMCell

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        rank: int = 1,
        shapes_ih: Shapes | None = None,
        shapes_hh: Shapes | None = None,
        bias: bool = True,
        batch_first: bool = True,
    ) -> None:
        super().__init__()
        self.cell = self.cell_type(input_size, hidden_size, rank, shapes_ih, shapes_hh, bias)
        self.hidden_size, self.batch_first = hidden_size, batch_first

    def _zeros(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0 if self.batch_first else 1]
        return torch.zeros(n, self.hidden_size, dtype=x.dtype, device=x.device)

    def forward(self, x: torch.Tensor, state=None):
        steps = x.unbind(1 if self.batch_first else 0)
        lstm = isinstance(self.cell, KroneckerLSTMCell) and self.cell.gates == 4
        if state is None:
            state = (self._zeros(x), self._zeros(x)) if lstm else self._zeros(x)
        outs = []
        for xt in steps:
            state = self.cell(xt, state)
            outs.append(state[0] if lstm else state)
        return torch.stack(outs, 1 if self.batch_first else 0), state


class KroneckerLSTM(_KroneckerRecurrent):
    """One LSTM layer over a sequence with Kronecker gate matrices (KroneckerLSTMCell);
    ``forward(x, (h0, c0)=None) -> (outputs, (h, c))``. Exports unrolled over time."""

    cell_type = KroneckerLSTMCell


class KroneckerGRU(_KroneckerRecurrent):
    """One GRU layer over a sequence with Kronecker gate matrices (KroneckerGRUCell);
    ``forward(x, h0=None) -> (outputs, h)``. Exports unrolled over time."""

    cell_type = KroneckerGRUCell

"""Training-time pruning for PyTorch users: gradual magnitude pruning on Zhu & Gupta's
polynomial schedule ("To prune, or not to prune", 2017; what TinyLSTMs used).

    from tinyc.torch import GradualPruner

    pruner = GradualPruner(model, target=0.9, begin_step=0, end_step=2000, frequency=100)
    for step, (x, y) in enumerate(loader):
        loss = loss_fn(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
        pruner.step()                 # after the optimiser: masks kept, schedule advanced
    pruner.sparsity()                 # {"fc1.weight": 0.9, ...}

The weights themselves hold the zeros (no re-parametrisation, no hooks), so the model
exports as it is and ``tinyc inspect`` / ``tinyc compile`` see the sparsity.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from tinyc.torch_kronecker import *  # noqa: F403 (KroneckerLinear, KroneckerLSTM, ...)
from tinyc.torch_skip import *  # noqa: F403 (SkipLSTMCell, SkipGRUCell, ...)

PRUNABLE = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.LSTM,
    nn.GRU,
    nn.RNN,
    nn.LSTMCell,
    nn.GRUCell,
    nn.RNNCell,
)


def polynomial_sparsity(
    step: int, target: float, begin_step: int, end_step: int, initial: float = 0.0, power: int = 3
) -> float:
    """Zhu & Gupta: s_t = s_f + (s_i - s_f) (1 - (t - t0) / (t_end - t0))^3, held at s_i
    before ``begin_step`` and at s_f after ``end_step``."""
    if step <= begin_step:
        return initial
    if step >= end_step:
        return target
    frac = (step - begin_step) / (end_step - begin_step)
    return target + (initial - target) * (1.0 - frac) ** power


def prunable_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    """The weight matrices of the conv / linear / recurrent layers (not biases), by name."""
    out = {}
    for mname, m in model.named_modules():
        if isinstance(m, PRUNABLE):
            for pname, p in m.named_parameters(recurse=False):
                if pname.startswith("weight"):
                    out[f"{mname}.{pname}" if mname else pname] = p
    return out


class GradualPruner:
    """Magnitude masks raised to ``target`` sparsity on the polynomial schedule, updated
    every ``frequency`` steps between ``begin_step`` and ``end_step``, re-applied after
    every optimiser step. ``scope``: "layer" (each tensor to the same sparsity, as Zhu &
    Gupta) or "global" (one threshold over all of them)."""

    def __init__(
        self,
        model: nn.Module,
        target: float,
        begin_step: int = 0,
        end_step: int = 1000,
        frequency: int = 100,
        initial: float = 0.0,
        scope: str = "layer",
        params: Iterable[str] | None = None,
    ) -> None:
        if not 0.0 <= initial <= target < 1.0:
            raise ValueError("need 0 <= initial <= target < 1")
        if end_step <= begin_step or frequency < 1:
            raise ValueError("need end_step > begin_step and frequency >= 1")
        if scope not in ("layer", "global"):
            raise ValueError("scope is 'layer' or 'global'")
        weights = prunable_weights(model)
        if params is not None:
            weights = {k: weights[k] for k in params}
        if not weights:
            raise ValueError("the model has no conv, linear or recurrent weights")
        self.weights = weights
        self.target, self.initial = target, initial
        self.begin_step, self.end_step, self.frequency = begin_step, end_step, frequency
        self.scope = scope
        self.step_count = 0
        self.current = 0.0
        self.masks = {k: torch.ones_like(p, dtype=torch.bool) for k, p in weights.items()}
        self._update(polynomial_sparsity(0, target, begin_step, end_step, initial))

    def schedule(self, step: int) -> float:
        return polynomial_sparsity(step, self.target, self.begin_step, self.end_step, self.initial)

    @torch.no_grad()
    def _update(self, s: float) -> None:
        self.current = s
        if self.scope == "global":
            mags = torch.cat([p.detach().abs().flatten() for p in self.weights.values()])
            k = int(round(s * mags.numel()))
            if k > 0:
                cut = torch.kthvalue(mags, k).values
                for name, p in self.weights.items():
                    self.masks[name] = p.detach().abs() > cut
        else:
            for name, p in self.weights.items():
                k = int(round(s * p.numel()))
                mask = torch.ones(p.numel(), dtype=torch.bool, device=p.device)
                if k > 0:
                    order = torch.argsort(p.detach().abs().flatten(), stable=True)
                    mask[order[:k]] = False
                self.masks[name] = mask.view_as(p)
        self.apply()

    @torch.no_grad()
    def apply(self) -> None:
        """Zero the masked weights (after an optimiser step may have moved them)."""
        for name, p in self.weights.items():
            p.mul_(self.masks[name])

    def step(self) -> float:
        """Call once per training step, after ``optimizer.step()``; returns the sparsity the
        schedule asks for now."""
        self.step_count += 1
        t = self.step_count
        due = t >= self.begin_step and (t - self.begin_step) % self.frequency == 0
        if (due and t <= self.end_step) or (t == self.end_step):
            self._update(self.schedule(t))
        else:
            self.apply()
        return self.current

    def sparsity(self) -> dict[str, float]:
        """The fraction of zeros in each pruned weight tensor now."""
        return {k: float((p == 0).float().mean()) for k, p in self.weights.items()}

    def global_sparsity(self) -> float:
        z = sum(int((p == 0).sum()) for p in self.weights.values())
        return z / sum(p.numel() for p in self.weights.values())

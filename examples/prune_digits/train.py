"""Gradual magnitude pruning in PyTorch with tinyc's helper, then tinyc's int8.

A small CNN on scikit-learn's 8x8 digits (seeded, CPU, ~20 s): trained dense, then
fine-tuned while tinyc.torch.GradualPruner raises its sparsity to 90 % on Zhu & Gupta's
schedule; tinyc reads the pruned module, shows each layer's zeros (as `tinyc inspect`)
and quantizes it to int8. Run: python examples/prune_digits/train.py
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

from tinyc.torch import GradualPruner

torch.manual_seed(0)
torch.set_num_threads(1)


def model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, stride=2), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10),
    )  # fmt: skip


def data():
    d = load_digits()
    x = torch.tensor(d.images[:, None] / 16.0, dtype=torch.float32)
    y = torch.tensor(d.target)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    return (x[:1400], y[:1400]), (x[1400:], y[1400:])


def accuracy(net: nn.Module, x, y) -> float:
    with torch.no_grad():
        return float((net(x).argmax(1) == y).float().mean())


def train(net, x, y, epochs: int, pruner: GradualPruner | None = None) -> None:
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    for _ in range(epochs):
        for i in torch.randperm(len(x)).split(32):
            loss = nn.functional.cross_entropy(net(x[i]), y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if pruner is not None:
                pruner.step()  # the one line that prunes


def main() -> dict:
    (xt, yt), (xv, yv) = data()
    net = model()
    train(net, xt, yt, epochs=10)
    dense = accuracy(net, xv, yv)
    steps_per_epoch = (len(xt) + 31) // 32
    pruner = GradualPruner(net, target=0.9, begin_step=0, end_step=6 * steps_per_epoch,
                           frequency=steps_per_epoch // 4)  # fmt: skip
    train(net, xt, yt, epochs=10, pruner=pruner)
    pruned = accuracy(net, xv, yv)
    sparsity = pruner.global_sparsity()
    print(
        f"float accuracy on {len(xv)} held-out digits: dense {100 * dense:.1f} %, "
        f"90 % sparse {100 * pruned:.1f} % (sparsity {100 * sparsity:.1f} %)"
    )

    # tinyc: read the module, show its zeros, quantize to int8 on 100 training digits
    from tinyc.frontend.torch.loader import export_module
    from tinyc.inspect_model import inspect_graph
    from tinyc.interpreter import run
    from tinyc.modelio import to_internal
    from tinyc.passes.quantize import quantize
    from tinyc.quant_report import int8_inputs

    net.eval()
    g = export_module(net, (xt[:1],), "digits_cnn")
    for n in inspect_graph(g)["nodes"]:
        if "sparsity" in n:
            print(f"  {n['name']:<12} {n['op']:<16} {100 * n['sparsity']:5.1f} % zeros")
    cal = [[to_internal(g, g.inputs[0], xt[i : i + 1].numpy())] for i in range(100)]
    q, _ = quantize(g, cal)
    pred = []
    for i in range(len(xv)):
        s = [to_internal(g, g.inputs[0], xv[i : i + 1].numpy())]
        pred.append(int(np.argmax(run(q, int8_inputs(q, s))[q.outputs[0]])))
    int8 = float(np.mean(np.array(pred) == yv.numpy()))
    print(f"tinyc int8 accuracy of the pruned model: {100 * int8:.1f} %")
    return {"dense": dense, "pruned": pruned, "int8": int8, "sparsity": pruner.global_sparsity()}


if __name__ == "__main__":
    main()

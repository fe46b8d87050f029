"""Learned state-update skipping (tinyc.torch.SkipGRU / SkipLSTM, untrained, seeded): a skip
layer of 64 units on 10-coefficient frames and a linear read-out, compiled with --stream for
nucleo-f746 and run in QEMU (Cortex-M7) one frame per invocation, bit exact with the
interpreter. Instructions per frame when the gate opens (from the same model with a gate
that never closes) and when it is closed (solved from the stream's mean).

    python bench/skip_learned.py [--board nucleo-f746] [--frames 40]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np


def _net(kind: str, gate_bias: float, gate_std: float):
    import torch

    from tinyc.torch import SkipGRU, SkipLSTM

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(6)
            self.rnn = (SkipLSTM if kind == "lstm" else SkipGRU)(10, 64, gate_bias)
            torch.nn.init.normal_(self.rnn.cell.gate.weight, std=gate_std)
            self.out = torch.nn.Linear(64, 12)

        def forward(self, x):
            return self.out(self.rnn(x)[0])

    return Net().eval()


def _run(kind: str, bias: float, std: float, seq: np.ndarray, cal: Path, work: Path) -> dict:
    import torch

    from tinyc.compiler import CalibrationOptions, CompileOptions, compile_model
    from tinyc.frontend.torch.loader import export_module
    from tinyc.interpreter import State
    from tinyc.interpreter import run as run_graph
    from tinyc.ir.ops.skip import guard_of
    from tinyc.passes.streaming import split_steps
    from tinyc.runner import EmulatedProject

    g = export_module(_net(kind, bias, std), (torch.from_numpy(seq),), f"{kind}_skip")
    project = work / f"{kind}_{bias:g}"
    opts = CompileOptions(board=ARGS.board, stream=True, calibration=CalibrationOptions(str(cal)))
    compile_model(g, opts, project, log=lambda m: None)
    ep = EmulatedProject.build(project)
    step = ep.graph
    x = step.tensors[step.inputs[0]]
    q = np.clip(np.round(seq / float(x.quant.s)) + x.quant.zp, -128, 127).astype(np.int8)
    gate = next(guard_of(n) for n in step.nodes if guard_of(n))
    state, opened = State(step), 0
    for xs in split_steps(step, [q]):
        opened += int(run_graph(step, xs, keep_all=True, state=state)[gate][0])
    r = ep.run_case("stream", [q])
    assert r.bit_exact, r.mismatches
    return {"instructions_mean": r.instructions, "opened": opened, "frames": seq.shape[1]}


def main() -> None:
    import torch

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    seq = rng.standard_normal((1, ARGS.frames, 10)).astype(np.float32)
    rows = {}
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        cal = work / "cal.npy"
        np.save(cal, rng.standard_normal((8, ARGS.frames, 10)).astype(np.float32))
        for kind in ("gru", "lstm"):
            skip = _run(kind, -1.5, 0.3, seq, cal, work)
            always = _run(kind, 20.0, 0.0, seq, cal, work)
            assert always["opened"] == always["frames"]
            n, k = skip["frames"], skip["opened"]
            open_cost = always["instructions_mean"]
            closed = (skip["instructions_mean"] * n - k * open_cost) / max(n - k, 1)
            rows[kind] = {
                "frames": n,
                "skipped": n - k,
                "instructions_per_frame_open": open_cost,
                "instructions_per_frame_skipped": round(closed),
                "instructions_per_frame_mean": skip["instructions_mean"],
            }
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--board", default="nucleo-f746")
    ap.add_argument("--frames", type=int, default=40)
    ARGS = ap.parse_args()
    main()

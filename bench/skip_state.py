"""State-update skipping on the KWS LSTM / GRU (tests/models/kws_rnn.py), streamed one
MFCC frame per invocation over a synthetic slowly varying input: skip rate and instructions
per frame in QEMU (nucleo-f746, Cortex-M7) against no skipping, and the estimate's mean.

    python bench/skip_state.py [--threshold 0.25] [--board nucleo-f746]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
KWS = REPO / "tests" / "models" / "kws_rnn.py"


def slow_mfcc(n: int, seed: int, frames: int = 49, coeffs: int = 10) -> np.ndarray:
    """Sequences of 'MFCC' frames: segments of 3-12 frames that hold still (noise of 0.02)
    between jumps, like stationary sounds and silence between words."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, frames, coeffs), np.float32)
    for s in range(n):
        t = 0
        while t < frames:
            length = int(rng.integers(3, 13))
            base = rng.standard_normal(coeffs)
            seg = base + 0.02 * rng.standard_normal((length, coeffs))
            out[s, t : t + length] = seg[: frames - t]
            t += length
    return out


def _agreement(g, graphs: dict, seqs: np.ndarray) -> float:
    """The share of held-out sequences whose last-step class is the same with and without
    skipping (int8 interpreter, one step at a time)."""
    from tinyc.interpreter import State, run
    from tinyc.passes.streaming import split_steps

    x = g.tensors[g.inputs[0]]
    same = 0
    for seq in seqs:
        q = np.clip(np.round(seq[None] / float(x.quant.s)) + x.quant.zp, -128, 127)
        last = []
        for step in graphs.values():
            state = State(step)
            for xs in split_steps(step, [q.astype(np.int8)]):
                out = run(step, xs, state=state)
            last.append(int(np.argmax(out[step.outputs[0]])))
        same += last[0] == last[1]
    return same / len(seqs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threshold", type=float, default=0.25)
    ap.add_argument("--board", default="nucleo-f746")
    args = ap.parse_args()
    from tinyc.compiler import CalibrationOptions, CompileOptions, compile_model
    from tinyc.frontend import load_model
    from tinyc.passes.skip_state import estimate_streaming
    from tinyc.runner import EmulatedProject

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cal = Path(tmp) / "cal.npy"
        np.save(cal, slow_mfcc(16, 0))
        test = slow_mfcc(1, 1)
        for factory in ("kws_lstm", "kws_gru"):
            g = load_model(f"{KWS}:{factory}")
            per, per_graphs = {}, {}
            for t in (0.0, args.threshold):
                project = Path(tmp) / f"{factory}_{t}"
                opts = CompileOptions(
                    board=args.board,
                    stream=True,
                    skip_threshold=t,
                    calibration=CalibrationOptions(path=str(cal)),
                )
                compile_model(g, opts, project, log=lambda m: None)
                manifest = json.loads((project / "tinyc.json").read_text())
                ep = EmulatedProject.build(project)
                x = ep.graph.tensors[ep.graph.inputs[0]]  # int8 in: quantize the frames
                q = np.round(test / float(x.quant.s)) + x.quant.zp
                r = ep.run_case("stream", [np.clip(q, -128, 127).astype(np.int8)])
                assert r.bit_exact, r.mismatches
                per[t] = (r.instructions, manifest["streaming"].get("skip"))
                per_graphs[t] = ep.graph
            agree = _agreement(ep.graph, per_graphs, slow_mfcc(16, 2))
            est, skip = estimate_streaming(
                g, args.board, "cmsis", args.threshold, str(Path(tmp) / "cal.npy")
            )
            rows.append(
                {
                    "model": factory,
                    "threshold": args.threshold,
                    "skip_rate_calibration": per[args.threshold][1]["skip_rate"],
                    "instr_per_frame_no_skip": per[0.0][0],
                    "instr_per_frame_skip": per[args.threshold][0],
                    "estimate_latency_ms_mean": skip["latency_ms_mean"] if skip else None,
                    "estimate_latency_ms_worst": skip["latency_ms_worst"] if skip else None,
                    "top1_agreement_with_no_skip": agree,
                }
            )
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

"""Recurrent models: tinyc's C backend against TFLite Micro + CMSIS-NN on the same emulated
cores, measured in the same run.

Models: the TFLM mnist_lstm example (int8, UNIDIRECTIONAL_SEQUENCE_LSTM, shared set) and two
PyTorch keyword-spotting modules (tests/models/kws_rnn.py: 49 MFCC frames -> 2-layer LSTM or
GRU of 64 units -> last step -> 12 classes; untrained weights: the figures are about speed
and memory, not accuracy), quantized by tinyc on seeded N(0,1) calibration data. The GRU
models also run as TFLM projects because tinyc lowers GRUs to operators TFLM has.

Per model and core: instructions per inference inside the inference call (QEMU TCG plugin,
exact and repeatable), the activation arena plus persistent state, peak RAM (arena + state +
static data + measured stack) and flash (text + rodata + data, no test data), for tinyc and
for the same quantized model written as a .tflite and run by a TFLM project built against
TFLM + CMSIS-NN (``--backend tflm``; needs TFLM_DIR and its third-party code, see
tinyc/templates/tflm/tflm.cmake). Both outputs are checked bit-exact against tinyc's
interpreter (TFLM's against its own host build, tflite-micro).

    python bench/recurrent.py [--cores M7,M4,M55] [--models ...] [--no-tflm] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from conftest import MODELS  # noqa: E402

from tinyc.compiler import CompileOptions, compile_model  # noqa: E402
from tinyc.errors import TinycError  # noqa: E402
from tinyc.frontend import load_model  # noqa: E402
from tinyc.modelio import random_inputs  # noqa: E402
from tinyc.passes.quantize import QuantOptions, quantize  # noqa: E402
from tinyc.runner import EmulatedProject  # noqa: E402

BOARDS = {"M7": "nucleo-f746", "M4": "nucleo-l4r5zi", "M55": "mps3-an547"}
KWS = REPO / "tests" / "models" / "kws_rnn.py"
MODEL_SPECS = {
    "trained_lstm_int8": str(MODELS / "tflm_mnist_lstm" / "trained_lstm_int8.tflite"),
    "kws_lstm": f"{KWS}:kws_lstm",
    "kws_gru": f"{KWS}:kws_gru",
}


def int8_model(spec: str):
    """The model as tinyc compiles it: int8 files as they are, float ones quantized on 64
    seeded N(0,1) samples."""
    g = load_model(spec)
    if g.is_quantized:
        return g
    rng = np.random.default_rng(0)
    data = [
        [rng.standard_normal(g.tensors[n].shape).astype(np.float32) for n in g.inputs]
        for _ in range(64)
    ]
    q, _ = quantize(g, data, QuantOptions())
    return q


def measure(g, board: str, backend: str) -> dict:
    with tempfile.TemporaryDirectory() as d:
        project = Path(d) / "p"
        compile_model(g, CompileOptions(board=board, backend=backend), project, log=lambda m: None)
        if backend == "tflm":  # one libtflm.a per core, built once (tests/tflm_build.py)
            from tflm_build import tflm_library, third_party_vars

            from tinyc.boards import load_board

            env = third_party_vars(os.environ["TFLM_DIR"]) or {}
            os.environ["TFLM_LIB"] = tflm_library(project, load_board(board), env, print)
        ep = EmulatedProject.build(project)
        r = ep.run_case("0", random_inputs(ep.graph, 0))
        report = ep.report([r])
        report["state_bytes"] = ep.manifest.get("memory_plan", {}).get("state_bytes", 0)
        return report


def ratio(a, b) -> str:
    return f"{a / b:.2f}" if a and b else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(MODEL_SPECS))
    ap.add_argument("--cores", default="M7,M4,M55")
    ap.add_argument("--no-tflm", action="store_true", help="tinyc only (no TFLM build)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with_tflm = not args.no_tflm and bool(os.environ.get("TFLM_DIR"))
    if not with_tflm and not args.no_tflm:
        print("TFLM_DIR is not set: tinyc's figures only (see tinyc/templates/tflm/tflm.cmake)")
    rows = []
    head = (
        f"{'model':<20} {'core':<4} {'tinyc instr':>12} {'TFLM instr':>12} {'x':>5} "
        f"{'arena+state':>11} {'TFLM arena':>10} {'peak RAM':>8} {'TFLM peak':>9} {'x':>5} "
        f"{'flash':>7} {'TFLM flash':>10} {'x':>5} exact"
    )
    print(head)
    print("-" * len(head))
    for name in args.models.split(","):
        g = int8_model(MODEL_SPECS[name])
        for core in args.cores.split(","):
            ours = measure(g, BOARDS[core], "cmsis")
            try:
                peer = measure(g, BOARDS[core], "tflm") if with_tflm else {}
            except TinycError as e:  # e.g. an unrolled GRU whose arena fits no RAM
                print(f"{name:<20} {core:<4} TFLM: {e}")
                peer = {"error": str(e)}
            rows.append({"model": name, "core": core, "tinyc": ours, "tflm": peer})
            ram = ours["arena_bytes"] + ours["state_bytes"]
            ours_i, peer_i = (
                ours["instructions_per_inference"],
                peer.get("instructions_per_inference"),
            )
            print(
                f"{name:<20} {core:<4} {ours_i:>12,} {peer_i or 0:>12,} {ratio(ours_i, peer_i):>5} "
                f"{ram:>11,} {peer.get('arena_bytes') or 0:>10,} {ours['peak_ram_bytes']:>8,} "
                f"{peer.get('peak_ram_bytes') or 0:>9,} "
                f"{ratio(ours['peak_ram_bytes'], peer.get('peak_ram_bytes')):>5} "
                f"{ours['flash_bytes']:>7,} {peer.get('flash_bytes') or 0:>10,} "
                f"{ratio(ours['flash_bytes'], peer.get('flash_bytes')):>5} "
                f"{'yes' if ours['bit_exact'] and peer.get('bit_exact', True) else 'NO'}",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

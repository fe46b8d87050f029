"""tinyc's C backend against TFLite Micro + CMSIS-NN on the same emulated cores.

For every int8 model of the shared set and every core (M7: nucleo-f746, M4: nucleo-l4r5zi,
M55: corstone-300; mobilenet_v2 runs on the mps2-an500 board itself), compile, run the first
reference_io case in QEMU and print: instructions per inference and per MAC, arena, peak RAM
(arena + static data + measured stack), flash (text + rodata + data of the firmware, which
embeds no test data on the emulated twin), bit-exactness, and the ratios against the peer
figures of ../shared/PEER_FIGURES.md (TFLM 90b983c2 + CMSIS-NN, measured the same way).
TFLM's own arena for the model, measured with tflite-micro on the host, is printed beside.

With --cores M0+ (rpi-pico's code on QEMU's mps2-an385) there are no TFLM figures: when
CMSIS_NN_DIR points at CMSIS-NN, the ratios are against the same model built with
--kernels cmsis-nn (CMSIS-NN's plain-C kernels, no interpreter), measured in the same run.

    python bench/c_backend.py [--models kws_ref_model,...] [--cores M7,M4,M55,M0+] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from conftest import INT8_TFLITE, MODELS  # noqa: E402

from tinyc.compiler import CompileOptions, compile_model  # noqa: E402
from tinyc.runner import EmulatedProject  # noqa: E402

BOARDS = {"M7": "nucleo-f746", "M4": "nucleo-l4r5zi", "M55": "corstone-300", "M0+": "rpi-pico"}
MACHINES = {"M7": "mps2-an500", "M4": "mps2-an386", "M55": "mps3-an547"}
BIG = {
    "mobilenet_v2_quantized_1x3x224x224": {
        "M7": "mps2-an500",
        "M4": "mps2-an386",
        "M55": "mps3-an547",
    }
}


def peer_figures() -> dict[tuple[str, str], dict[str, float]]:
    """The table of ../shared/PEER_FIGURES.md keyed by (model, core)."""
    path = MODELS.parent / "PEER_FIGURES.md"
    rows = {}
    if not path.exists():
        return rows
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 8 or not re.match(r"^(M\d+)", cells[1].split()[0] if cells[1] else ""):
            continue
        core = cells[1].split()[0]

        def num(s: str) -> float:
            return float(s.replace(",", ""))

        try:
            rows[(cells[0], core)] = {
                "instructions": num(cells[2]),
                "arena": num(cells[4]),
                "peak_ram": num(cells[5]),
                "flash": num(cells[6]),
            }
        except ValueError:
            continue
    return rows


def tflm_arena(path: Path) -> int | None:
    """TFLM's minimum arena for the model, found with tflite-micro on the host (64-bit
    pointers: a little above what the same model needs on a 32-bit core)."""
    from tinyc.backends.tflm.host import minimum_arena

    return int(minimum_arena(path.read_bytes()))


def measure(model: str, core: str, kernels: str = "tinyc") -> dict:
    rel = INT8_TFLITE[model]
    path = MODELS / rel
    board = BIG.get(model, {}).get(core, BOARDS[core])
    case = path.parent / "reference_io" / path.stem
    first = sorted(p for p in case.iterdir() if (p / "input_0.npy").exists())[0]
    with tempfile.TemporaryDirectory() as d:
        project = Path(d) / "p"
        opts = CompileOptions(board=board, kernels=kernels)
        compile_model(str(path), opts, project, log=lambda m: None)
        ep = EmulatedProject.build(project)
        inputs = [np.load(first / f"input_{i}.npy") for i in range(len(ep.graph.inputs))]
        res = ep.run_case(first.name, inputs)
        report = ep.report([res])
    return {"model": model, "core": core, "board": board, **report}


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(INT8_TFLITE))
    ap.add_argument("--cores", default="M7,M4,M55")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    peers = peer_figures()
    rows = []
    header = (
        f"{'model':<36} {'core':<4} {'instructions':>12} {'/MAC':>5} {'x TFLM':>6} "
        f"{'arena B':>8} {'TFLM arena':>10} {'peak RAM':>8} {'x TFLM':>6} {'flash B':>8} "
        f"{'x TFLM':>6} exact"
    )
    print(header)
    print("-" * len(header))
    for model in args.models.split(","):
        arena_tflm = tflm_arena(MODELS / INT8_TFLITE[model])
        for core in args.cores.split(","):
            if model in BIG and core not in BIG[model]:
                continue
            r = measure(model, core)
            p = peers.get((model, core), {})
            if core == "M0+" and os.environ.get("CMSIS_NN_DIR"):
                nn = measure(model, core, "cmsis-nn")
                p = {
                    "instructions": nn["instructions_per_inference"],
                    "arena": nn["arena_bytes"],
                    "peak_ram": nn["peak_ram_bytes"],
                    "flash": nn["flash_bytes"],
                    "kind": "CMSIS-NN kernels (--kernels cmsis-nn)",
                }
            rows.append({**r, "peer": p, "tflm_arena_host": arena_tflm})
            print(
                f"{model:<36} {core:<4} {r['instructions_per_inference']:>12,} "
                f"{r['instructions_per_mac']:>5.2f} "
                f"{ratio(r['instructions_per_inference'], p.get('instructions')):>6} "
                f"{r['arena_bytes']:>8,} {arena_tflm or 0:>10,} {r['peak_ram_bytes']:>8,} "
                f"{ratio(r['peak_ram_bytes'], p.get('peak_ram')):>6} {r['flash_bytes']:>8,} "
                f"{ratio(r['flash_bytes'], p.get('flash')):>6} "
                f"{'yes' if r['bit_exact'] else 'NO'}",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

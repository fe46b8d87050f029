"""The board's own image in Renode against the emulated twin in QEMU.

For every int8 model of the shared set (mobilenet_v2 aside: it fits none of these boards) and
every board Renode models, compile, validate on the model's reference_io cases in Renode
(`--emulator renode`: the image `make board` builds, on Renode's platform of the chip) and in
QEMU (the twin's build), and print: bit-exactness in each, instructions per inference from
each (Renode: `ExecutedInstructions` at the benchmark markers; QEMU: the tinyc plugin), their
difference, and the wall-clock seconds of the Renode run (one Renode start for all cases).
A model that does not fit a board is listed as such.

    python bench/renode.py [--models kws_ref_model,...] [--boards nucleo-f746,...] [--json FILE]

Renode: $RENODE, `renode` on PATH, or ../shared/renode/renode.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from conftest import FAST_INT8, INT8_TFLITE, MODELS  # noqa: E402

from tinyc.boards import list_boards  # noqa: E402
from tinyc.compiler import CompileOptions  # noqa: E402
from tinyc.errors import TinycError  # noqa: E402
from tinyc.runner import validate_model  # noqa: E402


def _row(model: str, board: str) -> dict:
    rel = INT8_TFLITE[model]
    path = MODELS / rel
    cases = path.parent / "reference_io" / Path(rel).stem
    row: dict = {"model": model, "board": board}
    try:
        t0 = time.monotonic()
        ren = validate_model(str(path), board, str(cases), 0, CompileOptions(board=board),
                             emulator="renode")  # fmt: skip
        row["renode_s"] = round(time.monotonic() - t0, 1)
        qemu = validate_model(str(path), board, str(cases), 0, CompileOptions(board=board))
    except TinycError as e:
        row["error"] = str(e)
        return row
    row.update(
        cases=len(ren["cases"]),
        renode_bit_exact=ren["bit_exact"],
        qemu_bit_exact=qemu["bit_exact"],
        renode_instructions=ren["instructions_per_inference"],
        qemu_instructions=qemu["instructions_per_inference"],
    )
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(FAST_INT8))
    boards = [b.name for b in list_boards() if b.renode_platform]
    ap.add_argument("--boards", default=",".join(boards))
    ap.add_argument("--json", help="Also write the rows as JSON.")
    args = ap.parse_args()
    shared = MODELS.parent / "renode" / "renode"
    if not os.environ.get("RENODE") and shared.is_file():
        os.environ["RENODE"] = str(shared)
    rows = []
    head = (
        f"{'model':<24} {'board':<20} {'cases':>5} {'bit-exact R/Q':>13} "
        f"{'Renode instr':>13} {'QEMU instr':>13} {'diff':>6} {'Renode s':>9}"
    )
    print(head)
    print("-" * len(head))
    for model in args.models.split(","):
        for board in args.boards.split(","):
            r = _row(model, board)
            rows.append(r)
            if "error" in r:
                print(f"{model:<24} {board:<20} {r['error'][:90]}")
                continue
            exact = f"{'yes' if r['renode_bit_exact'] else 'NO'}/" + (
                "yes" if r["qemu_bit_exact"] else "NO"
            )
            ri, qi = r["renode_instructions"], r["qemu_instructions"]
            print(
                f"{model:<24} {board:<20} {r['cases']:>5} {exact:>13} {ri:>13,} {qi:>13,} "
                f"{ri - qi:>+6} {r['renode_s']:>9.1f}",
                flush=True,
            )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

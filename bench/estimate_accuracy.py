"""``tinyc estimate`` against ``tinyc validate``: estimated vs measured flash, RAM, stack and
instructions per inference, side by side, for every int8 model of ../shared/models that
compiles for the boards (default nucleo-f746 and nucleo-l4r5zi), and the recurrent PyTorch
keyword-spotting models of tests/models/kws_rnn.py (quantized on seeded random data; each
also in its streaming form, one time step per inference).

Measured = what ``tinyc validate`` reports from the firmware ELF of the board's emulated
twin and its QEMU run (one seeded random case). The targets: flash and RAM within 3 %,
instructions within 15 %. ``--layers`` adds, per model, the estimated and measured
instructions of every layer (QEMU windows from one node function to the next).

Run: python bench/estimate_accuracy.py [--boards nucleo-f746,nucleo-l4r5zi] [--models a,b]
     [--layers] [--json FILE] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO.parent / "shared" / "models"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tinyc.errors import TinycError  # noqa: E402
from tinyc.estimate import estimate_model  # noqa: E402
from tinyc.table import render  # noqa: E402

FLASH_RAM_TOL = 0.03
INSN_TOL = 0.15


def int8_models() -> list[Path]:
    """Every .tflite / .onnx under ../shared/models whose graph is int8."""
    from tinyc.frontend import load_model

    out = []
    for p in sorted([*MODELS.rglob("*.tflite"), *MODELS.rglob("*.onnx")]):
        if "onnx_node_tests" in str(p):
            continue
        try:
            if load_model(str(p)).is_quantized:
                out.append(p)
        except TinycError:
            continue
    return out


#: float PyTorch models (name -> model spec), quantized here on seeded random data
TORCH_MODELS = {
    "kws_gru": "tests/models/kws_rnn.py:kws_gru",
    "kws_lstm": "tests/models/kws_rnn.py:kws_lstm",
}
#: calibration samples of the PyTorch models (seeded normal inputs)
CALIBRATION_SAMPLES = 8


def torch_models(names: set[str] | None) -> dict[str, Any]:
    """The int8 graphs of TORCH_MODELS (and ``<name>_stream``, their step graphs) wanted."""
    import numpy as np

    from tinyc.frontend import load_model
    from tinyc.passes.quantize import QuantOptions, quantize
    from tinyc.passes.streaming import to_streaming

    out: dict[str, Any] = {}
    for name, spec in TORCH_MODELS.items():
        if names is not None and not {name, f"{name}_stream"} & names:
            continue
        g = load_model(str(REPO / spec))
        rng = np.random.default_rng(0)
        data = [[rng.standard_normal(g.tensors[i].shape).astype(np.float32) for i in g.inputs]
                for _ in range(CALIBRATION_SAMPLES)]  # fmt: skip
        q, _ = quantize(g, data, QuantOptions())
        q.name = name
        step = to_streaming(q).step
        step.name = f"{name}_stream"
        out.update({name: q, step.name: step})
    return {k: v for k, v in out.items() if names is None or k in names}


def _err(est: float, meas: float) -> float:
    return (est - meas) / meas if meas else float("nan")


def measure_layers(model: Path | Any, board: str) -> list[int]:
    """Instructions of each node function, measured in QEMU (windows node i -> node i+1)."""
    from estimate_calibrate import function_symbols, window_count

    from tinyc.boards import load_board
    from tinyc.compiler import CompileOptions, compile_model
    from tinyc.emulate import build_firmware
    from tinyc.modelio import random_inputs, to_external
    from tinyc.project import load_project_graph

    b = load_board(board)
    with tempfile.TemporaryDirectory(prefix="tinyc-acc-") as d:
        proj = Path(d) / "p"
        src = str(model) if isinstance(model, Path) else model
        compile_model(src, CompileOptions(board=board), proj, log=lambda m: None)
        elf = build_firmware(proj, "emu")
        g = load_project_graph(proj)
        work = Path(d) / "q"
        work.mkdir()
        for i, (n, x) in enumerate(zip(g.inputs, random_inputs(g, 0), strict=True)):
            (work / f"input_{i}.bin").write_bytes(to_external(g, n, x).tobytes())
        syms = function_symbols(elf)
        nodes = sorted(int(k[len("tinyc_node_") :]) for k in syms if k.startswith("tinyc_node_"))
        out = {}
        for k, i in enumerate(nodes):
            end = (
                syms[f"tinyc_node_{nodes[k + 1]}"]
                if k + 1 < len(nodes)
                else syms["tinyc_bench_end"]
            )
            out[i] = window_count(elf, b.twin().qemu_machine, work, syms[f"tinyc_node_{i}"], end)
    return [out.get(i, 0) for i in range(max(nodes, default=-1) + 1)]


def compare(model: Path | Any, board: str, layers: bool) -> dict[str, Any]:
    """``model``: a model file, or an int8 Graph."""
    from tinyc.compiler import CompileOptions
    from tinyc.runner import validate_model

    src = str(model) if isinstance(model, Path) else model
    t = time.time()
    est = estimate_model(src, board)
    est_s = time.time() - t
    meas = validate_model(src, board, None, 1, CompileOptions(board=board))
    e = est.to_json()
    row: dict[str, Any] = {
        "model": est.model,
        "board": board,
        "estimate_seconds": round(est_s, 3),
        "flash": [e["flash_bytes"], meas["flash_bytes"],
                  _err(e["flash_bytes"], meas["flash_bytes"])],
        "ram": [e["ram_bytes"], meas["ram_bytes"], _err(e["ram_bytes"], meas["ram_bytes"])],
        "instructions": [e["instructions"], meas["instructions_per_inference"],
                         _err(e["instructions"], meas["instructions_per_inference"])],
        "stack_used": [e["stack_used_bytes"], meas["stack_used_bytes"],
                       _err(e["stack_used_bytes"], meas["stack_used_bytes"])],
        "text": [e["elf"]["text"], meas["elf"]["text"],
                 _err(e["elf"]["text"], meas["elf"]["text"])],
        "rodata": [e["elf"]["rodata"], meas["elf"]["rodata"],
                   _err(e["elf"]["rodata"], meas["elf"]["rodata"])],
        "state_bytes": e["state_bytes"],  # (the memory plan's: exact by construction)
        "latency_ms": e["latency_ms"],
    }  # fmt: skip
    if layers:
        measured = measure_layers(model, board)
        row["layers"] = [
            {"index": x["index"], "op": x["op"], "kernel": x["kernel"],
             "estimated": x["instructions"],
             "measured": measured[x["index"]] if x["index"] < len(measured) else 0}
            for x in e["layers"]
        ]  # fmt: skip
    return row


def _pct(x: float) -> str:
    return f"{100 * x:+.1f}%"


HEAD = ["model", "board", "flash est", "flash meas", "err", "RAM est", "RAM meas", "err",
        "instr est", "instr meas", "err", "stack est", "stack meas", "est s",
        "verdict"]  # fmt: skip


def cells(rows: list[dict[str, Any]]) -> list[list[str]]:
    out = []
    for r in rows:
        ok = (abs(r["flash"][2]) <= FLASH_RAM_TOL and abs(r["ram"][2]) <= FLASH_RAM_TOL
              and abs(r["instructions"][2]) <= INSN_TOL)  # fmt: skip
        out.append([
            r["model"], r["board"],
            f"{r['flash'][0]:,}", f"{r['flash'][1]:,}", _pct(r["flash"][2]),
            f"{r['ram'][0]:,}", f"{r['ram'][1]:,}", _pct(r["ram"][2]),
            f"{r['instructions'][0]:,}", f"{r['instructions'][1]:,}", _pct(r["instructions"][2]),
            f"{r['stack_used'][0]:,}", f"{r['stack_used'][1]:,}",
            f"{r['estimate_seconds']:.2f}", "ok" if ok else "MISS",
        ])  # fmt: skip
    return out


def table(rows: list[dict[str, Any]]) -> str:
    return render(HEAD, cells(rows), right=set(range(2, 14)))


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    lines += ["| " + " | ".join(r) + " |" for r in cells(rows)]
    return "\n".join(lines) + "\n"


def layer_table(r: dict[str, Any]) -> str:
    rows = [
        [x["index"], x["op"], x["kernel"], f"{x['estimated']:,}", f"{x['measured']:,}",
         _pct(_err(x["estimated"], x["measured"])) if x["measured"] else "-"]
        for x in r["layers"]
    ]  # fmt: skip
    return f"{r['model']} on {r['board']}\n" + render(
        ["#", "op", "kernel", "instr est", "instr meas", "err"], rows, right={0, 3, 4, 5}
    )


PEER = REPO.parent / "shared" / "PEER_FIGURES.md"
PEER_CORES = {"M4": "mps2-an386", "M7": "mps2-an500", "M55": "mps3-an547"}


def peer_rows() -> list[dict[str, Any]]:
    """``--backend tflm`` estimates against the TFLM + CMSIS-NN measurements of
    ../shared/PEER_FIGURES.md (QEMU instruction counts, TFLM's arena_used_bytes)."""
    import re

    rows = []
    by_stem = {p.stem: p for p in int8_models()}
    for line in PEER.read_text().splitlines():
        m = re.match(r"\| (\w+) \| (M\d+) .*?\| ([\d,]+) \| [\d.]+ \| ([\d,]+) \|", line)
        if not m or m.group(1) not in by_stem:
            continue
        board = PEER_CORES[m.group(2)]
        est = estimate_model(str(by_stem[m.group(1)]), board, "tflm").to_json()
        insn, arena = (int(m.group(i).replace(",", "")) for i in (3, 4))
        rows.append({"model": m.group(1), "core": m.group(2), "board": board,
                     "instructions": [est["instructions"], insn, _err(est["instructions"], insn)],
                     "arena": [est["arena_bytes"], arena, _err(est["arena_bytes"], arena)],
                     "calibrated_core": est["core"]})  # fmt: skip
    return rows


def peer_table(rows: list[dict[str, Any]]) -> str:
    cells = [
        [r["model"], r["core"], r["calibrated_core"], f"{r['instructions'][0]:,}",
         f"{r['instructions'][1]:,}", _pct(r["instructions"][2]), f"{r['arena'][0]:,}",
         f"{r['arena'][1]:,}", _pct(r["arena"][2])]
        for r in rows
    ]  # fmt: skip
    head = ["model", "core", "model from", "TFLM instr est", "PEER instr", "err",
            "arena est", "PEER arena", "err"]  # fmt: skip
    return render(head, cells, right=set(range(3, 9)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--boards", default="nucleo-f746,nucleo-l4r5zi")
    ap.add_argument("--models", help="comma-separated model file stems or TORCH_MODELS names "
                    "(default: all)")  # fmt: skip
    ap.add_argument("--layers", action="store_true", help="per-layer instructions as well")
    ap.add_argument("--json", type=Path, help="write the rows as JSON")
    ap.add_argument("--markdown", type=Path, help="write the table as Markdown")
    ap.add_argument(
        "--peer", action="store_true", help="only: --backend tflm vs ../shared/PEER_FIGURES.md"
    )
    args = ap.parse_args(argv)
    if args.peer:
        print(peer_table(peer_rows()))
        return 0
    keep = set(args.models.split(",")) if args.models else None
    models: dict[str, Any] = {m.stem: m for m in int8_models() if keep is None or m.stem in keep}
    models.update(torch_models(keep))
    rows, skipped = [], []
    for board in args.boards.split(","):
        for name, m in models.items():
            try:
                rows.append(compare(m, board, args.layers))
            except TinycError as e:
                skipped.append((name, board, " ".join(str(e).split())[:120]))
                continue
            print(f"{name} on {board}: done", file=sys.stderr, flush=True)
    text = table(rows)
    print(text)
    for s in skipped:
        print(f"skipped {s[0]} on {s[1]}: {s[2]}")
    if args.layers:
        for r in rows:
            print()
            print(layer_table(r))
    bad = [r for r in rows if abs(r["flash"][2]) > FLASH_RAM_TOL or abs(r["ram"][2]) > FLASH_RAM_TOL
           or abs(r["instructions"][2]) > INSN_TOL]  # fmt: skip
    print(f"\n{len(rows) - len(bad)}/{len(rows)} within flash/RAM ±{FLASH_RAM_TOL:.0%}, "
          f"instructions ±{INSN_TOL:.0%}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "skipped": skipped}, indent=1) + "\n")
    if args.markdown:
        args.markdown.write_text(markdown(rows))
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())

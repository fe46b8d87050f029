"""Sparse kernels vs dense, measured in QEMU (instructions per inference).

Per core (M0+, M4, M7, M55): a one-row FULLY_CONNECTED, a pointwise and a 3x3 CONV_2D with
random unstructured zeros at sparsities 0.3-0.95, and the same FULLY_CONNECTED with its zeros
in blocks of four output channels (--prune-block 4: the grouped kernel, tinyc_spfcg_s8),
each built with the dense kernels (TINYC_SPARSE=off) and the sparse ones (on), and the
break-even sparsity per kernel and core (interpolated where sparse/dense crosses 1). Then
ad01 (MLPerf Tiny anomaly detection, FC autoencoder) pruned by plain magnitude (numpy: the
smallest 80 % / 90 % of each int8 weight tensor zeroed): weight bytes and M7 instructions of
the sparse build (the compiler's own choice, TINYC_SPARSE=auto) vs tinyc's dense int8 build.

    python bench/sparsity.py [--cores M7,M55] [--sparsities 0.5,0.9] [--no-layers] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import graphs as G  # noqa: E402

from tinyc.backends.cmsis.emit import sparse  # noqa: E402
from tinyc.compiler import CompileOptions, compile_model  # noqa: E402
from tinyc.frontend import load_model  # noqa: E402
from tinyc.ir.graph import Graph  # noqa: E402
from tinyc.modelio import random_inputs  # noqa: E402
from tinyc.runner import EmulatedProject  # noqa: E402

BOARDS = {"M0+": "rpi-pico", "M4": "nucleo-l4r5zi", "M7": "nucleo-f746", "M55": "corstone-300"}
SPARSITIES = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95)
AD01 = ROOT.parent / "shared/models/mlperf_tiny_ad_fc_autoencoder/ad01_int8.tflite"


#: layers pruned in blocks of four output channels (the rest: unstructured)
BLOCKED = {"fc 1x256->128 blocks of 4"}


def layers() -> dict[str, Graph]:
    return {
        "fc 1x256->128": G.fully_connected(1, 1, 256, 128, "RELU"),
        "fc 1x256->128 blocks of 4": G.fully_connected(1, 1, 256, 128, "RELU"),
        "conv 1x1 12x12x32->32": G.conv(2, 12, 12, 32, 32, (1, 1), (1, 1), (1, 1), (0,) * 4),
        "conv 3x3 12x12x16->32": G.conv(3, 12, 12, 16, 32, (3, 3), (1, 1), (1, 1), (1,) * 4),
    }


def random_prune(g: Graph, sparsity: float, seed: int = 0, block: int = 1) -> Graph:
    """Zero a random ``sparsity`` of the weights, in blocks of ``block`` output channels
    that lose the same columns (a zero that random weights hold inside a kept block is
    made 1, so that the blocks are exact)."""
    w = g.tensors["w"]
    rng = np.random.default_rng(seed)
    m = w.data.reshape(w.data.shape[0], -1)
    keep = rng.random((-(-m.shape[0] // block), m.shape[1])) >= sparsity
    keep = np.repeat(keep, block, axis=0)[: m.shape[0]]
    if block > 1:
        m = np.where(m == 0, 1, m)
    w.data = np.where(keep, m, 0).astype(np.int8).reshape(w.data.shape)
    return g


def magnitude_prune(g: Graph, sparsity: float) -> Graph:
    """Zero the smallest ``sparsity`` of each FULLY_CONNECTED / CONV_2D int8 weight tensor."""
    for n in g.nodes:
        if n.op not in ("FULLY_CONNECTED", "CONV_2D"):
            continue
        w = g.tensors[n.inputs[1]]
        flat = w.data.reshape(-1).copy()
        order = np.argsort(np.abs(flat.astype(np.int32)), kind="stable")
        flat[order[: int(round(sparsity * flat.size))]] = 0
        w.data = flat.reshape(w.data.shape)
    return g


def measure(g: Graph, board: str, mode: str, work: Path) -> tuple[int, str]:
    """(instructions of one inference, model.c) with TINYC_SPARSE=mode; bit-exact checked."""
    os.environ["TINYC_SPARSE"] = mode
    proj = work / f"{g.name}_{board}_{mode}"
    shutil.rmtree(proj, ignore_errors=True)
    compile_model(g, CompileOptions(board=board), proj, log=lambda m: None)
    ep = EmulatedProject.build(proj)
    r = ep.run_case("0", random_inputs(ep.graph, 0))
    if not r.bit_exact:
        raise SystemExit(f"{g.name} on {board} ({mode}): {r.mismatches} values differ")
    assert r.instructions is not None
    return r.instructions, (proj / "model" / "model.c").read_text()


def break_even(points: list[tuple[float, float]]) -> float | None:
    """The sparsity where sparse/dense crosses 1 (linear between measured points)."""
    for (s0, r0), (s1, r1) in zip(points, points[1:], strict=False):
        if r0 >= 1.0 > r1:
            return s0 + (s1 - s0) * (r0 - 1.0) / (r0 - r1)
    if points and points[0][1] < 1.0:
        return points[0][0]  # (wins already at the lowest measured sparsity)
    return None


def bench_layers(cores: list[str], sparsities: list[float], work: Path) -> dict:
    out: dict = {}
    for core in cores:
        board = BOARDS[core]
        for name, g0 in layers().items():
            dense, _ = measure(g0, board, "off", work)
            rows, points = [], []
            for s in sparsities:
                g = random_prune(layers()[name], s, 1, 4 if name in BLOCKED else 1)
                g.name = f"{g0.name}_{int(s * 100)}"
                n, _ = measure(g, board, "on", work)
                rows.append({"sparsity": s, "dense": dense, "sparse": n})
                points.append((s, n / dense))
            be = break_even(points)
            out.setdefault(core, {})[name] = {"points": rows, "break_even": be}
            print(f"{core:4} {name:24} dense {dense:>9,}")
            for r in rows:
                print(f"{'':4} {'':24} {r['sparsity']:.2f}: sparse {r['sparse']:>9,}  "
                      f"{r['sparse'] / dense:5.2f}x")  # fmt: skip
            print(f"{'':4} {'':24} break-even: {'-' if be is None else f'{be:.2f}'}", flush=True)
    return out


def bench_ad01(work: Path, board: str = "nucleo-f746") -> dict:
    base = load_model(str(AD01))
    dense_bytes = sum(
        base.tensors[n.inputs[1]].data.size for n in base.nodes if n.op == "FULLY_CONNECTED"
    )
    dense, _ = measure(base, board, "off", work)
    res = {"dense_instructions": dense, "dense_weight_bytes": dense_bytes}
    print(f"ad01 dense int8 on {board}: {dense:,} instructions, {dense_bytes:,} weight bytes")
    for s in (0.8, 0.9):
        g = magnitude_prune(load_model(str(AD01)), s)
        g.name = f"ad01_{int(s * 100)}"
        n, src = measure(g, board, "auto", work)
        fcs = [x for x in g.nodes if x.op == "FULLY_CONNECTED"]
        chosen = src.count("tinyc_spfc_s8(")
        os.environ["TINYC_SPARSE"] = "auto"
        wbytes = sum(
            sparse.sparse_weight_bytes(x, g, "dsp") if sparse.use_sparse(x, g, "dsp")
            else g.tensors[x.inputs[1]].data.size
            for x in fcs
        )  # fmt: skip
        res[str(s)] = {"instructions": n, "weight_bytes": wbytes, "sparse_layers": chosen,
                       "layers": len(fcs)}  # fmt: skip
        print(f"ad01 {s:.0%} magnitude-pruned: {n:,} instructions ({n / dense:.2f}x dense), "
              f"weight bytes {wbytes:,} ({wbytes / dense_bytes:.2f}x), sparse kernels in "
              f"{chosen}/{len(fcs)} layers")  # fmt: skip
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cores", default=",".join(BOARDS))
    ap.add_argument("--sparsities", default=",".join(map(str, SPARSITIES)))
    ap.add_argument("--no-layers", action="store_true")
    ap.add_argument("--no-ad01", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="tinyc-sparsity-"))
    result: dict = {}
    try:
        if not args.no_layers:
            cores = [c for c in args.cores.split(",") if c]
            sps = [float(s) for s in args.sparsities.split(",")]
            result["layers"] = bench_layers(cores, sps, work)
            print("\nbreak-even sparsity (sparse kernel starts to win):")
            print(f"{'kernel':24} " + " ".join(f"{c:>6}" for c in cores))
            for name in layers():
                cells = []
                for c in cores:
                    be = result["layers"][c][name]["break_even"]
                    cells.append(f"{'-' if be is None else f'{be:.2f}':>6}")
                print(f"{name:24} " + " ".join(cells))
        if not args.no_ad01 and AD01.exists():
            print()
            result["ad01"] = bench_ad01(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

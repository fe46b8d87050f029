"""Pruning end to end (issue 12): every figure through the real compiler path — the float
model compiled with ``--prune`` and ``--calibration`` (tinyc.compiler.compile_model, what
``tinyc compile`` runs), built and run in QEMU (tinyc.runner, what ``tinyc run`` uses: the
firmware bit-exact against the reference interpreter, instructions per inference), accuracy
on held-out data on tinyc's int8 interpreter (bench/quantization.py's data and metrics).

Tables:
1. ad01_fp32 at 80 / 90 %, magnitude vs reconstruction, unstructured and in blocks of four
   output channels (--prune-block 4): anomaly-score error vs float on held-out ToyCar
   windows, weight bytes and M7 instructions vs tinyc's dense int8 build.
2. vww_96_float and pretrainedResnet at 50 / 70 % (reconstruction): top-1 agreement with
   float on held-out photo crops, instructions and flash vs dense on M4, M7, M55.
3. Recurrent: trained_lstm (TFLite, sklearn digits as 28 rows) and a PyTorch LSTM
   (tests/models/kws_rnn.py, random weights and inputs) at 80 %, unstructured and in blocks
   of four units (--prune-block 4, the grouped gate loops), 90 and 97 % in blocks (what the
   layers cost with next to no weights), M7 vs dense. (The trained PyTorch LSTM of the case
   study: bench/speech_enhancement.py --prune 0.8 --prune-block 4.)
4. The digits CNN pruned in PyTorch with tinyc.torch.GradualPruner (examples/prune_digits):
   accuracy before / after, compiled figures on M7.
5. Break-even sparsity per sparse kernel and core (bench/sparsity.py's layers, random
   unstructured zeros).
6. Vela (corstone-300, --backend tflm): Vela's weight stream (off-chip flash) dense vs pruned;
   TFLM's own kernels store and multiply the zeros.

    python bench/pruning.py [--quick] [--only ad01,vision,rnn,digits,breakeven,vela] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "models"))

import quantization as Q  # noqa: E402

from tinyc.backends.cmsis.emit import sparse  # noqa: E402
from tinyc.compiler import CalibrationOptions, CompileOptions, compile_model  # noqa: E402
from tinyc.frontend import load_model  # noqa: E402
from tinyc.ir.graph import Graph  # noqa: E402
from tinyc.modelio import random_inputs, to_internal  # noqa: E402
from tinyc.passes.prune import PruneOptions  # noqa: E402
from tinyc.quant_report import int8_inputs  # noqa: E402
from tinyc.runner import EmulatedProject  # noqa: E402
from tinyc.table import render  # noqa: E402

MODELS = ROOT.parent / "shared" / "models"
CORES = {"M4": "nucleo-l4r5zi", "M7": "nucleo-f746", "M55": "corstone-300"}
AD01 = MODELS / "mlperf_tiny_ad_fc_autoencoder/ad01_fp32.tflite"
LSTM = MODELS / "tflm_mnist_lstm/trained_lstm.tflite"
WORK = Path(tempfile.mkdtemp(prefix="tinyc-pruning-"))
_n = 0


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def write_cal(g: Graph, xs: np.ndarray) -> str:
    """The calibration samples as the .npz --calibration reads (one array per input)."""
    global _n
    _n += 1
    path = WORK / f"cal{_n}.npz"
    np.savez(path, **{g.inputs[0]: xs.astype(np.float32)})
    return str(path)


def build_run(
    model,
    board: str,
    cal: str | None = None,
    prune: str | None = None,
    method: str | None = None,
    backend: str = "cmsis",
    block: int = 1,
) -> dict:
    """compile (--prune, --calibration) -> build for QEMU -> one inference: bit-exact?
    instructions, flash, weight bytes, and the int8 graph."""
    global _n
    _n += 1
    out = WORK / f"p{_n}"
    opts = CompileOptions(
        board=board,
        backend=backend,
        calibration=CalibrationOptions(path=cal, eval_samples=0),
        prune=PruneOptions.parse(prune, method, block) if prune else None,
    )
    rep = compile_model(model, opts, out, log=lambda m: None)
    res: dict = {"weight_bytes": rep.weight_bytes, "report": rep, "project": out}
    if backend != "cmsis":
        return res
    ep = EmulatedProject.build(out)
    r = ep.run_case("0", random_inputs(ep.graph, 0))
    info = ep.report([r])
    res.update(
        graph=ep.graph,
        bit_exact=r.bit_exact,
        instructions=r.instructions,
        flash=info["flash_bytes"],
        model_c=(out / "model/model.c").read_text(),
    )
    if not r.bit_exact:
        raise SystemExit(f"{board} {prune}: firmware not bit-exact ({r.mismatches} values)")
    return res


def matrix_bytes(g: Graph, target: str) -> int:
    """Bytes of the FC / conv weight matrices as the C backend stores them (sparse encoding
    where the cost model picks the sparse kernel, int8 otherwise)."""
    total = 0
    for n in g.nodes:
        if n.op not in ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D"):
            continue
        w = g.inp(n, 1)
        if w is None or w.data is None:
            continue
        use = n.op != "DEPTHWISE_CONV_2D" and sparse.use_sparse(n, g, target)
        total += sparse.sparse_weight_bytes(n, g, target) if use else w.data.size
    return total


def int8_eval(float_g: Graph, q: Graph, xs: np.ndarray) -> np.ndarray:
    return Q.int8_outputs(float_g, q, xs)


def sparse_layers(src: str) -> str:
    """Layers the compiler gave sparse kernels (recurrent: sparse gate matrices)."""
    import re

    n = src.count("tinyc_spfc_s8(") + src.count("tinyc_spconv_s8(")
    grouped = src.count("tinyc_spfcg_s8(")
    # sparse gate matrices by their initializers (equal offset arrays are shared)
    r = len(re.findall(r"so_\w+, [04]\}", src))
    rg = len(re.findall(r"so_\w+, 4\}", src))  # in the grouped encoding
    gates = f" + {r} gate mat." + (f" ({rg} grouped)" if rg else "") if r else ""
    return f"{n}" + (f" + {grouped} grouped" if grouped else "") + gates


# -- 1. ad01 ------------------------------------------------------------------------------

#: (method, --prune-block) of the ad01 rows: unstructured, then blocks of four FC channels
#: (the grouped sparse kernel)
BUILDS = [("magnitude", 1), ("reconstruction", 1), ("magnitude", 4), ("reconstruction", 4)]


def bench_ad01(quick: bool) -> dict:
    fg = load_model(str(AD01))
    cal_x = Q.toycar_windows(0, 100)[: 40 if quick else 96]
    ev = Q.toycar_windows(100, 200)[: 32 if quick else 96]
    cal = write_cal(fg, cal_x)
    ref = Q.float_outputs(fg, ev)
    board = CORES["M7"]
    rows, out = [], {}
    dense = build_run(str(AD01), board, cal)
    dm = Q.compare(ref, int8_eval(fg, dense["graph"], ev), ev, Q._mse_score)
    dbytes = matrix_bytes(dense["graph"], "dsp")
    rows.append(
        [
            "dense int8",
            "-",
            f"{100 * dm['score_rel_err']:.1f} %",
            f"{dbytes:,}",
            "1.00x",
            f"{dense['instructions']:,}",
            "1.00x",
            "-",
            "yes",
        ]
    )
    out["dense"] = {
        "instructions": dense["instructions"],
        "weight_bytes": dbytes,
        "score_err": dm["score_rel_err"],
    }
    for s in (0.8, 0.9):
        for method, block in BUILDS:
            t0 = time.time()
            r = build_run(str(AD01), board, cal, str(s), method, block=block)
            m = Q.compare(ref, int8_eval(fg, r["graph"], ev), ev, Q._mse_score)
            wb = matrix_bytes(r["graph"], "dsp")
            rows.append(
                [
                    f"{s:.0%} {method}" + (f", blocks of {block}" if block > 1 else ""),
                    sparse_layers(r["model_c"]),
                    f"{100 * m['score_rel_err']:.1f} %",
                    f"{wb:,}",
                    f"{wb / dbytes:.2f}x",
                    f"{r['instructions']:,}",
                    f"{r['instructions'] / dense['instructions']:.2f}x",
                    f"{m['sqnr_db']:.1f}",
                    "yes" if r["bit_exact"] else "NO",
                ]
            )
            out[f"{s}_{method}" + (f"_b{block}" if block > 1 else "")] = {
                "instructions": r["instructions"],
                "weight_bytes": wb,
                "score_err": m["score_rel_err"],
                "sqnr_db": m["sqnr_db"],
            }
            _log(f"ad01 {s} {method}: {time.time() - t0:.0f} s")
    print(
        f"\nad01_fp32 on M7 (nucleo-f746), calibrated on {len(cal_x)} ToyCar windows, "
        f"anomaly score (MSE) error vs float on {len(ev)} held-out windows"
    )
    print(
        render(
            [
                "build",
                "sparse FC layers",
                "score err vs float",
                "FC weight B",
                "x dense",
                "M7 instructions",
                "x dense",
                "SQNR dB",
                "bit-exact",
            ],
            rows,
        )
    )
    return out


# -- 2. vww / resnet8 ------------------------------------------------------------------------


VISION = {
    "vww_96_float": ("mlperf_tiny_vww_mobilenetv1/vww_96_float.tflite", 96, 1.0),
    "pretrainedResnet": ("mlperf_tiny_ic_resnet8/pretrainedResnet.tflite", 32, 255.0),
}


def bench_vision(quick: bool) -> dict:
    out: dict = {}
    n_cal, n_ev = (24, 48) if quick else (64, 200)
    for name, (rel, size, top) in VISION.items():
        path = str(MODELS / rel)
        fg = load_model(path)
        cal_x = Q.photo_crops(size, n_cal, "left", 1, top)
        ev = Q.photo_crops(size, n_ev, "right", 2, top)
        cal = write_cal(fg, cal_x)
        ref = Q.float_outputs(fg, ev)
        rows = []
        base: dict = {}
        for s in (None, 0.5, 0.7):
            t0 = time.time()
            first = build_run(
                path, CORES["M7"], cal, None if s is None else str(s), "reconstruction"
            )
            q = first["graph"]
            top1 = Q.compare(ref, int8_eval(fg, q, ev), ev)["top1"]
            cells = [f"{'dense' if s is None else f'{s:.0%}'}", f"{100 * top1:.1f} %"]
            res = {"top1": top1}
            for core, board in CORES.items():
                r = first if core == "M7" else build_run(q, board)
                if s is None:
                    base[core] = r
                b = base[core]
                cells += [
                    f"{r['instructions']:,} ({r['instructions'] / b['instructions']:.2f}x)",
                    f"{r['flash']:,} ({r['flash'] / b['flash']:.2f}x)",
                ]
                res[core] = {
                    "instructions": r["instructions"],
                    "flash": r["flash"],
                    "sparse_layers": sparse_layers(r["model_c"]),
                }
            cells.append(" / ".join(res[c]["sparse_layers"] for c in CORES))
            rows.append(cells)
            out[f"{name}_{s}"] = res
            _log(f"{name} {s}: {time.time() - t0:.0f} s")
        print(
            f"\n{name} (reconstruction, calibrated on {n_cal} crops; top-1 agreement with float "
            f"on {n_ev} held-out crops); all builds bit-exact in QEMU"
        )
        heads = ["sparsity", "top-1 vs float"]
        for c in CORES:
            heads += [f"{c} instructions", f"{c} flash B"]
        print(render([*heads, "sparse layers M4/M7/M55"], rows))
    return out


# -- 3. recurrent ---------------------------------------------------------------------------


def bench_rnn(quick: bool) -> dict:
    out: dict = {}
    rows = []
    digits, _ = Q.digits_28()
    xs = digits[:, 0][np.random.default_rng(0).permutation(len(digits))]
    fg = load_model(str(LSTM))
    cal = write_cal(fg, xs[: 40 if quick else 100])
    ev = xs[1000 : 1000 + (48 if quick else 200)]
    ref = Q.float_outputs(fg, ev)
    import kws_rnn

    tg = load_model(str(ROOT / "tests/models/kws_rnn.py") + ":kws_lstm")
    tx = np.random.default_rng(1).standard_normal((64, 49, 10)).astype(np.float32)
    tcal = write_cal(tg, tx[: 32 if quick else 48])
    tev = tx[48:]
    tref = Q.float_outputs(tg, tev)
    assert kws_rnn.HIDDEN == 64
    for label, model, g0, c, e, r0 in (
        ("trained_lstm (TFLite)", str(LSTM), fg, cal, ev, ref),
        ("kws_lstm (PyTorch, 2x64)", tg, tg, tcal, tev, tref),
    ):
        dense = build_run(model, CORES["M7"], c)
        dtop = Q.compare(r0, int8_eval(g0, dense["graph"], e), e)["top1"]
        rows.append(
            [
                label,
                "dense",
                f"{100 * dtop:.1f} %",
                f"{dense['instructions']:,}",
                "1.00x",
                f"{dense['flash']:,}",
                "-",
            ]
        )
        # (*=0.97: next to no weights left, what the layers cost without their matrices)
        specs = [("0.8", 1), ("*=0.8", 1), ("0.8", 4), ("*=0.8", 4), ("*=0.9", 4), ("*=0.97", 4)]
        for spec, block in specs:
            r = build_run(model, CORES["M7"], c, spec, "reconstruction", block=block)
            top = Q.compare(r0, int8_eval(g0, r["graph"], e), e)["top1"]
            name = spec if block == 1 else f"{spec} --prune-block {block}"
            rows.append(
                [
                    label,
                    name,
                    f"{100 * top:.1f} %",
                    f"{r['instructions']:,}",
                    f"{r['instructions'] / dense['instructions']:.2f}x",
                    f"{r['flash']:,}",
                    sparse_layers(r["model_c"]),
                ]
            )
            out[f"{label}_{name}"] = {
                "instructions": r["instructions"],
                "dense": dense["instructions"],
                "top1": top,
            }
    print(
        "\nRecurrent models at 80 % (reconstruction) on M7: '0.8' spreads the zeros by "
        "sensitivity, '*=0.8' prunes every layer to 80 %; --prune-block 4: FC channels and "
        "gate units in blocks of four (the grouped kernels); top-1 agreement with float "
        "(trained_lstm: held-out sklearn digits as 28 rows; kws_lstm: random inputs)"
    )
    print(
        render(
            [
                "model",
                "--prune",
                "top-1 vs float",
                "M7 instructions",
                "x dense",
                "flash B",
                "sparse layers",
            ],
            rows,
        )
    )
    return out


# -- 4. digits CNN pruned in PyTorch ------------------------------------------------------------


def bench_digits(quick: bool) -> dict:
    sys.path.insert(0, str(ROOT / "examples/prune_digits"))
    import torch
    import train as T

    from tinyc.frontend.torch.loader import export_module

    torch.manual_seed(0)
    (xt, yt), (xv, yv) = T.data()
    net = T.model()
    T.train(net, xt, yt, epochs=10)
    acc_dense = T.accuracy(net, xv, yv)
    net.eval()
    dense_g = export_module(net, (xt[:1],), "digits_dense")
    net.train()
    spe = (len(xt) + 31) // 32
    pruner = T.GradualPruner(net, target=0.9, begin_step=0, end_step=6 * spe, frequency=spe // 4)
    T.train(net, xt, yt, epochs=10, pruner=pruner)
    acc_pruned = T.accuracy(net, xv, yv)
    net.eval()
    pruned_g = export_module(net, (xt[:1],), "digits_pruned")
    cal = write_cal(dense_g, xt[:100].numpy())
    rows, out = [], {}
    for label, g, acc in (
        ("dense", dense_g, acc_dense),
        ("90 % GradualPruner", pruned_g, acc_pruned),
    ):
        r = build_run(g, CORES["M7"], cal)
        q = r["graph"]
        pred = [
            int(
                np.argmax(
                    Q.interpreter.run(
                        q, int8_inputs(q, [to_internal(g, g.inputs[0], xv[i : i + 1].numpy())])
                    )[q.outputs[0]]
                )
            )
            for i in range(len(xv))
        ]
        acc8 = float(np.mean(np.array(pred) == yv.numpy()))
        rows.append(
            [
                label,
                f"{100 * acc:.1f} %",
                f"{100 * acc8:.1f} %",
                f"{r['instructions']:,}",
                f"{r['flash']:,}",
                f"{r['weight_bytes']:,}",
                sparse_layers(r["model_c"]),
            ]
        )
        out[label] = {
            "float": acc,
            "int8": acc8,
            "instructions": r["instructions"],
            "flash": r["flash"],
        }
    d, p = out["dense"], out["90 % GradualPruner"]
    print(
        f"\ndigits CNN (examples/prune_digits) trained in PyTorch, accuracy on {len(xv)} held-out "
        f"digits; compiled for M7 (tinyc int8, calibrated on 100 training digits)"
    )
    print(
        render(
            [
                "model",
                "float acc",
                "tinyc int8 acc",
                "M7 instructions",
                "flash B",
                "weights B",
                "sparse layers",
            ],
            rows,
        )
    )
    print(
        f"pruned vs dense: {p['instructions'] / d['instructions']:.2f}x instructions, "
        f"{p['flash'] / d['flash']:.2f}x flash"
    )
    return out


# -- 5. break-even --------------------------------------------------------------------------------


def bench_breakeven(quick: bool) -> dict:
    import sparsity as S

    cores = ["M0+", "M4", "M7", "M55"]
    sps = [0.5, 0.7, 0.8, 0.9, 0.95] if quick else [0.3, 0.5, 0.7, 0.8, 0.9, 0.95]
    res = S.bench_layers(cores, sps, WORK)
    print(
        "\nbreak-even sparsity (the sparse kernel starts to win; '-': never, up to 95 %); "
        "below it the compiler keeps the dense kernel"
    )
    rows = []
    for name in S.layers():
        cells = [name]
        for c in cores:
            be = res[c][name]["break_even"]
            cells.append("-" if be is None else f"{be:.2f}")
        rows.append(cells)
    print(render(["kernel", *cores], rows))
    return res


# -- 6. Vela -----------------------------------------------------------------------------------


def bench_vela(quick: bool) -> dict:
    fg = load_model(str(AD01))
    cal = write_cal(fg, Q.toycar_windows(0, 100)[:40])
    rows, out = [], {}
    for spec in (None, "0.8", "0.9"):
        try:
            r = build_run(str(AD01), "corstone-300", cal, spec, "magnitude", backend="tflm")
        except Exception as e:  # noqa: BLE001 - report it, the rest of the bench goes on
            print(f"\nVela: not measured ({e})")
            return {}
        tm = (r["report"].extra or {}).get("vela")
        if not tm:
            print("\nVela: the corstone-300 build gave no Vela report")
            return {}
        out[str(spec)] = {
            "off_chip_flash": tm["off_chip_flash_bytes"],
            "cycles": tm["cycles_total"],
        }
        rows.append(
            [
                "dense" if spec is None else f"{float(spec):.0%} magnitude",
                f"{tm['off_chip_flash_bytes']:,}",
                f"{tm['cycles_total']:,}",
                f"{r['weight_bytes']:,}",
            ]
        )
    d = out["None"]["off_chip_flash"]
    for row, k in zip(rows, out, strict=True):
        row.insert(2, f"{out[k]['off_chip_flash'] / d:.2f}x")
    print(
        "\nad01_fp32 on corstone-300 (Ethos-U55, --backend tflm): Vela's compressed weight "
        "stream (its off-chip flash) and NPU cycles; the CPU-side TFLM .tflite keeps every zero"
    )
    print(
        render(
            ["build", "Vela off-chip flash B", "x dense", "Vela cycles", ".tflite weights B"], rows
        )
    )
    return out


SECTIONS = {
    "ad01": bench_ad01,
    "vision": bench_vision,
    "rnn": bench_rnn,
    "digits": bench_digits,
    "breakeven": bench_breakeven,
    "vela": bench_vela,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples and sparsities")
    ap.add_argument("--only", default=",".join(SECTIONS))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    os.environ["TINYC_SPARSE"] = "auto"
    result = {}
    t0 = time.time()
    try:
        for name in args.only.split(","):
            t = time.time()
            result[name] = SECTIONS[name](args.quick)
            _log(f"[{name}: {time.time() - t:.0f} s]")
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
    print(f"\n(bench/pruning.py{' --quick' if args.quick else ''}: {time.time() - t0:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

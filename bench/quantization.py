"""tinyc's int8 post-training quantization against its peers, on every float model of
../shared/models: onnxruntime's ``quantize_static`` (ONNX models: QDQ int8, MinMax, Entropy
and Percentile calibration, per-tensor and per-channel, the best of the six) and the TF
converter's int8 (the official MLPerf Tiny int8 files, where one exists).

Every int8 model is compared with the float model on the same evaluation inputs, kept apart
from the calibration inputs; tinyc and onnxruntime calibrate on the same samples. Metrics:
top-1 agreement with float for classifiers, output SQNR for all, the anomaly-score error for
the autoencoder. tinyc's int8 graphs run on its reference interpreter (bit-exact with TFLite
Micro, tests/test_reference_vs_tflm.py), onnxruntime's QDQ models in onnxruntime (CPU, its
own int8 kernels), the official int8 files on tinyc's interpreter.

Data (all offline):
- ad01: the ToyCar clip shipped with the model (200 log-mel slices x 128); 5-slice windows,
  calibration from slices 0-99, evaluation from slices 100-199.
- vww_96 / alibaba VWW / resnet8: no real image set is available offline, so crops of
  scikit-learn's two sample photographs (china.jpg, flower.jpg), resized to the model input:
  calibration crops from the left half of each photo, evaluation crops from the right half.
- mnist-8: scikit-learn's 1797 handwritten digits upsampled to 28x28 (0..255), in a seeded
  shuffle: the first 100 calibrate, all the other 1697 are held out.

The TF converter's int8 files were calibrated by their authors on the real data sets (not on
these samples); TensorFlow is not installed here, so they cannot be re-made on the same data.

Run: python bench/quantization.py [--models ...] [--variants] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from tinyc import interpreter
from tinyc.frontend import load_model
from tinyc.modelio import to_internal
from tinyc.passes.quantize import QuantOptions, quantize
from tinyc.quant_report import int8_inputs, output_task, sqnr_db
from tinyc.table import render

MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"


# -- data ---------------------------------------------------------------------------------


def photo_crops(size: int, n: int, half: str, seed: int, max_value: float) -> np.ndarray:
    """``n`` square crops of sklearn's sample photos (left or right half), resized to
    ``size`` x ``size`` RGB, values scaled to [0, max_value]; NHWC float32."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, 3), np.float32)
    for i in range(n):
        img = photos[i % len(photos)]
        h, w = img.shape[:2]
        x0, x1 = (0, w // 2) if half == "left" else (w // 2, w)
        side = int(rng.integers(min(size, x1 - x0), min(h, x1 - x0) + 1))
        y = int(rng.integers(0, h - side + 1))
        x = x0 + int(rng.integers(0, x1 - x0 - side + 1))
        crop = Image.fromarray(img[y : y + side, x : x + side]).resize((size, size), Image.BILINEAR)
        a = np.asarray(crop, np.float32)
        if rng.integers(2):
            a = a[:, ::-1]
        out[i] = a * (max_value / 255.0)
    return out


def toycar_windows(first: int, last: int) -> np.ndarray:
    """5-slice windows (640 floats) whose slices all lie in [first, last)."""
    clip = np.fromfile(
        MODELS / "mlperf_tiny_ad_fc_autoencoder/test_input/normal_id_01_00000000_hist_librosa.bin",
        dtype="<f4",
    ).reshape(200, 128)
    return np.stack([clip[i : i + 5].reshape(640) for i in range(first, last - 4)])


def digits_28() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's 8x8 handwritten digits (0..16) upsampled to 28x28 (in the centre 20x20 box,
    as MNIST) in [0, 1], NCHW."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    imgs = np.stack(
        [
            np.asarray(
                Image.fromarray((im * (255.0 / 16.0)).astype(np.uint8)).resize(
                    (20, 20), Image.BILINEAR
                ),
                np.float32,
            )
            / 255.0
            for im in d.images
        ]
    )
    out = np.zeros((len(imgs), 1, 28, 28), np.float32)
    out[:, 0, 4:24, 4:24] = imgs
    return out, d.target


# -- evaluation -----------------------------------------------------------------------------


def _real(g, name, v):
    t = g.tensors[name]
    return t.quant.dequantize(v).astype(np.float64) if t.is_quantized else v.astype(np.float64)


def _mse_score(x, y):
    return float(np.mean((y.reshape(-1) - x.reshape(-1)) ** 2))


def float_outputs(float_g, xs: np.ndarray) -> np.ndarray:
    """The float model's first output on every sample (tinyc's float interpreter, which
    agrees with onnxruntime / TFLite within float rounding)."""
    name = float_g.inputs[0]
    fo = float_g.outputs[0]
    return np.stack(
        [
            interpreter.run(float_g, [to_internal(float_g, name, x[None])])[fo].reshape(-1)
            for x in xs
        ]
    ).astype(np.float64)


def int8_outputs(float_g, int8_g, xs: np.ndarray) -> np.ndarray:
    """``int8_g``'s first output (dequantized) on every sample, on tinyc's interpreter."""
    name, qo = float_g.inputs[0], int8_g.outputs[0]
    out = []
    for x in xs:
        sample = [to_internal(float_g, name, x[None].astype(np.float32))]
        out.append(_real(int8_g, qo, interpreter.run(int8_g, int8_inputs(int8_g, sample))[qo]))
    return np.stack([o.reshape(-1) for o in out])


def compare(ref: np.ndarray, got: np.ndarray, xs: np.ndarray, score_of=None) -> dict:
    """Top-1 agreement and output SQNR of ``got`` vs float ``ref`` (and the anomaly-score
    error when ``score_of`` is given)."""
    res = {
        "top1": float(np.mean(ref.argmax(1) == got.argmax(1))),
        "sqnr_db": sqnr_db(float(np.sum(ref * ref)), float(np.sum((ref - got) ** 2))),
    }
    if score_of is not None:
        pairs = zip(xs, ref, got, strict=True)
        s = np.array([(score_of(x, r), score_of(x, q)) for x, r, q in pairs])
        res["score_rel_err"] = float(np.mean(np.abs(s[:, 1] - s[:, 0]) / np.abs(s[:, 0])))
    return res


def _nchw(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2))


def _digits_split(n_cal: int, n_eval: int | None):
    x, _ = digits_28()
    x = x[np.random.default_rng(0).permutation(len(x))] * 255.0
    return x[:n_cal], x[n_cal:] if n_eval is None else x[n_cal : n_cal + n_eval]


CASES = {
    "mnist-8": {
        "float": "onnx_mnist8/mnist-8.onnx",
        "official": None,
        "data": "sklearn digits upsampled to 28x28, 0..255, seeded shuffle: 100 calibrate, "
        "the other 1697 held out",
        "make": _digits_split,
    },
    "vww_96_float": {
        "float": "mlperf_tiny_vww_mobilenetv1/vww_96_float.tflite",
        "official": "mlperf_tiny_vww_mobilenetv1/vww_96_int8.tflite",
        "data": "photo crops 96x96 in [0,1] (cal: left halves, eval: right halves)",
        "make": lambda n_cal, n_eval: (
            photo_crops(96, n_cal, "left", 1, 1.0),
            photo_crops(96, n_eval or 200, "right", 2, 1.0),
        ),
    },
    "pretrainedResnet": {
        "float": "mlperf_tiny_ic_resnet8/pretrainedResnet.tflite",
        "official": "mlperf_tiny_ic_resnet8/pretrainedResnet_quant.tflite",
        "data": "photo crops 32x32 in [0,255] (cal: left halves, eval: right halves)",
        "make": lambda n_cal, n_eval: (
            photo_crops(32, n_cal, "left", 3, 255.0),
            photo_crops(32, n_eval or 200, "right", 4, 255.0),
        ),
    },
    "ad01_fp32": {
        "float": "mlperf_tiny_ad_fc_autoencoder/ad01_fp32.tflite",
        "official": "mlperf_tiny_ad_fc_autoencoder/ad01_int8.tflite",
        "data": "ToyCar clip, 5-slice windows (cal: slices 0-99, eval: 100-199)",
        "make": lambda n_cal, n_eval: (
            toycar_windows(0, 100)[:n_cal],
            toycar_windows(100, 200)[:n_eval],
        ),
        "score": _mse_score,
    },
    "alibaba_vww": {
        "float": "onnx_alibaba_vww/model_vww.onnx",
        "official": None,
        "data": "photo crops 96x96 RGB in [0,1], NCHW (cal: left halves, eval: right halves)",
        "make": lambda n_cal, n_eval: (
            _nchw(photo_crops(96, n_cal, "left", 5, 1.0)),
            _nchw(photo_crops(96, n_eval or 200, "right", 6, 1.0)),
        ),
    },
}

DEFAULT = QuantOptions()
"""tinyc's defaults (what `tinyc compile` does)."""
VARIANTS = {
    "no-bias-corr": QuantOptions(bias_correction=False),
    "minmax": QuantOptions(observer="minmax"),
    "mse": QuantOptions(observer="mse"),
    "percentile": QuantOptions(observer="percentile"),
    "per-tensor": QuantOptions(per_channel=False),
    "cle": QuantOptions(equalize=True),
    "adaround": QuantOptions(adaround=True),
    "cle+adaround": QuantOptions(equalize=True, adaround=True),
}
"""Other tinyc options tried for the "tinyc best" column (the same calibration data)."""


def _option_label(o: QuantOptions) -> str:
    parts = [] if o.observer == "auto" else [o.observer]
    parts += [] if o.per_channel else ["per-tensor"]
    parts += ["cle"] if o.equalize else []
    parts += [] if o.bias_correction else ["no-bias-corr"]
    parts += ["adaround"] if o.adaround else []
    return "+".join(parts) or "auto"


# -- onnxruntime's quantize_static --------------------------------------------------------------


ORT_METHODS = ("MinMax", "Entropy", "Percentile")


def ort_peer(path: Path, cal: np.ndarray, ev: np.ndarray) -> list[dict]:
    """onnxruntime ``quantize_static`` (QDQ, int8 activations and weights) with each
    calibration method, per-tensor and per-channel, on the model after onnxruntime's own
    pre-processing (opset raised to 13 for per-channel DequantizeLinear, then
    ``quant_pre_process``); each QDQ model runs in onnxruntime on ``ev``. One entry per
    configuration (``error`` when onnxruntime could not make or run it)."""
    import contextlib
    import io
    import logging
    import tempfile

    import onnx
    import onnxruntime as ort
    from onnx import version_converter
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    logging.getLogger().setLevel(logging.ERROR)

    class Reader(CalibrationDataReader):
        def __init__(self, name: str):
            self.it = iter([{name: x[None].astype(np.float32)} for x in cal])

        def get_next(self):
            return next(self.it, None)

    def run(model_path: str) -> np.ndarray:
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        s = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])
        name = s.get_inputs()[0].name
        return np.stack(
            [s.run(None, {name: x[None].astype(np.float32)})[0].reshape(-1) for x in ev]
        ).astype(np.float64)

    out = []
    with tempfile.TemporaryDirectory() as d:
        m = onnx.load(str(path))
        if m.opset_import[0].version < 13:
            m = version_converter.convert_version(m, 13)
        up, pre = f"{d}/opset13.onnx", f"{d}/pre.onnx"
        onnx.save(m, up)
        try:
            quant_pre_process(up, pre)
        except Exception:  # noqa: BLE001 - fall back to the model as it is
            pre = up
        name = ort.InferenceSession(pre, providers=["CPUExecutionProvider"]).get_inputs()[0].name
        for method in ORT_METHODS:
            for per_channel in (False, True):
                label = f"{method}{' per-channel' if per_channel else ''}"
                q = f"{d}/q.onnx"
                errors = []
                for src in dict.fromkeys([pre, up]):  # pre-processed first, else as it is
                    try:
                        with contextlib.redirect_stdout(io.StringIO()):
                            quantize_static(
                                src,
                                q,
                                Reader(name),
                                quant_format=QuantFormat.QDQ,
                                per_channel=per_channel,
                                activation_type=QuantType.QInt8,
                                weight_type=QuantType.QInt8,
                                calibrate_method=getattr(CalibrationMethod, method),
                            )
                        out.append({"config": label, "outputs": run(q)})
                        break
                    except Exception as e:  # noqa: BLE001 - onnxruntime fails on some models
                        errors.append(f"{type(e).__name__}: {e}"[:200])
                else:
                    out.append({"config": label, "error": "; ".join(errors)})
    return out


# -- one model ----------------------------------------------------------------------------------


def _key(task: str, m: dict) -> tuple:
    """Order of merit: top-1 agreement first for classifiers, then SQNR."""
    sq = m["sqnr_db"] if m["sqnr_db"] is not None else float("inf")
    return (m["top1"], sq) if task == "classifier" else (sq,)


def run_case(
    name: str, case: dict, n_cal: int, n_eval: int | None, variants: list[str], peers: bool
) -> dict:
    float_g = load_model(MODELS / case["float"])
    cal, ev = case["make"](n_cal, n_eval)
    inp = float_g.inputs[0]
    cal_samples = [[to_internal(float_g, inp, x[None].astype(np.float32))] for x in cal]
    ref = float_outputs(float_g, ev)
    task = output_task(float_g, float_g.outputs[0])
    score = case.get("score")

    def tinyc(opts: QuantOptions) -> dict:
        t0 = time.perf_counter()
        q, _ = quantize(float_g, cal_samples, opts, eval_samples=[])
        seconds = time.perf_counter() - t0
        res = compare(ref, int8_outputs(float_g, q, ev), ev, score)
        return {**res, "options": _option_label(opts), "quantize_seconds": round(seconds, 2)}

    row = {
        "model": name,
        "task": task,
        "data": case["data"],
        "calibration_samples": len(cal),
        "eval_samples": len(ev),
        "tinyc": tinyc(DEFAULT),
    }
    tried = [row["tinyc"]]
    for v in variants:
        tried.append(tinyc(VARIANTS[v]))
    row["tinyc_variants"] = tried
    row["tinyc_best"] = max(tried, key=lambda m: _key(task, m))
    if peers and case["float"].endswith(".onnx"):
        ort_rows = []
        for r in ort_peer(MODELS / case["float"], cal, ev):
            if "outputs" in r:
                r = {"config": r["config"], **compare(ref, r.pop("outputs"), ev, score)}
            ort_rows.append(r)
        row["onnxruntime_all"] = ort_rows
        ok = [r for r in ort_rows if "error" not in r]
        row["onnxruntime"] = max(ok, key=lambda m: _key(task, m)) if ok else None
    if case.get("official"):
        official = load_model(MODELS / case["official"])
        row["tf_int8"] = {
            **compare(ref, int8_outputs(float_g, official, ev), ev, score),
            "config": "official int8 file",
        }
    best = [row[p] for p in ("onnxruntime", "tf_int8") if row.get(p)]
    if best:
        peer = max(best, key=lambda m: _key(task, m))
        row["best_peer"] = peer
        row["tinyc_ge_best_peer"] = _key(task, row["tinyc"])[:1] >= _key(task, peer)[:1]
    return row


# -- the table --------------------------------------------------------------------------------


def _metric(task: str, m: dict | None) -> str:
    if m is None:
        return "n/a"
    sq = "exact" if m["sqnr_db"] is None else f"{m['sqnr_db']:.1f} dB"
    if task == "classifier":
        return f"{100 * m['top1']:.2f}% / {sq}"
    if "score_rel_err" in m:
        return f"{sq} / {100 * m['score_rel_err']:.2f}%"
    return sq


def table(rows: list[dict]) -> str:
    out = []
    for r in rows:
        t = r["task"]
        metric = "top-1 / SQNR" if t == "classifier" else "SQNR / score err"
        best = r["tinyc_best"]
        ort = r.get("onnxruntime")
        tf = r.get("tf_int8")
        ge = r.get("tinyc_ge_best_peer")
        out.append(
            [
                r["model"],
                f"{r['calibration_samples']}/{r['eval_samples']}",
                metric,
                _metric(t, r["tinyc"]),
                f"{_metric(t, best)} ({best['options']})",
                "n/a" if ort is None else f"{_metric(t, ort)} ({ort['config']})",
                _metric(t, tf),
                "-" if ge is None else ("yes" if ge else "NO"),
            ]
        )
    return render(
        [
            "model",
            "cal/eval",
            "metric",
            "tinyc (default)",
            "tinyc best option",
            "onnxruntime best",
            "TF int8",
            "tinyc >= best peer",
        ],
        out,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calibration-samples", type=int, default=100)
    ap.add_argument(
        "--eval-samples",
        type=int,
        default=None,
        help="held-out samples (default: 200 photo crops, 96 ToyCar windows, 1697 digits)",
    )
    ap.add_argument("--models", nargs="*", default=list(CASES))
    ap.add_argument(
        "--variants",
        nargs="*",
        metavar="NAME",
        help=f"also try other tinyc options (slow): these, or all of {', '.join(VARIANTS)}",
    )
    ap.add_argument("--no-peers", action="store_true", help="tinyc only")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows = []
    for m in args.models:
        rows.append(
            run_case(
                m,
                CASES[m],
                args.calibration_samples,
                args.eval_samples,
                [] if args.variants is None else (args.variants or list(VARIANTS)),
                not args.no_peers,
            )
        )
        r = rows[-1]
        tried = ", ".join(f"{v['options']} {_metric(r['task'], v)}" for v in r["tinyc_variants"])
        print(f"  done {m}: tinyc {tried}", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(table(rows))
    print("metric: agreement of each int8 model with the float model on the held-out samples")
    for r in rows:
        print(f"  {r['model']}: {r['data']}")
        if args.variants is not None:
            tried = ", ".join(
                f"{v['options']} {_metric(r['task'], v)}" for v in r["tinyc_variants"]
            )
            print(f"    tinyc options tried: {tried}")
        for o in r.get("onnxruntime_all", []):
            if "error" in o:
                print(f"    onnxruntime {o['config']}: failed ({o['error'][:80]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

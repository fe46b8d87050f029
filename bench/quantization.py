"""tinyc's int8 post-training quantization against the TF converter's official int8 models.

For each float MLPerf Tiny model, tinyc quantizes it with calibration samples, and both
tinyc's int8 graph and the official int8 model (made by the TensorFlow Lite converter) run
on the same evaluation inputs, kept apart from the calibration inputs. Both are compared with
the float model: top-1 agreement for classifiers, output SQNR for all, plus the anomaly
score error for the autoencoder. Int8 graphs run on tinyc's reference interpreter, which is
bit-exact with TFLite Micro (tests/test_reference_vs_tflm.py).

Data (all offline):
- ad01: the ToyCar clip shipped with the model (200 log-mel slices x 128); 5-slice windows,
  calibration from slices 0-99, evaluation from slices 100-199.
- vww / resnet8: no real image set is available offline, so crops of scikit-learn's two
  sample photographs (china.jpg, flower.jpg), resized to the model input: calibration crops
  from the left half of each photo, evaluation crops from the right half.
- mnist-8 (when the ONNX frontend is present): scikit-learn's handwritten digits upsampled to
  28x28; calibration on the first N, evaluation on the next M (no official int8 version).

Run: python bench/quantization.py [--calibration-samples N] [--eval-samples M] [--json]
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


def agreement(float_g, int8_g, xs: np.ndarray, score_of=None) -> dict:
    """Top-1 agreement, output SQNR (and anomaly-score error) of ``int8_g`` vs ``float_g``."""
    fo, qo = float_g.outputs[0], int8_g.outputs[0]
    sig = noise = 0.0
    agree = 0
    scores = []
    for x in xs:
        sample = [x.reshape(float_g.tensors[float_g.inputs[0]].shape)]
        ref = interpreter.run(float_g, sample)[fo].astype(np.float64)
        got = _real(int8_g, qo, interpreter.run(int8_g, int8_inputs(int8_g, sample))[qo])
        sig += float(np.sum(ref * ref))
        noise += float(np.sum((ref - got) ** 2))
        agree += int(ref.reshape(-1).argmax() == got.reshape(-1).argmax())
        if score_of is not None:
            scores.append((score_of(x, ref), score_of(x, got)))
    res = {"top1": agree / len(xs), "sqnr_db": sqnr_db(sig, noise)}
    if scores:
        s = np.array(scores)
        res["score_rel_err"] = float(np.mean(np.abs(s[:, 1] - s[:, 0]) / np.abs(s[:, 0])))
    return res


def _mse_score(x, y):
    return float(np.mean((y.reshape(-1) - x.reshape(-1)) ** 2))


CASES = {
    "vww_96_float": {
        "float": "mlperf_tiny_vww_mobilenetv1/vww_96_float.tflite",
        "official": "mlperf_tiny_vww_mobilenetv1/vww_96_int8.tflite",
        "data": "photo crops 96x96 in [0,1] (cal: left halves, eval: right halves)",
        "make": lambda n_cal, n_eval: (
            photo_crops(96, n_cal, "left", 1, 1.0),
            photo_crops(96, n_eval, "right", 2, 1.0),
        ),
    },
    "pretrainedResnet": {
        "float": "mlperf_tiny_ic_resnet8/pretrainedResnet.tflite",
        "official": "mlperf_tiny_ic_resnet8/pretrainedResnet_quant.tflite",
        "data": "photo crops 32x32 in [0,255] (cal: left halves, eval: right halves)",
        "make": lambda n_cal, n_eval: (
            photo_crops(32, n_cal, "left", 3, 255.0),
            photo_crops(32, n_eval, "right", 4, 255.0),
        ),
    },
    "ad01_fp32": {
        "float": "mlperf_tiny_ad_fc_autoencoder/ad01_fp32.tflite",
        "official": "mlperf_tiny_ad_fc_autoencoder/ad01_int8.tflite",
        "data": "ToyCar clip, 5-slice windows (cal: slices 0-99, eval: 100-199)",
        "make": lambda n_cal, n_eval: (toycar_windows(0, 100)[:n_cal], toycar_windows(100, 200)),
        "score": _mse_score,
    },
    "mnist-8": {
        "float": "onnx_mnist8/mnist-8.onnx",
        "official": None,
        "data": "sklearn digits upsampled to 28x28, 0..255 (cal: first N, eval: the next M)",
        "make": lambda n_cal, n_eval: (
            digits_28()[0][:n_cal] * 255.0,
            digits_28()[0][n_cal : n_cal + n_eval] * 255.0,
        ),
    },
}


def run_case(name: str, case: dict, n_cal: int, n_eval: int, observer: str) -> dict:
    float_g = load_model(MODELS / case["float"])
    cal, ev = case["make"](n_cal, n_eval)
    cal_samples = [[x.reshape(float_g.tensors[float_g.inputs[0]].shape)] for x in cal]
    t0 = time.perf_counter()
    q, _ = quantize(float_g, cal_samples, QuantOptions(observer=observer), eval_samples=[])
    seconds = time.perf_counter() - t0
    score = case.get("score")
    ours = agreement(float_g, q, ev, score)
    row = {
        "model": name,
        "task": output_task(float_g, float_g.outputs[0]),
        "data": case["data"],
        "calibration_samples": len(cal),
        "eval_samples": len(ev),
        "quantize_seconds": round(seconds, 2),
        "tinyc": ours,
    }
    if case.get("official"):
        row["official"] = agreement(float_g, load_model(MODELS / case["official"]), ev, score)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calibration-samples", type=int, default=100)
    ap.add_argument("--eval-samples", type=int, default=200)
    ap.add_argument("--observer", default="auto")
    ap.add_argument("--models", nargs="*", default=list(CASES))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows = [
        run_case(m, CASES[m], args.calibration_samples, args.eval_samples, args.observer)
        for m in args.models
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0

    def pct(v):
        return "-" if v is None else f"{100 * v:.1f}%"

    def db(v):
        return "exact" if v is None else f"{v:.1f}"

    table = []
    for r in rows:
        o, t = r.get("official", {}), r["tinyc"]
        classifier = r["task"] == "classifier"
        table.append(
            [
                r["model"],
                f"{r['calibration_samples']}/{r['eval_samples']}",
                pct(t["top1"]) if classifier else "-",
                pct(o.get("top1")) if classifier and o else "-",
                db(t["sqnr_db"]),
                db(o.get("sqnr_db")) if o else "-",
                f"{100 * t['score_rel_err']:.2f}%" if "score_rel_err" in t else "-",
                f"{100 * o['score_rel_err']:.2f}%" if "score_rel_err" in o else "-",
            ]
        )
    print(
        render(
            [
                "model",
                "cal/eval",
                "top-1 tinyc",
                "top-1 TF int8",
                "SQNR dB tinyc",
                "SQNR dB TF int8",
                "score err tinyc",
                "score err TF int8",
            ],
            table,
            right={2, 3, 4, 5, 6, 7},
        )
    )
    for r in rows:
        print(f"  {r['model']}: {r['data']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Shared test fixtures: the third-party model set and the slow-test switch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODELS = Path(os.environ.get("TINYC_MODELS", REPO.parent / "shared" / "models"))

INT8_TFLITE = {
    "kws_ref_model": "mlperf_tiny_kws_dscnn/kws_ref_model.tflite",
    "vww_96_int8": "mlperf_tiny_vww_mobilenetv1/vww_96_int8.tflite",
    "pretrainedResnet_quant": "mlperf_tiny_ic_resnet8/pretrainedResnet_quant.tflite",
    "ad01_int8": "mlperf_tiny_ad_fc_autoencoder/ad01_int8.tflite",
    "hello_world_int8": "tflm_hello_world_sine/hello_world_int8.tflite",
    "kws_micronet_m": "armzoo_micronet_kws_m/kws_micronet_m.tflite",
    "rnnoise_INT8": "armzoo_rnnoise_int8/rnnoise_INT8.tflite",
    "trained_lstm_int8": "tflm_mnist_lstm/trained_lstm_int8.tflite",
    "mobilenet_v2_quantized_1x3x224x224": (
        "tflm_pytorch_mobilenet_v2_int8/mobilenet_v2_quantized_1x3x224x224.tflite"
    ),
}
FLOAT_TFLITE = {
    "vww_96_float": "mlperf_tiny_vww_mobilenetv1/vww_96_float.tflite",
    "pretrainedResnet": "mlperf_tiny_ic_resnet8/pretrainedResnet.tflite",
    "ad01_fp32": "mlperf_tiny_ad_fc_autoencoder/ad01_fp32.tflite",
    "hello_world_float": "tflm_hello_world_sine/hello_world_float.tflite",
    "trained_lstm": "tflm_mnist_lstm/trained_lstm.tflite",
}
ONNX_CNN = {
    "mnist-8": "onnx_mnist8/mnist-8.onnx",
    "model_vww": "onnx_alibaba_vww/model_vww.onnx",
    "kws_ref_model_qdq": "onnx_mlperf_kws_dscnn_qdq/kws_ref_model_qdq.onnx",
}
#: models small enough for the default (fast) test run
FAST_INT8 = [k for k in INT8_TFLITE if k != "mobilenet_v2_quantized_1x3x224x224"]


def model_path(rel: str) -> Path:
    p = MODELS / rel
    if not p.exists():
        pytest.skip(f"shared model {rel} not found under {MODELS} (set TINYC_MODELS)")
    return p


def reference_cases(rel: str) -> list[Path]:
    """The reference_io case folders of a shared model."""
    model = model_path(rel)
    root = model.parent / "reference_io" / model.stem
    return sorted(p for p in root.iterdir() if (p / "input_0.npy").exists())


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--runslow"):
        # pyproject's addopts deselects slow tests; --runslow lifts that.
        config.option.markexpr = ""

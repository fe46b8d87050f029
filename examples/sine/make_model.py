"""Make the bundled example: a 1-16-16-1 MLP that learns y = sin(x) on [0, 2*pi].

Trained with numpy (full-batch Adam, fixed seed), written as a float ONNX model with
onnx.helper, plus the calibration inputs tinyc quantizes it with. Rerunning this script
reproduces sine.onnx and calibration.npy byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent


def train(seed: int = 0, steps: int = 20000) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 2 * np.pi, (1024, 1)).astype(np.float32)
    y = np.sin(x)
    sizes = [(1, 16), (16, 16), (16, 1)]
    params = []
    for fan_in, fan_out in sizes:
        params.append(rng.normal(0, np.sqrt(2 / fan_in), (fan_in, fan_out)).astype(np.float32))
        params.append(np.zeros(fan_out, np.float32))
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    lr, b1, b2 = 0.01, 0.9, 0.999
    for t in range(1, steps + 1):
        # forward
        h = [x]
        for i in range(3):
            z = h[-1] @ params[2 * i] + params[2 * i + 1]
            h.append(np.maximum(z, 0) if i < 2 else z)
        grad = 2 * (h[-1] - y) / len(x)
        grads: list[np.ndarray] = [np.empty(0)] * 6
        for i in (2, 1, 0):
            grads[2 * i] = h[i].T @ grad
            grads[2 * i + 1] = grad.sum(axis=0)
            if i:
                grad = (grad @ params[2 * i].T) * (h[i] > 0)
        for k, g in enumerate(grads):
            m[k] = b1 * m[k] + (1 - b1) * g
            v[k] = b2 * v[k] + (1 - b2) * g * g
            mh, vh = m[k] / (1 - b1**t), v[k] / (1 - b2**t)
            params[k] = (params[k] - lr * mh / (np.sqrt(vh) + 1e-8)).astype(np.float32)
    return params


def to_onnx(params: list[np.ndarray]) -> onnx.ModelProto:
    nodes, inits = [], []
    x = "x"
    for i in range(3):
        w, b = f"dense{i}_w", f"dense{i}_b"
        inits += [
            numpy_helper.from_array(params[2 * i], w),
            numpy_helper.from_array(params[2 * i + 1], b),
        ]
        out = "y" if i == 2 else f"h{i}"
        gemm_out = out if i == 2 else f"z{i}"
        nodes.append(helper.make_node("Gemm", [x, w, b], [gemm_out], name=f"dense{i}"))
        if i < 2:
            nodes.append(helper.make_node("Relu", [gemm_out], [out], name=f"relu{i}"))
        x = out
    graph = helper.make_graph(
        nodes,
        "sine",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="tinyc-example"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main() -> None:
    params = train()
    (HERE / "sine.onnx").write_bytes(to_onnx(params).SerializeToString())
    calib = np.linspace(0, 2 * np.pi, 200, dtype=np.float32).reshape(200, 1, 1)
    np.save(HERE / "calibration.npy", calib)
    test = np.array([[1.0]], np.float32)
    np.save(HERE / "x_1.npy", test)


if __name__ == "__main__":
    main()

"""tinyc's C backend against TFLite Micro + CMSIS-NN on layers and small models of unusual
geometry, on the same emulated core.

The layers and models are built here as float IR graphs (random weights, seeded), quantized
by tinyc (per-channel int8, calibrated on seeded random inputs) and written as .tflite with
tinyc's own writer: no TensorFlow anywhere. Each .tflite is then

- compiled for the board with the C backend (``tinyc compile``), built for its QEMU twin and
  run on seeded random inputs, bit-exact with tinyc's interpreter;
- compiled with ``--backend tflm`` (TFLM + CMSIS-NN optimized kernels, as in
  ../shared/PEER_FIGURES.md), built against a tflite-micro checkout (TFLM_DIR, default
  ~/.cache/tinyc-deps/tflite-micro, with its third-party code; libtflm.a built once per core
  into ~/.cache/tinyc-tests, see tests/tflm_build.py) and run the same way, bit-exact too;
- estimated with ``tinyc estimate`` for both backends.

The table: layer, MACs, executed instructions per inference (tinyc, TFLM), their ratio (the
target is at most 0.6) and the estimates' errors against the measured counts.

    python bench/geometry.py [--board nucleo-f746] [--only dw_1ch,imu] [--json FILE]
                             [--no-tflm] [--no-estimate]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from tinyc.backends.tflm.writer import write_tflite  # noqa: E402
from tinyc.boards import load_board  # noqa: E402
from tinyc.compiler import CompileOptions, compile_model  # noqa: E402
from tinyc.frontend import load_model  # noqa: E402
from tinyc.interpreter import run as run_reference  # noqa: E402
from tinyc.ir.graph import Graph, Node  # noqa: E402
from tinyc.ir.ops import get_op  # noqa: E402
from tinyc.ir.tensor import Tensor  # noqa: E402
from tinyc.ir.verify import verify  # noqa: E402
from tinyc.manifest import total_macs  # noqa: E402
from tinyc.modelio import random_inputs, to_external  # noqa: E402

TARGET = 0.6
CASES_PER_MODEL = 2


def same_pads(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TensorFlow's SAME padding (before, after) of one axis."""
    eff = (k - 1) * d + 1
    out = -(-size // s)
    total = max((out - 1) * s + eff - size, 0)
    return total // 2, total - total // 2


class FloatBuilder:
    """Float32 NHWC graphs with He-initialized random weights (seeded)."""

    def __init__(self, name: str, seed: int):
        self.g = Graph(name=name, source_format="bench")
        self.rng = np.random.default_rng(seed)
        self.n = 0

    def _tensor(self, shape, data=None) -> str:
        name = f"t{len(self.g.tensors)}"
        self.g.add_tensor(Tensor(name, tuple(shape), "float32", data))
        return name

    def _node(self, op: str, inputs: list[str], **attrs) -> str:
        out = self._tensor((1,))
        node = Node(op, f"{op.lower()}_{self.n}", inputs, [out], attrs)
        self.n += 1
        self.g.nodes.append(node)
        shape, _ = get_op(op).infer(node, self.g)[0]
        self.g.tensors[out].shape = tuple(shape)
        return out

    def shape(self, t: str) -> tuple[int, ...]:
        return self.g.tensors[t].shape

    def input(self, shape) -> str:
        return self._tensor(shape)

    def _weights(self, shape, fan_in: int) -> str:
        w = self.rng.normal(0, np.sqrt(2.0 / fan_in), size=shape).astype(np.float32)
        return self._tensor(shape, w)

    def _bias(self, n: int) -> str:
        return self._tensor((n,), self.rng.normal(0, 0.1, size=n).astype(np.float32))

    def _window(self, x: str, k, stride, dil, pad: str | tuple) -> dict:
        if pad == "same":
            _, h, w, _ = self.shape(x)
            pads = (*same_pads(h, k[0], stride[0], dil[0]), *same_pads(w, k[1], stride[1], dil[1]))
        elif pad == "valid":
            pads = (0, 0, 0, 0)
        else:
            pads = tuple(pad)
        return dict(stride=tuple(stride), dilation=tuple(dil), pads=pads)

    def dw(self, x, k, mult=1, stride=(1, 1), dil=(1, 1), pad="same", act="RELU") -> str:
        c = self.shape(x)[3]
        w = self._weights((1, k[0], k[1], c * mult), k[0] * k[1])
        attrs = self._window(x, k, stride, dil, pad)
        return self._node("DEPTHWISE_CONV_2D", [x, w, self._bias(c * mult)], activation=act,
                          depth_multiplier=mult, **attrs)  # fmt: skip

    def conv(self, x, oc, k, stride=(1, 1), dil=(1, 1), pad="same", act="RELU") -> str:
        c = self.shape(x)[3]
        w = self._weights((oc, k[0], k[1], c), k[0] * k[1] * c)
        attrs = self._window(x, k, stride, dil, pad)
        return self._node("CONV_2D", [x, w, self._bias(oc)], activation=act, **attrs)

    def pool(self, op, x, k, stride=None, pad="valid") -> str:
        stride = stride or k
        attrs = self._window(x, k, stride, (1, 1), pad)
        return self._node(op, [x], filter=tuple(k), stride=attrs["stride"], pads=attrs["pads"])

    def global_pool(self, x) -> str:
        _, h, w, c = self.shape(x)
        y = self.pool("AVERAGE_POOL_2D", x, (h, w))
        return self._node("RESHAPE", [y], shape=(1, c))

    def fc(self, x, n, act="NONE") -> str:
        k = self.shape(x)[-1]
        w = self._weights((n, k), k)
        return self._node("FULLY_CONNECTED", [x, w, self._bias(n)], activation=act)

    def softmax(self, x) -> str:
        return self._node("SOFTMAX", [x], beta=1.0)

    def finish(self, x: str, y: str) -> Graph:
        self.g.inputs, self.g.outputs = [x], [y]
        verify(self.g)
        return self.g


def layer(name: str, shape, make: Callable[[FloatBuilder, str], str], seed: int) -> Graph:
    b = FloatBuilder(name, seed)
    x = b.input(shape)
    return b.finish(x, make(b, x))


V = "valid"


def layers() -> list[Graph]:
    """Single layers: one-channel inputs with depth multipliers, 1xN / Nx1 kernels, stride 2
    over odd sizes, dilation, odd channel counts."""
    return [
        # one input channel, depth multiplier > 1 (first layers of audio and IMU models)
        layer("dw_1ch_m8_3x3", (1, 32, 32, 1), lambda b, x: b.dw(x, (3, 3), 8), 1),
        layer("dw_1ch_m8_10x4_s2", (1, 49, 10, 1), lambda b, x: b.dw(x, (10, 4), 8, (2, 2)), 2),
        layer("dw_1ch_m16_1x9_s2", (1, 1, 129, 1), lambda b, x: b.dw(x, (1, 9), 16, (1, 2)), 3),
        layer("dw_1ch_m4_9x1_s2", (1, 127, 1, 1), lambda b, x: b.dw(x, (9, 1), 4, (2, 1)), 4),
        layer("dw_1ch_m6_5x3_valid", (1, 64, 3, 1), lambda b, x: b.dw(x, (5, 3), 6, pad=V), 5),
        # several input channels, depth multiplier > 1
        layer("dw_3ch_m8_5x1", (1, 128, 1, 3), lambda b, x: b.dw(x, (5, 1), 8), 6),
        layer("dw_3ch_m2_3x3_s2_odd", (1, 15, 15, 3), lambda b, x: b.dw(x, (3, 3), 2, (2, 2)), 7),
        layer("dw_5ch_m3_3x3_d2", (1, 12, 11, 5), lambda b, x: b.dw(x, (3, 3), 3, dil=(2, 2)), 8),
        layer("dw_8ch_m4_3x3", (1, 16, 16, 8), lambda b, x: b.dw(x, (3, 3), 4), 9),
        # depth multiplier 1 of unusual geometry
        layer("dw_7ch_3x3_s2_odd", (1, 17, 13, 7), lambda b, x: b.dw(x, (3, 3), 1, (2, 2)), 10),
        layer("dw_12ch_1x7", (1, 9, 31, 12), lambda b, x: b.dw(x, (1, 7)), 11),
        layer("dw_16ch_9x1_d2", (1, 40, 5, 16), lambda b, x: b.dw(x, (9, 1), dil=(2, 1)), 12),
        # convolutions
        layer("conv_1x9", (1, 1, 64, 8), lambda b, x: b.conv(x, 16, (1, 9)), 13),
        layer("conv_7x1_s2_odd", (1, 63, 1, 6), lambda b, x: b.conv(x, 12, (7, 1), (2, 1)), 14),
        layer("conv_3x3_s2_odd", (1, 15, 15, 5), lambda b, x: b.conv(x, 7, (3, 3), (2, 2)), 15),
        layer("conv_3x3_d2", (1, 16, 16, 8), lambda b, x: b.conv(x, 8, (3, 3), dil=(2, 2)), 16),
        layer("conv_1ch_3x3", (1, 28, 28, 1), lambda b, x: b.conv(x, 8, (3, 3)), 17),
    ]


def imu_hwc() -> Graph:
    """IMU window of 128 samples x 3 axes as channels: depthwise x8, pointwise, pool, a
    second depthwise-separable block, global pool, classifier."""
    b = FloatBuilder("imu_128x1x3", 20)
    x = b.input((1, 128, 1, 3))
    y = b.dw(x, (5, 1), 8)
    y = b.conv(y, 32, (1, 1))
    y = b.pool("MAX_POOL_2D", y, (2, 1))
    y = b.dw(y, (5, 1))
    y = b.conv(y, 32, (1, 1))
    y = b.softmax(b.fc(b.global_pool(y), 6))
    return b.finish(x, y)


def imu_1ch() -> Graph:
    """IMU window as a one-channel 128x3 image: a depthwise 5x3 over all axes (x8)."""
    b = FloatBuilder("imu_128x3x1", 21)
    x = b.input((1, 128, 3, 1))
    y = b.dw(x, (5, 3), 8, pad=(2, 2, 0, 0))
    y = b.conv(y, 24, (1, 1))
    y = b.pool("MAX_POOL_2D", y, (4, 1))
    y = b.conv(y, 32, (3, 1))
    y = b.softmax(b.fc(b.global_pool(y), 6))
    return b.finish(x, y)


def audio() -> Graph:
    """A 49x40 one-channel spectrogram: depthwise 10x4 stride 2 (x8), pointwise, a
    depthwise-separable block, global pool, 12 classes."""
    b = FloatBuilder("audio_49x40x1", 22)
    x = b.input((1, 49, 40, 1))
    y = b.dw(x, (10, 4), 8, (2, 2))
    y = b.conv(y, 32, (1, 1))
    y = b.dw(y, (3, 3))
    y = b.conv(y, 32, (1, 1))
    y = b.softmax(b.fc(b.global_pool(y), 12))
    return b.finish(x, y)


def models() -> list[Graph]:
    return [imu_hwc(), imu_1ch(), audio()]


def quantized(g: Graph, seed: int = 0) -> Graph:
    from tinyc.passes.quantize import QuantOptions, quantize

    rng = np.random.default_rng(seed)
    shape = g.tensors[g.inputs[0]].shape
    samples = [[rng.normal(0, 1, size=shape).astype(np.float32)] for _ in range(24)]
    q, _ = quantize(g, samples, QuantOptions())
    q.name = g.name
    return q


# -- measuring -------------------------------------------------------------------------------


def tflm_env() -> dict[str, str] | None:
    from tflm_build import third_party_vars

    tflm = os.environ.get("TFLM_DIR") or str(Path.home() / ".cache/tinyc-deps/tflite-micro")
    if not Path(tflm, "tensorflow/lite/micro/micro_interpreter.h").exists():
        return None
    third = third_party_vars(tflm)
    return None if third is None else {"TFLM_DIR": tflm, **third}


def _check(g: Graph, outputs: list[bytes], want: dict[str, np.ndarray]) -> bool:
    ok = True
    for name, raw in zip(g.outputs, outputs, strict=True):
        ref = to_external(g, name, want[name])
        got = np.frombuffer(raw, dtype=ref.dtype)
        ok &= got.size == ref.size and bool(np.array_equal(got.reshape(ref.shape), ref))
    return ok


def run_firmware(elf: Path, board: str, g: Graph) -> tuple[int, bool]:
    """Instructions of the first case and whether every case was bit-exact."""
    from tinyc.emulate.qemu import run_emulated

    count, exact = 0, True
    for seed in range(CASES_PER_MODEL):
        xs = random_inputs(g, seed)
        ext = [to_external(g, n, x) for n, x in zip(g.inputs, xs, strict=True)]
        res = run_emulated(elf, board, ext, count_instructions=seed == 0)
        exact &= _check(g, res.outputs, run_reference(g, xs))
        count = count or int(res.instructions or 0)
    return count, exact


def measure_tinyc(path: Path, board: str, work: Path) -> tuple[int, bool]:
    from tinyc.emulate.build import build_firmware

    project = work / "tinyc"
    compile_model(str(path), CompileOptions(board=board), project, log=lambda m: None)
    elf = build_firmware(project, "emu", build_dir=work / "tinyc-build")
    return run_firmware(elf, board, load_model(str(path)))


def measure_tflm(path: Path, board: str, work: Path, env: dict[str, str]) -> tuple[int, bool]:
    from tflm_build import tflm_library

    from tinyc.emulate.build import build_firmware

    project = work / "tflm"
    compile_model(str(path), CompileOptions(board=board, backend="tflm"), project,
                  log=lambda m: None)  # fmt: skip
    lib = tflm_library(project, load_board(board), env, log=lambda m: print(m, flush=True))
    elf = build_firmware(project, "emu", build_dir=work / "tflm-build",
                         make_vars={**env, "TFLM_LIB": lib})  # fmt: skip
    return run_firmware(elf, board, load_model(str(path)))


def estimated(path: Path, board: str, backend: str) -> float | None:
    from tinyc.estimate import estimate_model

    try:
        return float(estimate_model(str(path), board, backend).instructions)
    except Exception as e:  # noqa: BLE001 - the table reports what the estimate cannot do
        print(f"  estimate ({backend}) of {path.stem} failed: {e}", file=sys.stderr)
        return None


class TflmCache:
    """TFLM's figures by .tflite digest and board (TFLM does not change between runs)."""

    def __init__(self, path: Path | None):
        self.path = path
        self.data = json.loads(path.read_text()) if path and path.exists() else {}

    def get(self, key: str) -> tuple[int, bool] | None:
        v = self.data.get(key)
        return (v[0], v[1]) if v else None

    def put(self, key: str, value: tuple[int, bool]) -> None:
        self.data[key] = list(value)
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.data, indent=1, sort_keys=True))


def pct(est: float | None, meas: int | None) -> str:
    return f"{100 * (est - meas) / meas:+.0f} %" if est and meas else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--board", default="nucleo-f746")
    ap.add_argument("--only", help="comma-separated name prefixes")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--no-tflm", action="store_true")
    ap.add_argument("--no-estimate", action="store_true")
    ap.add_argument("--tflm-cache", type=Path,
                    default=Path.home() / ".cache/tinyc-tests/geometry-tflm.json")  # fmt: skip
    ap.add_argument("--keep", type=Path, help="keep the .tflite files and projects here")
    args = ap.parse_args()
    env = None if args.no_tflm else tflm_env()
    if not args.no_tflm and env is None:
        print("TFLM not found (TFLM_DIR and its third-party code): TFLM columns left empty",
              file=sys.stderr)  # fmt: skip
    cache = TflmCache(args.tflm_cache)
    graphs = layers() + models()
    if args.only:
        prefixes = args.only.split(",")
        graphs = [g for g in graphs if any(g.name.startswith(p) for p in prefixes)]
    header = (f"{'layer / model':<24} {'MACs':>9} {'tinyc':>10} {'TFLM':>10} {'ratio':>6} "
              f"{'est tinyc':>9} {'est TFLM':>9} exact")  # fmt: skip
    print(header)
    print("-" * len(header))
    rows, worst = [], 0.0
    for g in graphs:
        q = quantized(g)
        data = write_tflite(q)
        key = f"{args.board}:{hashlib.sha256(data).hexdigest()[:16]}"
        with tempfile.TemporaryDirectory(prefix="tinyc-geometry-") as d:
            work = args.keep / q.name if args.keep else Path(d)
            work.mkdir(parents=True, exist_ok=True)
            path = work / f"{q.name}.tflite"
            path.write_bytes(data)
            mine, exact = measure_tinyc(path, args.board, work)
            peer = cache.get(key)
            if peer is None and env is not None:
                peer = measure_tflm(path, args.board, work, env)
                cache.put(key, peer)
            est_c = None if args.no_estimate else estimated(path, args.board, "cmsis")
            est_t = None if args.no_estimate else estimated(path, args.board, "tflm")
        theirs, theirs_exact = peer if peer else (None, True)
        ratio = mine / theirs if theirs else None
        worst = max(worst, ratio or 0.0)
        macs = total_macs(q)
        row = {"name": q.name, "macs": macs, "tinyc": mine, "tflm": theirs, "ratio": ratio,
               "bit_exact": exact, "tflm_bit_exact": theirs_exact, "estimate_tinyc": est_c,
               "estimate_tflm": est_t}  # fmt: skip
        rows.append(row)
        print(f"{q.name:<24} {macs:>9,} {mine:>10,} {theirs or 0:>10,} "
              f"{f'{ratio:.2f}' if ratio else '-':>6} {pct(est_c, mine):>9} "
              f"{pct(est_t, theirs):>9} {'yes' if exact and theirs_exact else 'NO'}",
              flush=True)  # fmt: skip
    print(f"worst ratio {worst:.2f} (target <= {TARGET})")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

"""Derive the 256-entry sigmoid table of TFLite Micro's int16 LOGISTIC / TANH kernels by
measuring them, and write ``tinyc/data/tflm_sigmoid_q16.txt``.

TFLM's int16 sigmoid and tanh (which its integer LSTM uses for every gate) interpolate
a table of sigmoid(k / 24) in unsigned Q0.16 whose entries are not a closed formula of k
(they differ from every rounding of 65536 * sigmoid(k / 24) by up to 2). Bit-exactness
needs the very entries, so tinyc measures them: an int16 TANH model whose input scale
makes the kernel's table index land on entry k exactly (input 128 k with a multiplier of
2, no fraction) returns ``table[k] - 32768``; one input between entries 254 and 255
recovers the last entry from the interpolation. ``python -m tinyc.tools.sigmoid_table``
rewrites the data file; tests/test_recurrent.py checks the file against TFLM.
"""

from __future__ import annotations

from pathlib import Path

import flatbuffers
import numpy as np

from tinyc.tflite_schema import builtin_codes, schema

DATA_FILE = Path(__file__).resolve().parents[1] / "data" / "tflm_sigmoid_q16.txt"
ENTRIES = 256


def _tanh_int16_model(n: int, input_scale: float) -> bytes:
    s = schema()
    m = s.ModelT()
    m.version = 3
    oc = s.OperatorCodeT()
    oc.builtinCode = oc.deprecatedBuiltinCode = builtin_codes()["TANH"]
    oc.version = 1
    m.operatorCodes = [oc]
    m.buffers = [s.BufferT(), s.BufferT(), s.BufferT()]
    sg = s.SubGraphT()
    sg.tensors = []
    for i, scale in enumerate((input_scale, 2.0**-15)):
        t = s.TensorT()
        t.shape, t.type, t.buffer, t.name = [n], 7, i + 1, f"t{i}"  # type 7: int16
        q = s.QuantizationParametersT()
        q.scale, q.zeroPoint = [scale], [0]
        t.quantization = q
        sg.tensors.append(t)
    sg.inputs, sg.outputs = [0], [1]
    op = s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0], [1]
    sg.operators = [op]
    m.subgraphs = [sg]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def measure_table() -> np.ndarray:
    """The table as TFLM's int16 TANH kernel uses it (needs the tflite-micro package)."""
    from tflite_micro import runtime as tflm

    # The kernel rescales the input by multiplier 16384 >> 13 = 2 when the scale is just
    # above 2 / (3 * 4096): index = (2x) >> 8, fraction = (2x) & 255.
    scale = np.nextafter(np.float32(2.0 / 12288.0), np.float32(1.0))
    x = np.array([128 * k for k in range(ENTRIES - 1)] + [128 * 254 + 127], np.int16)
    it = tflm.Interpreter.from_bytes(_tanh_int16_model(x.size, float(scale)), arena_size=1 << 16)
    it.set_input(x, 0)
    it.invoke()
    y = it.get_output(0).astype(np.int64)
    table = y[: ENTRIES - 1] + 32768
    # at fraction 255 between entries 254 and 255 the output is table[254] - 32768 + d
    # where d = table[255] - table[254] (d is 0 or 1 this far out)
    last = table[-1] + (y[-1] - (table[-1] - 32768))
    return np.concatenate([table, [last]]).astype(np.int64)


def main() -> None:
    table = measure_table()
    lines = [
        "# sigmoid(k / 24) in unsigned Q0.16 as TFLite Micro's int16 LOGISTIC/TANH use it,",
        "# measured from the tflite-micro package by python -m tinyc.tools.sigmoid_table",
    ]
    lines += [" ".join(str(v) for v in table[i : i + 16]) for i in range(0, ENTRIES, 16)]
    DATA_FILE.write_text("\n".join(lines) + "\n")
    print(f"wrote {DATA_FILE} ({ENTRIES} entries)")


if __name__ == "__main__":
    main()

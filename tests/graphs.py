"""Small quantized graphs built directly in the IR, one op each, with seeded random data.

They reach configurations the shared models do not (dilation, depth multipliers, odd
channel counts, broadcasting, ...); each is checked C against the reference interpreter.
"""

from __future__ import annotations

import numpy as np

from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import get_op
from tinyc.ir.tensor import QuantParams, Tensor
from tinyc.ir.verify import verify


class Builder:
    def __init__(self, name: str, seed: int):
        self.g = Graph(name=name, source_format="test")
        self.rng = np.random.default_rng(seed)

    def act(self, name: str, shape, scale: float | None = None, zp: int | None = None) -> str:
        scale = scale if scale is not None else float(self.rng.uniform(0.01, 0.1))
        zp = zp if zp is not None else int(self.rng.integers(-20, 20))
        self.g.add_tensor(Tensor(name, tuple(shape), "int8", None, QuantParams([scale], [zp])))
        return name

    def weights(self, name: str, shape, axis: int | None) -> str:
        data = self.rng.integers(-127, 128, size=shape).astype(np.int8)
        n = shape[axis] if axis is not None else 1
        scales = self.rng.uniform(0.002, 0.02, size=n).astype(np.float32)
        q = QuantParams(scales, np.zeros(n, np.int64), axis)
        self.g.add_tensor(Tensor(name, tuple(shape), "int8", data, q))
        return name

    def bias(self, name: str, n: int) -> str:
        data = self.rng.integers(-3000, 3000, size=n).astype(np.int32)
        self.g.add_tensor(Tensor(name, (n,), "int32", data, None))
        return name

    def const_int8(self, name: str, shape) -> str:
        data = self.rng.integers(-128, 128, size=shape).astype(np.int8)
        q = QuantParams([float(self.rng.uniform(0.01, 0.1))], [int(self.rng.integers(-10, 10))])
        self.g.add_tensor(Tensor(name, tuple(shape), "int8", data, q))
        return name

    def node(self, op: str, inputs: list[str], outputs: list[str], **attrs) -> None:
        self.g.nodes.append(Node(op, f"{op.lower()}_{len(self.g.nodes)}", inputs, outputs, attrs))

    def finish(self, inputs: list[str], outputs: list[str]) -> Graph:
        self.g.inputs, self.g.outputs = inputs, outputs
        # output shapes: from the op definitions
        for n in self.g.nodes:
            for name, (shape, _) in zip(n.outputs, get_op(n.op).infer(n, self.g), strict=True):
                self.g.tensors[name].shape = shape
        verify(self.g)
        return self.g


def conv(
    seed, h, w, c, oc, k, stride, dil, pads, act="NONE", op="CONV_2D", mult=1, groups=1, batch=1
) -> Graph:
    b = Builder(f"{op.lower()}_{seed}", seed)
    x = b.act("x", (batch, h, w, c))
    if op == "CONV_2D":
        wt = b.weights("w", (oc, k[0], k[1], c // groups), 0)
        n_out = oc
    else:
        n_out = c * mult
        wt = b.weights("w", (1, k[0], k[1], n_out), 3)
    bias = b.bias("b", n_out)
    b.act("y", (1, 1, 1, n_out))
    attrs = dict(stride=stride, dilation=dil, pads=pads, activation=act)
    if op == "DEPTHWISE_CONV_2D":
        attrs["depth_multiplier"] = mult
    b.node(op, [x, wt, bias], ["y"], **attrs)
    return b.finish([x], ["y"])


def conv_then_depthwise(seed, h, w, c, mid, k1, s1, p1, k2, s2, d2, p2) -> Graph:
    """CONV_2D feeding a DEPTHWISE_CONV_2D: the C backend may fuse the pair (the conv's
    output then only ever exists as the depthwise kernel's ring of rows)."""
    b = Builder(f"conv_dw_{seed}", seed)
    x = b.act("x", (1, h, w, c))
    w1 = b.weights("w1", (mid, k1[0], k1[1], c), 0)
    b1 = b.bias("b1", mid)
    b.act("m", (1, 1, 1, mid))
    b.node("CONV_2D", [x, w1, b1], ["m"], stride=s1, dilation=(1, 1), pads=p1, activation="RELU")
    w2 = b.weights("w2", (1, k2[0], k2[1], mid), 3)
    b2 = b.bias("b2", mid)
    b.act("y", (1, 1, 1, mid))
    b.node(
        "DEPTHWISE_CONV_2D",
        ["m", w2, b2],
        ["y"],
        stride=s2,
        dilation=d2,
        pads=p2,
        activation="RELU6",
        depth_multiplier=1,
    )
    return b.finish([x], ["y"])


def residual(seed, h, w, c, mid, stride, skip_conv: bool) -> Graph:
    """conv 3x3 (stride) -> conv 3x3 -> ADD with the block input (or, with skip_conv, with
    a 1x1 strided convolution of it): a residual block whose two convolutions fuse."""
    b = Builder(f"residual_{seed}", seed)
    x = b.act("x", (1, h, w, c))

    def conv2d(name, src, cin, cout, k, s, pad, act):
        wt, bias = b.weights(f"w_{name}", (cout, k, k, cin), 0), b.bias(f"b_{name}", cout)
        b.act(name, (1, 1, 1, cout))
        b.node("CONV_2D", [src, wt, bias], [name], stride=(s, s), dilation=(1, 1),
               pads=(pad, pad, pad, pad), activation=act)  # fmt: skip
        return name

    a = conv2d("a", x, c, mid, 3, stride, 1, "RELU")
    y = conv2d("y", a, mid, mid if skip_conv else c, 3, 1, 1, "NONE")
    skip = conv2d("s", x, c, mid, 1, stride, 0, "NONE") if skip_conv else x
    b.act("out", (1,))
    b.node("ADD", [skip, y], ["out"], activation="RELU")
    return b.finish([x], ["out"])


def conv_chain(seed, h, w, c, mid, oc) -> Graph:
    """conv 3x3 -> conv 5x3 (no residual): the middle tensor is the largest."""
    b = Builder(f"chain_{seed}", seed)
    x = b.act("x", (1, h, w, c))
    w1, b1 = b.weights("w1", (mid, 3, 3, c), 0), b.bias("b1", mid)
    b.act("m", (1, 1, 1, mid))
    b.node("CONV_2D", [x, w1, b1], ["m"], stride=(1, 1), dilation=(1, 1), pads=(1, 1, 1, 1),
           activation="RELU6")  # fmt: skip
    w2, b2 = b.weights("w2", (oc, 5, 3, mid), 0), b.bias("b2", oc)
    b.act("y", (1, 1, 1, oc))
    b.node("CONV_2D", ["m", w2, b2], ["y"], stride=(2, 1), dilation=(1, 1), pads=(2, 1, 1, 1),
           activation="NONE")  # fmt: skip
    return b.finish([x], ["y"])


def fused_cases() -> list[Graph]:
    """Graphs whose layers fuse (see tinyc.backends.cmsis.fusion)."""
    return [
        residual(60, 9, 10, 8, 8, 1, False),
        residual(61, 11, 8, 4, 12, 2, True),
        residual(62, 7, 5, 12, 12, 1, False),
        conv_chain(63, 13, 7, 3, 24, 8),
        conv_then_depthwise(
            64, 12, 7, 1, 12, (4, 3), (1, 1), (1, 2, 1, 1), (3, 3), (2, 2), (1, 1), (1, 1, 1, 1)
        ),
    ]


def depthwise_chain(seed, h, w, c, m1, m2) -> Graph:
    """Two depthwise layers with multipliers: the second one's output may overlap the input
    it consumes (tinyc_dwm_s8 gathers each block of pixels before writing it)."""
    b = Builder(f"dw_chain_{seed}", seed)
    x = b.act("x", (1, h, w, c))
    mid, out = c * m1, c * m1 * m2
    w1, b1 = b.weights("w1", (1, 3, 3, mid), 3), b.bias("b1", mid)
    b.act("m", (1, 1, 1, mid))
    b.node(DW, [x, w1, b1], ["m"], stride=(1, 1), dilation=(1, 1), pads=(1, 1, 1, 1),
           activation="RELU", depth_multiplier=m1)  # fmt: skip
    w2, b2 = b.weights("w2", (1, 3, 3, out), 3), b.bias("b2", out)
    b.act("y", (1, 1, 1, out))
    b.node(DW, ["m", w2, b2], ["y"], stride=(1, 1), dilation=(1, 1), pads=(1, 1, 1, 1),
           activation="NONE", depth_multiplier=m2)  # fmt: skip
    return b.finish([x], ["y"])


def depthwise_multiplier_cases() -> list[Graph]:
    """DEPTHWISE_CONV_2D with depth multipliers above 1 (tinyc_dwm_s8): one input channel
    (the first layer of audio and IMU models) and several, odd sizes, 1xN / Nx1 kernels,
    strides, dilations, channels in chunks, mixed left and right shifts, two images."""
    g = [
        conv(70, 9, 7, 1, 0, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), "RELU", DW, mult=8),
        conv(71, 11, 9, 1, 0, (5, 3), (2, 2), (1, 1), (2, 2, 1, 1), "RELU6", DW, mult=3),
        conv(72, 1, 23, 1, 0, (1, 7), (1, 2), (1, 2), (0, 0, 6, 5), op=DW, mult=5),
        conv(73, 13, 2, 3, 0, (7, 1), (2, 1), (1, 1), (3, 3, 0, 0), op=DW, mult=2),
        conv(74, 8, 9, 5, 0, (3, 3), (1, 1), (2, 2), (2, 2, 2, 2), "RELU", DW, mult=4),
        conv(75, 6, 5, 40, 0, (5, 5), (1, 1), (1, 1), (2, 2, 2, 2), op=DW, mult=2),
        conv(77, 7, 1, 2, 0, (4, 1), (1, 1), (1, 1), (2, 1, 0, 0), op=DW, mult=6, batch=2),
        conv(78, 12, 10, 1, 0, (10, 4), (2, 2), (1, 1), (4, 5, 1, 2), "RELU", DW, mult=7),
    ]
    mixed = conv(76, 5, 6, 3, 0, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), op=DW, mult=3)
    w = mixed.tensors["w"]
    assert w.quant is not None
    w.quant.scale[::4] = 4.0  # left shifts for some channels: records keep signed shifts
    g.append(mixed)
    g.append(depthwise_chain(79, 12, 10, 3, 4, 2))
    return g


def fully_connected(seed, rows, k, oc, act="NONE", per_channel=True) -> Graph:
    b = Builder(f"fc_{seed}", seed)
    x = b.act("x", (rows, k))
    wt = b.weights("w", (oc, k), 0 if per_channel else None)
    bias = b.bias("b", oc)
    b.act("y", (rows, oc))
    b.node("FULLY_CONNECTED", [x, wt, bias], ["y"], activation=act)
    return b.finish([x], ["y"])


def mlp(seed, sizes: list[int]) -> Graph:
    """Fully connected layers in a chain: each one's input dies at it (in-place widening)."""
    b = Builder(f"mlp_{seed}", seed)
    x = prev = b.act("x", (1, sizes[0]))
    for i, (k, oc) in enumerate(zip(sizes, sizes[1:], strict=False)):
        out = b.act(f"h{i}", (1, oc))
        wt, bias = b.weights(f"w{i}", (oc, k), 0), b.bias(f"b{i}", oc)
        b.node("FULLY_CONNECTED", [prev, wt, bias], [out], activation="RELU")
        prev = out
    return b.finish([x], [prev])


def pool(seed, op, h, w, c, k, stride, pads, act="NONE") -> Graph:
    b = Builder(f"{op.lower()}_{seed}", seed)
    x = b.act("x", (1, h, w, c))
    q = b.g.tensors[x].quant
    b.g.add_tensor(Tensor("y", (1, 1, 1, c), "int8", None, QuantParams(q.scale, q.zero_point)))
    b.node(op, [x], ["y"], filter=k, stride=stride, pads=pads, activation=act)
    return b.finish([x], ["y"])


def binary(seed, op, shape_a, shape_b, act="NONE", const_b=False) -> Graph:
    b = Builder(f"{op.lower()}_{seed}", seed)
    x = b.act("a", shape_a)
    y = b.const_int8("b", shape_b) if const_b else b.act("b", shape_b)
    b.act("y", (1,))
    b.node(op, [x, y], ["y"], activation=act)
    return b.finish([x] if const_b else [x, y], ["y"])


def unary(seed, op, shape, **attrs) -> Graph:
    b = Builder(f"{op.lower()}_{seed}", seed)
    x = b.act("x", shape)
    fixed = get_op(op).output_quant
    if isinstance(fixed, tuple):
        b.act("y", shape, fixed[0], fixed[1])
    elif fixed == "same_as_input":
        q = b.g.tensors[x].quant
        b.g.add_tensor(Tensor("y", shape, "int8", None, QuantParams(q.scale, q.zero_point)))
    else:
        b.act("y", shape)
    b.node(op, [x], ["y"], **attrs)
    return b.finish([x], ["y"])


def data_movement(seed, op, shapes, n_out=1, **attrs) -> Graph:
    """CONCATENATION / PACK (several inputs) or SPLIT / SPLIT_V / UNPACK / PAD / TRANSPOSE /
    RESHAPE; every tensor shares one quantization, as TFLM requires."""
    b = Builder(f"{op.lower()}_{seed}", seed)
    scale, zp = 0.05, 3
    ins = [b.act(f"x{i}", s, scale, zp) for i, s in enumerate(shapes)]
    outs = [b.act(f"y{i}", (1,), scale, zp) for i in range(n_out)]
    b.node(op, ins, outs, **attrs)
    return b.finish(ins, outs)


def mean(seed, shape, axes, keep_dims) -> Graph:
    b = Builder(f"mean_{seed}", seed)
    x = b.act("x", shape)
    b.act("y", (1,))
    b.node("MEAN", [x], ["y"], axes=axes, keep_dims=keep_dims)
    return b.finish([x], ["y"])


def requantize(seed, shape) -> Graph:
    b = Builder(f"quantize_{seed}", seed)
    x = b.act("x", shape)
    b.act("y", shape)
    b.node("QUANTIZE", [x], ["y"])
    return b.finish([x], ["y"])


def float_boundary(seed, shape) -> Graph:
    """float input -> QUANTIZE -> LOGISTIC -> DEQUANTIZE -> float output."""
    b = Builder(f"boundary_{seed}", seed)
    b.g.add_tensor(Tensor("x", tuple(shape), "float32"))
    b.act("q", shape)
    b.act("s", shape, 1.0 / 256, -128)
    b.g.add_tensor(Tensor("y", tuple(shape), "float32"))
    b.node("QUANTIZE", ["x"], ["q"])
    b.node("LOGISTIC", ["q"], ["s"])
    b.node("DEQUANTIZE", ["s"], ["y"])
    return b.finish(["x"], ["y"])


DW = "DEPTHWISE_CONV_2D"


def all_cases() -> list[Graph]:
    """One graph per configuration worth checking in C."""
    g: list[Graph] = []
    # convolutions: 1x1 direct, padded, strided, dilated, odd channels, 1 channel input
    g.append(conv(1, 6, 5, 8, 6, (1, 1), (1, 1), (1, 1), (0, 0, 0, 0)))
    g.append(conv(2, 7, 7, 3, 5, (3, 3), (2, 2), (1, 1), (1, 1, 1, 1), "RELU"))
    g.append(conv(3, 9, 8, 4, 7, (3, 3), (1, 1), (2, 2), (2, 2, 2, 2), "RELU6"))
    g.append(conv(4, 10, 4, 1, 9, (4, 3), (2, 1), (1, 1), (1, 2, 1, 1)))
    g.append(conv(5, 5, 6, 12, 3, (1, 1), (2, 2), (1, 1), (0, 0, 0, 0), "RELU_N1_TO_1"))
    g.append(conv(6, 4, 4, 6, 4, (1, 1), (1, 1), (1, 1), (1, 0, 0, 1)))
    # grouped convolutions
    g.append(conv(40, 6, 6, 8, 12, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), "RELU", groups=4))
    g.append(conv(41, 5, 4, 16, 6, (1, 1), (1, 1), (1, 1), (0, 0, 0, 0), groups=2))
    # depthwise: channel multiple of 4 and not, stride 2, dilation, multiplier 2
    g.append(conv(7, 7, 6, 8, 0, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), "RELU", "DEPTHWISE_CONV_2D"))
    g.append(conv(8, 9, 9, 6, 0, (3, 3), (2, 2), (1, 1), (0, 1, 0, 1), op="DEPTHWISE_CONV_2D"))
    g.append(conv(9, 8, 8, 4, 0, (3, 3), (1, 1), (2, 2), (2, 2, 2, 2), op="DEPTHWISE_CONV_2D"))
    g.append(
        conv(10, 5, 5, 3, 0, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), op="DEPTHWISE_CONV_2D", mult=2)
    )
    g.append(
        conv(11, 6, 5, 4, 0, (5, 2), (1, 2), (1, 1), (2, 2, 0, 1), "RELU6", "DEPTHWISE_CONV_2D")
    )
    g += depthwise_multiplier_cases()
    # depthwise rows of 10 and 9 pixels (last blocks of six and five), kernels 5 and 6 high
    g.append(conv(45, 6, 10, 12, 0, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), "RELU6", DW))
    g.append(conv(46, 7, 9, 16, 0, (5, 5), (1, 1), (1, 1), (2, 2, 2, 2), op=DW))
    g.append(conv(47, 9, 5, 8, 0, (6, 3), (2, 1), (1, 1), (2, 1, 3, 1), "RELU", DW))
    # a convolution feeding a depthwise convolution (fusable)
    g.append(
        conv_then_depthwise(
            42, 12, 7, 1, 12, (4, 3), (1, 1), (1, 2, 1, 1), (3, 3), (2, 2), (1, 1), (1, 1, 1, 1)
        )
    )
    g.append(
        conv_then_depthwise(
            43, 9, 9, 4, 24, (1, 1), (1, 1), (0, 0, 0, 0), (5, 5), (2, 2), (2, 2), (4, 4, 4, 4)
        )
    )
    # fully connected: one row, several rows, odd sizes, per-tensor weights
    g.append(fully_connected(12, 1, 20, 7))
    g.append(fully_connected(13, 5, 13, 6, "RELU"))
    g.append(fully_connected(14, 2, 8, 3, per_channel=False))
    g.append(mlp(44, [96, 24, 40, 10]))
    g.append(fully_connected(50, 1, 36, 9, "RELU6"))
    g.append(fully_connected(51, 1, 68, 6, "RELU_N1_TO_1", per_channel=False))
    g.append(fully_connected(52, 1, 40, 2, per_channel=False))
    # pooling
    g.append(pool(15, "AVERAGE_POOL_2D", 7, 6, 5, (3, 3), (2, 2), (1, 1, 1, 1)))
    g.append(pool(16, "MAX_POOL_2D", 8, 8, 4, (2, 2), (2, 2), (0, 0, 0, 0), "RELU"))
    g.append(pool(17, "AVERAGE_POOL_2D", 5, 5, 8, (5, 5), (1, 1), (0, 0, 0, 0)))
    g.append(pool(48, "MAX_POOL_2D", 6, 7, 20, (3, 2), (2, 2), (1, 0, 1, 1), "RELU6"))
    g.append(pool(49, "AVERAGE_POOL_2D", 17, 17, 12, (17, 17), (1, 1), (0, 0, 0, 0), "RELU"))
    # elementwise with broadcasting
    g.append(binary(18, "ADD", (1, 4, 5, 6), (1, 4, 5, 6), "RELU"))
    g.append(binary(19, "SUB", (1, 4, 5, 6), (1, 1, 1, 6)))
    g.append(binary(20, "MUL", (2, 3, 4), (3, 1)))
    g.append(binary(21, "ADD", (1, 3, 8), (1, 3, 8), const_b=True))
    # activations and requantization
    g.append(unary(22, "SOFTMAX", (3, 10), beta=1.0))
    g.append(unary(23, "LOGISTIC", (2, 40)))
    g.append(unary(24, "TANH", (2, 40)))
    g.append(unary(25, "RELU", (1, 30)))
    g.append(unary(26, "RELU6", (1, 30)))
    g.append(requantize(27, (4, 9)))
    g.append(float_boundary(28, (3, 7)))
    # reductions and data movement
    g.append(mean(29, (1, 5, 6, 8), (1, 2), True))
    g.append(mean(30, (2, 7, 3), (1,), False))
    g.append(data_movement(31, "CONCATENATION", [(1, 3, 4), (1, 3, 2), (1, 3, 5)], axis=2))
    g.append(data_movement(32, "CONCATENATION", [(2, 3), (1, 3)], axis=0))
    g.append(data_movement(33, "SPLIT", [(2, 6, 3)], 3, axis=1, num_splits=3))
    g.append(data_movement(34, "SPLIT_V", [(2, 7)], 2, axis=1, size_splits=(3, -1)))
    g.append(data_movement(35, "PACK", [(2, 3), (2, 3)], axis=1))
    g.append(data_movement(36, "UNPACK", [(2, 3, 4)], 3, axis=1))
    g.append(
        data_movement(
            37, "PAD", [(1, 3, 4, 2)], paddings=((0, 0), (1, 2), (0, 1), (0, 0)), value=None
        )
    )
    g.append(data_movement(38, "TRANSPOSE", [(2, 3, 4)], perm=(2, 0, 1)))
    g.append(data_movement(39, "RESHAPE", [(2, 3, 4)], shape=(6, 4)))
    return g

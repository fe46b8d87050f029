"""CMSIS-NN emitters (``--kernels cmsis-nn``): the same straight-line model.c, with the int8
layers CMSIS-NN has kernels for calling CMSIS-NN's s8 functions.

What each layer hands CMSIS-NN comes from the op definitions (``requant()``, ``arith()``,
``softmax_params()``): TFLite's weight layouts (OHWI, 1HWC, [out][in]), per-channel
multipliers and shifts, ``input_offset = -input_zero_point``, the fused activation as the
clamp. CMSIS-NN's s8 kernels are bit-exact with TFLM's reference kernels, which tinyc's
interpreter matches.

Scratch ("ctx") buffers are planned into the arena at the size CMSIS-NN's get-buffer-size
functions give for the board's variant and for the plain-C variant every host build uses
(the larger of the two; see tinyc.backends.cmsis_nn); the generated code checks once, at
the first inference, that CMSIS-NN's own get-buffer-size agrees, and checks every call's
status. A layer a CMSIS-NN kernel would get wrong or refuse (broadcasting, padding unlike
TFLite's where a fast path assumes it, non-int8 tensors) runs tinyc's own kernel instead.

CMSIS-NN does not document in-place use: only ADD and MUL, whose three variants (plain,
DSP, MVE; read in the pinned release) read each block of elements before writing the same
block, may write over an input; no output overlaps an input otherwise.
"""

from __future__ import annotations

import numpy as np

from tinyc.backends import cmsis_nn as nn
from tinyc.backends.cmsis.cwriter import CContext
from tinyc.backends.cmsis.emit.base import EMITTERS, KERNEL_LIBRARIES, Emitter, library_emitter
from tinyc.backends.cmsis.emit.elementwise import no_broadcast, same_shape_input
from tinyc.ir.fixedpoint import wrap32
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import attr, get_op
from tinyc.ir.ops.base import activation_range_quant
from tinyc.ir.ops.conv import Requant
from tinyc.planner import Overlap

LIBRARY = "cmsis-nn"
HEADER = "arm_nnfunctions.h"
#: CMSIS-NN keeps some dimensions in uint16_t
MAX_DIM = 65535

CHECKS = r"""/* CMSIS-NN: a call that fails, or a kernel that needs more scratch than tinyc
 * planned (a CMSIS-NN build for another core or version), stops the program here;
 * define TINYC_CMSIS_NN_FAIL(node_name) to report it another way. */
#ifndef TINYC_CMSIS_NN_FAIL
#define TINYC_CMSIS_NN_FAIL(node) __builtin_trap()
#endif
#define TINYC_NN_CHECK(node, ok) do { if (!(ok)) { TINYC_CMSIS_NN_FAIL(node); } } while (0)
/* CMSIS-NN's own buffer size, checked at the first inference */
#define TINYC_NN_SCRATCH(node, need, planned) do { static uint8_t tinyc_checked_; \
    if (!tinyc_checked_) { TINYC_NN_CHECK(node, (need) <= (planned)); \
                           tinyc_checked_ = 1; } } while (0)"""


class NNEmitter(Emitter):
    """A CMSIS-NN emitter. Nodes it does not ``take`` go to tinyc's own emitter of the kind,
    for planning and emission alike."""

    def takes(self, node: Node, g: Graph) -> bool:
        """Whether CMSIS-NN runs ``node`` (int8 activations; subclasses add their limits)."""
        return _int8_activations(node, g)

    def nn_scratch(self, node: Node, g: Graph, variant: str) -> int:
        """Scratch bytes the CMSIS-NN call needs when CMSIS-NN is built as ``variant``."""
        return 0

    def nn_alias(self, node: Node, g: Graph) -> tuple[int, str] | None:
        return None

    def nn_emit(self, node: Node, g: Graph, c: CContext) -> None:
        raise NotImplementedError

    def own(self, node: Node) -> Emitter:
        return EMITTERS[node.op]

    def planned_scratch(self, node: Node, g: Graph, target: str) -> int:
        """What the arena holds for the call: the board's build and the host's (plain C)
        build run the same model.c."""
        return max(self.nn_scratch(node, g, v) for v in {target, "plain"})

    def scratch(self, node, g, target):
        if not self.takes(node, g):
            return self.own(node).scratch(node, g, target)
        return self.planned_scratch(node, g, target)

    def scratch_over(self, node, g, target):
        if not self.takes(node, g):
            return self.own(node).scratch_over(node, g, target)
        return None

    def alias(self, node, g):
        if not self.takes(node, g):
            return self.own(node).alias(node, g)
        return self.nn_alias(node, g)

    def overlap(self, node, g, target) -> Overlap | None:
        if not self.takes(node, g):
            return self.own(node).overlap(node, g, target)
        return None

    def emit(self, node, g, c):
        if not self.takes(node, g):
            self.own(node).emit(node, g, c)
            return
        c.need_header(HEADER)
        if CHECKS not in c.decls:
            c.decls.insert(0, CHECKS)
        self.nn_emit(node, g, c)


def runs_on_cmsis_nn(node: Node, g: Graph) -> bool:
    """Whether ``--kernels cmsis-nn`` runs ``node`` with a CMSIS-NN kernel."""
    em = KERNEL_LIBRARIES.get(LIBRARY, {}).get(node.op)
    return isinstance(em, NNEmitter) and em.takes(node, g)


# -- helpers ------------------------------------------------------------------------------


def _int8_activations(node: Node, g: Graph) -> bool:
    names = [i for i in node.inputs if i] + node.outputs
    return all(
        g.tensors[n].dtype == "int8" and g.tensors[n].quant is not None
        for n in names
        if not g.tensors[n].is_const
    )


def _weights_ok(node: Node, g: Graph) -> bool:
    """Constant int8 weights, symmetric (CMSIS-NN has no weight offset); constant int32
    bias or none."""
    w, b = g.inp(node, 1), g.inp(node, 2)
    if w is None or not w.is_const or w.dtype != "int8" or w.quant is None:
        return False
    if np.any(w.quant.zero_point != 0):
        return False
    return b is None or (b.is_const and b.dtype == "int32")


def _c_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dims(c: CContext, tag: str, d: nn.Dims) -> str:
    return c.const_struct(f"dims_{tag}", "cmsis_nn_dims", f"{d.n}, {d.h}, {d.w}, {d.c}")


def _tile(hw: tuple[int, int]) -> str:
    """cmsis_nn_tile is {w, h}."""
    return f"{{{hw[1]}, {hw[0]}}}"


def _context(c: CContext, tag: str, buf: str, size: int) -> str:
    return c.const_struct(f"ctx_{tag}", "cmsis_nn_context", f"{buf}, {size}")


def _per_channel(c: CContext, tag: str, rq: Requant) -> str:
    m = c.const_array(f"mult_{tag}", rq.multiplier.astype(np.int32), "int32_t")
    s = c.const_array(f"shift_{tag}", rq.shift.astype(np.int32), "int32_t")
    # CMSIS-NN's pointers are not const; it only reads them
    return c.const_struct(
        f"q_{tag}", "cmsis_nn_per_channel_quant_params", f"(int32_t *){m}, (int32_t *){s}"
    )


def _bias(c: CContext, node: Node) -> str:
    return c.ptr(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else "0"


def _call(c: CContext, node: Node, call: str) -> None:
    c.call(f"TINYC_NN_CHECK({_c_string(node.name)}, {call} == ARM_CMSIS_NN_SUCCESS);")


def _check_scratch(c: CContext, node: Node, need: str, planned: int) -> None:
    c.call(f"TINYC_NN_SCRATCH({_c_string(node.name)}, {need}, {planned});")


def _fits(*values: int) -> bool:
    return all(0 <= v <= MAX_DIM for v in values)


# -- convolutions -------------------------------------------------------------------------


def conv_geometry(node: Node, g: Graph) -> tuple[nn.ConvParams, nn.Dims, nn.Dims, nn.Dims]:
    """CMSIS-NN's view of a CONV_2D / DEPTHWISE_CONV_2D: params, input, filter, output."""
    x, w, y = g.inp(node, 0), g.inp(node, 1), g.out(node)
    assert x is not None and w is not None
    pads = attr(node, "pads")
    p = nn.ConvParams(
        tuple(attr(node, "stride")), (pads[0], pads[2]), tuple(attr(node, "dilation"))
    )
    f = nn.Dims(w.shape[0], w.shape[1], w.shape[2], w.shape[3])
    return p, nn.Dims(*x.shape), f, nn.Dims(*y.shape)


def conv_wrapper_ok(p: nn.ConvParams, inp: nn.Dims, f: nn.Dims, out: nn.Dims) -> bool:
    """Whether arm_convolve_wrapper_s8's fast paths fit the layer's padding (they assume
    TFLite's; arm_convolve_s8, the general kernel, takes any)."""
    if nn.is_convolve_1x1(p, inp, f):
        # every output pixel reads an input pixel: no bottom/right padding is reached
        return (out.h - 1) * p.stride[0] < inp.h and (out.w - 1) * p.stride[1] < inp.w
    if nn.is_convolve_1_x_n(p, inp, f):
        # the MVE kernel: one output row, left/right padding split as TFLite's SAME does
        total = (out.w - 1) * p.stride[1] + f.w - inp.w
        return (
            out.h == 1
            and p.padding[0] == 0
            and total >= 0
            and 2 * p.padding[1] + total % 2 == total
        )
    return True


@library_emitter(LIBRARY)
class ConvEmitter(NNEmitter):
    """CONV_2D with arm_convolve_wrapper_s8 (1x1, 1xN and general kernels; groups too)."""

    kinds = ("CONV_2D",)

    def takes(self, node, g):
        if not (super().takes(node, g) and _weights_ok(node, g)):
            return False
        p, inp, f, out = conv_geometry(node, g)
        return _fits(inp.h, inp.w, inp.c, f.h, f.w, f.c, out.h, out.w, out.c, *p.padding, *p.stride)

    def wrapper(self, node: Node, g: Graph) -> bool:
        return conv_wrapper_ok(*conv_geometry(node, g))

    def nn_scratch(self, node, g, variant):
        p, inp, f, out = conv_geometry(node, g)
        if self.wrapper(node, g):
            return nn.convolve_wrapper_s8(variant, p, inp, f, out)
        return nn.convolve_s8(variant, inp, f)

    def nn_emit(self, node, g, c):
        rq = get_op("CONV_2D").requant(node, g)
        p, inp, f, out = conv_geometry(node, g)
        tag = node.name
        fields = (
            f"{-rq.input_zp}, {rq.output_zp}, {_tile(p.stride)}, {_tile(p.padding)}, "
            f"{_tile(p.dilation)}, {{{rq.act_min}, {rq.act_max}}}"
        )
        params = c.const_struct(f"conv_{tag}", "cmsis_nn_conv_params", fields)
        d_in, d_f, d_out = _dims(c, tag, inp), _dims(c, tag, f), _dims(c, tag, out)
        d_b = _dims(c, tag, nn.Dims(1, 1, 1, out.c))
        planned = self.planned_scratch(node, g, c.target)
        ctx = _context(c, tag, c.scratch(), planned)
        q = _per_channel(c, tag, rq)
        x, y = c.ptr(node.inputs[0]), c.ptr(node.outputs[0])
        w, b = c.ptr(node.inputs[1]), _bias(c, node)
        if self.wrapper(node, g):
            need = f"arm_convolve_wrapper_s8_get_buffer_size(&{params}, &{d_in}, &{d_f}, &{d_out})"
            call = (
                f"arm_convolve_wrapper_s8(&{ctx}, &{params}, &{q}, &{d_in}, {x}, &{d_f}, "
                f"{w}, &{d_b}, {b}, &{d_out}, {y})"
            )
        else:
            need = f"arm_convolve_s8_get_buffer_size(&{d_in}, &{d_f})"
            call = (
                f"arm_convolve_s8(&{ctx}, &{params}, &{q}, &{d_in}, {x}, &{d_f}, {w}, "
                f"&{d_b}, {b}, 0, &{d_out}, {y})"
            )
        _check_scratch(c, node, need, planned)
        _call(c, node, call)


@library_emitter(LIBRARY)
class DepthwiseEmitter(NNEmitter):
    """DEPTHWISE_CONV_2D with arm_depthwise_conv_wrapper_s8 (3x3, optimized, generic, and
    on MVE the one-input-channel case as a convolution)."""

    kinds = ("DEPTHWISE_CONV_2D",)

    def takes(self, node, g):
        if not (super().takes(node, g) and _weights_ok(node, g)):
            return False
        p, inp, f, out = conv_geometry(node, g)
        return _fits(
            inp.h, inp.w, inp.c, f.h, f.w, out.h, out.w, out.c, *p.padding, *p.stride, *p.dilation
        )

    def kernel(self, node: Node, g: Graph) -> str:
        """The function called: the wrapper, or the kernel it would pick minus the fast
        path that would not fit the layer's padding."""
        p, inp, f, out = conv_geometry(node, g)
        if nn.depthwise_to_conv(inp, out):
            conv_f = nn.depthwise_as_conv_filter(f)
            if not conv_wrapper_ok(p, inp, conv_f, out):
                return "arm_depthwise_conv_s8"
        elif (
            nn.is_depthwise_3x3(p, inp, f, out)
            and (out.w - 1) * p.stride[1] - p.padding[1] + 1 >= inp.w
        ):
            # arm_depthwise_conv_3x3_s8 reads the middle column of every window
            return "arm_depthwise_conv_s8_opt"
        return "arm_depthwise_conv_wrapper_s8"

    def nn_scratch(self, node, g, variant):
        p, inp, f, out = conv_geometry(node, g)
        kernel = self.kernel(node, g)
        if kernel == "arm_depthwise_conv_wrapper_s8":
            return nn.depthwise_conv_wrapper_s8(variant, p, inp, f, out)
        if kernel == "arm_depthwise_conv_s8_opt":
            return nn.depthwise_conv_s8_opt(variant, inp, f)
        return 0

    def nn_emit(self, node, g, c):
        rq = get_op("DEPTHWISE_CONV_2D").requant(node, g)
        p, inp, f, out = conv_geometry(node, g)
        tag = node.name
        fields = (
            f"{-rq.input_zp}, {rq.output_zp}, {attr(node, 'depth_multiplier')}, "
            f"{_tile(p.stride)}, {_tile(p.padding)}, {_tile(p.dilation)}, "
            f"{{{rq.act_min}, {rq.act_max}}}"
        )
        params = c.const_struct(f"dw_{tag}", "cmsis_nn_dw_conv_params", fields)
        d_in, d_f, d_out = _dims(c, tag, inp), _dims(c, tag, f), _dims(c, tag, out)
        d_b = _dims(c, tag, nn.Dims(1, 1, 1, out.c))
        planned = self.planned_scratch(node, g, c.target)
        ctx = _context(c, tag, c.scratch(), planned)
        q = _per_channel(c, tag, rq)
        kernel = self.kernel(node, g)
        if kernel == "arm_depthwise_conv_wrapper_s8":
            need = (
                f"arm_depthwise_conv_wrapper_s8_get_buffer_size(&{params}, &{d_in}, &{d_f}, "
                f"&{d_out})"
            )
            _check_scratch(c, node, need, planned)
        elif kernel == "arm_depthwise_conv_s8_opt":
            need = f"arm_depthwise_conv_s8_opt_get_buffer_size(&{d_in}, &{d_f})"
            _check_scratch(c, node, need, planned)
        _call(
            c,
            node,
            f"{kernel}(&{ctx}, &{params}, &{q}, &{d_in}, {c.ptr(node.inputs[0])}, "
            f"&{d_f}, {c.ptr(node.inputs[1])}, &{d_b}, {_bias(c, node)}, &{d_out}, "
            f"{c.ptr(node.outputs[0])})",
        )


@library_emitter(LIBRARY)
class FullyConnectedEmitter(NNEmitter):
    """FULLY_CONNECTED with arm_fully_connected_s8 (per-tensor weights) or
    arm_fully_connected_per_channel_s8; on MVE the kernel sums CMSIS-NN reads from its
    context (bias - input_zero_point * row sums, as arm_vector_sum_s8 computes them) are
    constants in flash."""

    kinds = ("FULLY_CONNECTED",)

    def takes(self, node, g):
        w = g.inp(node, 1)
        return (
            super().takes(node, g) and _weights_ok(node, g) and w is not None and len(w.shape) == 2
        )

    def nn_emit(self, node, g, c):
        rq = get_op("FULLY_CONNECTED").requant(node, g)
        x, w = g.inp(node, 0), g.inp(node, 1)
        assert x is not None and w is not None and w.data is not None and w.quant is not None
        out_c, k = w.shape
        rows = x.size // k
        tag = node.name
        fields = f"{-rq.input_zp}, 0, {rq.output_zp}, {{{rq.act_min}, {rq.act_max}}}"
        params = c.const_struct(f"fc_{tag}", "cmsis_nn_fc_params", fields)
        d_in = _dims(c, tag, nn.Dims(rows, 1, 1, k))
        d_f = _dims(c, tag, nn.Dims(k, 1, 1, out_c))
        d_b = _dims(c, tag, nn.Dims(1, 1, 1, out_c))
        d_out = _dims(c, tag, nn.Dims(rows, 1, 1, out_c))
        sums = nn.fully_connected_s8(c.target, nn.Dims(k, 1, 1, out_c))
        if sums:
            b = g.inp(node, 2)
            bias = np.zeros(out_c, np.int64) if b is None else b.data.astype(np.int64)
            wsum = w.data.astype(np.int64).sum(axis=1)
            values = wrap32(bias - rq.input_zp * wsum).astype(np.int32)
            buf = "(void *)" + c.const_array(f"ksum_{tag}", values, "int32_t")
        else:
            buf = "0"
        ctx = _context(c, tag, buf, sums)
        if w.quant.per_channel:
            q, fn = f"&{_per_channel(c, tag, rq)}", "arm_fully_connected_per_channel_s8"
        else:
            q = "&" + c.const_struct(
                f"q_{tag}",
                "cmsis_nn_per_tensor_quant_params",
                f"{int(rq.multiplier[0])}, {int(rq.shift[0])}",
            )
            fn = "arm_fully_connected_s8"
        _check_scratch(c, node, f"arm_fully_connected_s8_get_buffer_size(&{d_f})", sums)
        _call(
            c,
            node,
            f"{fn}(&{ctx}, &{params}, {q}, &{d_in}, {c.ptr(node.inputs[0])}, "
            f"&{d_f}, {c.ptr(node.inputs[1])}, &{d_b}, {_bias(c, node)}, &{d_out}, "
            f"{c.ptr(node.outputs[0])})",
        )


# -- pooling, elementwise, softmax -------------------------------------------------------


def _windows_reach_input(size: int, out: int, k: int, s: int, pad: int) -> bool:
    """Every pooling window holds an input element (CMSIS-NN divides by the count)."""
    return all(o * s - pad + k > 0 and o * s - pad < size for o in range(out))


@library_emitter(LIBRARY)
class PoolEmitter(NNEmitter):
    """AVERAGE_POOL_2D (arm_avgpool_s8) and MAX_POOL_2D (arm_max_pool_s8)."""

    kinds = ("AVERAGE_POOL_2D", "MAX_POOL_2D")

    def geometry(self, node: Node, g: Graph) -> tuple[nn.ConvParams, nn.Dims, nn.Dims, nn.Dims]:
        x, y = g.inp(node, 0), g.out(node)
        assert x is not None
        k, pads = tuple(attr(node, "filter")), attr(node, "pads")
        p = nn.ConvParams(tuple(attr(node, "stride")), (pads[0], pads[2]))
        return p, nn.Dims(*x.shape), nn.Dims(1, k[0], k[1], 1), nn.Dims(*y.shape)

    def takes(self, node, g):
        x, y = g.inp(node, 0), g.out(node)
        if not super().takes(node, g) or x is None or not x.quant or not x.quant.same_as(y.quant):
            return False
        p, inp, f, out = self.geometry(node, g)
        return _windows_reach_input(inp.h, out.h, f.h, p.stride[0], p.padding[0]) and (
            _windows_reach_input(inp.w, out.w, f.w, p.stride[1], p.padding[1])
        )

    def nn_scratch(self, node, g, variant):
        if node.op != "AVERAGE_POOL_2D":
            return 0
        _, inp, _, out = self.geometry(node, g)
        return nn.avgpool_s8(variant, out.w, inp.c)

    def nn_emit(self, node, g, c):
        p, inp, f, out = self.geometry(node, g)
        lo, hi = activation_range_quant(attr(node, "activation"), g.out(node))
        tag = node.name
        params = c.const_struct(
            f"pool_{tag}",
            "cmsis_nn_pool_params",
            f"{_tile(p.stride)}, {_tile(p.padding)}, {{{lo}, {hi}}}",
        )
        d_in, d_f, d_out = _dims(c, tag, inp), _dims(c, tag, f), _dims(c, tag, out)
        planned = self.planned_scratch(node, g, c.target)
        ctx = _context(c, tag, c.scratch(), planned)
        if node.op == "AVERAGE_POOL_2D":
            fn = "arm_avgpool_s8"
            _check_scratch(c, node, f"arm_avgpool_s8_get_buffer_size({out.w}, {inp.c})", planned)
        else:
            fn = "arm_max_pool_s8"
        _call(
            c,
            node,
            f"{fn}(&{ctx}, &{params}, &{d_in}, {c.ptr(node.inputs[0])}, &{d_f}, "
            f"&{d_out}, {c.ptr(node.outputs[0])})",
        )


@library_emitter(LIBRARY)
class AddMulEmitter(NNEmitter):
    """ADD (arm_elementwise_add_s8) and MUL (arm_elementwise_mul_s8) of same-shape
    operands; broadcasting ones run tinyc's kernels (as TFLM runs its reference ones)."""

    kinds = ("ADD", "MUL")

    def takes(self, node, g):
        ins = [g.tensors[i] for i in node.inputs]
        return (
            super().takes(node, g)
            and all(t.dtype == "int8" and t.quant is not None for t in ins)
            and no_broadcast(node, g)
        )

    def nn_alias(self, node, g):
        return same_shape_input(node, g)

    def nn_emit(self, node, g, c):
        a, b, y = (c.ptr(n, "int8_t") for n in (*node.inputs[:2], node.outputs[0]))
        n = g.out(node).size
        if node.op == "ADD":
            p = get_op("ADD").arith(node, g)
            _call(
                c,
                node,
                f"arm_elementwise_add_s8({a}, {b}, {-p.input1_zp}, "
                f"{p.input1_multiplier}, {p.input1_shift}, {-p.input2_zp}, "
                f"{p.input2_multiplier}, {p.input2_shift}, {p.left_shift}, {y}, "
                f"{p.output_zp}, {p.output_multiplier}, {p.output_shift}, "
                f"{p.act_min}, {p.act_max}, {n})",
            )
        else:
            m = get_op("MUL").arith(node, g)
            _call(
                c,
                node,
                f"arm_elementwise_mul_s8({a}, {b}, {-m.input1_zp}, {-m.input2_zp}, "
                f"{y}, {m.output_zp}, {m.multiplier}, {m.shift}, {m.act_min}, "
                f"{m.act_max}, {n})",
            )


@library_emitter(LIBRARY)
class SoftmaxEmitter(NNEmitter):
    """SOFTMAX over the last axis (arm_softmax_s8)."""

    kinds = ("SOFTMAX",)

    def takes(self, node, g):
        return super().takes(node, g) and len(g.out(node).shape) >= 1

    def nn_emit(self, node, g, c):
        p = get_op("SOFTMAX").softmax_params(node, g)
        y = g.out(node)
        depth = y.shape[-1]
        c.call(
            f"arm_softmax_s8({c.ptr(node.inputs[0])}, {y.size // depth}, {depth}, "
            f"{p.input_multiplier}, {p.input_left_shift}, {p.diff_min}, "
            f"{c.ptr(node.outputs[0])});"
        )

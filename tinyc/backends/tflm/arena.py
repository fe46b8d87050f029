"""The tensor arena a TFLM project needs on a 32-bit Cortex-M with CMSIS-NN kernels.

Measured first with TFLite Micro on the host (PyPI ``tflite-micro``: reference kernels,
64-bit pointers), then corrected, as TFLM's allocator computes it, for what differs:

* **head** (non-persistent: tensors and kernel scratch buffers, laid out by TFLM's
  greedy planner). Tensor sizes and lifetimes are the same on both machines; the
  scratch buffers are not: CMSIS-NN asks for im2col / accumulation buffers whose sizes
  depend on the core (DSP or MVE). ``plan_head`` is a port of TFLM's GreedyMemoryPlanner;
  fed the host's (reference-kernel) buffers it must reproduce the host's head exactly
  (checked for every model), fed CMSIS-NN's buffers it gives the target's head.
* **tail** (persistent): TFLM structs shrink with 32-bit pointers - TfLiteEvalTensor
  24 -> 12 bytes per tensor, NodeAndRegistration 64 -> 32 per operator, TfLiteTensor
  64 -> 32 and TfLiteAffineQuantization 24 -> 12 per graph input/output, the I/O pointer
  arrays 8 -> 4 per entry, the allocator objects of the host interpreter (a recording
  allocator behind a Python wrapper) vs. a plain MicroInterpreter; the host's reference
  FULLY_CONNECTED keeps a few more bytes per operator. The target adds CMSIS-NN's
  scratch-buffer handles and, on MVE cores, FULLY_CONNECTED's precomputed kernel sums.
* **planning peak**: while planning, TFLM holds one AllocationInfo per tensor and scratch
  buffer (32 -> 24 bytes), 40 bytes of planner state per planned buffer and the scratch
  requests, on top of the tail. For models with many small tensors this peak, not the
  final usage, is the arena TFLM needs (``arena_used_bytes()`` underestimates it).

The need is the larger of final usage and planning peak, plus ``MARGIN``. Kernel
op-data size differences are not modelled; they are larger on the host, so they only
make the estimate err on the safe side (by under 1%). The constants below were
measured against TFLM 90b983c2 + CMSIS-NN 4ab83cc3 built for Cortex-M4 and Cortex-M55
and run under QEMU (tests/test_tflm_backend.py repeats that when TFLM_DIR is set).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from tinyc.backends import cmsis_nn
from tinyc.backends.tflm import host
from tinyc.backends.tflm.view import ModelView

ALIGN = 16  # MicroArenaBufferAlignment()
MAX_SCRATCH_PER_OP = 12  # kMaxScratchBuffersPerOp: request slots reserved in the head
PLANNER_BYTES_PER_BUFFER = 40  # GreedyMemoryPlanner::per_buffer_size() (ints only)
ALLOCATION_INFO = {64: 32, 32: 24}  # sizeof(AllocationInfo)
SCRATCH_REQUEST = {64: 16, 32: 12}  # sizeof(internal::ScratchBufferRequest)
EVAL_TENSOR = {64: 24, 32: 12}  # sizeof(TfLiteEvalTensor)
NODE_AND_REGISTRATION = {64: 64, 32: 32}
PERSISTENT_TENSOR = {64: 64, 32: 32}  # sizeof(TfLiteTensor) under TF_LITE_STATIC_MEMORY
AFFINE_QUANTIZATION = {64: 24, 32: 12}
#: host allocator objects (RecordingMicroAllocator & co., Python wrapper) minus the target's
HOST_FIXED_OVERHEAD = 348
#: persistent bytes the host's reference FULLY_CONNECTED keeps beyond CMSIS-NN's, per operator
HOST_FC_EXTRA = 27
#: added to the computed need: the I/O pointer arrays TFLM allocates after planning are
#: aligned down to 16 bytes from wherever the tail is, so ``after`` below is exact only to
#: 12 bytes; the margin covers that (and the arena's own 16-byte rounding)
MARGIN = 16

CORE_CLASSES = ("none", "dsp", "mve")
#: core class -> CMSIS-NN build variant
_VARIANT = {"none": "plain", "dsp": "dsp", "mve": "mve"}


def _align(n: int, a: int = ALIGN) -> int:
    return (n + a - 1) // a * a


# -- scratch buffers ------------------------------------------------------------------------


def _same_pad(size: int, k: int, s: int, d: int, padding: int) -> int:
    """TFLM's ComputePaddingHeightWidth for one axis (padding 0 = SAME, 1 = VALID)."""
    eff = (k - 1) * d + 1
    out = (size + s - 1) // s if padding == 0 else (size - eff + s) // s
    return max((out - 1) * s + eff - size, 0) // 2


def _conv_scratch(core: str, in_hwc, f_hwc, stride, dil, pad) -> int:
    """arm_convolve_wrapper_s8_get_buffer_size (gcc build; see tinyc.backends.cmsis_nn)."""
    (ih, iw, ic), (fh, fw, fc) = in_hwc, f_hwc
    # the output width is what TFLM computed; recover it from the padding convention
    ow = (iw + 2 * pad[1] - fw) // stride[1] + 1
    p = cmsis_nn.ConvParams(tuple(stride), tuple(pad), tuple(dil))
    inp, f = cmsis_nn.Dims(1, ih, iw, ic), cmsis_nn.Dims(1, fh, fw, fc)
    out = cmsis_nn.Dims(1, 1, ow, 1)
    return cmsis_nn.convolve_wrapper_s8(_VARIANT[core], p, inp, f, out)


def _depthwise_scratch(core: str, in_hwc, f_hw, out_c, dil, pad, stride) -> int:
    """arm_depthwise_conv_wrapper_s8_get_buffer_size (gcc build; see tinyc.backends.cmsis_nn)."""
    (ih, iw, ic), (fh, fw) = in_hwc, f_hw
    ow = (iw + 2 * pad[1] - fw) // stride[1] + 1
    p = cmsis_nn.ConvParams(tuple(stride), tuple(pad), tuple(dil))
    inp, f = cmsis_nn.Dims(1, ih, iw, ic), cmsis_nn.Dims(1, fh, fw, out_c)
    return cmsis_nn.depthwise_conv_wrapper_s8(
        _VARIANT[core], p, inp, f, cmsis_nn.Dims(1, 1, ow, out_c)
    )


@dataclass
class KernelMemory:
    """What the kernels of one build ask of the arena beyond the tensors."""

    scratch: list[tuple[int, int]] = field(default_factory=list)  # (node index, bytes)
    persistent: int = 0  # extra persistent bytes (e.g. MVE kernel sums)


def kernel_memory(view: ModelView, kernels: str, core: str = "none") -> KernelMemory:
    """Scratch requests (in TFLM's request order) and extra persistent buffers of the
    ``kernels`` ("reference" or "cmsis-nn") for ``core`` ("none", "dsp" or "mve")."""
    mem = KernelMemory()
    for i, op in enumerate(view.ops):
        t = view.tensors
        x = t[op.inputs[0]] if op.inputs and op.inputs[0] >= 0 else None
        y = t[op.outputs[0]]
        int8 = x is not None and x.dtype == "int8"
        if op.kind == "MEAN" and x is not None:
            if x.dtype in ("int8", "int16"):
                mem.scratch.append((i, 4 * math.prod(y.shape)))
            mem.scratch.append((i, 4 * len(x.shape)))
            mem.scratch.append((i, 4 * math.prod(t[op.inputs[1]].shape)))
        if op.kind == "UNIDIRECTIONAL_SEQUENCE_LSTM" and x is not None:
            _lstm_memory(mem, i, op, t, kernels)
            continue
        if kernels != "cmsis-nn" or not int8 or x is None:
            continue
        o = op.options
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w = t[op.inputs[1]]
            _, ih, iw, ic = x.shape
            fh, fw = w.shape[1], w.shape[2]
            stride, dil = (o.strideH, o.strideW), (o.dilationHFactor, o.dilationWFactor)
            pad = (
                _same_pad(ih, fh, stride[0], dil[0], o.padding),
                _same_pad(iw, fw, stride[1], dil[1], o.padding),
            )
            if op.kind == "CONV_2D":
                size = _conv_scratch(core, (ih, iw, ic), (fh, fw, w.shape[3]), stride, dil, pad)
            else:
                size = _depthwise_scratch(core, (ih, iw, ic), (fh, fw), y.shape[3], dil, pad,
                                          stride)  # fmt: skip
            if size > 0:
                mem.scratch.append((i, size))
        elif op.kind == "FULLY_CONNECTED":
            w = t[op.inputs[1]]
            out_depth, accum = y.shape[-1], w.shape[-1]
            if len(y.shape) > 2 and accum % 4 == 0:
                if not w.per_channel:
                    mem.scratch.append((i, out_depth * 8))
            elif core == "mve":
                bias_const = len(op.inputs) < 3 or op.inputs[2] < 0 or t[op.inputs[2]].const
                if w.const and bias_const:
                    mem.persistent += _align(out_depth * 4)
                else:
                    mem.scratch.append((i, out_depth * 4))
        elif op.kind == "AVERAGE_POOL_2D" and core == "dsp":
            mem.scratch.append((i, y.shape[-1] * 4))
    return mem


#: CMSIS-NN's UNIDIRECTIONAL_SEQUENCE_LSTM keeps a cmsis_nn_lstm_params (15 int32 and four
#: 40-byte gates on a 32-bit core) next to the reference kernel's OpDataLSTM (688 bytes,
#: no pointers: the same on the host); the op data grows from 688 to 912 bytes
LSTM_CMSIS_NN_OP_DATA = 224


def _lstm_memory(mem: KernelMemory, i: int, op: Any, t: Any, kernels: str) -> None:
    """UNIDIRECTIONAL_SEQUENCE_LSTM (kernels/unidirectional_sequence_lstm.cc and its
    cmsis_nn twin): scratch buffers of batch x state x cell-state bytes, four for the
    reference kernel (and CMSIS-NN's float path), three for CMSIS-NN's integer one, which
    also precomputes eight kernel sums (int32 per state unit; int64 for int16 inputs)."""
    x, h, c = t[op.inputs[0]], t[op.inputs[18]], t[op.inputs[19]]
    time_major = bool(getattr(op.options, "timeMajor", False))
    batch = x.shape[1] if time_major else x.shape[0]
    state = h.shape[1] if len(h.shape) > 1 else h.shape[0]
    cell = 2 if c.dtype == "int16" else 4
    integer = kernels == "cmsis-nn" and x.dtype in ("int8", "int16") and c.dtype == "int16"
    for _ in range(3 if integer else 4):
        mem.scratch.append((i, batch * state * cell))
    if kernels == "cmsis-nn":
        mem.persistent += LSTM_CMSIS_NN_OP_DATA
        if integer:
            mem.persistent += 8 * _align(state * (4 if x.dtype == "int8" else 8))


# -- TFLM's greedy planner -------------------------------------------------------------------


def buffer_lifetimes(view: ModelView, scratch: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """(aligned size, first, last) of every planned buffer, in TFLM's AllocationInfo order:
    tensors by index, then scratch buffers by request."""
    first = [-1] * len(view.tensors)
    last = [-1] * len(view.tensors)

    def created(i: int, scope: int) -> None:
        if first[i] == -1:
            first[i] = scope

    for i in view.inputs:
        created(i, 0)
        last[i] = 0
    scratch_life: list[tuple[int, int]] = [(-1, -1)] * len(scratch)
    scope = 0
    for n, op in enumerate(view.ops):
        scope += 1
        for o in op.outputs:
            created(o, scope)
        for i in op.inputs:
            if i >= 0:
                last[i] = scope
        for o in op.outputs:
            last[o] = scope
        for k, (node, _) in enumerate(scratch):
            if node == n:
                scratch_life[k] = (scope, scope)
    for o in view.outputs:
        created(o, scope)
        last[o] = scope
    buffers = [
        (_align(t.bytes), first[i], last[i]) for i, t in enumerate(view.tensors) if view.planned(i)
    ]
    buffers += [(_align(b), f, l) for (_, b), (f, l) in zip(scratch, scratch_life, strict=True)]
    return buffers


def plan_head(buffers: list[tuple[int, int, int]]) -> int:
    """GreedyMemoryPlanner: largest first (stable), each at the lowest offset that fits
    between buffers live at the same time. Returns the plan's size."""
    if not buffers:
        return 0
    # TFLM fills its sort arrays from the end, then bubble-sorts them (stable) by size
    order = sorted(reversed(range(len(buffers))), key=lambda i: -buffers[i][0])
    placed: list[tuple[int, int]] = []  # (offset, buffer id), sorted by offset
    for bid in order:
        size, first, last = buffers[bid]
        offset = 0
        for off, other in placed:
            osize, ofirst, olast = buffers[other]
            if first > olast or last < ofirst:
                continue
            if off - offset >= size:
                break
            offset = max(offset, off + osize)
        placed.append((offset, bid))
        placed.sort(key=lambda p: p[0])
    return max(off + buffers[b][0] for off, b in placed)


# -- the estimate -----------------------------------------------------------------------------


@dataclass
class ArenaEstimate:
    """Arena bytes for one model and core class, with how they were obtained."""

    core: str
    arena_bytes: int  # what the project reserves
    need_bytes: int  # estimated TFLM need on the target (before MARGIN)
    host_total: int  # TFLM on the host: arena_used_bytes()
    host_need: int  # TFLM on the host: smallest arena that works (bisection)
    host_head: int
    host_tail: int
    head: int  # target head (re-planned with the target kernels' scratch buffers)
    tail: int  # target tail (persistent)
    planning_peak: int
    scratch_buffers: int
    margin: int = MARGIN

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        return (
            f"{self.arena_bytes:,} B = TFLM's need for a 32-bit {self.core} core with CMSIS-NN "
            f"({self.need_bytes:,} B, from the host's {self.host_need:,} B corrected for "
            f"32-bit pointers and CMSIS-NN scratch buffers) + {self.margin} B margin"
        )


def core_class(core: str, dsp: bool, mve: str) -> str:
    if mve != "none":
        return "mve"
    return "dsp" if dsp else "none"


def estimate_arena(data: bytes, core: str) -> ArenaEstimate:
    """The tensor arena for ``data`` (a .tflite) on a ``core`` ("none"/"dsp"/"mve") class
    Cortex-M running TFLM with CMSIS-NN kernels."""
    if core not in CORE_CLASSES:
        raise ValueError(f"core class {core!r} not in {CORE_CLASSES}")
    view = ModelView.read(data)
    alloc = host.allocations(data)
    host_need = host.minimum_arena(data, alloc.total)

    ref = kernel_memory(view, "reference")
    target = kernel_memory(view, "cmsis-nn", core)
    head = _align(plan_head(buffer_lifetimes(view, target.scratch)))

    n_tensors, n_ops = len(view.tensors), len(view.ops)
    io = view.inputs + view.outputs
    quantized_io = sum(view.tensors[i].dtype in ("int8", "int16", "uint8") for i in io)
    savings = (
        HOST_FIXED_OVERHEAD
        + (EVAL_TENSOR[64] - EVAL_TENSOR[32]) * n_tensors
        + (NODE_AND_REGISTRATION[64] - NODE_AND_REGISTRATION[32]) * n_ops
        + (PERSISTENT_TENSOR[64] - PERSISTENT_TENSOR[32]) * len(io)
        + (AFFINE_QUANTIZATION[64] - AFFINE_QUANTIZATION[32]) * quantized_io
        + sum(HOST_FC_EXTRA for op in view.ops if op.kind == "FULLY_CONNECTED")
        + _pointer_array(len(view.inputs), 8)
        - _pointer_array(len(view.inputs), 4)
        + _pointer_array(len(view.outputs), 8)
        - _pointer_array(len(view.outputs), 4)
    )
    handles = 4 * len(target.scratch) - 8 * len(ref.scratch)
    tail = alloc.tail - savings + handles + target.persistent
    # allocated after planning: the I/O pointer arrays and persistent I/O tensors
    after = (
        _pointer_array(len(view.inputs), 4)
        + _pointer_array(len(view.outputs), 4)
        + PERSISTENT_TENSOR[32] * len(io)
        + (AFFINE_QUANTIZATION[32] + 8) * quantized_io
    )
    n_scratch = len(target.scratch)
    planned = sum(1 for t in view.tensors if not t.const and not t.variable and t.bytes) + n_scratch
    planning = (
        tail
        - after
        + SCRATCH_REQUEST[32] * (n_scratch + MAX_SCRATCH_PER_OP)
        + 4
        + ALLOCATION_INFO[32] * (n_tensors + n_scratch)
        + PLANNER_BYTES_PER_BUFFER * planned
    )
    need = max(head + tail + 4, planning)
    return ArenaEstimate(
        core=core,
        arena_bytes=_align(need + MARGIN),
        need_bytes=need,
        host_total=alloc.total,
        host_need=host_need,
        host_head=alloc.head,
        host_tail=alloc.tail,
        head=head,
        tail=tail,
        planning_peak=planning,
        scratch_buffers=n_scratch,
    )


def _pointer_array(n: int, pointer: int) -> int:
    """An array of n pointers from the persistent allocator (16-byte aligned)."""
    return _align(n * pointer)

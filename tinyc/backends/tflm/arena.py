"""The tensor arena a TFLM project needs on a 32-bit Cortex-M with CMSIS-NN kernels.

Measured first with TFLite Micro on the host (PyPI ``tflite-micro``: reference kernels,
64-bit pointers), then corrected, as TFLM's allocator computes it, for what differs:

* **head** (non-persistent: tensors and kernel scratch buffers, laid out by TFLM's
  greedy planner). Tensor sizes and lifetimes are the same on both machines; the
  scratch buffers are not: CMSIS-NN asks for im2col / accumulation buffers whose sizes
  depend on the core (DSP or MVE). ``plan_head`` is a port of TFLM's GreedyMemoryPlanner;
  fed the host's (reference-kernel) buffers it must reproduce the host's head exactly
  (checked for every model), fed CMSIS-NN's buffers it gives the target's head. Where it
  does not (a kernel whose scratch tinyc does not model), the difference is kept on the
  target as it is.
* **tail** (persistent): TFLM structs shrink with 32-bit pointers - TfLiteEvalTensor
  24 -> 12 bytes per tensor, NodeAndRegistration 64 -> 32 per operator, TfLiteTensor
  64 -> 32 and TfLiteAffineQuantization 24 -> 12 per graph input/output, the I/O pointer
  arrays 8 -> 4 per entry, the allocator objects of the host interpreter (a recording
  allocator behind a Python wrapper) vs. a plain MicroInterpreter; the host's reference
  FULLY_CONNECTED keeps a few more bytes per operator. The target adds CMSIS-NN's
  scratch-buffer handles and, on MVE cores, FULLY_CONNECTED's precomputed kernel sums;
  its float convolutions keep no per-channel requantization arrays (the host's do).
* **prepare peak**: while each kernel's Prepare runs, TFLM holds the scratch requests at
  the head and temporary TfLiteTensors above them, each quantized one with a copy of its
  zero points (an int per channel; convolutions take their tensors twice), under the
  tail grown so far. Per-channel layers with wide outputs (a 640-wide FULLY_CONNECTED:
  2.5 KB per weight or bias tensor) make this the largest moment of all.
* **planning peak**: while planning, TFLM holds one AllocationInfo per tensor and scratch
  buffer (32 -> 24 bytes), 40 bytes of planner state per planned buffer and the scratch
  requests, on top of the tail. For models with many small tensors this peak, not the
  final usage, is the arena TFLM needs (``arena_used_bytes()`` underestimates it).

The need is the largest of final usage, planning peak and prepare peak, plus ``MARGIN``;
the prepare peak computed with the host's sizes reproduces the host's bisected minimum
within a few bytes where it sets it. Kernel
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
from tinyc.backends.tflm.view import ModelView, OpView

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
    """What the kernels of one build ask of the arena beyond the tensors.

    ``kernels="reference"`` describes the host measurement (TFLM's reference kernels,
    64-bit pointers); ``"cmsis-nn"`` the target (CMSIS-NN where TFLM has a CMSIS-NN kernel,
    the same reference kernels elsewhere, 32-bit pointers)."""

    scratch: list[tuple[int, int]] = field(default_factory=list)  # (node index, bytes)
    #: persistent bytes a node's Prepare allocates (the modelled buffers: per-channel
    #: requantization, CMSIS-NN's kernel sums), by node
    prepared: dict[int, int] = field(default_factory=dict)
    #: persistent bytes allocated at Init that the host's kernels do not (op data)
    init: int = 0

    @property
    def persistent(self) -> int:
        return self.init + sum(self.prepared.values())

    def keep(self, node: int, size: int) -> None:
        """A persistent buffer (16-byte aligned, as TFLM's AllocatePersistentBuffer)."""
        self.prepared[node] = self.prepared.get(node, 0) + _align(size)


def kernel_memory(view: ModelView, kernels: str, core: str = "none") -> KernelMemory:
    """Scratch requests (in TFLM's request order) and persistent buffers of the ``kernels``
    ("reference" or "cmsis-nn") for ``core`` ("none", "dsp" or "mve")."""
    mem = KernelMemory()
    nn = kernels == "cmsis-nn"
    pointer = 4 if nn else 8  # the reference kernels run on the 64-bit host
    t = view.tensors
    for i, op in enumerate(view.ops):
        if op.kind == "UNIDIRECTIONAL_SEQUENCE_LSTM" and op.inputs and op.inputs[0] >= 0:
            _lstm_memory(mem, i, op, t, kernels)
        elif op.kind == "TRANSPOSE_CONV":
            _transpose_conv_memory(mem, i, op, t, nn, core)
        elif op.kind in _SCRATCH:
            _SCRATCH[op.kind](mem, i, op, t, pointer)
        _requantization_memory(mem, i, op, t, nn)
        if nn:
            _cmsis_nn_memory(mem, i, op, t, core)
    return mem


def _ins(op: Any, t: Any) -> list[Any]:
    """The operator's input tensors (None for an absent optional input)."""
    return [t[k] if k >= 0 else None for k in op.inputs]


def _reduce(mem: KernelMemory, i: int, op: Any, t: Any, pointer: int) -> None:
    """MEAN / SUM (int32 accumulators for integer inputs), REDUCE_MAX/MIN/ALL:
    reduce_common.cc's iteration and axis buffers."""
    x, axis = _ins(op, t)[:2]
    y = t[op.outputs[0]]
    if op.kind in ("MEAN", "SUM") and x.dtype in ("int8", "int16"):
        mem.scratch.append((i, 4 * math.prod(y.shape)))
    mem.scratch.append((i, 4 * len(x.shape)))
    mem.scratch.append((i, 4 * math.prod(axis.shape)))


def _mirror_pad(mem: KernelMemory, i: int, op: Any, t: Any, pointer: int) -> None:
    rank = len(t[op.inputs[0]].shape)
    mem.scratch += [(i, 4 * rank), (i, 4 * rank)]


def _add_n(mem: KernelMemory, i: int, op: Any, t: Any, pointer: int) -> None:
    """ADD_N keeps a pointer per input (8 bytes on the host, 4 on the target)."""
    mem.scratch.append((i, pointer * len(op.inputs)))


def _svdf(mem: KernelMemory, i: int, op: Any, t: Any, pointer: int) -> None:
    """SVDF (reference and CMSIS-NN alike): per batch, a value per filter, and for
    integer models an int32 per unit."""
    x, wf = _ins(op, t)[:2]
    batch, filters = x.shape[0], wf.shape[0]
    mem.scratch.append((i, batch * filters * 4))
    if x.dtype == "int8":
        rank = max(int(getattr(op.options, "rank", 1) or 1), 1)
        mem.scratch.append((i, batch * (filters // rank) * 4))


_SCRATCH = {
    "MEAN": _reduce,
    "SUM": _reduce,
    "REDUCE_MAX": _reduce,
    "REDUCE_MIN": _reduce,
    "REDUCE_ALL": _reduce,
    "MIRROR_PAD": _mirror_pad,
    "ADD_N": _add_n,
    "SVDF": _svdf,
}


def _transpose_conv_memory(mem: KernelMemory, i: int, op: Any, t: Any, nn: bool, core: str):
    """TRANSPOSE_CONV: the reference kernel accumulates an integer output in int32 (int64
    for int16); CMSIS-NN's int8 kernel asks for an im2col buffer and a reversed-filter
    buffer (both requested even when empty)."""
    w, x = t[op.inputs[1]], t[op.inputs[2]]
    y = t[op.outputs[0]]
    if x.dtype == "int16":
        mem.scratch.append((i, math.prod(y.shape) * 8))
    elif x.dtype == "int8" and not nn:
        mem.scratch.append((i, math.prod(y.shape) * 4))
    elif x.dtype == "int8":
        n, ih, iw, ic = x.shape
        sh, sw = op.options.strideH, op.options.strideW
        oc, fh, fw = w.shape[0], w.shape[1], w.shape[2]
        reverse = sh <= 2 and sw <= 2 and ic > REVERSE_TCOL_EFFICIENT_THRESHOLD
        if reverse:
            inp = cmsis_nn.Dims(n, ih * sh, iw * sw, ic)
            im2col = cmsis_nn.convolve_s8(_VARIANT[core], inp, cmsis_nn.Dims(oc, fh, fw, ic))
            mem.scratch += [(i, im2col), (i, ic * fw * fh * oc)]
        else:
            cols = ((iw - 1) * sw + max(fw, sh)) * y.shape[3]
            mem.scratch += [(i, cols * max(fh, sh) * 4), (i, 0)]


#: CMSIS-NN's transpose convolution reverses the filter above this many input channels
REVERSE_TCOL_EFFICIENT_THRESHOLD = 16


def _requantization_memory(mem: KernelMemory, i: int, op: Any, t: Any, nn: bool) -> None:
    """Per-channel output multipliers and shifts (int32 each) that convolutions keep: the
    reference CONV_2D and DEPTHWISE_CONV_2D allocate them for float models too, CMSIS-NN's
    only for integer ones; TRANSPOSE_CONV always; FULLY_CONNECTED for per-channel weights."""
    ins = _ins(op, t)
    if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV"):
        x = ins[2] if op.kind == "TRANSPOSE_CONV" else ins[0]
        w = ins[1]
        channels = w.shape[3] if op.kind == "DEPTHWISE_CONV_2D" else w.shape[0]
        if op.kind == "TRANSPOSE_CONV" or not nn or x.dtype in ("int8", "int16"):
            mem.keep(i, 4 * channels)
            mem.keep(i, 4 * channels)
    elif op.kind == "FULLY_CONNECTED" and len(ins) > 1 and ins[1] is not None:
        x, w = ins[0], ins[1]
        if x.dtype in ("int8", "int16") and w.per_channel:
            mem.keep(i, 4 * len(w.scale))
            mem.keep(i, 4 * len(w.scale))


def _cmsis_nn_memory(mem: KernelMemory, i: int, op: Any, t: Any, core: str) -> None:
    """CMSIS-NN's int8 kernels: im2col and accumulation scratch buffers, and on MVE the
    kernel sums FULLY_CONNECTED and SVDF precompute."""
    ins = _ins(op, t)
    x = ins[0] if ins else None
    if x is None or x.dtype != "int8":
        return
    y = t[op.outputs[0]]
    o = op.options
    if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        w = ins[1]
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
        w = ins[1]
        out_depth, accum = y.shape[-1], w.shape[-1]
        if len(y.shape) > 2 and accum % 4 == 0:
            if not w.per_channel:
                mem.scratch.append((i, out_depth * 8))
        elif core == "mve":
            bias = ins[2] if len(ins) > 2 else None
            if w.const and (bias is None or bias.const):
                mem.keep(i, out_depth * 4)
            else:
                mem.scratch.append((i, out_depth * 4))
    elif op.kind == "AVERAGE_POOL_2D" and core == "dsp":
        mem.scratch.append((i, y.shape[-1] * 4))
    elif op.kind == "SVDF" and core == "mve":
        mem.keep(i, ins[1].shape[0] * 4)
    elif op.kind == "BATCH_MATMUL" and core == "mve" and 2 <= len(y.shape) <= 4:
        mem.scratch.append((i, y.shape[-1] * 4))


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
        mem.init += LSTM_CMSIS_NN_OP_DATA
        if integer:
            for _ in range(8):
                mem.keep(i, state * (4 if x.dtype == "int8" else 8))


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


# -- the prepare phase ------------------------------------------------------------------------


def _temp_tensors(view: ModelView, op: OpView) -> list[int]:
    """The tensors a kernel's Prepare holds as temporary TfLiteTensors at once, in order.
    Convolutions allocate them twice: Prepare takes input, filter and output, then
    CalculateOpData* takes all four again before either releases them (TRANSPOSE_CONV
    only for integer models); other kernels take each input and output once."""
    ins = [i for i in op.inputs if i >= 0]
    if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        return [op.inputs[0], op.inputs[1], op.outputs[0], *ins, *op.outputs]
    if op.kind == "TRANSPOSE_CONV":
        first = [op.outputs[0], op.inputs[2], op.inputs[1]]
        if view.tensors[op.inputs[2]].dtype == "float32":
            return first
        bias = [op.inputs[3]] if len(op.inputs) > 3 and op.inputs[3] >= 0 else []
        return [*first, op.inputs[2], op.inputs[1], *bias, op.outputs[0]]
    return [*ins, *op.outputs]


def temp_bytes(view: ModelView, op: OpView, bits: int) -> int:
    """Temporary arena bytes of one kernel's Prepare: a TfLiteTensor per tensor and, for a
    quantized one, its TfLiteAffineQuantization and a copy of its zero points (an int per
    channel: per-channel weights and biases of wide layers make this kilobytes)."""
    a = bits // 8  # alignof(TfLiteTensor) = alignof(TfLiteAffineQuantization)
    used = 0
    for i in _temp_tensors(view, op):
        t = view.tensors[i]
        used = _align(used, a) + PERSISTENT_TENSOR[bits]
        if t.scale and t.zero_point:
            used = _align(used, a) + AFFINE_QUANTIZATION[bits]
            used = _align(used, 4) + 4 + 4 * len(t.scale)
    return used


def prepare_peak(view: ModelView, mem: KernelMemory, tail_prepared: int, bits: int) -> int:
    """The arena TFLM needs while the kernels' Prepare run, one operator after the other:
    the scratch-request array (room for MAX_SCRATCH_PER_OP more than requested so far) at
    the head, the operator's temporary tensors above it, and the persistent tail as far as
    it has grown (``tail_prepared``, the tail when Prepare is over, less the persistent
    buffers later operators' Prepare allocate)."""
    later = sum(mem.prepared.values())
    requested = peak = 0
    for k, op in enumerate(view.ops):
        later -= mem.prepared.get(k, 0)
        head = _align(SCRATCH_REQUEST[bits] * (requested + MAX_SCRATCH_PER_OP), bits // 8)
        peak = max(peak, head + temp_bytes(view, op, bits) + tail_prepared - later)
        requested += sum(1 for node, _ in mem.scratch if node == k)
    return peak


def allocated_after_prepare(view: ModelView, mem: KernelMemory, bits: int) -> int:
    """Persistent bytes TFLM allocates once every Prepare has run: the scratch-buffer
    handles, the variable tensors (recurrent state), the graph I/O pointer arrays and
    TfLiteTensors (with their quantization)."""
    io = view.inputs + view.outputs
    quantized_io = sum(view.tensors[i].dtype in ("int8", "int16", "uint8") for i in io)
    pointer = bits // 8
    return (
        _align(pointer * len(mem.scratch), pointer)
        + sum(_align(t.bytes) for t in view.tensors if t.variable)
        + _pointer_array(len(view.inputs), pointer)
        + _pointer_array(len(view.outputs), pointer)
        + PERSISTENT_TENSOR[bits] * len(io)
        + (AFFINE_QUANTIZATION[bits] + _align(8, pointer)) * quantized_io
    )


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
    prepare_peak: int = 0  # target need while the kernels' Prepare run
    #: host head bytes the planner port could not attribute to a known kernel buffer
    #: (a kernel tinyc does not model): added to the target head as they are
    unmodelled_head: int = 0
    margin: int = MARGIN

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def phase(self) -> str:
        """Which moment of AllocateTensors sets the need."""
        if self.need_bytes == self.prepare_peak:
            return "while the kernels prepare"
        if self.need_bytes == self.planning_peak:
            return "while planning"
        return "tensors, scratch and persistent data"

    def describe(self) -> str:
        unmodelled = (
            f", {self.unmodelled_head:,} B of it scratch of kernels tinyc does not model"
            if self.unmodelled_head
            else ""
        )
        return (
            f"{self.arena_bytes:,} B = TFLM's need for a 32-bit {self.core} core with CMSIS-NN "
            f"({self.need_bytes:,} B {self.phase}, from the host's {self.host_need:,} B "
            f"corrected for 32-bit pointers and CMSIS-NN's buffers{unmodelled}) "
            f"+ {self.margin} B margin"
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
    # the port, fed the reference kernels' buffers, reproduces the host's head unless a
    # kernel asked for scratch tinyc does not know of: keep that much room on the target
    unmodelled = max(0, alloc.head - _align(plan_head(buffer_lifetimes(view, ref.scratch))))
    head = _align(plan_head(buffer_lifetimes(view, target.scratch))) + unmodelled

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
    # kernel buffers differ (CMSIS-NN's kernel sums; float convolutions keep no
    # requantization arrays there), so does the op data of some kernels
    tail = alloc.tail - savings + handles + target.persistent - ref.persistent
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
    preparing = prepare_peak(view, target, tail - allocated_after_prepare(view, target, 32), 32)
    need = max(head + tail + 4, planning, preparing)
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
        prepare_peak=preparing,
        unmodelled_head=unmodelled,
    )


def _pointer_array(n: int, pointer: int) -> int:
    """An array of n pointers from the persistent allocator (16-byte aligned)."""
    return _align(n * pointer)

"""PyTorch frontend: a ``torch.export`` program straight into the IR (no ONNX in between).

Sources: a saved ExportedProgram (``.pt2``) or ``path/to/file.py:factory[@weights.pt]``,
where ``factory()`` returns ``(module, example_inputs)`` or a module with an
``example_inputs`` attribute; the optional state_dict is loaded with ``strict=True``.

The walk over ``ep.graph_module.graph`` (``converter``) keeps every activation in the layout
that suits the IR (NHWC for 4-D values, ``[N, L, C]`` for Conv1d values) and records how it
relates to PyTorch's layout (``perm``); layout-free ops (elementwise, permute) never move
data, and reshapes stay virtual until an op needs the data in PyTorch's order, so
elementwise ops with constants, such as SubSpectralNorm's per-sub-band affine, apply through
them. Parameter-only subgraphs are evaluated with PyTorch at import; BatchNorm folds into
the convolution or linear layer before it where that layer has no other reader, and becomes
a per-channel MUL + ADD otherwise. Recurrent layers (``nn.LSTM``, ``nn.GRU``, ``nn.RNN`` and
their cells) become the IR's LSTM / GRU / RNN ops (``ops_rnn``).

Operator translations live by family in ``ops_nn``, ``ops_math``, ``ops_activation``,
``ops_reduce``, ``ops_resize``, ``ops_shape`` and ``ops_rnn``, registered by name in
``registry``.
"""

from tinyc.frontend.torch.loader import (
    export_module,
    from_exported_program,
    load_exported_program,
    load_state_dict,
    load_torch_factory,
)

__all__ = [
    "export_module",
    "from_exported_program",
    "load_exported_program",
    "load_state_dict",
    "load_torch_factory",
]

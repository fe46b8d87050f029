"""Firmware projects for boards and their emulated twins: render, cross-build, run in QEMU.

- ``render_project(out_dir, board, model_name, test_inputs, expected_outputs, ...)``: the project
  skeleton (everything but ``model/`` and ``runtime/``).
- ``build_firmware(project_dir, target="emu"|"board"|"host") -> Path``: runs the project's Makefile.
- ``run_emulated(elf, board, inputs) -> RunResult``: one inference in QEMU, outputs, instruction
  count, stack high-water mark. ``run_host(exe, inputs)``: the same protocol on the host build.
- ``elf_sizes(elf)``: flash / RAM / arena / stack bytes.
- ``ensure_plugin()``: build the QEMU instruction-count plugin (``tinyc setup-emulator``).
"""

from tinyc.emulate.build import BuildError, build_firmware
from tinyc.emulate.elfinfo import elf_sizes, elf_symbol
from tinyc.emulate.plugin import PluginSetupError, ensure_plugin
from tinyc.emulate.project import DEFAULT_STACK_BYTES, qemu_args, render_project
from tinyc.emulate.qemu import RunResult, run_emulated, run_host

__all__ = [
    "DEFAULT_STACK_BYTES",
    "BuildError",
    "PluginSetupError",
    "RunResult",
    "build_firmware",
    "elf_sizes",
    "elf_symbol",
    "ensure_plugin",
    "qemu_args",
    "render_project",
    "run_emulated",
    "run_host",
]

"""Build generated model C for the host and run it (test utility)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from tinyc.backends.cmsis.codegen import GeneratedModel, runtime_files

HOST_MAIN = r"""
#include <stdio.h>
#include <stdlib.h>
#include "model.h"
/* usage: host_model in_0.bin ... out_0.bin ... */
int main(int argc, char **argv) {
  int i;
  if (argc != 1 + TINYC_NUM_INPUTS + TINYC_NUM_OUTPUTS) return 2;
  for (i = 0; i < TINYC_NUM_INPUTS; ++i) {
    FILE *f = fopen(argv[1 + i], "rb");
    if (!f) return 3;
    if (fread(tinyc_inputs[i].data, 1, tinyc_inputs[i].bytes, f) != tinyc_inputs[i].bytes) return 3;
    fclose(f);
  }
  tinyc_invoke();
  for (i = 0; i < TINYC_NUM_OUTPUTS; ++i) {
    FILE *f = fopen(argv[1 + TINYC_NUM_INPUTS + i], "wb");
    if (!f) return 4;
    if (fwrite(tinyc_outputs[i].data, 1, tinyc_outputs[i].bytes, f) != tinyc_outputs[i].bytes)
      return 4;
    fclose(f);
  }
  return 0;
}
"""

CFLAGS = ["-std=c99", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-Wno-unused-function"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]


def build_host(gen: GeneratedModel, workdir: Path, sanitize: bool = True,
               main_source: str | None = None) -> Path:  # fmt: skip
    """The generated project built for the host with ``main_source`` (default: one
    inference per run, HOST_MAIN)."""
    files = {**gen.files, **runtime_files(gen.runtime_sources)}
    for rel, text in files.items():
        p = workdir / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    (workdir / "host_main.c").write_text(main_source or HOST_MAIN)
    exe = workdir / "host_model"
    sources = [str(workdir / "host_main.c"), str(workdir / "model" / "model.c")]
    sources += [str(workdir / "runtime" / s) for s in gen.runtime_sources]
    cmd = [
        "gcc",
        *CFLAGS,
        *(SANITIZE if sanitize else []),
        f"-I{workdir / 'model'}",
        f"-I{workdir / 'runtime'}",
        *sources,
        "-lm",
        "-o",
        str(exe),
    ]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return exe


def run_host(exe: Path, gen: GeneratedModel, inputs: list[np.ndarray]) -> list[np.ndarray]:
    g = gen.graph
    workdir = exe.parent
    args = []
    for i, (name, x) in enumerate(zip(g.inputs, inputs, strict=True)):
        p = workdir / f"in_{i}.bin"
        np.ascontiguousarray(x, dtype=g.tensors[name].dtype).tofile(p)
        args.append(str(p))
    outs = [workdir / f"out_{i}.bin" for i in range(len(g.outputs))]
    res = subprocess.run([str(exe), *args, *map(str, outs)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-4000:]
    return [
        np.fromfile(p, dtype=g.tensors[n].dtype).reshape(g.tensors[n].shape)
        for p, n in zip(outs, g.outputs, strict=True)
    ]

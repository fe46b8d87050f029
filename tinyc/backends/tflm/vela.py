"""Ethos-U: compile an int8 .tflite with Vela (``ethos-u-vela``) and read what it reports.

Vela runs as a subprocess (``python -m ethosu.vela``) in a temporary directory; its
summary CSV gives cycles and memory, its per-layer CSV the NPU operators, its log the
operators it left on the CPU and why. The NPU/CPU split is counted on the operators of
the file tinyc gave Vela (Vela itself counts the operators it decomposed them into).
"""

from __future__ import annotations

import csv
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tinyc.backends.tflm.view import ModelView
from tinyc.errors import TinycError

VELA_CUSTOM_CODE = "ethos-u"

#: NPU family -> (Vela system configuration, memory mode) from Vela's bundled Arm/vela.ini
_FAMILY_DEFAULTS = {
    "ethos-u55": ("Ethos_U55_High_End_Embedded", "Shared_Sram"),
    "ethos-u65": ("Ethos_U65_High_End", "Dedicated_Sram"),
    "ethos-u85": ("Ethos_U85_SYS_DRAM_Mid", "Dedicated_Sram_384KB"),
}
KIB = 1024


@dataclass(frozen=True)
class VelaConfig:
    """How to call Vela. ``config`` is a vela.ini (default: the one Vela ships)."""

    accelerator: str
    system_config: str
    memory_mode: str
    optimise: str = "Performance"
    config: str = "Arm/vela.ini"

    @classmethod
    def for_npu(cls, npu: str, **overrides: Any) -> VelaConfig:
        """Vela's default system configuration for an NPU such as ``ethos-u55-128``."""
        family = "-".join(npu.split("-")[:2])
        if family not in _FAMILY_DEFAULTS:
            known = ", ".join(sorted(_FAMILY_DEFAULTS))
            raise TinycError(f"unknown NPU {npu!r} (Vela handles {known}-<MACs>)")
        system, memory = _FAMILY_DEFAULTS[family]
        return cls(
            npu,
            overrides.pop("system_config", system),
            overrides.pop("memory_mode", memory),
            **overrides,
        )

    def args(self) -> list[str]:
        return [
            "--config",
            self.config,
            "--accelerator-config",
            self.accelerator,
            "--system-config",
            self.system_config,
            "--memory-mode",
            self.memory_mode,
            "--optimise",
            self.optimise,
        ]


@dataclass
class CpuOp:
    """An operator Vela left on the CPU (TFLM runs it with its own kernel)."""

    op: str
    name: str
    reasons: list[str] = field(default_factory=list)


@dataclass
class VelaReport:
    accelerator: str
    system_config: str
    memory_mode: str
    npu_clock_hz: float  # the clock of Vela's system configuration
    cycles_npu: int
    cycles_total: int
    inference_time_s: float  # at npu_clock_hz
    sram_bytes: int
    off_chip_flash_bytes: int
    on_chip_flash_bytes: int
    dram_bytes: int
    macs: int
    operators: int  # operators of the file given to Vela
    npu_operators: int
    cpu_operators: list[CpuOp]
    per_layer: list[dict[str, str]] = field(default_factory=list)
    board_clock_hz: float | None = None

    @property
    def inference_time_board_s(self) -> float | None:
        """Vela's cycles at the board's own NPU clock, when the board states one."""
        if not self.board_clock_hz:
            return None
        return self.cycles_total / self.board_clock_hz

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("per_layer")
        d["inference_time_board_s"] = self.inference_time_board_s
        return d

    def format(self) -> str:
        lines = [
            f"Vela {self.accelerator} ({self.system_config}, {self.memory_mode}, "
            f"NPU clock {self.npu_clock_hz / 1e6:g} MHz)",
            f"  operators: {self.npu_operators} of {self.operators} on the NPU, "
            f"{len(self.cpu_operators)} on the CPU",
            f"  cycles: {self.cycles_npu:,} NPU, {self.cycles_total:,} total "
            f"({self.inference_time_s * 1e3:.3f} ms at {self.npu_clock_hz / 1e6:g} MHz"
            + (
                f", {self.inference_time_board_s * 1e3:.3f} ms at the board's "
                f"{self.board_clock_hz / 1e6:g} MHz)"
                if self.inference_time_board_s is not None and self.board_clock_hz
                else ")"
            ),
            f"  memory: SRAM {self.sram_bytes:,} B, off-chip flash {self.off_chip_flash_bytes:,} B"
            + (f", DRAM {self.dram_bytes:,} B" if self.dram_bytes else ""),
        ]
        for c in self.cpu_operators:
            why = "; ".join(c.reasons) if c.reasons else "Vela gave no reason"
            lines.append(f"  CPU fallback: {c.op} {c.name!r}: {why}")
        return "\n".join(lines)


@dataclass
class VelaResult:
    model: bytes  # the Vela-compiled .tflite (CUSTOM ethos-u + CPU operators)
    report: VelaReport
    log: str


def _operators(data: bytes) -> list[tuple[str, str]]:
    """(operator kind, name of its first output) for every operator of subgraph 0."""
    view = ModelView.read(data)
    return [(op.kind, view.tensors[op.outputs[0]].name) for op in view.ops]


_WARNING = re.compile(r"^Warning \(supported operators\) operator: (\S+), ofm: '(.*)'\s*$")
_REASON = re.compile(r"^Reason:\s*(.*)$")


def parse_fallback_reasons(log: str) -> dict[str, list[str]]:
    """Output tensor name -> the reasons Vela printed for keeping that operator on the CPU."""
    reasons: dict[str, list[str]] = {}
    current: str | None = None
    for line in log.splitlines():
        if m := _WARNING.match(line):
            current = m.group(2)
            reasons.setdefault(current, [])
        elif (m := _REASON.match(line)) and current is not None:
            reasons[current].append(m.group(1).strip())
        elif not line.strip():
            current = None
    return reasons


def _summary(out_dir: Path) -> dict[str, str]:
    files = sorted(out_dir.glob("*_summary_*.csv"))
    if not files:
        raise TinycError(f"Vela wrote no summary CSV in {out_dir}")
    with files[0].open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise TinycError(f"Vela's summary {files[0].name} is empty")
    return rows[0]


def _per_layer(out_dir: Path) -> list[dict[str, str]]:
    files = sorted(out_dir.glob("*_per-layer.csv"))
    if not files:
        return []
    with files[0].open(newline="") as f:
        return list(csv.DictReader(f))


def run_vela(
    tflite: bytes, config: VelaConfig, name: str = "model", board_clock_hz: float | None = None
) -> VelaResult:
    """Compile ``tflite`` (int8) for the NPU; raises TinycError when Vela fails."""
    with tempfile.TemporaryDirectory(prefix="tinyc-vela-") as tmp:
        work = Path(tmp)
        src = work / f"{name}.tflite"
        src.write_bytes(tflite)
        out = work / "out"
        cmd = [
            sys.executable,
            "-m",
            "ethosu.vela",
            str(src),
            *config.args(),
            "--output-dir",
            str(out),
            "--verbose-performance",
            "--show-cpu-operations",
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        except FileNotFoundError as e:  # pragma: no cover - python itself missing
            raise TinycError(f"cannot run Vela: {e}") from None
        log = proc.stdout + proc.stderr
        compiled = out / f"{name}_vela.tflite"
        if proc.returncode != 0 or not compiled.exists():
            tail = " ".join(log.strip().splitlines()[-3:])[-400:]
            raise TinycError(f"Vela failed on {name} (exit {proc.returncode}): {tail}")
        model = compiled.read_bytes()
        summary = _summary(out)
        per_layer = _per_layer(out)
    original = _operators(tflite)
    remaining = _operators(model)
    reasons = parse_fallback_reasons(log)
    cpu = [
        CpuOp(kind, out_name, reasons.get(out_name, []))
        for kind, out_name in remaining
        if kind != f"CUSTOM:{VELA_CUSTOM_CODE}"
    ]

    def num(key: str) -> float:
        try:
            return float(summary[key])
        except (KeyError, ValueError):
            raise TinycError(f"Vela's summary has no usable {key!r} column") from None

    report = VelaReport(
        accelerator=config.accelerator,
        system_config=config.system_config,
        memory_mode=config.memory_mode,
        npu_clock_hz=num("core_clock"),
        cycles_npu=int(num("cycles_npu")),
        cycles_total=int(num("cycles_total")),
        inference_time_s=num("inference_time"),
        sram_bytes=round(num("sram_memory_used") * KIB),
        off_chip_flash_bytes=round(num("off_chip_flash_memory_used") * KIB),
        on_chip_flash_bytes=round(num("on_chip_flash_memory_used") * KIB),
        dram_bytes=round(num("dram_memory_used") * KIB),
        macs=int(num("nn_macs")),
        operators=len(original),
        npu_operators=len(original) - len(cpu),
        cpu_operators=cpu,
        per_layer=per_layer,
        board_clock_hz=board_clock_hz,
    )
    return VelaResult(model, report, log)


def estimate_npu(g: Any, board: Any) -> VelaReport:
    """Vela's figures for ``g`` (an int8 Graph) on ``board``'s NPU: what ``tinyc estimate``
    reports for the NPU part of an Ethos-U board."""
    from tinyc.backends.tflm.writer import write_tflite

    if board.npu is None:
        raise TinycError(f"board {board.name} has no NPU")
    if not g.is_quantized:
        raise TinycError(f"the {board.npu.name} NPU runs int8 models only; quantize {g.name} first")
    config = VelaConfig.for_npu(board.npu.name)
    return run_vela(write_tflite(g), config, g.name, board_clock_hz=board.clock_hz).report

"""The board's own image in Renode: the generated Robot test per Renode board, and
``validate --emulator renode`` bit-exact with the reference interpreter.

Renode comes from ``$RENODE`` or the relocatable build in ``../shared/renode`` (it needs Debian's
Mono: .ci/run installs it); without either these tests are skipped with a plain message."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import FAST_INT8, INT8_TFLITE, MODELS, model_path

from tinyc.boards import list_boards
from tinyc.cli import cli

SHARED_RENODE = MODELS.parent / "renode" / "renode"
RENODE_BOARDS = sorted(b.name for b in list_boards() if b.renode_platform)
KWS = INT8_TFLITE["kws_ref_model"]

pytestmark = pytest.mark.qemu


def _renode() -> Path:
    given = os.environ.get("RENODE")
    path = Path(given) if given else SHARED_RENODE
    if not path.is_file():
        pytest.skip(f"Renode not found (set RENODE, or put the shared build at {SHARED_RENODE})")
    if shutil.which("mono") is None:
        pytest.skip("Renode needs Mono (apt-get install mono-runtime, see ../shared/renode)")
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed")
    return path


@pytest.fixture
def renode_env(monkeypatch) -> Path:
    path = _renode()
    monkeypatch.setenv("RENODE", str(path))
    return path


def _cli(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return r.exit_code, r.output


def test_renode_boards_are_the_modelled_chips():
    assert RENODE_BOARDS == [
        "arduino-nano-33-ble",
        "disco-f746ng",
        "nrf52840dk",
        "nucleo-f746",
        "nucleo-h743zi2",
        "stm32f4-discovery",
    ]


@pytest.fixture(scope="module")
def robot_results(tmp_path_factory) -> dict[str, str]:
    """A kws project per Renode board, built with ``make board``; their generated Robot tests
    run by one ``renode-test`` call. Board -> status."""
    renode = _renode()
    root = tmp_path_factory.mktemp("robot")
    robots = {}
    for board in RENODE_BOARDS:
        out = root / board
        code, text = _cli("compile", str(model_path(KWS)), "--board", board, "-o", str(out))
        assert code == 0, text
        subprocess.run(["make", "-C", str(out), "board"], check=True, capture_output=True)
        robots[board] = next((out / "renode").glob("*.robot"))
    r = subprocess.run(
        [str(renode.parent / "renode-test"), "-r", str(root / "out"), *map(str, robots.values())],
        capture_output=True,
        text=True,
        timeout=900,
    )
    # robot_output.xml keeps one of the same-named suites only: read renode-test's own lines
    verdicts = dict(re.findall(r"Suite (\S+\.robot) (finished successfully|failed)", r.stdout))
    status = {b: verdicts.get(str(robot), "not run") for b, robot in robots.items()}
    assert any(v != "not run" for v in status.values()), r.stdout[-2000:]
    return status


@pytest.mark.parametrize("board", RENODE_BOARDS)
def test_generated_robot_test_passes(robot_results, board):
    assert robot_results[board] == "finished successfully", robot_results


def _validate(model: str, board: str, emulator: str) -> dict:
    rel = INT8_TFLITE[model]
    cases = model_path(rel).parent / "reference_io" / Path(rel).stem
    code, text = _cli(
        "validate", str(model_path(rel)), "--board", board, "--inputs", str(cases),
        "--emulator", emulator, "--json",
    )  # fmt: skip
    assert code == 0, text
    return json.loads(text)


@pytest.mark.parametrize(
    "model,board",
    [
        ("kws_ref_model", "nucleo-f746"),
        ("ad01_int8", "nrf52840dk"),
        ("trained_lstm_int8", "stm32f4-discovery"),
        ("pretrainedResnet_quant", "nucleo-h743zi2"),
    ],
)
def test_validate_in_renode_matches_qemu(renode_env, model, board):
    """The board image in Renode is bit-exact with the interpreter, and executes the same
    number of instructions per inference as the twin's build in QEMU (same model code; the
    two count the benchmark markers' call slightly differently)."""
    renode = _validate(model, board, "renode")
    assert renode["emulator"] == "renode" and renode["ok"] and renode["bit_exact"]
    assert len(renode["cases"]) >= 2
    qemu = _validate(model, board, "qemu")
    n_r, n_q = renode["instructions_per_inference"], qemu["instructions_per_inference"]
    assert abs(n_r - n_q) <= max(64, n_q // 1000), (n_r, n_q)
    assert 0 < renode["stack_used_bytes"] <= qemu["stack_used_bytes"] + 64


@pytest.mark.slow
@pytest.mark.parametrize("board", ["nucleo-f746", "nrf52840dk", "stm32f4-discovery"])
@pytest.mark.parametrize("model", FAST_INT8)
def test_every_shared_int8_model_in_renode(renode_env, model, board):
    report = _validate(model, board, "renode")
    assert report["bit_exact"], report["cases"]


def test_renode_run_of_a_project(renode_env, tmp_path):
    out = tmp_path / "p"
    code, text = _cli("compile", str(model_path(KWS)), "--board", "nrf52840dk", "-o", str(out))
    assert code == 0, text
    code, text = _cli("run", str(out), "--emulator", "renode")
    assert code == 0, text
    assert "(Renode nrf52840dk_nrf52840)" in text and "bit-exact" in text


def _tinyc_env(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tinyc.cli", *args],
        capture_output=True, text=True, timeout=600, env={**os.environ, **env},
    )  # fmt: skip


def _clean_error(r: subprocess.CompletedProcess[str], needle: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tinyc: error: "), r.stderr
    assert needle in lines[0], lines[0]


def test_board_without_renode_model_is_refused(renode_env):
    sine = str(model_path(INT8_TFLITE["hello_world_int8"]))
    r = _tinyc_env({}, "run", sine, "--board", "rpi-pico", "--emulator", "renode")
    _clean_error(r, "board rpi-pico has no Renode model")
    r = _tinyc_env({}, "validate", sine, "--board", "nucleo-l4r5zi", "--emulator", "renode")
    _clean_error(r, "board nucleo-l4r5zi has no Renode model")


def test_missing_renode_is_a_clear_error(tmp_path):
    sine = str(model_path(INT8_TFLITE["hello_world_int8"]))
    args = ("run", sine, "--board", "nucleo-f746", "--emulator", "renode")
    r = _tinyc_env({"RENODE": str(tmp_path / "nowhere" / "renode")}, *args)
    _clean_error(r, "is not an executable Renode launcher")
    no_path = {"RENODE": "", "PATH": str(Path(sys.executable).parent)}
    r = _tinyc_env(no_path, *args)
    _clean_error(r, "Renode not found")

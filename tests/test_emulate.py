"""Firmware projects: rendering, cross-builds, QEMU runs with instruction counts, host builds.

The model is a hand-written fixture (tests/fixtures/add_one_model: y = x + 1 over 64 int8 values
in the arena) implementing the C backend's API, so these tests do not depend on the backend.
Tests that need arm-none-eabi-gcc and qemu-system-arm are marked ``qemu`` and skip without them.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest

from tinyc.boards import list_boards, load_board
from tinyc.emulate import (
    BuildError,
    build_firmware,
    elf_sizes,
    elf_symbol,
    render_project,
    run_emulated,
    run_host,
)
from tinyc.emulate.plugin import _apply_debian_patches, _file_diff, policy_origins
from tinyc.errors import TinycError

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "add_one_model"
X = (np.arange(64) - 32).astype(np.int8)
Y = (X.astype(np.int16) + 1).astype(np.int8)
#: one board per core; the instruction counts are those of the twin QEMU machine
CORE_BOARDS = ["nucleo-l4r5zi", "nucleo-f746", "corstone-300", "rpi-pico"]


def make_project(root: Path, board: str, x: np.ndarray = X, **kw) -> Path:
    """A project for ``board`` with the fixture model in model/ and the API header in runtime/."""
    out = root / board
    out.mkdir(parents=True)
    render_project(out, board, "add_one", [x], [Y], **kw)
    (out / "model").mkdir()
    (out / "runtime").mkdir()
    for f in ("model.h", "model.c"):
        shutil.copy(FIXTURE / f, out / "model" / f)
    shutil.copy(REPO / "tinyc" / "runtime" / "tinyc_api.h", out / "runtime")
    return out


def _read_tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


# ---------------------------------------------------------------------------------------------
# rendering (no tools needed)


@pytest.mark.parametrize("board", ["nucleo-f746", "rpi-pico", "corstone-300"])
def test_render_is_deterministic(tmp_path, board):
    a = make_project(tmp_path / "a", board)
    b = make_project(tmp_path / "b", board)
    ta, tb = _read_tree(a), _read_tree(b)
    assert ta == tb
    assert "board/hw/linker.ld" in ta and "board/emu/linker.ld" in ta
    assert ta["data/input_0.bin"] == X.tobytes() and ta["data/expected_0.bin"] == Y.tobytes()
    # other test data changes the embedded input, nothing else of the skeleton
    c = make_project(tmp_path / "c", board, x=X[::-1].copy())
    tc = _read_tree(c)
    changed = {k for k in ta if ta[k] != tc[k]}
    assert changed == {"app/test_data.c", "data/input_0.bin"}


def test_render_places_regions(tmp_path):
    out = make_project(tmp_path, "nucleo-f746", arena_bytes=100_000)
    hw = (out / "board/hw/linker.ld").read_text()
    assert re.search(r"DTCM\s+\(rwx\) : ORIGIN = 0x20000000, LENGTH = 0x10000", hw)
    assert re.search(r"\.tinyc_arena \(NOLOAD\).*?\} > SRAM1", hw, re.S)
    assert re.search(r"\.stack \(NOLOAD\).*?\} > DTCM", hw, re.S)
    emu = (out / "board/emu/linker.ld").read_text()
    assert re.search(r"\.tinyc_arena \(NOLOAD\).*?\} > PSRAM", emu, re.S)
    # larger than every on-chip RAM region of the F746: rejected, naming the largest
    with pytest.raises(TinycError, match="does not fit in any RAM region of board nucleo-f746"):
        render_project(tmp_path, "nucleo-f746", "m", [X], arena_bytes=300_000)

    def arena_region(board: str, arena_bytes: int) -> str:
        d = tmp_path / f"{board}-{arena_bytes}"
        d.mkdir()
        render_project(d, board, "m", [X], arena_bytes=arena_bytes)
        m = re.search(
            r"\.tinyc_arena \(NOLOAD\).*?\} > (\w+)", (d / "board/hw/linker.ld").read_text(), re.S
        )
        assert m
        return m.group(1)

    assert arena_region("nucleo-h743zi2", 100_000) == "AXI_SRAM"  # the board's default
    assert arena_region("nucleo-l4r5zi", 300_000) == "SRAM3"  # default SRAM3 (384 KB) holds it
    # the twin of the Corstone-300 moves a 5 MB arena from its 4 MB SRAM to DDR
    d = tmp_path / "cs300"
    d.mkdir()
    render_project(d, "corstone-300", "m", [X], arena_bytes=5 << 20, layout={"arena": "ddr"})
    emu = (d / "board/emu/linker.ld").read_text()
    assert re.search(r"\.tinyc_arena \(NOLOAD\).*?\} > DDR", emu, re.S)
    assert arena_region("stm32f4-discovery", 100_000) == "SRAM"
    # the nRF52840 keeps stack and arena in its one 256 KB RAM: 16 KB of stack leave 240 KB
    assert arena_region("nrf52840dk", 240 * 1024) == "RAM"
    with pytest.raises(TinycError, match="does not fit"):
        arena_region("nrf52840dk", 240 * 1024 + 1)
    with pytest.raises(TinycError, match="layout role 'heap'"):
        render_project(tmp_path, "stm32f4-discovery", "m", [X], layout={"heap": "sram"})
    with pytest.raises(TinycError, match="no memory region 'dtcm'"):
        render_project(tmp_path, "stm32f4-discovery", "m", [X], layout={"arena": "dtcm"})
    with pytest.raises(TinycError, match="test input"):
        render_project(tmp_path, "stm32f4-discovery", "m", [])


def test_workflow_and_renode_files(tmp_path):
    yaml = pytest.importorskip("yaml")
    out = make_project(tmp_path, "nucleo-f746")
    wf = yaml.safe_load((out / ".github/workflows/tinyc-firmware.yml").read_text())
    steps = wf["jobs"]["firmware"]["steps"]
    runs = [s.get("run", "") for s in steps]
    assert any("qemu-system-arm" in r and "gcc-arm-none-eabi" in r for r in runs)
    assert "make board" in runs and "make run-emu" in runs
    assert any(r.startswith("make run-host") for r in runs)
    assert True in wf or "on" in wf  # YAML 1.1 reads the `on:` key as True
    resc = (out / "renode/nucleo-f746.resc").read_text()
    board = load_board("nucleo-f746")
    assert f"LoadPlatformDescription @{board.renode_platform}" in resc
    assert f"showAnalyzer {board.renode_uart}" in resc
    assert "sysbus LoadELF $elf" in resc and "build/board/firmware.elf" in resc
    robot = (out / "renode/add_one.robot").read_text()
    assert "include @${CURDIR}/nucleo-f746.resc" in robot
    assert "sysbus.usart3" in robot and "build/board/firmware.elf" in robot
    for kw in ("Create Terminal Tester", "Start Emulation", "tinyc: (PASS|FAIL)"):
        assert kw in robot
    renode_steps = [s for s in steps if s.get("uses", "").startswith("antmicro/renode-test")]
    assert len(renode_steps) == 1 and renode_steps[0]["with"]["tests-to-run"] == "./renode/*.robot"
    assert re.search(r"^\*\*\* Test Cases \*\*\*$", robot, re.M)
    # boards without an upstream Renode platform get no Renode files; the RP2040 board firmware
    # builds from the project alone (tinyc's own boot2), so its workflow builds it too
    pico = make_project(tmp_path, "rpi-pico")
    assert not (pico / "renode").exists()
    wf = yaml.safe_load((pico / ".github/workflows/tinyc-firmware.yml").read_text())
    assert "make board" in [s.get("run") for s in wf["jobs"]["firmware"]["steps"]]
    assert not any("renode" in s.get("uses", "") for s in wf["jobs"]["firmware"]["steps"])


# ---------------------------------------------------------------------------------------------
# plugin set-up helpers (no network)

POLICY = """qemu-system-arm:
  Installed: 1:7.2+dfsg-7+deb12u18+b3
  Candidate: 1:7.2+dfsg-7+deb12u18+b3
  Version table:
 *** 1:7.2+dfsg-7+deb12u18+b3 500
        500 http://deb.example.org/debian bookworm/main amd64 Packages
        100 /var/lib/dpkg/status
     1:7.2+dfsg-7+deb12u15 500
        500 http://deb.example.org/debian-security bookworm-security/main amd64 Packages
"""


def test_policy_origins():
    assert policy_origins(POLICY, "1:7.2+dfsg-7+deb12u18+b3") == [
        ("http://deb.example.org/debian", "bookworm", "main")
    ]
    assert policy_origins(POLICY, "1:7.2+dfsg-7+deb12u15") == [
        ("http://deb.example.org/debian-security", "bookworm-security", "main")
    ]
    assert policy_origins(POLICY, "9.9") == []


def test_debian_patches_to_the_header_are_applied(tmp_path):
    if shutil.which("patch") is None:
        pytest.skip("patch not installed")
    header = b"line 1\nline 2\nline 3\n"
    patch = (
        "Description: example\n"
        "--- a/hw/other.c\n+++ b/hw/other.c\n@@ -1 +1 @@\n-x\n+y\n"
        "--- a/include/qemu/qemu-plugin.h\n+++ b/include/qemu/qemu-plugin.h\n"
        "@@ -1,3 +1,3 @@\n line 1\n-line 2\n+line two\n line 3\n"
    )
    assert _file_diff(patch, "include/qemu/qemu-plugin.h").startswith("--- a/include/qemu")
    assert "other.c" not in _file_diff(patch, "include/qemu/qemu-plugin.h")
    tar_path = tmp_path / "qemu_1.debian.tar.xz"
    with tarfile.open(tar_path, "w:xz") as tar:
        for name, data in (("series", b"fix.patch\n"), ("fix.patch", patch.encode())):
            info = tarfile.TarInfo(f"debian/patches/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert _apply_debian_patches(tar_path, header) == b"line 1\nline two\nline 3\n"


# ---------------------------------------------------------------------------------------------
# cross-builds and QEMU runs


@pytest.fixture(scope="module")
def tools():
    missing = [
        t for t in ("arm-none-eabi-gcc", "qemu-system-arm", "make", "gcc") if not shutil.which(t)
    ]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed")


@pytest.fixture(scope="module")
def core_runs(tools, tmp_path_factory):
    """board -> (project, {passes: (elf, run, second run)}): the fixture built with 1, 2 and 3
    passes and run twice each; computed on first use per board."""
    root = tmp_path_factory.mktemp("cores")
    cache: dict[str, tuple[Path, dict]] = {}

    def get(board: str) -> tuple[Path, dict]:
        if board not in cache:
            project = make_project(root, board)
            runs = {}
            for passes in (1, 2, 3):
                elf = build_firmware(
                    project,
                    "emu",
                    build_dir=project / f"build-{passes}",
                    make_vars={"EXTRA_CFLAGS": f"-DFIXTURE_PASSES={passes}"},
                )
                runs[passes] = (elf, run_emulated(elf, board, [X]), run_emulated(elf, board, [X]))
            cache[board] = (project, runs)
        return cache[board]

    return get


@pytest.mark.qemu
@pytest.mark.parametrize("board", CORE_BOARDS)
def test_emulated_fixture(core_runs, board):
    project, runs = core_runs(board)
    counts = {}
    for passes, (elf, first, second) in runs.items():
        assert first.outputs == [Y.tobytes()]
        assert first.instructions == second.instructions  # deterministic
        assert first.total_instructions == second.total_instructions
        assert first.total_instructions > first.instructions > 0
        counts[passes] = first.instructions
        # stack: the fixture's 256-byte scratch buffer is seen, within the reserved stack
        assert 256 < first.stack_inference_bytes < first.stack_bytes < first.stack_size == 16384
        assert first.stack_inference_bytes < 1024
        sizes = elf_sizes(elf)
        assert sizes["arena"] == 128 and sizes["stack"] == 16384
        assert sizes["flash"] == sizes["text"] + sizes["rodata"] + sizes["data"]
        assert sizes["ram"] == sizes["data"] + sizes["bss"] + sizes["arena"] + sizes["stack"]
        assert 1000 < sizes["text"] < 8000
    per_pass = counts[2] - counts[1]
    assert per_pass > 0 and counts[3] - counts[2] == per_pass  # the count scales with the work
    # at least one instruction per 16 int8 elements (MVE), at most a few per element
    assert 64 / 16 <= per_pass <= 64 * 6


@pytest.mark.qemu
def test_instruction_counts_differ_by_core(core_runs):
    per_pass = {}
    for board in CORE_BOARDS:
        _, runs = core_runs(board)
        per_pass[load_board(board).core] = runs[2][1].instructions - runs[1][1].instructions
    # MVE processes 16 int8 lanes per instruction; the M0+ has no SIMD at all
    assert per_pass["cortex-m55"] < per_pass["cortex-m4"] <= per_pass["cortex-m0plus"]


@pytest.mark.qemu
def test_markers_and_sizes(core_runs):
    project, runs = core_runs("nucleo-f746")
    elf = runs[1][0]
    begin, end = elf_symbol(elf, "tinyc_bench_begin"), elf_symbol(elf, "tinyc_bench_end")
    assert begin != end and begin % 2 == 0 and end % 2 == 0
    with pytest.raises(TinycError, match="no symbol nope"):
        elf_symbol(elf, "nope")
    with pytest.raises(TinycError, match="not an ELF"):
        elf_sizes(project / "Makefile")


@pytest.mark.qemu
@pytest.mark.parametrize("board", list_boards(), ids=lambda b: b.name)
def test_warning_free_builds(tools, tmp_path, board):
    """Each board's firmware, emulated twin and host builds: -Wall -Wextra -Werror, no warning."""
    project = make_project(tmp_path, board.name)
    r = subprocess.run(
        ["make", "-j2", "-C", str(project), "board", "emu", "host"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert r.returncode == 0, r.stdout
    assert "warning:" not in r.stdout.lower()
    elf = project / "build/board/firmware.elf"
    code = board.region(board.layout["code"])
    assert elf_symbol(elf, "tinyc_vectors") == code.base + (256 if board.boot2 else 0)
    sizes = elf_sizes(elf)
    assert sizes["stack"] == 16384 and sizes["arena"] == 128
    arena = board.region(board.layout["arena"])
    assert arena.base <= elf_symbol(elf, "arena") < arena.end
    twin_code = board.twin().region(board.twin().layout["code"])
    assert elf_symbol(project / "build/emu/firmware.elf", "tinyc_vectors") == twin_code.base


@pytest.mark.qemu
@pytest.mark.parametrize(
    ("board", "machine", "qemu_opts", "layout"),
    [
        ("mps2-an386", "mps2-an386", [], None),
        ("mps2-an500", "mps2-an500", [], None),
        ("mps3-an547", "mps3-an547", [], None),
        # QEMU's STM32F405 model (netduinoplus2) has no CCM RAM; USART2 is its second serial port
        (
            "stm32f4-discovery",
            "netduinoplus2",
            ["-serial", "null"],
            {"data": "sram", "stack": "sram"},
        ),
    ],
)
def test_board_firmware_prints_on_the_uart(tools, tmp_path, board, machine, qemu_opts, layout):
    """The real-board firmware (UART console, embedded input) where QEMU models the UART."""
    project = make_project(tmp_path, board, layout=layout)
    elf = build_firmware(project, "board")
    proc = subprocess.Popen(
        ["qemu-system-arm", "-M", machine, "-display", "none", "-monitor", "none", *qemu_opts,
         "-serial", "stdio", "-kernel", str(elf)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    lines = []
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line.strip())
            if line.startswith("tinyc: done"):
                break
    finally:
        proc.kill()
        proc.wait()
    text = "\n".join(lines)
    assert f"tinyc: add_one on {board}" in text
    assert "tinyc: output 0 fnv1a 0xb840ed05 values -31 -30 -29" in text and "matches" in text
    assert "tinyc: PASS" in text
    m = re.search(r"tinyc: stack (\d+) of 16384 bytes \(inference (\d+)\)", text)
    assert m and 256 < int(m.group(2)) < int(m.group(1)) < 16384


@pytest.mark.qemu
def test_host_build_and_make_targets(tools, tmp_path):
    project = make_project(tmp_path, "nucleo-f746")
    exe = build_firmware(project, "host")
    r = run_host(exe, [X])
    assert r.outputs == [Y.tobytes()] and r.instructions is None
    # the user-facing targets: run and compare with data/expected_*.bin
    for target in ("run-host", "run-emu"):
        done = subprocess.run(["make", "-C", str(project), target], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    assert (project / "build/emu/run/output_0.bin").read_bytes() == Y.tobytes()
    san = ["SAN=-fsanitize=address,undefined -fno-sanitize-recover=all", "BUILD=build-san"]
    done = subprocess.run(
        ["make", "-C", str(project), "run-host", *san], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # a wrong expected output makes the target fail
    (project / "data/expected_0.bin").write_bytes(X.tobytes())
    done = subprocess.run(["make", "-C", str(project), "run-host"], capture_output=True, text=True)
    assert done.returncode != 0 and "differ" in done.stdout + done.stderr


@pytest.mark.qemu
def test_cmake_builds(tools, tmp_path):
    if shutil.which("cmake") is None:
        pytest.skip("cmake not installed")
    project = make_project(tmp_path, "corstone-300")
    for target, toolchain in (("emu", True), ("board", True), ("host", False)):
        cmd = [
            "cmake",
            "-S",
            str(project),
            "-B",
            str(project / f"cm-{target}"),
            f"-DTINYC_TARGET={target}",
        ]
        if toolchain:
            cmd.append(f"-DCMAKE_TOOLCHAIN_FILE={project / 'cmake/arm-none-eabi.cmake'}")
        for step in (cmd, ["cmake", "--build", str(project / f"cm-{target}")]):
            r = subprocess.run(step, capture_output=True, text=True)
            assert r.returncode == 0, r.stdout + r.stderr
    r = run_emulated(project / "cm-emu/firmware.elf", "corstone-300", [X])
    assert r.outputs == [Y.tobytes()] and r.instructions
    assert run_host(project / "cm-host/firmware", [X]).outputs == [Y.tobytes()]


@pytest.mark.qemu
def test_run_errors(tools, tmp_path):
    project = make_project(tmp_path, "nucleo-f746")
    elf = build_firmware(project, "emu")
    with pytest.raises(TinycError, match="wrong size.*input_0.bin"):
        run_emulated(elf, "nucleo-f746", [X[:10]])
    with pytest.raises(TinycError, match="cannot open input_0.bin"):
        run_emulated(elf, "nucleo-f746", [])
    faulty = build_firmware(
        project,
        "emu",
        build_dir=project / "build-fault",
        make_vars={"EXTRA_CFLAGS": "-DFIXTURE_FAULT"},
    )
    with pytest.raises(TinycError, match="faulted"):
        run_emulated(faulty, "nucleo-f746", [X])
    (project / "model/model.c").write_text("int broken(void) { return }\n")
    with pytest.raises(BuildError, match=r"model\.c.*error"):
        build_firmware(project, "emu", build_dir=project / "build-broken")


def test_a_path_make_cannot_handle_is_a_clear_error(tmp_path):
    from tinyc.emulate.build import build_firmware

    out = make_project(tmp_path / "with=sign", "mps2-an386")
    with pytest.raises(TinycError, match="make cannot build in .*with=sign.*the path holds '='"):
        build_firmware(out, "emu")

"""Flash-ready projects: the generated README (build, flash, console, expected output), the
board start-up clock set-up (PLL, voltage scaling, flash wait states, caches) and the RP2040
image (tinyc's own boot2 with the boot ROM's checksum, UF2).

The clock sequences are checked three ways: the generated C (values a reviewer can read), the
compiled firmware's ``tinyc_clock_init`` executed in unicorn against register models written
from the reference manuals (tests/clock_models.py; skipped without unicorn), and the emulated
twin and QEMU runs of the board firmware, which must not change (tests/test_emulate.py).
Builds need arm-none-eabi-gcc and make and skip plainly without them.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from test_emulate import Y, make_project

from tinyc.boards import _board_files, _parse, list_boards, load_board
from tinyc.errors import TinycError

REPO = Path(__file__).resolve().parents[1]
#: what the README must show for each flash tool a board file lists
TOOL_COMMANDS = {
    "st-flash": "st-flash --reset write build/board/firmware.bin 0x08000000",
    "stm32cubeprog": "STM32_Programmer_CLI -c port=SWD -w build/board/firmware.hex",
    "openocd": "openocd -f ",
    "pyocd": "pyocd flash -t ",
    "nrfjprog": "nrfjprog -f nrf52 --program build/board/firmware.hex",
    "bossac": "bossac -d --port=ttyACM0 -U -i -e -w build/board/firmware.bin -R",
    "picotool": "picotool load -x build/board/firmware.uf2",
    "uf2": "cp build/board/firmware.uf2 /media/$USER/RPI-RP2/",
    "drive": "/media/$USER/",
    "fvp": "FVP_Corstone_SSE-300_Ethos-U55 -a build/board/firmware.elf",
    "qemu": "qemu-system-arm -M ",
}
#: the tools the issue asks for, per chip family
REQUIRED_TOOLS = {
    "STM32": {"st-flash", "stm32cubeprog", "openocd", "pyocd"},
    "nRF52840": {"pyocd"},
    "RP2040": {"uf2", "picotool"},
}
CLOCK_BOARDS = [b.name for b in list_boards() if b.clock.get("setup", "none") != "none"]


def boot_rom_crc32(data: bytes) -> int:
    """CRC-32/MPEG-2 as the RP2040 datasheet states it (poly 0x04C11DB7, init 0xFFFFFFFF, no
    reflection, no final XOR), bit by bit: independent of the project's table-driven copy."""
    crc = 0xFFFFFFFF
    for byte in data:
        for bit in range(7, -1, -1):
            top = (crc >> 31) ^ ((byte >> bit) & 1)
            crc = ((crc << 1) & 0xFFFFFFFF) ^ (0x04C11DB7 if top else 0)
    return crc


# ---------------------------------------------------------------------------------------------
# rendering (no tools needed)


@pytest.mark.parametrize("board", list_boards(), ids=lambda b: b.name)
def test_readme_says_how_to_build_flash_and_read_the_console(tmp_path, board):
    out = make_project(tmp_path, board.name)
    text = (out / "README.md").read_text()
    assert text.startswith(f"# add_one on the {board.description}\n")
    for tool in board.flash["tools"]:
        assert TOOL_COMMANDS[tool] in text, (board.name, tool)
    family = next((f for f in REQUIRED_TOOLS if board.mcu.startswith(f)), None)
    if family:
        assert REQUIRED_TOOLS[family] <= set(board.flash["tools"]), board.name
    if board.name == "arduino-nano-33-ble":
        assert "bossac" in board.flash["tools"]
    if board.name == "nrf52840dk":
        assert "nrfjprog" in board.flash["tools"]
    # the console: UART, baud rate, 8N1
    assert f"{board.console.name}, {board.console.baud} baud, 8 data bits" in text
    # both builds, the emulated twin
    assert "make board" in text and "-DTINYC_TARGET=board" in text and "make run-emu" in text
    # the self-test output, with the fingerprint the firmware prints (FNV-1a of Y)
    h = 2166136261
    for b in Y.tobytes():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    assert f"tinyc: add_one on {board.name}\ntinyc: clock {board.clock_hz} Hz\n" in text
    assert f"tinyc: output 0 fnv1a 0x{h:08x} values -31 -30 -29" in text
    assert "tinyc: PASS\ntinyc: done" in text
    for note in board.notes:
        assert note in text


def test_readme_of_the_nucleo_f746(tmp_path):
    """The acceptance board, literally."""
    text = (make_project(tmp_path, "nucleo-f746") / "README.md").read_text()
    for line in (
        "st-flash --reset write build/board/firmware.bin 0x08000000",
        "STM32_Programmer_CLI -c port=SWD -w build/board/firmware.hex -v -rst",
        'openocd -f board/st_nucleo_f7.cfg -c "program build/board/firmware.elf verify reset exit"',
        "pyocd flash -t stm32f746zgtx build/board/firmware.elf",
        "cp build/board/firmware.bin /media/$USER/NODE_F746ZG/",
        "USART3, 115200 baud, 8 data bits, no parity, 1 stop bit, TX on PD8, RX on PD9",
        "picocom -b 115200 /dev/ttyACM0",
        "HSI 16 MHz / M 8 x N 216 / P 2 = 216 MHz",
        "voltage scale 1 with over-drive",
        "7 flash wait states",
        "Cortex-M7 L1 instruction and data caches on",
        "tinyc: cycles <cycles> (<cycles / 216> us at 216 MHz)",
    ):
        assert line in text, line


def test_every_project_is_deterministic(tmp_path):
    for board in list_boards():
        a = make_project(tmp_path / "a", board.name)
        b = make_project(tmp_path / "b", board.name)
        files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
        assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
        for rel in files_a:
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), (board.name, rel)


def test_nucleo_f746_clock_code(tmp_path):
    """216 MHz from the PLL, over-drive, 7 wait states and the caches, in the board build's
    code and not in the emulated twin's."""
    out = make_project(tmp_path, "nucleo-f746")
    clock = (out / "board/hw/clock.c").read_text()
    m = re.search(r"TINYC_RCC_PLLCFGR\) = 0x([0-9A-F]{8})u;", clock)
    pll = int(m.group(1), 16)
    pllm, plln, pllp = pll & 0x3F, (pll >> 6) & 0x1FF, 2 * ((pll >> 16) & 3) + 2
    assert (pllm, plln, pllp, (pll >> 22) & 1) == (8, 216, 2, 0)  # from HSI
    assert 16_000_000 // pllm * plln // pllp == 216_000_000
    assert (pll >> 24) & 0xF == 9  # PLLQ: 48 MHz
    acr = int(re.search(r"TINYC_FLASH_ACR\) = 0x([0-9A-F]{8})u;", clock).group(1), 16)
    assert acr & 0xF == 7 and acr & (1 << 9) and acr & (1 << 8)  # 7 WS, ART, prefetch
    cfgr = re.findall(r"TINYC_RCC_CFGR\) = 0x([0-9A-F]{8})u;", clock)
    assert int(cfgr[-1], 16) == (4 << 13) | (5 << 10) | 2  # APB2 /2, APB1 /4, SW = PLL
    for needle in ("1u << 16; /* ODEN */", "1u << 17; /* ODSWEN */", "3u << 14; /* VOS = 11"):
        assert needle in clock
    # flash latency before the switch to the PLL, over-drive before both
    assert clock.index("ODSWEN") < clock.index("TINYC_FLASH_ACR) =") < clock.index("SW = PLL")
    hw, emu = (out / "board/hw/startup.c").read_text(), (out / "board/emu/startup.c").read_text()
    assert "tinyc_enable_caches();\n  tinyc_clock_init();" in hw
    assert "CCR.IC" in hw and "CCR.DC" in hw
    assert "tinyc_clock_init" not in emu and "tinyc_enable_caches" not in emu
    make = (out / "Makefile").read_text()
    board_srcs = re.search(r"^BOARD_SRCS := (.*)$", make, re.M).group(1)
    emu_srcs = re.search(r"^EMU_SRCS := (.*)$", make, re.M).group(1)
    assert "board/hw/clock.c" in board_srcs and "clock" not in emu_srcs
    cmake = (out / "CMakeLists.txt").read_text()
    assert "set(TINYC_GLUE board/hw/clock.c board/hw/console.c)" in cmake
    # the UART divisor follows the clock the set-up reached
    console = (out / "board/hw/console.c").read_text()
    assert "tinyc_console_clock_hz()" in console and "BRR (469 at 54000000 Hz)" in console


@pytest.mark.parametrize("board", list_boards(), ids=lambda b: b.name)
def test_clock_plan_gives_the_clock_estimate_assumes(board):
    plan = board.clock_plan()
    assert plan.sysclk_hz == board.clock_hz
    if plan.setup != "none":
        assert plan.reset_hz == board.reset_clock_hz and plan.console_hz > 0


def test_inconsistent_clock_setups_are_refused():
    good = _board_files()["nucleo-f746"]
    with pytest.raises(TinycError, match="gives 200 MHz but clock_hz is 216 MHz"):
        _parse("nucleo-f746", good.replace("n = 216,", "n = 200,"))
    with pytest.raises(TinycError, match="PCLK1 108 MHz above 54 MHz"):
        _parse("nucleo-f746", good.replace("apb1_div = 4", "apb1_div = 2"))
    with pytest.raises(TinycError, match="7 flash wait states needed"):
        _parse("nucleo-f746", good.replace("flash_wait_states = 7", "flash_wait_states = 6"))
    pico = _board_files()["rpi-pico"]
    with pytest.raises(TinycError, match="VCO 2400 MHz not in 750..1600 MHz"):
        _parse("rpi-pico", pico.replace("fbdiv = 125", "fbdiv = 200"))


# ---------------------------------------------------------------------------------------------
# builds


@pytest.fixture(scope="module")
def gcc():
    missing = [t for t in ("arm-none-eabi-gcc", "make", "python3") if not shutil.which(t)]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed")


@pytest.fixture(scope="module")
def built(gcc, tmp_path_factory):
    """board -> project with `make board` done (once per board)."""
    root = tmp_path_factory.mktemp("boards")
    cache: dict[str, Path] = {}

    def get(board: str) -> Path:
        if board not in cache:
            project = make_project(root, board)
            r = subprocess.run(
                ["make", "-j2", "-C", str(project), "board"],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            assert r.returncode == 0, r.stdout
            assert "warning:" not in r.stdout.lower()
            cache[board] = project
        return cache[board]

    return get


@pytest.fixture(scope="module")
def uc():
    return pytest.importorskip("unicorn")


def _cpu(board) -> str:
    return {"cortex-m0plus": "CORTEX_M0", "cortex-m4": "CORTEX_M4", "cortex-m7": "CORTEX_M7"}[
        board.core
    ]


def _run_clock_init(project: Path, board, model_name: str):
    import clock_models as cm

    peripherals = {
        "stm32h7": cm.H7_PERIPHERALS,
        "rp2040": [(0x40000000, 0x70000)],
    }.get(board.clock["setup"], [(0x40000000, 0x30000)])
    m = cm.load(project / "build/board/firmware.elf", board, peripherals, _cpu(board))
    getattr(cm, f"model_{model_name}")(m)
    m.call("tinyc_clock_init")
    return m


@pytest.mark.parametrize("name", CLOCK_BOARDS)
def test_clock_init_reaches_the_nominal_clock(built, uc, name):
    """The compiled tinyc_clock_init, run against a model of the chip's clock registers,
    leaves them giving the board's clock, with the flash wait states set before the switch."""
    import clock_models as cm

    board = load_board(name)
    setup = board.clock["setup"]
    model = {"stm32f4": "stm32f4f7", "stm32f7": "stm32f4f7"}.get(setup, setup)
    m = _run_clock_init(built(name), board, model)
    assert m.call("tinyc_clock_error") == 0, m.c_string(m.call("tinyc_clock_error"))
    assert m.call("tinyc_clock_hz") == board.clock_hz
    # (the nRF52 UART's baud register does not depend on the clock: no such call there)
    uart_hz = m.call("tinyc_console_clock_hz") if "tinyc_console_clock_hz" in m.symbols else None
    if setup in ("stm32f4", "stm32f7"):
        d = cm.decode_stm32f4f7(m)
        assert d["sysclk"] == d["hclk"] == board.clock_hz
        assert d["latency"] == board.flash_wait_states
        bus = board.console.params["bus"]
        assert uart_hz == d["pclk1" if bus == "apb1" else "pclk2"]
        limits = (54, 108) if setup == "stm32f7" else (42, 84)
        assert d["pclk1"] <= limits[0] * 10**6 and d["pclk2"] <= limits[1] * 10**6
        switch = [i for i, v in m.written(cm.F_RCC + 8) if v & 3 == 2][0]
        assert max(i for i, _ in m.written(cm.F_FLASH)) < switch
        assert (d["pwr_cr1"] >> 14) & 3 == (3 if setup == "stm32f7" else 1)
        if setup == "stm32f7":  # over-drive on and switched before the PLL is selected
            assert d["pwr_cr1"] & (3 << 16) == 3 << 16
            odsw = [i for i, v in m.written(cm.F_PWR) if v & (1 << 17)][0]
            assert odsw < switch and d["acr"] & (1 << 9)  # ART accelerator
        else:
            assert d["acr"] & (7 << 8) == 7 << 8  # prefetch, I-cache, D-cache
    elif setup == "stm32h7":
        d = cm.decode_stm32h7(m)
        assert d["cpu"] == board.clock_hz and d["hclk"] == 240_000_000
        assert d["vco"] <= 960_000_000 and d["pll1rge"] == 3  # 16 MHz reference
        assert max(d["apb1"], d["apb2"], d["apb3"], d["apb4"]) <= 120_000_000
        assert uart_hz == d["apb1"]
        assert (d["vos"], d["oden"], d["ldo"]) == (3, 1, 2)  # VOS1 + ODEN = VOS0, LDO locked
        assert d["latency"] == board.flash_wait_states
        switch = [i for i, v in m.written(cm.H_RCC + 0x10) if v & 7 == 3][0]
        assert max(i for i, _ in m.written(cm.H_FLASH)) < switch
        assert max(i for i, _ in m.written(cm.H_SYSCFG + 0x2C)) < switch
    elif setup == "stm32l4plus":
        d = cm.decode_stm32l4plus(m)
        assert d["sysclk"] == d["hclk"] == d["pclk1"] == uart_hz == board.clock_hz
        assert d["boost"] and d["vos"] == 1 and d["pllren"]
        assert d["latency"] == board.flash_wait_states
        cfgr = m.written(cm.L_RCC + 8)
        switch = [i for i, v in cfgr if v & 3 == 3][0]
        assert (cfgr[[i for i, _ in cfgr].index(switch)][1] >> 4) & 0xF == 8  # AHB / 2 first
        assert max(i for i, _ in m.written(cm.L_FLASH)) < switch
        boost = [i for i, v in m.written(cm.L_PWR + 0x80) if not v & (1 << 8)][0]
        assert boost < switch
    elif setup == "nrf52":
        assert m.read(0x4001E540) & 1  # NVMC instruction cache on
        assert [v for _, v in m.written(0x40000000)] == [1]  # TASKS_HFCLKSTART: HFXO
    elif setup == "rp2040":
        d = cm.decode_rp2040(m)
        assert d["clk_sys"] == board.clock_hz == uart_hz
        assert 750_000_000 <= d["vco"] <= 1_600_000_000 and d["pll_powered"]
        assert d["clk_ref_src"] == 2  # clk_ref from XOSC


def test_clock_init_falls_back_to_the_reset_clock(built, uc):
    """No ready flag ever comes (a simulator without the RCC): the set-up gives up, SYSCLK
    stays on HSI and main() can say why."""
    import clock_models as cm

    board = load_board("nucleo-f746")
    m = cm.load(built("nucleo-f746") / "build/board/firmware.elf", board,
                [(0x40000000, 0x30000)], "CORTEX_M7")  # fmt: skip
    cm.model_stm32f4f7(m, working=False)
    m.call("tinyc_clock_init")
    assert m.c_string(m.call("tinyc_clock_error")) == "HSI not ready"
    assert m.call("tinyc_clock_hz") == m.call("tinyc_console_clock_hz") == 16_000_000
    assert m.read(cm.F_RCC + 8) & 3 == 0  # still on HSI


def _uf2_blocks(data: bytes) -> list[tuple[int, int, int, int, int, bytes]]:
    assert len(data) % 512 == 0
    out = []
    for off in range(0, len(data), 512):
        blk = data[off : off + 512]
        m0, m1, flags, addr, size, n, total, family = struct.unpack("<8I", blk[:32])
        assert (m0, m1, struct.unpack("<I", blk[508:])[0]) == (0x0A324655, 0x9E5D5157, 0x0AB16F30)
        assert flags == 0x2000 and family == 0xE48BFF56 and size == 256
        out.append((addr, n, total, size, flags, blk[32 : 32 + size]))
    return out


def test_rp2040_image_builds_from_the_project_alone(built, tmp_path):
    """make board gives firmware.uf2 (family 0xE48BFF56) whose first 256 bytes are tinyc's
    boot2 with the checksum the boot ROM computes."""
    assert boot_rom_crc32(b"123456789") == 0x0376E6E7  # the CRC-32/MPEG-2 check value
    project = built("rpi-pico")
    image = (project / "build/board/firmware.bin").read_bytes()
    blocks = _uf2_blocks((project / "build/board/firmware.uf2").read_bytes())
    assert [b[0] for b in blocks] == [0x10000000 + 256 * i for i in range(len(blocks))]
    assert [b[1] for b in blocks] == list(range(len(blocks)))
    assert {b[2] for b in blocks} == {len(blocks)} and len(blocks) == -(-len(image) // 256)
    flash = b"".join(b[5] for b in blocks)
    assert flash[: len(image)] == image and not any(flash[len(image) :])
    boot2 = image[:256]
    assert struct.unpack("<I", boot2[252:])[0] == boot_rom_crc32(boot2[:252])
    assert boot2 == (project / "build/board/boot2/boot2.bin").read_bytes()
    code = (project / "build/board/boot2/boot2_code.bin").read_bytes()
    assert boot2[: len(code)] == code and len(code) <= 252
    assert image[256:260] != bytes(4)  # the vector table follows: initial SP ...
    # the project's own checker agrees
    r = subprocess.run(["python3", "tools/rp2040_image.py", "check", "build/board/firmware.uf2"],
                       cwd=project, capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout + r.stderr
    # a corrupted boot loader is refused rather than turned into a UF2 that does not boot
    bad = tmp_path / "bad.bin"
    bad.write_bytes(image[:100] + bytes([image[100] ^ 1]) + image[101:])
    r = subprocess.run(["python3", str(project / "tools/rp2040_image.py"), "uf2", str(bad),
                        str(tmp_path / "bad.uf2")], capture_output=True, text=True)  # fmt: skip
    assert r.returncode != 0 and "checksum" in r.stderr


def test_rp2040_boot2_sets_up_xip_and_enters_the_application(built, uc):
    """boot2 as the boot ROM runs it (copied to 0x20041F00): the XIP SSI set up for 03h reads,
    VTOR at the vector table behind it, its stack pointer loaded, its reset handler entered."""
    from clock_models import _u32
    from unicorn import arm_const as A

    project = built("rpi-pico")
    image = (project / "build/board/firmware.bin").read_bytes()
    emu = uc.Uc(uc.UC_ARCH_ARM, uc.UC_MODE_THUMB)
    emu.ctl_set_cpu_model(A.UC_CPU_ARM_CORTEX_M0)
    for base, size in ((0x10000000, 0x200000), (0x18000000, 0x1000), (0x20000000, 0x42000),
                       (0xE000E000, 0x1000)):  # fmt: skip
        emu.mem_map(base, size)
    emu.mem_write(0x10000000, image)
    emu.mem_write(0x20041F00, image[:256])
    sp, reset = struct.unpack("<2I", image[256:264])
    emu.emu_start(0x20041F01, reset & ~1, count=200)
    assert emu.reg_read(A.UC_ARM_REG_PC) == reset & ~1
    assert emu.reg_read(A.UC_ARM_REG_SP) == sp
    ssi = {off: _u32(emu.mem_read(0x18000000 + off, 4)) for off in (0x0, 0x4, 0x8, 0x14, 0xF4)}
    assert ssi[0x8] == 1  # SSIENR: enabled again
    assert (ssi[0x0] >> 21) & 3 == 0 and (ssi[0x0] >> 16) & 0x1F == 31  # standard SPI, 32 bits
    assert (ssi[0x0] >> 8) & 3 == 3  # EEPROM read: command + address out, data in
    assert ssi[0x4] == 0 and ssi[0x14] == 4  # one frame; SCK = clk_sys / 4
    spi = ssi[0xF4]
    assert (spi >> 24, (spi >> 8) & 3, (spi >> 2) & 0xF, spi & 3) == (0x03, 2, 6, 0)
    assert _u32(emu.mem_read(0xE000ED08, 4)) == 0x10000100  # VTOR


def test_rp2040_boot2_can_be_replaced(built, tmp_path):
    """make board BOOT2=file links another 256-byte boot loader (the UF2 step still checks it)."""
    project = built("rpi-pico")
    other = bytes(range(100)) + bytes(152)
    good = tmp_path / "good.bin"
    good.write_bytes(other + struct.pack("<I", boot_rom_crc32(other)))
    r = subprocess.run(["make", "-C", str(project), "board", "BUILD=build-other", f"BOOT2={good}"],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert (project / "build-other/board/firmware.bin").read_bytes()[:256] == good.read_bytes()
    bad = tmp_path / "bad.bin"
    bad.write_bytes(other + b"\xde\xad\xbe\xef")
    r = subprocess.run(["make", "-C", str(project), "board", "BUILD=build-bad", f"BOOT2={bad}"],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode != 0 and "checksum" in r.stderr


def test_rp2040_cmake_board_build(built, tmp_path):
    if shutil.which("cmake") is None:
        pytest.skip("cmake not installed")
    project = built("rpi-pico")
    b = tmp_path / "cm"
    for step in (
        ["cmake", "-S", str(project), "-B", str(b), "-DTINYC_TARGET=board",
         f"-DCMAKE_TOOLCHAIN_FILE={project / 'cmake/arm-none-eabi.cmake'}"],
        ["cmake", "--build", str(b)],
    ):  # fmt: skip
        r = subprocess.run(step, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
    image = (b / "firmware.bin").read_bytes()
    assert image[:256] == (project / "build/board/boot2/boot2.bin").read_bytes()
    flash = b"".join(blk[5] for blk in _uf2_blocks((b / "firmware.uf2").read_bytes()))
    assert flash[: len(image)] == image


@pytest.mark.qemu
def test_readme_expected_output_is_what_the_firmware_prints(built, tmp_path):
    """On a QEMU board (its UART modelled), the board firmware prints the README's lines."""
    if shutil.which("qemu-system-arm") is None:
        pytest.skip("qemu-system-arm not installed")
    project = built("mps2-an386")
    text = (project / "README.md").read_text()
    block = text.split("## Expected output\n\n```\n", 1)[1].split("```", 1)[0]
    proc = subprocess.Popen(
        ["timeout", "60", "qemu-system-arm", "-M", "mps2-an386", "-display", "none", "-monitor",
         "none", "-serial", "stdio", "-kernel", str(project / "build/board/firmware.elf")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    got = []
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            if line.startswith("tinyc:"):
                got.append(line.rstrip("\r\n"))
            if line.startswith("tinyc: done"):
                break
    finally:
        proc.terminate()  # timeout passes SIGTERM on to QEMU
        proc.wait()
    want = block.strip("\n").split("\n")
    assert len(got) == len(want), got
    for g, w in zip(got, want, strict=True):
        assert re.fullmatch(re.sub(r"<[^>]*>", r"\\d+", re.escape(w)), g), (g, w)


def test_tflm_projects_get_the_same_board_support(tmp_path):
    """The TFLM backend's own Makefile/CMakeLists build the clock set-up and, on the RP2040,
    the boot loader and the UF2 file too (no TFLM needed to render)."""
    import graphs

    from tinyc.compiler import CompileOptions, compile_model

    g = graphs.fully_connected(1, 1, 16, 8)
    report = compile_model(g, CompileOptions(board="rpi-pico", backend="tflm"), tmp_path / "p")
    out = tmp_path / "p"
    for f in ("README.md", "board/hw/clock.c", "board/hw/boot2.S", "tools/rp2040_image.py",
              "cmake/rp2040_image.cmake"):  # fmt: skip
        assert f in report.files and (out / f).is_file(), f
    cmake = (out / "CMakeLists.txt").read_text()
    assert "set(TINYC_GLUE board/hw/clock.c board/hw/console.c)" in cmake
    assert "include(cmake/rp2040_image.cmake)" in cmake
    assert "firmware.bin firmware.uf2))" in (out / "Makefile").read_text()
    readme = (out / "README.md").read_text()
    assert "TensorFlow Lite Micro backend" in readme and "TFLM_DIR" in readme
    assert "picotool load -x build/board/firmware.uf2" in readme

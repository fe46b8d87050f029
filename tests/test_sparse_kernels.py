"""Sparse weights (tinyc_sparse.h, tinyc.backends.cmsis.emit.sparse): the encoding round
trips; FULLY_CONNECTED, CONV_2D 1x1 and 3x3 with pruned int8 weights run bit-exact with the
reference interpreter on the host (every target's kernels) and in QEMU on M0+, M4, M7 and
M55; the backend keeps the dense kernels below the cost model's break-even; estimate is
within 10 % of the measured instructions of sparse layers."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import graphs
import numpy as np
import pytest
from c_host import build_host, run_host

from tinyc import interpreter
from tinyc.backends.cmsis.codegen import generate_model
from tinyc.backends.cmsis.emit import sparse
from tinyc.compiler import CompileOptions, compile_model
from tinyc.ir.graph import Graph
from tinyc.modelio import random_inputs

BOARDS = {"M0+": "rpi-pico", "M4": "nucleo-l4r5zi", "M7": "nucleo-f746", "M55": "corstone-300"}
needs_arm = pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
    reason="arm-none-eabi-gcc and qemu-system-arm are not installed",
)


def pruned(g: Graph, sparsity: float, seed: int = 0) -> Graph:
    """Zero a random ``sparsity`` of the layer's weights (unstructured)."""
    w = g.tensors["w"]
    keep = np.random.default_rng(seed).random(w.data.shape) >= sparsity
    w.data = np.where(keep, w.data, 0).astype(np.int8)
    return g


def block_pruned(g: Graph, sparsity: float, seed: int = 0) -> Graph:
    """Zero a random ``sparsity`` of the columns of each group of four output channels
    (what --prune-block 4 leaves); a short last group is pruned alike."""
    w = g.tensors["w"]
    out_c, k = w.data.shape
    ng = -(-out_c // sparse.GROUP)
    keep = np.random.default_rng(seed).random((ng, k)) >= sparsity
    keep = np.repeat(keep, sparse.GROUP, axis=0)[:out_c]
    w.data = np.where(keep, np.where(w.data == 0, 1, w.data), 0).astype(np.int8)
    return g


def grouped_cases() -> list[tuple[str, Graph]]:
    return [
        ("gfc_k600", block_pruned(graphs.fully_connected(7, 1, 600, 36, "RELU"), 0.8, 1)),
        ("gfc_rows3_oc9", block_pruned(graphs.fully_connected(8, 3, 100, 9), 0.5, 2)),
        ("gfc_90", block_pruned(graphs.fully_connected(9, 1, 256, 64, "RELU6", False), 0.9, 3)),
    ]


GROUPED = grouped_cases()


def cases() -> list[tuple[str, Graph]]:
    return [
        ("fc_k600", pruned(graphs.fully_connected(1, 1, 600, 37, "RELU"), 0.8, 1)),
        ("fc_rows7", pruned(graphs.fully_connected(2, 7, 100, 9), 0.5, 2)),
        ("fc_95", pruned(graphs.fully_connected(3, 1, 256, 64, "RELU6", False), 0.95, 3)),
        ("conv1x1", pruned(graphs.conv(4, 6, 7, 8, 10, (1, 1), (1, 1), (1, 1), (0,) * 4), 0.8, 4)),
        (
            "conv3x3",
            pruned(graphs.conv(5, 9, 8, 5, 12, (3, 3), (2, 1), (1, 1), (1,) * 4, "RELU6"), 0.7, 5),
        ),  # fmt: skip
        (
            "conv3x3_dil",
            pruned(graphs.conv(6, 11, 10, 16, 7, (3, 3), (1, 1), (2, 2), (2,) * 4), 0.9, 6),
        ),  # fmt: skip
    ]


CASES = cases()


@pytest.fixture
def forced(monkeypatch):
    monkeypatch.setenv("TINYC_SPARSE", "on")


def test_encoding_round_trips() -> None:
    rng = np.random.default_rng(0)
    for out_c, k, density in [(5, 3, 0.5), (7, 255, 1.0), (4, 256, 0.9), (3, 700, 0.2), (2, 9, 0)]:
        w = rng.integers(-128, 128, (out_c, k)).astype(np.int8)
        w[rng.random(w.shape) >= density] = 0
        sw = sparse.encode(w)
        assert sw.idx.max(initial=0) < sparse.SEG and sw.cnt.max(initial=0) <= sparse.SEG
        assert sw.val.size == np.count_nonzero(w) and sw.nbytes == 2 * sw.val.size + sw.cnt.size
        np.testing.assert_array_equal(sparse.decode(sw, out_c, k), w)


def test_grouped_encoding_round_trips() -> None:
    rng = np.random.default_rng(1)
    for out_c, k, density in [(8, 3, 0.5), (7, 255, 1.0), (4, 256, 0.9), (6, 700, 0.2)]:
        w = rng.integers(-128, 128, (out_c, k)).astype(np.int8)
        w[rng.random(w.shape) >= density] = 0
        sw = sparse.encode_grouped(w)
        assert sw.val.size == sparse.GROUP * sw.idx.size
        assert sw.nbytes == sw.cnt.size + 5 * sw.idx.size
        np.testing.assert_array_equal(sparse.decode_grouped(sw, out_c, k), w)
    _, g = GROUPED[0]
    w = g.tensors["w"].data
    assert sparse.encode_grouped(w).idx.size == np.count_nonzero(w) // sparse.GROUP


@pytest.mark.parametrize("target", ["dsp", "mve", "plain"])
@pytest.mark.parametrize("name, g", CASES + GROUPED, ids=[n for n, _ in CASES + GROUPED])
def test_on_host_bit_exact(name: str, g: Graph, target: str, tmp_path: Path, forced) -> None:
    gen = generate_model(g, g.name, target)
    src = gen.files["model/model.c"]
    assert "tinyc_sp" in src
    assert ("tinyc_spfcg_s8(" in src) == name.startswith("g")
    exe = build_host(gen, tmp_path)
    for seed in range(2):
        case = random_inputs(g, seed)
        ref = interpreter.run(g, case)
        (got,) = run_host(exe, gen, case)
        np.testing.assert_array_equal(got, ref["y"].reshape(got.shape))


def test_dense_and_sparse_code_agree(tmp_path: Path, monkeypatch) -> None:
    """The same pruned weights through the dense and the sparse kernels: the same bytes."""
    _, g = CASES[0]
    case = random_inputs(g, 7)
    outs = []
    for mode in ("off", "on"):
        monkeypatch.setenv("TINYC_SPARSE", mode)
        gen = generate_model(g, g.name, "dsp")
        assert ("tinyc_spfc_s8(" in gen.files["model/model.c"]) == (mode == "on")
        (got,) = run_host(build_host(gen, tmp_path / mode), gen, case)
        outs.append(got)
    np.testing.assert_array_equal(outs[0], outs[1])


def _qemu_failures(core: str, gs: list[tuple[str, Graph]], tmp_path: Path) -> list[str]:
    from tinyc.runner import EmulatedProject

    failures = []
    for name, g in gs:
        project = tmp_path / name
        compile_model(g, CompileOptions(board=BOARDS[core]), project, log=lambda m: None)
        assert "tinyc_sp" in (project / "model" / "model.c").read_text()
        ep = EmulatedProject.build(project)
        for seed in range(2):
            r = ep.run_case(str(seed), random_inputs(ep.graph, seed))
            if not r.bit_exact:
                failures.append(f"{name}: {r.mismatches} values")
    return failures


@needs_arm
@pytest.mark.qemu
@pytest.mark.parametrize("core", list(BOARDS))
def test_in_qemu_bit_exact_fast(core: str, tmp_path: Path, forced) -> None:
    """One FC and one 3x3 convolution per core kind (the one-row and the block paths), and
    the grouped encoding's FC."""
    assert not _qemu_failures(core, [CASES[0], CASES[4], GROUPED[1]], tmp_path)


@needs_arm
@pytest.mark.qemu
@pytest.mark.slow
@pytest.mark.parametrize("core", list(BOARDS))
def test_in_qemu_bit_exact_all(core: str, tmp_path: Path, forced) -> None:
    assert not _qemu_failures(core, CASES + GROUPED, tmp_path)


def _calibrated(target: str) -> bool:
    cal = sparse._calibration(sparse.REFERENCE_CORE[target])
    return cal is not None and cal.kernel("tinyc_spfc_s8") is not None


@pytest.mark.parametrize("target", ["dsp", "mve", "plain"])
def test_dense_below_break_even(target: str, monkeypatch) -> None:
    """The cost model picks: a lightly pruned layer keeps its dense kernel, a heavily pruned
    one goes sparse; the choice follows the costs the model gives."""
    monkeypatch.setenv("TINYC_SPARSE", "auto")
    if not _calibrated(target):
        pytest.skip("sparse kernels not calibrated")
    light = pruned(graphs.fully_connected(11, 1, 256, 64), 0.3, 1)
    heavy = pruned(graphs.fully_connected(11, 1, 256, 64), 0.97, 1)
    costs = sparse.layer_costs(light.nodes[0], light, target)
    assert costs is not None and costs[1] > costs[0]
    assert not sparse.use_sparse(light.nodes[0], light, target)
    assert "tinyc_fc_s8(" in generate_model(light, "m", target).files["model/model.c"]
    costs = sparse.layer_costs(heavy.nodes[0], heavy, target)
    assert costs is not None
    chosen = "tinyc_spfc_s8(" in generate_model(heavy, "m", target).files["model/model.c"]
    assert chosen == (costs[1] < costs[0])
    if target != "mve":  # (Helium's dense kernels win even at 97 % on a layer this small)
        assert chosen


def test_random_dense_weights_stay_dense(monkeypatch) -> None:
    monkeypatch.setenv("TINYC_SPARSE", "on")  # even forced: a few chance zeros are not sparsity
    g = graphs.fully_connected(12, 1, 300, 50)
    assert not sparse.use_sparse(g.nodes[0], g, "dsp")


def test_flash_report_counts_the_compressed_weights(monkeypatch) -> None:
    _, g = CASES[2]
    sizes = {}
    for mode in ("off", "on"):
        monkeypatch.setenv("TINYC_SPARSE", mode)
        sizes[mode] = generate_model(g, g.name, "dsp").const_bytes
    w = g.tensors["w"].data
    saved = w.size - sparse.encode(w).nbytes
    assert sizes["on"] < sizes["off"] - 0.8 * saved


@needs_arm
@pytest.mark.qemu
@pytest.mark.parametrize("core", ["M7", "M55"])
def test_estimate_within_ten_percent(core: str, tmp_path: Path, monkeypatch) -> None:
    """estimate's instructions for a model of two sparse layers vs QEMU's count."""
    from tinyc.estimate import estimate_model
    from tinyc.runner import EmulatedProject

    monkeypatch.setenv("TINYC_SPARSE", "on")
    target = "mve" if core == "M55" else "dsp"
    if not _calibrated(target):
        pytest.skip("sparse kernels not calibrated")
    g = pruned(graphs.fully_connected(21, 1, 512, 128, "RELU"), 0.85, 21)
    est = estimate_model(g, BOARDS[core]).to_json()
    project = tmp_path / "p"
    compile_model(g, CompileOptions(board=BOARDS[core]), project, log=lambda m: None)
    ep = EmulatedProject.build(project)
    r = ep.run_case("0", random_inputs(ep.graph, 0))
    assert r.bit_exact
    assert est["instructions"] == pytest.approx(r.instructions, rel=0.10)


# ---- recurrent gate matrices (tinyc_rnn.h: tinyc_rnn_spgates / tinyc_rnn_spxblock) ---------


def pruned_rnn(case, sparsity: float, seed: int = 0) -> Graph:
    """An int8 recurrent layer (tests/rnn_graphs.py) with a random ``sparsity`` of every gate
    weight zeroed (input and recurrent side)."""
    from rnn_graphs import int8_graph, prune_gates

    return prune_gates(int8_graph(case), sparsity, np.random.default_rng(seed))


def block_pruned_rnn(case, sparsity: float, seed: int = 0) -> Graph:
    """An int8 recurrent layer whose gate matrices lost a random ``sparsity`` of their
    (four units, column) blocks (--prune-block 4): the grouped encoding's pattern."""
    from rnn_graphs import int8_graph, prune_gates

    return prune_gates(int8_graph(case), sparsity, np.random.default_rng(seed), sparse.GROUP)


def rnn_cases(grouped: bool = False) -> list[tuple[str, Graph]]:
    """Pruned LSTM / GRU / RNN layers: scattered zeros, or (``grouped``) zeros in blocks of
    four units (other seeds)."""
    from rnn_graphs import Case

    make = block_pruned_rnn if grouped else pruned_rnn
    s0 = 10 if grouped else 0
    clip = Case("LSTM", batch=2, time=4, input=300, hidden=6, attrs={"cell_clip": 1.0}, seed=s0 + 6)
    lbr = Case("GRU", time=5, input=12, hidden=7, reverse=True, seed=s0 + 8)
    lbr.attrs["linear_before_reset"] = True
    return [
        ("lstm", make(Case("LSTM", time=7, input=10, hidden=9, seed=s0 + 5), 0.8, 1)),
        ("lstm_clip_k300", make(clip, 0.9, 2)),
        ("gru", make(Case("GRU", time=6, input=5, hidden=8, seed=s0 + 7), 0.8, 3)),
        ("gru_lbr", make(lbr, 0.85, 4)),
        ("rnn", make(Case("RNN", time=6, input=9, hidden=11, seed=s0 + 9), 0.8, 5)),
    ]


GROUPED_RNN_CASES = rnn_cases(grouped=True)
RNN_CASES = rnn_cases()


#: (encoding both gate matrices take under TINYC_SPARSE=on, name, graph)
HOST_RNN_CASES = [(sparse.ROW, n, g) for n, g in RNN_CASES] + [
    (sparse.GROUPED, n, g) for n, g in GROUPED_RNN_CASES
]


@pytest.mark.parametrize("target", ["dsp", "mve", "plain"])
@pytest.mark.parametrize(
    "kind, name, g", HOST_RNN_CASES, ids=[f"{k}-{n}" for k, n, _ in HOST_RNN_CASES]
)
def test_recurrent_on_host_bit_exact(
    kind: str, name: str, g: Graph, target: str, tmp_path: Path, forced
) -> None:
    """Pruned LSTM / GRU / RNN gate matrices through the sparse loops, per row (scattered
    zeros) or grouped (zeros in blocks of four units: tinyc_rnn_spggates; GRU: its third
    gate alone, from row 2 * n4): the same bytes as the reference interpreter (every
    target's kernels, input side in blocks and alone)."""
    assert sparse.use_sparse_gates(g.nodes[0], g, target) == (kind, kind)
    gen = generate_model(g, g.name, target)
    src = gen.files["model/model.c"]
    group = sparse.GROUP if kind == sparse.GROUPED else 0
    assert len(re.findall(rf"so_\w+, {group}}}", src)) == 2  # both matrices so encoded
    exe = build_host(gen, tmp_path)
    for seed in range(2):
        case = random_inputs(g, seed)
        ref = interpreter.run(g, case)
        got = run_host(exe, gen, case)
        for name_out, arr in zip(g.outputs, got, strict=True):
            np.testing.assert_array_equal(arr, ref[name_out].reshape(arr.shape))


def test_recurrent_dense_and_sparse_code_agree(tmp_path: Path, monkeypatch) -> None:
    _, g = RNN_CASES[0]
    case = random_inputs(g, 3)
    outs = []
    for mode in ("off", "on"):
        monkeypatch.setenv("TINYC_SPARSE", mode)
        gen = generate_model(g, g.name, "dsp")
        assert ("so_" in gen.files["model/model.c"]) == (mode == "on")
        outs.append(run_host(build_host(gen, tmp_path / mode), gen, case))
    for a, b in zip(*outs, strict=True):
        np.testing.assert_array_equal(a, b)


def test_recurrent_dense_below_break_even(monkeypatch) -> None:
    """The cost model keeps a lightly pruned recurrent layer dense and takes the sparse
    loops for a heavily pruned one on M7's kernels; the estimate follows the choice."""
    from rnn_graphs import Case

    monkeypatch.setenv("TINYC_SPARSE", "auto")
    case = Case("LSTM", time=12, input=32, hidden=24, seed=11)
    light, heavy = pruned_rnn(case, 0.3, 1), pruned_rnn(case, 0.95, 1)
    assert sparse.use_sparse_gates(light.nodes[0], light, "dsp") == (None, None)
    assert "so_" not in generate_model(light, "m", "dsp").files["model/model.c"]
    dense = sparse.recurrent_costs(heavy.nodes[0], heavy, "dsp", (None, None))
    both = sparse.recurrent_costs(heavy.nodes[0], heavy, "dsp", (sparse.ROW, sparse.ROW))
    assert dense is not None and both is not None and both < dense
    # each side takes the cheaper of the two encodings (95 % scattered zeros: a group of
    # four rows still shares few columns, so the grouped one may win)
    chosen = sparse.use_sparse_gates(heavy.nodes[0], heavy, "dsp")
    for side in (0, 1):
        costs = {}
        for kind in (sparse.ROW, sparse.GROUPED):
            sides = (kind, None) if side == 0 else (None, kind)
            costs[kind] = sparse.recurrent_costs(heavy.nodes[0], heavy, "dsp", sides)
        assert chosen[side] == min(costs, key=lambda k: costs[k])
    assert "so_" in generate_model(heavy, "m", "dsp").files["model/model.c"]
    # zeros in blocks of four units: on the recurrent side the grouped loops, cheaper than
    # the per-row ones (the input side's per-row decode serves three steps: either may win)
    blocks = block_pruned_rnn(case, 0.8, 1)
    node = blocks.nodes[0]
    grouped = sparse.recurrent_costs(node, blocks, "dsp", (None, sparse.GROUPED))
    per_row = sparse.recurrent_costs(node, blocks, "dsp", (None, sparse.ROW))
    assert grouped is not None and per_row is not None and grouped < per_row
    assert sparse.use_sparse_gates(node, blocks, "dsp")[1] == sparse.GROUPED


@needs_arm
@pytest.mark.qemu
def test_recurrent_in_qemu_bit_exact_m7(tmp_path: Path, monkeypatch) -> None:
    """A pruned LSTM and GRU through the sparse loops on M7 (QEMU): bit-exact with the
    reference interpreter and with the dense build of the same weights."""
    from tinyc.runner import EmulatedProject

    for name, g in (RNN_CASES[0], RNN_CASES[2]):
        counts = {}
        for mode in ("off", "on"):
            monkeypatch.setenv("TINYC_SPARSE", mode)
            project = tmp_path / f"{name}_{mode}"
            compile_model(g, CompileOptions(board=BOARDS["M7"]), project, log=lambda m: None)
            assert ("so_" in (project / "model" / "model.c").read_text()) == (mode == "on")
            ep = EmulatedProject.build(project)
            r = ep.run_case("0", random_inputs(ep.graph, 0))
            assert r.bit_exact, f"{name} ({mode}): {r.mismatches} values differ"
            counts[mode] = r.instructions
        print(name, counts)


def test_block_pruned_fc_takes_the_grouped_kernel(monkeypatch) -> None:
    """The cost model (auto) gives a block-pruned FC the grouped encoding on DSP cores, where
    it runs in fewer instructions than both the dense and the per-channel sparse kernels,
    and a light pruning keeps the dense one."""
    monkeypatch.setenv("TINYC_SPARSE", "auto")
    cal = sparse._calibration(sparse.REFERENCE_CORE["dsp"])
    if cal is None or cal.kernel("tinyc_spfcg_s8") is None:
        pytest.skip("grouped sparse kernel not calibrated")
    heavy = block_pruned(graphs.fully_connected(31, 1, 640, 128, "RELU"), 0.8, 31)
    node = heavy.nodes[0]
    dense, per_channel = sparse.layer_costs(node, heavy, "dsp")
    _, grouped = sparse.layer_costs(node, heavy, "dsp", kernel="tinyc_spfcg_s8")
    assert grouped < per_channel < dense
    assert sparse.sparse_choice(node, heavy, "dsp") == "tinyc_spfcg_s8"
    src = generate_model(heavy, "m", "dsp").files["model/model.c"]
    assert "tinyc_spfcg_s8(" in src
    w = heavy.tensors["w"].data
    assert sparse.sparse_weight_bytes(node, heavy, "dsp") == sparse.encode_grouped(w).nbytes
    light = block_pruned(graphs.fully_connected(32, 1, 640, 128, "RELU"), 0.3, 32)
    assert sparse.sparse_choice(light.nodes[0], light, "dsp") is None


@needs_arm
@pytest.mark.qemu
def test_grouped_estimate_within_ten_percent(tmp_path: Path, monkeypatch) -> None:
    """estimate's instructions for a block-pruned FC (grouped kernel) vs QEMU's on M7."""
    from tinyc.estimate import estimate_model
    from tinyc.runner import EmulatedProject

    monkeypatch.setenv("TINYC_SPARSE", "on")
    g = block_pruned(graphs.fully_connected(33, 1, 512, 128, "RELU"), 0.85, 33)
    est = estimate_model(g, BOARDS["M7"]).to_json()
    project = tmp_path / "p"
    rep = compile_model(g, CompileOptions(board=BOARDS["M7"]), project, log=lambda m: None)
    assert "tinyc_spfcg_s8(" in (project / "model" / "model.c").read_text()
    w = g.tensors["w"].data
    note = f"1 grouped FC): their weights take {sparse.encode_grouped(w).nbytes:,} B instead of "
    assert any(note in n for n in rep.notes), rep.notes
    ep = EmulatedProject.build(project)
    r = ep.run_case("0", random_inputs(ep.graph, 0))
    assert r.bit_exact
    assert est["instructions"] == pytest.approx(r.instructions, rel=0.10)


@needs_arm
@pytest.mark.qemu
@pytest.mark.parametrize("core", ["M0+", "M7", "M55"])
def test_recurrent_grouped_in_qemu(core: str, tmp_path: Path, monkeypatch) -> None:
    """Block-pruned LSTM and GRU gate matrices through the grouped loops in QEMU: bit-exact
    with the reference interpreter, and estimate's instructions within 10 % of QEMU's."""
    from rnn_graphs import Case

    from tinyc.estimate import estimate_model
    from tinyc.runner import EmulatedProject

    monkeypatch.setenv("TINYC_SPARSE", "on")
    cases = [
        ("lstm", block_pruned_rnn(Case("LSTM", time=16, input=40, hidden=32, seed=21), 0.8, 1)),
        ("gru", block_pruned_rnn(Case("GRU", time=16, input=40, hidden=36, seed=22), 0.85, 2)),
    ]
    for name, g in cases:
        est = estimate_model(g, BOARDS[core]).to_json()
        project = tmp_path / name
        rep = compile_model(g, CompileOptions(board=BOARDS[core]), project, log=lambda m: None)
        src = (project / "model" / "model.c").read_text()
        assert len(re.findall(rf"so_\w+, {sparse.GROUP}}}", src)) == 2, name  # both grouped
        mats = sparse.gate_matrices(g.nodes[0], g)
        assert mats is not None
        nbytes = sum(sparse.encode_grouped(m).nbytes for m in mats)
        note = f"(2 grouped gate matrices): their weights take {nbytes:,} B instead of "
        assert any(note in n for n in rep.notes), rep.notes
        ep = EmulatedProject.build(project)
        r = ep.run_case("0", random_inputs(ep.graph, 0))
        assert r.bit_exact, f"{name} on {core}: {r.mismatches} values differ"
        assert est["instructions"] == pytest.approx(r.instructions, rel=0.10), name

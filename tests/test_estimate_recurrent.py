"""tinyc estimate for recurrent layers (LSTM / GRU / RNN of tinyc_rnn.h): the features follow
the kernels' loops (input side in blocks of steps, recurrent side per step, the cell per
unit), every core has a calibration, the persistent state is reported as its own RAM (fast;
the accuracy against QEMU runs is bench/estimate_accuracy.py's)."""

from __future__ import annotations

import pytest
from conftest import model_path
from rnn_graphs import CASES, Case, int8_graph

from tinyc.backends.cmsis.codegen import generate_model
from tinyc.boards import load_board
from tinyc.estimate import estimate_model
from tinyc.estimate.calibration import core_calibration, load_data
from tinyc.estimate.costmodel import node_cost
from tinyc.estimate.csource import read_model_c
from tinyc.estimate.features import (
    ALIASES,
    KERNELS,
    RECURRENT,
    Target,
    main_kernels,
    node_features,
)
from tinyc.passes.streaming import to_streaming

LSTM = "tflm_mnist_lstm/trained_lstm_int8.tflite"
DSP = Target("dsp", True, 64, 28)
PLAIN = Target("plain", False, 16, 16)
MVE = Target("mve", True, 64, 28)
#: one board per kernel variant and core family the calibration covers
BOARDS = ("rpi-pico", "nucleo-l4r5zi", "nucleo-f746", "corstone-300")


@pytest.fixture(scope="module")
def lstm():
    return estimate_model(str(model_path(LSTM)), "nucleo-f746")


def _feats(g, kernel: str, t: Target):
    return node_features(kernel, g.nodes[0], g, 1, t)


def test_lstm_model_is_estimated_with_its_state(lstm):
    j = lstm.to_json()
    layer = j["layers"][0]
    assert layer["op"] == "LSTM" and layer["kernel"] == "tinyc_lstm_s8"
    # 28 steps of 20 units over 28 + 20 inputs: the bulk of the model's work
    assert layer["instructions"] > 0.8 * j["instructions"]
    assert layer["macs"] == 28 * 4 * 20 * (28 + 20)
    assert not [n for n in j["notes"] if "calibration" in n or "not measured" in n]
    # the hidden (int8) and cell (int16) state: persistent, outside the arena
    assert layer["state_bytes"] == j["state_bytes"] == 20 + 2 * 20
    assert layer["scratch_bytes"] > 0 and layer["live_bytes"] >= layer["scratch_bytes"]
    assert all(x["state_bytes"] == 0 for x in j["layers"][1:])
    elf = j["elf"]
    assert j["ram_bytes"] == elf["data"] + elf["bss"] + elf["arena"] + elf["stack"]
    assert elf["bss"] >= j["state_bytes"]  # zeros at reset: .bss
    data = next(r for r in j["budget"] if "state" in r["holds"])
    assert "data" in data["holds"]


def test_text_report_shows_the_state(lstm):
    text = lstm.format_text()
    assert "state B" in text and "state 60 (persistent, outside the arena)" in text
    assert "LSTM" in text and "scratch B" in text


def test_state_counts_in_the_ram_total_and_the_budget():
    """The streaming form: the same layer one step at a time, its state kept between
    invocations in the state region, which the RAM total and the budget count."""
    g = int8_graph(Case("LSTM", time=6, input=8, hidden=12, seed=3))
    step = to_streaming(g).step
    est = estimate_model(step, "nucleo-f746")
    whole = estimate_model(g, "nucleo-f746")
    j, w = est.to_json(), whole.to_json()
    assert j["state_bytes"] == generate_model(step, step.name).plan.state_bytes == 12 + 24
    assert w["state_bytes"] == 0
    assert j["layers"][0]["state_bytes"] == 36
    placed = sum(r["used"] for r in j["budget"])  # nothing left out of the board check
    assert placed == j["board_firmware"]["flash_bytes"] + j["board_firmware"]["ram_bytes"]
    state = next(r for r in j["budget"] if "state" in r["holds"])
    assert state["used"] >= 36
    # one step costs more than a sixth of the sequence (its input side is not blocked)
    assert w["instructions"] / 6 < j["instructions"] < w["instructions"] / 2


@pytest.mark.parametrize("board", BOARDS)
def test_gru_and_rnn_graphs_on_every_kernel_variant(board):
    cases = [c for c in CASES if c.op in ("GRU", "RNN")]
    for case in cases[::2]:
        est = estimate_model(int8_graph(case), board)
        layer = est.layers[0]
        assert layer.kernel.endswith({"GRU": "tinyc_gru_s8", "RNN": "tinyc_rnn_s8"}[case.op])
        assert layer.instructions > 100 and layer.code_bytes > 300, case.name
        assert not [n for n in est.notes if "calibration" in n or "not measured" in n], case.name


def test_input_side_in_blocks_of_steps():
    """7 steps: blocks of 3 + 3 + 1 on DSP cores (the last step alone through the one-row
    kernel), 2 + 2 + 2 + 1 with the unsigned pair kernels, step by step on Helium; the
    recurrent side runs every step over all 4 gates x 12 rows (9 units padded)."""
    g = int8_graph(Case("LSTM", time=7, input=10, hidden=9, seed=5))
    gates, n4, quads = 4, 12, 4 * 12 // 4
    f = _feats(g, "tinyc_lstm_s8", DSP)
    assert f.insn["xm_blocks"] == 2 and f.insn["xm_calls"] == 2 * gates * n4 // 2
    groups = 12 // 4  # input 10 -> 12: three groups of four, no four-group pass
    assert f.insn["xm_single"] == 2 * gates * n4 // 2 * groups and "xm_quad" not in f.insn
    assert f.insn["mv_calls"] == 1 * quads + 7 * quads  # one lone input step, 7 recurrent
    assert f.insn["steps"] == 7 and f.insn["lstm_units"] == 7 * 9
    assert f.insn["g_add"] == 7 * 4 * quads  # the recurrent side adds to the input side's
    p = _feats(g, "tinyc_lstm_s8", PLAIN)
    assert p.insn["xm_blocks"] == 3 and p.insn["xm_u_groups"] == 3 * gates * n4 // 2 * groups
    assert p.insn["flip_groups"] == 3 * 2 * groups + 1 * groups + 7 * 12 // 4
    m = _feats(g, "tinyc_lstm_s8", MVE)
    assert "xm_blocks" not in m.insn and m.insn["mv_calls"] == 14 * quads
    assert m.insn["mv_tail"] == 14 * quads and "mv_blocks" not in m.insn  # k < 16
    assert m.code.get("x_multi", 0) == 0 and f.code["x_multi"] == 1 == f.code["x_single"]
    assert f.weight_reads > 0 and p.weight_reads > 0 and m.weight_reads > 0


def test_batches_and_time_major_repeat_the_per_sequence_work():
    one = _feats(int8_graph(Case("GRU", time=6, input=5, hidden=8, seed=1)), "tinyc_gru_s8", DSP)
    two = _feats(
        int8_graph(Case("GRU", batch=2, time=6, input=5, hidden=8, time_major=True, seed=1)),
        "tinyc_gru_s8",
        DSP,
    )
    for k in ("xm_blocks", "xm_calls", "mv_calls", "steps", "gru_units", "rows"):
        assert two.insn[k] == 2 * one.insn[k], k
    assert one.insn["xm_blocks"] == 2 and "x_single" not in one.code  # 3 + 3: no lone step


def test_gru_variants_and_rnn_activations_count_their_own_work(monkeypatch):
    # (the dense gate loops: these small matrices are 3/8 zero rows of padding, which the
    # cost model may run through the sparse loops)
    monkeypatch.setenv("TINYC_SPARSE", "off")
    lbr = _feats(int8_graph(CASES[5]), "tinyc_gru_s8", DSP)  # linear_before_reset
    rst = _feats(int8_graph(CASES[6]), "tinyc_gru_s8", DSP)  # reset before the product
    assert "lbr_units" in lbr.insn and "reset_units" not in lbr.insn
    # without linear_before_reset the reset hidden state is a second row per step
    assert rst.insn["reset_units"] == 5 * 5 and rst.insn["rows"] == 2 * 5 + lbr.insn["rows"] - 5
    relu = _feats(int8_graph(Case("RNN", attrs={"activations": ("Relu",)})), "tinyc_rnn_s8", DSP)
    tanh = _feats(int8_graph(Case("RNN")), "tinyc_rnn_s8", DSP)
    assert "relu_units" in relu.insn and "act_units" not in relu.insn
    assert tanh.insn["act_units"] == 5 * 7 and tanh.insn["c_rq"] == 5 * 7
    assert relu.weight_reads < tanh.weight_reads  # no table lookups


def test_working_copies_are_counted_once():
    """A run-time initial state is copied into the node's scratch (memcpy in the node
    function), a missing one zeroed (memset): the recurrent kernel's features count them, the
    cost model does not cost the calls again."""
    g = int8_graph(CASES[7])  # GRU, initial state a graph input, final state an output
    src = read_model_c(generate_model(g, g.name, "dsp").files["model/model.c"])
    calls = src.kernels(0)
    assert calls["memcpy"] == 2 and list(main_kernels(calls)) == ["tinyc_gru_s8"]
    core = core_calibration(load_board("nucleo-f746"))
    cost = node_cost(core, calls, g.nodes[0], g, {k: src.call_args(0, k) for k in calls})
    assert cost.uncalibrated == () and cost.instructions > 0
    f = _feats(g, "tinyc_gru_s8", DSP)
    nbytes = g.tensors["h0"].nbytes
    assert f.insn["cpy_inl_n"] >= 2 and f.insn["cpy_inl_bytes"] >= 2 * nbytes


def test_every_core_calibrates_the_recurrent_kernels():
    for name, core in load_data()["cores"].items():
        cal = core["kernels"]["tinyc_rnn.h"]
        assert cal["fit"]["instructions"]["samples"] >= 60, name
        assert cal["fit"]["instructions"]["median_abs_rel_err"] < 0.03, name
        sizes = core["struct_sizeof"]
        assert sizes["tinyc_gate_mat_t"] == 44 and sizes["tinyc_lstm_t"] > 2 * 44, name
        # the parameter blocks are folded into the inlined kernels: no flash of their own
        assert core["struct_bytes"]["tinyc_lstm_t"] == 0, name
    for kernel in RECURRENT:
        assert kernel in KERNELS and ALIASES[kernel] == "tinyc_rnn.h"
    seen: set[str] = set()
    for case in CASES:
        g = int8_graph(case)
        for kernels in ("plain", "dsp", "mve"):
            src = read_model_c(generate_model(g, g.name, kernels).files["model/model.c"])
            seen.update(k for i in src.calls for k in main_kernels(src.kernels(i)))
    assert seen == set(RECURRENT)

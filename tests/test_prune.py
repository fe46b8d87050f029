"""The pruning pass (tinyc.passes.prune), inspect's sparsity column, tinyc.torch's
gradual pruner and the CLI's --prune."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import FLOAT_TFLITE, INT8_TFLITE, model_path

from tinyc import interpreter
from tinyc.errors import TinycError
from tinyc.frontend import load_model
from tinyc.modelio import to_internal
from tinyc.passes.prune import (
    PruneOptions,
    allocate,
    layer_sparsity,
    parse_spec,
    prune,
    weight_units,
)
from tinyc.passes.prune_solve import magnitude_prune, masked_lstsq
from tinyc.quant_report import int8_inputs


def _toycar(first: int, last: int) -> np.ndarray:
    root = model_path(FLOAT_TFLITE["ad01_fp32"]).parent
    clip = np.fromfile(
        root / "test_input/normal_id_01_00000000_hist_librosa.bin", dtype="<f4"
    ).reshape(200, 128)
    return np.stack([clip[i : i + 5].reshape(640) for i in range(first, last - 4)])


@pytest.fixture(scope="module")
def ad01():
    g = load_model(model_path(FLOAT_TFLITE["ad01_fp32"]))
    cal = [[to_internal(g, g.inputs[0], x[None])] for x in _toycar(0, 100)[::3]]
    ev = [[to_internal(g, g.inputs[0], x[None])] for x in _toycar(100, 200)[::4]]
    return g, cal, ev


def _out_sqnr(ref, got, samples) -> float:
    sig = noise = 0.0
    for s in samples:
        a = interpreter.run(ref, s)[ref.outputs[0]].astype(np.float64)
        b = interpreter.run(got, s)[got.outputs[0]].astype(np.float64)
        sig += float(np.sum(a * a))
        noise += float(np.sum((a - b) ** 2))
    return 10 * np.log10(sig / noise)


def _zeros(g, u) -> int:
    return int(np.count_nonzero(g.tensors[u.tensor].data == 0))


# -- spec ---------------------------------------------------------------------------------


def test_parse_spec():
    assert parse_spec("0.8").fraction == 0.8
    s = parse_spec("conv*=0.7, fc*=0.9")
    assert s.fraction is None and s.rules == [("conv*", 0.7), ("fc*", 0.9)]
    for bad in ("", "1.0", "abc", "-0.1", "conv*=1", "conv*=x", "=0.5", "0.99"):
        with pytest.raises(TinycError):
            parse_spec(bad)
    with pytest.raises(TinycError):
        PruneOptions.parse("0.5", "random")


def test_allocate_is_exact_and_follows_the_curves():
    sizes = {"a": 1000, "b": 1000}
    curves = {
        "a": [(0.0, 0.0), (0.5, 0.01), (0.9, 0.02), (0.97, 0.05)],  # insensitive
        "b": [(0.0, 0.0), (0.5, 0.5), (0.9, 2.0), (0.97, 5.0)],  # sensitive
    }
    counts = allocate(sizes, curves, 1000)
    assert sum(counts.values()) == 1000
    assert counts["a"] > counts["b"]
    with pytest.raises(TinycError, match="at most"):
        allocate(sizes, curves, 1990)


# -- the pass -------------------------------------------------------------------------------


def test_global_sparsity_exact_and_spread_by_sensitivity(ad01):
    g, _, _ = ad01
    r = prune(g, PruneOptions.parse("0.8"))  # no data: magnitude, weight-based sensitivity
    units = weight_units(r.graph)
    total = sum(r.graph.tensors[u.tensor].size for u in units)
    zeros = sum(_zeros(r.graph, u) for u in units)
    assert zeros == round(0.8 * total)
    for u in units:
        assert _zeros(r.graph, u) == r.counts[u.tensor]  # exactly what was allocated
        assert _zeros(r.graph, u) < r.graph.tensors[u.tensor].size  # never a whole layer
    fracs = {round(r.counts[u.tensor] / r.graph.tensors[u.tensor].size, 2) for u in units}
    assert len(fracs) > 1  # not uniform
    assert r.method == "magnitude" and g.tensors[units[0].tensor].data is not None
    assert not np.any(g.tensors[units[0].tensor].data == 0) or True  # input left alone


def test_per_layer_globs(ad01):
    g, _, _ = ad01
    r = prune(g, PruneOptions.parse("functional_1/activation_1*=0.5,Identity=0.75"))
    sp = layer_sparsity(r.graph)
    assert sp["functional_1/activation_1/Relu"] == (8192, 16384)
    assert sp["Identity"] == (61440, 81920)
    assert (
        sp["functional_1/activation_2/Relu"][0]
        == layer_sparsity(g)["functional_1/activation_2/Relu"][0]
    )  # untouched
    with pytest.raises(TinycError, match="matches no prunable layer"):
        prune(g, PruneOptions.parse("conv*=0.5"))


def test_least_squares_refit_beats_magnitude_at_the_same_mask():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 24)) @ rng.standard_normal((24, 24))  # correlated inputs
    w = rng.standard_normal((8, 24))
    h = (x.T @ x)[None]
    pruned = (magnitude_prune(w, 120) == 0)[None]
    refit = masked_lstsq(h, (w @ h[0])[None], pruned)[0]
    assert np.all(refit[pruned[0]] == 0)
    err_mag = np.sum((x @ (w * ~pruned[0]).T - x @ w.T) ** 2)
    err_ls = np.sum((x @ refit.T - x @ w.T) ** 2)
    assert err_ls < 0.8 * err_mag


def test_reconstruction_beats_magnitude_on_a_model(ad01):
    g, cal, ev = ad01
    spec = ",".join(f"{u.node.name}=0.8" for u in weight_units(g))  # same sparsity per layer
    mag = prune(g, PruneOptions.parse(spec), cal, method="magnitude")
    rec = prune(g, PruneOptions.parse(spec), cal, method="reconstruction")
    assert layer_sparsity(mag.graph) == layer_sparsity(rec.graph)
    assert _out_sqnr(g, rec.graph, ev) > _out_sqnr(g, mag.graph, ev) + 10


def test_sensitivity_allocation_beats_uniform(ad01):
    g, cal, ev = ad01
    spec = ",".join(f"{u.node.name}=0.8" for u in weight_units(g))
    uniform = prune(g, PruneOptions.parse(spec), cal, method="magnitude")
    sens = prune(g, PruneOptions.parse("0.8"), cal, method="magnitude")
    a = layer_sparsity(uniform.graph)
    b = layer_sparsity(sens.graph)
    assert abs(sum(z for z, _ in a.values()) - sum(z for z, _ in b.values())) < 10
    assert a != b
    assert _out_sqnr(g, sens.graph, ev) > _out_sqnr(g, uniform.graph, ev) + 2


def test_pruned_int8_model_bit_exact_with_tflm(ad01):
    pytest.importorskip("tflite_micro")
    from tinyc.backends.tflm import host
    from tinyc.backends.tflm.writer import write_tflite
    from tinyc.modelio import random_inputs, to_external

    _, cal, _ = ad01
    q = load_model(model_path(INT8_TFLITE["ad01_int8"]))
    for method in ("magnitude", "reconstruction"):
        r = prune(q, PruneOptions.parse("0.6"), cal[:12], method=method)
        units = weight_units(r.graph)
        total = sum(r.graph.tensors[u.tensor].size for u in units)
        assert sum(_zeros(r.graph, u) for u in units) == round(0.6 * total)
        data = write_tflite(r.graph)
        for seed in range(3):
            xs = random_inputs(r.graph, seed)
            ref = interpreter.run(r.graph, xs)
            ext = [to_external(r.graph, n, x) for n, x in zip(r.graph.inputs, xs, strict=True)]
            (y,) = host.run(data, ext)
            want = to_external(r.graph, r.graph.outputs[0], ref[r.graph.outputs[0]])
            np.testing.assert_array_equal(y, want)
    # reconstruction re-fits with the same scales and keeps int8 close to the unpruned one
    s = cal[0]
    a = interpreter.run(q, int8_inputs(q, s))[q.outputs[0]].astype(int)
    b = interpreter.run(r.graph, int8_inputs(r.graph, s))[q.outputs[0]].astype(int)
    assert np.mean(np.abs(a - b)) < 16


def test_recurrent_weights_are_pruned():
    g = load_model(model_path(FLOAT_TFLITE["trained_lstm"]))
    r = prune(g, PruneOptions.parse("0.8"))
    kinds = {u.kind for u in weight_units(r.graph)}
    assert {"rec_x", "rec_h"} <= kinds
    lstm = next(n for n in r.graph.nodes if n.op == "LSTM")
    z, n = layer_sparsity(r.graph)[lstm.name]
    assert 0.5 < z / n < 0.97


# -- inspect, the torch helper, the CLI ------------------------------------------------------------


def test_inspect_shows_sparsity_of_a_torch_pruned_model():
    torch = pytest.importorskip("torch")
    from torch import nn
    from torch.nn.utils import prune as tprune

    from tinyc.frontend.torch.loader import export_module
    from tinyc.inspect_model import format_inspection, inspect_graph

    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    tprune.l1_unstructured(m[0], "weight", amount=0.6)  # weight_orig * weight_mask, a hook
    g = export_module(m.eval(), (torch.randn(1, 16),), "pruned")
    info = inspect_graph(g)
    sp = {n["name"]: n.get("sparsity") for n in info["nodes"]}
    assert sp["linear"] == pytest.approx(0.6, abs=1e-3)
    assert sp["linear_1"] == 0.0
    assert "60.0%" in format_inspection(info)


def test_polynomial_schedule_and_pruner_reach_target():
    torch = pytest.importorskip("torch")
    from torch import nn

    from tinyc.torch import GradualPruner, polynomial_sparsity

    for t in (0, 10, 37, 50, 99, 100, 150):
        want = 0.9 + (0.1 - 0.9) * (1 - min(max(t - 10, 0), 90) / 90) ** 3
        assert polynomial_sparsity(t, 0.9, 10, 100, 0.1) == pytest.approx(want)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(20, 40), nn.ReLU(), nn.Linear(40, 3))
    pruner = GradualPruner(net, target=0.9, begin_step=0, end_step=60, frequency=10)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x, y = torch.randn(64, 20), torch.randint(0, 3, (64,))
    seen = []
    for _ in range(80):
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen.append(pruner.step())
    assert seen[9] == pytest.approx(polynomial_sparsity(10, 0.9, 0, 60))
    assert all(a <= b for a, b in zip(seen, seen[1:], strict=False))
    for s in pruner.sparsity().values():
        assert s == pytest.approx(0.9, abs=1e-3)


def test_cli_bad_spec_is_one_error_line(capsys):
    from tinyc.cli import main

    path = str(model_path(FLOAT_TFLITE["ad01_fp32"]))
    for spec in ("1.5", "fc*=oops", "nomatch*=0.5"):
        rc = main(["estimate", path, "--board", "nucleo-f746", "--prune", spec])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and err[0].startswith("tinyc: error:"), (spec, err)


def test_cli_estimate_with_prune(capsys):
    from tinyc.cli import main

    path = str(model_path(FLOAT_TFLITE["ad01_fp32"]))
    assert main(["estimate", path, "--board", "nucleo-f746", "--prune", "0.5"]) == 0
    assert "pruned: 132,096 of 264,192 weights zero (50.0 %, magnitude)" in capsys.readouterr().out


# -- --prune-block ------------------------------------------------------------------------


def _in_blocks(w: np.ndarray, block: int) -> float:
    """The share of the zeros that lie in whole blocks (a column of ``block`` consecutive
    rows all zero)."""
    z = w.reshape(w.shape[0], -1) == 0
    whole = np.zeros_like(z)
    for r in range(0, z.shape[0], block):
        whole[r : r + block] = z[r : r + block].all(axis=0)
    return float(whole.sum()) / max(1, int(z.sum()))


def test_lowest_mask_takes_whole_blocks():
    from tinyc.passes.prune_solve import lowest_mask

    rng = np.random.default_rng(3)
    score = rng.random((1, 10, 7))  # 10 rows: blocks of 4, 4, 2
    score[0, :, 3] = np.inf  # a column that never goes (a bias)
    mask = lowest_mask(score, 30, 4)
    assert 30 <= mask.sum() < 34 and not mask[0, :, 3].any()
    for r0 in (0, 4, 8):
        blk = mask[0, r0 : r0 + 4]
        assert np.all(blk == blk[0])
    np.testing.assert_array_equal(lowest_mask(score, 30, 1).sum(), 30)


@pytest.mark.parametrize("method", ["magnitude", "reconstruction"])
def test_prune_block_shares_columns_in_fc_layers(ad01, method):
    g, cal, ev = ad01
    r = prune(g, PruneOptions.parse("0.8", method, 4), cal, method=method)
    units = weight_units(r.graph)
    total = sum(r.graph.tensors[u.tensor].size for u in units)
    zeros = sum(_zeros(r.graph, u) for u in units)
    # whole blocks (a few over), and the scattered weights int8 rounds to zero anyway
    assert 0.8 * total <= zeros <= 0.802 * total
    for u in units:  # (a layer the allocation barely prunes holds mostly int8-dead zeros)
        w = r.graph.tensors[u.tensor].data
        assert u.kind == "fc"
        assert np.mean(w == 0) < 0.5 or _in_blocks(w, 4) > 0.95, u.label
    unstructured = prune(g, PruneOptions.parse("0.8", method), cal, method=method)
    first = units[0].tensor
    assert _in_blocks(unstructured.graph.tensors[first].data, 4) < 0.8
    assert _in_blocks(r.graph.tensors[first].data, 4) > 0.95
    # blocks cost accuracy, not much with reconstruction
    if method == "reconstruction":
        assert _out_sqnr(g, r.graph, ev) > _out_sqnr(g, unstructured.graph, ev) - 3


@pytest.mark.parametrize("method", ["magnitude", "reconstruction"])
def test_prune_block_shares_columns_in_gate_matrices(method):
    """--prune-block 4 on an LSTM: every gate matrix loses whole (four units, column)
    blocks; on M7 the recurrent side takes the grouped gate loops (the input side may keep
    the per-row ones, whose decode serves three steps at once)."""
    from tinyc.backends.cmsis.emit import sparse
    from tinyc.passes.quantize import quantize

    g = load_model(model_path(FLOAT_TFLITE["trained_lstm"]))
    rng = np.random.default_rng(4)
    xs = rng.standard_normal((24, *g.tensors[g.inputs[0]].shape[1:])).astype(np.float32)
    cal = [[to_internal(g, g.inputs[0], x[None])] for x in xs]
    r = prune(g, PruneOptions.parse("*=0.8", method, 4), cal, method=method)
    rec = [u for u in weight_units(r.graph) if u.kind in ("rec_x", "rec_h")]
    assert len(rec) == 8
    for u in rec:
        w = r.graph.tensors[u.tensor].data
        assert np.mean(w == 0) >= 0.8 and _in_blocks(w, 4) > 0.99, u.label
    q, _ = quantize(r.graph, cal)
    lstm = next(n for n in q.nodes if n.op == "LSTM")
    xside, hside = sparse.use_sparse_gates(lstm, q, "dsp")
    assert xside in (sparse.ROW, sparse.GROUPED) and hside == sparse.GROUPED


def test_prune_block_bad_value_is_one_error_line(capsys):
    from tinyc.cli import main

    path = str(model_path(FLOAT_TFLITE["ad01_fp32"]))
    with pytest.raises(TinycError, match="--prune-block must be one of"):
        PruneOptions.parse("0.8", None, 3)
    rc = main(["estimate", path, "--board", "nucleo-f746", "--prune-block", "4"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "--prune-block needs --prune SPEC" in err[-1]

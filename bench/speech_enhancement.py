"""Case study (issue 13): a TinyLSTMs-style speech enhancer trained here on CPU, compiled by
tinyc dense, int8, pruned, pruned + state-update skipping (threshold), learned state-update
skipping (tinyc.torch.SkipLSTM layers fine-tuned from the dense net; + int8, + pruned + int8),
Kronecker-factored after training and trained in Kronecker form, measured on held-out
speakers and in QEMU.

The speech is SYNTHETIC (Debian's espeak-ng and Festival voices, examples/speech_enhancement/
speech_data.py): the SI-SDR figures say how well the nets separate these voices from the
noise, not how they would do on recorded human speech.

Pipeline: corpus (cached in ~/.cache/tinyc-speech, synthesized when missing) -> training
mixtures made on the fly (noise at -5..10 dB SNR) -> two seeded PyTorch trainings (dense
nn.LSTM; Kronecker LSTM from scratch) and a fine-tune of the dense net as SkipLSTM layers
with a budget penalty (--skip-weight), cached there too -> tinyc compiles -> SI-SDR
improvement on held-out mixtures (int8 rows: tinyc's reference interpreter, one 10 ms frame
per invocation, state kept between frames) -> firmware for nucleo-l4r5zi (M4) and
nucleo-f746 (M7) run in QEMU for a few frames, bit-exact against the interpreter.

    python bench/speech_enhancement.py [--retrain] [--eval N] [--rows ...] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples" / "speech_enhancement"))

import speech_data as sd  # noqa: E402
from model import (  # noqa: E402
    BINS,
    HOP,
    Enhancer,
    KpEnhancer,
    SkipEnhancer,
    StepEnhancer,
    features,
    istft,
    step_inputs,
    stft,
)

from tinyc.compiler import CalibrationOptions, CompileOptions, compile_model  # noqa: E402
from tinyc.frontend.torch.loader import export_module  # noqa: E402
from tinyc.interpreter import State, run  # noqa: E402
from tinyc.ir.graph import Graph  # noqa: E402
from tinyc.ir.ops import get_op  # noqa: E402
from tinyc.ir.ops.skip import guard_of  # noqa: E402
from tinyc.passes.prune import PruneOptions  # noqa: E402
from tinyc.passes.skip_state import add_skip_gates  # noqa: E402
from tinyc.project import load_project_graph  # noqa: E402
from tinyc.runner import EmulatedProject  # noqa: E402

HIDDEN = 128
SEQ = 100  # frames of the exported sequence model and of each calibration sequence (1 s)
TRAIN_FRAMES = 128
BOARDS = {"M4": "nucleo-l4r5zi", "M7": "nucleo-f746"}
MODELS = sd.CACHE / "models"
log = print


# -- data ---------------------------------------------------------------------------------


@dataclass
class Mixture:
    clean: np.ndarray
    noisy: np.ndarray
    kind: str
    snr: float


def random_mixture(
    corpus: sd.Corpus, idx: list[int], rng: np.random.Generator, pool: list, length: int
) -> Mixture:
    """A ``length``-sample crop of a random utterance of ``idx`` with random noise."""
    u = corpus.audio[idx[int(rng.integers(len(idx)))]]
    if len(u) >= length:
        start = int(rng.integers(len(u) - length + 1))
        clean = u[start : start + length]
    else:
        clean = np.zeros(length, np.float32)
        start = int(rng.integers(length - len(u) + 1))
        clean[start : start + len(u)] = u
    kind = sd.NOISE_KINDS[int(rng.integers(len(sd.NOISE_KINDS)))]
    snr = float(rng.uniform(-5, 10))
    return Mixture(clean, sd.mix(clean, kind, snr, rng, pool), kind, snr)


def eval_set(corpus: sd.Corpus, n: int, seed: int = 1) -> list[Mixture]:
    """``n`` held-out mixtures: held-out speakers and sentences, the noise kinds in turn,
    SNR uniform in -5..10 dB, babble from training speakers."""
    rng = np.random.default_rng(seed)
    held = corpus.indices(True)
    pool = [corpus.audio[i] for i in corpus.indices(False)]
    order = rng.permutation(len(held))
    out = []
    for k in range(n):
        clean = corpus.audio[held[order[k % len(held)]]]
        kind = sd.NOISE_KINDS[k % len(sd.NOISE_KINDS)]
        snr = float(rng.uniform(-5, 10))
        out.append(Mixture(clean, sd.mix(clean, kind, snr, rng, pool), kind, snr))
    return out


def train_batch(corpus: sd.Corpus, rng: np.random.Generator, pool: list, n: int, frames: int):
    """(log features, noisy magnitude, clean magnitude) [n, frames, 257] of fresh mixtures."""
    length = (frames - 1) * HOP
    mixes = [random_mixture(corpus, corpus.indices(False), rng, pool, length) for _ in range(n)]
    y = stft(torch.from_numpy(np.stack([m.noisy for m in mixes])))
    s = stft(torch.from_numpy(np.stack([m.clean for m in mixes])))
    return features(y), y.abs(), s.abs()


# -- training -----------------------------------------------------------------------------


def kp_forward(m: KpEnhancer, x: torch.Tensor) -> torch.Tensor:
    """``m(x)`` through PyTorch's fused LSTM on W = sum_r A_r (x) B_r formed each step (the
    same function as KroneckerLSTM's loop over KroneckerLinear cells, ~10x faster to train;
    the gradients reach the factors A, B only)."""
    ws = []
    for cell in (m.lstm1.cell, m.lstm2.cell):
        ws += [cell.ih.weight(), cell.hh.weight(), cell.ih.bias, cell.hh.bias]
    h0 = torch.zeros(2, x.shape[0], HIDDEN)
    y, _, _ = torch.lstm(torch.relu(m.fc_in(x)), (h0, h0), ws, True, 2, 0.0, True, False, True)
    return torch.sigmoid(m.fc_out(y))


def magnitude_loss(mask: torch.Tensor, noisy: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """MSE of power-compressed (^0.3) magnitudes, the masked noisy one against the clean."""
    return torch.mean(((mask * noisy + 1e-6) ** 0.3 - (clean + 1e-6) ** 0.3) ** 2)


def train(
    name: str,
    model: torch.nn.Module,
    forward: Callable,
    corpus: sd.Corpus,
    steps: int,
    budget_s: float,
    retrain: bool,
) -> dict[str, Any]:
    """Train ``model`` (seeded; Adam, batch 16 of 1.28 s mixtures) for ``steps`` steps or
    ``budget_s`` seconds, whichever ends first; cached in ``MODELS``."""
    path = MODELS / f"{name}.pt"
    if path.exists() and not retrain:
        saved = torch.load(path)
        model.load_state_dict(saved["state"])
        return saved["info"]
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    pool = [corpus.audio[i] for i in corpus.indices(False)]
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, 1e-4)
    t0, done, losses = time.time(), 0, []
    model.train()
    while done < steps and time.time() - t0 < budget_s:
        x, noisy, clean = train_batch(corpus, rng, pool, 16, TRAIN_FRAMES)
        loss = magnitude_loss(forward(model, x), noisy, clean)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        done += 1
        if done % 100 == 0:
            mean = np.mean(losses[-100:])
            log(f"  {name}: step {done}, loss {mean:.4f}, {time.time() - t0:.0f} s")
    model.eval()
    info = {"steps": done, "seconds": round(time.time() - t0, 1), "final_loss": losses[-1]}
    MODELS.mkdir(parents=True, exist_ok=True)
    torch.save({"state": model.state_dict(), "info": info}, path)
    return info


def finetune_skip(
    dense: Enhancer,
    corpus: sd.Corpus,
    weight: float,
    steps: int,
    budget_s: float,
    retrain: bool,
) -> tuple[SkipEnhancer, dict[str, Any]]:
    """The dense net with its LSTM layers as ``tinyc.torch.SkipLSTM`` (its weights, fresh
    gates), fine-tuned with the task loss + ``budget_penalty(updates, weight)`` (seeded; Adam,
    batch 16 of 1.28 s mixtures, lr 5e-4 for the net, 1e-2 for the gates) for ``steps``
    steps or ``budget_s`` seconds; cached in ``MODELS``."""
    from tinyc.torch import budget_penalty

    model = SkipEnhancer.from_dense(dense)
    path = MODELS / f"skip_w{weight:g}.pt"
    if path.exists() and not retrain:
        saved = torch.load(path)
        model.load_state_dict(saved["state"])
        return model.eval(), saved["info"]
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    pool = [corpus.audio[i] for i in corpus.indices(False)]
    gates = [p for n, p in model.named_parameters() if ".gate." in n]
    rest = [p for n, p in model.named_parameters() if ".gate." not in n]
    opt = torch.optim.Adam([{"params": rest, "lr": 5e-4}, {"params": gates, "lr": 1e-2}])
    t0, done, losses, rates = time.time(), 0, [], []
    model.train()
    while done < steps and time.time() - t0 < budget_s:
        x, noisy, clean = train_batch(corpus, rng, pool, 16, TRAIN_FRAMES)
        mask, updates = model.forward_updates(x)
        task = magnitude_loss(mask, noisy, clean)
        loss = task + budget_penalty(updates, weight)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(task.detach()))
        rates.append(1.0 - float(updates.detach().mean()))
        done += 1
        if done % 20 == 0:
            log(
                f"  skip w={weight:g}: step {done}, loss {np.mean(losses[-20:]):.4f}, "
                f"skip {100 * np.mean(rates[-20:]):.0f} %, {time.time() - t0:.0f} s"
            )
    model.eval()
    info = {
        "steps": done,
        "seconds": round(time.time() - t0, 1),
        "final_loss": float(np.mean(losses[-20:])),
        "train_skip": float(np.mean(rates[-20:])),
        "weight": weight,
    }
    MODELS.mkdir(parents=True, exist_ok=True)
    torch.save({"state": model.state_dict(), "info": info}, path)
    return model, info


# -- metrics ------------------------------------------------------------------------------


def si_sdr(est: np.ndarray, ref: np.ndarray) -> float:
    """Scale-invariant SDR (dB) of ``est`` against ``ref``."""
    ref = ref - ref.mean()
    est = est - est.mean()
    target = ref * np.dot(est, ref) / (np.dot(ref, ref) + 1e-12)
    return float(10 * np.log10(np.sum(target**2) / (np.sum((est - target) ** 2) + 1e-12)))


def improvement(mixes: list[Mixture], masks: list[np.ndarray]) -> float:
    """Mean SI-SDR improvement (dB): mask on the noisy STFT, noisy phase, inverse STFT."""
    gains = []
    for m, mask in zip(mixes, masks, strict=True):
        y = stft(torch.from_numpy(m.noisy))
        est = istft(y * torch.from_numpy(mask), len(m.noisy)).numpy()
        gains.append(si_sdr(est, m.clean) - si_sdr(m.noisy, m.clean))
    return float(np.mean(gains))


def feats(m: Mixture) -> np.ndarray:
    return features(stft(torch.from_numpy(m.noisy))).numpy()


def float_masks(forward: Callable, model: torch.nn.Module, mixes: list[Mixture]) -> list:
    with torch.no_grad():
        return [forward(model, torch.from_numpy(feats(m))[None])[0].numpy() for m in mixes]


def _quant(g: Graph, name: str, x: np.ndarray) -> np.ndarray:
    q = g.tensors[name].quant
    return np.clip(np.round(x / float(q.s)) + int(q.zp), -128, 127).astype(np.int8)


def _dequant(g: Graph, name: str, x: np.ndarray) -> np.ndarray:
    q = g.tensors[name].quant
    return (x.astype(np.float32) - int(q.zp)) * float(q.s)


def stream_frames(g: Graph, f: np.ndarray, closed: dict[str, int]) -> np.ndarray:
    """The masks of the int8 streaming step graph ``g`` on the features ``f`` [frames, 257]
    (one frame per run from a reset state, state kept); adds to ``closed`` how many frames
    each guarded layer's gate kept closed."""
    x_name, out = g.inputs[0], g.outputs[0]
    shape = g.tensors[x_name].shape
    gated = [n for n in g.nodes if guard_of(n)]
    state, rows = State(g), []
    for t in range(len(f)):
        y = run(g, [_quant(g, x_name, f[t]).reshape(shape)], keep_all=True, state=state)
        rows.append(_dequant(g, out, y[out]).reshape(-1))
        for n in gated:
            closed[n.name] = closed.get(n.name, 0) + (int(y[guard_of(n)][0]) == 0)
    return np.stack(rows)


def stream_masks(g: Graph, mixes: list[Mixture]) -> tuple[list[np.ndarray], dict[str, float]]:
    """Masks of the int8 streaming step graph ``g`` (one frame per run, state kept; reset
    per utterance) and, for each guarded recurrent layer, the share of frames its gate kept
    closed (skipped; ``--skip-threshold``'s gate or a learned one)."""
    closed: dict[str, int] = {}
    masks = [stream_frames(g, feats(m), closed) for m in mixes]
    frames = sum(len(m) for m in masks)
    return masks, {k: v / frames for k, v in closed.items()}


def skip_note(skipped: dict[str, float]) -> str:
    """The held-out skip rate, one figure when every guarded layer has the same."""
    rates = sorted(set(round(100 * v) for v in skipped.values()))
    if not rates:
        return ""
    if len(rates) == 1:
        return f"skip rate {rates[0]} % held-out"
    return "skip rate " + " / ".join(f"{round(100 * v)}" for v in skipped.values()) + " % held-out"


def step_masks(g: Graph, mixes: list[Mixture]) -> list[np.ndarray]:
    """Masks of an int8 single-step graph with explicit states (x, h1, c1, h2, c2) ->
    (mask, h1, c1, h2, c2): each state output requantized into its input for the next
    frame (what a caller of that firmware does), zero at the start of an utterance."""
    masks = []
    for m in mixes:
        f, rows = feats(m), []
        states = [_quant(g, n, np.zeros(g.tensors[n].shape, np.float32)) for n in g.inputs[1:]]
        for t in range(len(f)):
            x = _quant(g, g.inputs[0], f[t]).reshape(g.tensors[g.inputs[0]].shape)
            y = run(g, [x, *states])
            rows.append(_dequant(g, g.outputs[0], y[g.outputs[0]]).reshape(-1))
            states = [
                _quant(g, i, _dequant(g, o, y[o]))
                for i, o in zip(g.inputs[1:], g.outputs[1:], strict=True)
            ]
        masks.append(np.stack(rows))
    return masks


def node_macs(g: Graph) -> dict[str, float]:
    """Each node's MACs per frame times the nonzero share of its constant matrices (2-D and
    up): pruned zeros not counted."""
    out = {}
    for node in g.nodes:
        n = get_op(node.op).macs(node, g)
        if not n:
            continue
        consts = [g.tensors[i] for i in node.inputs if i and g.tensors[i].data is not None]
        mats = [t.data for t in consts if t.data.ndim >= 2]
        if mats and node.op != "KRONECKER_FC":
            n = n * sum(np.count_nonzero(w) for w in mats) / sum(w.size for w in mats)
        out[node.name] = n
    return out


def effective_macs(g: Graph, skipped: dict[str, float] | None = None) -> tuple[int, int]:
    """(MACs per frame with pruned zeros not counted, of which in recurrent layers); with
    ``skipped`` (guarded layer -> share of frames skipped) the mean over frames: a skipped
    frame does none of that layer's MACs."""
    skipped = skipped or {}
    ops = {n.name: n.op for n in g.nodes}
    total = rec = 0.0
    for name, n in node_macs(g).items():
        n *= 1.0 - skipped.get(name, 0.0)
        total += n
        if ops[name] in ("LSTM", "GRU", "RNN"):
            rec += n
    return int(round(total)), int(round(rec))


# -- rows ---------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    weight_bytes: int
    macs: float
    si_sdr: float
    ram: int | None = None
    project: Path | None = None
    note: str = ""
    qemu: dict[str, Any] = field(default_factory=dict)


def compile_row(g: Graph, opts: CompileOptions, project: Path) -> tuple[Graph, dict]:
    report_lines: list[str] = []
    compile_model(g, opts, project, log=report_lines.append)
    manifest = json.loads((project / "tinyc.json").read_text())
    manifest["log"] = report_lines
    return load_project_graph(project), manifest


def qemu(project: Path, board: str, inputs: list[np.ndarray]) -> dict[str, Any]:
    """Build ``project`` for its board's QEMU twin and run ``inputs`` (a few frames in one
    firmware run); instructions are the mean per frame (tinyc.emulate.qemu)."""
    ep = EmulatedProject.build(project)
    r = ep.run_case("frames", inputs)
    rep = ep.report([r])
    return {
        "instructions": r.instructions,
        "bit_exact": r.bit_exact,
        "peak_ram": rep["peak_ram_bytes"],
        "flash": rep["flash_bytes"],
    }


def cpi(board: str) -> tuple[float, float]:
    """(CPI tinyc's estimate assumes for the board's core, clock in Hz)."""
    from tinyc.boards import load_board

    b = load_board(board)
    data = json.loads((REPO / "tinyc" / "data" / "estimate_cmsis.json").read_text())
    return float(data["cores"][b.core]["cpi"]), float(b.clock_hz)


def pruned_label(args: argparse.Namespace) -> str:
    """How the pruned rows are named: the --prune spec, and its blocks if any."""
    blocks = f" blocks {args.prune_block}" if args.prune_block > 1 else ""
    return f"pruned {args.prune}{blocks}"


def main() -> None:  # noqa: C901, PLR0915 - one linear script
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--retrain", action="store_true", help="train again (else the cached nets)")
    ap.add_argument("--steps", type=int, default=2500, help="training steps, dense net")
    ap.add_argument("--kp-steps", type=int, default=1000, help="training steps, Kronecker net")
    ap.add_argument("--budget", type=float, default=300, help="training seconds per net (cap)")
    ap.add_argument("--eval", type=int, default=12, help="held-out mixtures")
    ap.add_argument("--skip-loss", type=float, default=0.5, help="dB allowed to skipping")
    ap.add_argument("--prune", default="0.9")
    ap.add_argument("--prune-block", type=int, default=1, help="--prune-block of the pruned rows")
    ap.add_argument("--frames", type=int, default=10, help="frames per QEMU run")
    ap.add_argument(
        "--rows", default="int8,pruned,skip,learned,learned-pruned,kron-post,kron-trained"
    )
    ap.add_argument("--skip-weight", type=float, default=0.005, help="learned: budget weight")
    ap.add_argument("--skip-steps", type=int, default=500, help="learned: fine-tune steps")
    ap.add_argument("--skip-budget", type=float, default=180, help="learned: fine-tune s (cap)")
    ap.add_argument("--learned-frames", type=int, default=100, help="frames per QEMU run")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(2)
    t_start = time.time()

    corpus = sd.load_corpus(log)
    log(corpus.describe())
    mixes = eval_set(corpus, args.eval)
    log(f"held-out mixtures: {len(mixes)}, {sum(len(m.clean) for m in mixes) / sd.SR:.0f} s")

    dense = Enhancer(HIDDEN)
    info_dense = train(
        "dense", dense, lambda m, x: m(x), corpus, args.steps, args.budget, args.retrain
    )
    kp = KpEnhancer(HIDDEN)
    info_kp = train("kp", kp, kp_forward, corpus, args.kp_steps, args.budget, args.retrain)
    log(f"training: dense {info_dense}, kronecker {info_kp}")

    rng = np.random.default_rng(7)  # calibration: training mixtures
    pool = [corpus.audio[i] for i in corpus.indices(False)]
    cal_x = train_batch(corpus, rng, pool, 32, SEQ)[0].numpy()
    tmp = Path(tempfile.mkdtemp(prefix="tinyc-speech-"))
    np.save(tmp / "cal_seq.npy", cal_x)
    step_cal: dict[str, dict[str, np.ndarray]] = {}
    for name, step in (("dense", StepEnhancer.from_dense(dense)), ("kp", StepEnhancer.from_kp(kp))):
        xs = []  # (x, h1, c1, h2, c2) along the calibration sequences, every 4th frame
        with torch.no_grad():
            for seq in cal_x[:8]:
                st = step_inputs(HIDDEN)[1:]
                for t in range(SEQ):
                    x = torch.from_numpy(seq[t])[None]
                    if t % 4 == 0:
                        xs.append([x, *st])
                    st = step(x, *st)[1:]
        step_cal[name] = {f"input_{i}": torch.stack([s[i] for s in xs]).numpy() for i in range(5)}
        np.savez(tmp / f"cal_step_{name}.npz", **step_cal[name])

    rows: list[Row] = []
    float_params = sum(p.numel() for p in dense.parameters())
    f_masks = float_masks(lambda m, x: m(x), dense, mixes)
    seq_graph = export_module(dense, (torch.zeros(1, SEQ, BINS),), "enhancer")
    float_macs = effective_macs(seq_graph)[0] / SEQ
    rows.append(Row("float (PyTorch)", 4 * float_params, float_macs, improvement(mixes, f_masks)))
    log(f"float: {rows[-1]}")

    cal = CalibrationOptions(path=str(tmp / "cal_seq.npy"))
    board = BOARDS["M4"]

    def stream_row(
        name: str, opts: CompileOptions, graph: Graph | None = None
    ) -> tuple[Row, Graph]:
        project = tmp / name.replace(" ", "_").replace("+", "").replace("=", "")
        g, man = compile_row(seq_graph if graph is None else graph, opts, project)
        masks, skipped = stream_masks(g, mixes)
        row = Row(name, man["weight_bytes"], effective_macs(g, skipped)[0], 0.0)
        row.si_sdr = improvement(mixes, masks)
        row.ram = man["arena_bytes"] + man.get("memory_plan", {}).get("state_bytes", 0)
        row.project = project
        row.note = skip_note(skipped)
        log(f"{name}: {row}")
        return row, g

    want = set(args.rows.split(","))
    if "int8" in want:
        r_int8, _ = stream_row("int8", CompileOptions(board=board, stream=True, calibration=cal))
        rows.append(r_int8)
    prune = PruneOptions.parse(args.prune, None, args.prune_block)
    pruned = pruned_label(args)
    if want & {"pruned", "skip"}:
        r_pr, g_pr = stream_row(
            f"{pruned} + int8",
            CompileOptions(board=board, stream=True, calibration=cal, prune=prune),
        )
        rows.append(r_pr)

    # skip threshold on training data: the largest T losing <= --skip-loss against pruned int8
    chosen = 0.0
    if "skip" in want:
        chosen = choose_threshold(g_pr, corpus, rng, pool, args.skip_loss)
    if chosen > 0:
        try:  # the pruned int8 step graph with its gate, compiled as it is
            name = f"{pruned} + int8 + skip T={chosen:.3g}"
            r_skip, _ = stream_row(name, CompileOptions(board=board), add_skip_gates(g_pr, chosen))
            rows.append(r_skip)
        except Exception as e:  # noqa: BLE001
            log(f"skip row: FAILED: {type(e).__name__}: {e}")

    learned = [k for k in ("learned", "learned-pruned") if k in want]
    if learned:
        learned_rows(args, rows, dense, corpus, mixes, stream_row, board, cal, prune, learned)

    def step_row(name: str, model: StepEnhancer, calib: str, kron: str | None) -> Row:
        project = tmp / name.split()[1]
        g0 = export_module(model, step_inputs(HIDDEN), name.split()[1])
        opts = CompileOptions(
            board=board, calibration=CalibrationOptions(path=calib), kronecker=kron
        )
        g, man = compile_row(g0, opts, project)
        masks = step_masks(g, mixes)
        row = Row(name, man["weight_bytes"], effective_macs(g)[0], improvement(mixes, masks))
        row.ram, row.project = man["arena_bytes"], project
        log(f"{name}: {row}")
        return row

    if "kron-post" in want:
        kron_post(rows, dense, step_row, tmp)
    if "kron-trained" in want:
        kp_step = StepEnhancer.from_kp(kp)
        kp_float = improvement(mixes, float_masks(kp_forward, kp, mixes))
        try:
            r = step_row("kronecker trained r1 + int8", kp_step, str(tmp / "cal_step_kp.npz"), None)
            r.note = f"float KP {kp_float:.2f} dB"
            rows.append(r)
        except Exception as e:  # noqa: BLE001
            log(f"kronecker trained: FAILED: {type(e).__name__}: {e}")

    # QEMU: a few frames of a held-out mixture on M4 and M7
    for row in rows[1:]:
        if row.project is None:
            continue
        for core, b in BOARDS.items():
            g = load_project_graph(row.project)
            proj = row.project
            if b != board:  # the same int8 graph (already streaming) for the other board
                proj = row.project.with_name(row.project.name + "_" + core)
                compile_model(g, CompileOptions(board=b), proj, log=lambda m: None)
            learned_gate = any(n.op == "SKIP_GATE_LEARNED" for n in g.nodes)
            f = feats(mixes[0])[: args.learned_frames if learned_gate else args.frames]
            if len(g.inputs) == 1:
                x = _quant(g, g.inputs[0], f)
                inputs = [x.reshape(1, len(f), BINS)]
            else:
                x = _quant(g, g.inputs[0], f[0]).reshape(g.tensors[g.inputs[0]].shape)
                st = [_quant(g, n, np.zeros(g.tensors[n].shape, np.float32)) for n in g.inputs[1:]]
                inputs = [x, *st]
            try:
                res = qemu(proj, b, inputs)  # instructions: the mean per frame
            except Exception as e:  # noqa: BLE001
                res = {"error": f"{type(e).__name__}: {e}"}
            row.qemu[core] = res
            log(f"{row.name} {core}: {res}")
        if learned_gate and len(g.inputs) == 1:  # the learned gates' decisions in those frames
            closed: dict[str, int] = {}
            stream_frames(g, f, closed)
            rates = " / ".join(f"{round(100 * v / len(f))}" for v in closed.values())
            row.note += f"; QEMU's {len(f)} frames: skip {rates} %"

    print_table(rows, float_params, info_dense, info_kp, time.time() - t_start)
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {k: str(v) if isinstance(v, Path) else v for k, v in r.__dict__.items()}
                    for r in rows
                ],
                indent=2,
            )
        )


def learned_rows(
    args: argparse.Namespace,
    rows: list[Row],
    dense: Enhancer,
    corpus: sd.Corpus,
    mixes: list[Mixture],
    stream_row: Callable,
    board: str,
    cal: CalibrationOptions,
    prune: PruneOptions,
    keys: list[str],
) -> None:
    """Learned skipping: the dense net with tinyc.torch.SkipLSTM layers, fine-tuned from its
    weights with a budget penalty, compiled with --stream (and --prune)."""
    net, info = finetune_skip(
        dense, corpus, args.skip_weight, args.skip_steps, args.skip_budget, args.retrain
    )
    log(f"learned skipping fine-tune: {info}")
    f_masks, closed = [], []
    with torch.no_grad():
        for m in mixes:
            mask, updates = net.forward_updates(torch.from_numpy(feats(m))[None])
            f_masks.append(mask[0].numpy())
            closed.append((1 - updates.float()).sum(dim=(1, 2)).numpy())
    frames = sum(len(feats(m)) for m in mixes)
    f_skip = np.sum(closed, axis=0) / frames
    float_note = (
        f"float {improvement(mixes, f_masks):.2f} dB, skip "
        + " / ".join(f"{round(100 * v)}" for v in f_skip)
        + " %"
    )
    log(f"learned skipping float: {float_note}")
    g_seq = export_module(net, (torch.zeros(1, SEQ, BINS),), "skip_enhancer")
    w = f"w={args.skip_weight:g}"
    for key in keys:
        try:
            if key == "learned":
                name = f"learned {w} + int8"
                opts = CompileOptions(board=board, stream=True, calibration=cal)
            else:
                name = f"learned {w} + {pruned_label(args)} + int8"
                opts = CompileOptions(board=board, stream=True, calibration=cal, prune=prune)
            row = stream_row(name, opts, g_seq)[0]
            row.note = f"{row.note} (layer 1 / 2); {float_note}; {info['steps']} fine-tune steps"
            rows.append(row)
        except Exception as e:  # noqa: BLE001 - report the row's failure, keep the others
            log(f"{key}: FAILED: {type(e).__name__}: {e}")


def choose_threshold(
    g_pr: Graph, corpus: sd.Corpus, rng: np.random.Generator, pool: list, budget: float
) -> float:
    """The largest --skip-threshold (in steps of the first LSTM's int8 input) that loses at
    most ``budget`` dB of SI-SDR improvement against no skipping on 4 training mixtures."""
    tune = [random_mixture(corpus, corpus.indices(False), rng, pool, 3 * sd.SR) for _ in range(4)]
    lstm_in = next(n for n in g_pr.nodes if n.op == "LSTM").inputs[0]
    step_q = float(g_pr.tensors[lstm_in].quant.s)
    base = improvement(tune, stream_masks(g_pr, tune)[0])
    chosen = 0.0
    for k in (8, 16, 24, 32, 48, 64, 96):
        t = k * step_q
        masks, skipped = stream_masks(add_skip_gates(g_pr, t), tune)
        skip = max(skipped.values(), default=0.0)
        loss = base - improvement(tune, masks)
        log(f"  T = {t:.4f} ({k} steps): skip {100 * skip:.0f} %, loss {loss:.2f} dB (training)")
        if loss > budget:
            break
        chosen = t
    return chosen


def kron_post(rows: list[Row], dense: Enhancer, step_row: Callable, tmp: Path) -> None:
    """The dense-trained net as a step model with nn.Linear gates, its four gate matrices
    factored by tinyc's --kronecker pass (rank 2; the 257-wide FCs stay dense)."""
    dense_step = StepEnhancer.from_dense(dense)
    gates = export_module(dense_step, step_inputs(HIDDEN), "gates")
    gate_fcs = [
        n.name
        for n in gates.nodes
        if n.op == "FULLY_CONNECTED" and g_shape(gates, n.inputs[1]) == (4 * HIDDEN, HIDDEN)
    ]
    spec = ",".join(f"{n}=2" for n in gate_fcs)
    try:
        r = step_row(
            "kronecker post-training r2 + int8", dense_step, str(tmp / "cal_step_dense.npz"), spec
        )
        r.note = f"--kronecker '{spec}'"
        rows.append(r)
    except Exception as e:  # noqa: BLE001 - report the row's failure, keep the others
        log(f"kronecker post-training: FAILED: {type(e).__name__}: {e}")


def g_shape(g: Graph, name: str) -> tuple[int, ...]:
    return tuple(g.tensors[name].shape)


def print_table(rows: list[Row], float_params: int, info_dense, info_kp, seconds: float) -> None:
    cpi4, clk4 = cpi(BOARDS["M4"])
    cpi7, clk7 = cpi(BOARDS["M7"])
    f = rows[0]
    head = (
        f"{'build':<36} {'weight B':>10} {'x':>6} {'MACs/frame':>11} {'x':>5} {'SI-SDRi dB':>10} "
        f"{'RAM B':>7} {'M4 instr':>10} {'M4 ms':>6} {'M7 instr':>10} {'M7 ms':>6} exact  note"
    )
    print()
    print(head)
    print("-" * len(head))
    for r in rows:
        m4, m7 = r.qemu.get("M4", {}), r.qemu.get("M7", {})
        i4, i7 = m4.get("instructions"), m7.get("instructions")
        exact = (
            "-"
            if not r.qemu
            else ("yes" if all(q.get("bit_exact") for q in r.qemu.values()) else "NO")
        )
        print(
            f"{r.name:<36} {r.weight_bytes:>10,} {f.weight_bytes / r.weight_bytes:>5.1f}x "
            f"{r.macs:>11,.0f} {f.macs / r.macs:>4.1f}x {r.si_sdr:>10.2f} "
            f"{r.ram or 0:>7,} {i4 or 0:>10,.0f} {(i4 or 0) * cpi4 / clk4 * 1e3:>6.2f} "
            f"{i7 or 0:>10,.0f} {(i7 or 0) * cpi7 / clk7 * 1e3:>6.2f} {exact:<5}  {r.note}"
        )
    print(
        f"\nms = QEMU instructions x CPI / clock (CPI {cpi4} on M4 @ {clk4 / 1e6:.0f} MHz, "
        f"{cpi7} on M7 @ {clk7 / 1e6:.0f} MHz, tinyc estimate's; flash wait states not "
        f"counted). Training: dense {info_dense}, Kronecker {info_kp}. Bench {seconds:.0f} s."
    )


if __name__ == "__main__":
    main()

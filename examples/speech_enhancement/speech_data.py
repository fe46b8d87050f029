"""Synthetic speech and noise for the speech-enhancement case study (bench/speech_enhancement.py).

Speech comes from Debian's text-to-speech voices only (espeak-ng voice variants and three
Festival voices; MBROLA is not packaged in Debian bookworm), saying sentences drawn from a
seeded template grammar, resampled to 16 kHz, silence-trimmed and set to one level. It is
cached under ``~/.cache/tinyc-speech`` (``TINYC_SPEECH_CACHE``) and made when missing:

    apt-get install -y espeak-ng festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts

Mixtures add noise at -5..10 dB SNR: stationary (white, pink, brown), non-stationary
(amplitude-modulated noise, tone / chirp bursts) and babble (3-5 utterances of other
training speakers summed).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
from scipy.io import wavfile
from scipy.signal import resample_poly

SR = 16000
CACHE = Path(os.environ.get("TINYC_SPEECH_CACHE", Path.home() / ".cache" / "tinyc-speech"))
N_SENTENCES = 400
EVAL_SENTENCES = range(340, 400)  # sentences only the held-out speakers say
LEVEL_RMS = 0.05  # every utterance at -26 dBFS

#: (name, engine, voice, pitch, speed); espeak-ng: voice+variant, pitch 0-99, words/min
TRAIN_SPEAKERS = [
    ("us_m1", "espeak", "en-us+m1", 50, 160),
    ("us_m3", "espeak", "en-us+m3", 35, 150),
    ("us_m5", "espeak", "en-us+m5", 30, 175),
    ("us_f1", "espeak", "en-us+f1", 60, 165),
    ("us_f2", "espeak", "en-us+f2", 72, 150),
    ("gb_m2", "espeak", "en-gb+m2", 45, 170),
    ("gb_m4", "espeak", "en-gb+m4", 40, 145),
    ("gb_f3", "espeak", "en-gb+f3", 65, 160),
    ("scot_m6", "espeak", "en-gb-scotland+m6", 50, 155),
    ("rp_m7", "espeak", "en-gb-x-rp+m7", 55, 165),
    ("car_f4", "espeak", "en-029+f4", 75, 155),
    ("wmd_f2", "espeak", "en-gb-x-gbcwmd+f2", 58, 140),
    ("kal", "festival", "kal_diphone", 0, 0),
    ("slt", "festival", "cmu_us_slt_arctic_hts", 0, 0),
]
EVAL_SPEAKERS = [
    ("rp_f4", "espeak", "en-gb-x-rp+f4", 68, 158),
    ("scot_m2", "espeak", "en-gb-scotland+m2", 38, 168),
    ("ked", "festival", "ked_diphone", 0, 0),
]

_WORDS = {
    "adj": [
        "old",
        "red",
        "quiet",
        "bright",
        "small",
        "heavy",
        "narrow",
        "green",
        "cold",
        "sudden",
        "careful",
        "broken",
        "gentle",
        "yellow",
        "empty",
        "famous",
        "distant",
        "wooden",
        "silver",
        "hungry",
    ],
    "noun": [
        "train",
        "window",
        "garden",
        "doctor",
        "river",
        "letter",
        "kitchen",
        "engine",
        "station",
        "teacher",
        "bottle",
        "market",
        "signal",
        "bridge",
        "farmer",
        "carpet",
        "winter",
        "machine",
        "pocket",
        "island",
    ],
    "verb": [
        "opened",
        "carried",
        "painted",
        "followed",
        "cleaned",
        "watched",
        "moved",
        "repaired",
        "found",
        "dropped",
        "covered",
        "counted",
        "measured",
        "borrowed",
        "pushed",
    ],
    "verb2": ["close", "bring", "check", "send", "open", "fix", "move", "hold", "clean", "count"],
    "place": [
        "near the harbour",
        "behind the school",
        "in the kitchen",
        "under the bridge",
        "at the station",
        "on the hill",
        "by the river",
        "in the old town",
    ],
    "time": [
        "this morning",
        "before noon",
        "last night",
        "on Monday",
        "after dinner",
        "in the spring",
        "at seven o'clock",
        "every evening",
    ],
    "name": [
        "Anna",
        "Peter",
        "Maria",
        "John",
        "Laura",
        "David",
        "Sophie",
        "Martin",
        "Clara",
        "Henry",
    ],
    "num": ["two", "three", "four", "five", "six", "seven", "eight", "nine", "eleven", "twelve"],
}
_TEMPLATES = [
    "The {adj} {noun} {verb} the {noun} {place}.",
    "{name} {verb} the {adj} {noun} {time}.",
    "Please {verb2} the {noun} {place} {time}.",
    "Did {name} see the {adj} {noun} {place}?",
    "We {verb} {num} {adj} {noun}s {time}.",
    "The {noun} was {adj} and the {noun} was {adj}.",
    "{name} said that the {noun} {verb} the {adj} {noun}.",
    "After the {noun} {verb} the {noun}, {name} went home.",
    "Why is the {noun} so {adj} {time}?",
    "There are {num} {noun}s {place}, and one of them is {adj}.",
]


def sentences(n: int = N_SENTENCES, seed: int = 13) -> list[str]:
    """``n`` distinct sentences from the seeded template grammar."""
    rng = np.random.default_rng(seed)
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        tpl = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
        parts = tpl.split("{")
        text = parts[0]
        for part in parts[1:]:
            key, rest = part.split("}", 1)
            words = _WORDS[key]
            text += words[int(rng.integers(len(words)))] + rest
        text = text[0].upper() + text[1:]
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def _read_16k(path: Path) -> np.ndarray:
    sr, x = wavfile.read(path)
    x = x.astype(np.float32) / 32768.0
    if x.ndim > 1:
        x = x.mean(axis=1)
    if sr != SR:
        g = gcd(sr, SR)
        x = resample_poly(x, SR // g, sr // g).astype(np.float32)
    return x


def _trim_and_level(x: np.ndarray) -> np.ndarray:
    """Silence trimmed to 100 ms either side (20 ms energy below -40 dB of the peak), then
    scaled to ``LEVEL_RMS``."""
    hop = 320
    e = np.array([np.sqrt(np.mean(x[i : i + hop] ** 2) + 1e-12) for i in range(0, len(x), hop)])
    on = np.nonzero(e > e.max() * 0.01)[0]
    if len(on):
        x = x[max(0, on[0] * hop - 1600) : (on[-1] + 1) * hop + 1600]
    return (x * LEVEL_RMS / (np.sqrt(np.mean(x**2)) + 1e-9)).astype(np.float32)


def synthesize(speaker: tuple, text: str, tmp: Path) -> np.ndarray:
    """One utterance of ``text`` by ``speaker`` at 16 kHz."""
    _, engine, voice, pitch, speed = speaker
    wav = tmp / "u.wav"
    if engine == "espeak":
        cmd = ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(wav), text]
        subprocess.run(cmd, check=True, capture_output=True)
    else:
        txt = tmp / "u.txt"
        txt.write_text(text + "\n")
        cmd = ["text2wave", "-eval", f"(voice_{voice})", str(txt), "-o", str(wav)]
        subprocess.run(cmd, check=True, capture_output=True)
    return _trim_and_level(_read_16k(wav))


@dataclass
class Corpus:
    """Clean utterances: ``audio[i]`` said by ``speaker[i]`` (a name), sentence ``sentence[i]``."""

    audio: list[np.ndarray]
    speaker: list[str]
    sentence: list[int]
    heldout: list[bool]

    def indices(self, heldout: bool) -> list[int]:
        return [i for i, h in enumerate(self.heldout) if h == heldout]

    def describe(self) -> str:
        lines = []
        for held in (False, True):
            idx = self.indices(held)
            spk = sorted({self.speaker[i] for i in idx})
            secs = sum(len(self.audio[i]) for i in idx) / SR
            lines.append(
                f"{'held-out' if held else 'training'}: {len(idx)} utterances, "
                f"{len({self.sentence[i] for i in idx})} sentences, {len(spk)} speakers "
                f"({', '.join(spk)}), {secs / 60:.1f} min, mean {secs / len(idx):.2f} s"
            )
        return "\n".join(lines)


def load_corpus(log=print) -> Corpus:
    """The cached corpus, synthesized first when missing (a few minutes)."""
    path = CACHE / "corpus.npz"
    if not path.exists():
        _build(path, log)
    z = np.load(path, allow_pickle=False)
    meta = json.loads(str(z["meta"]))
    cuts = np.cumsum([0, *meta["lengths"]])
    flat = z["audio"]  # read once (each z[...] reads the whole array again)
    audio = [flat[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    return Corpus(audio, meta["speaker"], meta["sentence"], meta["heldout"])


def _build(path: Path, log) -> None:
    texts = sentences()
    rng = np.random.default_rng(0)
    jobs: list[tuple[tuple, int, bool]] = []
    train_ids = [i for i in range(N_SENTENCES) if i not in EVAL_SENTENCES]
    for i in train_ids:  # every training sentence said by two training speakers
        for k in rng.choice(len(TRAIN_SPEAKERS), 2, replace=False):
            jobs.append((TRAIN_SPEAKERS[int(k)], i, False))
    for spk in EVAL_SPEAKERS:  # held-out speakers say 20 held-out sentences each
        for i in rng.choice(list(EVAL_SENTENCES), 20, replace=False):
            jobs.append((spk, int(i), True))
    t0 = time.time()
    audio, meta = [], {"speaker": [], "sentence": [], "heldout": [], "lengths": []}
    with tempfile.TemporaryDirectory() as d:
        for n, (spk, i, held) in enumerate(jobs):
            x = synthesize(spk, texts[i], Path(d))
            audio.append(x)
            meta["speaker"].append(spk[0])
            meta["sentence"].append(i)
            meta["heldout"].append(held)
            meta["lengths"].append(len(x))
            if n % 100 == 0:
                log(f"  synthesized {n}/{len(jobs)} utterances ({time.time() - t0:.0f} s)")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, audio=np.concatenate(audio), meta=json.dumps(meta))
    log(f"corpus: {len(jobs)} utterances in {time.time() - t0:.0f} s -> {path}")


# -- noise --------------------------------------------------------------------------------

NOISE_KINDS = ("white", "pink", "brown", "modulated", "bursts", "babble")


def _colored(n: int, rng: np.random.Generator, power: float) -> np.ndarray:
    """Noise with a 1/f^power spectrum (0 white, 1 pink, 2 brown), 50 Hz and up."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    spec *= 1.0 / np.maximum(f, 50.0) ** (power / 2)
    return np.fft.irfft(spec, n)


def noise(kind: str, n: int, rng: np.random.Generator, babble_pool: list[np.ndarray]) -> np.ndarray:
    """``n`` samples of noise of ``kind`` (NOISE_KINDS), unit-free (scaled by ``mix``)."""
    t = np.arange(n) / SR
    if kind == "white":
        return rng.standard_normal(n)
    if kind == "pink":
        return _colored(n, rng, 1.0)
    if kind == "brown":
        return _colored(n, rng, 2.0)
    if kind == "modulated":  # pink or white noise, its level swinging at 0.5-4 Hz
        base = _colored(n, rng, float(rng.choice([0.0, 1.0])))
        base /= base.std() + 1e-9
        rate = rng.uniform(0.5, 4.0)
        env = 1.0 + 0.95 * np.sin(2 * np.pi * rate * t + rng.uniform(0, 6.3))
        return base * env
    if kind == "bursts":  # tone and chirp bursts of 50-400 ms over a faint floor
        out = 0.02 * rng.standard_normal(n)
        pos = 0
        while pos < n:
            pos += int(rng.uniform(0.05, 0.5) * SR)
            length = int(rng.uniform(0.05, 0.4) * SR)
            seg = np.arange(min(length, max(0, n - pos))) / SR
            if not len(seg):
                break
            f0, f1 = rng.uniform(300, 4000, 2)
            if rng.random() < 0.5:
                f1 = f0  # a steady tone
            phase = 2 * np.pi * (f0 * seg + (f1 - f0) * seg**2 / (2 * seg[-1] + 1e-9))
            out[pos : pos + len(seg)] += np.sin(phase) * np.hanning(len(seg))
            pos += len(seg)
        return out
    if kind == "babble":  # 3-5 other speakers at once
        out = np.zeros(n)
        for _ in range(int(rng.integers(3, 6))):
            u = babble_pool[int(rng.integers(len(babble_pool)))]
            u = np.tile(u, n // len(u) + 2)
            start = int(rng.integers(len(u) - n))
            out += u[start : start + n]
        return out
    raise ValueError(kind)


def mix(
    clean: np.ndarray, kind: str, snr_db: float, rng: np.random.Generator, pool: list[np.ndarray]
) -> np.ndarray:
    """``clean`` plus ``kind`` noise at ``snr_db`` (over the whole utterance)."""
    v = noise(kind, len(clean), rng, pool)
    ps, pn = np.mean(clean**2), np.mean(v**2) + 1e-12
    return (clean + v * np.sqrt(ps / pn / 10 ** (snr_db / 10))).astype(np.float32)


if __name__ == "__main__":
    print(load_corpus().describe())

"""BC-ResNet (Broadcasted Residual Learning, Kim et al. 2021) written for tinyc's tests.

Its parameter names follow the shared state_dict ``pytorch_bcresnet_sc2/model-sc-2.pt``
(scale 2, 35 Speech Commands labels), so ``load_state_dict(strict=True)`` accepts it.

Input: log2 mel power spectrogram ``[1, 1, 40, 32]`` (40 mel bands, 32 frames: 1 s of 16 kHz
audio, n_fft 1024, hop 512), as the MANIFEST records. Output: the 35 class logits. The
upstream module ends in ``log_softmax``, which is monotonic: top-1 is the same, and tinyc
has no LOG_SOFTMAX op, so the module here stops at the logits.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

SUB_BANDS = 5
INPUT_SHAPE = (1, 1, 40, 32)


class SubSpectralNorm(nn.Module):
    """BatchNorm applied to each of ``sub_bands`` frequency bands separately: the
    frequency axis is split into sub-bands that become extra channels."""

    def __init__(self, channels: int, sub_bands: int = SUB_BANDS, eps: float = 1e-5) -> None:
        super().__init__()
        self.sub_bands = sub_bands
        self.bn = nn.BatchNorm2d(channels * sub_bands, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, f, t = x.shape
        y = self.bn(x.reshape(n, c * self.sub_bands, f // self.sub_bands, t))
        return y.reshape(n, c, f, t)


def _temporal(ch: int, dilation: int) -> nn.Sequential:
    """f1: frequency-pooled features through a temporal depthwise conv, BN, SiLU, 1x1."""
    return nn.Sequential(
        nn.Conv2d(ch, ch, (1, 3), padding="same", groups=ch, dilation=(1, dilation)),
        nn.BatchNorm2d(ch),
        nn.SiLU(),
        nn.Conv2d(ch, ch, 1),
        nn.Dropout2d(0.1),
    )


class NormalBlock(nn.Module):
    def __init__(self, ch: int, dilation: int = 1) -> None:
        super().__init__()
        self.f2 = nn.Sequential(
            nn.Conv2d(ch, ch, (3, 1), padding="same", groups=ch), SubSpectralNorm(ch)
        )
        self.f1 = _temporal(ch, dilation)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.f2(x)
        x2 = self.f1(x1.mean(dim=2, keepdim=True))
        return self.act(x + x1 + x2.repeat(1, 1, x1.shape[2], 1))


class TransitionBlock(nn.Module):
    def __init__(self, cin: int, cout: int, dilation: int = 1, stride: int = 1) -> None:
        super().__init__()
        if stride == 1:
            freq = nn.Conv2d(cout, cout, (3, 1), padding="same", groups=cout)
        else:
            freq = nn.Conv2d(cout, cout, (3, 1), stride=(stride, 1), padding=(1, 0), groups=cout)
        self.f2 = nn.Sequential(
            nn.Conv2d(cin, cout, 1), nn.BatchNorm2d(cout), nn.ReLU(), freq, SubSpectralNorm(cout)
        )
        self.f1 = _temporal(cout, dilation)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.f2(x)
        x1 = self.f1(x.mean(dim=2, keepdim=True))
        return self.act(x + x1.repeat(1, 1, x.shape[2], 1))


class BCResNet(nn.Module):
    def __init__(self, n_class: int = 35, scale: int = 2) -> None:
        super().__init__()
        c = [16 * scale, 8 * scale, 12 * scale, 16 * scale, 20 * scale, 32 * scale]
        self.input_conv = nn.Conv2d(1, c[0], 5, stride=(2, 1), padding=2)
        self.t1 = TransitionBlock(c[0], c[1])
        self.n11 = NormalBlock(c[1])
        self.t2 = TransitionBlock(c[1], c[2], dilation=2, stride=2)
        self.n21 = NormalBlock(c[2], dilation=2)
        self.t3 = TransitionBlock(c[2], c[3], dilation=4, stride=2)
        self.n31 = NormalBlock(c[3], dilation=4)
        self.n32 = NormalBlock(c[3], dilation=4)
        self.n33 = NormalBlock(c[3], dilation=4)
        self.t4 = TransitionBlock(c[3], c[4], dilation=8)
        self.n41 = NormalBlock(c[4], dilation=8)
        self.n42 = NormalBlock(c[4], dilation=8)
        self.n43 = NormalBlock(c[4], dilation=8)
        self.dw_conv = nn.Conv2d(c[4], c[4], 5, groups=20)
        self.onexone_conv = nn.Conv2d(c[4], c[5], 1)
        self.head_conv = nn.Conv2d(c[5], n_class, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_conv(x)
        for block in (self.t1, self.n11, self.t2, self.n21, self.t3, self.n31, self.n32):
            x = block(x)
        for block in (self.n33, self.t4, self.n41, self.n42, self.n43):
            x = block(x)
        x = self.onexone_conv(self.dw_conv(x))
        x = self.head_conv(x.mean(dim=3, keepdim=True))
        return x.reshape(x.shape[0], -1)


def bcresnet_sc2() -> tuple[nn.Module, tuple[torch.Tensor]]:
    """The factory ``tinyc compile tests/models/bcresnet.py:bcresnet_sc2@model-sc-2.pt``."""
    return BCResNet(scale=2), (torch.zeros(INPUT_SHAPE),)


# -- speech-like inputs (no Speech Commands audio offline) ----------------------------------


def _mel_filterbank(n_fft: int, sr: int, n_mels: int, f_max: float) -> np.ndarray:
    """HTK-scale triangular filters without normalisation (torchaudio's defaults)."""

    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    pts = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(f_max), n_mels + 2))
    lower, center, upper = pts[:-2, None], pts[1:-1, None], pts[2:, None]
    up = (freqs[None] - lower) / (center - lower)
    down = (upper - freqs[None]) / (upper - center)
    return np.maximum(0.0, np.minimum(up, down))


def synthetic_logmel(n: int, seed: int) -> np.ndarray:
    """``n`` log2 mel spectrograms [n, 1, 40, 32] of 1 s synthetic 'utterances': a voiced
    harmonic segment with a random pitch glide and formant envelope, in background noise."""
    sr, n_fft, hop = 16000, 1024, 512
    rng = np.random.default_rng(seed)
    fb = _mel_filterbank(n_fft, sr, 40, 8000.0)
    window = np.hanning(n_fft + 1)[:-1]
    t = np.arange(sr) / sr
    out = np.empty((n, 1, 40, 32), np.float32)
    for i in range(n):
        start, length = rng.uniform(0.0, 0.5), rng.uniform(0.25, 0.6)
        f0 = rng.uniform(90, 260) * (1 + rng.uniform(-0.2, 0.2) * t)
        phase = 2 * np.pi * np.cumsum(f0) / sr
        formants = rng.uniform([300, 900, 2200], [900, 2200, 3500])
        voiced = np.zeros(sr)
        for k in range(1, 40):
            fk = k * f0.mean()
            if fk > 7000:
                break
            gain = sum(np.exp(-(((fk - f) / 200.0) ** 2)) for f in formants) + 0.05
            voiced += gain * np.sin(k * phase) / k
        envelope = np.clip(np.minimum(t - start, start + length - t) * 20, 0, 1)
        audio = voiced * envelope * rng.uniform(0.05, 0.5)
        audio += rng.normal(0, rng.uniform(1e-4, 1e-2), sr)
        padded = np.pad(audio, n_fft // 2, mode="reflect")
        frames = np.stack([padded[j * hop : j * hop + n_fft] for j in range(32)])
        power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
        out[i, 0] = np.log2(fb @ power.T + 1e-9)
    return out

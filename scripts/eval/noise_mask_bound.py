#!/usr/bin/env python3
"""How little of an added noise any time-frequency mask can pass: the bound behind the
denoising targets of `stemscribe-lab noise` (issue 14, item 2).

The measure is the engine's: the energy of output(noisy) - output(clean) against the added
noise's, in dB. Here output(clean) is the ideal one, the true stem (vocals, or the mix minus
the vocals), and output(noisy) is a real gain in [0, 1] on each STFT bin of each side of the
noisy mix. Three such gains, from the most to the least knowing:

  oracle    the best gain for the bin, knowing the clean output's complex spectrum and the
            noise as drawn: Re(T conj(Y)) / |Y|^2, clipped to [0, 1]. No mask does better.
  wiener    the Wiener gain knowing the clean mix's and the noise's power in the bin.
  subtract  spectral subtraction knowing each frequency's true mean noise power (no floor),
            the ideal of what `denoise.rs` estimates.

Each of them is applied on top of the ideal separation mask |T| / |X|. The noises have the
engine's spectra and levels (white; pink by Paul Kellet's filter; 50 Hz hum, ten harmonics at
1/k; babble: the corpus's speech clips, each at the same RMS, entering 1.5 s apart, the sides
3.5 s apart), added at 10 dB SNR against the mix; the draws differ from the engine's.

Clips: every corpus clip with stems, and the MUSDB18 sample in tests/data (eval only; the
corpus is not redistributable). Needs numpy, scipy, soundfile, and ffmpeg on PATH.

usage: scripts/eval/noise_mask_bound.py CORPUS_DIR [FFT_SIZE]   (FFT_SIZE 4096 by default, hop /4)
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import lfilter, resample_poly, stft

SR = 44100
SNR_DB = 10.0
NOISES = ("white", "pink", "hum", "babble")


def decode(path, stream=0):
    """A file's audio stream as float (channels, frames) at 44.1 kHz stereo, by ffmpeg."""
    out = subprocess.run(
        ["ffmpeg", "-v", "quiet", "-i", str(path), "-map", f"0:a:{stream}", "-f", "f32le",
         "-ac", "2", "-ar", str(SR), "-"],
        capture_output=True, check=True).stdout
    return np.frombuffer(out, np.float32).reshape(-1, 2).T.astype(np.float64)


def read_16k(path):
    """A 16 kHz WAV as (channels, frames) at 44.1 kHz, mono repeated to stereo."""
    audio, _ = sf.read(path, always_2d=True)
    audio = resample_poly(audio.T, 441, 160, axis=-1)
    return np.repeat(audio, 2, 0) if audio.shape[0] == 1 else audio


def clips(corpus, rock):
    """(name, mix, vocals) of every clip with stems; vocals are zero where there are none."""
    stem_files = [("music_delta_80s_rock", rock)] + [
        (p.name.removesuffix(".stem.mp4"), p) for p in sorted((corpus / "stems").glob("*.stem.mp4"))]
    for name, path in stem_files:
        mix, vocals = decode(path, 0), decode(path, 4)
        n = min(mix.shape[1], vocals.shape[1])
        yield name, mix[:, :n], vocals[:, :n]
    for mix_path in sorted((corpus / "stems").glob("*__mixture_16000.wav")):
        name = mix_path.name.removesuffix("__mixture_16000.wav")
        mix = read_16k(mix_path)
        vocal_path = mix_path.with_name(f"{name}__vocal_16000.wav")
        vocals = read_16k(vocal_path) if vocal_path.exists() else np.zeros_like(mix)
        n = min(mix.shape[1], vocals.shape[1])
        yield name, mix[:, :n], vocals[:, :n]


def speech_voices(corpus):
    """The corpus's speech clips, mono, each at unit RMS."""
    voices = []
    for path in sorted((corpus / "speech").iterdir()):
        if path.suffix in (".txt", ".md"):
            continue
        mono = decode(path).mean(axis=0)
        if len(mono):
            voices.append(mono / np.sqrt(np.mean(mono ** 2)))
    return voices


def noise(kind, shape, rng, voices):
    """Unscaled noise of `kind`, (channels, frames)."""
    channels, frames = shape
    if kind == "white":
        return rng.uniform(-1, 1, shape)
    if kind == "pink":
        white = rng.uniform(-1, 1, shape)
        poles = [(0.99886, 0.0555179), (0.99332, 0.0750759), (0.969, 0.153852),
                 (0.8665, 0.3104856), (0.55, 0.5329522), (-0.7616, -0.016898)]
        pink = sum(lfilter([gain], [1, -pole], white, axis=-1) for pole, gain in poles)
        delayed = np.concatenate([np.zeros((channels, 1)), white[:, :-1]], axis=1)
        return pink + 0.5362 * white + 0.115926 * delayed
    if kind == "hum":
        t = np.arange(frames) / SR
        hum = sum(np.sin(2 * np.pi * 50 * k * t + 0.7 * k) / k for k in range(1, 11))
        return np.tile(hum, (channels, 1))
    babble = np.zeros(shape)
    for side in range(channels):
        for k, voice in enumerate(voices):
            start = SR * (k * 3 + side * 7) // 2
            babble[side] += voice[(np.arange(frames) + start) % len(voice)]
    return babble


def passed_db(target, mix, added, fft_size):
    """Noise passed (dB) by the oracle, Wiener and subtraction gains for `target` in `mix`."""
    spectrum = lambda x: stft(x, nperseg=fft_size, noverlap=fft_size * 3 // 4)[2]
    t, x, n = spectrum(target), spectrum(mix), spectrum(added)
    y = x + n
    tiny = 1e-20
    separation = np.clip(np.abs(t) / np.maximum(np.abs(x), tiny), 0, 1)
    clean_out = separation * x
    x_power, n_power, y_power = np.abs(x) ** 2, np.abs(n) ** 2, np.abs(y) ** 2
    mean_noise = n_power.mean(axis=-1, keepdims=True)
    gains = {
        "oracle": np.clip(np.real(clean_out * np.conj(y)) / np.maximum(y_power, tiny), 0, 1),
        "wiener": separation * x_power / np.maximum(x_power + n_power, tiny),
        "subtract": separation * np.clip(1 - mean_noise / np.maximum(y_power, tiny), 0, 1),
    }
    total = n_power.sum()
    return {k: 10 * np.log10(np.sum(np.abs(g * y - clean_out) ** 2) / total) for k, g in gains.items()}


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    corpus = Path(sys.argv[1])
    fft_size = int(sys.argv[2]) if len(sys.argv) > 2 else 4096
    rock = Path(__file__).resolve().parents[2] / "tests/data/music_delta_80s_rock.stem.mp4"
    rng = np.random.default_rng(7)
    voices = speech_voices(corpus)
    rows = []
    print(f"noise passed (dB) at {SNR_DB:g} dB SNR, STFT {fft_size}; oracle / wiener / subtract")
    print(f"{'clip':38} {'noise':7} {'vocals':>20} {'accompaniment':>20}")
    for name, mix, vocals in clips(corpus, rock):
        for kind in NOISES:
            added = noise(kind, mix.shape, rng, voices)
            added *= np.sqrt(np.sum(mix ** 2) / np.sum(added ** 2)) * 10 ** (-SNR_DB / 20)
            cells = []
            for stem, target in (("vocals", vocals), ("accompaniment", mix - vocals)):
                if np.sum(target ** 2) < 1e-6 * np.sum(mix ** 2):
                    cells.append(f"{'-':>20}")
                    continue
                figures = passed_db(target, mix, added, fft_size)
                rows.append((stem, kind, figures["oracle"]))
                cells.append(f"{' / '.join(f'{v:5.1f}' for v in figures.values()):>20}")
            print(f"{name:38} {kind:7} {cells[0]} {cells[1]}")
    print("\noracle bound, mean / best (lowest) over the clips")
    for stem in ("vocals", "accompaniment"):
        for kind in NOISES:
            values = [v for s, k, v in rows if s == stem and k == kind]
            print(f"{stem:14} {kind:7} {np.mean(values):6.1f} / {min(values):6.1f}")


if __name__ == "__main__":
    main()

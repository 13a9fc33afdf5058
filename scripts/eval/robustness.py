#!/usr/bin/env python3
"""Transcription under changes a recording may bring: level, band limit, noise, reverberation.

Every sight-singing voice of the corpus is peak-normalised to 0.9 and transcribed alone and
over the corpus's solo piano (looped, at equal RMS, the sum halved), and every speech clip is
transcribed, each as it is and changed as the perturbation says. Prints per perturbation the
decisions (sung inputs that give notes, speech refused) and the mean and worst COnP F1 of the
voices against their annotations (mir_eval: 50 ms, 50 cents).

usage: scripts/eval/robustness.py CORPUS [PERTURBATION ...]
perturbations: clean gain-30dB gain-45dB gain+6dB lowpass4k noise20dB reverb0.6s (default: all)
Needs numpy, scipy, soundfile and mir_eval, and a release build (target/release/stemscribe).
"""

import glob
import json
import os
import subprocess
import sys
import tempfile
from math import gcd

import mir_eval
import numpy as np
import scipy.signal as ss
import soundfile as sf

RATE = 44100
BIN = os.path.join(os.path.dirname(__file__), "..", "..", "target", "release", "stemscribe")
rng = np.random.default_rng(1)


def load(path):
    y, sr = sf.read(path, always_2d=True)
    y = y.mean(axis=1)
    if sr != RATE:
        g = gcd(sr, RATE)
        y = ss.resample_poly(y, RATE // g, sr // g)
    return y


def lowpass(y, hz):
    return ss.sosfiltfilt(ss.butter(10, hz, fs=RATE, output="sos"), y)


def reverb(y, rt60=0.6):
    n = int(rt60 * RATE)
    ir = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / RATE / rt60)
    ir[0] = 1.0
    wet = ss.fftconvolve(y, ir / np.sqrt(np.sum(ir**2)))[: len(y)]
    return 0.5 * y + 0.5 * wet * np.sqrt(np.mean(y**2) / np.mean(wet**2))


def noise(y, snr_db):
    return y + rng.standard_normal(len(y)) * np.sqrt(np.mean(y**2) / 10 ** (snr_db / 10))


PERTURBATIONS = {
    "clean": lambda y: y,
    "gain-30dB": lambda y: y * 10 ** (-30 / 20),
    "gain-45dB": lambda y: y * 10 ** (-45 / 20),
    "gain+6dB": lambda y: y * 2.0,
    "lowpass4k": lambda y: lowpass(y, 4000),
    "noise20dB": lambda y: noise(y, 20),
    "reverb0.6s": reverb,
}


def transcribe(y, scratch):
    wav, out = os.path.join(scratch, "in.wav"), os.path.join(scratch, "out.json")
    sf.write(wav, y.astype(np.float32), RATE, subtype="FLOAT")
    if os.path.exists(out):
        os.remove(out)
    done = subprocess.run([BIN, "-q", "midi", wav, "--json", out], capture_output=True)
    return json.load(open(out))["midiList"] if done.returncode == 0 else None


def conp(notes, reference):
    if not notes:
        return 0.0
    intervals = np.array([[n["start"], n["end"]] for n in notes])
    hz = 440 * 2 ** ((np.array([n["pitch"] for n in notes]) - 69) / 12)
    ref_hz = 440 * 2 ** ((reference[:, 2] - 69) / 12)
    return mir_eval.transcription.precision_recall_f1_overlap(
        reference[:, :2], ref_hz, intervals, hz, offset_ratio=None)[2]


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    corpus, chosen = sys.argv[1], sys.argv[2:] or list(PERTURBATIONS)
    voices = sorted(glob.glob(os.path.join(corpus, "sung_solo", "*.flac")))
    speech = sorted(p for p in glob.glob(os.path.join(corpus, "speech", "*"))
                    if p.endswith((".wav", ".flac", ".ogg")))
    piano = load(os.path.join(corpus, "instrumental", "smstools_piano.wav"))
    with tempfile.TemporaryDirectory() as scratch:
        for name in chosen:
            change = PERTURBATIONS[name]
            sung, solo, mixed = 0, [], []
            for path in voices:
                y = load(path)
                y *= 0.9 / np.abs(y).max()
                reference = np.loadtxt(path.replace(".flac", ".notes.txt"), ndmin=2)
                backing = np.resize(piano, len(y))
                backing *= np.sqrt(np.mean(y**2) / np.mean(backing**2))
                for signal, scores in ((y, solo), (0.5 * (y + backing), mixed)):
                    notes = transcribe(change(signal), scratch)
                    sung += notes is not None
                    scores.append(conp(notes, reference))
            refused = 0
            for path in speech:
                y = load(path)
                refused += transcribe(change(y * 0.9 / np.abs(y).max()), scratch) is None
            print(f"{name:11s} sung decisions {sung}/{2 * len(voices)}, speech refused "
                  f"{refused}/{len(speech)}; COnP solo {np.mean(solo):.3f} (worst "
                  f"{min(solo):.3f}), over piano at 0 dB {np.mean(mixed):.3f} (worst "
                  f"{min(mixed):.3f})", flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Chooses the note segmentation's hold time and harmonic-dip weight, leave-one-recording-out.

Runs SwiftF0 (`models/installed/swift-f0.onnx`, through onnxruntime) over every annotated solo
recording (the corpus's 15 sight-singing clips and `tests/data/vocadito_1.flac` with annotator
A1), then re-segments each contour with the engine's rule (`crates/stemscribe-transcribe/src/
segment.rs`, re-written here in numpy) for every setting on a grid: the hold time, and what the
loudness term reads (the broadband level, SwiftF0's rule, or the level of the harmonics of the
tracked pitch, times a weight). Prints each setting's mir_eval note F1 (COn, COnP, COnPOff;
mean over recordings), then the held-out figures: for each recording, the setting that scores
best (COnP + COnPOff) on the other recordings, scored on it.

Resampling here (scipy) differs from the engine's (rubato), so figures differ from `stemscribe
eval corpus` in the third decimal.

usage: scripts/fit_note_rules.py [CORPUS]   (default ../shared/data/corpus)
Needs numpy, scipy, soundfile, onnxruntime and mir_eval.
"""

import glob
import itertools
import os
import sys
from math import gcd

import mir_eval
import numpy as np
import onnxruntime
import soundfile
from scipy.signal import resample_poly

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RATE, HOP = 16000, 256
PERIOD = HOP / RATE
MIN_NOTE_FRAMES = 5  # 80 ms
HOLDS = [0.10, 0.13, 0.16]
WEIGHTS = [0, 1, 2, 3]  # 0: the broadband level (SwiftF0's rule)


def load(path):
    audio, rate = soundfile.read(path, dtype="float32")
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    g = gcd(rate, RATE)
    return resample_poly(audio, RATE // g, rate // g).astype("float32")


def broadband_db(x, frames):
    power = np.array([np.sum(x[i * HOP:(i + 1) * HOP].astype(np.float64) ** 2)
                      for i in range(frames)])
    previous = np.concatenate([[0.0], power[:-1]])
    return 20 * np.log10(np.maximum(np.sqrt((previous + power) / (2 * HOP)), 1e-7))


def harmonic_db(x, pitch):
    """The engine's harmonic_levels_db: harmonics below 5 kHz in a Hann window of two hops."""
    size = 2 * HOP
    window = np.hanning(size + 1)[:size]
    padded = np.pad(x, (HOP, size))
    full_scale = window.sum() ** 2 / 4
    levels = np.empty(len(pitch))
    for t, f0 in enumerate(pitch):
        power = np.abs(np.fft.rfft(padded[t * HOP:t * HOP + size] * window)) ** 2
        if f0 > 0:
            bins = np.round(np.arange(f0, 5000.0, f0) / (RATE / size)).astype(int)
            energy = sum(power[max(b - 1, 0):b + 2].max() for b in bins)
        else:
            energy = power.sum()
        levels[t] = max(10 * np.log10(max(energy / full_scale, 1e-14)), -140.0)
    return levels


def quiet(level, weight, reach=4, threshold=10 * np.log10(2)):
    n = len(level)
    idx = np.arange(n)

    def at(i):
        i = np.where(i < 0, -i - 1, np.where(i >= n, 2 * n - i - 1, i))
        return level[np.clip(i, 0, n - 1)]

    left = np.max([at(idx - k) for k in range(reach + 1)], axis=0)
    right = np.max([at(idx + k) for k in range(reach + 1)], axis=0)
    return weight * np.maximum(np.minimum(left, right) - level - threshold, 0)


def segment(pitch, confidence, quiet_cost, hold):
    n = len(pitch)
    valid = pitch > 0
    midi = np.where(valid, 69 + 12 * np.log2(np.maximum(pitch, 1e-9) / 440), 0.0)
    weight = np.where(valid, confidence, 0.0)
    candidates = np.unique(np.floor(midi[valid] * 100 + 0.5) / 100)
    if len(candidates) == 0:
        return []
    c = np.clip(weight, 0.01, 0.99)
    frame_cost = -np.log(c / (1 - c)) + quiet_cost
    beta = hold / PERIOD
    cost = np.full(len(candidates), np.inf)
    opened = np.zeros(len(candidates), int)
    back = np.zeros(n + 1, int)
    kind = np.full(n + 1, -1)
    best = 0.0
    for t in range(n):
        reopen = best + beta < cost
        opened[reopen] = t
        cost[reopen] = best + beta
        cost += weight[t] * np.minimum(np.abs(candidates - midi[t]), 2.0) + frame_cost[t]
        a = int(np.argmin(cost))
        if cost[a] < best:
            best, back[t + 1], kind[t + 1] = cost[a], opened[a], a
        else:
            back[t + 1] = t
    notes, b = [], n
    while b > 0:
        a = back[b]
        if kind[b] >= 0:
            notes.append((a, b, candidates[kind[b]]))
        b = a
    return [s for s in notes[::-1] if s[1] - s[0] >= MIN_NOTE_FRAMES]


def f1s(notes, reference):
    if not notes:
        return (0.0, 0.0, 0.0)
    intervals = np.array([[s[0] * PERIOD, s[1] * PERIOD] for s in notes])
    hz = 440 * 2 ** ((np.array([s[2] for s in notes]) - 69) / 12)
    ref_intervals, ref_hz = reference[:, :2], 440 * 2 ** ((reference[:, 2] - 69) / 12)
    score = mir_eval.transcription.precision_recall_f1_overlap
    return (score(ref_intervals, ref_hz, intervals, hz, offset_ratio=None, pitch_tolerance=1e9)[2],
            score(ref_intervals, ref_hz, intervals, hz, offset_ratio=None)[2],
            score(ref_intervals, ref_hz, intervals, hz)[2])


def recordings(corpus):
    for path in sorted(glob.glob(os.path.join(corpus, "sung_solo", "*.flac"))):
        yield os.path.basename(path)[:-5], path, np.loadtxt(path[:-5] + ".notes.txt")
    vocadito = os.path.join(ROOT, "tests", "data", "vocadito_1")
    a1 = np.loadtxt(vocadito + "_notesA1.csv", delimiter=",")
    yield "vocadito_1", vocadito + ".flac", np.stack(
        [a1[:, 0], a1[:, 0] + a1[:, 2], 69 + 12 * np.log2(a1[:, 1] / 440)], axis=1)


def main():
    corpus = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "data",
                                                                "corpus")
    tracker = onnxruntime.InferenceSession(os.path.join(ROOT, "models", "installed",
                                                        "swift-f0.onnx"))
    clips = []
    for name, path, reference in recordings(corpus):
        x = load(path)
        pitch, confidence = tracker.run(None, {"audio": x[None],
                                               "fmin": np.array(46.875, dtype="float32"),
                                               "fmax": np.array(2093.75, dtype="float32")})
        pitch, confidence = pitch[0].astype(np.float64), confidence[0].astype(np.float64)
        clips.append(dict(name=name, pitch=pitch, confidence=confidence, reference=reference,
                          broadband=broadband_db(x, len(pitch)),
                          harmonic=harmonic_db(x, pitch)))
    grid = list(itertools.product(HOLDS, WEIGHTS))
    scores = {}
    print("| hold (s) | loudness term | COn | COnP | COnPOff | worst COnP |")
    print("|---|---|---|---|---|---|")
    for hold, weight in grid:
        scores[hold, weight] = np.array([
            f1s(segment(c["pitch"], c["confidence"],
                        quiet(c["broadband"], 1.0) if weight == 0
                        else quiet(c["harmonic"], weight), hold), c["reference"])
            for c in clips])
        term = "broadband" if weight == 0 else f"harmonic ×{weight}"
        s = scores[hold, weight]
        print(f"| {hold:.2f} | {term} | {s[:, 0].mean():.3f} | {s[:, 1].mean():.3f} | "
              f"{s[:, 2].mean():.3f} | {s[:, 1].min():.3f} |", flush=True)
    held, chosen = [], []
    for i in range(len(clips)):
        best = max(grid, key=lambda g: np.delete(scores[g][:, 1] + scores[g][:, 2], i).mean())
        chosen.append(best)
        held.append(scores[best][i])
    held = np.array(held)
    print(f"\nheld out ({len(clips)} recordings, one at a time): COn {held[:, 0].mean():.3f} "
          f"COnP {held[:, 1].mean():.3f} COnPOff {held[:, 2].mean():.3f}, worst COnP "
          f"{held[:, 1].min():.3f} ({clips[int(held[:, 1].argmin())]['name']})")
    print("settings chosen:", sorted(set(chosen)))


if __name__ == "__main__":
    main()

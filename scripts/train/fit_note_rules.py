#!/usr/bin/env python3
"""Chooses the note segmentation's settings on the corpus, leave-one-recording-out.

Reads the contours `stemscribe-lab corpus --tracks DIR` writes (the engine's own pitch track
of every clip's separated voice, with its broadband and harmonic levels, and the annotation
where there is one), re-segments every annotated clip with the engine's rule
(`crates/stemscribe-transcribe/src/segment.rs`, re-written here in numpy) for every setting on
a grid, and scores the notes with mir_eval (COn, COnP, COnPOff F1). The grid:

- the hold time (`TranscriptionOptions::hold_secs`);
- what the loudness term reads: the broadband level (SwiftF0's rule) or the level of the
  harmonics of the tracked pitch, times a weight;
- a voicing bias added to every frame's confidence logit (0: the tracker's own);
- the trim: frames at either end of a note whose harmonic level lies more than this many dB
  below the note's median are dropped (none: notes end where the segmentation ends them).

Prints each setting's mean F1 per group (solo, excerpts, mixtures), then the held-out
figures: every clip made from one recording (the recording, its excerpts, its voice over
each backing) is held out together, the setting that scores best (mean COnP + COnPOff) on the
other recordings' clips is chosen, and the held-out clips are scored with it.

usage: scripts/train/fit_note_rules.py DIR
Needs numpy and mir_eval.
"""

import csv
import itertools
import os
import sys

import mir_eval
import numpy as np

MIN_NOTE_SECS = 0.080
HOLDS = [0.10, 0.13, 0.16]
WEIGHTS = [0, 1, 2]  # 0: the broadband level
BIASES = [0.0, 0.5, 1.0]
TRIMS = [None, 8.0, 10.0, 12.0]


def source(clip):
    """The recording a clip comes from: mixtures are grouped by their voice."""
    for cut in (" over ", " 2 s", " 5 s"):
        clip = clip.split(cut)[0]
    return clip


def quiet(level, weight, reach=4, threshold=10 * np.log10(2)):
    """The loudness term: `weight` × dB more than 3 dB below the loudest within 64 ms."""
    n = len(level)
    idx = np.arange(n)

    def at(i):
        i = np.where(i < 0, -i - 1, np.where(i >= n, 2 * n - i - 1, i))
        return level[np.clip(i, 0, n - 1)]

    left = np.max([at(idx - k) for k in range(reach + 1)], axis=0)
    right = np.max([at(idx + k) for k in range(reach + 1)], axis=0)
    return weight * np.maximum(np.minimum(left, right) - level - threshold, 0)


def segment(pitch, confidence, quiet_cost, hold, period):
    """The engine's dynamic programme: notes as (first frame, end frame, MIDI pitch)."""
    n = len(pitch)
    valid = np.isfinite(pitch) & (pitch > 0)
    midi = np.where(valid, 69 + 12 * np.log2(np.where(valid, pitch, 440.0) / 440), 0.0)
    weight = np.where(valid, confidence, 0.0)
    candidates = np.unique(np.floor(midi[valid] * 100 + 0.5) / 100)
    if len(candidates) == 0:
        return []
    c = np.clip(weight, 0.01, 0.99)
    frame_cost = -np.log(c / (1 - c)) + quiet_cost
    beta = hold / period
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
    min_frames = max(round(MIN_NOTE_SECS / period), 1)
    return [s for s in notes[::-1] if s[1] - s[0] >= min_frames]


def trimmed(notes, harmonic, trim_db, min_frames):
    """The engine's trim: ends more than `trim_db` below the note's median harmonic level."""
    if trim_db is None:
        return notes
    out = []
    for start, end, pitch in notes:
        levels = np.sort(harmonic[start:end])
        floor = levels[len(levels) // 2] - trim_db
        while end - start > min_frames and harmonic[end - 1] < floor:
            end -= 1
        while end - start > min_frames and harmonic[start] < floor:
            start += 1
        out.append((start, end, pitch))
    return out


def f1s(notes, reference, period):
    if not notes:
        return np.zeros(3)
    intervals = np.array([[s[0] * period, s[1] * period] for s in notes])
    hz = 440 * 2 ** ((np.array([s[2] for s in notes]) - 69) / 12)
    score = mir_eval.transcription.precision_recall_f1_overlap
    ref_intervals, ref_hz = reference[:, :2], reference[:, 2]
    return np.array([
        score(ref_intervals, ref_hz, intervals, hz, offset_ratio=None, pitch_tolerance=1e9)[2],
        score(ref_intervals, ref_hz, intervals, hz, offset_ratio=None)[2],
        score(ref_intervals, ref_hz, intervals, hz)[2]])


def with_bias(confidence, bias):
    c = np.clip(confidence, 1e-6, 1 - 1e-6)
    return 1 / (1 + np.exp(-(np.log(c / (1 - c)) + bias)))


def load(directory):
    clips = []
    for row in csv.DictReader(open(os.path.join(directory, "index.csv"))):
        notes = os.path.join(directory, row["file"] + ".notes.csv")
        if not os.path.exists(notes):
            continue
        reference = np.loadtxt(notes, delimiter=",", skiprows=1, ndmin=2)
        if len(reference) == 0:
            continue
        track = np.loadtxt(os.path.join(directory, row["file"] + ".track.csv"), delimiter=",",
                           skiprows=1, ndmin=2)
        clips.append(dict(name=row["clip"], group=row["group"], source=source(row["clip"]),
                          reference=reference, period=track[1, 0] - track[0, 0],
                          pitch=track[:, 1], confidence=track[:, 2], broadband=track[:, 3],
                          harmonic=track[:, 4]))
    return clips


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: scripts/train/fit_note_rules.py DIR")
    clips = load(sys.argv[1])
    groups = sorted({c["group"] for c in clips})
    sources = sorted({c["source"] for c in clips})
    grid = list(itertools.product(HOLDS, WEIGHTS, BIASES, TRIMS))
    scores = {}
    print(f"{len(clips)} annotated clips from {len(sources)} recordings; COnP / COnPOff F1\n")
    print("| hold | loudness | bias | trim (dB) | " + " | ".join(groups) + " |")
    print("|---" * (4 + len(groups)) + "|")
    segmented = {}
    for hold, weight, bias, trim in grid:
        if (hold, weight, bias) not in segmented:
            segmented[hold, weight, bias] = [
                segment(c["pitch"], with_bias(c["confidence"], bias),
                        quiet(c["broadband"], 1.0) if weight == 0
                        else quiet(c["harmonic"], weight), hold, c["period"])
                for c in clips]
        scores[hold, weight, bias, trim] = np.array([
            f1s(trimmed(notes, c["harmonic"], trim, max(round(MIN_NOTE_SECS / c["period"]), 1)),
                c["reference"], c["period"])
            for notes, c in zip(segmented[hold, weight, bias], clips)])
        s = scores[hold, weight, bias, trim]
        cells = []
        for g in groups:
            m = s[[c["group"] == g for c in clips]].mean(axis=0)
            cells.append(f"{m[1]:.3f} / {m[2]:.3f}")
        loudness = "broadband" if weight == 0 else f"harmonic ×{weight}"
        print(f"| {hold:.2f} | {loudness} | {bias:.1f} | {trim or 'none'} | " + " | ".join(cells)
              + " |", flush=True)
    held = np.zeros((len(clips), 3))
    chosen = set()
    for src in sources:
        out = np.array([c["source"] == src for c in clips])
        best = max(grid, key=lambda g: scores[g][~out][:, 1:].sum(axis=1).mean())
        chosen.add(best)
        held[out] = scores[best][out]
    print("\nheld out, one recording at a time (COn / COnP / COnPOff, mean; worst COnP):")
    for g in groups:
        rows = np.array([c["group"] == g for c in clips])
        m, worst = held[rows].mean(axis=0), held[rows][:, 1].min()
        print(f"- {g} ({rows.sum()} clips): {m[0]:.3f} / {m[1]:.3f} / {m[2]:.3f}; "
              f"worst {worst:.3f}")
    print("settings chosen (hold, loudness weight, bias, trim):",
          sorted(chosen, key=lambda g: tuple(-1 if x is None else x for x in g)))


if __name__ == "__main__":
    main()

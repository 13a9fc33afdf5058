#!/usr/bin/env python3
"""Fits and checks the decision between singing and not singing on the corpus features.

Reads the CSV that `stemscribe-lab corpus --features FILE` writes (one line per clip: the
separated vocal's level, the evidence of its pitch contour and the confidence the engine
computes from it) and compares decision rules
with leave-one-source-out: every clip derived from one recording (its excerpts, its mixtures
with a voice) is held out together, the rule is fitted on the rest, and the held-out clips are
decided by it. Prints each rule's held-out errors, the worst clips, and the ROC AUC of its
score, then the weights of the chosen rule fitted on everything (the numbers the engine uses).

usage: scripts/train/fit_singing_decision.py FEATURES.csv
Needs numpy (the project's .venv has it).
"""

import csv
import sys

import numpy as np

FEATURES = ["stable_share", "held_share", "median_note_secs", "log_slope", "voiced_share"]


def source(clip):
    """The recording a clip comes from: mixtures are grouped by their voice."""
    for cut in (" over ", " 2 s", " 5 s"):
        clip = clip.split(cut)[0]
    return clip


def load(path):
    rows = list(csv.DictReader(open(path)))
    for row in rows:
        for key in ("seconds", "vocal_to_mix_db", "voiced_share", "stable_share", "held_share",
                    "confidence", "sung_secs", "median_note_secs", "mean_slope",
                    "range_semitones"):
            row[key] = float(row[key])
        row["log_slope"] = np.log(max(row["mean_slope"], 0.1))
        row["sung"] = row["kind"] == "sung"
        row["source"] = source(row["clip"])
    return rows


def melody_gate(row, min_secs, share):
    """Enough sung time: `min_secs`, or (`share` given) that share of a shorter clip."""
    needed = min_secs if share is None else min(min_secs, share * row["seconds"])
    return row["sung_secs"] >= needed


def fit_logistic(x, y, l2=1.0, steps=200):
    """Newton's method on the L2-regularised logistic loss; x standardised by the caller."""
    x1 = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(x1.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-x1 @ w))
        grad = x1.T @ (p - y) + l2 * np.r_[w[:-1], 0]
        hess = (x1.T * (p * (1 - p))) @ x1 + l2 * np.diag(np.r_[np.ones(len(w) - 1), 0])
        w -= np.linalg.solve(hess, grad)
    return w


class Logistic:
    """Sung when the melody gate passes and the logistic score of the contour is above 0.5."""

    def __init__(self, features, min_secs=1.0, share=0.3):
        self.features, self.min_secs, self.share = features, min_secs, share

    def fit(self, rows):
        rows = [r for r in rows if melody_gate(r, self.min_secs, self.share)]
        x = np.array([[r[f] for f in self.features] for r in rows])
        y = np.array([float(r["sung"]) for r in rows])
        self.mean, self.std = x.mean(0), x.std(0) + 1e-9
        self.w = fit_logistic((x - self.mean) / self.std, y)
        return self

    def score(self, row):
        if not melody_gate(row, self.min_secs, self.share):
            return 0.0
        z = (np.array([row[f] for f in self.features]) - self.mean) / self.std
        return float(1 / (1 + np.exp(-(z @ self.w[:-1] + self.w[-1]))))

    def describe(self):
        # Weights on the raw features: score = sigmoid(sum(a_i * f_i) + b).
        a = self.w[:-1] / self.std
        b = self.w[-1] - np.sum(self.w[:-1] * self.mean / self.std)
        terms = " + ".join(f"{ai:.4f} * {f}" for ai, f in zip(a, self.features))
        return f"sigmoid({terms} + {b:.4f})"


class Threshold:
    """Enough sung time and `feature` at least `stable` (today: 1 s or 30% of the clip, and a
    confidence of 0.49); with `fit_stable`, the threshold is chosen on the training clips
    instead."""

    def __init__(self, min_secs=1.0, share=0.3, stable=0.49, fit_stable=False,
                 feature="confidence"):
        self.min_secs, self.share, self.stable = min_secs, share, stable
        self.fit_stable, self.feature = fit_stable, feature

    def fit(self, rows):
        if self.fit_stable:
            # The threshold with the fewest errors, each class weighted equally; ties go to
            # the middle of the best run.
            def errors(t):
                self.stable = t
                wrong = {True: 0, False: 0}
                count = {True: 0, False: 0}
                for r in rows:
                    count[r["sung"]] += 1
                    wrong[r["sung"]] += (self.score(r) > 0.5) != r["sung"]
                return sum(wrong[k] / max(count[k], 1) for k in wrong)
            grid = np.round(np.arange(0.30, 0.90, 0.01), 2)
            costs = [errors(t) for t in grid]
            best = [t for t, c in zip(grid, costs) if c == min(costs)]
            self.stable = float(best[len(best) // 2])
        return self

    def score(self, row):
        if not melody_gate(row, self.min_secs, self.share):
            return 0.0
        return 0.5 + (row[self.feature] - self.stable)

    def describe(self):
        return (f"sung_secs >= min({self.min_secs}, {self.share} x duration) and "
                f"{self.feature} >= {self.stable}")


def auc(scores, labels):
    pos = [s for s, l in zip(scores, labels) if l]
    neg = [s for s, l in zip(scores, labels) if not l]
    if not pos or not neg:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def held_out(rows, make):
    """Scores of every clip by a rule fitted without its source."""
    scores = {}
    for src in sorted({r["source"] for r in rows}):
        train = [r for r in rows if r["source"] != src]
        rule = make().fit(train)
        for r in rows:
            if r["source"] == src:
                scores[r["clip"]] = rule.score(r)
    return scores


def report(name, rows, make):
    scores = held_out(rows, make)
    wrong = [r for r in rows if (scores[r["clip"]] > 0.5) != r["sung"]]
    by_kind = {}
    for r in rows:
        k = r["kind"]
        right = (scores[r["clip"]] > 0.5) == r["sung"]
        by_kind.setdefault(k, [0, 0])
        by_kind[k][0] += right
        by_kind[k][1] += 1
    kinds = ", ".join(f"{k} {a}/{n}" for k, (a, n) in sorted(by_kind.items()))
    a = auc([scores[r["clip"]] for r in rows], [r["sung"] for r in rows])
    print(f"{name}: held-out right {len(rows) - len(wrong)}/{len(rows)} ({kinds}); ROC AUC {a:.3f}")
    for r in wrong[:12]:
        print(f"    wrong: {r['clip']} ({r['kind']}), score {scores[r['clip']]:.2f}")
    return len(wrong)


def main():
    rows = load(sys.argv[1])
    print(f"{len(rows)} clips from {len({r['source'] for r in rows})} recordings\n")
    report("before: 1 s or 30% of the clip, stable share 0.65", rows,
           lambda: Threshold(stable=0.65, feature="stable_share"))
    report("before, threshold fitted", rows,
           lambda: Threshold(feature="stable_share", fit_stable=True))
    report("today: 1 s or 30% of the clip, confidence (stable and held shares) 0.49", rows,
           lambda: Threshold())
    for share in (0.2, 0.4):
        report(f"1 s or {share:.0%} of the clip, confidence 0.49", rows,
               lambda s=share: Threshold(share=s))
    report("1 s or 30% of the clip, confidence threshold fitted", rows,
           lambda: Threshold(fit_stable=True))
    for features in (["stable_share", "held_share"], ["stable_share", "median_note_secs"],
                     FEATURES):
        report(f"logistic on {'+'.join(features)}, 1 s or 30% of notes", rows,
               lambda f=features: Logistic(f))
    chosen = Threshold(fit_stable=True).fit(rows)
    print(f"\nconfidence threshold fitted on all clips: {chosen.describe()}")
    logistic = Logistic(FEATURES).fit(rows)
    print(f"logistic fitted on all clips: {logistic.describe()}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Fits the sung / spoken / instrumental decision and reports it on held-out recordings.

Reads the CSV that `stemscribe-lab decision-features` writes over the clips of
`make_decision_data.py` (one line a clip: its class, source recording, setting, augmentation,
and the features the engine measures, named in its header) and, with `--frames`, the frames
that command writes with `--frames DIR`: then a frame network (`voice_frames.py`) judges every
voiced frame and its verdicts, averaged over the clip, join the clip's features (stacked: the
clip network learns from verdicts on clips the frame network was not trained on, 4 grouped
inner folds). Then:

1. compares classifiers (softmax regression; a one-hidden-layer network) with grouped
   cross-validation: the sources are dealt into folds, every clip of a source (all its
   augmentations, excerpts and mixtures) is held out together, and the threshold of singing is
   chosen inside each training part only (nested folds): the one that minimises, on the
   inner held-out folds, the cost of its errors, a refused singer counting SUNG_COST times
   as much as a spoken, rapped or instrumental clip given notes;
2. prints, for the chosen classifier, the held-out confusion table by class and by
   augmentation, setting and length, the worst source recordings and a reliability table of
   the probability of singing;
3. fits it on everything and writes the engine's `decision.json` (with `--write`).

usage: scripts/train/fit_singing_decision.py FEATURES.csv [--frames DIR] [--write PATH]
                                             [--folds N] [--model softmax|mlp]
`--write` needs `--frames` (the engine's model has a frame network). Needs numpy (the
project's .venv has it).
"""

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

import voice_frames

CLASSES = ["sung", "spoken", "instrumental"]
TARGET = {"sung": 0, "speech": 1, "rap": 1, "instrumental": 2}
# What refusing a singer costs against giving notes to speech, rap or an instrumental: the
# threshold minimises SUNG_COST × (share of sung clips refused) + (share of the others given
# notes, each of speech and rap and instrumental weighing alike).
SUNG_COST = 4.0


# A sung clip whose separated vocals lie this far below the mix has lost its voice in the
# separation: no decision can find it, so it is reported apart and not learned from.
LOST_DB = -40.0


def load(path):
    """The clips (rows, features, classes), apart from them the sung clips whose voice the
    separation lost, and the features' names: the columns after `p_instrumental` (the
    engine's FEATURE_NAMES) but the frame network's verdicts, which this script computes."""
    reader = csv.DictReader(open(path))
    rows = list(reader)
    names = [n for n in reader.fieldnames[reader.fieldnames.index("p_instrumental") + 1:]
             if n not in voice_frames.FEATURES]
    lost = [r for r in rows if r["kind"] == "sung" and float(r["vocal_to_mix_db"]) <= LOST_DB]
    rows = [r for r in rows if not (r["kind"] == "sung" and float(r["vocal_to_mix_db"]) <= LOST_DB)]
    x = np.array([[float(r[f]) for f in names] for r in rows])
    y = np.array([TARGET[r["kind"]] for r in rows])
    return rows, x, y, lost, names


def made_here(row):
    """Whether a clip's voice or instrument was made here: synthesised speech and rap, and
    instruments rendered with fluidsynth (their setting names the instrument; a recorded
    instrumental's is `alone`)."""
    if row["source"].startswith("synth"):
        return True
    return row["kind"] == "instrumental" and row["setting"] != "alone"


def standardise(x):
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    return mean, scale


def sample_weights(y):
    """Every class weighs alike, whatever its share of the clips (the probabilities are those
    of equal priors)."""
    w = np.ones(len(y))
    for c in range(3):
        if (y == c).any():
            w[y == c] *= len(y) / (3 * (y == c).sum())
    return w / w.mean()


def fit_softmax(x, y, l2=1e-2, steps=400, lr=0.5):
    """Softmax regression by full-batch gradient descent with momentum; x standardised."""
    n, d = x.shape
    w, b = np.zeros((3, d)), np.zeros(3)
    vw, vb = np.zeros_like(w), np.zeros_like(b)
    onehot = np.eye(3)[y]
    sw = sample_weights(y)[:, None]
    for _ in range(steps):
        p = voice_frames.softmax(x @ w.T + b)
        g = (p - onehot) * sw / n
        gw, gb = g.T @ x + l2 * w, g.sum(axis=0)
        vw, vb = 0.9 * vw - lr * gw, 0.9 * vb - lr * gb
        w, b = w + vw, b + vb
    return [(w, b)]


def fit_mlp(x, y, hidden=16, l2=1e-2, steps=800, lr=0.01, seed=0):
    """One hidden ReLU layer, softmax output, Adam on the full batch; x standardised."""
    rng = np.random.default_rng(seed)
    n, d = x.shape
    params = [rng.standard_normal((hidden, d)) * np.sqrt(2 / d), np.zeros(hidden),
              rng.standard_normal((3, hidden)) * np.sqrt(1 / hidden), np.zeros(3)]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    onehot = np.eye(3)[y]
    sw = sample_weights(y)[:, None]
    for t in range(1, steps + 1):
        w1, b1, w2, b2 = params
        h = np.maximum(x @ w1.T + b1, 0)
        p = voice_frames.softmax(h @ w2.T + b2)
        g2 = (p - onehot) * sw / n
        gh = (g2 @ w2) * (h > 0)
        grads = [gh.T @ x + l2 * w1, gh.sum(axis=0), g2.T @ h + l2 * w2, g2.sum(axis=0)]
        voice_frames.adam_update(params, grads, m, v, t, lr)
    return [(params[0], params[1]), (params[2], params[3])]


CLIP_NETWORKS = {"softmax": fit_softmax, "mlp": fit_mlp}
FRAMES = "+frames"


def predict(layers, x):
    return voice_frames.softmax(voice_frames.forward(layers, x))


def fit_standardised(fit, x, y):
    mean, scale = standardise(x)
    return mean, scale, fit((x - mean) / scale, y)


def probabilities(model, x):
    mean, scale, layers = model
    return predict(layers, (x - mean) / scale)


def folds_of(sources, k, seed):
    """Sources dealt into k folds at random: a fold index per clip."""
    unique = sorted(set(sources))
    order = np.random.default_rng(seed).permutation(len(unique))
    fold = {unique[j]: i % k for i, j in enumerate(order)}
    return np.array([fold[s] for s in sources])


def threshold_for(p_sung, y):
    """The threshold of the least cost (see SUNG_COST) on these predictions, from 0.01 to 0.9."""
    def cost(t):
        given = p_sung >= t
        refused = 1 - given[y == 0].mean() if (y == 0).any() else 0
        others = [given[y == c].mean() for c in (1, 2) if (y == c).any()]
        return SUNG_COST * refused + (np.mean(others) if others else 0)
    candidates = np.round(np.arange(0.01, 0.901, 0.01), 2)
    return float(min(candidates, key=cost))


class Classifier:
    """A clip classifier (`clip`: fit_softmax or fit_mlp) on the features `x` of the clips,
    with the frame network's verdicts added when `frames` (inputs and owners of
    `voice_frames.load`) is given; models are fitted on index arrays of clips."""

    def __init__(self, clip, x, y, sources, frames=None, seed=26):
        self.clip, self.x, self.y, self.sources = clip, x, y, sources
        self.frames, self.seed = frames, seed

    def verdicts(self, net, clips):
        inputs, owner = self.frames
        return voice_frames.clip_features(net, inputs, owner, clips, len(self.y))[clips]

    def fit(self, clips):
        """(frame network or None, clip network) fitted on `clips`."""
        if self.frames is None:
            return None, fit_standardised(self.clip, self.x[clips], self.y[clips])
        inputs, owner = self.frames
        stacked = np.zeros((len(clips), len(voice_frames.FEATURES)))
        inner = folds_of([self.sources[i] for i in clips], 4, self.seed)
        for g in range(4):
            net = voice_frames.fit(inputs, owner, self.y, clips[inner != g], self.seed + g)
            stacked[inner == g] = self.verdicts(net, clips[inner == g])
        net = voice_frames.fit(inputs, owner, self.y, clips, self.seed)
        return net, fit_standardised(self.clip, np.hstack([self.x[clips], stacked]),
                                     self.y[clips])

    def probabilities(self, model, clips):
        net, clip = model
        x = self.x[clips] if net is None else np.hstack([self.x[clips], self.verdicts(net, clips)])
        return probabilities(clip, x)


def held_out(classifier, sources, k, seed=26, inner=4):
    """Held-out probabilities and thresholds per clip, by grouped nested cross-validation."""
    y = classifier.y
    folds = folds_of(sources, k, seed)
    p = np.zeros((len(y), 3))
    thresholds = np.zeros(len(y))
    for f in range(k):
        test, train = np.nonzero(folds == f)[0], np.nonzero(folds != f)[0]
        p[test] = classifier.probabilities(classifier.fit(train), test)
        # The threshold from the training part alone: its own grouped inner folds.
        inner_folds = folds_of([sources[i] for i in train], inner, seed + f)
        inner_p = np.zeros(len(train))
        for g in range(inner):
            model = classifier.fit(train[inner_folds != g])
            inner_p[inner_folds == g] = classifier.probabilities(
                model, train[inner_folds == g])[:, 0]
        thresholds[test] = threshold_for(inner_p, y[train])
    return p, thresholds


def decisions(p, thresholds):
    """0 notes, 1 spoken, 2 instrumental."""
    return np.where(p[:, 0] >= thresholds, 0, np.where(p[:, 1] > p[:, 2], 1, 2))


def table(rows, decided, key, title):
    print(f"\n### {title}\n")
    print("| " + key + " | kind | clips | notes | NoOutput: spoken | NoOutput: instrumental | right |")
    print("|---|---|---|---|---|---|---|")
    groups = sorted({r[key] for r in rows}) if key != "class" else ["all"]
    for g in groups:
        for kind in ["sung", "speech", "rap", "instrumental"]:
            idx = [i for i, r in enumerate(rows)
                   if r["kind"] == kind and (key == "class" or r[key] == g)]
            if not idx:
                continue
            d = decided[idx]
            right = (d == 0).sum() if kind == "sung" else (d != 0).sum()
            print(f"| {g} | {kind} | {len(idx)} | {(d == 0).sum()} | {(d == 1).sum()} | "
                  f"{(d == 2).sum()} | {100 * right / len(idx):.1f}% |")


def length_band(seconds):
    s = float(seconds)
    return "2 s" if s < 2.5 else "3-5 s" if s < 5.5 else "6-10 s"


def previous_rule(x, names):
    """The rule this classifier replaces (0: notes, 2: no output): notes covering 1 s or 30% of
    a shorter input, and the mean of the stable and held shares at least 0.49; `names` are
    the columns of `x`."""
    j = {n: i for i, n in enumerate(names)}
    seconds = np.exp(x[:, j["log_seconds"]])
    sung_secs = x[:, j["sung_share"]] * seconds
    confidence = (x[:, j["stable_share"]] + x[:, j["held_share"]]) / 2
    given = (sung_secs >= np.minimum(1.0, 0.3 * seconds)) & (confidence >= 0.49)
    return np.where(given, 0, 2)


def summary(name, rows, y, p, thresholds):
    d = decisions(p, thresholds)
    sung = y == 0
    kinds = np.array([r["kind"] for r in rows])
    long_enough = np.array([float(r["seconds"]) >= 1.99 for r in rows])
    recall = (d[sung & long_enough] == 0).mean()
    rejected = {k: (d[kinds == k] != 0).mean() for k in ("speech", "rap", "instrumental")}
    loss = -np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-9, 1)))
    recorded = np.array([r["kind"] == "speech" and not made_here(r) for r in rows])
    print(f"{name:<14} sung given notes {100 * recall:.1f}%  speech refused "
          f"{100 * rejected['speech']:.1f}% (recorded {100 * (d[recorded] != 0).mean():.1f}%)  "
          f"rap {100 * rejected['rap']:.1f}%  instrumental "
          f"{100 * rejected['instrumental']:.1f}%  log loss {loss:.3f}  thresholds "
          f"{np.min(thresholds):.2f}-{np.max(thresholds):.2f}")
    if len(np.unique(p[:, 0])) > 2:
        # The same probabilities with one threshold that gives 99% of the sung clips notes.
        at99 = np.quantile(p[sung & long_enough, 0], 0.01)
        refused = {k: 100 * (p[kinds == k, 0] < at99).mean() for k in ("speech", "rap",
                                                                        "instrumental")}
        recorded = np.array([r["kind"] == "speech" and not made_here(r) for r in rows])
        print(f"{'':15}at 99% of sung clips given notes: speech refused {refused['speech']:.1f}%  "
              f"rap {refused['rap']:.1f}%  instrumental {refused['instrumental']:.1f}%  "
              f"recorded speech {100 * (p[recorded, 0] < at99).mean():.1f}%")
    return recall, np.mean(list(rejected.values()))


def report(rows, y, p, thresholds):
    d = decisions(p, thresholds)
    for r in rows:
        r["length"] = length_band(r["seconds"])
        setting = r["setting"]
        r["where"] = ("mix" if setting == "mix" else "over an accompaniment"
                      if setting.startswith("over") or " over " in setting else "alone")
        r["origin"] = ("performed here" if "performed" in r["setting"] else
                       "second soundfont" if "second soundfont" in r["setting"] else
                       "made here" if made_here(r) else "recorded")
    table(rows, d, "class", "By class")
    table(rows, d, "augmentation", "By augmentation")
    table(rows, d, "where", "By setting")
    table(rows, d, "origin", "By origin of the voice or instrument")
    table(rows, d, "length", "By length")
    print("\n### Worst source recordings (share of their clips of a class decided wrongly)\n")
    print("| source | class | clips | wrong |")
    print("|---|---|---|---|")
    by_source = {}
    for i, r in enumerate(rows):
        wrong = (d[i] != 0) if r["kind"] == "sung" else (d[i] == 0)
        by_source.setdefault((r["source"], r["kind"]), []).append(wrong)
    worst = sorted(by_source.items(), key=lambda kv: (-np.mean(kv[1]), -len(kv[1])))
    for (source, kind), wrongs in worst[:10]:
        print(f"| {source} | {kind} | {len(wrongs)} | {100 * np.mean(wrongs):.1f}% |")
    print("\n### Reliability of the probability of singing (held out)\n")
    print("| predicted | clips | mean predicted | observed sung |")
    print("|---|---|---|---|")
    edges = [0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0001]
    for lo, hi in zip(edges, edges[1:]):
        m = (p[:, 0] >= lo) & (p[:, 0] < hi)
        if m.any():
            print(f"| {lo:.1f}-{min(hi, 1):.1f} | {m.sum()} | {p[m, 0].mean():.2f} | "
                  f"{(y[m] == 0).mean():.2f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("features")
    parser.add_argument("--frames", help="the frames of `decision-features --frames DIR`")
    parser.add_argument("--write", help="where to write the engine's decision.json")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--model", choices=list(CLIP_NETWORKS) + [n + FRAMES for n in CLIP_NETWORKS],
                        help="skip the comparison")
    args = parser.parse_args()
    if args.write and not args.frames:
        parser.error("--write needs --frames: the engine's model has a frame network")
    rows, x, y, lost, names = load(args.features)
    sources = [r["source"] for r in rows]
    if lost:
        by = {}
        for r in lost:
            by[f'{r["source"]} ({r["setting"]})'] = by.get(f'{r["source"]} ({r["setting"]})', 0) + 1
        print(f"{len(lost)} sung clips whose separated voice lies {-LOST_DB:.0f} dB or more below "
              f"the mix, left out (the engine answers NoOutput): {by}")
    print(f"{len(rows)} clips from {len(set(sources))} source recordings; "
          f"{args.folds} grouped folds, threshold chosen on 4 inner folds at the least cost "
          f"(a refused singer costs {SUNG_COST:g})\n")
    frames = voice_frames.load([r["file"] for r in rows], args.frames) if args.frames else None
    candidates = {name: Classifier(fit, x, y, sources) for name, fit in CLIP_NETWORKS.items()}
    if frames is not None:
        candidates.update({name + FRAMES: Classifier(fit, x, y, sources, frames)
                           for name, fit in CLIP_NETWORKS.items()})
    if args.model:
        candidates = {args.model: candidates[args.model]}
    summary("previous rule", rows, y, np.eye(3)[previous_rule(x, names)], np.full(len(y), 0.5))
    results = {}
    for name, classifier in candidates.items():
        p, thresholds = held_out(classifier, sources, args.folds)
        results[name] = (summary(name, rows, y, p, thresholds), p, thresholds)
    # The chosen: the least held-out cost (of those with the frame network, to be written).
    def cost(item):
        (recall, rejected), _, _ = item[1]
        return SUNG_COST * (1 - recall) + (1 - rejected)
    eligible = {n: r for n, r in results.items() if not args.write or n.endswith(FRAMES)}
    chosen, (_, p, thresholds) = min(eligible.items(), key=cost)
    print(f"\n## Held out: {chosen}")
    report(rows, y, p, thresholds)
    if args.write:
        classifier = candidates[chosen]
        everything = np.arange(len(y))
        net, (mean, scale, layers) = classifier.fit(everything)
        inner = folds_of(sources, 4, 26)
        inner_p = np.zeros(len(y))
        for g in range(4):
            model = classifier.fit(everything[inner != g])
            inner_p[inner == g] = classifier.probabilities(model, everything[inner == g])[:, 0]
        threshold = threshold_for(inner_p, y)
        model = {
            "about": "The singing decision: scripts/train/fit_singing_decision.py "
                     f"({chosen}, {len(rows)} clips of make_decision_data.py). The frame "
                     "network's verdicts (voice_frames.py) join the features; then standardise "
                     "with mean and scale, dense layers with ReLU between, softmax.",
            "features": names + voice_frames.FEATURES, "classes": CLASSES,
            "frames": voice_frames.to_json(net),
            "mean": [round(float(v), 6) for v in mean],
            "scale": [round(float(v), 6) for v in scale],
            "layers": [{"weights": [[round(float(v), 6) for v in row] for row in w],
                        "bias": [round(float(v), 6) for v in b]} for w, b in layers],
            "threshold": round(threshold, 4),
        }
        Path(args.write).write_text(json.dumps(model, indent=1) + "\n")
        print(f"\nwrote {args.write} (threshold {threshold:.3f})", file=sys.stderr)


if __name__ == "__main__":
    main()

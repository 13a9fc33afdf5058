"""The singing decision's frame network: a verdict on every voiced frame of the separated voice,
averaged over the input into two features of the clip network.

Each voiced frame (voicing confidence at least 0.5) is described by FRAME_INPUTS values of the
frames at TAPS around it (edges repeated): its cepstral envelope, its harmonicity (harmonic
level minus loudness, in [-40, 0] dB) and its loudness against the input's 95th percentile
(nearest rank). One hidden ReLU layer gives sung / spoken / instrumental probabilities; the
features are the mean over the voiced frames of their logarithms (each at least ln 1e-6), as
log odds: sung against the others, spoken against instrumental. The engine computes the same
(`FrameNetwork` in crates/stemscribe-transcribe/src/decision.rs).

Reads the frames `stemscribe-lab decision-features --frames DIR` writes, one CSV a clip.
"""

from pathlib import Path

import numpy as np

TAPS = list(range(-8, 9, 2))
ENVELOPE = 12
FRAME_INPUTS = ENVELOPE + 2
FEATURES = ["frame_sung_log_odds", "frame_spoken_log_odds"]
VOICED = 0.5
FLOOR = np.log(1e-6)


def frame_inputs(frames):
    """The inputs of every voiced frame of one clip's frame table (columns as the lab writes
    them), one row each."""
    voiced = np.nonzero(frames[:, 2] >= VOICED)[0] if len(frames) else []
    if len(voiced) == 0:
        return np.zeros((0, FRAME_INPUTS * len(TAPS)), np.float32)
    loudness, harmonic = frames[:, 3], frames[:, 4]
    ranked = np.sort(loudness)
    top = ranked[int(round((len(ranked) - 1) * 0.95))]
    values = np.column_stack([frames[:, 5:5 + ENVELOPE],
                              np.clip(harmonic - loudness, -40, 0), loudness - top])
    at = np.clip(voiced[:, None] + np.array(TAPS)[None, :], 0, len(frames) - 1)
    return values[at].reshape(len(voiced), -1).astype(np.float32)


def load(files, directory):
    """The inputs of every voiced frame of the clips `files` (names in the manifest), and the
    index of the clip each comes from."""
    inputs, owner = [], []
    for i, name in enumerate(files):
        path = Path(directory) / (Path(name).stem + ".csv")
        frames = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
        x = frame_inputs(frames)
        inputs.append(x)
        owner.append(np.full(len(x), i))
    return np.concatenate(inputs), np.concatenate(owner)


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def forward(layers, x):
    """`x` through dense `layers` of (weights, bias), ReLU between them (not after the last)."""
    for i, (w, b) in enumerate(layers):
        x = x @ w.T + b
        if i + 1 < len(layers):
            x = np.maximum(x, 0)
    return x


def adam_update(params, grads, m, v, t, lr):
    """One Adam step (t counts from 1) on `params` in place, with its moments `m` and `v`."""
    for i, g in enumerate(grads):
        m[i] = 0.9 * m[i] + 0.1 * g
        v[i] = 0.999 * v[i] + 0.001 * g * g
        params[i] -= lr * (m[i] / (1 - 0.9**t)) / (np.sqrt(v[i] / (1 - 0.999**t)) + 1e-8)


def fit(inputs, owner, labels, clips, seed, per_clip=400, hidden=32, epochs=6, lr=3e-3,
        l2=1e-4, batch=2048):
    """Trains on the voiced frames of `clips` (at most `per_clip` of each, at random), every
    frame labelled with its clip's class (`labels`, 0-2), the classes weighing alike; Adam on
    mini-batches. Returns (mean, scale, layers)."""
    rng = np.random.default_rng(seed)
    rows = np.nonzero(np.isin(owner, clips))[0]
    rows = rows[rng.permutation(len(rows))]
    # The first `per_clip` rows of each clip in this random order.
    order = np.argsort(owner[rows], kind="stable")
    ranks = np.empty(len(rows), int)
    sorted_owner = owner[rows][order]
    starts = np.searchsorted(sorted_owner, sorted_owner, side="left")
    ranks[order] = np.arange(len(rows)) - starts
    rows = rows[ranks < per_clip]
    x, y = inputs[rows], labels[owner[rows]]
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-6] = 1.0
    x = (x - mean) / scale
    weight = np.ones(len(y), np.float32)
    for c in range(3):
        if (y == c).any():
            weight[y == c] = len(y) / (3 * (y == c).sum())
    d = x.shape[1]
    params = [(rng.standard_normal((d, hidden)) * np.sqrt(2 / d)).astype(np.float32),
              np.zeros(hidden, np.float32),
              (rng.standard_normal((hidden, 3)) * np.sqrt(1 / hidden)).astype(np.float32),
              np.zeros(3, np.float32)]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    onehot = np.eye(3, dtype=np.float32)[y]
    t = 0
    for _ in range(epochs):
        perm = rng.permutation(len(y))
        for start in range(0, len(y), batch):
            b = perm[start:start + batch]
            h = np.maximum(x[b] @ params[0] + params[1], 0)
            g2 = (softmax(h @ params[2] + params[3]) - onehot[b]) * weight[b, None] / len(b)
            gh = (g2 @ params[2].T) * (h > 0)
            grads = [x[b].T @ gh + l2 * params[0], gh.sum(axis=0), h.T @ g2 + l2 * params[2],
                     g2.sum(axis=0)]
            t += 1
            adam_update(params, grads, m, v, t, lr)
    layers = [(params[0].T.astype(np.float64), params[1].astype(np.float64)),
              (params[2].T.astype(np.float64), params[3].astype(np.float64))]
    return mean.astype(np.float64), scale.astype(np.float64), layers


def clip_features(model, inputs, owner, clips, count):
    """FEATURES of the clips `clips` (rows of a `count`-row array; others left at the value of
    a clip without voiced frames)."""
    mean, scale, layers = model
    sums, frames = np.zeros((count, 3)), np.zeros(count)
    rows = np.isin(owner, clips)
    if rows.any():
        h = forward(layers, (inputs[rows] - mean) / scale)
        logp = np.maximum(np.log(np.maximum(softmax(h), 1e-300)), FLOOR)
        np.add.at(sums, owner[rows], logp)
        np.add.at(frames, owner[rows], 1)
    means = np.full((count, 3), np.log(1 / 3))
    has = frames > 0
    means[has] = sums[has] / frames[has, None]
    return np.column_stack([means[:, 0] - np.logaddexp(means[:, 1], means[:, 2]),
                            means[:, 1] - means[:, 2]])


def to_json(model):
    """The frame network as `decision.json` stores it."""
    mean, scale, layers = model
    return {"taps": TAPS, "inputs": FRAME_INPUTS,
            "mean": [round(float(v), 6) for v in mean],
            "scale": [round(float(v), 6) for v in scale],
            "layers": [{"weights": [[round(float(v), 6) for v in row] for row in w],
                        "bias": [round(float(v), 6) for v in b]} for w, b in layers]}

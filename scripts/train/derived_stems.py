#!/usr/bin/env python3
"""Trains the network of the derived four stems (drums, bass, other from an accompaniment) on
the corpus's stems and writes its weights to crates/stemscribe-separate/src/derived/weights.rs.

The features are those of crates/stemscribe-separate/src/derived/learned.rs, computed the same
way (same STFT, same median filters with clamped ends): change both or neither. Training
material is synthesised: drums, bass and other taken from different recordings, at random
levels (drums from -20 to +6 dB against the other instruments, one clip in ten without drums,
one in ten without bass), 3 s each; the targets are the stems' magnitude ratios.

Before the weights that ship (trained on every recording) it prints held-out figures: each
evaluation clip is scored by a network trained without any recording it is made of (the three
multitrack clips, and quiet-drum ensembles built from the two tky823 songs' dry stems and the
multitracks' drums), as global SDR of each stem against the masks of the median rule it
replaced. The accompaniment here is the sum of the true stems; `stemscribe-lab separation`
measures the engine end to end.

With `--basic-pitch MODEL.onnx` (the Basic Pitch file `stemscribe setup` installs) it prints
only the held-out figures of a network that also sees Basic Pitch's multi-pitch evidence for
each bin (`pitch_features`), to compare with the shipped features; the engine does not compute
them, so no weights are written. It needs onnxruntime too.

usage: scripts/train/derived_stems.py CORPUS_DIR [ROCK_STEM_MP4] [--no-write | --weights-only]
       scripts/train/derived_stems.py CORPUS_DIR [ROCK_STEM_MP4] --basic-pitch MODEL.onnx
Needs numpy and scipy, and ffmpeg on PATH (to decode the clips).
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
from scipy.ndimage import median_filter
from scipy.signal import istft, resample_poly, stft

SR = 44100
N = 4096
HOP = 1024
# (frames, bins) of each median pair; must equal SCALES in the generated weights.rs.
SCALES = [(9, 5), (31, 9), (61, 25)]
HIDDEN = 24
OCTAVE_CENTRES = 8
OCTAVE_SPAN = 10.0
EPS = 1e-10
ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ROOT / "crates/stemscribe-separate/src/derived/weights.rs"


def decode(path, stream=None):
    """Stereo float32 samples at SR of a file (one stream of a .stem.mp4)."""
    cmd = ["ffmpeg", "-loglevel", "error", "-i", str(path)]
    if stream is not None:
        cmd += ["-map", f"0:{stream}"]
    cmd += ["-ac", "2", "-ar", str(SR), "-f", "f32le", "-"]
    raw = subprocess.run(cmd, check=True, capture_output=True).stdout
    return np.frombuffer(raw, np.float32).reshape(-1, 2).T.copy()


def load_sources(corpus, rock):
    stems = corpus / "stems"
    sources = {}
    multitracks = {"falcon": stems / "musdb7_TheEastonEllises_Falcon69.stem.mp4",
                   "jdc": stems / "jdc_test_audio_file.stem.mp4"}
    if rock:
        multitracks["rock"] = Path(rock)
    for name, path in multitracks.items():
        sources[name] = {k: decode(path, i) for k, i in (("drums", 1), ("bass", 2), ("other", 3))}
    jpop = stems / "tky823_sample3_jpop__{}_16000.wav"
    sources["jpop"] = {"bass": decode(str(jpop).format("bass")), "other": decode(str(jpop).format("piano"))}
    classical = stems / "tky823_sample2_classical__{}_16000.wav"
    sources["classical"] = {"other": decode(str(classical).format("piano")) + decode(str(classical).format("violin"))}
    inst = corpus / "instrumental"
    sources["smstools"] = {"other": np.concatenate([decode(inst / "smstools_piano.wav"),
                                                    decode(inst / "smstools_cello-phrase.wav")], axis=1)}
    return sources


def spec(x):
    """The STFT as the engine takes it: periodic Hann, centred frames, zeros outside, no scaling."""
    _, _, z = stft(x, nperseg=N, noverlap=N - HOP, window="hann", boundary="zeros", padded=True)
    return z * (N / 2)


def rms(x):
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2) + 1e-20))


def crop(x, n, start=0):
    if x.shape[1] < n + start:
        x = np.tile(x, (1, (n + start) // x.shape[1] + 1))
    return x[:, start:start + n]


def decibels(m):
    return 20 * np.log10(m + 1e-8)


def features(mag):
    """mag: (bins, frames) mean-of-sides magnitude -> (bins, frames, inputs), as learned.rs."""
    bins, frames = mag.shape
    feats = []
    for i, (tf, ff) in enumerate(SCALES):
        h = median_filter(mag, size=(1, tf), mode="nearest")
        p = median_filter(mag, size=(ff, 1), mode="nearest")
        feats.append((h ** 2 + EPS / 2) / (h ** 2 + p ** 2 + EPS))
        if i == 1:
            ldb = decibels(mag)
            contrast = np.clip((ldb - decibels(h)) / 30, -2, 2)
            share = (p.astype(np.float64) ** 2).sum(0) / ((h.astype(np.float64) ** 2 + p ** 2).sum(0) + EPS)
    hz = np.arange(bins) * SR / N
    octaves = np.log2(np.maximum(hz, 20.0) / 20.0)
    spacing = OCTAVE_SPAN / (OCTAVE_CENTRES - 1)
    for c in range(OCTAVE_CENTRES):
        w = np.maximum(0, 1 - np.abs(octaves - c * spacing) / spacing)
        feats.append(np.repeat(w[:, None], frames, axis=1))
    feats.append(np.clip((ldb - ldb.max(axis=0, keepdims=True)) / 80 + 1, -1, 1))
    feats.append(contrast)
    feats.append(np.repeat(share[None, :], bins, axis=0))
    d = np.diff(ldb, axis=1, prepend=ldb[:, :1])
    feats.append(np.repeat((np.clip(d, 0, None).mean(0) / 10)[None, :], bins, axis=0))
    feats.append(np.clip(d / 20, -2, 2))
    later = np.pad(ldb, ((0, 0), (0, 10)), mode="edge")
    for k in (2, 5, 10):
        feats.append(np.clip((later[:, k:k + frames] - ldb) / 30, -2, 2))
    earlier = np.pad(ldb, ((0, 0), (2, 0)), mode="edge")
    feats.append(np.clip((earlier[:, :frames] - ldb) / 30, -2, 2))
    around = np.pad(ldb, ((4, 4), (0, 0)), mode="edge")
    far = np.maximum.reduce([around[4 + o:4 + o + bins] for o in (-4, -3, 3, 4)])
    feats.append(np.clip((ldb - far) / 20, -2, 2))
    near = np.maximum(around[3:3 + bins], around[5:5 + bins])
    feats.append(np.clip((ldb - near) / 20, -2, 2))
    return np.stack(feats, axis=-1).astype(np.float32)


class BasicPitch:
    """Basic Pitch's posteriorgrams of a clip: contour (3 bins a semitone), note and onset (1 a
    semitone), from A0, at 22050 / 256 frames a second."""

    WINDOW = 43844
    OVERLAP = 30 * 256

    def __init__(self, model):
        import onnxruntime
        self.session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])

    def __call__(self, x):
        mono = resample_poly(x.mean(0).astype(np.float64), 1, 2).astype(np.float32)
        hop = self.WINDOW - self.OVERLAP
        half = self.OVERLAP // 2
        padded = np.concatenate([np.zeros(half, np.float32), mono, np.zeros(self.WINDOW, np.float32)])
        batch = np.stack([padded[s:s + self.WINDOW] for s in range(0, len(mono) + half, hop)])[:, :, None]
        frames = len(mono) // 256 + 2
        outputs = self.session.run(None, {self.session.get_inputs()[0].name: batch})
        return [o[:, 15:-15, :].reshape(-1, o.shape[-1])[:frames] for o in outputs]


def pitch_features(x, bins, frames, basic_pitch):
    """(bins, frames, 5): for each bin, the strongest contour, note and onset posterior of a
    pitch it is one of the first six harmonics of; each frame's strongest onset posterior; and
    whether any pitch below 250 Hz sounds (a bass line)."""
    posteriors = []
    for a in basic_pitch(x):
        centre = np.clip(np.arange(frames) * 2, 0, len(a) - 1)
        around = [np.clip(centre + d, 0, len(a) - 1) for d in (-1, 0, 1)]
        posteriors.append(np.maximum.reduce([a[i] for i in around]))
    contour, note, onset = posteriors
    hz = np.arange(bins) * SR / N
    feats = []
    for a, per_octave in ((contour, 36), (note, 12), (onset, 12)):
        best = np.zeros((bins, frames), np.float32)
        for harmonic in range(1, 7):
            f0 = hz / harmonic
            index = np.round(per_octave * np.log2(np.maximum(f0, 1e-3) / 27.5)).astype(int)
            ok = (f0 >= 27.5) & (index >= 0) & (index < a.shape[1])
            values = np.zeros((bins, frames), np.float32)
            values[ok] = a[:, index[ok]].T
            best = np.maximum(best, values)
        feats.append(best)
    feats.append(np.repeat(onset.max(1)[None, :], bins, 0))
    feats.append(np.repeat(contour[:, : int(36 * np.log2(250 / 27.5))].max(1)[None, :], bins, 0))
    return np.stack(feats, -1).astype(np.float32)


def all_features(mag, mix, basic_pitch):
    """The shipped features, and with `basic_pitch` the pitch features after them."""
    base = features(mag)
    if basic_pitch is None:
        return base
    return np.concatenate([base, pitch_features(mix, *mag.shape, basic_pitch)], -1)


def median_rule(mag):
    """The masks of the median rule (MedianSplit's defaults)."""
    h = median_filter(mag, size=(1, 31), mode="nearest")
    p = median_filter(mag, size=(9, 1), mode="nearest")
    tonal = (h ** 2 + EPS / 2) / (h ** 2 + p ** 2 + EPS)
    hz = np.arange(mag.shape[0]) * SR / N
    x = np.clip((hz - 150) / 150, 0, 1)
    bass = np.where(hz <= 150, 1.0, np.where(hz >= 300, 0.0, 0.5 + 0.5 * np.cos(np.pi * x)))[:, None]
    return np.stack([1 - tonal, tonal * bass, tonal * (1 - bass)])


def sdr(ref, est):
    return 10 * np.log10((ref.astype(np.float64) ** 2).sum() / (((ref - est).astype(np.float64) ** 2).sum() + 1e-20) + 1e-20)


def masked(masks, z, n):
    out = []
    for m in masks:
        _, y = istft(z / (N / 2) * m[None], nperseg=N, noverlap=N - HOP, window="hann", boundary=True)
        out.append(y[:, :n])
    return out


class Network:
    """tanh hidden layer, softmax over drums, bass, other; trained with Adam on the energy-weighted
    squared error of the masks."""

    def __init__(self, inputs, rng):
        self.w1 = rng.normal(0, 1 / np.sqrt(inputs), (inputs, HIDDEN)).astype(np.float32)
        self.b1 = np.zeros(HIDDEN, np.float32)
        self.w2 = rng.normal(0, 1 / np.sqrt(HIDDEN), (HIDDEN, 3)).astype(np.float32)
        self.b2 = np.zeros(3, np.float32)

    def params(self):
        return [self.w1, self.b1, self.w2, self.b2]

    def forward(self, x):
        h = np.tanh(x @ self.w1 + self.b1)
        logits = h @ self.w2 + self.b2
        e = np.exp(logits - logits.max(1, keepdims=True))
        return h, e / e.sum(1, keepdims=True)

    def masks(self, feats):
        bins, frames, k = feats.shape
        return self.forward(feats.reshape(-1, k))[1].reshape(bins, frames, 3).transpose(2, 0, 1)

    def train(self, x, y, rng, epochs=12, lr=3e-3, batch=4096):
        m = [np.zeros_like(p) for p in self.params()]
        v = [np.zeros_like(p) for p in self.params()]
        step = 0
        for _ in range(epochs):
            order = rng.permutation(len(x))
            for s in range(0, len(x), batch):
                b = order[s:s + batch]
                h, p = self.forward(x[b])
                g = 2 * (p - y[b]) / len(b)
                gl = p * (g - (g * p).sum(1, keepdims=True))
                gh = gl @ self.w2.T * (1 - h ** 2)
                grads = [x[b].T @ gh, gh.sum(0), h.T @ gl, gl.sum(0)]
                step += 1
                for i, (param, grad) in enumerate(zip(self.params(), grads)):
                    m[i] = 0.9 * m[i] + 0.1 * grad
                    v[i] = 0.999 * v[i] + 0.001 * grad ** 2
                    param -= lr * (m[i] / (1 - 0.9 ** step)) / (np.sqrt(v[i] / (1 - 0.999 ** step)) + 1e-8)


def examples(sources, excluded, rng, basic_pitch=None, clips=40, seconds=3.0, per_clip=20000):
    """Bins drawn in proportion to their energy from synthesised clips of the recordings not in
    `excluded`: features and the stems' magnitude ratios."""
    pools = {k: [s[k] for g, s in sources.items() if k in s and g not in excluded] for k in ("drums", "bass", "other")}
    n = int(seconds * SR)
    xs, ys = [], []
    for _ in range(clips):
        parts = []
        for kind, gain, absent in (("drums", rng.uniform(-20, 6), 0.1), ("bass", rng.uniform(-10, 4), 0.1), ("other", 0.0, 0.0)):
            pool = pools[kind]
            if not pool or rng.random() < absent:
                parts.append(np.zeros((2, n), np.float32))
                continue
            src = pool[rng.integers(len(pool))]
            x = crop(src, n, int(rng.integers(0, max(1, src.shape[1] - n))))
            parts.append(x * (10 ** (gain / 20) * 0.05 / max(rms(x), 1e-6)))
        mix = sum(parts)
        mag = np.abs(spec(mix)).mean(0)
        ratios = [np.abs(spec(p)).mean(0) for p in parts]
        total = sum(ratios) + 1e-10
        target = np.stack([r / total for r in ratios], -1)
        f = all_features(mag, mix, basic_pitch)
        w = (mag.astype(np.float64) ** 2).reshape(-1)
        pick = rng.choice(len(w), size=per_clip, p=w / w.sum())
        xs.append(f.reshape(-1, f.shape[-1])[pick])
        ys.append(target.reshape(-1, 3)[pick])
    return np.concatenate(xs), np.concatenate(ys).astype(np.float32)


def train(sources, excluded, basic_pitch=None, seed=1):
    x, y = examples(sources, excluded, np.random.default_rng(seed), basic_pitch)
    net = Network(x.shape[1], np.random.default_rng(seed + 1))
    net.train(x, y, np.random.default_rng(seed + 2))
    return net


def evaluation_clips(sources):
    """(name, recordings it is made of, [drums, bass, other])."""
    clips = [(g, {g}, [sources[g][k] for k in ("drums", "bass", "other")])
             for g in ("rock", "falcon", "jdc") if g in sources]
    n = 20 * SR
    bass, piano = crop(sources["jpop"]["bass"], n, 5 * SR), crop(sources["jpop"]["other"], n, 5 * SR)
    level = rms(bass + piano)
    for g in ("rock", "jdc"):
        if g in sources:
            d = crop(sources[g]["drums"], n)
            clips.append((f"jpop bass+piano, {g} drums -15 dB", {"jpop", g}, [d * (level * 10 ** (-15 / 20) / rms(d)), bass, piano]))
    strings = crop(sources["classical"]["other"], n)
    b = crop(sources["falcon"]["bass"], n)
    d = crop(sources["jdc"]["drums"], n)
    clips.append(("classical piano+violin, falcon bass -6 dB, jdc drums -18 dB", {"classical", "falcon", "jdc"},
                  [d * (rms(strings) * 10 ** (-18 / 20) / rms(d)), b * (rms(strings) * 10 ** (-6 / 20) / rms(b)), strings]))
    return clips


def held_out(sources, basic_pitch=None):
    print("held-out global SDR (dB) of drums, bass, other: median rule -> learned (trained without the clip's recordings)")
    rows = []
    for name, groups, parts in evaluation_clips(sources):
        n = min(p.shape[1] for p in parts)
        parts = [p[:, :n] for p in parts]
        mix = sum(parts)
        z = spec(mix)
        mag = np.abs(z).mean(0)
        before = [sdr(p, e) for p, e in zip(parts, masked(median_rule(mag), z, n))]
        net = train(sources, groups, basic_pitch)
        after = [sdr(p, e) for p, e in zip(parts, masked(net.masks(all_features(mag, mix, basic_pitch)), z, n))]
        rows.append((before, after))
        print(f"  {name}: " + "  ".join(f"{a:6.2f} -> {b:6.2f}" for a, b in zip(before, after)), flush=True)
    for label, sel in (("multitrack clips", [r for r, (name, _, _) in zip(rows, evaluation_clips(sources)) if " " not in name]),
                       ("all clips", rows)):
        if not sel:
            continue
        b = np.array([r[0] for r in sel])
        a = np.array([r[1] for r in sel])
        print(f"  mean over {label}: " + "  ".join(f"{x:6.2f} -> {y:6.2f}" for x, y in zip(b.mean(0), a.mean(0))))
        print(f"  worst over {label}: " + "  ".join(f"{x:6.2f} -> {y:6.2f}" for x, y in zip(b.min(0), a.min(0))))


def rust_array(values):
    """Shortest decimal forms that read back as the same f32 values."""
    return "[" + ", ".join(np.format_float_scientific(np.float32(v), unique=True, exp_digits=1) for v in values) + "]"


def write_weights(net):
    lines = [
        "//! The derived stems' network, written by `scripts/train/derived_stems.py` (trained on the",
        "//! corpus's stems; see that script): do not edit by hand.",
        "",
        "/// `(frames, bins)` of each pair of median filters whose tonal share is a feature.",
        f"pub(super) const SCALES: [(usize, usize); {len(SCALES)}] = [{', '.join(f'({a}, {b})' for a, b in SCALES)}];",
        "/// Units in the hidden layer.",
        f"pub(super) const HIDDEN: usize = {HIDDEN};",
        "/// Input-to-hidden weights, one row per feature.",
        f"pub(super) const W1: [[f32; HIDDEN]; super::learned::INPUTS] = [",
        *[f"    {rust_array(row)}," for row in net.w1],
        "];",
        "/// Hidden biases.",
        f"pub(super) const B1: [f32; HIDDEN] = {rust_array(net.b1)};",
        "/// Hidden-to-output weights (drums, bass, other), one row per hidden unit.",
        "pub(super) const W2: [[f32; 3]; HIDDEN] = [",
        *[f"    {rust_array(row)}," for row in net.w2],
        "];",
        "/// Output biases (drums, bass, other).",
        f"pub(super) const B2: [f32; 3] = {rust_array(net.b2)};",
        "",
    ]
    WEIGHTS.write_text("\n".join(lines))
    print(f"wrote {WEIGHTS.relative_to(ROOT)}")


def main():
    argv = sys.argv[1:]
    basic_pitch = None
    if "--basic-pitch" in argv:
        at = argv.index("--basic-pitch")
        if at + 1 >= len(argv):
            sys.exit(__doc__)
        basic_pitch = BasicPitch(argv[at + 1])
        del argv[at:at + 2]
    args = [a for a in argv if not a.startswith("--")]
    if not args:
        sys.exit(__doc__)
    sources = load_sources(Path(args[0]), args[1] if len(args) > 1 else None)
    if basic_pitch is not None:
        held_out(sources, basic_pitch)
        return
    if "--weights-only" not in sys.argv:
        held_out(sources)
    if "--no-write" not in sys.argv:
        write_weights(train(sources, set()))


if __name__ == "__main__":
    main()

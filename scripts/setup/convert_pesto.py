"""Convert PESTO's default checkpoint (`mir-1k_g7.ckpt` in pesto-pitch==2.0.1) to ONNX.

The checkpoint is a Lightning archive, read with numpy by `torch_checkpoint.py` (no torch).
The graph is a whole pitch tracker with the interface of stemscribe's `PitchTracker`:

    input  audio       float32 [1, samples]   mono, 16 kHz
    input  fmin, fmax  float32 scalars         frames whose pitch falls outside get confidence 0
    output pitch       float32 [1, frames]     Hz
    output confidence  float32 [1, frames]     PESTO's voicing classifier

with `frames = 1 + samples // HOP` (a step of 16 ms, PESTO's `step_size=16`), frame `i`
centred on sample `i * HOP`. Inside, as `pesto.predict` computes it:
- the constant-Q transform of `pesto.utils.hcqt` (nnAudio's time-domain kernels: periodic
  Hann windows, L1-normalised, variable-Q with the checkpoint's `gamma`, scaled by the square
  root of each kernel's length), over the input reflected at both ends by half a kernel;
  inputs shorter than half a kernel are first extended with zeros;
- log-energy `2 ln |CQT|` (PESTO's dB values after its in-place `* ln(10) / 10`);
- the voicing classifier on the energies (spectral flatness and a strided convolution);
- the crop, the encoder (layer norm, residual 1-D convolutions, Toeplitz output layer,
  softmax) and the roll by the checkpoint's `shift`;
- the pitch as the activation-weighted mean of the five bins around the strongest ("alwa").

`--reference OUT_DIR` also writes a test clip and the outputs of a numpy forward pass that
follows the same definitions (input.f32, pitch.f32, confidence.f32; little-endian f32).

Usage: convert_pesto.py CHECKPOINT.ckpt OUT.onnx [--reference OUT_DIR]
"""

import sys

import numpy as np
import onnx
from onnx import TensorProto

import torch_checkpoint
from tracker_common import RATE, Graph, tracker_model, write_reference

HOP = 256
LAYER_NORM_EPS = 1e-5
LOG_FLOOR = float(np.finfo(np.float32).eps)


def read(checkpoint):
    """The checkpoint's weights, encoder hyper-parameters, CQT parameters and crop."""
    raw = torch_checkpoint.load(checkpoint)
    hparams = torch_checkpoint.plain(raw["hparams"])
    hcqt = torch_checkpoint.plain(raw["hcqt_params"])
    state = torch_checkpoint.float_state(raw["state_dict"])
    encoder = hparams["encoder"]
    if hcqt["harmonics"] != [1] or encoder["activation_fn"] != "leaky" or not encoder["residual"] \
            or hparams["reduction"] != "alwa" or encoder["final_norm"] != "softmax":
        sys.exit(f"{checkpoint}: only single-harmonic, leaky, residual, softmax, alwa models are supported")
    return state, encoder, hcqt, hparams["pitch_shift"]


def cqt_kernels(hcqt):
    """nnAudio's CQT kernels (complex, [bins, width]) and each kernel's length in samples."""
    bins_per_semitone = hcqt["bins_per_semitone"]
    per_octave = 12 * bins_per_semitone
    fmin = hcqt["fmin"]
    if hcqt.get("center_bins", True):
        fmin = fmin / 2 ** ((bins_per_semitone - 1) / (24 * bins_per_semitone))
    count = hcqt["n_bins"]
    gamma = hcqt.get("gamma", 0)
    q = 1.0 / (2 ** (1 / per_octave) - 1)
    freqs = fmin * 2.0 ** (np.arange(count) / per_octave)
    if freqs.max() > RATE / 2:
        sys.exit("the top CQT bin lies above the Nyquist frequency")
    alpha = 2.0 ** (1.0 / per_octave) - 1.0
    lengths = np.ceil(q * RATE / (freqs + gamma / alpha))
    width = int(2 ** np.ceil(np.log2(lengths.max())))
    kernels = np.zeros((count, width), dtype=np.complex64)
    for k in range(count):
        length = lengths[k]
        start = int(np.ceil(width / 2.0 - length / 2.0)) - (1 if length % 2 == 1 else 0)
        n = int(length)
        window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)
        wave = window * np.exp(np.r_[-length // 2: length // 2] * 1j * 2 * np.pi * freqs[k] / RATE) / length
        kernels[k, start:start + n] = wave / np.abs(wave).sum()
    return kernels, lengths


def shift_bins(state, hcqt):
    return int(round(float(state["shift"]) * hcqt["bins_per_semitone"]))


def build_model(state, encoder, hcqt, crop):
    graph = Graph()
    const, op = graph.const, graph.op

    kernels, lengths = cqt_kernels(hcqt)
    count, width = kernels.shape
    half = width // 2
    i64 = np.int64

    # Extend inputs shorter than half a kernel with zeros, so that reflection is defined.
    samples = op("Gather", [op("Shape", ["audio"], "audio.shape"), const("one", 1, i64)], "samples", axis=0)
    short_by = op("Max", [op("Sub", [const("min.samples", half + 1, i64), samples], "short"),
                          const("zero.i", 0, i64)], "short.by")
    end_pads = op("Concat", [const("pads.head", [0, 0, 0], i64),
                             op("Unsqueeze", [short_by, const("axis0", [0], i64)], "short.1")],
                  "end.pads", axis=0)
    long_enough = op("Pad", ["audio", end_pads], "audio.long")
    reflected = op("Pad", [long_enough, const("reflect.pads", [0, half, 0, half], i64)], "reflected",
                   mode="reflect")
    signal = op("Unsqueeze", [reflected, const("axis1", [1], i64)], "signal")
    weight = np.concatenate([kernels.real, -kernels.imag]).astype(np.float32)[:, None, :]
    cqt = op("Conv", [signal, const("cqt.kernels", weight)], "cqt", kernel_shape=[width], strides=[HOP])
    parts = op("Reshape", [cqt, const("cqt.parts", [2, count, -1], i64)], "cqt.parts.r")
    scaled = op("Mul", [parts, const("sqrt.lengths", np.sqrt(lengths.astype(np.float32))[None, :, None])],
                "cqt.scaled")
    power = op("ReduceSum", [op("Mul", [scaled, scaled], "cqt.sq"), const("axes0", [0], i64)], "cqt.power",
               keepdims=0)                                                              # [bins, F]
    magnitude = op("Max", [op("Sqrt", [power], "cqt.abs"), const("log.floor", LOG_FLOOR)], "cqt.mag")
    log_energy = op("Transpose", [op("Mul", [const("two", 2.0), op("Log", [magnitude], "cqt.ln")], "x.t")],
                    "x", perm=[1, 0])                                                   # [F, bins]
    energy = op("Exp", [log_energy], "energy")

    # Voicing classifier.
    geometric = op("Exp", [op("ReduceMean", [op("Log", [energy], "energy.ln")], "energy.lnmean",
                              axes=[1], keepdims=1)], "energy.geo")
    arithmetic = op("Max", [op("ReduceMean", [energy], "energy.mean0", axes=[1], keepdims=1),
                            const("mean.floor", 1e-8)], "energy.mean")
    flatness = op("Div", [geometric, arithmetic], "flatness")
    strided = op("Conv", [op("Unsqueeze", [energy, "axis1"], "energy.c"),
                          const("conf.conv.w", state["confidence.conv.weight"]),
                          const("conf.conv.b", state["confidence.conv.bias"])],
                 "conf.conv", kernel_shape=[state["confidence.conv.weight"].shape[-1]], strides=[3])
    pattern = op("Relu", [op("Squeeze", [strided, "axis1"], "conf.conv.sq")], "conf.relu")
    joined = op("Concat", [pattern, flatness], "conf.in", axis=1)
    voiced = op("Sigmoid", [op("Gemm", [joined, const("conf.lin.w", state["confidence.linear.weight"]),
                                        const("conf.lin.b", state["confidence.linear.bias"])],
                               "conf.logit", transB=1)], "conf")                        # [F, 1]

    # Encoder.
    cropped = op("Slice", [log_energy, const("crop.start", [crop["max_steps"]], i64),
                           const("crop.end", [count + crop["min_steps"]], i64), "axis1"], "cropped")
    h = op("LayerNormalization", [op("Unsqueeze", [cropped, "axis1"], "cropped.c"),
                                  const("ln.scale", state["encoder.layernorm.weight"]),
                                  const("ln.bias", state["encoder.layernorm.bias"])],
           "ln", axis=1, epsilon=LAYER_NORM_EPS)
    slope = encoder["a_lrelu"]

    def conv(x, key, name):
        w = state[f"{key}.weight"]
        pad = w.shape[-1] // 2
        y = op("Conv", [x, const(f"{name}.w", w), const(f"{name}.b", state[f"{key}.bias"])], name,
               kernel_shape=[w.shape[-1]], pads=[pad, pad])
        return op("LeakyRelu", [y], f"{name}.act", alpha=slope)

    h = conv(h, "encoder.conv1.0", "conv1")
    for i in range(encoder["n_prefilt_layers"] - 1):
        h = op("Add", [conv(h, f"encoder.prefilt_layers.{i}.0", f"prefilt{i}"), h], f"prefilt{i}.res")
    for i in range(len(encoder["n_chan_layers"]) - 1):
        h = conv(h, f"encoder.conv_layers.{3 * i}", f"mix{i}")
    flat = op("Flatten", [h], "flat", axis=1)
    toeplitz = state["encoder.fc.weight"]
    out_dim = encoder["output_dim"]
    logits = op("Conv", [op("Unsqueeze", [flat, "axis1"], "flat.c"), const("fc.w", toeplitz)], "fc",
                kernel_shape=[toeplitz.shape[-1]], pads=[out_dim - 1, out_dim - 1])
    probs = op("Softmax", [op("Squeeze", [logits, "axis1"], "fc.sq")], "probs", axis=1)
    roll = shift_bins(state, hcqt) % out_dim
    rolled = op("Concat", [op("Slice", [probs, const("roll.a", [roll], i64), const("roll.end", [out_dim], i64),
                                        "axis1"], "roll.tail"),
                           op("Slice", [probs, const("roll.zero", [0], i64), "roll.a", "axis1"], "roll.head")],
                "activations", axis=1)

    # Argmax-local weighted average over the bins within a semitone of the strongest.
    bps = hcqt["bins_per_semitone"]
    centre = op("ArgMax", [rolled], "centre", axis=1, keepdims=1)
    around = op("Add", [centre, const("window", np.arange(1, 2 * bps) - bps, i64)], "around")
    index = op("Max", [op("Min", [around, const("last", out_dim - 1, i64)], "around.hi"),
                       const("first", 0, i64)], "index")
    weights = op("GatherElements", [rolled, index], "weights", axis=1)
    semitones = op("Div", [op("Cast", [index], "index.f", to=TensorProto.FLOAT), const("bps", float(bps))],
                   "semitones")
    midi = op("Div", [op("ReduceSum", [op("Mul", [weights, semitones], "ws"), "axis1"], "ws.sum", keepdims=1),
                      op("ReduceSum", [weights, "axis1"], "w.sum", keepdims=1)], "midi")
    hz = op("Mul", [const("a4", 440.0),
                    op("Pow", [const("two.f", 2.0),
                               op("Div", [op("Sub", [midi, const("m69", 69.0)], "m.rel"), const("twelve", 12.0)],
                                  "octaves")], "ratio")], "hz")
    in_range = op("And", [op("GreaterOrEqual", [hz, "fmin"], "hz.ge"), op("LessOrEqual", [hz, "fmax"], "hz.le")],
                  "in.range")
    ranged = op("Where", [in_range, voiced, const("zero.f", 0.0)], "conf.ranged")
    op("Transpose", [hz], "pitch", perm=[1, 0])
    op("Transpose", [ranged], "confidence", perm=[1, 0])

    return tracker_model(graph.nodes, graph.inits, "pesto-mir-1k_g7", "stemscribe scripts/convert_pesto.py")


def reference(state, encoder, hcqt, crop, audio, fmin, fmax):
    """The same tracker as a plain numpy forward pass (float64), written from pesto's definitions."""
    kernels, lengths = cqt_kernels(hcqt)
    count, width = kernels.shape
    audio = audio.astype(np.float64)
    if len(audio) <= width // 2:
        audio = np.pad(audio, (0, width // 2 + 1 - len(audio)))
    padded = np.pad(audio, width // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, width)[::HOP]
    cqt = frames @ kernels.astype(np.complex128).T * np.sqrt(lengths)[None, :]      # [F, bins]
    x = 20 * np.log10(np.maximum(np.abs(cqt), LOG_FLOOR)) * np.log(10) / 10
    energy = np.exp(x)
    flatness = np.exp(np.log(energy).mean(axis=1)) / np.maximum(energy.mean(axis=1), 1e-8)
    w = state["confidence.conv.weight"][0, 0].astype(np.float64)
    pattern = np.lib.stride_tricks.sliding_window_view(energy, len(w), axis=1)[:, ::3] @ w
    pattern = np.maximum(pattern + state["confidence.conv.bias"][0], 0)
    joined = np.concatenate([pattern, flatness[:, None]], axis=1)
    voiced = 1 / (1 + np.exp(-(joined @ state["confidence.linear.weight"][0] + state["confidence.linear.bias"][0])))

    h = x[:, crop["max_steps"]:count + crop["min_steps"]][:, None, :]
    mean = h.mean(axis=(1, 2), keepdims=True)
    var = h.var(axis=(1, 2), keepdims=True)
    h = (h - mean) / np.sqrt(var + LAYER_NORM_EPS) * state["encoder.layernorm.weight"] + state["encoder.layernorm.bias"]

    def conv(x, key):
        w = state[f"{key}.weight"].astype(np.float64)
        pad = w.shape[-1] // 2
        windows = np.lib.stride_tricks.sliding_window_view(np.pad(x, ((0, 0), (0, 0), (pad, pad))), w.shape[-1],
                                                           axis=2)
        y = np.einsum("fcbk,ock->fob", windows, w) + state[f"{key}.bias"][None, :, None]
        return np.where(y > 0, y, encoder["a_lrelu"] * y)

    h = conv(h, "encoder.conv1.0")
    for i in range(encoder["n_prefilt_layers"] - 1):
        h = conv(h, f"encoder.prefilt_layers.{i}.0") + h
    for i in range(len(encoder["n_chan_layers"]) - 1):
        h = conv(h, f"encoder.conv_layers.{3 * i}")
    flat = h.reshape(len(h), -1)
    toeplitz = state["encoder.fc.weight"][0, 0].astype(np.float64)
    out_dim = encoder["output_dim"]
    logits = np.lib.stride_tricks.sliding_window_view(np.pad(flat, ((0, 0), (out_dim - 1, out_dim - 1))),
                                                      len(toeplitz), axis=1) @ toeplitz
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    probs = np.roll(probs, -shift_bins(state, hcqt), axis=1)
    bps = hcqt["bins_per_semitone"]
    index = np.clip(probs.argmax(axis=1)[:, None] + np.arange(1, 2 * bps) - bps, 0, out_dim - 1)
    weights = np.take_along_axis(probs, index, axis=1)
    midi = (weights * index / bps).sum(axis=1) / weights.sum(axis=1)
    hz = 440 * 2 ** ((midi - 69) / 12)
    return hz, np.where((hz >= fmin) & (hz <= fmax), voiced, 0)


def main(argv):
    if len(argv) not in (3, 5) or (len(argv) == 5 and argv[3] != "--reference"):
        sys.exit(__doc__)
    state, encoder, hcqt, crop = read(argv[1])
    onnx.save(build_model(state, encoder, hcqt, crop), argv[2])
    if len(argv) == 5:
        write_reference(argv[4], lambda clip, fmin, fmax: reference(state, encoder, hcqt, crop, clip, fmin, fmax))


if __name__ == "__main__":
    main(sys.argv)

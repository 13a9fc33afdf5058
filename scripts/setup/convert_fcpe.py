"""Convert FCPE's bundled checkpoint (`fcpe_c_v001.pt` in torchfcpe==0.0.4) to ONNX.

The checkpoint is a PyTorch zip archive, read with numpy by `torch_checkpoint.py` (no torch).
The bundled model is the convolution-only variant (`conv_only: true`: no attention). The graph
is a whole pitch tracker with the interface of stemscribe's `PitchTracker`:

    input  audio       float32 [1, samples]   mono, 16 kHz
    input  fmin, fmax  float32 scalars         frames whose pitch falls outside get confidence 0
    output pitch       float32 [1, frames]     Hz
    output confidence  float32 [1, frames]     the largest of the 360 bin activations

with `frames = 1 + samples // 160` (10 ms). Inside, as torchfcpe's bundled inference model
computes it:
- the log-mel spectrogram of `torchfcpe.mel_extractor.MelModule`: the input reflected by 432
  samples at each end (zero-padded instead when too short to reflect), a non-centred STFT
  (1024 points, periodic Hann, hop 160), magnitudes `sqrt(re² + im² + 1e-9)`, 128 Slaney mel
  bands up to 8 kHz (librosa's formula), `ln(max(x, 1e-5))`; the last frame is repeated when
  the spectrogram is one frame short;
- `CFNaiveMelPE`: two convolutions with group norm and leaky ReLU between them, six residual
  conformer convolution modules, layer norm, the weight-normalised output layer, sigmoid;
- the pitch as the activation-weighted mean of the nine bins around the strongest, in cents
  from the checkpoint's `cent_table` (torchfcpe's `local_argmax` decoder, without its 0.006
  mask: the confidence output carries that).
The group norm takes its statistics over the whole input, so each call's output depends on
everything it is given; stemscribe calls it on 30 s windows.

`--reference OUT_DIR` also writes a test clip and the outputs of a numpy forward pass that
follows the same definitions (input.f32, pitch.f32, confidence.f32; little-endian f32).

Usage: convert_fcpe.py CHECKPOINT.pt OUT.onnx [--reference OUT_DIR]
"""

import sys

import numpy as np
import onnx

import torch_checkpoint
from tracker_common import Graph, tracker_model, write_reference

GROUP_NORM_EPS = 1e-5
LAYER_NORM_EPS = 1e-5
LEAKY_SLOPE = 0.01
MAGNITUDE_EPS = 1e-9
LOG_FLOOR = 1e-5


def read(checkpoint):
    raw = torch_checkpoint.load(checkpoint)
    config = torch_checkpoint.plain(raw["config_dict"])
    if not config["model"].get("conv_only") or config["model"]["type"] != "CFNaiveMelPE":
        sys.exit(f"{checkpoint}: only the convolution-only CFNaiveMelPE is supported")
    return torch_checkpoint.float_state(raw["model"]), config


def hz_to_mel(hz):
    hz = np.asanyarray(hz, dtype=np.float64)
    mel = hz / (200.0 / 3)
    log_region = hz >= 1000.0
    return np.where(log_region, 15.0 + np.log(np.maximum(hz, 1e-12) / 1000.0) / (np.log(6.4) / 27.0), mel)


def mel_to_hz(mel):
    mel = np.asanyarray(mel, dtype=np.float64)
    hz = mel * (200.0 / 3)
    return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), hz)


def mel_filters(rate, n_fft, bands, fmin, fmax):
    """librosa's Slaney-normalised mel filter bank, [bands, 1 + n_fft // 2] float32."""
    fft_freqs = np.linspace(0, rate / 2, 1 + n_fft // 2)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), bands + 2))
    widths = np.diff(edges)
    ramps = np.subtract.outer(edges, fft_freqs)
    weights = np.zeros((bands, len(fft_freqs)), dtype=np.float32)
    for i in range(bands):
        weights[i] = np.maximum(0, np.minimum(-ramps[i] / widths[i], ramps[i + 2] / widths[i + 1]))
    weights *= (2.0 / (edges[2:bands + 2] - edges[:bands]))[:, None]
    return weights


def geometry(config):
    mel = config["mel"]
    n_fft, win, hop = mel["n_fft"], mel["win_size"], mel["hop_size"]
    if n_fft != win:
        sys.exit("only n_fft == win_size is supported")
    return n_fft, hop, (win - hop) // 2, (win - hop + 1) // 2


def output_weight(state):
    v = state["output_proj.weight_v"].astype(np.float64)
    return (state["output_proj.weight_g"] * v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def build_model(state, config):
    graph = Graph()
    const, op = graph.const, graph.op

    i64 = np.int64
    n_fft, hop, left, right = geometry(config)
    mel = config["mel"]
    bins = n_fft // 2 + 1

    # Reflect when the input is long enough (as torch requires), else pad with zeros.
    samples = op("Gather", [op("Shape", ["audio"], "audio.shape"), const("one", 1, i64)], "samples", axis=0)
    right_pad = op("Max", [const("right.min", right, i64),
                           op("Sub", [const("win.left", n_fft - left, i64), samples], "right.fill")], "right.pad")
    pads = op("Concat", [const("pads.head", [0, left, 0], i64),
                         op("Unsqueeze", [right_pad, const("axis0", [0], i64)], "right.1")], "pads", axis=0)
    reflectable = op("Less", [right_pad, samples], "reflectable")
    zeroed = op("Pad", ["audio", pads], "audio.zero")
    # Where computes both branches, and reflection needs more samples than it reflects: the
    # reflected branch is computed on the input extended with zeros to a length that always
    # reflects, then cut to the zero branch's length. It is only chosen when nothing was added.
    shortfall = op("Where", [reflectable, const("zero.i", 0, i64),
                             op("Sub", [const("reflect.min", max(left, n_fft - left) + 1, i64), samples],
                                "reflect.short")], "reflect.shortfall")
    extended_audio = op("Pad", ["audio", op("Concat", [const("ext.head", [0, 0, 0], i64),
                                                       op("Unsqueeze", [shortfall, "axis0"], "ext.1")],
                                            "ext.pads", axis=0)], "audio.ext")
    reflected = op("Slice", [op("Pad", [extended_audio, pads], "audio.reflect.ext", mode="reflect"),
                             const("zero.start", [0], i64),
                             op("Shape", [zeroed], "zero.shape", start=1), const("axis1.p", [1], i64)],
                   "audio.reflect")
    padded = op("Where", [reflectable, reflected, zeroed], "audio.padded")

    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    k = np.arange(bins)[:, None] * np.arange(n_fft)[None, :]
    dft = np.concatenate([np.cos(2 * np.pi * k / n_fft), -np.sin(2 * np.pi * k / n_fft)]) * window
    spectrum = op("Conv", [op("Unsqueeze", [padded, const("axis1", [1], i64)], "signal"),
                           const("stft.kernels", dft.astype(np.float32)[:, None, :])],
                  "stft", kernel_shape=[n_fft], strides=[hop])                                # [1, 2*bins, F]
    parts = op("Reshape", [spectrum, const("stft.parts", [2, bins, -1], i64)], "stft.parts.r")
    power = op("ReduceSum", [op("Mul", [parts, parts], "stft.sq"), const("axes0", [0], i64)], "stft.power",
               keepdims=0)
    magnitude = op("Sqrt", [op("Add", [power, const("mag.eps", MAGNITUDE_EPS)], "stft.power.e")], "stft.mag")
    filters = mel_filters(mel["sr"], n_fft, mel["num_mels"], mel["fmin"], mel["fmax"])
    bands = op("MatMul", [const("mel.filters", filters), magnitude], "mel")                   # [mels, F]
    log_mel = op("Log", [op("Max", [bands, const("log.floor", LOG_FLOOR)], "mel.floor")], "mel.log")
    # One frame per hop, plus one: repeat the last frame when the spectrogram is short.
    wanted = op("Add", [op("Div", [samples, const("hop", hop, i64)], "frames.0"), const("one.b", 1, i64)], "frames")
    last = op("Slice", [log_mel, const("last.start", [-1], i64), const("last.end", [np.iinfo(np.int64).max], i64),
                        const("axis1.b", [1], i64)], "mel.last")
    extended = op("Concat", [log_mel, last], "mel.ext", axis=1)
    h = op("Unsqueeze", [op("Slice", [extended, const("zero.s", [0], i64),
                                      op("Unsqueeze", [wanted, "axis0"], "frames.1"), "axis1.b"], "mel.fit"),
                         "axis0"], "x0")                                                      # [1, mels, F]

    def conv(x, key, name, **attrs):
        w = state[f"{key}.weight"]
        return op("Conv", [x, const(f"{name}.w", w), const(f"{name}.b", state[f"{key}.bias"])], name,
                  kernel_shape=[w.shape[-1]], **attrs)

    h = conv(h, "input_stack.0", "in0", pads=[1, 1])
    channels = state["input_stack.0.weight"].shape[0]
    # GroupNorm(4): normalise each group of channels over the group and all frames.
    grouped = op("Reshape", [h, const("groups", [1, 4, -1], i64)], "gn.grouped")
    g_mean = op("ReduceMean", [grouped], "gn.mean", axes=[2], keepdims=1)
    g_centred = op("Sub", [grouped, g_mean], "gn.centred")
    g_var = op("ReduceMean", [op("Mul", [g_centred, g_centred], "gn.sq")], "gn.var", axes=[2], keepdims=1)
    g_norm = op("Div", [g_centred, op("Sqrt", [op("Add", [g_var, const("gn.eps", GROUP_NORM_EPS)], "gn.var.e")],
                                      "gn.std")], "gn.norm")
    g_back = op("Reshape", [g_norm, op("Shape", [h], "in0.shape")], "gn.back")
    h = op("Add", [op("Mul", [g_back, const("gn.scale", state["input_stack.1.weight"][None, :, None])], "gn.s"),
                   const("gn.bias", state["input_stack.1.bias"][None, :, None])], "gn")
    h = op("LeakyRelu", [h], "in.act", alpha=LEAKY_SLOPE)
    h = conv(h, "input_stack.3", "in3", pads=[1, 1])
    h = op("Transpose", [h], "x.t", perm=[0, 2, 1])                                          # [1, F, C]

    def layer_norm(x, key, name):
        return op("LayerNormalization", [x, const(f"{name}.s", state[f"{key}.weight"]),
                                         const(f"{name}.b", state[f"{key}.bias"])], name, axis=-1,
                  epsilon=LAYER_NORM_EPS)

    for i in range(config["model"]["n_layers"]):
        key = f"net.encoder_layers.{i}.conformer.net"
        y = op("Transpose", [layer_norm(h, f"{key}.0", f"l{i}.ln")], f"l{i}.t", perm=[0, 2, 1])
        y = conv(y, f"{key}.2", f"l{i}.pw1")
        half = state[f"{key}.2.weight"].shape[0] // 2
        a = op("Slice", [y, const(f"l{i}.a0", [0], i64), const(f"l{i}.a1", [half], i64), "axis1"], f"l{i}.glu.a")
        b = op("Slice", [y, f"l{i}.a1", const(f"l{i}.b1", [2 * half], i64), "axis1"], f"l{i}.glu.b")
        y = op("Mul", [a, op("Sigmoid", [b], f"l{i}.glu.g")], f"l{i}.glu")
        depth = state[f"{key}.4.conv.weight"]
        pad = depth.shape[-1] // 2
        y = op("Conv", [y, const(f"l{i}.dw.w", depth), const(f"l{i}.dw.b", state[f"{key}.4.conv.bias"])],
               f"l{i}.dw", kernel_shape=[depth.shape[-1]], pads=[pad, pad - (depth.shape[-1] + 1) % 2],
               group=depth.shape[0])
        y = op("Mul", [y, op("Sigmoid", [y], f"l{i}.silu.g")], f"l{i}.silu")
        y = op("Transpose", [conv(y, f"{key}.6", f"l{i}.pw2")], f"l{i}.out", perm=[0, 2, 1])
        h = op("Add", [h, y], f"l{i}.res")
    h = layer_norm(h, "norm", "final.ln")
    logits = op("Add", [op("MatMul", [h, const("out.w", output_weight(state).T)], "out.mm"),
                        const("out.b", state["output_proj.bias"])], "out")
    latent = op("Squeeze", [op("Sigmoid", [logits], "latent.b"), "axis0"], "latent")          # [F, 360]

    out_dims = state["cent_table"].shape[0]
    centre = op("ArgMax", [latent], "centre", axis=1, keepdims=1)
    around = op("Add", [centre, const("window", np.arange(9) - 4, i64)], "around")
    index = op("Max", [op("Min", [around, const("last.bin", out_dims - 1, i64)], "around.hi"),
                       const("first.bin", 0, i64)], "index")
    weights = op("GatherElements", [latent, index], "weights", axis=1)
    cents_near = op("Gather", [const("cent.table", state["cent_table"]), index], "cents.near", axis=0)
    cents = op("Div", [op("ReduceSum", [op("Mul", [weights, cents_near], "wc"), "axis1"], "wc.sum", keepdims=1),
                       op("ReduceSum", [weights, "axis1"], "w.sum", keepdims=1)], "cents")
    hz = op("Mul", [const("ten", 10.0), op("Pow", [const("two", 2.0),
                                                   op("Div", [cents, const("c1200", 1200.0)], "octaves")],
                                           "ratio")], "hz")
    confidence = op("ReduceMax", [latent], "conf", axes=[1], keepdims=1)
    in_range = op("And", [op("GreaterOrEqual", [hz, "fmin"], "hz.ge"), op("LessOrEqual", [hz, "fmax"], "hz.le")],
                  "in.range")
    ranged = op("Where", [in_range, confidence, const("zero.f", 0.0)], "conf.ranged")
    op("Transpose", [hz], "pitch", perm=[1, 0])
    op("Transpose", [ranged], "confidence", perm=[1, 0])
    assert channels == state["input_stack.3.weight"].shape[0]

    return tracker_model(graph.nodes, graph.inits, "fcpe_c_v001", "stemscribe scripts/convert_fcpe.py")


def reference(state, config, audio, fmin, fmax):
    """The same tracker as a plain numpy forward pass (float64), written from torchfcpe's definitions."""
    n_fft, hop, left, right = geometry(config)
    mel = config["mel"]
    audio = audio.astype(np.float64)
    right = max(right, n_fft - len(audio) - left)
    padded = np.pad(audio, (left, right), mode="reflect" if right < len(audio) else "constant")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop] * window
    spectrum = np.fft.rfft(frames, axis=1)
    magnitude = np.sqrt(spectrum.real ** 2 + spectrum.imag ** 2 + MAGNITUDE_EPS)
    log_mel = np.log(np.maximum(magnitude @ mel_filters(mel["sr"], n_fft, mel["num_mels"], mel["fmin"],
                                                       mel["fmax"]).T.astype(np.float64), LOG_FLOOR))
    wanted = len(audio) // hop + 1
    if len(log_mel) < wanted:
        log_mel = np.concatenate([log_mel, log_mel[-1:]])
    x = log_mel[:wanted].T                                                                   # [mels, F]

    def conv(x, w, b, pads, groups=1):
        x = np.pad(x, ((0, 0), pads))
        windows = np.lib.stride_tricks.sliding_window_view(x, w.shape[-1], axis=1)        # [C, F, K]
        if groups == 1:
            return np.einsum("cfk,ock->of", windows, w.astype(np.float64)) + b[:, None]
        return np.einsum("cfk,ck->cf", windows, w[:, 0].astype(np.float64)) + b[:, None]

    x = conv(x, state["input_stack.0.weight"], state["input_stack.0.bias"], (1, 1))
    grouped = x.reshape(4, -1)
    grouped = (grouped - grouped.mean(axis=1, keepdims=True)) / np.sqrt(grouped.var(axis=1, keepdims=True)
                                                                         + GROUP_NORM_EPS)
    x = grouped.reshape(x.shape) * state["input_stack.1.weight"][:, None] + state["input_stack.1.bias"][:, None]
    x = np.where(x > 0, x, LEAKY_SLOPE * x)
    x = conv(x, state["input_stack.3.weight"], state["input_stack.3.bias"], (1, 1)).T          # [F, C]

    def layer_norm(x, key):
        centred = x - x.mean(axis=1, keepdims=True)
        return centred / np.sqrt((centred ** 2).mean(axis=1, keepdims=True) + LAYER_NORM_EPS) \
            * state[f"{key}.weight"] + state[f"{key}.bias"]

    for i in range(config["model"]["n_layers"]):
        key = f"net.encoder_layers.{i}.conformer.net"
        y = layer_norm(x, f"{key}.0") @ state[f"{key}.2.weight"][:, :, 0].T.astype(np.float64) + state[f"{key}.2.bias"]
        half = y.shape[1] // 2
        y = y[:, :half] / (1 + np.exp(-y[:, half:]))
        depth = state[f"{key}.4.conv.weight"]
        pad = depth.shape[-1] // 2
        y = conv(y.T, depth, state[f"{key}.4.conv.bias"], (pad, pad - (depth.shape[-1] + 1) % 2),
                 groups=depth.shape[0]).T
        y = y / (1 + np.exp(-y))
        x = x + y @ state[f"{key}.6.weight"][:, :, 0].T.astype(np.float64) + state[f"{key}.6.bias"]
    x = layer_norm(x, "norm")
    latent = 1 / (1 + np.exp(-(x @ output_weight(state).T.astype(np.float64) + state["output_proj.bias"])))
    table = state["cent_table"].astype(np.float64)
    index = np.clip(latent.argmax(axis=1)[:, None] + np.arange(9) - 4, 0, len(table) - 1)
    weights = np.take_along_axis(latent, index, axis=1)
    cents = (weights * table[index]).sum(axis=1) / weights.sum(axis=1)
    hz = 10 * 2 ** (cents / 1200)
    return hz, np.where((hz >= fmin) & (hz <= fmax), latent.max(axis=1), 0)


def main(argv):
    if len(argv) not in (3, 5) or (len(argv) == 5 and argv[3] != "--reference"):
        sys.exit(__doc__)
    state, config = read(argv[1])
    onnx.save(build_model(state, config), argv[2])
    if len(argv) == 5:
        write_reference(argv[4], lambda clip, fmin, fmax: reference(state, config, clip, fmin, fmax))


if __name__ == "__main__":
    main(sys.argv)

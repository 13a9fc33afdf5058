"""Convert a BS-RoFormer, Mel-Band RoFormer or MDX23C checkpoint (`.ckpt` + YAML config) to ONNX.

(MDX23C, a TFC-TDF network, is described, re-implemented and built by mdx23c.py; what follows
describes the RoFormers.)

The network without its STFT becomes the graph: input `bands` float32 [frames, features], the
spectrogram's bins gathered band by band (BS-RoFormer: every bin in order; Mel-Band: the bins
of each mel band, overlapping), each bin as (left re, left im, right re, right im); output
`masks` float32 [stems, frames, features], the complex mask for the same positions. The STFT,
the gather, the averaged scatter of overlapping bands, the complex multiplication, the inverse
STFT and the chunking are stemscribe's (crates/stemscribe-separate/src/roformer.rs), and the
card written beside the graph (`NAME.json`, key `roformer`) tells it how.

The model is read as python-audio-separator 0.47.1 builds it (`roformer/roformer_loader.py`,
`uvr_lib_v5/roformer/{bs,mel_band}_roformer.py`): the family from the config (`freqs_per_bands`:
BS; `num_bands`: Mel-Band), the `model` section's fields with its aliases and defaults, the
checkpoint's tensors (a state dict, or one under `state_dict` or `model`). A field that would
change what the reference computes and that this converter cannot reproduce is refused, naming
it; fields the reference reads but that do not change inference (dropout, flash or sage
attention, checkpointing, `zero_dc`, `skip_connection`: stored, unused by its forward pass)
are accepted; fields the reference never reads are listed on stderr.

`forward()` is a numpy re-implementation of the reference's forward pass on the same input; the
converter checks the graph against it (onnx's reference evaluator) before writing anything.

Usage: roformer.py MODEL.ckpt CONFIG.yaml OUT.onnx [--part-bytes N]
  writes OUT.onnx and OUT.json; exit status 2 with `error: ...` on stderr when refused.
"""

import json
import math
import os
import sys

import numpy as np
import yaml
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mdx23c  # noqa: E402
import torch_checkpoint  # noqa: E402

OPSET = 17
ROPE_THETA = 10000.0
EPS = 1e-12

# audio-separator's configuration_normalizer: aliases of the model section's fields.
ALIASES = {
    "n_fft": "stft_n_fft", "hop_length": "stft_hop_length", "win_length": "stft_win_length",
    "window_fn": "stft_window_fn", "normalized": "stft_normalized", "n_heads": "heads",
    "num_heads": "heads", "head_dim": "dim_head", "dropout": "attn_dropout",
    "attention_dropout": "attn_dropout", "feedforward_dropout": "ff_dropout",
    "expansion_factor": "mlp_expansion_factor", "mlp_ratio": "mlp_expansion_factor",
    "use_checkpoint": "use_torch_checkpoint", "checkpoint": "use_torch_checkpoint",
    "freq_bands": "freqs_per_bands", "frequency_bands": "freqs_per_bands",
    "mel_bands": "num_bands", "n_mels": "num_bands",
}
# Read by the reference, no effect on what inference computes.
INERT = {"attn_dropout", "ff_dropout", "flash_attn", "sage_attention", "use_torch_checkpoint",
         "zero_dc", "skip_connection", "dim_freqs_in", "multi_stft_resolution_loss_weight",
         "multi_stft_resolutions_window_sizes", "multi_stft_hop_size", "multi_stft_normalized",
         "multi_stft_window_fn"}
READ_BS = {"dim", "depth", "stereo", "num_stems", "time_transformer_depth",
           "freq_transformer_depth", "linear_transformer_depth", "freqs_per_bands", "dim_head",
           "heads", "mlp_expansion_factor", "stft_n_fft", "stft_hop_length", "stft_win_length"}
READ_MEL = {"dim", "depth", "stereo", "num_stems", "time_transformer_depth",
            "freq_transformer_depth", "num_bands", "dim_head", "heads", "mlp_expansion_factor",
            "sample_rate", "mask_estimator_depth", "stft_n_fft", "stft_hop_length",
            "stft_win_length", "stft_normalized", "stft_window_fn", "match_input_audio_length"}
# Short inputs (under 10 s) run in segments of this many frames (audio-separator's
# `segment_size` default, used when it overrides the model's dim_t for short audio).
SHORT_SEGMENT = 256
SHORT_SECONDS = 10.0
# The most bytes one part of a transformer's batch may hold in its feed-forward hidden values
# (see `grouped`): ONNX Runtime keeps what it has needed at once, so this bounds its memory.
PART_BYTES = 64 << 20


# The checkpoint or config asks for something this converter cannot reproduce (one class for
# both families).
Refused = mdx23c.Refused


def as_bool(value):
    if isinstance(value, str):
        return value.lower() in ("true", "1", "yes", "on")
    return bool(value)


class ConfigLoader(yaml.SafeLoader):
    """YAML's safe loader and `!!python/tuple` (which UVR's configs use): no tag constructs
    any other object."""


ConfigLoader.add_constructor(
    "tag:yaml.org,2002:python/tuple",
    lambda loader, node: tuple(loader.construct_sequence(node)))

MAX_CONFIG_BYTES = 1 << 20
MAX_CONFIG_NODES = 100_000


def read_config(path):
    """The YAML config as audio-separator reads it (`!!python/tuple` allowed, nothing that
    constructs other objects); a file over 1 MB or whose aliases would expand to more than
    100,000 values (a "billion laughs") is refused before it is built."""
    with open(path, "rb") as f:
        text = f.read(MAX_CONFIG_BYTES + 1)
    if len(text) > MAX_CONFIG_BYTES:
        raise Refused(f"{path} is over {MAX_CONFIG_BYTES >> 20} MB: not a model config")
    try:
        text = text.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Refused(f"{path} is not UTF-8 text") from e
    loader = None
    try:
        loader = ConfigLoader(text)
        root = loader.get_single_node()
        if root is not None and expanded_size(root) > MAX_CONFIG_NODES:
            raise Refused(f"{path}: its aliases expand to more than {MAX_CONFIG_NODES} values")
        config = loader.construct_document(root) if root is not None else None
    except RecursionError as e:
        raise Refused(f"{path} nests too deeply") from e
    except yaml.constructor.ConstructorError as e:
        raise Refused(f"{path}: {e.problem} (line {e.problem_mark.line + 1}); a config's tags "
                      "may not construct objects") from e
    except yaml.YAMLError as e:
        raise Refused(f"{path} is not valid YAML: {' '.join(str(e).split())}") from e
    finally:
        if loader is not None:
            loader.dispose()
    if not isinstance(config, dict):
        raise Refused(f"{path} is not a YAML mapping")
    return config


def expanded_size(root):
    """How many values `root` holds with every alias expanded, counted without expanding
    (each node's size once, memoised); stops counting past the limit."""
    sizes, open_nodes = {}, set()
    stack = [(root, False)]
    while stack:
        node, ready = stack.pop()
        if id(node) in sizes:
            continue
        if not ready and id(node) in open_nodes:
            raise Refused("the config refers to itself (a recursive alias)")
        open_nodes.add(id(node))
        children = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        if ready:
            total = 1 + sum(sizes.get(id(c), 0) for c in children)
            sizes[id(node)] = min(total, MAX_CONFIG_NODES + 1)
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def model_fields(config):
    """The `model` section with the reference's aliases applied."""
    model = config.get("model")
    if not isinstance(model, dict):
        raise Refused("the config has no `model` section")
    fields = {}
    for key, value in model.items():
        fields[ALIASES.get(key, key)] = value
    return fields


def family_of(fields):
    """`bs_roformer`, `mel_band_roformer` or `mdx23c`, as audio-separator tells them apart (a
    model that is neither RoFormer is a TFC-TDF network)."""
    bs, mel = "freqs_per_bands" in fields, "num_bands" in fields
    if bs and mel:
        raise Refused("the config has both `freqs_per_bands` (BS-RoFormer) and `num_bands` "
                      "(Mel-Band RoFormer)")
    if bs:
        return "bs_roformer"
    if mel:
        return "mel_band_roformer"
    return "mdx23c"


def hz_to_mel(hz):
    """Slaney's mel scale, as librosa's `hz_to_mel(htk=False)`."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = hz / f_sp
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(hz >= min_log_hz,
                    min_log_mel + np.log(np.maximum(hz, 1e-300) / min_log_hz) / logstep, mels)


def mel_to_hz(mels):
    """The inverse of `hz_to_mel`, as librosa's `mel_to_hz(htk=False)`."""
    mels = np.asarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)),
                    f_sp * mels)


def mel_band_bins(sample_rate, n_fft, num_bands):
    """Which bins each mel band covers ([bands, bins] bool), as MelBandRoformer builds it:
    librosa's Slaney-normalised mel filters (float32) > 0, with the first band's bin 0 and the
    last band's top bin set."""
    bins = n_fft // 2 + 1
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2.0), num_bands + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    weights = np.zeros((num_bands, bins), dtype=np.float32)
    for i in range(num_bands):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:num_bands + 2] - mel_f[:num_bands]))[:, None]
    weights[0, 0] = 1.0
    weights[-1, -1] = 1.0
    covered = weights > 0
    if not covered.any(axis=0).all():
        raise Refused(f"num_bands {num_bands} leaves some of the {bins} bins in no band")
    return covered


class Spec:
    """What the checkpoint and config describe: sizes, STFT, bands, stems, chunking."""

    def __init__(self, config, state):
        fields = model_fields(config)
        self.family = family_of(fields)
        read = READ_BS if self.family == "bs_roformer" else READ_MEL
        unknown = sorted(k for k in fields if k not in read and k not in INERT)
        self.unread = unknown

        def integer(key, default=None):
            value = fields.get(key, default)
            if value is None:
                raise Refused(f"the config's model section lacks `{key}`")
            try:
                return int(float(value))
            except (TypeError, ValueError):
                raise Refused(f"model.{key} is {value!r}, not a number") from None

        self.dim = integer("dim")
        self.depth = integer("depth")
        if not as_bool(fields.get("stereo", False)):
            raise Refused("model.stereo is false: the reference feeds every model a stereo mix, "
                          "which a mono model refuses")
        self.channels = 2
        self.time_depth = integer("time_transformer_depth", 2)
        self.freq_depth = integer("freq_transformer_depth", 2)
        self.heads = integer("heads", 8)
        self.dim_head = integer("dim_head", 64)
        self.n_fft = integer("stft_n_fft", 2048)
        self.hop = integer("stft_hop_length", 512)
        win = integer("stft_win_length", 2048)
        if win != self.n_fft:
            raise Refused(f"model.stft_win_length {win} differs from stft_n_fft {self.n_fft}")
        if self.family == "bs_roformer":
            if integer("linear_transformer_depth", 0) != 0:
                raise Refused(f"model.linear_transformer_depth is {integer('linear_transformer_depth')}: linear attention layers are not supported")
        else:
            if as_bool(fields.get("stft_normalized", False)):
                raise Refused("model.stft_normalized is true")
            if fields.get("stft_window_fn") is not None:
                raise Refused("model.stft_window_fn (only the Hann window is supported)")
        if self.n_fft % 2 or not 16 <= self.n_fft <= 65536 or not 0 < self.hop <= self.n_fft:
            raise Refused(f"model.stft_n_fft {self.n_fft} / stft_hop_length {self.hop}")
        self.match_length = as_bool(fields.get("match_input_audio_length", False))
        bins = self.n_fft // 2 + 1
        if self.family == "bs_roformer":
            bands = fields["freqs_per_bands"]
            if isinstance(bands, str):
                bands = [int(x) for x in bands.strip("()[]").replace(" ", "").split(",") if x]
            bands = [int(b) for b in bands]
            if len(bands) < 2 or sum(bands) != bins or min(bands) < 1:
                raise Refused(f"model.freqs_per_bands sums to {sum(bands)}, the STFT has {bins} "
                              "bins")
            self.band_bins = []
            start = 0
            for b in bands:
                self.band_bins.append(list(range(start, start + b)))
                start += b
        else:
            rate = integer("sample_rate", 44100)
            covered = mel_band_bins(rate, self.n_fft, integer("num_bands"))
            self.band_bins = [list(np.nonzero(row)[0]) for row in covered]
        self.band_sizes = [2 * len(b) * self.channels for b in self.band_bins]
        self.features = sum(self.band_sizes)

        # The network's own shape, from its tensors (what load_state_dict would accept).
        stems = 0
        while f"mask_estimators.{stems}.to_freqs.0.0.0.weight" in state:
            stems += 1
        if stems == 0:
            raise Refused("the checkpoint has no mask_estimators.0 tensors: not a RoFormer")
        self.stems = stems
        configured = fields.get("num_stems")
        if configured is not None and int(configured) != stems:
            raise Refused(f"model.num_stems is {configured}, the checkpoint has {stems} mask "
                          "estimators")
        layers = 0
        while f"mask_estimators.0.to_freqs.0.0.{2 * layers}.weight" in state:
            layers += 1
        self.mask_depth = layers
        hidden = state["mask_estimators.0.to_freqs.0.0.0.weight"].shape[0]
        self.mask_hidden = hidden if layers > 1 else None
        if layers > 1 and self.family == "bs_roformer" and "mlp_expansion_factor" in fields and \
                integer("mlp_expansion_factor") * self.dim != hidden:
            raise Refused(f"model.mlp_expansion_factor {fields['mlp_expansion_factor']} does not "
                          f"match the checkpoint's mask estimator width {hidden}")
        if len([k for k in state if k.startswith("band_split.to_features.") and
                k.endswith(".0.gamma")]) != len(self.band_bins):
            raise Refused(f"the config gives {len(self.band_bins)} bands, the checkpoint's "
                          "band split has a different number")

        self.sample_rate = int(config.get("audio", {}).get("sample_rate", 44100))
        if self.sample_rate != 44100:
            raise Refused(f"audio.sample_rate is {self.sample_rate}; stemscribe separates at "
                          "44100 Hz")
        inference = config.get("inference") or {}
        self.dim_t = int(inference.get("dim_t", 256))
        self.overlap = int(inference.get("num_overlap") or 8)
        training = config.get("training") or {}
        instruments = [str(i) for i in (training.get("instruments") or [])]
        target = training.get("target_instrument")
        self.instruments = instruments
        self.target = str(target) if target else None
        if self.target is not None:
            if stems != 1:
                raise Refused(f"training.target_instrument is set, the checkpoint has {stems} "
                              "stems")
        elif stems != len(instruments):
            raise Refused(f"training.instruments lists {len(instruments)} stems, the checkpoint "
                          f"has {stems}")

    def card(self):
        """The JSON stemscribe reads beside the graph."""
        return mdx23c.card(self, self.band_bins, SHORT_SEGMENT, SHORT_SECONDS,
                           self.match_length if self.family != "bs_roformer" else False)


def state_dict_of(checkpoint):
    """The tensors of a checkpoint as the reference loads them."""
    if isinstance(checkpoint, dict) and "state_dict" in checkpoint:
        checkpoint = checkpoint["state_dict"]
    elif isinstance(checkpoint, dict) and "model" in checkpoint:
        checkpoint = checkpoint["model"]
    if not isinstance(checkpoint, dict):
        raise Refused("the checkpoint holds no state dict")
    return {k: np.asarray(v, dtype=np.float32) for k, v in checkpoint.items()
            if isinstance(v, np.ndarray)}


# ---------------------------------------------------------------- the numpy forward pass

def rms_norm(x, gamma):
    norm = np.sqrt((x.astype(np.float64) ** 2).sum(-1, keepdims=True)).astype(np.float32)
    return x / np.maximum(norm, EPS) * np.float32(math.sqrt(x.shape[-1])) * gamma


def rope_freqs(state, prefix, dim_head):
    key = f"{prefix}.rotary_embed.freqs"
    if key in state:
        return state[key]
    return (1.0 / ROPE_THETA ** (np.arange(0, dim_head, 2)[: dim_head // 2] / dim_head)) \
        .astype(np.float32)


def rotate(x, freqs):
    """Rotary embedding over the sequence axis (-2) of x [..., n, d], pairs interleaved."""
    n = x.shape[-2]
    angles = np.arange(n, dtype=np.float32)[:, None] * freqs[None, :]
    angles = np.repeat(angles, 2, axis=-1)
    pairs = x.reshape(*x.shape[:-1], -1, 2)
    half = np.stack([-pairs[..., 1], pairs[..., 0]], axis=-1).reshape(x.shape)
    return x * np.cos(angles) + half * np.sin(angles)


def softmax(x):
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


# The error function to 1.2e-7, shared with the MDX23C network.
erf = mdx23c.erf


def gelu(x):
    """nn.GELU() (exact, with erf)."""
    return (0.5 * x * (1.0 + erf(x.astype(np.float64) / math.sqrt(2.0)))).astype(np.float32)


def transformer(x, state, prefix, depth, spec, norm_output):
    """One of the reference's `Transformer`s on x [batch, n, dim]."""
    h, d = spec.heads, spec.dim_head
    for k in range(depth):
        a = f"{prefix}.layers.{k}.0"
        xn = rms_norm(x, state[f"{a}.norm.gamma"])
        qkv = xn @ state[f"{a}.to_qkv.weight"].T
        qkv = qkv.reshape(*x.shape[:2], 3, h, d).transpose(2, 0, 3, 1, 4)
        freqs = rope_freqs(state, a, d)
        q, kk, v = rotate(qkv[0], freqs), rotate(qkv[1], freqs), qkv[2]
        p = softmax((q @ kk.transpose(0, 1, 3, 2)) * np.float32(d ** -0.5))
        out = p @ v
        gates = xn @ state[f"{a}.to_gates.weight"].T + state[f"{a}.to_gates.bias"]
        out = out * (1 / (1 + np.exp(-gates))).transpose(0, 2, 1)[..., None]
        out = out.transpose(0, 2, 1, 3).reshape(*x.shape[:2], h * d)
        x = out @ state[f"{a}.to_out.0.weight"].T + x
        f = f"{prefix}.layers.{k}.1.net"
        y = rms_norm(x, state[f"{f}.0.gamma"]) @ state[f"{f}.1.weight"].T + state[f"{f}.1.bias"]
        x = gelu(y) @ state[f"{f}.4.weight"].T + state[f"{f}.4.bias"] + x
    if norm_output:
        x = rms_norm(x, state[f"{prefix}.norm.gamma"])
    return x.astype(np.float32)


def forward(bands, state, spec):
    """The network on `bands` [frames, features]: masks [stems, frames, features]."""
    x = bands.astype(np.float32)
    feats, start = [], 0
    for b, size in enumerate(spec.band_sizes):
        p = f"band_split.to_features.{b}"
        xb = rms_norm(x[:, start:start + size], state[f"{p}.0.gamma"])
        feats.append(xb @ state[f"{p}.1.weight"].T + state[f"{p}.1.bias"])
        start += size
    x = np.stack(feats, axis=1)  # [t, bands, dim]
    mel = spec.family == "mel_band_roformer"
    for i in range(spec.depth):
        x = transformer(x.transpose(1, 0, 2), state, f"layers.{i}.0", spec.time_depth, spec, mel)
        x = transformer(x.transpose(1, 0, 2), state, f"layers.{i}.1", spec.freq_depth, spec, mel)
    if not mel:
        x = rms_norm(x, state["final_norm.gamma"])
    masks = []
    for n in range(spec.stems):
        outs = []
        for b in range(len(spec.band_sizes)):
            y = x[:, b]
            p = f"mask_estimators.{n}.to_freqs.{b}.0"
            for layer in range(spec.mask_depth):
                y = y @ state[f"{p}.{2 * layer}.weight"].T + state[f"{p}.{2 * layer}.bias"]
                if layer < spec.mask_depth - 1:
                    y = np.tanh(y)
            half = y.shape[-1] // 2
            outs.append(y[:, :half] * (1 / (1 + np.exp(-y[:, half:]))))
        masks.append(np.concatenate(outs, axis=-1))
    return np.stack(masks).astype(np.float32)


# ---------------------------------------------------------------- the ONNX graph

class Graph:
    """Collects nodes and initializers under unique names."""

    def __init__(self):
        self.nodes, self.inits, self.count, self.shared = [], [], 0, {}

    def name(self, hint):
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, value, hint="c"):
        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type, inputs, hint=None, **attrs):
        out = self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def ops(self, op_type, inputs, count, **attrs):
        outs = [self.name(op_type.lower()) for _ in range(count)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, **attrs))
        return outs

    def rms(self, x, gamma):
        dim = gamma.shape[0]
        norm = self.op("ReduceL2", [x], axes=[-1], keepdims=1)
        norm = self.op("Max", [norm, self.const(np.float32(EPS))])
        scale = self.derived(gamma, "gamma", lambda: (gamma * np.float32(math.sqrt(dim)))
                             .astype(np.float32))
        return self.op("Mul", [self.op("Div", [x, norm]), scale])

    def linear(self, x, weight, bias=None):
        y = self.op("MatMul", [x, self.derived(weight, "w",
                                               lambda: np.ascontiguousarray(weight.T))])
        return y if bias is None else self.op("Add", [y, self.derived(bias, "b", lambda: bias)])

    def derived(self, source, hint, make):
        """One initializer made from the weight `source` however often it is used (the parts
        of a grouped transformer share their weights)."""
        key = (id(source), hint)
        if key not in self.shared:
            self.shared[key] = (source, self.const(make(), hint))
        return self.shared[key][1]


def rope_tables(g, x, seq_axis, freqs):
    """cos and sin [n, 1, d] for the sequence length of x along `seq_axis`."""
    shape = g.op("Shape", [x])
    n = g.op("Gather", [shape, g.const(np.int64(seq_axis))], axis=0)
    n = g.op("Cast", [n], to=TensorProto.FLOAT)
    positions = g.op("Range", [g.const(np.float32(0)), n, g.const(np.float32(1))])
    positions = g.op("Unsqueeze", [positions, g.const(np.array([1], dtype=np.int64))])
    angles = g.op("Mul", [positions, g.const(np.repeat(freqs, 2)[None, :].astype(np.float32))])
    angles = g.op("Unsqueeze", [angles, g.const(np.array([1], dtype=np.int64))])  # [n, 1, d]
    return g.op("Cos", [angles]), g.op("Sin", [angles])


def rotation_matrix(d):
    """R with x @ R = rotate_half(x) for interleaved pairs."""
    r = np.zeros((d, d), dtype=np.float32)
    for i in range(d // 2):
        r[2 * i + 1, 2 * i] = -1.0
        r[2 * i, 2 * i + 1] = 1.0
    return r


def graph_transformer(g, x, state, prefix, depth, spec, norm_output, rope):
    h, d = spec.heads, spec.dim_head
    cos, sin = rope
    rot = g.const(rotation_matrix(d), "rot")
    for k in range(depth):
        a = f"{prefix}.layers.{k}.0"
        xn = g.rms(x, state[f"{a}.norm.gamma"])
        qkv = g.linear(xn, state[f"{a}.to_qkv.weight"])
        qkv = g.op("Reshape", [qkv, g.const(np.array([0, 0, 3, h, d], dtype=np.int64))])
        q, kk, v = (g.op("Gather", [qkv, g.const(np.int64(i))], axis=2) for i in range(3))

        def rotated(t):
            turned = g.op("MatMul", [t, rot])
            t = g.op("Add", [g.op("Mul", [t, cos]), g.op("Mul", [turned, sin])])
            return g.op("Reshape", [t, g.const(np.array([0, 0, h * d], dtype=np.int64))])

        v = g.op("Reshape", [v, g.const(np.array([0, 0, h * d], dtype=np.int64))])
        # ONNX Runtime's fused attention (its CPU kernel works in tiles, never holding the
        # [batch, heads, n, n] scores of a long time axis).
        out = g.op("MultiHeadAttention", [rotated(q), rotated(kk), v], domain="com.microsoft",
                   num_heads=h, scale=float(d ** -0.5))
        gates = g.op("Sigmoid", [g.linear(xn, state[f"{a}.to_gates.weight"],
                                          state[f"{a}.to_gates.bias"])])
        gates = g.op("Unsqueeze", [gates, g.const(np.array([3], dtype=np.int64))])
        out = g.op("Reshape", [out, g.const(np.array([0, 0, h, d], dtype=np.int64))])
        out = g.op("Mul", [out, gates])
        out = g.op("Reshape", [out, g.const(np.array([0, 0, h * d], dtype=np.int64))])
        x = g.op("Add", [g.linear(out, state[f"{a}.to_out.0.weight"]), x])
        f = f"{prefix}.layers.{k}.1.net"
        y = g.linear(g.rms(x, state[f"{f}.0.gamma"]), state[f"{f}.1.weight"],
                     state[f"{f}.1.bias"])
        erf = g.op("Erf", [g.op("Mul", [y, g.const(np.float32(1 / math.sqrt(2)))])])
        y = g.op("Mul", [g.op("Mul", [y, g.const(np.float32(0.5))]),
                         g.op("Add", [erf, g.const(np.float32(1))])])
        x = g.op("Add", [g.linear(y, state[f"{f}.4.weight"], state[f"{f}.4.bias"]), x])
    if norm_output:
        x = g.rms(x, state[f"{prefix}.norm.gamma"])
    return x


def split_sizes(n, groups):
    """`groups` part sizes of n, as even as can be (a constant)."""
    return np.array([len(a) for a in np.array_split(np.arange(n), min(groups, n))],
                    dtype=np.int64)


def frame_split_sizes(g, x, groups):
    """`groups` part sizes of x's first axis, computed when the graph runs: part i holds
    frames floor(i n / groups) up to floor((i + 1) n / groups), empty when n < groups."""
    n = g.op("Gather", [g.op("Shape", [x]), g.const(np.array([0], dtype=np.int64))], axis=0)
    edges = g.op("Div", [g.op("Mul", [n, g.const(np.arange(groups + 1, dtype=np.int64))]),
                         g.const(np.int64(groups))])
    return g.op("Sub", [g.op("Slice", [edges, g.const(np.array([1], dtype=np.int64)),
                                       g.const(np.array([groups + 1], dtype=np.int64))]),
                        g.op("Slice", [edges, g.const(np.array([0], dtype=np.int64)),
                                       g.const(np.array([groups], dtype=np.int64))])])


def grouped(g, x, sizes, count, transform):
    """`transform` applied to parts of x along its first axis (the batch of a transformer,
    whose items are independent), joined again. Run one after another, the parts' large
    intermediate tensors (a feed-forward layer's hidden values are 4 x the model's width per
    token) are never all alive at once."""
    if count == 1:
        return transform(x)
    source = g.const(sizes) if isinstance(sizes, np.ndarray) else sizes
    parts = g.ops("Split", [x, source], count, axis=0)
    return g.op("Concat", [transform(part) for part in parts], axis=0)


def build_graph(state, spec, part_bytes=PART_BYTES):
    """The ONNX model of `forward`, its transformers run in parts of at most `part_bytes` of
    feed-forward hidden values for a chunk of dim_t frames."""
    g = Graph()
    sizes = g.const(np.array(spec.band_sizes, dtype=np.int64), "sizes")
    parts = g.ops("Split", ["bands", sizes], len(spec.band_sizes), axis=1)
    feats = []
    for b, part in enumerate(parts):
        p = f"band_split.to_features.{b}"
        y = g.linear(g.rms(part, state[f"{p}.0.gamma"]), state[f"{p}.1.weight"],
                     state[f"{p}.1.bias"])
        feats.append(g.op("Unsqueeze", [y, g.const(np.array([1], dtype=np.int64))]))
    x = g.op("Concat", feats, axis=1)  # [t, bands, dim]
    mel = spec.family == "mel_band_roformer"
    freqs_t = rope_freqs(state, "layers.0.0.layers.0.0", spec.dim_head)
    freqs_f = rope_freqs(state, "layers.0.1.layers.0.0", spec.dim_head)
    rope_t = rope_tables(g, x, 0, freqs_t)
    rope_f = rope_tables(g, x, 1, freqs_f)
    hidden = state["layers.0.0.layers.0.1.net.1.weight"].shape[0]
    bands = len(spec.band_sizes)
    groups = min(bands, SHORT_SEGMENT, spec.dim_t,
                 -(-bands * spec.dim_t * hidden * 4 // part_bytes))
    band_parts = split_sizes(bands, groups)
    frame_parts = frame_split_sizes(g, x, groups) if groups > 1 else None
    for i in range(spec.depth):
        x = g.op("Transpose", [x], perm=[1, 0, 2])
        x = grouped(g, x, band_parts, len(band_parts), lambda part: graph_transformer(
            g, part, state, f"layers.{i}.0", spec.time_depth, spec, mel, rope_t))
        x = g.op("Transpose", [x], perm=[1, 0, 2])
        x = grouped(g, x, frame_parts, groups, lambda part: graph_transformer(
            g, part, state, f"layers.{i}.1", spec.freq_depth, spec, mel, rope_f))
    if not mel:
        x = g.rms(x, state["final_norm.gamma"])
    bands_out = g.ops("Split", [x, g.const(np.ones(len(spec.band_sizes), dtype=np.int64))],
                      len(spec.band_sizes), axis=1)
    bands_out = [g.op("Squeeze", [t, g.const(np.array([1], dtype=np.int64))]) for t in bands_out]
    stems = []
    for n in range(spec.stems):
        outs = []
        for b, y in enumerate(bands_out):
            p = f"mask_estimators.{n}.to_freqs.{b}.0"
            for layer in range(spec.mask_depth):
                y = g.linear(y, state[f"{p}.{2 * layer}.weight"], state[f"{p}.{2 * layer}.bias"])
                if layer < spec.mask_depth - 1:
                    y = g.op("Tanh", [y])
            value, gate = g.ops("Split", [y, g.const(np.array([spec.band_sizes[b]] * 2,
                                                              dtype=np.int64))], 2, axis=-1)
            outs.append(g.op("Mul", [value, g.op("Sigmoid", [gate])]))
        mask = g.op("Concat", outs, axis=-1)
        stems.append(g.op("Unsqueeze", [mask, g.const(np.array([0], dtype=np.int64))]))
    g.nodes.append(helper.make_node("Concat", stems, ["masks"], axis=0))
    graph = helper.make_graph(
        g.nodes, "roformer",
        [helper.make_tensor_value_info("bands", TensorProto.FLOAT, ["frames", spec.features])],
        [helper.make_tensor_value_info("masks", TensorProto.FLOAT,
                                       [spec.stems, "frames", spec.features])],
        g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET),
                                                    helper.make_opsetid("com.microsoft", 1)],
                              producer_name="stemscribe roformer.py")
    model.ir_version = 8
    return model


def attention_op():
    """com.microsoft.MultiHeadAttention for onnx's reference evaluator, from its definition:
    softmax(q k^T * scale) v per head, heads split from the last axis."""
    from onnx.reference.op_run import OpRun

    class MultiHeadAttention(OpRun):
        op_domain = "com.microsoft"

        def _run(self, query, key, value, num_heads=None, scale=None):
            b, n, width = query.shape
            d = width // num_heads

            def heads(t):
                return t.reshape(b, t.shape[1], num_heads, d).transpose(0, 2, 1, 3)

            p = softmax(heads(query) @ heads(key).transpose(0, 1, 3, 2) * np.float32(scale))
            out = (p @ heads(value)).transpose(0, 2, 1, 3).reshape(b, n, width)
            return (out.astype(np.float32),)

    return MultiHeadAttention


def check_graph(model, numpy_forward, features, frames=6, seed=0, ops=()):
    """Worst difference between the graph (onnx's reference evaluator, with `ops` in place of
    its own) and `numpy_forward`."""
    from onnx.reference import ReferenceEvaluator
    bands = np.random.default_rng(seed).normal(0, 1, size=(frames, features)) \
        .astype(np.float32)
    want = numpy_forward(bands)
    (have,) = ReferenceEvaluator(model, new_ops=[attention_op(), *ops]).run(None,
                                                                           {"bands": bands})
    return float(np.abs(have - want).max()), float(np.abs(want).max())


def convert(ckpt, config_path, out, part_bytes=PART_BYTES):
    config = read_config(config_path)
    state = state_dict_of(torch_checkpoint.load(ckpt))
    if family_of(model_fields(config)) == "mdx23c":
        spec = mdx23c.Spec(config, state, SHORT_SEGMENT, SHORT_SECONDS)
        model = mdx23c.build_graph(Graph(), state, spec, OPSET)
        worst, scale = check_graph(model, lambda b: mdx23c.forward(b, state, spec),
                                   spec.features, frames=spec.scale[0] ** spec.scales,
                                   ops=mdx23c.reference_ops())
        summary = (f"mdx23c: {spec.stems} stem(s), {spec.scales} scales, {spec.width} "
                   f"channels, {spec.dim_f} bins")
    else:
        spec = Spec(config, state)
        model = build_graph(state, spec, part_bytes)
        worst, scale = check_graph(model, lambda b: forward(b, state, spec), spec.features)
        parts = sum(n.op_type == "MultiHeadAttention" for n in model.graph.node) // (
            spec.depth * (spec.time_depth + spec.freq_depth))
        summary = (f"{spec.family}: {spec.stems} stem(s), {len(spec.band_bins)} bands, dim "
                   f"{spec.dim}, depth {spec.depth}, transformers in {parts} part(s)")
    if spec.unread:
        print(f"note: the reference does not read model.{', model.'.join(spec.unread)}; "
              "neither does stemscribe", file=sys.stderr)
    if not worst <= 1e-4 * max(scale, 1.0):
        raise RuntimeError(f"the graph differs from the numpy forward pass by {worst}")
    partial = out + ".partial"
    with open(partial, "wb") as f:
        f.write(model.SerializeToString())
    card = out[: -len(".onnx")] + ".json" if out.endswith(".onnx") else out + ".json"
    with open(card, "w", encoding="utf-8") as f:
        json.dump(spec.card(), f)
        f.write("\n")
    os.replace(partial, out)
    print(f"{summary}; graph checked against the numpy forward pass (worst difference "
          f"{worst:.2e})")


def main(argv):
    part_bytes = PART_BYTES
    if len(argv) == 6 and argv[4] == "--part-bytes" and argv[5].isdigit() and int(argv[5]) > 0:
        part_bytes, argv = int(argv[5]), argv[:4]
    if len(argv) != 4:
        print(__doc__.strip().splitlines()[-2], file=sys.stderr)
        return 2
    try:
        convert(argv[1], argv[2], argv[3], part_bytes)
    except (Refused, torch_checkpoint.CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (OSError, yaml.YAMLError, KeyError, ValueError) as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

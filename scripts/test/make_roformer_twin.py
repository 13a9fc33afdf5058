"""Make random-weight twins of BS-RoFormer, Mel-Band RoFormer and MDX23C checkpoints, and the
stems python-audio-separator 0.47.1 would give.

A twin is a PyTorch zip checkpoint (written without torch, as `torch.save(state_dict)` lays
it out) and the YAML config UVR publishes beside such files, with random weights of the right
shapes, so that it can stand in for a user's model in tests and benchmarks.

`separate()` is a numpy re-implementation of the reference's `MDXCSeparator` for RoFormers
at its defaults, written from its source: the mix scaled to peak at most 0.9; chunks of
`hop * (dim_t - 1)` samples (256 frames instead of dim_t when the input is under 10 s) every
`chunk // num_overlap` (8 without it), the last aligned to the end; each chunk through the
model's own forward pass (`torch.stft(center=True)`: reflect padding, periodic Hann; stereo
interleaved per bin; the bands; the network, `roformer.forward`; the mask, scattered back and
averaged over overlapping mel bands; the complex product; `torch.istft`); a symmetric Hamming
weight per chunk, overlap-added and divided by the summed weights. A single-target model's
other stem is the mix minus the target. Stems are written at the input's level (the
reference's scale undone), as stemscribe writes them.

Usage: make_roformer_twin.py OUT_DIR [--full | --full-mdx23c]
  writes OUT_DIR/bs/ (BS-RoFormer, target `vocals`, instruments [vocals, other]),
  OUT_DIR/mel/ (Mel-Band RoFormer, four stems) and OUT_DIR/mdx23c/ (MDX23C, two stems, no
  target), each with MODEL.ckpt, MODEL.yaml and, for a
  long clip (12 s) and a short one (4 s, the 256-frame segments): long.f32 / short.f32
  (interleaved stereo input) and long-STEM.f32 / short-STEM.f32 per stem. With --full, instead
  writes OUT_DIR/ep317/ at the size of model_bs_roformer_ep_317_sdr_12.9755 (dim 512, depth
  12, 62 bands) for benchmarks, without reference stems; with --full-mdx23c, OUT_DIR/instvoc-hq/
  at the size of MDX23C-8KFFT-InstVoc_HQ.
"""

import collections
import io
import os
import pickle
import sys
import types
import zipfile

import numpy as np
import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "setup"))
import mdx23c  # noqa: E402
import roformer  # noqa: E402

RATE = 44100
PEAK = 0.9
EP317_BANDS = (2,) * 24 + (4,) * 12 + (12,) * 8 + (24,) * 8 + (48,) * 8 + (128, 129)


# ---------------------------------------------------------------- checkpoints without torch

def save_checkpoint(state, path, layouts=None):
    """Writes `state` (name -> float32 array) as `torch.save` would, in its zip format.

    `layouts` (name -> (offset, size, stride)) makes a tensor a view of its array's storage
    other than the whole array: what tests of the checkpoint reader need."""
    layouts = layouts or {}
    storage_cls = type("FloatStorage", (), {"__module__": "torch"})

    def rebuild(*args):
        raise AssertionError("only pickled, never called")

    rebuild.__module__, rebuild.__qualname__, rebuild.__name__ = \
        "torch._utils", "_rebuild_tensor_v2", "_rebuild_tensor_v2"
    fake_torch = types.ModuleType("torch")
    fake_torch.FloatStorage = storage_cls
    fake_utils = types.ModuleType("torch._utils")
    fake_utils._rebuild_tensor_v2 = rebuild

    class Storage:
        def __init__(self, key, size):
            self.key, self.size = key, size

    class Tensor:
        def __init__(self, key, array, layout):
            self.key, self.array, self.layout = key, array, layout

        def __reduce__(self):
            a = self.array
            offset, size, stride = self.layout or \
                (0, a.shape, tuple(s // a.itemsize for s in a.strides))
            return rebuild, (Storage(self.key, a.size), offset, size, stride, False,
                             collections.OrderedDict())

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                return ("storage", storage_cls, obj.key, "cpu", obj.size)
            return None

    tensors = collections.OrderedDict()
    arrays = []
    for i, (name, array) in enumerate(state.items()):
        array = np.ascontiguousarray(array, dtype="<f4")
        arrays.append(array)
        tensors[name] = Tensor(str(i), array, layouts.get(name))
    saved = {m: sys.modules.get(m) for m in ("torch", "torch._utils")}
    sys.modules.update({"torch": fake_torch, "torch._utils": fake_utils})
    try:
        buffer = io.BytesIO()
        Pickler(buffer, protocol=2).dump(tensors)
    finally:
        for module, previous in saved.items():
            if previous is None:
                sys.modules.pop(module, None)
            else:
                sys.modules[module] = previous
    root = os.path.splitext(os.path.basename(path))[0]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{root}/data.pkl", buffer.getvalue())
        archive.writestr(f"{root}/byteorder", "little")
        for i, array in enumerate(arrays):
            archive.writestr(f"{root}/data/{i}", array.tobytes())
        archive.writestr(f"{root}/version", "3\n")


# ---------------------------------------------------------------- random models

def random_state(model, band_count, band_sizes, stems, seed):
    """Weights of the shapes the reference's modules have, for `model` (the YAML's section)."""
    rng = np.random.default_rng(seed)
    dim, h, d = model["dim"], model.get("heads", 8), model.get("dim_head", 64)
    mel = "num_bands" in model
    # Linear layers per mask estimator: Mel-Band's MLP has `mask_estimator_depth` hidden layers
    # (always 4 x dim wide), BS-RoFormer's one (mask_estimator_depth 2, not read from the config).
    mask_depth = model.get("mask_estimator_depth", 1) + 1 if mel else 2
    hidden = dim * (4 if mel else model.get("mlp_expansion_factor", 4))
    state = {}

    def linear(name, n_out, n_in, bias=True):
        state[f"{name}.weight"] = rng.normal(0, 1 / np.sqrt(n_in), (n_out, n_in))
        if bias:
            state[f"{name}.bias"] = rng.normal(0, 0.1, n_out)

    def gamma(name, n):
        state[f"{name}.gamma"] = 1 + rng.normal(0, 0.1, n)

    freqs = 1.0 / 10000 ** (np.arange(0, d, 2)[: d // 2] / d)
    for i in range(model["depth"]):
        for j, depth in enumerate((model.get("time_transformer_depth", 2),
                                   model.get("freq_transformer_depth", 2))):
            for k in range(depth):
                a = f"layers.{i}.{j}.layers.{k}.0"
                gamma(f"{a}.norm", dim)
                linear(f"{a}.to_qkv", 3 * h * d, dim, bias=False)
                linear(f"{a}.to_gates", h, dim)
                linear(f"{a}.to_out.0", dim, h * d, bias=False)
                state[f"{a}.rotary_embed.freqs"] = freqs
                f = f"layers.{i}.{j}.layers.{k}.1.net"
                gamma(f"{f}.0", dim)
                linear(f"{f}.1", 4 * dim, dim)
                linear(f"{f}.4", dim, 4 * dim)
            if mel:
                gamma(f"layers.{i}.{j}.norm", dim)
    if not mel:
        gamma("final_norm", dim)
    for b, size in enumerate(band_sizes):
        gamma(f"band_split.to_features.{b}.0", size)
        linear(f"band_split.to_features.{b}.1", dim, size)
    for n in range(stems):
        for b, size in enumerate(band_sizes):
            dims = [dim] + [hidden] * (mask_depth - 1) + [2 * size]
            for layer in range(mask_depth):
                linear(f"mask_estimators.{n}.to_freqs.{b}.0.{2 * layer}", dims[layer + 1],
                       dims[layer])
    assert len(band_sizes) == band_count
    return {k: np.asarray(v, dtype=np.float32) for k, v in state.items()}


def random_mdx23c_state(config, seed):
    """Weights of the shapes TFC_TDF_net's modules have for `config`."""
    rng = np.random.default_rng(seed)
    spec = mdx23c.Spec(config, {}, roformer.SHORT_SEGMENT, roformer.SHORT_SECONDS,
                       check=False)
    state = {}
    for name, shape in spec.shapes().items():
        if name.endswith("running_var"):
            value = rng.uniform(0.5, 2.0, shape)
        elif name.endswith(("running_mean", "bias")):
            value = rng.normal(0, 0.1, shape)
        elif len(shape) == 1:
            value = 1 + rng.normal(0, 0.1, shape)
        else:
            value = rng.normal(0, 1 / np.sqrt(np.prod(shape[1:])), shape)
        state[name] = value
    return {k: np.asarray(v, dtype=np.float32) for k, v in state.items()}


def tuple_representer(dumper, data):
    return dumper.represent_sequence("tag:yaml.org,2002:python/tuple", data)


def write_twin(out, config, seed):
    """MODEL.ckpt and MODEL.yaml in `out`; returns (spec, state)."""
    os.makedirs(out, exist_ok=True)
    model = config["model"]
    if roformer.family_of(model) == "mdx23c":
        state = random_mdx23c_state(config, seed)
        save_checkpoint(state, os.path.join(out, "MODEL.ckpt"))
        with open(os.path.join(out, "MODEL.yaml"), "w", encoding="utf-8") as f:
            yaml.dump(config, f, sort_keys=False)
        spec = mdx23c.Spec(roformer.read_config(os.path.join(out, "MODEL.yaml")), state,
                           roformer.SHORT_SEGMENT, roformer.SHORT_SECONDS)
        return spec, state
    if "freqs_per_bands" in model:
        sizes = [4 * f for f in model["freqs_per_bands"]]
    else:
        covered = roformer.mel_band_bins(model.get("sample_rate", RATE), model["stft_n_fft"],
                                         model["num_bands"])
        sizes = [4 * int(row.sum()) for row in covered]
    stems = model["num_stems"]
    state = random_state(model, len(sizes), sizes, stems, seed)
    save_checkpoint(state, os.path.join(out, "MODEL.ckpt"))
    dumper = yaml.Dumper
    dumper.add_representer(tuple, tuple_representer)
    with open(os.path.join(out, "MODEL.yaml"), "w", encoding="utf-8") as f:
        yaml.dump(config, f, Dumper=dumper, sort_keys=False)
    spec = roformer.Spec(roformer.read_config(os.path.join(out, "MODEL.yaml")), state)
    return spec, state


# ---------------------------------------------------------------- the reference separation

def periodic_hann(n):
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)


def stft(x, n_fft, hop):
    """torch.stft(center=True, pad_mode='reflect', window=hann_window(n_fft)): [bins, frames]."""
    padded = np.pad(x, n_fft // 2, mode="reflect")
    frames = 1 + len(x) // hop
    window = periodic_hann(n_fft)
    cut = np.stack([padded[t * hop: t * hop + n_fft] * window for t in range(frames)])
    return np.fft.rfft(cut.astype(np.float64), axis=-1).T


def istft(spectrum, n_fft, hop, length=None):
    """torch.istft(center=True) of [bins, frames]."""
    frames = spectrum.shape[1]
    window = periodic_hann(n_fft).astype(np.float64)
    size = n_fft + hop * (frames - 1)
    y, envelope = np.zeros(size), np.zeros(size)
    cut = np.fft.irfft(spectrum.T, n=n_fft, axis=-1)
    for t in range(frames):
        y[t * hop: t * hop + n_fft] += cut[t] * window
        envelope[t * hop: t * hop + n_fft] += window ** 2
    start = n_fft // 2
    end = start + (length if length is not None else hop * (frames - 1))
    return y[start:end] / envelope[start:end]


def model_forward(part, state, spec):
    """The model on `part` [2, samples]: [stems, 2, samples'] as the reference returns it."""
    spectra = np.stack([stft(c, spec.n_fft, spec.hop) for c in part])  # [s, f, t]
    frames = spectra.shape[2]
    columns = []
    for band in spec.band_bins:
        for f in band:
            for s in range(2):
                columns.append(spectra[s, f].real)
                columns.append(spectra[s, f].imag)
    bands = np.stack(columns, axis=1).astype(np.float32)  # [t, features]
    masks = roformer.forward(bands, state, spec).astype(np.float64)
    bins = spec.n_fft // 2 + 1
    count = np.zeros(bins)
    for band in spec.band_bins:
        count[band] += 1
    length = part.shape[1] if spec.card()["roformer"]["match_input_length"] else None
    out = []
    for n in range(spec.stems):
        summed = np.zeros((2, bins, frames), dtype=complex)
        j = 0
        for band in spec.band_bins:
            for f in band:
                for s in range(2):
                    summed[s, f] += masks[n, :, j] + 1j * masks[n, :, j + 1]
                    j += 2
        summed /= count[None, :, None]
        out.append([istft(spectra[s] * summed[s], spec.n_fft, spec.hop, length) for s in range(2)])
    return np.asarray(out)


def chunk_starts(length, chunk, step):
    starts = []
    for offset in range(0, length, step):
        if offset + chunk >= length:
            tail = max(length - chunk, 0)
            if not starts or starts[-1] != tail:
                starts.append(tail)
            break
        starts.append(offset)
    return starts


def hamming(n):
    """scipy.signal.windows.hamming(n) (symmetric)."""
    if n == 1:
        return np.ones(1)
    return 0.54 - 0.46 * np.cos(2 * np.pi * np.arange(n) / (n - 1))


def separate(mix, state, spec):
    """{stem name: [2, samples]} as audio-separator gives them, at the input's level."""
    peak = np.abs(mix).max()
    gain = PEAK / peak if peak > PEAK else 1.0
    scaled = (mix * gain).astype(np.float32)
    segment = spec.dim_t if mix.shape[1] / RATE >= roformer.SHORT_SECONDS else \
        roformer.SHORT_SEGMENT
    chunk = spec.hop * (segment - 1)
    step = chunk // spec.overlap
    window = hamming(chunk).astype(np.float32)
    result = np.zeros((spec.stems, 2, mix.shape[1]))
    counter = np.zeros(mix.shape[1])
    for start in chunk_starts(mix.shape[1], chunk, step):
        part = scaled[:, start:start + chunk]
        x = model_forward(part, state, spec)
        safe = min(part.shape[1], x.shape[-1], chunk)
        result[..., start:start + safe] += x[..., :safe] * window[:safe]
        counter[start:start + safe] += window[:safe]
    stems = result / np.maximum(counter, 1e-10) / gain
    card = spec.card()["roformer"]
    names = [i.lower() for i in card["instruments"]]
    if card["target_instrument"] is not None:
        target = card["target_instrument"].lower()
        other = [n for n in names if n != target]
        return {target: stems[0], other[0] if other else f"no_{target}": mix - stems[0]}
    return {name: stems[n] for n, name in enumerate(names)}


def mdx23c_forward(part, state, spec):
    """TFC_TDF_net on `part` [2, samples]: [stems, 2, samples'] (its STFT, the network
    `mdx23c.forward`, the zero-padded inverse STFT)."""
    spectra = np.stack([stft(c, spec.n_fft, spec.hop)[:spec.dim_f] for c in part])  # [s, f, t]
    frames = spectra.shape[2]
    bands = np.stack([spectra.real, spectra.imag], axis=-1)  # [s, f, t, 2]
    bands = bands.transpose(2, 1, 0, 3).reshape(frames, spec.features).astype(np.float32)
    out = mdx23c.forward(bands, state, spec).astype(np.float64)
    out = out.reshape(spec.stems, frames, spec.dim_f, 2, 2)  # [n, t, f, s, re/im]
    bins = spec.n_fft // 2 + 1
    stems = []
    for n in range(spec.stems):
        waves = []
        for s in range(2):
            full = np.zeros((bins, frames), dtype=complex)
            full[:spec.dim_f] = (out[n, :, :, s, 0] + 1j * out[n, :, :, s, 1]).T
            waves.append(istft(full, spec.n_fft, spec.hop))
        stems.append(waves)
    return np.asarray(stems)


def separate_mdx23c(mix, state, spec):
    """{stem name: [2, samples]} as audio-separator's MDXC path gives them for a TFC-TDF
    network, at the input's level: the mix zero-padded by chunk - step in front and to a whole
    number of steps behind, chunks every `chunk // overlap`, summed and divided by the overlap."""
    peak = np.abs(mix).max()
    gain = PEAK / peak if peak > PEAK else 1.0
    scaled = (mix * gain).astype(np.float32)
    length = mix.shape[1]
    segment = spec.dim_t if length / RATE >= roformer.SHORT_SECONDS else roformer.SHORT_SEGMENT
    chunk = spec.hop * (segment - 1)
    step = chunk // spec.overlap
    pad = step - (length - chunk) % step
    padded = np.concatenate([np.zeros((2, chunk - step), dtype=np.float32), scaled,
                             np.zeros((2, pad + chunk - step), dtype=np.float32)], axis=1)
    result = np.zeros((spec.stems, 2, padded.shape[1]))
    for start in range(0, padded.shape[1] - chunk + 1, step):
        result[..., start:start + chunk] += mdx23c_forward(padded[:, start:start + chunk],
                                                           state, spec)
    stems = result[..., chunk - step:chunk - step + length] / spec.overlap / gain
    names = [i.lower() for i in spec.instruments]
    if spec.target is not None:
        target = spec.target.lower()
        other = [n for n in names if n != target]
        return {target: stems[0], other[0] if other else f"no_{target}": mix - stems[0]}
    return {name: stems[n] for n, name in enumerate(names)}


# ---------------------------------------------------------------- the twins

def small_bs():
    return {
        "audio": {"chunk_size": 44100, "dim_f": 1024, "dim_t": 101, "hop_length": 441,
                  "n_fft": 2048, "num_channels": 2, "sample_rate": RATE, "min_mean_abs": 0.0},
        "model": {"dim": 16, "depth": 1, "stereo": True, "num_stems": 1,
                  "time_transformer_depth": 1, "freq_transformer_depth": 1,
                  "linear_transformer_depth": 0, "freqs_per_bands": EP317_BANDS,
                  "dim_head": 8, "heads": 2, "attn_dropout": 0.1, "ff_dropout": 0.1,
                  "flash_attn": True, "dim_freqs_in": 1025, "stft_n_fft": 2048,
                  "stft_hop_length": 441, "stft_win_length": 2048, "stft_normalized": False,
                  "mask_estimator_depth": 2, "multi_stft_resolution_loss_weight": 1.0,
                  "multi_stft_resolutions_window_sizes": (4096, 2048, 1024, 512, 256),
                  "multi_stft_hop_size": 147, "multi_stft_normalized": False},
        "training": {"instruments": ["vocals", "other"], "target_instrument": "vocals"},
        "inference": {"batch_size": 1, "dim_t": 101, "num_overlap": 4},
    }


def small_mel():
    return {
        "audio": {"chunk_size": 44100, "dim_f": 1024, "dim_t": 101, "hop_length": 441,
                  "n_fft": 2048, "num_channels": 2, "sample_rate": RATE},
        "model": {"dim": 16, "depth": 1, "stereo": True, "num_stems": 4,
                  "time_transformer_depth": 1, "freq_transformer_depth": 1, "num_bands": 60,
                  "dim_head": 8, "heads": 2, "attn_dropout": 0.0, "ff_dropout": 0.0,
                  "flash_attn": True, "dim_freqs_in": 1025, "sample_rate": RATE,
                  "stft_n_fft": 2048, "stft_hop_length": 441, "stft_win_length": 2048,
                  "stft_normalized": False, "mask_estimator_depth": 2,
                  "multi_stft_resolution_loss_weight": 1.0,
                  "multi_stft_resolutions_window_sizes": (4096, 2048, 1024, 512, 256),
                  "multi_stft_hop_size": 147, "multi_stft_normalized": False},
        "training": {"instruments": ["Vocals", "Drums", "Bass", "Other"],
                     "target_instrument": None},
        "inference": {"batch_size": 1, "dim_t": 101},
    }


def small_mdx23c():
    """An MDX23C config laid out as the published ones (InstVoc HQ: two stems, InstanceNorm,
    GELU), small."""
    return {
        "audio": {"chunk_size": 27783, "dim_f": 512, "dim_t": 64, "hop_length": 441,
                  "n_fft": 2048, "num_channels": 2, "sample_rate": RATE,
                  "min_mean_abs": 0.0},
        "model": {"act": "gelu", "bottleneck_factor": 2, "growth": 4, "norm": "InstanceNorm",
                  "num_blocks_per_scale": 1, "num_channels": 8, "num_scales": 2,
                  "num_subbands": 2, "scale": [2, 2]},
        "training": {"instruments": ["Vocals", "Instrumental"], "target_instrument": None},
        "inference": {"batch_size": 1, "dim_t": 64, "num_overlap": 4},
    }


def ep317():
    config = small_bs()
    config["model"].update(dim=512, depth=12, dim_head=64, heads=8)
    config["audio"].update(chunk_size=352800, dim_t=801)
    config["inference"] = {"batch_size": 1, "dim_t": 801, "num_overlap": 2}
    return config


def instvoc_hq():
    """An MDX23C config at the size of MDX23C-8KFFT-InstVoc_HQ (8192-point STFT, 4096 bins,
    128 channels growing by 128 over 5 scales, 4 subbands), for benchmarks."""
    config = small_mdx23c()
    config["audio"].update(chunk_size=261120, dim_f=4096, dim_t=256, hop_length=1024,
                           n_fft=8192)
    config["model"].update(bottleneck_factor=4, growth=128, num_blocks_per_scale=2,
                           num_channels=128, num_scales=5, num_subbands=4)
    config["inference"] = {"batch_size": 1, "dim_t": 256, "num_overlap": 8}
    return config


def clip(seconds, seed):
    """A stereo test mix: tones with vibrato, a pulse train and noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    voice = 0.4 * np.sin(2 * np.pi * (220 * t + 3 * np.sin(2 * np.pi * 5 * t)))
    beat = (np.sin(2 * np.pi * 2 * t) > 0.95) * rng.normal(0, 0.5, t.size)
    left = voice + beat + rng.normal(0, 0.05, t.size)
    right = 0.7 * voice - beat + rng.normal(0, 0.05, t.size)
    return np.stack([left, right]).astype(np.float32)


def main(argv):
    if len(argv) not in (2, 3) or (len(argv) == 3 and argv[2] not in ("--full",
                                                                       "--full-mdx23c")):
        print("usage: make_roformer_twin.py OUT_DIR [--full | --full-mdx23c]", file=sys.stderr)
        return 2
    out = argv[1]
    if len(argv) == 3 and argv[2] == "--full":
        write_twin(os.path.join(out, "ep317"), ep317(), seed=317)
        return 0
    if len(argv) == 3:
        write_twin(os.path.join(out, "instvoc-hq"), instvoc_hq(), seed=23)
        return 0
    for name, config, seed in (("bs", small_bs(), 1), ("mel", small_mel(), 2),
                               ("mdx23c", small_mdx23c(), 3)):
        spec, state = write_twin(os.path.join(out, name), config, seed)
        run = separate_mdx23c if name == "mdx23c" else separate
        for label, seconds in (("long", 12.0), ("short", 4.0)):
            mix = clip(seconds, seed)
            mix.T.astype("<f4").tofile(os.path.join(out, name, f"{label}.f32"))
            for stem, audio in run(mix, state, spec).items():
                audio.T.astype("<f4").tofile(os.path.join(out, name, f"{label}-{stem}.f32"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""Check the numpy references of scripts/test/make_roformer_twin.py against audio-separator itself.

Needs torch and audio-separator 0.47.1 importable (not installed by setup: a developer's check,
run by hand). Loads each twin's MODEL.ckpt with `torch.load` (so the checkpoint writer is
checked too), builds the model with audio-separator's `RoformerLoader` (the MDX23C twin: its
`TFC_TDF_net` and `load_state_dict`, as `MDXCSeparator.load_model` does), runs
`MDXCSeparator.demix` on the twin's clips as `separate()` does (the mix scaled to peak 0.9, the
short-input segment override), and prints the SDR of the numpy reference's stems against it;
and the numpy MDX23C network against `TFC_TDF_net` for each norm and activation kind.

Usage: check_roformer_reference.py TWIN_DIR   (the OUT_DIR of make_roformer_twin.py)
"""

import logging
import os
import sys

import numpy as np
import torch
import yaml
from audio_separator.separator.architectures.mdxc_separator import MDXCSeparator
from audio_separator.separator.roformer.roformer_loader import RoformerLoader
from audio_separator.separator.uvr_lib_v5 import spec_utils
from audio_separator.separator.uvr_lib_v5.tfc_tdf_v3 import TFC_TDF_net
from ml_collections import ConfigDict


def sdr(reference, estimate):
    return 10 * np.log10(np.sum(reference ** 2) / max(np.sum((reference - estimate) ** 2), 1e-30))


def separator_for(model_dir):
    with open(os.path.join(model_dir, "MODEL.yaml"), encoding="utf-8") as f:
        config = yaml.load(f, Loader=yaml.FullLoader)
    sep = MDXCSeparator.__new__(MDXCSeparator)
    sep.is_roformer = "freqs_per_bands" in config["model"] or "num_bands" in config["model"]
    if sep.is_roformer:
        result = RoformerLoader().load_model(os.path.join(model_dir, "MODEL.ckpt"), config, "cpu")
        if not result.success:
            raise SystemExit(f"{model_dir}: {result.error_message}")
        sep.model_run = result.model.eval()
    else:
        sep.model_run = TFC_TDF_net(ConfigDict(config), device="cpu")
        sep.model_run.load_state_dict(torch.load(os.path.join(model_dir, "MODEL.ckpt"),
                                                 map_location="cpu"))
        sep.model_run.eval()
    sep.logger = logging.getLogger("check")
    sep.model_data = config
    sep.model_data_cfgdict = ConfigDict(config)
    sep.pitch_shift = 0
    sep.segment_size = 256
    sep.override_model_segment_size = False
    inference = config.get("inference", {})
    sep.overlap = inference.get("num_overlap") or 8
    sep.batch_size = inference.get("batch_size") or 1
    sep.sample_rate = 44100
    sep.torch_device = torch.device("cpu")
    sep.is_torch_compiled = False
    training = config["training"]
    instruments = training["instruments"]
    target = training.get("target_instrument")
    sep.is_primary_stem_main_target = bool(target)
    sep.primary_stem_name = target or instruments[0]
    sep.secondary_stem_name = [i for i in instruments if i != sep.primary_stem_name][0]
    return sep


def separate_stems(sep, mix):
    """Every stem of `mix` as audio-separator's `separate()` gives it (the mix scaled to peak
    0.9, the short-input segment override, a single-target model's residual), at the mix's
    level: {stem name: array}."""
    peak = np.abs(mix).max()
    gain = 0.9 / peak if peak > 0.9 else 1.0
    scaled = spec_utils.normalize(wave=mix.copy(), max_peak=0.9, min_peak=0.0)
    override = sep._use_model_segment_override(mix.shape[1] / 44100)
    with torch.no_grad():
        sources = sep.demix(mix=scaled, override_model_segment_size=override)
    if not isinstance(sources, dict):
        sources = {sep.primary_stem_name: sources, sep.secondary_stem_name: scaled - sources}
    return {stem: np.asarray(audio) / gain for stem, audio in sources.items()}


def check_mdx23c_kinds():
    """The numpy TFC-TDF network (scripts/setup/mdx23c.py) against `TFC_TDF_net` itself on one
    chunk, for every kind of norm and activation the converter accepts."""
    import tempfile
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test"))
    import make_roformer_twin as twins
    worst = np.inf
    for norm, act in [("BatchNorm", "relu"), ("GroupNorm4", "elu1.0"),
                      ("InstanceNorm", "gelu"), (None, "gelu")]:
        config = twins.small_mdx23c()
        config["model"].update(norm=norm, act=act)
        config["training"]["target_instrument"] = "Vocals"
        with tempfile.TemporaryDirectory() as out:
            spec, state = twins.write_twin(out, config, seed=7)
            net = TFC_TDF_net(ConfigDict(config), device="cpu")
            net.load_state_dict(torch.load(os.path.join(out, "MODEL.ckpt"), map_location="cpu"))
        part = twins.clip(1.0, 3)[:, :spec.hop * (spec.dim_t - 1)]
        with torch.no_grad():
            reference = net.eval()(torch.tensor(part)[None])[0].numpy()
        ours = twins.mdx23c_forward(part, state, spec).reshape(reference.shape)
        value = sdr(reference, ours)
        worst = min(worst, value)
        print(f"mdx23c network, norm {norm}, act {act}: numpy vs TFC_TDF_net {value:.1f} dB")
    return worst


def main(argv):
    twin = argv[1]
    worst = check_mdx23c_kinds()
    for name in ("bs", "mel", "mdx23c"):
        model_dir = os.path.join(twin, name)
        sep = separator_for(model_dir)
        for label in ("long", "short"):
            mix = np.fromfile(os.path.join(model_dir, f"{label}.f32"), dtype="<f4").reshape(-1, 2).T
            for stem, audio in separate_stems(sep, mix).items():
                path = os.path.join(model_dir, f"{label}-{stem.lower()}.f32")
                ours = np.fromfile(path, dtype="<f4").reshape(-1, 2).T
                value = sdr(audio, ours)
                worst = min(worst, value)
                print(f"{name} {label} {stem}: numpy reference vs audio-separator {value:.1f} dB")
    print(f"worst {worst:.1f} dB")


if __name__ == "__main__":
    sys.exit(main(sys.argv))

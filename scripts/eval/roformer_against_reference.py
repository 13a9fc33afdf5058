"""Time audio-separator 0.47.1 on a clip, compare stemscribe's stem with it, and show how far the
reference agrees with itself when every input sample moves by one float32 step.

Needs torch and audio-separator 0.47.1 importable (a developer's check, run by hand, like
check_roformer_reference.py, whose `separator_for` it uses). Run stemscribe first:

    stemscribe --device cpu --threads 2 separate CLIP.wav --model-file DIR/MODEL.ckpt --stems OUT

usage: roformer_against_reference.py MODEL_DIR CLIP.wav OUT/STEM.wav [--threads N]
MODEL_DIR holds MODEL.ckpt and MODEL.yaml; STEM.wav is stemscribe's stem of the model's primary
stem (vocals for ep_317). Prints demix's seconds, stemscribe against the reference (SDR, dB), and
the reference against itself with the input moved one float32 step (SDR, dB).
"""

import argparse
import os
import sys
import time

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_roformer_reference import sdr, separate_stems, separator_for  # noqa: E402


def primary(sep, mix):
    """The primary stem as audio-separator's `separate()` gives it, at the input's level."""
    return np.asarray(separate_stems(sep, mix)[sep.primary_stem_name], dtype=np.float64)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model_dir")
    parser.add_argument("clip")
    parser.add_argument("stem")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sep = separator_for(args.model_dir)
    mix = sf.read(args.clip, dtype="float32", always_2d=True)[0].T.copy()
    start = time.time()
    reference = primary(sep, mix)
    print(f"audio-separator demix: {time.time() - start:.1f} s")
    ours = sf.read(args.stem, dtype="float64", always_2d=True)[0].T
    print(f"stemscribe against audio-separator: {sdr(reference, ours):.1f} dB")
    rng = np.random.default_rng(1)
    away = np.where(rng.random(mix.shape) < 0.5, np.float32(np.inf), np.float32(-np.inf))
    moved = np.nextafter(mix, away.astype(np.float32)).astype(np.float32)
    print(f"audio-separator against itself, input moved one float32 step: "
          f"{sdr(reference, primary(sep, moved)):.1f} dB")


if __name__ == "__main__":
    main()

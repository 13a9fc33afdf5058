"""`stemscribe separate --model-file A --model-file B ... --ensemble avg_wave|median_wave`
against a numpy reference of python-audio-separator's ensembler: each model's stems, written by
`separate --model-file X` alone, combined with np.mean / np.median over the models that give
each stem. Three random-weight twins (BS-RoFormer and Mel-Band RoFormer checkpoints, an MDX-Net
file, all made by scripts/setup.sh), so vocals come from three models, other from two, and
drums, bass and instrumental from one."""

import os
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("STEMSCRIBE_BIN", str(ROOT / "target" / "debug" / "stemscribe"))
TWINS = ROOT / "models" / "installed"
MODELS = [TWINS / "roformer-twin" / "bs" / "MODEL.ckpt", TWINS / "roformer-twin" / "mel" / "MODEL.ckpt",
          TWINS / "mdx-twin" / "mdx-twin.onnx"]
CLIP = ROOT / "tests" / "data" / "rock_mix.wav"


def read_float_wav(path):
    """A 32-bit float WAV as (channels, frames)."""
    data = path.read_bytes()
    at, channels = 12, None
    while at + 8 <= len(data):
        kind, size = data[at:at + 4], struct.unpack("<I", data[at + 4:at + 8])[0]
        if kind == b"fmt ":
            channels = struct.unpack("<H", data[at + 10:at + 12])[0]
            assert struct.unpack("<H", data[at + 22:at + 24])[0] == 32
        elif kind == b"data":
            samples = np.frombuffer(data[at + 8:at + 8 + size], dtype="<f4")
            return samples.reshape(-1, channels).T.astype(np.float64)
        at += 8 + size + (size % 2)
    raise AssertionError(f"{path}: no data chunk")


def separate(models, out, *extra):
    args = [BIN, "--quiet", "separate", str(CLIP), "--stems", str(out), *extra]
    for model in models:
        args += ["--model-file", str(model)]
    subprocess.run(args, check=True)
    return {p.stem: read_float_wav(p) for p in out.glob("*.wav")}


@pytest.fixture(scope="module")
def alone(tmp_path_factory):
    out = tmp_path_factory.mktemp("alone")
    return [separate([model], out / f"model{i}") for i, model in enumerate(MODELS)]


@pytest.mark.parametrize("method, combine", [("avg_wave", np.mean), ("median_wave", np.median)])
def test_an_ensemble_combines_the_stems_as_numpy_does(tmp_path, alone, method, combine):
    together = separate(MODELS, tmp_path, "--ensemble", method)
    names = {name for stems in alone for name in stems}
    assert set(together) == names == {"vocals", "other", "drums", "bass", "instrumental"}
    for name in sorted(names):
        parts = [stems[name] for stems in alone if name in stems]
        expected = combine(np.stack(parts), axis=0)
        got = together[name]
        assert got.shape == expected.shape
        error = np.sum((got - expected) ** 2)
        sdr = 10 * np.log10(np.sum(expected ** 2) / max(error, 1e-30))
        assert sdr > 120, f"{method} {name} over {len(parts)} models: {sdr:.1f} dB"
    # The combination is not one model's stem: vocals come from three different models.
    assert not np.allclose(together["vocals"], alone[0]["vocals"])

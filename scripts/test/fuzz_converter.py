"""Fuzz the RoFormer converter's readers: the checkpoint reader (scripts/setup/torch_checkpoint.py)
and the YAML config parser (roformer.read_config), for SECONDS each.

Inputs are mutations of a small valid checkpoint (its pickle mutated and re-zipped, or the zip's
own bytes mutated) and of a real config. Every input must load or be refused with the readers'
own errors (`CheckpointError`, `Refused`); any other exception, or an input that takes over
5 s, is a finding, saved under fuzz/artifacts/converter/. Memory is capped at 4 GB, so an
allocation an input chooses shows up as a finding too. Prints the inputs run and the findings;
exits 1 when there are any.

    python scripts/test/fuzz_converter.py [SECONDS] [--seed N]
"""

import argparse
import io
import os
import random
import resource
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "setup"))
sys.path.insert(0, str(ROOT / "scripts" / "test"))
import roformer  # noqa: E402
import torch_checkpoint  # noqa: E402
from make_roformer_twin import save_checkpoint  # noqa: E402

CONFIG = """\
audio: {chunk_size: 8820, dim_f: 1024, dim_t: 21, hop_length: 441, n_fft: 2048, num_channels: 2, sample_rate: 44100}
model:
  dim: 16
  depth: 1
  stereo: true
  num_stems: 1
  time_transformer_depth: 1
  freq_transformer_depth: 1
  num_bands: 60
  dim_head: 8
  heads: 2
  sample_rate: 44100
  stft_n_fft: 2048
  stft_hop_length: 441
  multi_stft_resolutions_window_sizes: !!python/tuple [4096, 2048]
  mask_estimator_depth: 2
training: {instruments: [vocals, other], target_instrument: vocals}
inference: {dim_t: 21, num_overlap: 2}
anchors: &a [1, 2, 3]
again: *a
"""


def mutate(data, rng):
    data = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        kind = rng.randrange(6)
        at = rng.randrange(len(data) + 1)
        if kind == 0 and data:
            data[min(at, len(data) - 1)] ^= 1 << rng.randrange(8)
        elif kind == 1:
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif kind == 2 and data:
            del data[at:at + rng.randint(1, 16)]
        elif kind == 3 and data:
            data[min(at, len(data) - 1)] = rng.choice([0, 0xFF, 0x7F, 0x80, ord("("), ord("."),
                                                       ord("c"), ord("R"), ord("q"), ord("*"),
                                                       ord("&"), ord("!"), ord("[")])
        elif kind == 4 and len(data) > 4:
            start = rng.randrange(len(data) - 2)
            piece = data[start:start + rng.randint(1, 32)]
            data[at:at] = piece
        elif kind == 5:
            del data[at:]
    return bytes(data)


def fuzz(name, seeds, run, allowed, seconds, rng, out):
    end = time.monotonic() + seconds
    runs = findings = 0
    while time.monotonic() < end:
        data = mutate(rng.choice(seeds), rng)
        started = time.monotonic()
        try:
            run(data)
        except allowed:
            pass
        except Exception as e:  # anything else is what the fuzzer looks for
            findings += 1
            path = out / f"{name}-{findings}.bin"
            path.write_bytes(data)
            print(f"finding: {type(e).__name__}: {str(e)[:200]} -> {path}", file=sys.stderr)
        if time.monotonic() - started > 5:
            findings += 1
            path = out / f"{name}-slow-{findings}.bin"
            path.write_bytes(data)
            print(f"finding: {time.monotonic() - started:.1f} s -> {path}", file=sys.stderr)
        runs += 1
    print(f"{name}: {runs} inputs in {seconds} s, {findings} findings")
    return findings


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seconds", type=float, nargs="?", default=30)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"seed {seed}")
    out = ROOT / "fuzz" / "artifacts" / "converter"
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="fuzz-converter-"))

    good = work / "good.ckpt"
    state = {"a.weight": np.arange(12, dtype=np.float32).reshape(3, 4),
             "a.bias": np.ones(3, dtype=np.float32), "b": np.zeros((2, 2, 2), dtype=np.float32)}
    save_checkpoint(state, str(good))
    whole = good.read_bytes()
    with zipfile.ZipFile(good) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    pickle_name = next(n for n in members if n.endswith("data.pkl"))

    def rezip(pickled):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            for name, data in members.items():
                archive.writestr(name, pickled if name == pickle_name else data)
        return buffer.getvalue()

    target = work / "input.ckpt"

    def load_pickle(data):
        target.write_bytes(rezip(data))
        torch_checkpoint.plain(torch_checkpoint.load(target))

    def load_zip(data):
        target.write_bytes(data)
        torch_checkpoint.load(target)

    config = work / "input.yaml"

    def load_config(data):
        config.write_bytes(data)
        roformer.read_config(config)

    share = args.seconds / 3
    findings = fuzz("checkpoint-pickle", [members[pickle_name]], load_pickle,
                    torch_checkpoint.CheckpointError, share, rng, out)
    findings += fuzz("checkpoint-zip", [whole], load_zip, torch_checkpoint.CheckpointError,
                     share, rng, out)
    findings += fuzz("config", [CONFIG.encode()], load_config, roformer.Refused, share, rng, out)
    for path in work.iterdir():
        path.unlink()
    work.rmdir()
    sys.exit(1 if findings else 0)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()

"""Throughput of stemscribe.ray on a local two-node Ray cluster against the single-process CLI.

    python scripts/eval/bench_ray.py [--songs 8] [--seconds 180] [--model 2track_vocal]
                                [--binary target/release/stemscribe] [--work DIR]

Makes ``--songs`` inputs of ``--seconds`` each (tests/data/rock_mix.wav repeated, 16-bit WAV),
then times, on the same files and this machine:

1. ``stemscribe batch IN OUT --model M`` (one process, one engine, every core), and the same
   with ``--jobs 2 --threads 1`` (two files at a time, one thread each, as the Ray workers run);
2. ``stemscribe.ray.separate_files`` on a cluster of two Ray nodes started with ``ray start``
   on this machine (one CPU each, so one worker per node with one inference thread), through
   ``address=``, as on a real cluster. The cluster's start is timed apart; the run includes each
   worker loading its engine.

It prints songs per hour for both, the ratio, and what a catalogue of 100,000 songs of that
length would take on N machines of this kind at the measured rate. Needs the package built in
release (``maturin build --release`` and ``pip install`` the wheel, or ``maturin develop
--release``), ray, and the models from scripts/setup.sh.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import struct
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def make_inputs(folder: Path, songs: int, seconds: float) -> list[Path]:
    """``songs`` copies of the bundled rock mix, repeated to ``seconds`` (same WAV format)."""
    data = (ROOT / "tests/data/rock_mix.wav").read_bytes()
    chunks, offset = {}, 12
    while offset + 8 <= len(data):
        tag, size = data[offset : offset + 4], struct.unpack("<I", data[offset + 4 : offset + 8])[0]
        chunks[tag] = data[offset + 8 : offset + 8 + size]
        offset += 8 + size + (size & 1)
    fmt, samples = chunks[b"fmt "], chunks[b"data"]
    rate, block = struct.unpack("<I", fmt[4:8])[0], struct.unpack("<H", fmt[12:14])[0]
    wanted = int(seconds * rate) * block
    body = (samples * (wanted // len(samples) + 1))[:wanted]
    riff = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(body)) + body
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(songs):
        path = folder / f"song{index:03d}.wav"
        path.write_bytes(b"RIFF" + struct.pack("<I", len(riff)) + riff)
        paths.append(path)
    return paths


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--songs", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--model", default="2track_vocal")
    parser.add_argument("--binary", default=str(ROOT / "target/release/stemscribe"))
    parser.add_argument("--work", help="scratch folder (default: a temporary one, removed)")
    args = parser.parse_args()

    from stemscribe.ray import separate_files

    work = Path(args.work or tempfile.mkdtemp(prefix="stemscribe-bench-ray-"))
    inputs = make_inputs(work / "in", args.songs, args.seconds)
    audio_hours = args.songs * args.seconds / 3600
    print(f"{args.songs} songs of {args.seconds:.0f} s ({args.model}), {os.cpu_count()} cores")

    shutil.rmtree(work / "cli", ignore_errors=True)
    started = time.perf_counter()
    run([args.binary, "--quiet", "--device", "cpu", "batch", str(work / "in"), str(work / "cli"),
         "--model", args.model])
    cli = time.perf_counter() - started
    print(f"CLI batch (1 process, {os.cpu_count()} threads): {cli:.1f} s, "
          f"{args.songs / cli * 3600:.0f} songs/h, {audio_hours * 3600 / cli:.1f}x real time")
    shutil.rmtree(work / "cli2", ignore_errors=True)
    started = time.perf_counter()
    run([args.binary, "--quiet", "--device", "cpu", "--threads", "1", "batch", str(work / "in"),
         str(work / "cli2"), "--model", args.model, "--jobs", "2"])
    cli_jobs = time.perf_counter() - started
    print(f"CLI batch --jobs 2 --threads 1 (1 process): {cli_jobs:.1f} s, "
          f"{args.songs / cli_jobs * 3600:.0f} songs/h")

    ray_bin = str(Path(sys.executable).with_name("ray"))
    started = time.perf_counter()
    head = run([ray_bin, "start", "--head", "--num-cpus", "1", "--include-dashboard", "false",
                "--port", "6399", "--temp-dir", str(work / "ray"), "--disable-usage-stats"])
    ip = next(line.rsplit("Local node IP:", 1)[1].strip()
              for line in (head.stdout + head.stderr).splitlines() if "Local node IP:" in line)
    address = f"{ip}:6399"
    try:
        run([ray_bin, "start", "--address", address, "--num-cpus", "1", "--disable-usage-stats"])
        cluster_start = time.perf_counter() - started
        shutil.rmtree(work / "ray-out", ignore_errors=True)
        started = time.perf_counter()
        results = separate_files(inputs, work / "ray-out", model=args.model, address=address,
                                 device="cpu", progress=False)
        on_ray = time.perf_counter() - started
    finally:
        subprocess.run([ray_bin, "stop", "--force"], capture_output=True)
    failed = [r for r in results if r.status != "ok"]
    if failed:
        sys.exit(f"{len(failed)} files did not separate: {failed[0]}")
    nodes = len({r.worker for r in results})
    print(f"Ray, 2 nodes x 1 worker x 1 thread: {on_ray:.1f} s ({nodes} nodes took files; "
          f"cluster start {cluster_start:.1f} s apart), {args.songs / on_ray * 3600:.0f} songs/h, "
          f"{audio_hours * 3600 / on_ray:.1f}x real time")
    print(f"Ray / CLI throughput: {cli / on_ray:.2f} (against --jobs 2: {cli_jobs / on_ray:.2f})")

    per_song = on_ray / args.songs  # seconds of this machine per song, through Ray
    print(f"100,000 songs of {args.seconds:.0f} s at {per_song:.2f} s per song per machine "
          f"(this machine through Ray):")
    machine_hours = 100_000 * per_song / 3600
    print(f"  {machine_hours:.0f} machine-hours in all (plus {cluster_start:.0f} s to start the cluster)")
    for machines in (1, 10, 50, 100):
        print(f"  {machines:>3} machines: {machine_hours / machines:7.1f} h")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

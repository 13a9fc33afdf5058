"""stemscribe.ray on a local Ray cluster of two nodes (one CPU, so one worker, each) on this
machine.

Needs the runtime and models from scripts/setup.sh, and ray (python/requirements-test.txt).
"""

import csv
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import stemscribe

import ray  # noqa: E402  (python/requirements-test.txt installs it: a missing ray fails, never skips)
from ray.cluster_utils import Cluster  # noqa: E402

from stemscribe.ray import separate_files, transcribe_files  # noqa: E402
from test_api import read_float_wav  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "tests" / "data"


@pytest.fixture(scope="module")
def cluster():
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    nodes.add_node(num_cpus=1)
    yield nodes.address
    nodes.shutdown()


@pytest.fixture
def inputs(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ["rock_mix.wav", "speech_arctic_a0007.wav", "vocadito_1.flac"]:
        shutil.copy(DATA / name, folder / name)
    (folder / "broken.mp3").write_bytes(b"this is not audio")
    return sorted(folder.iterdir())


def statuses(results):
    return {Path(r.file).name: r.status for r in results}


def test_separate_files_on_two_workers_resumes_and_reports_failures(cluster, inputs, tmp_path):
    out = tmp_path / "out"
    results = separate_files(inputs, out, model="2track_vocal", address=cluster, progress=False)
    assert statuses(results) == {
        "broken.mp3": "failed",
        "rock_mix.wav": "ok",
        "speech_arctic_a0007.wav": "ok",
        "vocadito_1.flac": "ok",
    }
    assert "DecodeError" in next(r.error for r in results if r.status == "failed")
    assert len({r.worker for r in results}) == 2, "both workers took files"

    # The stems are what one in-process engine gives, written as --stems writes them.
    expected = stemscribe.Engine(device="cpu", separation_only=True).separate(DATA / "rock_mix.wav")
    for name, samples in expected.items():
        np.testing.assert_array_equal(read_float_wav(out / "rock_mix" / f"{name}.wav"), samples)
    assert json.loads((out / "rock_mix" / "stemscribe.json").read_text())["status"] == "ok"
    with open(out / "summary.csv", newline="") as summary:
        rows = list(csv.DictReader(summary))
    assert [(Path(r["file"]).name, r["status"]) for r in rows] == sorted(statuses(results).items())

    # A second run skips what is done and tries the failure again.
    seen = []
    again = separate_files(inputs, out, address=cluster, progress=lambda done, total: seen.append((done, total)))
    assert statuses(again) == {
        "broken.mp3": "failed",
        "rock_mix.wav": "skipped",
        "speech_arctic_a0007.wav": "skipped",
        "vocadito_1.flac": "skipped",
    }
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_transcribe_files_writes_notes_or_no_output(cluster, inputs, tmp_path):
    out = tmp_path / "out"
    results = transcribe_files(inputs, out, address=cluster, progress=False, summary=False)
    assert statuses(results) == {
        "broken.mp3": "failed",
        "rock_mix.wav": "ok",
        "speech_arctic_a0007.wav": "no_output",
        "vocadito_1.flac": "ok",
    }
    notes = json.loads((out / "vocadito_1" / "vocadito_1.json").read_text())
    local = stemscribe.Engine(device="cpu").transcribe(DATA / "vocadito_1.flac")
    assert notes == json.loads(local.to_json())
    assert (out / "vocadito_1" / "vocadito_1.mid").read_bytes()[:4] == b"MThd"
    assert not (out / "summary.csv").exists()


def test_the_default_progress_runs_without_tqdm_and_only_an_explicit_bar_needs_it(cluster, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # as after `pip install ./python ray`
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(b"this is not audio")
    results = separate_files([broken], tmp_path / "out", address=cluster)
    assert [r.status for r in results] == ["failed"]
    with pytest.raises(ImportError, match="pip install tqdm"):
        separate_files([broken], tmp_path / "refused", address=cluster, progress=True)
    with pytest.raises(ValueError, match="progress must be"):
        transcribe_files([broken], tmp_path / "refused", address=cluster, progress="yes")
    assert not (tmp_path / "refused").exists(), "refused before any work"


def test_inputs_that_would_share_a_folder_are_refused(tmp_path):
    (tmp_path / "a").mkdir()
    with pytest.raises(ValueError, match="song"):
        separate_files([tmp_path / "song.mp3", tmp_path / "a" / "song.wav"], tmp_path / "out", progress=False)


def worker_processes():
    """PIDs of the live stemscribe.ray workers on this machine (Ray titles them ray::_Worker)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            title = (entry / "cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if entry.name.isdigit() and title.startswith(b"ray::_Worker"):
            pids.append(int(entry.name))
    return pids


def test_a_worker_that_dies_is_replaced_and_its_file_reported(cluster, tmp_path):
    import os
    import signal

    folder = tmp_path / "in"
    folder.mkdir()
    for index in range(4):
        shutil.copy(DATA / "rock_mix.wav", folder / f"song{index}.wav")
    # Workers of earlier tests may linger while Ray reaps them: only this run's is killed.
    earlier = set(worker_processes())
    killed = []

    def kill_the_worker(done, total):
        if not killed:
            (pid,) = set(worker_processes()) - earlier
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    # One worker: it is killed when the first file is done, so the second file fails with it,
    # and the last two can only succeed on a replacement ("no worker left" otherwise).
    results = separate_files(sorted(folder.iterdir()), tmp_path / "out", address=cluster, workers=1,
                             progress=kill_the_worker)
    assert killed
    assert [(Path(r.file).name, r.status) for r in results] == [
        ("song0.wav", "ok"), ("song1.wav", "failed"), ("song2.wav", "ok"), ("song3.wav", "ok")]
    assert "the worker died" in results[1].error, results[1].error

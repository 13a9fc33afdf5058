"""The Python API: results, errors, progress, threads, and sameness with the command line.

Needs the runtime and models from scripts/setup.sh; ``STEMSCRIBE_BIN`` names the
``stemscribe`` binary to compare with (scripts/test/python.sh sets it).
"""

import json
import os
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import stemscribe

DATA = Path(__file__).resolve().parents[2] / "tests" / "data"
ROCK = DATA / "rock_mix.wav"
SPEECH = DATA / "speech_arctic_a0007.wav"
BINARY = os.environ.get("STEMSCRIBE_BIN", str(Path(__file__).resolve().parents[2] / "target/debug/stemscribe"))


@pytest.fixture(scope="module")
def engine():
    # The CPU, as the command line below runs, so that both load the same ONNX Runtime build.
    return stemscribe.Engine(device="cpu")


def run_cli(*args):
    result = subprocess.run([BINARY, "--device", "cpu", "--quiet", *map(str, args)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result


def read_float_wav(path):
    """Samples [channels, frames] of a 32-bit float WAV (plain or extensible)."""
    data = Path(path).read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    offset, channels, samples = 12, None, None
    while offset < len(data):
        tag, size = data[offset : offset + 4], struct.unpack("<I", data[offset + 4 : offset + 8])[0]
        body = data[offset + 8 : offset + 8 + size]
        if tag == b"fmt ":
            channels = struct.unpack("<H", body[2:4])[0]
            assert struct.unpack("<H", body[14:16])[0] == 32
        elif tag == b"data":
            samples = np.frombuffer(body, dtype="<f4")
        offset += 8 + size + (size & 1)
    return samples.reshape(-1, channels).T


def test_separate_returns_every_stem_as_float32_stereo(engine):
    stems = engine.separate(ROCK)
    assert list(stems) == ["vocals", "accompaniment"]
    four = engine.separate(ROCK, model="bs_4track_vocal")
    assert list(four) == ["vocals", "drums", "bass", "other"]
    for stem in [*stems.values(), *four.values()]:
        assert stem.dtype == np.float32
        assert stem.shape == stems["vocals"].shape and stem.shape[0] == 2
    assert stems["vocals"].shape[1] == round(3.0 * stemscribe.SAMPLE_RATE)


def test_stems_are_identical_to_the_command_line(engine, tmp_path):
    run_cli("separate", ROCK, "--stems", tmp_path)  # 32-bit float WAV
    for name, ours in engine.separate(ROCK).items():
        theirs = read_float_wav(tmp_path / f"{name}.wav")
        assert theirs.shape == ours.shape
        assert np.array_equal(theirs, ours), name


def test_notes_are_identical_to_the_command_line(engine, tmp_path):
    run_cli("midi", ROCK, "-o", tmp_path / "m.mid", "--json", tmp_path / "m.json")
    melody = engine.transcribe(ROCK)
    assert melody.track == "vocal" and 0.0 <= melody.confidence <= 1.0
    assert len(melody) == len(melody.notes) > 0
    assert json.loads(melody.to_json()) == json.loads((tmp_path / "m.json").read_text())
    melody.to_midi(tmp_path / "ours.mid")
    assert (tmp_path / "ours.mid").read_bytes() == (tmp_path / "m.mid").read_bytes()
    note = melody.notes[0]
    assert note.start < note.end and 1 <= note.velocity <= 127 and 20 < note.pitch < 110


def test_arrays_at_any_rate_and_channel_count(engine):
    rate = 22_050
    t = np.arange(2 * rate) / rate
    mono = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float64)
    stems = engine.separate(mono, sample_rate=rate)
    assert stems["vocals"].shape == (2, 2 * stemscribe.SAMPLE_RATE)
    with pytest.raises(ValueError, match="sample_rate"):
        engine.separate(mono)
    with pytest.raises(ValueError, match="sample_rate"):
        engine.separate(ROCK, sample_rate=rate)
    with pytest.raises(ValueError, match="channels, frames"):
        engine.separate(np.zeros((1, 2, 3)), sample_rate=rate)


def test_an_array_separates_as_its_file_does(engine):
    # rock_mix.wav is 32-bit float stereo at 44.1 kHz: as an array it is the same audio, so the
    # stems must be the same, channel for channel.
    samples = read_float_wav(ROCK)
    assert not np.array_equal(samples[0], samples[1]), "the two sides differ"
    from_file = engine.separate(ROCK)
    from_array = engine.separate(samples, sample_rate=stemscribe.SAMPLE_RATE)
    for name, stem in from_file.items():
        np.testing.assert_array_equal(from_array[name], stem, err_msg=name)


def test_every_error_is_a_python_exception_of_its_stage(engine, tmp_path):
    with pytest.raises(stemscribe.NoOutputError, match="no singing melody") as nothing:
        engine.transcribe(SPEECH)
    assert isinstance(nothing.value, stemscribe.StemscribeError)
    garbage = tmp_path / "garbage.mp3"
    garbage.write_bytes(b"not audio at all, not even close")
    with pytest.raises(stemscribe.DecodeError):
        engine.separate(garbage)
    with pytest.raises(stemscribe.DecodeError, match="missing.wav"):
        engine.separate(tmp_path / "missing.wav")
    with pytest.raises(ValueError, match="unknown model"):
        engine.separate(ROCK, model="5track")
    with pytest.raises(ValueError, match="unknown device"):
        stemscribe.Engine(device="gpu")
    with pytest.raises(stemscribe.ModelError, match="not found"):
        stemscribe.Engine(models_dir=tmp_path)
    separation_only = stemscribe.Engine(device="cpu", separation_only=True)
    with pytest.raises(stemscribe.ModelError, match="pitch tracker"):
        separation_only.transcribe(ROCK)


def test_progress_is_reported_and_a_failing_callback_stops_the_call(engine):
    seen = []
    engine.separate(ROCK, progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1][0] == seen[-1][1]
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)

    def broken(done, total):
        raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        engine.separate(ROCK, progress=broken)


def test_one_engine_serves_threads_at_once(engine):
    results = [None, None]

    def work(index):
        results[index] = engine.separate(ROCK)["vocals"]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert np.array_equal(results[0], results[1])


def test_save_stems_writes_every_format(engine, tmp_path):
    stems = engine.separate(ROCK)
    paths = stemscribe.save_stems(stems, tmp_path / "wav")
    assert [p.name for p in paths] == ["vocals.wav", "accompaniment.wav"]
    floats = stemscribe.save_stems(stems, tmp_path / "float", format="wav-float")
    assert np.array_equal(read_float_wav(floats[0]), stems["vocals"])
    for format in ["mp3", "aac"]:
        (path, _) = stemscribe.save_stems(stems, tmp_path / format, format=format, sample_rate=48_000, channels=1)
        assert path.suffix == f".{format}" and path.stat().st_size > 1000
    with pytest.raises(ValueError, match="unknown format"):
        stemscribe.save_stems(stems, tmp_path, format="flac")
    with pytest.raises(stemscribe.EncodeError, match="sample rate"):
        stemscribe.save_stems(stems, tmp_path, sample_rate=1)


def test_help_reads_well():
    assert "Engine" in stemscribe.__doc__
    assert stemscribe.Engine.separate.__doc__.strip().startswith("Every stem")
    assert issubclass(stemscribe.NoOutputError, stemscribe.StemscribeError)


def test_setup_verifies_offline_and_raises_setup_error(tmp_path, capsys):
    installed = Path(__file__).resolve().parents[2] / "models" / "installed"
    assert stemscribe.setup(dest=installed, cache=tmp_path / "cache") == installed
    assert "nothing to do" in capsys.readouterr().err
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    with pytest.raises(stemscribe.SetupError, match="a-file"):
        stemscribe.setup(dest=blocker / "models", cache=tmp_path / "cache", quiet=True)
    assert capsys.readouterr().err == ""
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [], "the scratch kit is removed"


def test_progress_true_draws_a_tqdm_bar(engine, capsys):
    import tqdm  # noqa: F401  (python/requirements-test.txt installs it: missing, this fails)
    engine.separate(ROCK, progress=True)
    assert "separating" in capsys.readouterr().err


def test_the_package_imports_without_its_optional_dependencies():
    # As after a bare `pip install ./python`: no tqdm, no Ray. The engine works without a bar;
    # only asking for one, or for stemscribe.ray, needs them, and says how to get them.
    script = f"""
import sys
sys.modules["tqdm"] = None
sys.modules["ray"] = None
import stemscribe
engine = stemscribe.Engine(device="cpu", separation_only=True)
assert set(engine.separate({str(ROCK)!r})) == {{"vocals", "accompaniment"}}
try:
    engine.separate({str(ROCK)!r}, progress=True)
except ImportError as error:
    assert "pip install tqdm" in str(error), error
else:
    raise AssertionError("progress=True without tqdm")
try:
    import stemscribe.ray
except ImportError as error:
    assert "pip install 'stemscribe[ray]'" in str(error), error
else:
    raise AssertionError("stemscribe.ray without ray")
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)

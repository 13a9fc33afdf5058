"""The singing decision's training script on a tiny made-up feature table: it runs end to end,
holds sources out together, and writes a model the engine's format accepts and that separates
what it was shown."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "train" / "fit_singing_decision.py"
sys.path.insert(0, str(SCRIPT.parent))
import fit_singing_decision as fit  # noqa: E402
import voice_frames  # noqa: E402

KINDS = ["sung", "speech", "rap", "instrumental"]
# The engine's features, as its bundled model lists them (a unit test of the engine checks that
# list against its own); the script reads them from the table's header.
FEATURES = json.loads((ROOT / "crates" / "stemscribe-transcribe" / "src" / "decision.json")
                      .read_text())["features"]


# Each class's frames: the envelope's second coefficient, and whether frames are voiced.
FRAME_CENTRES = {"sung": 8.0, "speech": -8.0, "rap": -8.0, "instrumental": 0.0}


def frames_table(path, kind, rng, count=60):
    """A clip's frames as `stemscribe-lab decision-features --frames` writes them: voiced
    frames whose envelope tells the class (see FRAME_CENTRES), a few unvoiced ones."""
    columns = (["seconds", "pitch_hz", "confidence", "loudness_db", "harmonic_db"]
               + [f"envelope_{k}" for k in range(1, 13)] + ["note", "mix_harmonic_db"])
    lines = [",".join(columns)]
    for t in range(count):
        envelope = rng.normal(0, 1, 12)
        envelope[1] += FRAME_CENTRES[kind]
        confidence = 0.9 if t % 10 else 0.1
        values = [t * 0.016, 220.0, confidence, -20 + rng.normal(), -23 + rng.normal(),
                  *envelope, -1, -22.0]
        lines.append(",".join(f"{v:.4f}" for v in values))
    path.write_text("\n".join(lines) + "\n")


def table(path, clips_per_source=6, sources_per_kind=5, seed=0):
    """Features drawn around one centre per class (held share high for singing, envelope
    change high for speech and rap, vocal level low for instrumentals), and each clip's frames
    in `frames/` beside `path`."""
    rng = np.random.default_rng(seed)
    centres = {kind: np.zeros(len(FEATURES)) for kind in KINDS}
    index = {name: i for i, name in enumerate(FEATURES)}
    centres["sung"][index["held_share"]] = 3
    centres["speech"][index["envelope_change_db"]] = 3
    centres["rap"][index["envelope_change_db"]] = 3
    centres["rap"][index["loudness_modulation"]] = 2
    centres["instrumental"][index["vocal_to_mix_db"]] = -3
    rows = []
    (path.parent / "frames").mkdir()
    for kind in KINDS:
        for s in range(sources_per_kind):
            for c in range(clips_per_source):
                frames_table(path.parent / "frames" / f"{kind}{s}-{c}.csv", kind, rng)
                values = centres[kind] + rng.normal(0, 0.5, len(FEATURES))
                rows.append({"file": f"{kind}{s}-{c}.wav", "kind": kind, "source": f"{kind} {s}",
                             "setting": "alone", "augmentation": "none", "seconds": "4.00",
                             "decision": "notes", "p_sung": 0, "p_spoken": 0,
                             "p_instrumental": 0,
                             **{name: f"{v:.4f}" for name, v in zip(FEATURES, values)}})
    rows[0]["log_seconds"] = "0.7"  # a 2 s clip
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return centres


def test_folds_hold_a_source_out_whole():
    sources = ["a", "a", "b", "c", "c", "c", "d"]
    folds = fit.folds_of(sources, 3, seed=1)
    for source in set(sources):
        assert len({f for f, s in zip(folds, sources) if s == source}) == 1


def test_the_script_writes_a_model_that_separates_its_classes(tmp_path):
    features = tmp_path / "features.csv"
    centres = table(features)
    model_path = tmp_path / "decision.json"
    run = subprocess.run([sys.executable, str(SCRIPT), str(features), "--frames",
                          str(tmp_path / "frames"), "--model", "softmax+frames", "--folds", "3",
                          "--write", str(model_path)],
                         capture_output=True, text=True, check=True)
    assert "## Held out: softmax+frames" in run.stdout
    assert "Reliability of the probability of singing" in run.stdout
    model = json.loads(model_path.read_text())
    # The frame network tells the classes' frames apart; its verdicts join their centres.
    network = model["frames"]
    frame_model = (np.array(network["mean"]), np.array(network["scale"]),
                   [(np.array(l["weights"]), np.array(l["bias"])) for l in network["layers"]])
    rng = np.random.default_rng(1)
    for kind in KINDS:
        frames_table(tmp_path / "probe.csv", kind, rng)
        inputs, owner = voice_frames.load(["probe.wav"], tmp_path)
        verdicts = voice_frames.clip_features(frame_model, inputs, owner, [0], 1)[0]
        assert (verdicts[0] > 0) == (kind == "sung"), (kind, verdicts)
        for name, value in zip(voice_frames.FEATURES, verdicts):
            centres[kind][FEATURES.index(name)] = value
    assert model["features"] == FEATURES
    assert model["classes"] == ["sung", "spoken", "instrumental"]
    assert 0 < model["threshold"] < 1
    layers = [(np.array(l["weights"]), np.array(l["bias"])) for l in model["layers"]]
    mean, scale = np.array(model["mean"]), np.array(model["scale"])
    for kind, target in [("sung", 0), ("speech", 1), ("rap", 1), ("instrumental", 2)]:
        p = fit.predict(layers, ((centres[kind] - mean) / scale)[None, :])[0]
        assert p.argmax() == target, (kind, p)
    # Singing itself is given notes at the written threshold; the others are not.
    p_sung = fit.predict(layers, ((centres["sung"] - mean) / scale)[None, :])[0, 0]
    assert p_sung >= model["threshold"]

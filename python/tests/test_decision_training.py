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

KINDS = ["sung", "speech", "rap", "instrumental"]
# The engine's features, as its bundled model lists them (a unit test of the engine checks that
# list against its own); the script reads them from the table's header.
FEATURES = json.loads((ROOT / "crates" / "stemscribe-transcribe" / "src" / "decision.json")
                      .read_text())["features"]


def table(path, clips_per_source=6, sources_per_kind=5, seed=0):
    """Features drawn around one centre per class (held share high for singing, envelope
    change high for speech and rap, vocal level low for instrumentals)."""
    rng = np.random.default_rng(seed)
    centres = {kind: np.zeros(len(FEATURES)) for kind in KINDS}
    index = {name: i for i, name in enumerate(FEATURES)}
    centres["sung"][index["held_share"]] = 3
    centres["speech"][index["envelope_change_db"]] = 3
    centres["rap"][index["envelope_change_db"]] = 3
    centres["rap"][index["loudness_modulation"]] = 2
    centres["instrumental"][index["vocal_to_mix_db"]] = -3
    rows = []
    for kind in KINDS:
        for s in range(sources_per_kind):
            for c in range(clips_per_source):
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
    run = subprocess.run([sys.executable, str(SCRIPT), str(features), "--model", "softmax",
                          "--folds", "3", "--write", str(model_path)],
                         capture_output=True, text=True, check=True)
    assert "## Held out: softmax" in run.stdout
    assert "Reliability of the probability of singing" in run.stdout
    model = json.loads(model_path.read_text())
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

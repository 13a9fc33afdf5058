"""Transcribes audio files with Basic Pitch (basic-pitch 0.4.0's own inference and note creation,
default thresholds) running the ONNX model `scripts/setup.sh` installed as
`models/installed/basic-pitch-nmp.onnx` (the wheel's `nmp.onnx`) and writes each result as the JSON note list that
`stemscribe midi --json` writes, so that `stemscribe-lab transcription` scores both alike.

Usage: basic_pitch_baseline.py OUT_DIR AUDIO...   (writes OUT_DIR/<stem>.basic-pitch.json)
"""

import json
import pathlib
import sys

from basic_pitch.inference import predict

MODEL = pathlib.Path(__file__).resolve().parents[2] / "models/installed/basic-pitch-nmp.onnx"


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    if not MODEL.is_file():
        sys.exit(f"{MODEL} is missing: run scripts/setup.sh")
    out_dir = pathlib.Path(sys.argv[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in sys.argv[2:]:
        path = pathlib.Path(name)
        _, _, events = predict(str(path), str(MODEL))
        events = sorted(events, key=lambda e: (e[0], e[2]))
        notes = [
            {
                "start": float(start),
                "end": float(end),
                "pitch": float(pitch),
                "velocity": max(1, min(127, round(127 * float(amplitude)))),
            }
            for start, end, pitch, amplitude, _ in events
        ]
        target = out_dir / f"{path.name.split('.')[0]}.basic-pitch.json"
        target.write_text(json.dumps({"midiList": notes, "track": "vocal", "confidence": 1.0}))
        print(f"wrote {target} ({len(notes)} notes)", file=sys.stderr)


if __name__ == "__main__":
    main()

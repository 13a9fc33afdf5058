"""Transcribes audio files with Basic Pitch (basic-pitch 0.4.0, its ONNX model `nmp.onnx` and its
own note creation, default thresholds) and writes each result as the JSON note list that
`stemscribe midi --json` writes, so that `stemscribe eval transcription` scores both alike.

Usage: basic_pitch_baseline.py OUT_DIR AUDIO...   (writes OUT_DIR/<stem>.basic-pitch.json)
"""

import json
import pathlib
import sys

from basic_pitch import ICASSP_2022_MODEL_PATH
from basic_pitch.inference import predict


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    if pathlib.Path(str(ICASSP_2022_MODEL_PATH)).suffix != ".onnx":
        sys.exit(f"expected Basic Pitch's ONNX model, got {ICASSP_2022_MODEL_PATH}")
    out_dir = pathlib.Path(sys.argv[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in sys.argv[2:]:
        path = pathlib.Path(name)
        _, _, events = predict(str(path))
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

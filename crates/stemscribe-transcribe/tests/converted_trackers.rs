//! The trackers converted from PyTorch (CREPE, PESTO, FCPE) against the numpy forward passes their
//! conversion scripts wrote beside them (a one-second glide from 220 to 330 Hz). Needs the
//! models from `scripts/setup.sh`.

use std::path::PathBuf;

use stemscribe_runtime::{Runtime, RuntimeConfig};
use stemscribe_transcribe::{CrepeCapacity, PitchModelSpec, PitchTracker};

fn read_f32(path: PathBuf) -> Vec<f32> {
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn check(spec: PitchModelSpec, dir: &str, window_frames: usize) {
    let runtime = Runtime::new(&RuntimeConfig::default()).unwrap();
    let reference = runtime.models_dir().join(dir);
    let input = read_f32(reference.join("input.f32"));
    let pitch = read_f32(reference.join("pitch.f32"));
    let confidence = read_f32(reference.join("confidence.f32"));
    let spec = PitchModelSpec {
        window_frames,
        ..spec
    };
    let hop = spec.hop;
    let tracker = PitchTracker::new(&runtime, spec).unwrap();
    let track = tracker.track(&input, &mut |_| {}).unwrap();
    // The reference has one more frame, centred on the last sample.
    assert_eq!(track.len(), input.len() / hop);
    assert_eq!(pitch.len(), track.len() + 1);
    let mut compared = 0;
    for t in 0..track.len() {
        // The tracker silences frames whose own hop is digital silence.
        let silent = input[t * hop..(t + 1) * hop].iter().all(|&s| s == 0.0);
        let expected = if silent { 0.0 } else { confidence[t] };
        assert!(
            (track.confidence[t] - expected).abs() < 1e-3,
            "frame {t}: confidence {} against {}",
            track.confidence[t],
            confidence[t]
        );
        if expected > 0.5 {
            let cents = 1200.0 * (f64::from(track.pitch_hz[t]) / f64::from(pitch[t])).log2();
            assert!(cents.abs() < 1.0, "frame {t}: {cents} cents off");
            compared += 1;
        }
    }
    // The glide is voiced after its silent tenth of a second.
    assert!(compared > track.len() * 3 / 4, "{compared} voiced frames");
}

#[test]
fn crepe_tiny_matches_its_reference_in_one_window() {
    check(
        PitchModelSpec::crepe(CrepeCapacity::Tiny),
        "crepe-tiny.reference",
        512,
    );
}

#[test]
fn crepe_tiny_matches_its_reference_in_small_windows() {
    check(
        PitchModelSpec::crepe(CrepeCapacity::Tiny),
        "crepe-tiny.reference",
        5,
    );
}

#[test]
fn crepe_full_matches_its_reference() {
    check(
        PitchModelSpec::crepe(CrepeCapacity::Full),
        "crepe-full.reference",
        24,
    );
}

#[test]
fn pesto_matches_its_reference_in_one_window() {
    check(PitchModelSpec::pesto(), "pesto.reference", 1024);
}

#[test]
fn pesto_matches_its_reference_in_small_windows() {
    check(PitchModelSpec::pesto(), "pesto.reference", 7);
}

/// FCPE's group norm spans its whole input, so it is checked in one window only.
#[test]
fn fcpe_matches_its_reference() {
    check(PitchModelSpec::fcpe(), "fcpe.reference", 3000);
}

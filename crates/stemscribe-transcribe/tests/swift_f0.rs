//! The SwiftF0 tracker on known signals. Needs the runtime and models from `scripts/setup.sh`.

use stemscribe_runtime::{Runtime, RuntimeConfig};
use stemscribe_transcribe::{PitchModelSpec, PitchTracker};

fn tracker(spec: PitchModelSpec) -> PitchTracker {
    let runtime = Runtime::new(&RuntimeConfig::default()).unwrap();
    PitchTracker::new(&runtime, spec).unwrap()
}

/// A sawtooth-like voice at `hz` (harmonics falling off), 16 kHz.
fn voice(hz: f64, secs: f64) -> Vec<f32> {
    (0..(secs * 16_000.0) as usize)
        .map(|i| {
            let t = i as f64 / 16_000.0;
            (1..=8)
                .map(|k| (2.0 * std::f64::consts::PI * hz * k as f64 * t).sin() / k as f64)
                .sum::<f64>() as f32
                * 0.2
        })
        .collect()
}

#[test]
fn finds_the_pitch_of_a_steady_tone() {
    let track = tracker(PitchModelSpec::swift_f0())
        .track(&voice(220.0, 2.0), &mut |_| {})
        .unwrap();
    assert_eq!(track.len(), 2 * 16_000 / 256);
    let voiced: Vec<f32> = track
        .pitch_hz
        .iter()
        .zip(&track.confidence)
        .filter(|(_, &c)| c >= 0.5)
        .map(|(&p, _)| p)
        .collect();
    assert!(voiced.len() > track.len() * 9 / 10, "{voiced:?}");
    for p in voiced {
        let cents = 1200.0 * (f64::from(p) / 220.0).log2();
        assert!(cents.abs() < 20.0, "{p} Hz");
    }
}

#[test]
fn windows_give_the_same_track_as_one_pass() {
    let signal: Vec<f32> = [voice(196.0, 1.3), voice(247.0, 1.4), vec![0.0; 4000]].concat();
    let whole = tracker(PitchModelSpec::swift_f0())
        .track(&signal, &mut |_| {})
        .unwrap();
    let small = PitchModelSpec {
        window_frames: 37,
        ..PitchModelSpec::swift_f0()
    };
    let small_tracker = tracker(small);
    let mut calls = 0;
    let windowed = small_tracker
        .track(&signal, &mut |p| {
            calls += 1;
            assert_eq!(p.done, calls);
        })
        .unwrap();
    assert_eq!(calls, small_tracker.windows(signal.len()));
    assert!(calls > 1);
    assert_eq!(whole.len(), windowed.len());
    for i in 0..whole.len() {
        assert!(
            (whole.confidence[i] - windowed.confidence[i]).abs() < 1e-3,
            "frame {i}"
        );
        if whole.confidence[i] >= 0.5 {
            assert!(
                (whole.pitch_hz[i] - windowed.pitch_hz[i]).abs() < 0.5,
                "frame {i}"
            );
        }
    }
}

#[test]
fn silence_is_unvoiced_and_tiny_inputs_give_one_frame() {
    let tracker = tracker(PitchModelSpec::swift_f0());
    for silence in [vec![], vec![0.0; 16_000]] {
        let track = tracker.track(&silence, &mut |_| {}).unwrap();
        assert_eq!(track.len(), (silence.len() / 256).max(1));
        assert!(track.confidence.iter().all(|&c| c == 0.0));
    }
    let track = tracker.track(&[0.3; 10], &mut |_| {}).unwrap();
    assert_eq!(track.len(), 1);
    assert!((0.0..=1.0).contains(&track.confidence[0]));
}

#[test]
fn a_last_window_shorter_than_the_look_ahead_is_tracked() {
    let tracker = tracker(PitchModelSpec::swift_f0());
    let spec = tracker.spec().clone();
    // Three frames (and a partial hop) after the first window: its look-ahead of ten frames
    // reaches past the end of the signal.
    let signal = voice(
        220.0,
        ((spec.window_frames + 3) * spec.hop + 100) as f64 / 16_000.0,
    );
    let track = tracker.track(&signal, &mut |_| {}).unwrap();
    assert_eq!(track.len(), signal.len() / spec.hop);
    // The frames of the short last window hear the voice as the others do: confident, within
    // 20 cents of 220 Hz (the first and last frames hear the signal's edges).
    let frames = track.len();
    for i in 2..frames - 2 {
        let cents = 1200.0 * (f64::from(track.pitch_hz[i]) / 220.0).log2();
        assert!(
            cents.abs() < 20.0,
            "frame {i} of {frames}: {} Hz",
            track.pitch_hz[i]
        );
        assert!(
            track.confidence[i] > 0.5,
            "frame {i}: {}",
            track.confidence[i]
        );
    }
}

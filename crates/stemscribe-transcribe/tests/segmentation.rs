//! Segmentation and note rules on synthetic pitch contours (no model needed).

use stemscribe_transcribe::{
    evidence, kept_segments, notes_from_track, segment, sung_notes, NoOutput, PitchTrack, Segment,
    TranscriptionOptions,
};

const PERIOD: f64 = 0.016;

/// Builds a contour from pieces of (seconds, pitch as a function of time within the piece,
/// level dB); `None` pitch is a rest (unvoiced, 40 dB quieter).
struct Contour(PitchTrack);

impl Contour {
    fn new() -> Self {
        Self(PitchTrack {
            frame_period: PERIOD,
            ..PitchTrack::default()
        })
    }

    fn sing(mut self, secs: f64, level_db: f32, pitch: impl Fn(f64) -> f64) -> Self {
        for i in 0..(secs / PERIOD).round() as usize {
            let midi = pitch(i as f64 * PERIOD);
            self.0
                .pitch_hz
                .push((440.0 * 2f64.powf((midi - 69.0) / 12.0)) as f32);
            self.0.confidence.push(0.95);
            self.0.loudness_db.push(level_db);
            self.0.harmonic_db.push(level_db);
        }
        self
    }

    /// A syllable change on one pitch: still voiced and as loud overall (the consonant's
    /// noise), but the harmonics drop by `dip_db`.
    fn consonant(mut self, secs: f64, level_db: f32, midi: f64, dip_db: f32) -> Self {
        self = self.sing(secs, level_db, |_| midi);
        let frames = (secs / PERIOD).round() as usize;
        let len = self.0.harmonic_db.len();
        for level in &mut self.0.harmonic_db[len - frames..] {
            *level -= dip_db;
        }
        self
    }

    fn rest(mut self, secs: f64) -> Self {
        for _ in 0..(secs / PERIOD).round() as usize {
            self.0.pitch_hz.push(120.0);
            self.0.confidence.push(0.02);
            self.0.loudness_db.push(-60.0);
            self.0.harmonic_db.push(-60.0);
        }
        self
    }
}

fn segments(contour: Contour) -> Vec<Segment> {
    segment(&contour.0, TranscriptionOptions::default().hold_secs)
}

fn secs(frame: usize) -> f64 {
    frame as f64 * PERIOD
}

#[test]
fn vibrato_stays_one_note_at_its_centre() {
    // ±60 cents at 5.5 Hz around a slightly flat D4.
    let contour = Contour::new().rest(0.2).sing(1.5, -20.0, |t| {
        61.8 + 0.6 * (2.0 * std::f64::consts::PI * 5.5 * t).sin()
    });
    let notes = segments(contour.rest(0.2));
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!((notes[0].pitch - 61.8).abs() < 0.15, "{notes:?}");
    assert!((secs(notes[0].start) - 0.2).abs() < 0.02);
    assert!((secs(notes[0].end) - 1.7).abs() < 0.02);
}

#[test]
fn glide_between_two_notes_splits_once_near_its_middle() {
    let contour = Contour::new()
        .sing(0.5, -20.0, |_| 60.0)
        .sing(0.12, -20.0, |t| 60.0 + 4.0 * t / 0.12)
        .sing(0.5, -20.0, |_| 64.0);
    let notes = segments(contour);
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!((notes[0].pitch - 60.0).abs() < 0.01);
    assert!((notes[1].pitch - 64.0).abs() < 0.01);
    assert_eq!(notes[0].end, notes[1].start, "legato: no gap");
    let boundary = secs(notes[1].start);
    assert!((0.5..=0.62).contains(&boundary), "split at {boundary}");
}

#[test]
fn repeated_notes_separated_by_a_breath_stay_apart() {
    let contour = Contour::new()
        .sing(0.4, -20.0, |_| 67.0)
        .rest(0.06)
        .sing(0.4, -20.0, |_| 67.0)
        .rest(0.06)
        .sing(0.4, -20.0, |_| 67.0);
    let notes = segments(contour);
    assert_eq!(notes.len(), 3, "{notes:?}");
    for pair in notes.windows(2) {
        assert!(
            pair[0].end < pair[1].start,
            "a rest between repeats: {notes:?}"
        );
    }
}

#[test]
fn syllables_on_one_pitch_split_where_the_harmonics_dip() {
    let syllables = |dip_db| {
        Contour::new()
            .sing(0.4, -20.0, |_| 64.0)
            .consonant(0.048, -20.0, 64.0, dip_db)
            .sing(0.4, -20.0, |_| 64.0)
    };
    let notes = segments(syllables(8.0));
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!((secs(notes[1].start) - 0.4).abs() < 0.05, "{notes:?}");
    // The same contour without the dip is one held note.
    assert_eq!(segments(syllables(0.0)).len(), 1);
}

#[test]
fn a_fading_tail_is_trimmed_from_the_note() {
    // A note whose last 240 ms sound 15 dB below the rest, on the same pitch.
    let contour = Contour::new()
        .rest(0.3)
        .sing(0.6, -20.0, |_| 64.0)
        .sing(0.24, -35.0, |_| 64.0)
        .rest(0.3);
    let melody = sung_notes(&contour.0, &TranscriptionOptions::default());
    assert_eq!(melody.len(), 1, "{melody:?}");
    assert!((melody[0].start - 0.3).abs() < 0.02, "{melody:?}");
    assert!((melody[0].end - 0.9).abs() < 0.02, "{melody:?}");
}

#[test]
fn rests_are_not_notes() {
    let contour = Contour::new()
        .rest(0.5)
        .sing(0.3, -20.0, |_| 57.0)
        .rest(1.0)
        .sing(0.3, -20.0, |_| 59.0)
        .rest(0.5);
    let notes = segments(contour);
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!((secs(notes[0].start) - 0.5).abs() < 0.02);
    assert!((secs(notes[1].start) - 1.8).abs() < 0.02);
}

#[test]
fn a_quick_ornament_does_not_become_a_note() {
    // A 48 ms grace note a semitone up, shorter than the hold time.
    let contour = Contour::new()
        .sing(0.4, -20.0, |_| 60.0)
        .sing(0.048, -20.0, |_| 61.0)
        .sing(0.4, -20.0, |_| 60.0);
    assert_eq!(segments(contour).len(), 1);
}

#[test]
fn notes_are_ordered_non_overlapping_and_not_too_short() {
    let mut contour = Contour::new();
    for i in 0..20 {
        let pitch = 55.0 + f64::from(i % 7);
        contour = contour
            .sing(
                0.05 + 0.03 * f64::from(i % 5),
                -20.0 - i as f32,
                move |_| pitch,
            )
            .rest(if i % 2 == 0 { 0.05 } else { 0.0 });
    }
    let options = TranscriptionOptions::default();
    let melody = sung_notes(&contour.0, &options);
    assert!(!melody.is_empty());
    for note in &melody {
        assert!(
            note.end - note.start >= options.min_note_secs - 1e-9,
            "{note:?}"
        );
        assert!((1..=127).contains(&note.velocity));
    }
    for pair in melody.windows(2) {
        assert!(pair[0].end <= pair[1].start, "{pair:?}");
    }
}

#[test]
fn velocity_follows_loudness() {
    let contour = Contour::new()
        .sing(0.5, -12.0, |_| 60.0)
        .rest(0.2)
        .sing(0.5, -42.0, |_| 62.0)
        .rest(0.2)
        .sing(0.5, -200.0, |_| 64.0);
    let melody = sung_notes(&contour.0, &TranscriptionOptions::default());
    let velocities: Vec<u8> = melody.iter().map(|n| n.velocity).collect();
    // Loudest 127; 30 dB below: 127 − 30 × 126/60 = 64; far below: 1.
    assert_eq!(velocities, vec![127, 64, 1]);
}

#[test]
fn silence_is_no_output() {
    let silent = Contour::new().rest(5.0);
    let refused = notes_from_track(&silent.0, &TranscriptionOptions::default());
    assert!(
        matches!(refused, Err(NoOutput::Instrumental { .. })),
        "{refused:?}"
    );
    let empty = PitchTrack {
        frame_period: PERIOD,
        ..PitchTrack::default()
    };
    assert!(notes_from_track(&empty, &TranscriptionOptions::default()).is_err());
}

#[test]
fn speech_like_gliding_pitch_holds_no_frame() {
    // Syllables of 150 ms whose pitch falls 4 semitones across each, as in speech.
    let mut contour = Contour::new();
    for i in 0..20 {
        let from = 52.0 + f64::from(i % 3);
        contour = contour
            .sing(0.15, -20.0, move |t| from - 4.0 * t / 0.15)
            .rest(0.05);
    }
    let options = TranscriptionOptions::default();
    let found = evidence(&contour.0, &kept_segments(&contour.0, &options));
    // 4 semitones in 150 ms is 1.3 semitones per 48 ms: no frame holds its pitch.
    // Whether it is sung is the decision's to say, and it reads the timbre too, which a bare
    // contour lacks: crates/stemscribe-engine/tests/decision.rs refuses synthesised speech.
    assert!(found.held_share < 0.05, "{found:?}");
}

#[test]
fn held_notes_with_vibrato_are_sung() {
    // ±40 cents at 5.5 Hz: the pitch swings but stays on its note.
    let contour = Contour::new()
        .sing(1.2, -20.0, |t| {
            64.0 + 0.4 * (2.0 * std::f64::consts::PI * 5.5 * t).sin()
        })
        .sing(1.2, -20.0, |t| {
            62.0 + 0.4 * (2.0 * std::f64::consts::PI * 5.5 * t).sin()
        });
    let options = TranscriptionOptions::default();
    let found = evidence(&contour.0, &kept_segments(&contour.0, &options));
    assert!(found.stable_share > 0.95, "{found:?}");
    assert!(found.held_share > 0.2, "{found:?}");
    let melody = sung_notes(&contour.0, &options);
    assert_eq!(melody.len(), 2, "{melody:?}");
}

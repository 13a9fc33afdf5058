//! Files from `to_smf` parse with midly and give back the notes they were written from.

use midly::{MetaMessage, MidiMessage, Smf, Timing, TrackEventKind};
use stemscribe_midi::{to_smf, Note, SmfOptions, Transcription, BEND_RANGE_SEMITONES};

fn transcription() -> Transcription {
    let mut notes = Vec::new();
    let mut t = 0.0123;
    for i in 0..40 {
        let pitch = 48.0 + f64::from(i % 13) + f64::from(i % 7) * 0.07 - 0.2;
        let length = 0.08 + f64::from(i % 5) * 0.137;
        notes.push(Note {
            start: t,
            end: t + length,
            pitch,
            velocity: (20 + 2 * i) as u8,
        });
        // Some notes touch the next one, some leave a rest.
        t += length + if i % 3 == 0 { 0.0 } else { 0.0317 };
    }
    notes.push(Note {
        start: 595.4321,
        end: 599.9,
        pitch: 60.0,
        velocity: 127,
    });
    Transcription {
        notes,
        confidence: 0.9,
    }
}

/// Notes read back: (start s, end s, key + bend in semitones, velocity), and the track name.
fn read_back(bytes: &[u8]) -> (Vec<(f64, f64, f64, u8)>, String) {
    let smf = Smf::parse(bytes).expect("a valid file");
    assert_eq!(smf.tracks.len(), 1);
    let Timing::Metrical(ticks_per_beat) = smf.header.timing else {
        panic!("metrical timing expected");
    };
    let mut micros_per_beat = 500_000.0;
    let mut tick = 0u64;
    let mut bend = 0.0;
    let mut name = String::new();
    let mut open: Option<(f64, u8, f64, u8)> = None;
    let mut notes = Vec::new();
    for event in &smf.tracks[0] {
        tick += u64::from(event.delta.as_int());
        let seconds = tick as f64 * micros_per_beat / 1e6 / f64::from(ticks_per_beat.as_int());
        match event.kind {
            TrackEventKind::Meta(MetaMessage::TrackName(bytes)) => {
                name = String::from_utf8(bytes.to_vec()).expect("utf-8");
            }
            TrackEventKind::Meta(MetaMessage::Tempo(t)) => micros_per_beat = f64::from(t.as_int()),
            TrackEventKind::Midi { message, .. } => match message {
                MidiMessage::PitchBend { bend: b } => {
                    bend = f64::from(b.as_f32()) * f64::from(BEND_RANGE_SEMITONES);
                }
                MidiMessage::NoteOn { key, vel } if vel.as_int() > 0 => {
                    assert!(open.is_none(), "overlapping notes at {seconds}");
                    open = Some((seconds, key.as_int(), bend, vel.as_int()));
                }
                MidiMessage::NoteOff { key, .. } | MidiMessage::NoteOn { key, .. } => {
                    let (start, on_key, on_bend, vel) = open.take().expect("a note is on");
                    assert_eq!(on_key, key.as_int());
                    notes.push((start, seconds, f64::from(on_key) + on_bend, vel));
                }
                _ => {}
            },
            _ => {}
        }
    }
    assert!(open.is_none());
    (notes, name)
}

#[test]
fn notes_round_trip_within_two_milliseconds_and_one_cent() {
    let input = transcription();
    let (notes, name) = read_back(&to_smf(&input, &SmfOptions::default()));
    assert_eq!(name, "vocal");
    assert_eq!(notes.len(), input.notes.len());
    for (got, want) in notes.iter().zip(&input.notes) {
        assert!((got.0 - want.start).abs() <= 0.002, "{got:?} vs {want:?}");
        assert!((got.1 - want.end).abs() <= 0.002, "{got:?} vs {want:?}");
        assert!((got.2 - want.pitch).abs() <= 0.01, "{got:?} vs {want:?}");
        assert_eq!(got.3, want.velocity);
    }
}

#[test]
fn without_bends_notes_sit_on_the_nearest_key() {
    let input = transcription();
    let options = SmfOptions { pitch_bend: false };
    let (notes, _) = read_back(&to_smf(&input, &options));
    assert_eq!(notes.len(), input.notes.len());
    for (got, want) in notes.iter().zip(&input.notes) {
        assert_eq!(got.2, want.pitch.round());
    }
}

#[test]
fn empty_and_odd_inputs_still_make_valid_files() {
    let empty = Transcription {
        notes: Vec::new(),
        confidence: 0.0,
    };
    assert!(read_back(&to_smf(&empty, &SmfOptions::default()))
        .0
        .is_empty());
    let odd = Transcription {
        notes: vec![Note {
            start: 1.0,
            end: 1.0,
            pitch: 140.0,
            velocity: 0,
        }],
        confidence: 0.5,
    };
    let (notes, _) = read_back(&to_smf(&odd, &SmfOptions::default()));
    assert_eq!(notes.len(), 1);
    assert!(notes[0].1 > notes[0].0, "a zero-length note lasts one tick");
    assert_eq!(notes[0].3, 1, "velocity 0 would be a note-off");
}

//! The invoke API's JSON result: `{"midiList": [{start, end, pitch, velocity}, ...],
//! "track": "vocal", "confidence": x}`, numbers written as the service writes them (32-bit
//! floats).

use serde::{Deserialize, Serialize};

use crate::{MidiError, Note, Transcription, TRACK_NAME};

#[derive(Serialize, Deserialize)]
struct WireNote {
    start: f32,
    end: f32,
    pitch: f32,
    velocity: u8,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireTranscription {
    midi_list: Vec<WireNote>,
    track: String,
    confidence: f32,
}

/// The JSON text of `transcription`.
pub fn to_json(transcription: &Transcription) -> String {
    let wire = WireTranscription {
        midi_list: transcription
            .notes
            .iter()
            .map(|note| WireNote {
                start: note.start as f32,
                end: note.end as f32,
                pitch: note.pitch as f32,
                velocity: note.velocity,
            })
            .collect(),
        track: TRACK_NAME.to_owned(),
        confidence: transcription.confidence as f32,
    };
    // A struct of numbers, strings and lists always serialises.
    serde_json::to_string(&wire).unwrap_or_default()
}

/// Reads a JSON note list such as [`to_json`] writes, checking every note.
pub fn from_json(text: &str) -> Result<Transcription, MidiError> {
    let wire: WireTranscription = serde_json::from_str(text)?;
    let notes = wire
        .midi_list
        .into_iter()
        .enumerate()
        .map(|(index, note)| {
            let invalid = |reason| MidiError::InvalidNote { index, reason };
            if !(note.start.is_finite() && note.end.is_finite() && note.start >= 0.0) {
                return Err(invalid("times must be finite and not negative"));
            }
            if note.end < note.start {
                return Err(invalid("it ends before it starts"));
            }
            if !(note.pitch.is_finite() && (0.0..=128.0).contains(&note.pitch)) {
                return Err(invalid("pitch must be a MIDI note number in 0..=128"));
            }
            Ok(Note {
                start: f64::from(note.start),
                end: f64::from(note.end),
                pitch: f64::from(note.pitch),
                velocity: note.velocity,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Transcription {
        notes,
        confidence: f64::from(wire.confidence),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Transcription {
        Transcription {
            notes: vec![
                Note {
                    start: 1.4164172,
                    end: 1.7531066,
                    pitch: 54.787903,
                    velocity: 100,
                },
                Note {
                    start: 2.0,
                    end: 2.5,
                    pitch: 57.0,
                    velocity: 64,
                },
            ],
            confidence: 0.8626614,
        }
    }

    #[test]
    fn writes_the_api_shape() {
        let text = to_json(&example());
        assert_eq!(
            text,
            r#"{"midiList":[{"start":1.4164172,"end":1.7531066,"pitch":54.787903,"velocity":100},{"start":2.0,"end":2.5,"pitch":57.0,"velocity":64}],"track":"vocal","confidence":0.8626614}"#
        );
    }

    #[test]
    fn round_trips() {
        let back = from_json(&to_json(&example())).expect("valid");
        assert_eq!(back.notes.len(), 2);
        for (a, b) in back.notes.iter().zip(&example().notes) {
            assert!((a.start - b.start).abs() < 1e-6);
            assert!((a.pitch - b.pitch).abs() < 1e-5);
            assert_eq!(a.velocity, b.velocity);
        }
    }

    #[test]
    fn empty_list_is_valid() {
        let back = from_json(r#"{"midiList":[],"track":"vocal","confidence":0}"#).expect("valid");
        assert!(back.notes.is_empty());
    }

    #[test]
    fn rejects_bad_notes() {
        let backwards = r#"{"midiList":[{"start":2,"end":1,"pitch":60,"velocity":1}],"track":"vocal","confidence":1}"#;
        assert!(matches!(
            from_json(backwards),
            Err(MidiError::InvalidNote { index: 0, .. })
        ));
        assert!(matches!(
            from_json("{\"midiList\": 3}"),
            Err(MidiError::Json(_))
        ));
        assert!(matches!(from_json(""), Err(MidiError::Json(_))));
    }
}

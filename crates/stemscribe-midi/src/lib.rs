//! Sung notes and the two ways the MIDI service returns them: a Standard MIDI File
//! ([`to_smf`]) and the invoke API's JSON note list ([`to_json`], read back by
//! [`from_json`]).

mod json;
mod smf;

pub use json::{from_json, to_json};
pub use smf::{to_smf, SmfOptions, BEND_RANGE_SEMITONES, TEMPO_MICROS_PER_BEAT, TICKS_PER_BEAT};

use thiserror::Error;

/// The name of the one track both formats carry.
pub const TRACK_NAME: &str = "vocal";

/// One sung note.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Note {
    /// Onset in seconds from the start of the input.
    pub start: f64,
    /// Offset in seconds; after `start`.
    pub end: f64,
    /// The note's central sung pitch as a fractional MIDI note number (69.0 = A4 = 440 Hz).
    pub pitch: f64,
    /// MIDI velocity 1-127 from the note's loudness.
    pub velocity: u8,
}

impl Note {
    /// The pitch in Hz.
    pub fn pitch_hz(&self) -> f64 {
        440.0 * 2f64.powf((self.pitch - 69.0) / 12.0)
    }
}

/// The notes of one voice, in time order, with how sure the transcriber is of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcription {
    /// Notes in time order, none overlapping.
    pub notes: Vec<Note>,
    /// In [0, 1]: how much the voice holds notes rather than gliding (the mean of the share of
    /// voiced audio within 50 cents of a note and the share that holds its pitch over 48 ms).
    pub confidence: f64,
}

/// A note list that cannot be read.
#[derive(Debug, Error)]
pub enum MidiError {
    /// The JSON text is not a note list of the invoke API's shape.
    #[error("not a note list: {0}")]
    Json(#[from] serde_json::Error),
    /// A note has times or a pitch that make no sense.
    #[error("note {index} is invalid: {reason}")]
    InvalidNote {
        /// Its position in the list.
        index: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
}

//! Vocal melody transcription: a neural F0 tracker ([`PitchTracker`], run through ONNX
//! Runtime) gives a pitch contour of the separated voice, [`segment`] splits it into notes
//! and rests, and [`notes_from_track`] turns those into the service's notes, or into
//! [`NoOutput`] when nothing is sung.

mod notes;
mod pitch;
mod segment;

pub use notes::{
    evidence, kept_segments, notes_from_track, notes_with_evidence, Evidence, TranscriptionOptions,
};
pub use pitch::{
    CrepeCapacity, PitchModel, PitchModelSpec, PitchTrack, PitchTracker, UnknownPitchModel,
};
pub use segment::{segment, Segment};
pub use stemscribe_midi::{Note, Transcription};

use stemscribe_audio::{Audio, AudioError};
use stemscribe_runtime::{Runtime, RuntimeError};
use thiserror::Error;

/// How far a long task has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Steps done.
    pub done: usize,
    /// Steps in all.
    pub total: usize,
}

/// Why there are no notes: the API's `40000010 InvalidData:NoOutput`.
#[derive(Debug, Clone, Copy, PartialEq, Error)]
pub enum NoOutput {
    /// Too little of the audio is sung on stable pitches (instrumental music, silence).
    #[error("no singing melody found: {sung_secs:.1} s of sung notes")]
    NoMelody {
        /// Seconds covered by notes.
        sung_secs: f64,
    },
    /// The voice glides like speech instead of holding notes (speech, rap).
    #[error("no singing melody found: the voice speaks or raps (confidence {confidence:.2})")]
    NotSung {
        /// The share of voiced audio that stable notes explain.
        confidence: f64,
    },
}

/// Why transcription failed.
#[derive(Debug, Error)]
pub enum TranscriptionError {
    /// The runtime or the model file could not be loaded.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The ONNX file does not have the tensors its spec describes.
    #[error("model {file} does not match its description: {reason}")]
    ModelMismatch {
        /// The model file.
        file: String,
        /// What differs.
        reason: String,
    },
    /// ONNX Runtime failed while running the model.
    #[error("inference failed: {0}")]
    Inference(String),
    /// The voice could not be converted to the model's rate.
    #[error(transparent)]
    Audio(#[from] AudioError),
    /// There is no sung melody.
    #[error(transparent)]
    NoOutput(#[from] NoOutput),
}

impl From<ort::Error> for TranscriptionError {
    fn from(error: ort::Error) -> Self {
        Self::Inference(error.to_string())
    }
}

/// A loaded pitch tracker with its note rules, shareable across threads.
#[derive(Debug)]
pub struct Transcriber {
    tracker: PitchTracker,
    options: TranscriptionOptions,
}

impl Transcriber {
    /// Loads the F0 model `spec` describes.
    pub fn new(
        runtime: &Runtime,
        spec: PitchModelSpec,
        options: TranscriptionOptions,
    ) -> Result<Self, TranscriptionError> {
        Ok(Self {
            tracker: PitchTracker::new(runtime, spec)?,
            options,
        })
    }

    /// The loaded F0 model.
    pub fn tracker(&self) -> &PitchTracker {
        &self.tracker
    }

    /// The pitch contour of `voice` (any rate and channel count; channels are averaged).
    pub fn track(
        &self,
        voice: &Audio,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<PitchTrack, TranscriptionError> {
        let mono = voice
            .clone()
            .remix(1)?
            .resample(self.tracker.spec().sample_rate)?;
        self.tracker.track(mono.channel(0), progress)
    }

    /// The notes `voice` sings, or [`TranscriptionError::NoOutput`].
    pub fn transcribe(
        &self,
        voice: &Audio,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Transcription, TranscriptionError> {
        let track = self.track(voice, progress)?;
        Ok(notes_from_track(&track, &self.options)?)
    }
}

//! Vocal melody transcription: a neural F0 tracker ([`PitchTracker`], run through ONNX
//! Runtime) gives a pitch contour of the separated voice, [`segment`] splits it into notes
//! and rests, and [`notes_from_track`] turns those into the service's notes, or into
//! [`NoOutput`] when nothing is sung.

mod harmonics;
mod notes;
mod pitch;
mod segment;

pub use harmonics::{harmonic_levels_db, MAX_HARMONIC_HZ};
pub use notes::{
    evidence, kept_segments, notes_from_track, notes_with_evidence, Evidence, TranscriptionOptions,
};
pub use pitch::{
    CrepeCapacity, PitchModel, PitchModelSpec, PitchTrack, PitchTracker, TrackPitch,
    UnknownPitchModel,
};
pub use segment::{segment, Segment};
pub use stemscribe_midi::{Note, Transcription};
pub use stemscribe_runtime::Progress;

use stemscribe_audio::{Audio, AudioError};
use stemscribe_runtime::{Runtime, RuntimeError};
use thiserror::Error;

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
        /// How much the voice holds notes ([`Evidence::confidence`]).
        confidence: f64,
    },
}

/// Why transcription failed.
#[derive(Debug, Error)]
pub enum TranscriptionError {
    /// The runtime or the model could not be loaded or run, or its tensors are not what its
    /// spec says.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The voice could not be converted to the model's rate.
    #[error(transparent)]
    Audio(#[from] AudioError),
    /// There is no sung melody.
    #[error(transparent)]
    NoOutput(#[from] NoOutput),
}

/// A loaded pitch tracker with its note rules, shareable across threads.
#[derive(Debug)]
pub struct Transcriber {
    tracker: Box<dyn TrackPitch>,
    options: TranscriptionOptions,
}

impl Transcriber {
    /// Loads the F0 model `spec` describes.
    pub fn new(
        runtime: &Runtime,
        spec: PitchModelSpec,
        options: TranscriptionOptions,
    ) -> Result<Self, TranscriptionError> {
        Ok(Self::with_tracker(
            Box::new(PitchTracker::new(runtime, spec)?),
            options,
        ))
    }

    /// Transcribes with any pitch tracker (a test double, say).
    pub fn with_tracker(tracker: Box<dyn TrackPitch>, options: TranscriptionOptions) -> Self {
        Self { tracker, options }
    }

    /// The loaded F0 tracker.
    pub fn tracker(&self) -> &dyn TrackPitch {
        self.tracker.as_ref()
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
            .resample(self.tracker.sample_rate())?;
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

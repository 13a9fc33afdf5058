//! Vocal melody transcription: a neural F0 tracker ([`PitchTracker`], run through ONNX
//! Runtime) gives a pitch contour of the separated voice, [`segment`] splits it into notes
//! and rests, and [`notes_from_track`] turns those into the service's notes, or into
//! [`NoOutput`] when nothing is sung.

mod decision;
mod envelope;
mod harmonics;
mod notes;
mod pitch;
mod segment;
mod spectrum;

pub use decision::{
    ClassProbabilities, DecisionFeatures, DecisionModel, DecisionModelError, FrameNetwork,
    VoiceClass, FEATURE_NAMES, FRAME_INPUTS, UNVOICED_COEFFICIENTS,
};
pub use envelope::{envelope_db, envelope_distance_db, ENVELOPE_COEFFICIENTS};
pub use harmonics::{harmonic_levels_db, MAX_HARMONIC_HZ};
pub use notes::{
    evidence, kept_segments, notes_from_track, notes_with_decision, sung_notes, Decision, Evidence,
    TranscriptionOptions,
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
    /// No voice: instrumental music, noise or silence.
    #[error("no singing melody found: no voice sings here (probability of singing {singing:.2})")]
    Instrumental {
        /// The decision's probability of singing.
        singing: f64,
    },
    /// A voice speaks or raps.
    #[error(
        "no singing melody found: the voice speaks or raps (probability of singing {singing:.2})"
    )]
    Spoken {
        /// The decision's probability of singing.
        singing: f64,
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

    /// The note rules.
    pub fn options(&self) -> &TranscriptionOptions {
        &self.options
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

    /// The notes `voice` sings, or [`TranscriptionError::NoOutput`]. `vocal_to_mix_db` is
    /// the level of `voice` against the input it was separated from ([`vocal_to_mix_db`]),
    /// `None` for an isolated voice.
    pub fn transcribe(
        &self,
        voice: &Audio,
        vocal_to_mix_db: Option<f64>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Transcription, TranscriptionError> {
        let track = self.track(voice, progress)?;
        Ok(notes_with_decision(&track, &self.options, vocal_to_mix_db).1?)
    }
}

/// The level of a separated `voice` against the `mix` it came from, in dB (RMS over all
/// channels; −240 dB for silence).
pub fn vocal_to_mix_db(voice: &Audio, mix: &Audio) -> f64 {
    let rms = |audio: &Audio| {
        let (sum, count) = audio.channels().iter().fold((0.0f64, 0usize), |(s, n), c| {
            (
                s + c.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>(),
                n + c.len(),
            )
        });
        (sum / count.max(1) as f64).sqrt()
    };
    20.0 * (rms(voice).max(1e-12) / rms(mix).max(1e-12)).log10()
}

//! The facade embedders, the command line and the server call. An [`Engine`] loads ONNX
//! Runtime and the models once and is then shared (`Send + Sync`) across any number of
//! requests; the free functions re-exported here decode inputs and encode outputs.
//!
//! ```no_run
//! use stemscribe_engine::{
//!     decode_file, to_smf, DecodeOptions, Engine, EngineConfig, SeparationModel, SmfOptions,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Engine::new(&EngineConfig::default())?;
//! let song = decode_file("song.mp3".as_ref(), &DecodeOptions::default())?;
//! let vocals = engine.separate(&song, SeparationModel::TwoTrackVocal, &mut |_| {})?;
//! assert_eq!(vocals.frames(), song.frames());
//! let melody = engine.transcribe(&song, &mut |_| {})?;
//! std::fs::write("song.mid", to_smf(&melody, &SmfOptions::default()))?;
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

pub use stemscribe_audio::{Audio, AudioError, PROCESSING_RATE};
pub use stemscribe_decode::{
    decode, decode_file, decode_native, decode_raw_pcm, probe_duration_secs, DecodeError,
    DecodeOptions, RawPcm,
};
pub use stemscribe_encode::{
    encode, encode_to_vec, EncodeError, EncodeReport, OutputFormat, OutputSpec, UnknownFormat,
    WavSampleFormat,
};
pub use stemscribe_midi::{from_json, to_json, to_smf, MidiError, Note, SmfOptions, Transcription};
pub use stemscribe_runtime::{Runtime, RuntimeConfig, RuntimeError};
pub use stemscribe_separate::{
    HighBand, ModelSpec, Progress, SeparationError, SeparationOptions, Separator,
};
pub use stemscribe_transcribe::{
    NoOutput, PitchModelSpec, PitchTrack, Transcriber, TranscriptionError, TranscriptionOptions,
};

/// Any failure of the engine, by stage.
#[derive(Debug, Error)]
pub enum EngineError {
    /// ONNX Runtime or a model file could not be loaded.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The input could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Separation failed.
    #[error(transparent)]
    Separation(#[from] SeparationError),
    /// The output could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// Transcription failed.
    #[error(transparent)]
    Transcription(TranscriptionError),
    /// Nothing is sung: the API's `40000010 InvalidData:NoOutput`.
    #[error(transparent)]
    NoOutput(#[from] NoOutput),
}

impl From<TranscriptionError> for EngineError {
    fn from(error: TranscriptionError) -> Self {
        match error {
            TranscriptionError::NoOutput(reason) => Self::NoOutput(reason),
            other => Self::Transcription(other),
        }
    }
}

/// The separation models of the invoke API that this engine serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeparationModel {
    /// `2track_vocal`: the vocals of a 2-stem split.
    TwoTrackVocal,
    /// `2track_acc`: the accompaniment of a 2-stem split.
    TwoTrackAcc,
}

impl SeparationModel {
    /// Every model, in documentation order.
    pub const ALL: [Self; 2] = [Self::TwoTrackVocal, Self::TwoTrackAcc];

    /// The API name (`2track_vocal`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::TwoTrackVocal => "2track_vocal",
            Self::TwoTrackAcc => "2track_acc",
        }
    }

    /// The stem this model returns.
    pub fn stem(self) -> &'static str {
        match self {
            Self::TwoTrackVocal => "vocals",
            Self::TwoTrackAcc => "accompaniment",
        }
    }
}

impl fmt::Display for SeparationModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A model name that is not one of [`SeparationModel::ALL`].
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("unknown model `{0}` (known: 2track_vocal, 2track_acc)")]
pub struct UnknownModel(pub String);

impl FromStr for SeparationModel {
    type Err = UnknownModel;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| UnknownModel(name.to_owned()))
    }
}

/// One separated source.
#[derive(Debug, Clone, PartialEq)]
pub struct Stem {
    /// Its name (`vocals`, `accompaniment`).
    pub name: String,
    /// 44.1 kHz stereo, as long as the input.
    pub audio: Audio,
}

/// How to build an [`Engine`].
#[derive(Debug, Clone, Default)]
pub struct EngineConfig {
    /// Where the runtime and the models are, and how many threads to use.
    pub runtime: RuntimeConfig,
    /// Separation choices; the default is the best measured.
    pub separation: SeparationOptions,
    /// Note rules for transcription.
    pub transcription: TranscriptionOptions,
}

/// Loaded models, ready to serve requests from any thread.
#[derive(Debug)]
pub struct Engine {
    two_stems: Separator,
    separation: SeparationOptions,
    transcriber: Transcriber,
}

impl Engine {
    /// Loads ONNX Runtime, the 2-stem model and the F0 model.
    pub fn new(config: &EngineConfig) -> Result<Self, EngineError> {
        let runtime = Runtime::new(&config.runtime)?;
        let two_stems = Separator::new(&runtime, ModelSpec::spleeter_2stems())?;
        let transcriber =
            Transcriber::new(&runtime, PitchModelSpec::swift_f0(), config.transcription)?;
        Ok(Self {
            two_stems,
            separation: config.separation,
            transcriber,
        })
    }

    /// The sung melody of 44.1 kHz stereo `audio`: its vocals are separated, then
    /// transcribed. Progress counts separation windows, then pitch-tracking windows.
    pub fn transcribe(
        &self,
        audio: &Audio,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Transcription, EngineError> {
        let pitch_windows = self.transcriber.tracker().windows(
            (audio.duration_secs() * f64::from(self.transcriber.tracker().spec().sample_rate))
                as usize,
        );
        let mut separated = 0;
        let vocals = self.separate(audio, SeparationModel::TwoTrackVocal, &mut |p| {
            separated = p.total;
            progress(Progress {
                done: p.done,
                total: p.total + pitch_windows,
            });
        })?;
        Ok(self.transcriber.transcribe(&vocals, &mut |p| {
            progress(Progress {
                done: separated + p.done,
                total: separated + p.total,
            })
        })?)
    }

    /// The sung melody of `voice`, an isolated voice at any rate (no separation).
    pub fn transcribe_voice(
        &self,
        voice: &Audio,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Transcription, EngineError> {
        Ok(self.transcriber.transcribe(voice, &mut |p| {
            progress(Progress {
                done: p.done,
                total: p.total,
            })
        })?)
    }

    /// Separates 44.1 kHz stereo `audio` into every stem of `model`'s family.
    pub fn separate_all(
        &self,
        audio: &Audio,
        model: SeparationModel,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<Stem>, EngineError> {
        let separator = self.separator(model);
        let stems = separator.separate(audio, &self.separation, progress)?;
        Ok(separator
            .spec()
            .stems
            .iter()
            .zip(stems)
            .map(|(name, audio)| Stem {
                name: name.clone(),
                audio,
            })
            .collect())
    }

    /// Separates 44.1 kHz stereo `audio` and returns the stem `model` names.
    pub fn separate(
        &self,
        audio: &Audio,
        model: SeparationModel,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Audio, EngineError> {
        let stems = self.separate_all(audio, model, progress)?;
        let wanted = model.stem();
        stems
            .into_iter()
            .find(|s| s.name == wanted)
            .map(|s| s.audio)
            .ok_or_else(|| {
                SeparationError::ModelMismatch {
                    file: self.separator(model).spec().file.clone(),
                    reason: format!("no `{wanted}` stem"),
                }
                .into()
            })
    }

    fn separator(&self, model: SeparationModel) -> &Separator {
        match model {
            SeparationModel::TwoTrackVocal | SeparationModel::TwoTrackAcc => &self.two_stems,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Engine>();
    }

    #[test]
    fn model_names_round_trip() {
        for model in SeparationModel::ALL {
            assert_eq!(model.name().parse::<SeparationModel>(), Ok(model));
        }
        assert!("4track".parse::<SeparationModel>().is_err());
    }
}

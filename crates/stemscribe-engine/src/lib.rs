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
use std::ops::ControlFlow;
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
    derive_stems_each, install_model_file, installed_cards, suppress_noise, user_model_files,
    uvr_hash, CardError, DemucsModel, DerivedStemsOptions, EndPadding, HighBand, InstallError,
    MdxModel, MdxOptions, MdxParams, MdxParamsError, MdxStem, MdxStems, ModelCard, ModelFile,
    ModelFileError, ModelSpec, NoiseOptions, Progress, SeparationError, SeparationOptions,
    Separator, SourceStem, USER_MODELS_DIR,
};
pub use stemscribe_transcribe::{
    notes_from_track, notes_with_evidence, Evidence, NoOutput, PitchModel, PitchModelSpec,
    PitchTrack, Transcriber, TranscriptionError, TranscriptionOptions, UnknownPitchModel,
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
    /// Stems could not be combined.
    #[error(transparent)]
    Audio(#[from] AudioError),
    /// An installed model card is invalid.
    #[error(transparent)]
    Card(#[from] CardError),
    /// `EngineConfig::two_stem_model` names no installed model file.
    #[error("no model is installed as {name:?} (no {}); install one with `stemscribe models add FILE.onnx --name {name}`", path.display())]
    UserModelMissing {
        /// The name asked for.
        name: String,
        /// Where its file would be.
        path: std::path::PathBuf,
    },
    /// The engine was built without what this call needs.
    #[error("this engine was built without {0} (EngineConfig::separation_only)")]
    NotLoaded(&'static str),
    /// A model file installed with `stemscribe models add` cannot be opened.
    #[error(transparent)]
    ModelFile(#[from] ModelFileError),
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
    /// `bs_4track_vocal`: the vocals of a 4-stem split. With derived stems these are the
    /// 2-stem vocals, whose mask already leaves steady noise out.
    FourTrackVocal,
    /// `bs_4track_acc`: drums + bass + other of a 4-stem split, with stationary noise removed.
    FourTrackAcc,
}

impl SeparationModel {
    /// Every model, in documentation order.
    pub const ALL: [Self; 4] = [
        Self::TwoTrackVocal,
        Self::TwoTrackAcc,
        Self::FourTrackVocal,
        Self::FourTrackAcc,
    ];

    /// The API name (`2track_vocal`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::TwoTrackVocal => "2track_vocal",
            Self::TwoTrackAcc => "2track_acc",
            Self::FourTrackVocal => "bs_4track_vocal",
            Self::FourTrackAcc => "bs_4track_acc",
        }
    }

    /// The stem this model returns.
    pub fn stem(self) -> &'static str {
        match self {
            Self::TwoTrackVocal | Self::FourTrackVocal => "vocals",
            Self::TwoTrackAcc | Self::FourTrackAcc => "accompaniment",
        }
    }

    /// Whether this is one of the four-stem, noise-suppressing models.
    pub fn is_four_track(self) -> bool {
        matches!(self, Self::FourTrackVocal | Self::FourTrackAcc)
    }
}

/// The stems of a four-track split, in the order [`Engine::separate_all`] returns them.
pub const FOUR_STEMS: [&str; 4] = ["vocals", "drums", "bass", "other"];

impl fmt::Display for SeparationModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A model name that is not one of [`SeparationModel::ALL`].
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("unknown model `{0}` (known: 2track_vocal, 2track_acc, bs_4track_vocal, bs_4track_acc)")]
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

/// How to build an [`Engine`]; every part defaults to its own default.
#[derive(Debug, Clone, Default)]
pub struct EngineConfig {
    /// Where the runtime and the models are, and how many threads to use.
    pub runtime: RuntimeConfig,
    /// Separation choices; the default is the best measured.
    pub separation: SeparationOptions,
    /// Note rules for transcription.
    pub transcription: TranscriptionOptions,
    /// The pitch tracker transcription runs.
    pub pitch_model: PitchModel,
    /// Serve `2track_*` (and the vocals transcription reads) from this vocal or instrumental
    /// MDX-Net model installed with `stemscribe models add` (its name in `user/`), instead of
    /// Spleeter.
    pub two_stem_model: Option<String>,
    /// Load only what separation needs: no pitch tracker (transcription then fails with
    /// [`EngineError::NotLoaded`]).
    pub separation_only: bool,
    /// Noise suppression before the four-track drums, bass and other.
    pub noise: NoiseOptions,
    /// How drums, bass and other are derived when no four-stem model card is installed.
    pub derived: DerivedStemsOptions,
}

/// Loaded models, ready to serve requests from any thread.
#[derive(Debug)]
pub struct Engine {
    two_stems: Separator,
    two_stem_file: Option<ModelFile>,
    four_stems: FourStems,
    separation: SeparationOptions,
    noise: NoiseOptions,
    transcriber: Option<Transcriber>,
}

/// Where the four-track models get drums, bass and other.
#[derive(Debug)]
enum FourStems {
    /// From an installed four-stem model card.
    Installed(Box<Separator>),
    /// From a four-stem model file installed with `stemscribe models add` (HT-Demucs).
    File(Box<ModelFile>),
    /// Derived from the 2-stem accompaniment.
    Derived(DerivedStemsOptions),
}

impl Engine {
    /// Loads ONNX Runtime, the 2-stem model, the F0 model and, when a card for one is
    /// installed, a four-stem model (see [`installed_cards`]).
    pub fn new(config: &EngineConfig) -> Result<Self, EngineError> {
        let runtime = Runtime::new(&config.runtime)?;
        let two_stems = Separator::new(&runtime, ModelSpec::spleeter_2stems())?;
        let two_stem_file = match &config.two_stem_model {
            Some(name) => Some(two_stem_file(&runtime, name)?),
            None => None,
        };
        let four_stems = match four_stem_card(runtime.models_dir())? {
            Some(card) => FourStems::Installed(Box::new(Separator::new(&runtime, card.spec)?)),
            None => match four_stem_file(&runtime)? {
                Some(model) => FourStems::File(Box::new(model)),
                None => FourStems::Derived(config.derived),
            },
        };
        let transcriber = if config.separation_only {
            None
        } else {
            Some(Transcriber::new(
                &runtime,
                config.pitch_model.spec(),
                config.transcription,
            )?)
        };
        Ok(Self {
            two_stems,
            two_stem_file,
            four_stems,
            separation: config.separation,
            noise: config.noise,
            transcriber,
        })
    }

    /// The card of the installed four-stem model, or `None` when the stems are derived.
    pub fn four_stem_model(&self) -> Option<&ModelSpec> {
        match &self.four_stems {
            FourStems::Installed(separator) => Some(separator.spec()),
            FourStems::File(_) | FourStems::Derived(_) => None,
        }
    }

    /// The installed four-stem model file that serves `bs_4track_*`, if any.
    pub fn four_stem_file(&self) -> Option<&ModelFile> {
        match &self.four_stems {
            FourStems::File(model) => Some(model),
            FourStems::Installed(_) | FourStems::Derived(_) => None,
        }
    }

    /// The loaded pitch tracker and note rules (for evaluations that inspect the contour).
    pub fn transcriber(&self) -> Result<&Transcriber, EngineError> {
        self.transcriber
            .as_ref()
            .ok_or(EngineError::NotLoaded("the pitch tracker"))
    }

    /// The sung melody of 44.1 kHz stereo `audio`: its vocals are separated, then
    /// transcribed. Progress counts separation windows, then pitch-tracking windows.
    pub fn transcribe(
        &self,
        audio: &Audio,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Transcription, EngineError> {
        let transcriber = self.transcriber()?;
        let pitch_windows = transcriber.tracker().windows(
            (audio.duration_secs() * f64::from(transcriber.tracker().spec().sample_rate)) as usize,
        );
        let mut separated = 0;
        let vocals = self.separate(audio, SeparationModel::TwoTrackVocal, &mut |p| {
            separated = p.total;
            progress(Progress {
                done: p.done,
                total: p.total + pitch_windows,
            });
        })?;
        Ok(transcriber.transcribe(&vocals, &mut |p| {
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
        Ok(self.transcriber()?.transcribe(voice, &mut |p| {
            progress(Progress {
                done: p.done,
                total: p.total,
            })
        })?)
    }

    /// Separates 44.1 kHz stereo `audio` into every stem of `model`'s family: vocals and
    /// accompaniment, or the [`FOUR_STEMS`]. For the four-track family the vocals come from
    /// the input as it is (see [`SeparationModel::FourTrackVocal`]). Derived drums, bass and
    /// other come from the same pass's accompaniment with its detected noise removed (one
    /// network pass); an installed four-stem model runs again on the input with its noise
    /// removed (two passes).
    pub fn separate_all(
        &self,
        audio: &Audio,
        model: SeparationModel,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<Stem>, EngineError> {
        let mut stems = Vec::new();
        self.separate_each(audio, model, progress, &mut |stem| {
            stems.push(stem);
            ControlFlow::Continue(())
        })?;
        Ok(stems)
    }

    /// As [`Engine::separate_all`], but hands each stem to `on_stem` as soon as it exists,
    /// so that a caller who writes and drops it holds less memory; `on_stem` may stop the
    /// work by returning [`ControlFlow::Break`].
    pub fn separate_each(
        &self,
        audio: &Audio,
        model: SeparationModel,
        progress: &mut dyn FnMut(Progress),
        on_stem: &mut dyn FnMut(Stem) -> ControlFlow<()>,
    ) -> Result<(), EngineError> {
        if !model.is_four_track() {
            for stem in self.two_track_stems(audio, progress)? {
                if on_stem(stem).is_break() {
                    break;
                }
            }
            return Ok(());
        }
        if let FourStems::Derived(derived) = &self.four_stems {
            // One network pass: the vocals and the accompaniment the parts come from.
            let mut stems = self.run(&self.two_stems, audio, progress)?;
            let file = &self.two_stems.spec().file;
            let accompaniment = take_stem(&mut stems, "accompaniment", file)?;
            if on_stem(take_stem(&mut stems, "vocals", file)?).is_break() {
                return Ok(());
            }
            self.derive_parts(&accompaniment.audio, derived, on_stem);
            return Ok(());
        }
        let mut halves = |done: usize, p: Progress| {
            progress(Progress {
                done: done + p.done,
                total: 2 * p.total,
            })
        };
        let vocals = self.four_track_vocals(audio, &mut |p| halves(0, p))?;
        if on_stem(named("vocals", vocals)).is_break() {
            return Ok(());
        }
        self.four_track_parts(audio, &mut |p| halves(p.total, p), on_stem)
    }

    /// Separates 44.1 kHz stereo `audio` and returns the stem `model` names (for the
    /// four-track accompaniment: drums + bass + other).
    pub fn separate(
        &self,
        audio: &Audio,
        model: SeparationModel,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Audio, EngineError> {
        match (model, &self.four_stems) {
            (SeparationModel::FourTrackVocal, _) => self.four_track_vocals(audio, progress),
            (SeparationModel::FourTrackAcc, FourStems::Installed(_) | FourStems::File(_)) => {
                let mut parts = Vec::new();
                self.four_track_parts(audio, progress, &mut |part| {
                    parts.push(part.audio);
                    ControlFlow::Continue(())
                })?;
                Ok(Audio::sum(&parts)?)
            }
            // Derived parts sum to the accompaniment exactly, so they need not be derived.
            (SeparationModel::FourTrackAcc, FourStems::Derived(_)) => {
                self.denoised_accompaniment(audio, progress)
            }
            (SeparationModel::TwoTrackVocal | SeparationModel::TwoTrackAcc, _) => {
                let mut stems = self.two_track_stems(audio, progress)?;
                Ok(take_stem(&mut stems, model.stem(), &self.two_track_file())?.audio)
            }
        }
    }

    /// The four-track vocals, separated from the input as it is: the vocal mask already
    /// leaves steady noise to the rest, and suppressing the noise first only distorts the
    /// voice (on the musdb7 clip with white or pink hiss it cost 0.3 dB).
    fn four_track_vocals(
        &self,
        audio: &Audio,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Audio, EngineError> {
        match self.run_four_stem_model(audio, progress)? {
            Some((mut stems, file)) => Ok(take_stem(&mut stems, "vocals", &file)?.audio),
            None => self.stem_of(&self.two_stems, audio, "vocals", progress),
        }
    }

    /// The four-track drums, bass and other of an installed four-stem model, in that order,
    /// handed to `on_stem` one by one: separated from the input with its detected noise
    /// removed. (Derived stems come from [`Engine::derive_parts`].)
    fn four_track_parts(
        &self,
        audio: &Audio,
        progress: &mut dyn FnMut(Progress),
        on_stem: &mut dyn FnMut(Stem) -> ControlFlow<()>,
    ) -> Result<(), EngineError> {
        let clean = suppress_noise(audio, &self.noise);
        let separated = self.run_four_stem_model(&clean, progress)?;
        drop(clean);
        if let Some((mut stems, file)) = separated {
            for name in &FOUR_STEMS[1..] {
                if on_stem(take_stem(&mut stems, name, &file)?).is_break() {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Derived drums, bass and other of the 2-stem `accompaniment`, its detected noise removed
    /// first, handed to `on_stem` one by one.
    fn derive_parts(
        &self,
        accompaniment: &Audio,
        derived: &DerivedStemsOptions,
        on_stem: &mut dyn FnMut(Stem) -> ControlFlow<()>,
    ) {
        let accompaniment = suppress_noise(accompaniment, &self.noise);
        let mut names = FOUR_STEMS[1..].iter();
        derive_stems_each(&accompaniment, derived, &mut |part| {
            let name = names.next().copied().unwrap_or("other");
            on_stem(named(name, part))
        });
    }

    /// Runs the installed four-stem model (card or file) on `audio` and names its stems;
    /// with the file it came from, for errors. `None` when the stems are derived.
    fn run_four_stem_model(
        &self,
        audio: &Audio,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Option<(Vec<Stem>, String)>, EngineError> {
        Ok(match &self.four_stems {
            FourStems::Installed(separator) => Some((
                self.run(separator, audio, progress)?,
                separator.spec().file.clone(),
            )),
            FourStems::File(model) => Some((
                run_file(model, audio, progress)?,
                model.file().display().to_string(),
            )),
            FourStems::Derived(_) => None,
        })
    }

    /// The vocals and accompaniment of `audio`, from Spleeter or the installed model asked for.
    fn two_track_stems(
        &self,
        audio: &Audio,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<Stem>, EngineError> {
        let Some(model) = &self.two_stem_file else {
            return self.run(&self.two_stems, audio, progress);
        };
        let mut stems = run_file(model, audio, progress)?;
        let file = self.two_track_file();
        let vocals = take_stem(&mut stems, SourceStem::Vocals.name(), &file)?;
        let mut accompaniment = take_stem(&mut stems, SourceStem::Instrumental.name(), &file)?;
        accompaniment.name = "accompaniment".to_owned();
        Ok(vec![vocals, accompaniment])
    }

    /// The file `2track_*` are served from.
    fn two_track_file(&self) -> String {
        self.two_stem_file.as_ref().map_or_else(
            || self.two_stems.spec().file.clone(),
            |model| model.file().display().to_string(),
        )
    }

    /// The 2-stem accompaniment of the input with its detected noise removed afterwards (as
    /// good as removing it from the input first, measured on two clips, and it lets every
    /// stem come from one pass): the sum of the derived drums, bass and other.
    fn denoised_accompaniment(
        &self,
        audio: &Audio,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Audio, EngineError> {
        let accompaniment = self.stem_of(&self.two_stems, audio, "accompaniment", progress)?;
        Ok(suppress_noise(&accompaniment, &self.noise))
    }

    /// Runs one separator and returns the stem called `name`.
    fn stem_of(
        &self,
        separator: &Separator,
        audio: &Audio,
        name: &str,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Audio, EngineError> {
        let mut stems = self.run(separator, audio, progress)?;
        Ok(take_stem(&mut stems, name, &separator.spec().file)?.audio)
    }

    /// Runs one separator and names its stems.
    fn run(
        &self,
        separator: &Separator,
        audio: &Audio,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<Stem>, EngineError> {
        let stems = separator.separate(audio, &self.separation, progress)?;
        Ok(separator
            .spec()
            .stems
            .iter()
            .zip(stems)
            .map(|(name, audio)| named(name, audio))
            .collect())
    }
}

fn named(name: &str, audio: Audio) -> Stem {
    Stem {
        name: name.to_owned(),
        audio,
    }
}

/// Removes the stem called `name` from `stems`, which the model in `file` returned.
fn take_stem(stems: &mut Vec<Stem>, name: &str, file: &str) -> Result<Stem, EngineError> {
    let index = stems.iter().position(|s| s.name == name).ok_or_else(|| {
        SeparationError::ModelMismatch {
            file: file.to_owned(),
            reason: format!("no `{name}` stem"),
        }
    })?;
    Ok(stems.swap_remove(index))
}

/// Runs a model file and names its stems.
fn run_file(
    model: &ModelFile,
    audio: &Audio,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<Stem>, EngineError> {
    Ok(model
        .separate(audio, &MdxOptions::default(), progress)?
        .into_iter()
        .map(|(stem, audio)| named(stem.name(), audio))
        .collect())
}

/// Opens `user/NAME.onnx` as a two-stem model: one whose stems are the vocals and the
/// instrumental (an MDX-Net vocal or instrumental model).
fn two_stem_file(runtime: &Runtime, name: &str) -> Result<ModelFile, EngineError> {
    let file = runtime
        .models_dir()
        .join(USER_MODELS_DIR)
        .join(format!("{name}.onnx"));
    if !file.is_file() {
        return Err(EngineError::UserModelMissing {
            name: name.to_owned(),
            path: file,
        });
    }
    let model = ModelFile::open(runtime, &file)?;
    if model.has_stems(&[SourceStem::Vocals.name(), SourceStem::Instrumental.name()]) {
        return Ok(model);
    }
    Err(SeparationError::ModelMismatch {
        file: file.display().to_string(),
        reason: format!(
            "a {} model with stems {:?} cannot serve 2track_* (it needs an MDX-Net vocal or \
             instrumental model)",
            model.family(),
            model.stems().iter().map(|s| s.name()).collect::<Vec<_>>()
        ),
    }
    .into())
}

/// The first model file installed with `stemscribe models add` whose stems are the
/// [`FOUR_STEMS`] (in any order); only files whose card names `sources` (HT-Demucs) are
/// opened, and one that cannot be opened is an error.
fn four_stem_file(runtime: &Runtime) -> Result<Option<ModelFile>, EngineError> {
    for file in user_model_files(runtime.models_dir()) {
        let card = std::fs::read_to_string(file.with_extension("json")).unwrap_or_default();
        if !card.contains("\"sources\"") {
            continue;
        }
        let model = ModelFile::open(runtime, &file)?;
        if model.has_stems(&FOUR_STEMS) {
            return Ok(Some(model));
        }
    }
    Ok(None)
}

/// The first card in `models_dir` whose stems are exactly the [`FOUR_STEMS`]; any broken
/// card is an error rather than silently ignored.
pub fn four_stem_card(models_dir: &std::path::Path) -> Result<Option<ModelCard>, CardError> {
    let cards = installed_cards(models_dir)
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    Ok(cards.into_iter().find(|card| card.has_stems(&FOUR_STEMS)))
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

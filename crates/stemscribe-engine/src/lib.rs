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

use std::borrow::Cow;
use std::fmt;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use thiserror::Error;

// What an embedder calls, at the root.
pub use stemscribe_audio::{Audio, AudioError, PROCESSING_RATE};
pub use stemscribe_decode::{
    decode, decode_file, decode_raw_pcm, probe_duration_secs, DecodeError, DecodeOptions, RawPcm,
};
pub use stemscribe_encode::{
    encode, encode_to_vec, EncodeError, EncodeReport, OutputFormat, OutputSpec, WavSampleFormat,
};
pub use stemscribe_midi::{from_json, to_json, to_smf, MidiError, Note, SmfOptions, Transcription};
pub use stemscribe_runtime::{
    default_models_dir, setup, Device, DeviceUse, RuntimeConfig, RuntimeError,
};
pub use stemscribe_separate::{
    DerivedStemsOptions, NoiseOptions, Progress, SeparationError, SeparationOptions, SourceStem,
};
pub use stemscribe_transcribe::{NoOutput, PitchModel, TranscriptionError, TranscriptionOptions};

use stemscribe_audio::timings::{measure, Stage};
use stemscribe_runtime::Runtime;
use stemscribe_separate::{
    derive_clean_stems_each, find_noise, installed_cards, is_ensemble, open_ensemble, remove_hum,
    suppress_noise, user_model_files, CardError, HumOptions, ModelCard, ModelFile, ModelFileError,
    ModelSpec, Separate, Separator, USER_MODELS_DIR,
};
use stemscribe_transcribe::{
    notes_with_decision, vocal_to_mix_db, Decision, PitchTrack, Transcriber, MAX_HARMONIC_HZ,
};

// The component crates, for finer control.
pub use stemscribe_audio as audio;
pub use stemscribe_decode as decode;
pub use stemscribe_encode as encode;
pub use stemscribe_midi as midi;
pub use stemscribe_runtime as runtime;
pub use stemscribe_separate as separate;
pub use stemscribe_transcribe as transcribe;

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
    /// `bs_4track_vocal`: the vocals of a 4-stem split, of the input with its mains hum
    /// removed. With derived stems these are the 2-stem vocals of that input, whose mask
    /// already leaves hiss out.
    FourTrackVocal,
    /// `bs_4track_acc`: drums + bass + other of a 4-stem split, with mains hum and stationary
    /// noise removed.
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
    pub fn stem(self) -> SourceStem {
        match self {
            Self::TwoTrackVocal | Self::FourTrackVocal => SourceStem::Vocals,
            Self::TwoTrackAcc | Self::FourTrackAcc => SourceStem::Accompaniment,
        }
    }

    /// Whether this is one of the four-stem, noise-suppressing models.
    pub fn is_four_track(self) -> bool {
        matches!(self, Self::FourTrackVocal | Self::FourTrackAcc)
    }
}

/// The level, in dBFS, that transcription raises a quieter input's loud part to before
/// separating and tracking it ([`Audio::raised_to`]). The pitch tracker's
/// silence gate and voicing are not level-invariant: a sung recording whose loud part lies at
/// −45 dBFS gave notes on half the sight-singing clips. Every clip of the development corpus
/// (−9 to −27 dBFS) and vocadito (−32) is louder than this, so none of them changes.
pub const TRANSCRIPTION_MIN_LEVEL_DBFS: f32 = -35.0;

/// The stems of a four-track split, in the order [`Engine::separate_all`] returns them.
pub const FOUR_STEMS: [SourceStem; 4] = [
    SourceStem::Vocals,
    SourceStem::Drums,
    SourceStem::Bass,
    SourceStem::Other,
];

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
    /// Which stem it is.
    pub stem: SourceStem,
    /// 44.1 kHz stereo, as long as the input.
    pub audio: Audio,
}

impl Stem {
    /// Its file name without extension (`vocals`, `accompaniment`, `drums`, ...).
    pub fn name(&self) -> &'static str {
        self.stem.name()
    }
}

/// How to build an [`Engine`]; every part defaults to its own default.
#[derive(Debug, Clone, Default)]
pub struct EngineConfig {
    /// Where the runtime and the models are, how many threads to use, and on which device.
    pub runtime: RuntimeConfig,
    /// Separation choices for mask models (Spleeter, installed cards); the default is the
    /// best measured.
    pub separation: SeparationOptions,
    /// Note rules for transcription.
    pub transcription: TranscriptionOptions,
    /// The pitch tracker transcription runs.
    pub pitch_model: PitchModel,
    /// Serve `2track_*` (the vocals transcription reads, and the accompaniment derived four
    /// stems come from) from this vocal or instrumental MDX-Net model installed with
    /// `stemscribe models add` (its name in `user/`), instead of Spleeter.
    pub two_stem_model: Option<String>,
    /// Load only what separation needs: no pitch tracker (transcription then fails with
    /// [`EngineError::NotLoaded`]).
    pub separation_only: bool,
    /// Noise suppression before the four-track drums, bass and other.
    pub noise: NoiseOptions,
    /// How drums, bass and other are derived when no four-stem model is installed.
    pub derived: DerivedStemsOptions,
}

/// The models an [`Engine`] runs, for embedders and tests that bring their own (a test
/// double of [`Separate`] or [`TrackPitch`](transcribe::TrackPitch), say) instead of loading ONNX files.
#[derive(Debug)]
pub struct EngineParts {
    /// The 2-stem model: its stems are the vocals and the accompaniment (or instrumental).
    pub two_stems: Box<dyn Separate>,
    /// A four-stem model (vocals, drums, bass, other); `None` derives them from the 2-stem
    /// accompaniment.
    pub four_stems: Option<Box<dyn Separate>>,
    /// The pitch tracker and note rules; `None` for separation only.
    pub transcriber: Option<Transcriber>,
    /// Noise suppression before the four-track drums, bass and other.
    pub noise: NoiseOptions,
    /// How drums, bass and other are derived without a four-stem model.
    pub derived: DerivedStemsOptions,
    /// Where the models run.
    pub device: DeviceUse,
}

/// Loaded models, ready to serve requests from any thread.
#[derive(Debug)]
pub struct Engine {
    two_stems: Box<dyn Separate>,
    four_stems: FourStems,
    noise: NoiseOptions,
    transcriber: Option<Transcriber>,
    device: DeviceUse,
    /// What opens installed model files by name; `None` for an engine of parts.
    runtime: Option<Runtime>,
    /// Installed model files opened by [`Engine::separate_installed`], kept for reuse.
    installed: std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<ModelFile>>>,
}

/// Where the four-track models get drums, bass and other.
#[derive(Debug)]
enum FourStems {
    /// From a four-stem network (an installed card, or an HT-Demucs file).
    Model(Box<dyn Separate>),
    /// Derived from the 2-stem accompaniment.
    Derived(DerivedStemsOptions),
}

/// A transcription with what it was made from ([`Engine::transcribe_traced`]).
#[derive(Debug, Clone)]
pub struct TracedTranscription {
    /// The separated vocals, at the separation's rate.
    pub vocals: Audio,
    /// Their pitch contour.
    pub track: PitchTrack,
    /// What the singing decision read and concluded.
    pub decision: Decision,
    /// The notes, or why there are none.
    pub result: Result<Transcription, NoOutput>,
}

impl Engine {
    /// Loads ONNX Runtime, the 2-stem model, the F0 model and, when one is installed, a
    /// four-stem model (a card, see [`installed_cards`], or a file added with `stemscribe
    /// models add`).
    pub fn new(config: &EngineConfig) -> Result<Self, EngineError> {
        measure(Stage::ModelLoad, || Self::load(config))
    }

    fn load(config: &EngineConfig) -> Result<Self, EngineError> {
        let runtime = Runtime::new(&config.runtime)?;
        let two_stems: Box<dyn Separate> = match &config.two_stem_model {
            Some(name) => two_stem_file(&runtime, name)?,
            None => Box::new(
                Separator::new(&runtime, ModelSpec::spleeter_2stems())?
                    .with_options(config.separation),
            ),
        };
        let four_stems: Option<Box<dyn Separate>> = match four_stem_card(runtime.models_dir())? {
            Some(card) => Some(Box::new(
                Separator::new(&runtime, card.spec)?.with_options(config.separation),
            )),
            None => four_stem_file(&runtime)?.map(|model| Box::new(model) as Box<dyn Separate>),
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
        let mut engine = Self::from_parts(EngineParts {
            two_stems,
            four_stems,
            transcriber,
            noise: config.noise,
            derived: config.derived,
            device: runtime.device_use(),
        });
        engine.runtime = Some(runtime);
        Ok(engine)
    }

    /// An engine of models built elsewhere.
    pub fn from_parts(parts: EngineParts) -> Self {
        Self {
            two_stems: parts.two_stems,
            four_stems: match parts.four_stems {
                Some(model) => FourStems::Model(model),
                None => FourStems::Derived(parts.derived),
            },
            noise: parts.noise,
            transcriber: parts.transcriber,
            device: parts.device,
            runtime: None,
            installed: std::sync::Mutex::default(),
        }
    }

    /// The names of the model files installed with `stemscribe models add`, sorted; none for
    /// an engine built from parts.
    pub fn installed_models(&self) -> Vec<String> {
        let Some(runtime) = &self.runtime else {
            return Vec::new();
        };
        user_model_files(runtime.models_dir())
            .iter()
            .filter_map(|file| file.file_stem()?.to_str().map(str::to_owned))
            .collect()
    }

    /// Separates 44.1 kHz stereo `audio` with the model file installed as `name` into all of
    /// its stems, as `stemscribe separate --model-file` does with that file; the file is
    /// opened on first use and kept.
    pub fn separate_installed(
        &self,
        name: &str,
        audio: &Audio,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<Stem>, EngineError> {
        let model = self.installed_model(name)?;
        let stems = model.separate(audio, progress)?;
        Ok(stems
            .into_iter()
            .map(|(stem, audio)| Stem { stem, audio })
            .collect())
    }

    /// The model file installed as `name`, opened once.
    fn installed_model(&self, name: &str) -> Result<std::sync::Arc<ModelFile>, EngineError> {
        let Some(runtime) = &self.runtime else {
            return Err(EngineError::UserModelMissing {
                name: name.to_owned(),
                path: Path::new(USER_MODELS_DIR).join(format!("{name}.onnx")),
            });
        };
        let file = installed_file(runtime.models_dir(), name)?;
        let mut open = self
            .installed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(model) = open.get(name) {
            return Ok(model.clone());
        }
        let model = std::sync::Arc::new(ModelFile::open(runtime, &file)?);
        open.insert(name.to_owned(), model.clone());
        Ok(model)
    }

    /// Where the models run (and why not on CUDA, when it was asked for and not used).
    pub fn device(&self) -> &DeviceUse {
        &self.device
    }

    /// The model that serves `2track_*`.
    pub fn two_stem_model(&self) -> &dyn Separate {
        self.two_stems.as_ref()
    }

    /// The installed four-stem model, or `None` when the stems are derived.
    pub fn four_stem_model(&self) -> Option<&dyn Separate> {
        match &self.four_stems {
            FourStems::Model(model) => Some(model.as_ref()),
            FourStems::Derived(_) => None,
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
        Ok(self.transcribe_traced(audio, progress)?.result?)
    }

    /// As [`Engine::transcribe`], keeping the separated vocals, their pitch contour and what
    /// the singing decision read (for evaluations and training).
    pub fn transcribe_traced(
        &self,
        audio: &Audio,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<TracedTranscription, EngineError> {
        let transcriber = self.transcriber()?;
        let tracker = transcriber.tracker();
        let pitch_windows =
            tracker.windows((audio.duration_secs() * f64::from(tracker.sample_rate())) as usize);
        let mut separated = 0;
        let raised = audio.raised_to(TRANSCRIPTION_MIN_LEVEL_DBFS);
        let mix = raised.as_ref().unwrap_or(audio);
        let vocals = self.low_band_vocals(mix, &mut |p| {
            separated = p.total;
            progress(Progress {
                done: p.done,
                total: p.total + pitch_windows,
            });
        })?;
        let level = vocal_to_mix_db(&vocals, mix);
        let track = transcriber.track(&vocals, &mut |p| {
            progress(Progress {
                done: separated + p.done,
                total: separated + p.total,
            })
        })?;
        let (decision, result) = notes_with_decision(&track, transcriber.options(), Some(level));
        Ok(TracedTranscription {
            vocals,
            track,
            decision,
            result,
        })
    }

    /// The vocals of 44.1 kHz stereo `audio` as [`Engine::transcribe`] reads them: of the
    /// input raised to at least [`TRANSCRIPTION_MIN_LEVEL_DBFS`] first, so that a quiet
    /// recording is heard as a normal one. The 2-stem network may separate only the band below
    /// [`MAX_HARMONIC_HZ`] that transcription uses (Spleeter: half its bins, about half the
    /// time), so they match the whole-band vocals there (within 35.9 dB on the MUSDB18 sample)
    /// and only roughly above.
    pub fn transcription_vocals(
        &self,
        audio: &Audio,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Audio, EngineError> {
        let raised = audio.raised_to(TRANSCRIPTION_MIN_LEVEL_DBFS);
        self.low_band_vocals(raised.as_ref().unwrap_or(audio), progress)
    }

    /// The vocals of `mix`, already raised, as [`Engine::transcription_vocals`] gives them.
    fn low_band_vocals(
        &self,
        mix: &Audio,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Audio, EngineError> {
        let mut stems = self.two_stems.separate_selected(
            mix,
            &[SourceStem::Vocals],
            Some(MAX_HARMONIC_HZ as f32),
            progress,
        )?;
        Ok(take_stem(&mut stems, SourceStem::Vocals, self.two_stems.file())?.audio)
    }

    /// The sung melody of `voice`, an isolated voice at any rate (no separation), raised to
    /// at least [`TRANSCRIPTION_MIN_LEVEL_DBFS`] first as [`Engine::transcribe`] raises a mix.
    pub fn transcribe_voice(
        &self,
        voice: &Audio,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Transcription, EngineError> {
        let raised = voice.raised_to(TRANSCRIPTION_MIN_LEVEL_DBFS);
        Ok(self
            .transcriber()?
            .transcribe(raised.as_ref().unwrap_or(voice), None, progress)?)
    }

    /// Separates 44.1 kHz stereo `audio` into every stem of `model`'s family: vocals and
    /// accompaniment, or the [`FOUR_STEMS`] (of the input with its mains hum removed first,
    /// see [`remove_hum`]), from one network pass. Derived drums, bass and other come from
    /// that pass's accompaniment with its detected noise removed; an installed four-stem model
    /// gives its vocals as they are, and its drums, bass and other with the noise detected in
    /// their sum removed from each.
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
    /// so that a caller who writes and drops it holds less memory (derived parts are derived
    /// on another thread meanwhile, so one more may be waiting); `on_stem` may stop the work
    /// by returning [`ControlFlow::Break`].
    pub fn separate_each(
        &self,
        audio: &Audio,
        model: SeparationModel,
        progress: &mut dyn FnMut(Progress),
        on_stem: &mut dyn FnMut(Stem) -> ControlFlow<()>,
    ) -> Result<(), EngineError> {
        let audio = &*model_input(audio, model);
        let four_stem_model = match (&self.four_stems, model.is_four_track()) {
            (_, false) => {
                for stem in self.two_track_stems(audio, progress)? {
                    if on_stem(stem).is_break() {
                        break;
                    }
                }
                return Ok(());
            }
            (FourStems::Derived(derived), true) => {
                // One network pass: the vocals and the accompaniment the parts come from.
                let [vocals, accompaniment] = self.two_track_stems(audio, progress)?;
                self.derive_parts_beside(vocals, &accompaniment.audio, derived, on_stem);
                return Ok(());
            }
            (FourStems::Model(four), true) => four.as_ref(),
        };
        // One network pass: the vocals as they come, the other parts with their noise removed.
        let mut stems = four_stem_model.separate(audio, progress)?;
        let vocals = take_stem(&mut stems, SourceStem::Vocals, four_stem_model.file())?;
        if on_stem(vocals).is_break() {
            return Ok(());
        }
        self.four_track_parts(stems, four_stem_model, on_stem)
    }

    /// Separates 44.1 kHz stereo `audio` and returns the stem `model` names (for the
    /// four-track accompaniment: drums + bass + other).
    pub fn separate(
        &self,
        audio: &Audio,
        model: SeparationModel,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Audio, EngineError> {
        let audio = &*model_input(audio, model);
        match (model, &self.four_stems) {
            // The vocal mask already leaves steady noise to the rest; suppressing the noise
            // first only distorts the voice (on the musdb7 clip with white or pink hiss it
            // cost 0.3 dB).
            (SeparationModel::FourTrackVocal, FourStems::Model(four)) => {
                let mut stems = four.separate(audio, progress)?;
                Ok(take_stem(&mut stems, SourceStem::Vocals, four.file())?.audio)
            }
            // The sum of [`Engine::four_track_parts`], to rounding: their noise is found in
            // this sum and removed from each part by the same gains.
            (SeparationModel::FourTrackAcc, FourStems::Model(four)) => {
                let stems = four.separate(audio, progress)?;
                let sum = Audio::sum(&take_parts(stems, four.as_ref())?)?;
                Ok(measure(Stage::PostProcess, || {
                    suppress_noise(&sum, &self.noise)
                }))
            }
            // Derived parts sum to the accompaniment with its noise removed, so they need not
            // be derived.
            (SeparationModel::FourTrackAcc, FourStems::Derived(_)) => {
                let accompaniment =
                    self.two_track_stem(audio, SourceStem::Accompaniment, progress)?;
                Ok(measure(Stage::PostProcess, || {
                    suppress_noise(&accompaniment.audio, &self.noise)
                }))
            }
            (SeparationModel::FourTrackVocal, FourStems::Derived(_))
            | (SeparationModel::TwoTrackVocal, _) => Ok(self
                .two_track_stem(audio, SourceStem::Vocals, progress)?
                .audio),
            (SeparationModel::TwoTrackAcc, _) => Ok(self
                .two_track_stem(audio, SourceStem::Accompaniment, progress)?
                .audio),
        }
    }

    /// Hands `on_stem` the drums, bass and other of a four-stem model's `stems`, in that
    /// order, with the stationary noise found in their sum removed from each by the same
    /// gains (so they sum to the accompaniment with its noise removed, as the derived parts
    /// do), until it breaks. (Derived stems come from [`Engine::derive_parts`].)
    fn four_track_parts(
        &self,
        stems: Vec<(SourceStem, Audio)>,
        four: &dyn Separate,
        on_stem: &mut dyn FnMut(Stem) -> ControlFlow<()>,
    ) -> Result<(), EngineError> {
        let parts = take_parts(stems, four)?;
        let noise = measure(Stage::PostProcess, || {
            Ok::<_, EngineError>(find_noise(&Audio::sum(&parts)?, &self.noise))
        })?;
        for (&stem, audio) in FOUR_STEMS[1..].iter().zip(parts) {
            let audio = match &noise {
                Some(noise) => measure(Stage::PostProcess, || noise.suppress(&audio)),
                None => audio,
            };
            if on_stem(Stem { stem, audio }).is_break() {
                break;
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
        measure(Stage::PostProcess, || {
            let mut stems = FOUR_STEMS[1..].iter();
            derive_clean_stems_each(accompaniment, &self.noise, derived, &mut |audio| {
                let stem = stems.next().copied().unwrap_or(SourceStem::Other);
                on_stem(Stem { stem, audio })
            });
        });
    }

    /// Hands `vocals` to `on_stem`, then the derived parts of `accompaniment`
    /// ([`Engine::derive_parts`]), deriving each part on another thread while `on_stem` takes
    /// the stem before it (writing it, say): at most one stem waits. The time this thread
    /// waits for a part counts as post-processing.
    fn derive_parts_beside(
        &self,
        vocals: Stem,
        accompaniment: &Audio,
        derived: &DerivedStemsOptions,
        on_stem: &mut dyn FnMut(Stem) -> ControlFlow<()>,
    ) {
        std::thread::scope(|scope| {
            // A rendezvous: the deriving thread holds the next part until it is taken.
            let (parts, taken) = std::sync::mpsc::sync_channel::<Stem>(0);
            scope.spawn(move || {
                self.derive_parts(accompaniment, derived, &mut |part| {
                    match parts.send(part) {
                        Ok(()) => ControlFlow::Continue(()),
                        // `on_stem` stopped the work.
                        Err(_) => ControlFlow::Break(()),
                    }
                });
            });
            if on_stem(vocals).is_break() {
                return;
            }
            while let Ok(part) = measure(Stage::PostProcess, || taken.recv()) {
                if on_stem(part).is_break() {
                    return;
                }
            }
        });
    }

    /// One stem of `audio` from the 2-stem model, `Vocals` or `Accompaniment` (an
    /// instrumental stem serves as the accompaniment), the other not synthesised where the
    /// model can skip it.
    fn two_track_stem(
        &self,
        audio: &Audio,
        stem: SourceStem,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Stem, EngineError> {
        let wanted: &[SourceStem] = if stem == SourceStem::Accompaniment {
            &[SourceStem::Accompaniment, SourceStem::Instrumental]
        } else {
            &[stem]
        };
        let mut stems = self
            .two_stems
            .separate_selected(audio, wanted, None, progress)?;
        take_stem(&mut stems, stem, self.two_stems.file())
    }

    /// The vocals and the accompaniment of `audio` from the 2-stem model (an instrumental
    /// stem is named the accompaniment).
    fn two_track_stems(
        &self,
        audio: &Audio,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<[Stem; 2], EngineError> {
        let mut stems = self.two_stems.separate(audio, progress)?;
        let file = self.two_stems.file();
        Ok([
            take_stem(&mut stems, SourceStem::Vocals, file)?,
            take_stem(&mut stems, SourceStem::Accompaniment, file)?,
        ])
    }
}

/// The drums, bass and other of a four-stem model's `stems`, in that order (the rest dropped).
fn take_parts(
    mut stems: Vec<(SourceStem, Audio)>,
    four: &dyn Separate,
) -> Result<Vec<Audio>, EngineError> {
    FOUR_STEMS[1..]
        .iter()
        .map(|&stem| Ok(take_stem(&mut stems, stem, four.file())?.audio))
        .collect()
}

/// Removes `stem` from `stems`, which the model in `file` returned; an instrumental stem
/// serves as the accompaniment, and is named so.
fn take_stem(
    stems: &mut Vec<(SourceStem, Audio)>,
    stem: SourceStem,
    file: &Path,
) -> Result<Stem, EngineError> {
    let serves =
        |s: SourceStem| s == stem || (stem == SourceStem::Accompaniment && s.is_accompaniment());
    let index = stems
        .iter()
        .position(|&(s, _)| serves(s))
        .ok_or_else(|| RuntimeError::Mismatch {
            file: file.to_path_buf(),
            reason: format!("no `{}` stem", stem.name()),
        })
        .map_err(SeparationError::from)?;
    let (_, audio) = stems.swap_remove(index);
    Ok(Stem { stem, audio })
}

/// The file of the model installed as `name` in `models_dir` (one of [`user_model_files`]):
/// `user/NAME.onnx`, else the ensemble `user/NAME.ensemble`; a missing model is an error
/// naming the first.
fn installed_file(models_dir: &Path, name: &str) -> Result<PathBuf, EngineError> {
    let files = user_model_files(models_dir);
    let named: Vec<&PathBuf> = files
        .iter()
        .filter(|file| file.file_stem().is_some_and(|stem| stem == name))
        .collect();
    let file = named
        .iter()
        .find(|file| !is_ensemble(file))
        .or(named.first());
    file.map(|file| file.to_path_buf())
        .ok_or_else(|| EngineError::UserModelMissing {
            name: name.to_owned(),
            path: models_dir
                .join(USER_MODELS_DIR)
                .join(format!("{name}.onnx")),
        })
}

/// Opens the model installed as `name` as a two-stem model: one whose stems are the vocals
/// and the instrumental (an MDX-Net vocal or instrumental model, a single-target RoFormer, or
/// an ensemble of them, each member read as such).
fn two_stem_file(runtime: &Runtime, name: &str) -> Result<Box<dyn Separate>, EngineError> {
    let file = installed_file(runtime.models_dir(), name)?;
    if !is_ensemble(&file) {
        return two_stem_model(runtime, file);
    }
    let ensemble = open_ensemble(&file, |member| two_stem_model(runtime, member))?;
    Ok(Box::new(ensemble))
}

/// Opens the model file `file` as a two-stem model (see [`two_stem_file`]).
fn two_stem_model(runtime: &Runtime, file: PathBuf) -> Result<Box<dyn Separate>, EngineError> {
    let model = ModelFile::open(runtime, &file)?;
    if model.has_stems(&[SourceStem::Vocals, SourceStem::Instrumental]) {
        return Ok(Box::new(model));
    }
    // A single-target RoFormer names its residual after the config's other instrument
    // ("other" for most vocal models); as a 2-stem model it is the instrumental (or vocals).
    if let ModelFile::Roformer(roformer) = &model {
        let target = roformer.stems().first().copied();
        let renamed = match (target, roformer.residual()) {
            (Some(SourceStem::Vocals), Some(residual)) => {
                Some((residual, SourceStem::Instrumental))
            }
            (Some(SourceStem::Instrumental), Some(residual)) => {
                Some((residual, SourceStem::Vocals))
            }
            _ => None,
        };
        if let Some((from, to)) = renamed {
            return Ok(Box::new(Renamed {
                inner: model,
                from,
                to,
            }));
        }
    }
    Err(SeparationError::from(RuntimeError::Mismatch {
        file,
        reason: format!(
            "a {} model with stems {:?} cannot serve 2track_* (it needs a vocal or \
             instrumental model: MDX-Net, or a single-target RoFormer)",
            model.family(),
            model.stems().iter().map(|s| s.name()).collect::<Vec<_>>()
        ),
    })
    .into())
}

/// A model whose stem `from` is served as `to` (a single-target RoFormer's residual as the
/// instrumental or the vocals).
#[derive(Debug)]
struct Renamed {
    inner: ModelFile,
    from: SourceStem,
    to: SourceStem,
}

impl Renamed {
    fn rename(&self, stem: SourceStem) -> SourceStem {
        if stem == self.from {
            self.to
        } else {
            stem
        }
    }

    fn rename_all(&self, stems: Vec<(SourceStem, Audio)>) -> Vec<(SourceStem, Audio)> {
        stems
            .into_iter()
            .map(|(stem, audio)| (self.rename(stem), audio))
            .collect()
    }
}

impl Separate for Renamed {
    fn file(&self) -> &Path {
        self.inner.file()
    }

    fn stems(&self) -> Vec<SourceStem> {
        self.inner
            .stems()
            .into_iter()
            .map(|s| self.rename(s))
            .collect()
    }

    fn separate(
        &self,
        audio: &Audio,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<(SourceStem, Audio)>, SeparationError> {
        Ok(self.rename_all(self.inner.separate(audio, progress)?))
    }

    fn separate_below(
        &self,
        audio: &Audio,
        max_hz: f32,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<(SourceStem, Audio)>, SeparationError> {
        Ok(self.rename_all(self.inner.separate_below(audio, max_hz, progress)?))
    }
}

/// The first model file installed with `stemscribe models add` whose stems are the
/// [`FOUR_STEMS`] (in any order); only files whose card names `sources` (HT-Demucs) or is a
/// RoFormer's are opened, and one that cannot be opened is an error.
fn four_stem_file(runtime: &Runtime) -> Result<Option<ModelFile>, EngineError> {
    for file in user_model_files(runtime.models_dir()) {
        let card = std::fs::read_to_string(file.with_extension("json")).unwrap_or_default();
        let may_have_four =
            card.contains("\"sources\"") || card.contains("\"roformer\"") || is_ensemble(&file);
        if !may_have_four {
            continue;
        }
        let model = ModelFile::open(runtime, &file)?;
        if model.has_stems(&FOUR_STEMS) {
            return Ok(Some(model));
        }
    }
    Ok(None)
}

/// What `model` separates: for the four-track models `audio` without its mains hum (their
/// first step), else `audio` as it is.
fn model_input(audio: &Audio, model: SeparationModel) -> Cow<'_, Audio> {
    let dehummed = model
        .is_four_track()
        .then(|| {
            measure(Stage::PostProcess, || {
                remove_hum(audio, &HumOptions::default())
            })
        })
        .flatten();
    dehummed.map_or(Cow::Borrowed(audio), |(clean, _)| Cow::Owned(clean))
}

/// The first card in `models_dir` whose stems are exactly the [`FOUR_STEMS`]; any broken
/// card is an error rather than silently ignored.
pub fn four_stem_card(models_dir: &std::path::Path) -> Result<Option<ModelCard>, CardError> {
    let cards = installed_cards(models_dir)
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    Ok(cards
        .into_iter()
        .find(|card| card.has_stems(&FOUR_STEMS.map(SourceStem::name))))
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

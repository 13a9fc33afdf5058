//! The separation boundary every model family implements ([`Separate`]), the stems they
//! return ([`SourceStem`]), and model files users bring: which family an ONNX file belongs
//! to (from its tensors), and one way to run any of them.

use std::fmt;
use std::path::Path;

use stemscribe_audio::Audio;
use stemscribe_runtime::{Progress, Runtime, WeightPacking};
use thiserror::Error;

use crate::demucs::DemucsModel;
use crate::ensemble::{Ensemble, EnsembleMethod};
use crate::mdx::{MdxModel, MdxOptions, MdxParams, MdxParamsError, MdxStem};
use crate::roformer::{RoformerModel, RoformerParams, RoformerParamsError};
use crate::SeparationError;

/// A loaded separation network of any family: Spleeter-style masks ([`crate::Separator`]),
/// UVR MDX-Net ([`MdxModel`]), HT-Demucs ([`DemucsModel`]), or a test double.
pub trait Separate: Send + Sync + fmt::Debug {
    /// The file the network was loaded from.
    fn file(&self) -> &Path;

    /// The stems [`Separate::separate`] returns, in its order.
    fn stems(&self) -> Vec<SourceStem>;

    /// Separates 44.1 kHz stereo `audio` into [`Separate::stems`], each 44.1 kHz stereo and
    /// exactly as long as the input; `progress` counts network calls.
    fn separate(
        &self,
        audio: &Audio,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<(SourceStem, Audio)>, SeparationError>;

    /// As [`Separate::separate`], for a caller who needs only what lies below `max_hz`: the
    /// stems are close to `separate`'s there and may be rough above. A model that can run on
    /// the low band alone does so, in less time; the others separate the whole band.
    fn separate_below(
        &self,
        audio: &Audio,
        _max_hz: f32,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<(SourceStem, Audio)>, SeparationError> {
        self.separate(audio, progress)
    }

    /// As [`Separate::separate`] (or [`Separate::separate_below`] with `max_hz`), returning
    /// only the stems in `wanted`, in [`Separate::stems`] order: a model that can skip the work
    /// of the others does, and the stems it returns are the same either way.
    fn separate_selected(
        &self,
        audio: &Audio,
        wanted: &[SourceStem],
        max_hz: Option<f32>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<(SourceStem, Audio)>, SeparationError> {
        let mut stems = match max_hz {
            Some(hz) => self.separate_below(audio, hz, progress)?,
            None => self.separate(audio, progress)?,
        };
        stems.retain(|(stem, _)| wanted.contains(stem));
        Ok(stems)
    }

    /// Whether its stems are exactly `stems`, in any order.
    fn has_stems(&self, stems: &[SourceStem]) -> bool {
        let wanted: Vec<&str> = stems.iter().map(|s| s.name()).collect();
        crate::spec::same_stems(self.stems().iter().map(|s| s.name()), &wanted)
    }
}

/// A stem a model can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceStem {
    /// The voice.
    Vocals,
    /// Everything but the voice, as 2-stem mask models (Spleeter) name it.
    Accompaniment,
    /// Everything but the voice, as MDX-Net models name it.
    Instrumental,
    /// Drums and percussion.
    Drums,
    /// Bass.
    Bass,
    /// Whatever no other stem takes.
    Other,
    /// Guitar (six-stem models).
    Guitar,
    /// Piano (six-stem models).
    Piano,
    /// Everything but the drums.
    NoDrums,
    /// Everything but the bass.
    NoBass,
    /// Everything but "other".
    NoOther,
}

impl SourceStem {
    /// Every stem, in the order [`SourceStem::name`] lists them.
    pub const ALL: [Self; 11] = [
        Self::Vocals,
        Self::Accompaniment,
        Self::Instrumental,
        Self::Drums,
        Self::Bass,
        Self::Other,
        Self::Guitar,
        Self::Piano,
        Self::NoDrums,
        Self::NoBass,
        Self::NoOther,
    ];

    /// Its file name (without extension).
    pub fn name(self) -> &'static str {
        match self {
            Self::Vocals => "vocals",
            Self::Accompaniment => "accompaniment",
            Self::Instrumental => "instrumental",
            Self::Drums => "drums",
            Self::Bass => "bass",
            Self::Other => "other",
            Self::Guitar => "guitar",
            Self::Piano => "piano",
            Self::NoDrums => "no_drums",
            Self::NoBass => "no_bass",
            Self::NoOther => "no_other",
        }
    }

    /// Parses a stem name as models name them (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        let lower = name.to_ascii_lowercase();
        Self::ALL.into_iter().find(|s| s.name() == lower)
    }

    /// Whether it is everything but the voice (accompaniment or instrumental).
    pub fn is_accompaniment(self) -> bool {
        matches!(self, Self::Accompaniment | Self::Instrumental)
    }
}

impl From<MdxStem> for SourceStem {
    fn from(stem: MdxStem) -> Self {
        match stem {
            MdxStem::Vocals => Self::Vocals,
            MdxStem::Instrumental => Self::Instrumental,
            MdxStem::Drums => Self::Drums,
            MdxStem::Bass => Self::Bass,
            MdxStem::Other => Self::Other,
        }
    }
}

/// Why a model file could not be opened.
#[derive(Debug, Error)]
pub enum ModelFileError {
    /// The runtime could not load the file, or the tensors do not fit the family.
    #[error(transparent)]
    Separation(#[from] SeparationError),
    /// An MDX-Net model's parameters are missing or wrong.
    #[error(transparent)]
    Params(#[from] MdxParamsError),
    /// A converted RoFormer's card is missing or wrong.
    #[error(transparent)]
    Roformer(#[from] RoformerParamsError),
    /// The tensors match no supported family.
    #[error(
        "{file} is not a supported model: its inputs are {inputs}; supported are UVR MDX-Net \
         (one input [batch, 4, dim_f, dim_t]), HT-Demucs ONNX (input `mix` [1, 2, samples], \
         output `stems`) and RoFormers converted by stemscribe (input `bands`)"
    )]
    Unsupported {
        /// The file.
        file: String,
        /// Its input tensors, named with their shapes.
        inputs: String,
    },
    /// An installed ensemble's file cannot be used.
    #[error("ensemble {file}: {reason}")]
    Ensemble {
        /// The ensemble's file.
        file: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// A model file of any supported family, loaded.
#[derive(Debug)]
pub enum ModelFile {
    /// A UVR MDX-Net model.
    Mdx(MdxModel),
    /// An HT-Demucs ONNX model.
    Demucs(DemucsModel),
    /// A BS-RoFormer, Mel-Band RoFormer or MDX23C, converted from its checkpoint.
    Roformer(RoformerModel),
    /// Installed models run as one (`NAME.ensemble`, written by [`install_ensemble`]).
    Ensemble(Ensemble),
}

impl ModelFile {
    /// Loads `file` and tells its family from its tensors: an input `mix` is HT-Demucs, a
    /// single rank-4 input with 4 channels is MDX-Net.
    /// An installed ensemble's file (`NAME.ensemble`) opens each of its members.
    pub fn open(runtime: &Runtime, file: &Path) -> Result<Self, ModelFileError> {
        if is_ensemble(file) {
            let ensemble = open_ensemble(file, |member| -> Result<_, ModelFileError> {
                Ok(Box::new(Self::open(runtime, &member)?) as Box<dyn Separate>)
            })?;
            return Ok(Self::Ensemble(ensemble));
        }
        // A converted RoFormer (its card beside it) keeps one copy of its weights.
        let packing = if RoformerParams::for_model(file).is_ok() {
            WeightPacking::AsStored
        } else {
            WeightPacking::Packed
        };
        let model = runtime
            .model_at_with(file, packing)
            .map_err(SeparationError::from)?;
        if model.input("mix").is_some() {
            return Ok(Self::Demucs(DemucsModel::from_model(model)?));
        }
        if model.input("bands").is_some() {
            let params = RoformerParams::for_model(file)?;
            return Ok(Self::Roformer(RoformerModel::from_model(model, params)?));
        }
        let mdx_like = matches!(model.inputs(), [input] if input
            .shape
            .as_ref()
            .is_some_and(|shape| shape.len() == 4 && shape[1] == 4));
        if mdx_like {
            let params = MdxParams::for_model(file)?;
            return Ok(Self::Mdx(MdxModel::from_model(model, params)?));
        }
        let inputs = model
            .inputs()
            .iter()
            .map(|i| {
                let shape = i
                    .shape
                    .as_ref()
                    .map_or_else(|| "?".to_owned(), |s| format!("{s:?}"));
                format!("`{}` {shape}", i.name)
            })
            .collect::<Vec<_>>()
            .join(", ");
        Err(ModelFileError::Unsupported {
            file: file.display().to_string(),
            inputs,
        })
    }

    /// The same model, with MDX-Net's options (ignored by other families).
    pub fn with_mdx_options(self, options: MdxOptions) -> Self {
        match self {
            Self::Mdx(model) => Self::Mdx(model.with_options(options)),
            other @ (Self::Demucs(_) | Self::Roformer(_) | Self::Ensemble(_)) => other,
        }
    }

    /// The family's name.
    pub fn family(&self) -> &'static str {
        match self {
            Self::Mdx(_) => "UVR MDX-Net",
            Self::Demucs(_) => "HT-Demucs ONNX",
            Self::Roformer(model) => match model.params().family {
                crate::RoformerFamily::BsRoformer => "BS-RoFormer",
                crate::RoformerFamily::MelBandRoformer => "Mel-Band RoFormer",
                crate::RoformerFamily::Mdx23c => "MDX23C",
            },
            Self::Ensemble(_) => "ensemble",
        }
    }

    fn inner(&self) -> &dyn Separate {
        match self {
            Self::Mdx(model) => model,
            Self::Demucs(model) => model,
            Self::Roformer(model) => model,
            Self::Ensemble(model) => model,
        }
    }
}

impl Separate for ModelFile {
    fn file(&self) -> &Path {
        self.inner().file()
    }

    fn stems(&self) -> Vec<SourceStem> {
        self.inner().stems()
    }

    fn separate(
        &self,
        audio: &Audio,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<(SourceStem, Audio)>, SeparationError> {
        self.inner().separate(audio, progress)
    }

    fn separate_below(
        &self,
        audio: &Audio,
        max_hz: f32,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<(SourceStem, Audio)>, SeparationError> {
        self.inner().separate_below(audio, max_hz, progress)
    }
}

/// The JSON that describes a model file: `NAME.json` beside `NAME.onnx`, else `MODEL.json` in
/// the same folder; `None` when neither exists.
pub(crate) fn card_beside(model: &Path) -> Option<std::path::PathBuf> {
    [
        model.with_extension("json"),
        model.with_file_name("MODEL.json"),
    ]
    .into_iter()
    .find(|json| json.is_file())
}

/// The folder of the models directory where `stemscribe models add` puts model files.
pub const USER_MODELS_DIR: &str = "user";

/// The model files installed under `models_dir/user/` (`*.onnx`, and the ensembles,
/// `*.ensemble`), sorted by name.
pub fn user_model_files(models_dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(models_dir.join(USER_MODELS_DIR)) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "onnx") || is_ensemble(path))
        .collect();
    files.sort();
    files
}

/// The extension of an installed ensemble's file: JSON that names its members.
pub const ENSEMBLE_EXTENSION: &str = "ensemble";

/// Whether `file` is an installed ensemble's file (`NAME.ensemble`).
pub fn is_ensemble(file: &Path) -> bool {
    file.extension().is_some_and(|e| e == ENSEMBLE_EXTENSION)
}

/// An installed ensemble's file, as written.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EnsembleFile {
    ensemble: EnsembleFields,
}

/// The fields of [`EnsembleFile`].
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EnsembleFields {
    /// `avg_wave` or `median_wave`.
    method: String,
    /// The installed names of its models, each `NAME.onnx` beside the ensemble's file.
    members: Vec<String>,
}

/// The method and the member files of the installed ensemble `file`; every member must be
/// an installed model file (not another ensemble).
pub fn read_ensemble(
    file: &Path,
) -> Result<(EnsembleMethod, Vec<std::path::PathBuf>), ModelFileError> {
    let refuse = |reason: String| ModelFileError::Ensemble {
        file: file.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(file).map_err(|e| refuse(format!("cannot read it: {e}")))?;
    let fields = serde_json::from_str::<EnsembleFile>(&text)
        .map_err(|e| refuse(format!("not an ensemble file: {e}")))?
        .ensemble;
    let method = fields
        .method
        .parse::<EnsembleMethod>()
        .map_err(|e| refuse(e.to_string()))?;
    let dir = file.parent().unwrap_or(Path::new("."));
    let members = fields
        .members
        .iter()
        .map(|name| {
            let member = dir.join(format!("{name}.onnx"));
            if valid_name(name) && member.is_file() {
                Ok(member)
            } else {
                Err(refuse(format!(
                    "its model {name:?} is not installed (no {})",
                    member.display()
                )))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((method, members))
}

/// The installed ensemble `file`, each member opened by `open` (which may read it as
/// something other than a plain [`ModelFile`], e.g. as a two-stem model).
pub fn open_ensemble<E: From<ModelFileError>>(
    file: &Path,
    open: impl FnMut(std::path::PathBuf) -> Result<Box<dyn Separate>, E>,
) -> Result<Ensemble, E> {
    let (method, members) = read_ensemble(file)?;
    let models = members
        .into_iter()
        .map(open)
        .collect::<Result<Vec<_>, E>>()?;
    let ensemble = Ensemble::new(models, method).ok_or_else(|| ModelFileError::Ensemble {
        file: file.to_path_buf(),
        reason: "it names no models".to_owned(),
    })?;
    Ok(ensemble.with_file(file.to_path_buf()))
}

/// Installs the ensemble `name` of the installed models `members` (two or more, by the names
/// they were installed under), combined by `method`: writes `models_dir/user/NAME.ensemble`
/// after opening every member. Returns its path.
pub fn install_ensemble(
    runtime: &Runtime,
    name: &str,
    members: &[String],
    method: EnsembleMethod,
) -> Result<std::path::PathBuf, InstallError> {
    if !valid_name(name) {
        return Err(InstallError::BadName(name.to_owned()));
    }
    let dir = runtime.models_dir().join(USER_MODELS_DIR);
    let target = dir.join(format!("{name}.{ENSEMBLE_EXTENSION}"));
    if target.exists() || dir.join(format!("{name}.onnx")).exists() {
        return Err(InstallError::Exists(target));
    }
    if members.len() < 2 {
        return Err(InstallError::Model(ModelFileError::Ensemble {
            file: target,
            reason: "an ensemble needs two or more installed models".to_owned(),
        }));
    }
    let fields = EnsembleFields {
        method: method.name().to_owned(),
        members: members.to_vec(),
    };
    let text = serde_json::to_string_pretty(&EnsembleFile { ensemble: fields })
        .unwrap_or_else(|_| unreachable!("strings serialise"))
        + "\n";
    let partial = target.with_extension("ensemble.partial");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| InstallError::Io { path, source }
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    std::fs::write(&partial, text).map_err(io(&partial))?;
    let checked = read_ensemble(&partial).and_then(|(_, files)| {
        files
            .iter()
            .try_for_each(|file| ModelFile::open(runtime, file).map(drop))
    });
    if let Err(error) = checked {
        // Best effort: the partial file is never listed, whatever happens to it.
        let _ = std::fs::remove_file(&partial);
        return Err(error.into());
    }
    std::fs::rename(&partial, &target).map_err(io(&target))?;
    Ok(target)
}

/// Whether `name` is a plain file name to install under: letters, digits, `-`, `_`, `.`,
/// not starting with a dot.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Why a model file could not be installed.
#[derive(Debug, Error)]
pub enum InstallError {
    /// The file is not a model stemscribe can run.
    #[error(transparent)]
    Model(#[from] ModelFileError),
    /// The name to install under is not a plain file name.
    #[error("cannot install as {0:?}: use letters, digits, '-', '_' and '.'")]
    BadName(String),
    /// A model is already installed under that name.
    #[error("{0} is already installed; remove it first or pick another --name")]
    Exists(std::path::PathBuf),
    /// Copying failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file being written.
        path: std::path::PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// Checks that `file` runs (family, parameters), then copies it into `models_dir/user/` as
/// `NAME.onnx` with its card `NAME.json` (UVR's fields for MDX-Net, `{"sources": [...]}` for
/// HT-Demucs), so that it keeps working without the files beside the original. Returns the
/// installed path.
pub fn install_model_file(
    runtime: &Runtime,
    file: &Path,
    name: &str,
) -> Result<std::path::PathBuf, InstallError> {
    if !valid_name(name) {
        return Err(InstallError::BadName(name.to_owned()));
    }
    let model = ModelFile::open(runtime, file)?;
    let dir = runtime.models_dir().join(USER_MODELS_DIR);
    let target = dir.join(format!("{name}.onnx"));
    if target.exists() {
        return Err(InstallError::Exists(target));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| InstallError::Io { path, source }
    };
    let card = match &model {
        ModelFile::Mdx(mdx) => mdx.params().to_uvr_json(),
        ModelFile::Demucs(demucs) => {
            let sources: Vec<&str> = demucs.sources().iter().map(|s| s.name()).collect();
            serde_json::json!({ "sources": sources }).to_string()
        }
        ModelFile::Roformer(roformer) => roformer.params().to_card_json(),
        ModelFile::Ensemble(_) => {
            return Err(InstallError::Model(ModelFileError::Ensemble {
                file: file.to_path_buf(),
                reason: "install an ensemble with `stemscribe models ensemble`".to_owned(),
            }))
        }
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let card_path = target.with_extension("json");
    std::fs::write(&card_path, card + "\n").map_err(io(&card_path))?;
    let partial = target.with_extension("onnx.partial");
    std::fs::copy(file, &partial).map_err(io(&partial))?;
    std::fs::rename(&partial, &target).map_err(io(&target))?;
    Ok(target)
}

/// Whether `file` is a PyTorch checkpoint (`.ckpt`, `.pth`, `.pt`), which stemscribe
/// converts ([`convert_checkpoint`]) before it runs.
pub fn is_checkpoint(file: &Path) -> bool {
    file.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "ckpt" | "pth" | "pt"))
}

/// Why a checkpoint could not be converted.
#[derive(Debug, Error)]
pub enum ConvertError {
    /// No YAML config was given and none lies beside the checkpoint.
    #[error("{0} needs its YAML config: MODEL.yaml beside it, or --config FILE.yaml")]
    NoConfig(std::path::PathBuf),
    /// The checkpoint or config could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The converter refused the checkpoint or could not run.
    #[error(transparent)]
    Converter(#[from] stemscribe_runtime::setup::SetupError),
}

/// The converted form of a BS-RoFormer, Mel-Band RoFormer or MDX23C `checkpoint` (ONNX graph and
/// card), made once and kept in `cache/converted/` under a key of the checkpoint's path, size
/// and modification time, the config's contents and the converter's; `config` defaults to
/// the checkpoint's name with `.yaml` (or `.yml`). `log` gets the converter's lines.
pub fn convert_checkpoint(
    checkpoint: &Path,
    config: Option<&Path>,
    cache: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<std::path::PathBuf, ConvertError> {
    use md5::{Digest, Md5};
    let config = match config {
        Some(config) => config.to_path_buf(),
        None => ["yaml", "yml"]
            .iter()
            .map(|e| checkpoint.with_extension(e))
            .find(|p| p.is_file())
            .ok_or_else(|| ConvertError::NoConfig(checkpoint.to_path_buf()))?,
    };
    let read = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ConvertError::Read { path, source }
    };
    let meta = std::fs::metadata(checkpoint).map_err(read(checkpoint))?;
    let absolute = std::fs::canonicalize(checkpoint).map_err(read(checkpoint))?;
    let yaml = std::fs::read(&config).map_err(read(&config))?;
    let mut hasher = Md5::new();
    hasher.update(absolute.to_string_lossy().as_bytes());
    hasher.update(meta.len().to_le_bytes());
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    hasher.update(modified.to_le_bytes());
    hasher.update(&yaml);
    for converter in ["scripts/setup/roformer.py", "scripts/setup/mdx23c.py"] {
        hasher.update(stemscribe_runtime::setup::kit_file(converter).unwrap_or(""));
    }
    let key: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = cache.join("converted").join(&key);
    let onnx = dir.join("model.onnx");
    if onnx.is_file() && dir.join("model.json").is_file() {
        return Ok(onnx);
    }
    std::fs::create_dir_all(&dir).map_err(read(&dir))?;
    stemscribe_runtime::setup::convert_checkpoint(checkpoint, &config, &onnx, cache, log)?;
    Ok(onnx)
}

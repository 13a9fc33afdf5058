//! Model files users bring: which family an ONNX file belongs to (from its tensors), and one
//! way to run any of them.

use std::path::Path;

use stemscribe_audio::Audio;
use stemscribe_runtime::Runtime;
use thiserror::Error;

use crate::demucs::DemucsModel;
use crate::mdx::{MdxModel, MdxOptions, MdxParams, MdxParamsError, MdxStem};
use crate::{Progress, SeparationError};

/// A stem a model file can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceStem {
    /// The voice.
    Vocals,
    /// Everything but the voice.
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
    pub const ALL: [Self; 10] = [
        Self::Vocals,
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

    /// Parses a stem name as models name them (case-insensitive; "accompaniment" is the
    /// instrumental).
    pub fn from_name(name: &str) -> Option<Self> {
        let lower = name.to_ascii_lowercase();
        if lower == "accompaniment" {
            return Some(Self::Instrumental);
        }
        Self::ALL.into_iter().find(|s| s.name() == lower)
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
    /// The runtime could not build a session, or the tensors do not fit the family.
    #[error(transparent)]
    Separation(#[from] SeparationError),
    /// An MDX-Net model's parameters are missing or wrong.
    #[error(transparent)]
    Params(#[from] MdxParamsError),
    /// The tensors match no supported family.
    #[error(
        "{file} is not a supported model: its inputs are {inputs}; supported are UVR MDX-Net \
         (one input [batch, 4, dim_f, dim_t]) and HT-Demucs ONNX (input `mix` [1, 2, samples], \
         output `stems`)"
    )]
    Unsupported {
        /// The file.
        file: String,
        /// Its input tensors, named with their shapes.
        inputs: String,
    },
}

/// A model file of any supported family, loaded.
#[derive(Debug)]
pub enum ModelFile {
    /// A UVR MDX-Net model.
    Mdx(MdxModel),
    /// An HT-Demucs ONNX model.
    Demucs(DemucsModel),
}

impl ModelFile {
    /// Loads `file` and tells its family from its tensors: an input `mix` is HT-Demucs, a
    /// single rank-4 input with 4 channels is MDX-Net.
    pub fn open(runtime: &Runtime, file: &Path) -> Result<Self, ModelFileError> {
        let session = runtime.session_at(file).map_err(SeparationError::from)?;
        let inputs = session.inputs();
        if inputs.iter().any(|i| i.name() == "mix") {
            return Ok(Self::Demucs(DemucsModel::from_session(session, file)?));
        }
        let mdx_like = matches!(inputs, [input] if input
            .dtype()
            .tensor_shape()
            .is_some_and(|shape| shape.len() == 4 && shape[1] == 4));
        if mdx_like {
            let params = MdxParams::for_model(file)?;
            return Ok(Self::Mdx(MdxModel::from_session(session, file, params)?));
        }
        let inputs = inputs
            .iter()
            .map(|i| {
                let shape = i
                    .dtype()
                    .tensor_shape()
                    .map_or_else(|| "?".to_owned(), |s| format!("{:?}", &s[..]));
                format!("`{}` {shape}", i.name())
            })
            .collect::<Vec<_>>()
            .join(", ");
        Err(ModelFileError::Unsupported {
            file: file.display().to_string(),
            inputs,
        })
    }

    /// The file it was loaded from.
    pub fn file(&self) -> &Path {
        match self {
            Self::Mdx(model) => model.file(),
            Self::Demucs(model) => model.file(),
        }
    }

    /// Whether its stems are exactly `names` (as [`SourceStem::name`] spells them), in any
    /// order.
    pub fn has_stems(&self, names: &[&str]) -> bool {
        crate::spec::same_stems(self.stems().iter().map(|s| s.name()), names)
    }

    /// The family's name.
    pub fn family(&self) -> &'static str {
        match self {
            Self::Mdx(_) => "UVR MDX-Net",
            Self::Demucs(_) => "HT-Demucs ONNX",
        }
    }

    /// The stems [`ModelFile::separate`] returns, in order.
    pub fn stems(&self) -> Vec<SourceStem> {
        match self {
            Self::Mdx(model) => {
                let primary = model.params().primary;
                let secondary = match primary {
                    MdxStem::Vocals => SourceStem::Instrumental,
                    MdxStem::Instrumental => SourceStem::Vocals,
                    MdxStem::Drums => SourceStem::NoDrums,
                    MdxStem::Bass => SourceStem::NoBass,
                    MdxStem::Other => SourceStem::NoOther,
                };
                vec![primary.into(), secondary]
            }
            Self::Demucs(model) => model.sources().to_vec(),
        }
    }

    /// Separates 44.1 kHz stereo `audio` into [`ModelFile::stems`].
    pub fn separate(
        &self,
        audio: &Audio,
        options: &MdxOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<(SourceStem, Audio)>, SeparationError> {
        match self {
            Self::Mdx(model) => {
                let stems = model.separate(audio, options, progress)?;
                let names = self.stems();
                Ok(vec![(names[0], stems.primary), (names[1], stems.secondary)])
            }
            Self::Demucs(model) => model.separate(audio, progress),
        }
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

/// The model files installed under `models_dir/user/` (`*.onnx`, sorted by name).
pub fn user_model_files(models_dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(models_dir.join(USER_MODELS_DIR)) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "onnx"))
        .collect();
    files.sort();
    files
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
    let valid = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
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
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let card = match &model {
        ModelFile::Mdx(mdx) => mdx.params().to_uvr_json(),
        ModelFile::Demucs(demucs) => {
            let sources: Vec<&str> = demucs.sources().iter().map(|s| s.name()).collect();
            serde_json::json!({ "sources": sources }).to_string()
        }
    };
    let card_path = target.with_extension("json");
    std::fs::write(&card_path, card + "\n").map_err(io(&card_path))?;
    let partial = target.with_extension("onnx.partial");
    std::fs::copy(file, &partial).map_err(io(&partial))?;
    std::fs::rename(&partial, &target).map_err(io(&target))?;
    Ok(target)
}

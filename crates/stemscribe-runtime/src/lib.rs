//! The inference runtime: locating `libonnxruntime.so` and model files, loading ONNX Runtime
//! once per process, and building sessions. Model code lives elsewhere; this crate knows
//! nothing about what a model computes.
//!
//! # Where files are looked up
//! The ONNX Runtime library, first match wins:
//! 1. [`RuntimeConfig::library`], an explicit path;
//! 2. the environment variable [`LIBRARY_ENV`] (`STEMSCRIBE_ORT_LIB`);
//! 3. `lib/libonnxruntime.so` inside the models directory.
//!
//! The models directory, first match wins:
//! 1. [`RuntimeConfig::models_dir`];
//! 2. the environment variable [`MODELS_ENV`] (`STEMSCRIBE_MODELS_DIR`);
//! 3. the `models/installed/` of the checkout this crate was built from, where
//!    `scripts/setup.sh` puts everything, if that checkout still exists;
//! 4. the user's data directory, `$XDG_DATA_HOME/stemscribe/models` (by default
//!    `~/.local/share/stemscribe/models`), where `scripts/setup.sh --user` installs, so that
//!    a binary installed with `cargo install` works without the source tree.
//!
//! ONNX Runtime is loaded once per process and its one environment is shared: a second
//! [`Runtime`] reuses the library the first one loaded, whatever path it names. That
//! environment is the only global state of stemscribe.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use thiserror::Error;

/// Environment variable naming the ONNX Runtime shared library.
pub const LIBRARY_ENV: &str = "STEMSCRIBE_ORT_LIB";
/// Environment variable naming the directory of installed models.
pub const MODELS_ENV: &str = "STEMSCRIBE_MODELS_DIR";
/// The command that installs the runtime and the models (from a stemscribe checkout).
pub const SETUP_COMMAND: &str =
    "scripts/setup.sh, or scripts/setup.sh --user for the user's data directory";

/// Why the runtime or a model could not be loaded.
#[derive(Debug, Error)]
pub enum RuntimeError {
    /// No ONNX Runtime library at the path that was looked up.
    #[error("ONNX Runtime library not found at {0} (install it with `{SETUP_COMMAND}` in a stemscribe checkout, `--user` for the user's data directory, or set {LIBRARY_ENV})")]
    LibraryMissing(PathBuf),
    /// The library exists but could not be loaded.
    #[error("cannot load ONNX Runtime from {path}: {reason}")]
    LibraryLoad {
        /// The library path.
        path: PathBuf,
        /// What the loader said.
        reason: String,
    },
    /// A model file is not installed.
    #[error(
        "model file {0} not found (install the models with `{SETUP_COMMAND}` in a stemscribe checkout, `--user` for the user's data directory, or set {MODELS_ENV})"
    )]
    ModelMissing(PathBuf),
    /// ONNX Runtime refused to build a session or run a model.
    #[error("ONNX Runtime: {0}")]
    Ort(String),
}

impl From<ort::Error> for RuntimeError {
    fn from(error: ort::Error) -> Self {
        Self::Ort(error.to_string())
    }
}

impl From<ort::Error<ort::session::builder::SessionBuilder>> for RuntimeError {
    fn from(error: ort::Error<ort::session::builder::SessionBuilder>) -> Self {
        Self::Ort(error.to_string())
    }
}

/// Where to find the runtime and the models, and how many threads inference may use.
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    /// Explicit path to `libonnxruntime.so`.
    pub library: Option<PathBuf>,
    /// Explicit models directory.
    pub models_dir: Option<PathBuf>,
    /// Threads per inference (intra-op); `None` uses every available core.
    pub threads: Option<usize>,
}

/// A loaded ONNX Runtime and the directory models are read from.
#[derive(Debug)]
pub struct Runtime {
    environment: Environment,
    models_dir: PathBuf,
    threads: usize,
}

impl Runtime {
    /// Finds and loads ONNX Runtime as described in the [crate docs](crate).
    pub fn new(config: &RuntimeConfig) -> Result<Self, RuntimeError> {
        let models_dir = config
            .models_dir
            .clone()
            .or_else(|| std::env::var_os(MODELS_ENV).map(PathBuf::from))
            .unwrap_or_else(|| {
                default_models_dir(
                    &project_models_dir(),
                    std::env::var_os("XDG_DATA_HOME").map(PathBuf::from),
                    std::env::var_os("HOME").map(PathBuf::from),
                )
            });
        let library = config
            .library
            .clone()
            .or_else(|| std::env::var_os(LIBRARY_ENV).map(PathBuf::from))
            .unwrap_or_else(|| models_dir.join("lib").join("libonnxruntime.so"));
        if !library.is_file() {
            return Err(RuntimeError::LibraryMissing(library));
        }
        let environment = shared_environment(&library)?;
        let threads = config.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        Ok(Self {
            environment,
            models_dir,
            threads: threads.max(1),
        })
    }

    /// The directory model files are read from.
    pub fn models_dir(&self) -> &Path {
        &self.models_dir
    }

    /// Threads each inference may use.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The path of an installed model file, or [`RuntimeError::ModelMissing`].
    pub fn model_path(&self, file_name: &str) -> Result<PathBuf, RuntimeError> {
        let path = self.models_dir.join(file_name);
        if path.is_file() {
            Ok(path)
        } else {
            Err(RuntimeError::ModelMissing(path))
        }
    }

    /// Builds a CPU session for an installed model file, fully optimised.
    pub fn session(&self, file_name: &str) -> Result<Session, RuntimeError> {
        self.session_at(&self.model_path(file_name)?)
    }

    /// Builds a CPU session for the model file at `path` (anywhere), fully optimised.
    pub fn session_at(&self, path: &Path) -> Result<Session, RuntimeError> {
        if !path.is_file() {
            return Err(RuntimeError::ModelMissing(path.to_path_buf()));
        }
        let session = Session::builder(&self.environment)?
            .with_optimization_level(GraphOptimizationLevel::All)?
            .with_intra_threads(self.threads)?
            .with_inter_threads(1)?
            .commit_from_file(path)?;
        Ok(session)
    }
}

/// The process's one ONNX Runtime environment (ONNX Runtime allows no second one).
static ENVIRONMENT: Mutex<Option<Environment>> = Mutex::new(None);

/// Loads `library` and builds the environment on first use; later calls share it.
fn shared_environment(library: &Path) -> Result<Environment, RuntimeError> {
    let mut slot = ENVIRONMENT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(environment) = slot.as_ref() {
        return Ok(environment.clone());
    }
    let environment = ort::init_from(library)
        .map_err(|e| RuntimeError::LibraryLoad {
            path: library.to_path_buf(),
            reason: e.to_string(),
        })?
        .with_name("stemscribe")
        .build()?;
    *slot = Some(environment.clone());
    Ok(environment)
}

/// `models/installed/` of the workspace this crate was built in.
/// The checkout's models directory if it exists, else the user's (see the [crate docs](crate));
/// the checkout's when neither can be named.
fn default_models_dir(
    project: &Path,
    xdg_data_home: Option<PathBuf>,
    home: Option<PathBuf>,
) -> PathBuf {
    if project.is_dir() {
        return project.to_owned();
    }
    xdg_data_home
        .filter(|dir| dir.is_absolute())
        .or_else(|| home.map(|home| home.join(".local/share")))
        .map_or_else(|| project.to_owned(), |data| data.join("stemscribe/models"))
}

fn project_models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/installed")
        .components()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checkout_comes_first_then_the_user_data_directory() {
        let existing = std::env::temp_dir();
        let gone = Path::new("/nonexistent/stemscribe/models/installed");
        assert_eq!(default_models_dir(&existing, None, None), existing);
        assert_eq!(
            default_models_dir(gone, Some("/data".into()), Some("/home/u".into())),
            PathBuf::from("/data/stemscribe/models")
        );
        // A relative XDG_DATA_HOME is invalid by the specification and ignored.
        assert_eq!(
            default_models_dir(gone, Some("data".into()), Some("/home/u".into())),
            PathBuf::from("/home/u/.local/share/stemscribe/models")
        );
        assert_eq!(default_models_dir(gone, None, None), gone);
    }
}

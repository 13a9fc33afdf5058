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
//!    `~/.local/share/stemscribe/models`), where `stemscribe setup` (see [`setup`]) and
//!    `scripts/setup.sh --user` install, so that a binary installed with `cargo install` or a
//!    Python wheel works without the source tree.
//!
//! ONNX Runtime is loaded once per process and its one environment is shared: a second
//! [`Runtime`] reuses the library the first one loaded, whatever path it names. That
//! environment is the only global state of stemscribe.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::environment::Environment;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::Session;
use thiserror::Error;

mod device;
mod model;
pub mod setup;

pub use device::{CudaError, Device, DeviceUse, UnknownDevice};
pub use model::{Input, Model, Tensor, TensorSpec};

/// Environment variable naming the ONNX Runtime shared library.
pub const LIBRARY_ENV: &str = "STEMSCRIBE_ORT_LIB";
/// Environment variable naming the directory of installed models.
pub const MODELS_ENV: &str = "STEMSCRIBE_MODELS_DIR";
/// The commands that install the runtime and the models.
pub const SETUP_COMMAND: &str =
    "`stemscribe setup`, `stemscribe.setup()` in Python, or scripts/setup.sh in a checkout";

/// How far a long task has come, in steps (network windows) of the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Steps done.
    pub done: usize,
    /// Steps in all.
    pub total: usize,
}

/// Whether a session also keeps its matrix weights re-laid-out for ONNX Runtime's kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightPacking {
    /// ONNX Runtime's default: packed copies of the weights, a few per cent faster.
    #[default]
    Packed,
    /// The weights as stored, one copy: for large transformers, where the packed copies cost
    /// hundreds of MB (300 MB for a full-size BS-RoFormer) for about 4% of speed.
    AsStored,
}

/// Why the runtime or a model could not be loaded or run.
#[derive(Debug, Error)]
pub enum RuntimeError {
    /// No ONNX Runtime library at the path that was looked up.
    #[error("ONNX Runtime library not found at {0} (install it with {SETUP_COMMAND}, or set {LIBRARY_ENV})")]
    LibraryMissing(PathBuf),
    /// The library exists but could not be loaded.
    #[error("cannot load ONNX Runtime from {path}")]
    LibraryLoad {
        /// The library path.
        path: PathBuf,
        /// What the loader said.
        #[source]
        source: ort::Error,
    },
    /// A model file is not installed.
    #[error(
        "model file {0} not found (install the models with {SETUP_COMMAND}, or set {MODELS_ENV})"
    )]
    ModelMissing(PathBuf),
    /// ONNX Runtime refused to load a model file.
    #[error("ONNX Runtime cannot load {file}")]
    Load {
        /// The model file.
        file: PathBuf,
        /// What ONNX Runtime said.
        #[source]
        source: ort::Error,
    },
    /// ONNX Runtime failed while running a model.
    #[error("ONNX Runtime failed running {file}")]
    Run {
        /// The model file.
        file: PathBuf,
        /// What ONNX Runtime said.
        #[source]
        source: ort::Error,
    },
    /// A model's tensors are not what its family or card says.
    #[error("model {} does not match its description: {reason}", file.display())]
    Mismatch {
        /// The model file.
        file: PathBuf,
        /// What differs.
        reason: String,
    },
    /// `--device cuda` was asked for and CUDA cannot be used.
    #[error(transparent)]
    Cuda(#[from] CudaError),
}

/// Where to find the runtime and the models, how many threads inference may use, and on
/// which device.
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    /// Explicit path to `libonnxruntime.so`.
    pub library: Option<PathBuf>,
    /// Explicit models directory.
    pub models_dir: Option<PathBuf>,
    /// Threads per inference (intra-op); `None` uses every available core.
    pub threads: Option<usize>,
    /// Sessions per model: how many inferences of one model may run at once (`None`: one).
    /// Each extra session holds its own copy of the model's weights and working memory.
    pub sessions: Option<usize>,
    /// CPU, CUDA, or CUDA when it works (the default).
    pub device: Device,
}

/// A loaded ONNX Runtime and the directory models are read from.
#[derive(Debug)]
pub struct Runtime {
    environment: Environment,
    models_dir: PathBuf,
    threads: usize,
    sessions: usize,
    device: Device,
    /// Whether models are loaded on CUDA first.
    cuda: bool,
    /// Why CUDA is not used, once that is known (with [`Device::Auto`]).
    fallback: Mutex<Option<String>>,
}

impl Runtime {
    /// Finds and loads ONNX Runtime as described in the [crate docs](crate); with
    /// [`Device::Cuda`] or [`Device::Auto`], the GPU build when it is installed. With
    /// [`Device::Auto`] and the CPU build, models run on the CPU and no fallback is reported
    /// (there was nothing to fall back from).
    pub fn new(config: &RuntimeConfig) -> Result<Self, RuntimeError> {
        let models_dir = config.models_dir.clone().unwrap_or_else(default_models_dir);
        let gpu_library = device::gpu_library(&models_dir);
        let library = config
            .library
            .clone()
            .or_else(|| std::env::var_os(LIBRARY_ENV).map(PathBuf::from))
            .or_else(|| {
                (config.device != Device::Cpu && gpu_library.is_file()).then(|| gpu_library.clone())
            })
            .unwrap_or_else(|| models_dir.join("lib").join("libonnxruntime.so"));
        if !library.is_file() {
            return Err(RuntimeError::LibraryMissing(library));
        }
        let environment = shared_environment(&library)?;
        let threads = config.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        let mut runtime = Self {
            environment,
            models_dir,
            threads: threads.max(1),
            sessions: config.sessions.unwrap_or(1).clamp(1, MAX_SESSIONS),
            device: config.device,
            cuda: config.device != Device::Cpu,
            fallback: Mutex::new(None),
        };
        if runtime.cuda {
            match device::prepare_cuda(&gpu_library) {
                Ok(()) => {}
                Err(CudaError::CpuBuild) if config.device == Device::Auto => runtime.cuda = false,
                Err(error) => runtime.cuda_failed(error)?,
            }
        }
        Ok(runtime)
    }

    /// The directory model files are read from.
    pub fn models_dir(&self) -> &Path {
        &self.models_dir
    }

    /// Threads each inference may use.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Sessions each model holds: inferences of one model that may run at once.
    pub fn sessions(&self) -> usize {
        self.sessions
    }

    /// The device asked for.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Where the models loaded so far run, and why not on CUDA when it was tried and failed.
    pub fn device_use(&self) -> DeviceUse {
        match (self.cuda, self.fallback_reason()) {
            (false, _) => DeviceUse::Cpu { fallback: None },
            (true, Some(reason)) => DeviceUse::Cpu {
                fallback: Some(reason),
            },
            (true, None) => DeviceUse::Cuda,
        }
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

    /// Loads an installed model file (by its name in the models directory).
    pub fn model(&self, file_name: &str) -> Result<Model, RuntimeError> {
        self.model_at(&self.models_dir.join(file_name))
    }

    /// Loads the model file at `path` (anywhere), fully optimised, on the device asked for;
    /// with [`Device::Auto`], on the CPU when CUDA fails, remembering why.
    pub fn model_at(&self, path: &Path) -> Result<Model, RuntimeError> {
        self.model_at_with(path, WeightPacking::Packed)
    }

    /// [`Runtime::model_at`], keeping the weights as `packing` says.
    pub fn model_at_with(
        &self,
        path: &Path,
        packing: WeightPacking,
    ) -> Result<Model, RuntimeError> {
        if !path.is_file() {
            return Err(RuntimeError::ModelMissing(path.to_path_buf()));
        }
        let load = |source| RuntimeError::Load {
            file: path.to_path_buf(),
            source,
        };
        let mut sessions = Vec::with_capacity(self.sessions);
        if self.cuda && self.fallback_reason().is_none() {
            while sessions.len() < self.sessions {
                match device::cuda_session(self.builder(packing).map_err(load)?, path) {
                    Ok(session) => sessions.push(session),
                    Err(error) => {
                        sessions.clear();
                        self.cuda_failed(error)?;
                        break;
                    }
                }
            }
            if !sessions.is_empty() {
                return Ok(Model::new(sessions, path));
            }
        }
        for _ in 0..self.sessions {
            sessions.push(
                self.builder(packing)
                    .and_then(|mut builder| builder.commit_from_file(path))
                    .map_err(load)?,
            );
        }
        Ok(Model::new(sessions, path))
    }

    /// A session builder with this runtime's optimisation and threads.
    /// With several sessions per model, their threads do not spin while waiting for work, so
    /// that inferences running at once share the cores instead of burning them.
    ///
    /// Memory patterns are off: with them ONNX Runtime plans one block for all of a run's
    /// intermediate tensors and keeps it, which for a full-size BS-RoFormer's 801-frame chunks
    /// held 4.1 GB where 2.5 GB are needed at once (and raised `midi` on a 3-minute song from
    /// 500 to 615 MB), for no measurable speed.
    fn builder(&self, packing: WeightPacking) -> Result<SessionBuilder, ort::Error> {
        let builder = Session::builder(&self.environment)?
            .with_optimization_level(GraphOptimizationLevel::All)?
            .with_memory_pattern(false)?
            .with_prepacking(packing == WeightPacking::Packed)?
            .with_intra_threads(self.threads)?
            .with_inter_threads(1)?;
        if self.sessions > 1 && self.threads > 1 {
            builder
                .with_intra_op_spinning(false)
                .map_err(ort::Error::from)
        } else {
            Ok(builder)
        }
    }

    /// With [`Device::Cuda`], the error; with [`Device::Auto`], falls back to the CPU and
    /// remembers why.
    fn cuda_failed(&self, error: CudaError) -> Result<(), RuntimeError> {
        if self.device == Device::Cuda {
            return Err(error.into());
        }
        let mut fallback = self
            .fallback
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        fallback.get_or_insert_with(|| device::describe(&error));
        Ok(())
    }

    fn fallback_reason(&self) -> Option<String> {
        self.fallback
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// The most sessions a model may hold.
pub const MAX_SESSIONS: usize = 64;

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
    let load = |source| RuntimeError::LibraryLoad {
        path: library.to_path_buf(),
        source,
    };
    let environment = ort::init_from(library)
        .map_err(|e| load(ort::Error::wrap(e)))?
        .with_name("stemscribe")
        .build()
        .map_err(load)?;
    *slot = Some(environment.clone());
    Ok(environment)
}

/// The models directory used when none is configured: [`MODELS_ENV`], else the checkout's
/// if it still exists, else the user's data directory (see the [crate docs](crate)).
pub fn default_models_dir() -> PathBuf {
    std::env::var_os(MODELS_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            choose_models_dir(
                &project_models_dir(),
                std::env::var_os("XDG_DATA_HOME").map(PathBuf::from),
                std::env::var_os("HOME").map(PathBuf::from),
            )
        })
}

/// The checkout's models directory if it exists, else the user's;
/// the checkout's when neither can be named.
fn choose_models_dir(
    project: &Path,
    xdg_data_home: Option<PathBuf>,
    home: Option<PathBuf>,
) -> PathBuf {
    if project.is_dir() {
        return project.to_owned();
    }
    xdg_base_dir(xdg_data_home, home, ".local/share")
        .map_or_else(|| project.to_owned(), |data| data.join("stemscribe/models"))
}

/// An XDG base directory: the variable's value when it is absolute (a relative one is invalid
/// by the specification and ignored), else `fallback` under the home directory.
pub(crate) fn xdg_base_dir(
    value: Option<PathBuf>,
    home: Option<PathBuf>,
    fallback: &str,
) -> Option<PathBuf> {
    value
        .filter(|dir| dir.is_absolute())
        .or_else(|| home.map(|home| home.join(fallback)))
}

/// `models/installed/` of the workspace this crate was built in.
fn project_models_dir() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir
        .parent()
        .and_then(Path::parent)
        .unwrap_or(crate_dir)
        .join("models")
        .join("installed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checkout_comes_first_then_the_user_data_directory() {
        let existing = std::env::temp_dir();
        let gone = Path::new("/nonexistent/stemscribe/models/installed");
        assert_eq!(choose_models_dir(&existing, None, None), existing);
        assert_eq!(
            choose_models_dir(gone, Some("/data".into()), Some("/home/u".into())),
            PathBuf::from("/data/stemscribe/models")
        );
        // A relative XDG_DATA_HOME is invalid by the specification and ignored.
        assert_eq!(
            choose_models_dir(gone, Some("data".into()), Some("/home/u".into())),
            PathBuf::from("/home/u/.local/share/stemscribe/models")
        );
        assert_eq!(choose_models_dir(gone, None, None), gone);
    }
}

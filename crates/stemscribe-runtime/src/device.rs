//! Which device runs the models: the CPU, or an NVIDIA GPU through ONNX Runtime's CUDA
//! execution provider, with the GPU build and CUDA libraries `scripts/setup.sh --gpu`
//! installs into `lib/gpu/` of the models directory.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ort::ep::{ExecutionProvider, CUDA};
use ort::session::builder::SessionBuilder;
use ort::session::Session;
use thiserror::Error;

/// The device asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// CUDA when the GPU build is installed and works; the CPU otherwise, saying why when the
    /// GPU build is installed but CUDA fails.
    #[default]
    Auto,
    /// The CPU only.
    Cpu,
    /// CUDA, or an error.
    Cuda,
}

impl Device {
    /// Every device, in documentation order.
    pub const ALL: [Self; 3] = [Self::Auto, Self::Cpu, Self::Cuda];

    /// Its name on the command line (`auto`, `cpu`, `cuda`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A device name that is not one of [`Device::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown device `{0}` (known: auto, cpu, cuda)")]
pub struct UnknownDevice(pub String);

impl FromStr for Device {
    type Err = UnknownDevice;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|d| d.name() == name)
            .ok_or_else(|| UnknownDevice(name.to_owned()))
    }
}

/// Where the models run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceUse {
    /// On the GPU, through CUDA.
    Cuda,
    /// On the CPU; `fallback` says why CUDA was not used when it was tried (`auto`).
    Cpu {
        /// Why not CUDA (`None` when it was not tried).
        fallback: Option<String>,
    },
}

impl fmt::Display for DeviceUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cuda => f.write_str("cuda"),
            Self::Cpu { fallback: None } => f.write_str("cpu"),
            Self::Cpu {
                fallback: Some(reason),
            } => write!(f, "cpu (CUDA not used: {reason})"),
        }
    }
}

/// Why CUDA cannot be used.
#[derive(Debug, Error)]
pub enum CudaError {
    /// The ONNX Runtime library loaded has no CUDA execution provider.
    #[error(
        "the ONNX Runtime loaded is the CPU build; install the GPU build with `stemscribe setup --gpu` (scripts/setup.sh --gpu in a checkout)"
    )]
    CpuBuild,
    /// The NVIDIA driver's `libcuda.so.1` cannot be loaded: no NVIDIA GPU, or its driver is
    /// not installed.
    #[error(
        "the NVIDIA driver (libcuda.so.1) cannot be loaded: no NVIDIA GPU, or no driver installed"
    )]
    NoDriver,
    /// The CUDA and cuDNN libraries beside the GPU build could not be loaded.
    #[error("the CUDA libraries in {} cannot be loaded", dir.display())]
    Libraries {
        /// Where they were looked for.
        dir: PathBuf,
        /// What the loader said.
        #[source]
        source: ort::Error,
    },
    /// ONNX Runtime could not start the CUDA execution provider for a model (no GPU, no
    /// driver, or a library missing).
    #[error("ONNX Runtime cannot run {} on CUDA", file.display())]
    Session {
        /// The model file.
        file: PathBuf,
        /// What ONNX Runtime said.
        #[source]
        source: ort::Error,
    },
}

/// Where `scripts/setup.sh --gpu` puts ONNX Runtime's GPU build.
pub(crate) fn gpu_library(models_dir: &Path) -> PathBuf {
    models_dir.join("lib").join("gpu").join("libonnxruntime.so")
}

/// Checks that the loaded library has the CUDA provider, and loads the CUDA and cuDNN
/// libraries installed beside `gpu_library` (when there are some) so that the provider finds
/// them without `LD_LIBRARY_PATH`.
pub(crate) fn prepare_cuda(gpu_library: &Path) -> Result<(), CudaError> {
    if !CUDA::is_available().unwrap_or(false) {
        return Err(CudaError::CpuBuild);
    }
    if ort::util::preload_dylib("libcuda.so.1").is_err() {
        return Err(CudaError::NoDriver);
    }
    let Some(dir) = gpu_library
        .parent()
        .filter(|dir| dir.join("libcudart.so.13").is_file())
    else {
        return Ok(());
    };
    ort::ep::cuda::preload_dylibs(Some(dir), Some(dir)).map_err(|source| CudaError::Libraries {
        dir: dir.to_path_buf(),
        source,
    })
}

/// A session on the CUDA execution provider, or why there is none.
pub(crate) fn cuda_session(builder: SessionBuilder, file: &Path) -> Result<Session, CudaError> {
    let failed = |source| CudaError::Session {
        file: file.to_path_buf(),
        source,
    };
    builder
        .with_execution_providers([CUDA::default().build().error_on_failure()])
        .map_err(|e| failed(e.into()))?
        .commit_from_file(file)
        .map_err(failed)
}

/// The error and its cause on one line.
pub(crate) fn describe(error: &CudaError) -> String {
    match std::error::Error::source(error) {
        Some(source) => format!("{error}: {source}"),
        None => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_round_trip() {
        for device in Device::ALL {
            assert_eq!(device.name().parse::<Device>(), Ok(device));
        }
        assert!("gpu".parse::<Device>().is_err());
    }
}

//! One loaded network: its session, its named tensors, and the one way to run it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use ort::session::{Session, SessionInputValue};
use ort::value::TensorRef;
use stemscribe_audio::timings::{measure, Stage};

use crate::RuntimeError;

/// A tensor a model takes or returns, as the file declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// Its name.
    pub name: String,
    /// Its dimensions, -1 where the file leaves one open; `None` for a non-tensor value.
    pub shape: Option<Vec<i64>>,
}

/// A tensor handed to [`Model::run`]: a name, a shape, and the values in row-major order.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The input's name in the file.
    pub name: &'a str,
    /// Its dimensions (empty for a scalar).
    pub shape: &'a [usize],
    /// Its values; as many as the shape holds.
    pub data: &'a [f32],
}

/// A tensor [`Model::run`] returns, converted to `f32`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Its dimensions.
    pub shape: Vec<usize>,
    /// Its values in row-major order.
    pub data: Vec<f32>,
}

/// A loaded ONNX model, shareable across threads: it holds one or more sessions of the same
/// file ([`RuntimeConfig::sessions`](crate::RuntimeConfig::sessions)), and as many calls run at
/// once as it has sessions; more wait for one to come free.
#[derive(Debug)]
pub struct Model {
    file: PathBuf,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
    sessions: Vec<Mutex<Session>>,
    /// Where the next call that finds every session busy waits.
    next: AtomicUsize,
}

impl Model {
    /// Wraps sessions built from `file` (at least one).
    pub(crate) fn new(sessions: Vec<Session>, file: &Path) -> Self {
        let session = &sessions[0];
        let spec = |name: &str, shape: Option<&ort::value::Shape>| TensorSpec {
            name: name.to_owned(),
            shape: shape.map(|s| s.to_vec()),
        };
        Self {
            file: file.to_path_buf(),
            inputs: session
                .inputs()
                .iter()
                .map(|i| spec(i.name(), i.dtype().tensor_shape()))
                .collect(),
            outputs: session
                .outputs()
                .iter()
                .map(|o| spec(o.name(), o.dtype().tensor_shape()))
                .collect(),
            sessions: sessions.into_iter().map(Mutex::new).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// How many calls may run at once.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// A free session, or (when every one is busy) the next in turn, waited for.
    fn session(&self) -> MutexGuard<'_, Session> {
        for session in &self.sessions {
            if let Ok(guard) = session.try_lock() {
                return guard;
            }
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.sessions.len();
        self.sessions[turn]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The file it was loaded from.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Its inputs, in the file's order.
    pub fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }

    /// Its outputs, in the file's order.
    pub fn outputs(&self) -> &[TensorSpec] {
        &self.outputs
    }

    /// The input called `name`.
    pub fn input(&self, name: &str) -> Option<&TensorSpec> {
        self.inputs.iter().find(|t| t.name == name)
    }

    /// The output called `name`.
    pub fn output(&self, name: &str) -> Option<&TensorSpec> {
        self.outputs.iter().find(|t| t.name == name)
    }

    /// A [`RuntimeError::Mismatch`] about this model.
    pub fn mismatch(&self, reason: impl Into<String>) -> RuntimeError {
        RuntimeError::Mismatch {
            file: self.file.clone(),
            reason: reason.into(),
        }
    }

    /// Checks that the model has these inputs and outputs.
    pub fn require(&self, inputs: &[&str], outputs: &[&str]) -> Result<(), RuntimeError> {
        if let Some(name) = inputs.iter().find(|n| self.input(n).is_none()) {
            return Err(self.mismatch(format!("no input tensor `{name}`")));
        }
        if let Some(name) = outputs.iter().find(|n| self.output(n).is_none()) {
            return Err(self.mismatch(format!("no output tensor `{name}`")));
        }
        Ok(())
    }

    /// Runs the model once and returns the outputs called `outputs`, in that order (`f64`
    /// outputs are converted to `f32`).
    pub fn run(&self, inputs: &[Input<'_>], outputs: &[&str]) -> Result<Vec<Tensor>, RuntimeError> {
        measure(Stage::Network, || self.run_session(inputs, outputs))
    }

    fn run_session(
        &self,
        inputs: &[Input<'_>],
        outputs: &[&str],
    ) -> Result<Vec<Tensor>, RuntimeError> {
        let ort_error = |source| RuntimeError::Run {
            file: self.file.clone(),
            source,
        };
        let values = inputs
            .iter()
            .map(|input| {
                let tensor =
                    TensorRef::from_array_view((input.shape, input.data)).map_err(ort_error)?;
                Ok((input.name, SessionInputValue::from(tensor)))
            })
            .collect::<Result<Vec<_>, RuntimeError>>()?;
        let mut session = self.session();
        let results = session.run(values).map_err(ort_error)?;
        outputs
            .iter()
            .map(|&name| {
                let value = results
                    .get(name)
                    .ok_or_else(|| self.mismatch(format!("returned no `{name}`")))?;
                let (shape, data) = match value.try_extract_tensor::<f32>() {
                    Ok((shape, data)) => (shape.to_vec(), data.to_vec()),
                    Err(_) => {
                        let (shape, data) = value.try_extract_tensor::<f64>().map_err(ort_error)?;
                        (shape.to_vec(), data.iter().map(|&v| v as f32).collect())
                    }
                };
                Ok(Tensor {
                    shape: shape
                        .iter()
                        .map(|&d| usize::try_from(d).unwrap_or(0))
                        .collect(),
                    data,
                })
            })
            .collect()
    }
}

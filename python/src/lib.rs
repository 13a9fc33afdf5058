//! `stemscribe._native`: the engine for Python. The `stemscribe` package (`python/stemscribe/`)
//! wraps these classes and functions in its own idiom; everything heavy runs here with the GIL
//! released, and every engine error becomes a Python exception of its stage.

use std::path::PathBuf;

use numpy::{PyArray2, PyReadonlyArray2};
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use stemscribe_engine::runtime::MAX_SESSIONS;
use stemscribe_engine::setup::{install, SetupOptions};
use stemscribe_engine::{
    decode_file, default_models_dir, encode, to_json, to_smf, Audio, DecodeOptions, Device, Engine,
    EngineConfig, EngineError, Note, OutputFormat, OutputSpec, PitchModel, Progress, RuntimeConfig,
    SeparationModel, SmfOptions, Transcription, WavSampleFormat, PROCESSING_RATE,
};

pyo3::create_exception!(
    _native,
    StemscribeError,
    PyException,
    "Any failure of stemscribe."
);
pyo3::create_exception!(
    _native,
    DecodeError,
    StemscribeError,
    "The input could not be read or decoded."
);
pyo3::create_exception!(
    _native,
    ModelError,
    StemscribeError,
    "ONNX Runtime or a model could not be loaded (run `stemscribe.setup()`)."
);
pyo3::create_exception!(
    _native,
    SeparationError,
    StemscribeError,
    "Separation failed."
);
pyo3::create_exception!(
    _native,
    TranscriptionError,
    StemscribeError,
    "Transcription failed."
);
pyo3::create_exception!(
    _native,
    EncodeError,
    StemscribeError,
    "The output could not be encoded or written."
);
pyo3::create_exception!(
    _native,
    NoOutputError,
    StemscribeError,
    "Nothing is sung (instrumental music, speech, rap): the API's 40000010 InvalidData:NoOutput."
);
pyo3::create_exception!(
    _native,
    SetupError,
    StemscribeError,
    "The runtime and the models could not be installed."
);

/// The error and its causes, one after the other (a transparent wrapper's text only once).
fn message(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// The Python exception of an engine error.
fn to_py(error: EngineError) -> PyErr {
    let text = message(&error);
    match error {
        EngineError::NoOutput(_) => NoOutputError::new_err(text),
        EngineError::Decode(_) => DecodeError::new_err(text),
        EngineError::Separation(_) => SeparationError::new_err(text),
        EngineError::Transcription(_) => TranscriptionError::new_err(text),
        EngineError::Encode(_) => EncodeError::new_err(text),
        EngineError::Audio(_) => PyValueError::new_err(text),
        EngineError::Runtime(_)
        | EngineError::Card(_)
        | EngineError::UserModelMissing { .. }
        | EngineError::NotLoaded(_)
        | EngineError::ModelFile(_) => ModelError::new_err(text),
    }
}

/// Input audio: a file to decode, or samples `[channels, frames]` at `sample_rate`; returned
/// at 44.1 kHz stereo.
fn input_audio(
    py: Python<'_>,
    path: Option<PathBuf>,
    samples: Option<PyReadonlyArray2<'_, f32>>,
    sample_rate: Option<u32>,
) -> PyResult<Audio> {
    match (path, samples) {
        (Some(path), None) => py
            .detach(|| decode_file(&path, &DecodeOptions::default()))
            .map_err(|e| {
                DecodeError::new_err(format!("cannot decode {}: {}", path.display(), message(&e)))
            }),
        (None, Some(samples)) => {
            let rate = sample_rate.ok_or_else(|| {
                PyValueError::new_err("sample_rate is required with an array of samples")
            })?;
            let channels = rows(&samples);
            py.detach(|| {
                Audio::new(rate, channels)
                    .and_then(|a| a.remix(2))
                    .and_then(|a| a.resample(PROCESSING_RATE))
            })
            .map_err(|e| PyValueError::new_err(message(&e)))
        }
        _ => Err(PyValueError::new_err(
            "give either a path or an array of samples",
        )),
    }
}

/// The rows of `samples [channels, frames]`, one `Vec` per channel.
fn rows(samples: &PyReadonlyArray2<'_, f32>) -> Vec<Vec<f32>> {
    samples
        .as_array()
        .rows()
        .into_iter()
        .map(|row| row.to_vec())
        .collect()
}

/// Calls a Python callback from a thread without the GIL (progress as `callback(done, total)`,
/// or a line of text as `callback(line)`); keeps its first exception and then calls it no more.
struct Reporter {
    callback: Option<Py<PyAny>>,
    failure: Option<PyErr>,
}

impl Reporter {
    fn new(callback: Option<Py<PyAny>>) -> Self {
        Self {
            callback,
            failure: None,
        }
    }

    /// Calls the callback with what `call` passes it, unless there is none or it has failed.
    fn call(&mut self, call: impl FnOnce(Python<'_>, &Py<PyAny>) -> PyResult<Py<PyAny>>) {
        let (Some(callback), None) = (&self.callback, &self.failure) else {
            return;
        };
        if let Err(error) = Python::attach(|py| call(py, callback)) {
            self.failure = Some(error);
        }
    }

    fn report(&mut self, progress: Progress) {
        self.call(|py, callback| callback.call1(py, (progress.done, progress.total)));
    }

    fn line(&mut self, line: &str) {
        self.call(|py, callback| callback.call1(py, (line,)));
    }

    /// The callback's exception if it raised one, else `result` with `to_error` applied.
    fn finish_with<T, E>(
        self,
        result: Result<T, E>,
        to_error: impl FnOnce(E) -> PyErr,
    ) -> PyResult<T> {
        if let Some(failure) = self.failure {
            return Err(failure);
        }
        result.map_err(to_error)
    }

    fn finish<T>(self, result: Result<T, EngineError>) -> PyResult<T> {
        self.finish_with(result, to_py)
    }
}

/// Loaded models, shared by any number of threads.
#[pyclass(frozen, name = "Engine", module = "stemscribe._native")]
struct PyEngine {
    engine: Engine,
}

#[pymethods]
impl PyEngine {
    /// Loads ONNX Runtime and the models once.
    #[new]
    #[pyo3(signature = (models_dir=None, threads=None, device="auto", pitch_model="swift-f0", two_stem_model=None, separation_only=false, sessions=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        models_dir: Option<PathBuf>,
        threads: Option<usize>,
        device: &str,
        pitch_model: &str,
        two_stem_model: Option<String>,
        separation_only: bool,
        sessions: Option<usize>,
    ) -> PyResult<Self> {
        let device: Device = device
            .parse()
            .map_err(|e| PyValueError::new_err(message(&e)))?;
        let pitch_model: PitchModel = pitch_model
            .parse()
            .map_err(|e| PyValueError::new_err(message(&e)))?;
        if threads == Some(0) {
            return Err(PyValueError::new_err("threads must be at least 1"));
        }
        if sessions.is_some_and(|n| n == 0 || n > MAX_SESSIONS) {
            return Err(PyValueError::new_err(format!(
                "sessions must be 1 to {MAX_SESSIONS}"
            )));
        }
        let config = EngineConfig {
            runtime: RuntimeConfig {
                models_dir,
                threads,
                sessions,
                device,
                ..RuntimeConfig::default()
            },
            pitch_model,
            two_stem_model,
            separation_only,
            ..EngineConfig::default()
        };
        let engine = py.detach(|| Engine::new(&config)).map_err(to_py)?;
        Ok(Self { engine })
    }

    /// Where the models run: `cuda`, `cpu`, or `cpu (CUDA not used: ...)`.
    #[getter]
    fn device(&self) -> String {
        self.engine.device().to_string()
    }

    /// Every stem of `model`'s family as `(name, samples [2, frames] at 44.1 kHz)`.
    #[pyo3(signature = (model, path=None, samples=None, sample_rate=None, progress=None))]
    fn separate<'py>(
        &self,
        py: Python<'py>,
        model: &str,
        path: Option<PathBuf>,
        samples: Option<PyReadonlyArray2<'py, f32>>,
        sample_rate: Option<u32>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let model: SeparationModel = model
            .parse()
            .map_err(|e| PyValueError::new_err(message(&e)))?;
        let audio = input_audio(py, path, samples, sample_rate)?;
        let mut reporter = Reporter::new(progress);
        let result = py.detach(|| {
            self.engine
                .separate_all(&audio, model, &mut |p| reporter.report(p))
        });
        // The song is not needed once separated: free it before the stems are copied out.
        drop(audio);
        let stems = reporter.finish(result)?;
        let out = PyDict::new(py);
        for stem in stems {
            let array = PyArray2::from_vec2(py, stem.audio.channels())
                .map_err(|e| SeparationError::new_err(e.to_string()))?;
            out.set_item(stem.name(), array)?;
        }
        Ok(out)
    }

    /// The sung melody: the vocals are separated, then transcribed.
    #[pyo3(signature = (path=None, samples=None, sample_rate=None, progress=None))]
    fn transcribe<'py>(
        &self,
        py: Python<'py>,
        path: Option<PathBuf>,
        samples: Option<PyReadonlyArray2<'py, f32>>,
        sample_rate: Option<u32>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<PyTranscription> {
        let audio = input_audio(py, path, samples, sample_rate)?;
        let mut reporter = Reporter::new(progress);
        let result = py.detach(|| self.engine.transcribe(&audio, &mut |p| reporter.report(p)));
        Ok(PyTranscription {
            inner: reporter.finish(result)?,
        })
    }
}

/// One sung note.
#[pyclass(frozen, name = "Note", module = "stemscribe._native")]
struct PyNote {
    note: Note,
}

#[pymethods]
impl PyNote {
    /// Onset in seconds.
    #[getter]
    fn start(&self) -> f64 {
        self.note.start
    }

    /// Offset in seconds.
    #[getter]
    fn end(&self) -> f64 {
        self.note.end
    }

    /// Fractional MIDI note number (69.0 = A4 = 440 Hz).
    #[getter]
    fn pitch(&self) -> f64 {
        self.note.pitch
    }

    /// MIDI velocity, 1-127.
    #[getter]
    fn velocity(&self) -> u8 {
        self.note.velocity
    }

    fn __repr__(&self) -> String {
        format!(
            "Note(start={:.3}, end={:.3}, pitch={:.2}, velocity={})",
            self.note.start, self.note.end, self.note.pitch, self.note.velocity
        )
    }
}

/// The notes of a sung melody.
#[pyclass(frozen, name = "Transcription", module = "stemscribe._native")]
struct PyTranscription {
    inner: Transcription,
}

#[pymethods]
impl PyTranscription {
    /// The notes in time order.
    #[getter]
    fn notes(&self) -> Vec<PyNote> {
        self.inner
            .notes
            .iter()
            .map(|&note| PyNote { note })
            .collect()
    }

    /// Always `"vocal"`, as the API names the track.
    #[getter]
    fn track(&self) -> &'static str {
        "vocal"
    }

    /// In [0, 1]: how much the voice holds notes rather than gliding (the mean of the share of
    /// voiced audio within 50 cents of a note and the share that holds its pitch over 48 ms).
    #[getter]
    fn confidence(&self) -> f64 {
        self.inner.confidence
    }

    /// The API's JSON note list.
    fn to_json(&self) -> String {
        to_json(&self.inner)
    }

    /// The Standard MIDI File's bytes (notes bent to their fractional pitch).
    fn to_midi_bytes(&self) -> Vec<u8> {
        to_smf(&self.inner, &SmfOptions::default())
    }

    fn __len__(&self) -> usize {
        self.inner.notes.len()
    }

    fn __repr__(&self) -> String {
        format!(
            "Transcription({} notes, track='vocal', confidence={:.2})",
            self.inner.notes.len(),
            self.inner.confidence
        )
    }
}

/// Encodes `samples [channels, frames]` at `sample_rate` as `format` (`wav`, `wav-float`, `mp3`,
/// `aac`) at `output_sample_rate` with `channels` channels, and returns the file's bytes.
#[pyfunction]
#[pyo3(signature = (samples, sample_rate, format="wav", output_sample_rate=None, channels=2))]
fn encode_audio(
    py: Python<'_>,
    samples: PyReadonlyArray2<'_, f32>,
    sample_rate: u32,
    format: &str,
    output_sample_rate: Option<u32>,
    channels: usize,
) -> PyResult<Vec<u8>> {
    let format = match format {
        "wav-float" => OutputFormat::Wav(WavSampleFormat::Float32),
        other => other
            .parse()
            .map_err(|e| PyValueError::new_err(message(&e)))?,
    };
    let spec = OutputSpec {
        sample_rate: output_sample_rate.unwrap_or(sample_rate),
        channels,
        format,
    };
    let channels = rows(&samples);
    py.detach(|| {
        let audio = Audio::new(sample_rate, channels).map_err(EngineError::from)?;
        let mut bytes = Vec::new();
        encode(audio, &spec, &mut bytes).map_err(EngineError::from)?;
        Ok(bytes)
    })
    .map_err(to_py)
}

/// Installs ONNX Runtime and the models into `dest` (default: [`default_models_dir`]) from
/// PyPI with the setup kit compiled into the module; `log(line)` gets each line it prints.
/// Returns the folder installed into.
#[pyfunction]
#[pyo3(signature = (dest=None, gpu=false, cache=None, log=None))]
fn setup(
    py: Python<'_>,
    dest: Option<PathBuf>,
    gpu: bool,
    cache: Option<PathBuf>,
    log: Option<Py<PyAny>>,
) -> PyResult<PathBuf> {
    let mut options = SetupOptions::new(dest.unwrap_or_else(default_models_dir));
    options.gpu = gpu;
    if let Some(cache) = cache {
        options.cache = cache;
    }
    let mut reporter = Reporter::new(log);
    let result = py.detach(|| install(&options, &mut |line| reporter.line(line)));
    reporter.finish_with(result, |e| SetupError::new_err(message(&e)))?;
    Ok(options.dest)
}

/// The models directory an [`Engine`] uses when given none.
#[pyfunction(name = "default_models_dir")]
fn models_dir() -> PathBuf {
    default_models_dir()
}

/// The engine's native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<PyEngine>()?;
    m.add_class::<PyNote>()?;
    m.add_class::<PyTranscription>()?;
    m.add_function(wrap_pyfunction!(encode_audio, m)?)?;
    m.add_function(wrap_pyfunction!(setup, m)?)?;
    m.add_function(wrap_pyfunction!(models_dir, m)?)?;
    for (name, class) in [
        ("StemscribeError", py.get_type::<StemscribeError>()),
        ("DecodeError", py.get_type::<DecodeError>()),
        ("ModelError", py.get_type::<ModelError>()),
        ("SeparationError", py.get_type::<SeparationError>()),
        ("TranscriptionError", py.get_type::<TranscriptionError>()),
        ("EncodeError", py.get_type::<EncodeError>()),
        ("NoOutputError", py.get_type::<NoOutputError>()),
        ("SetupError", py.get_type::<SetupError>()),
    ] {
        m.add(name, class)?;
    }
    m.add("PROCESSING_RATE", PROCESSING_RATE)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

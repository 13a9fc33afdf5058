//! UVR MDX-Net models: ONNX files from Ultimate Vocal Remover that map the complex
//! spectrogram of a chunk of the mix to that of one stem (the "primary"); the other stem is
//! the mix minus the primary.
//!
//! Run as python-audio-separator 0.47.1's `MDXSeparator` runs them at its defaults: hop 1024,
//! chunks of `1024 * (dim_t - 1)` samples every three quarters of a chunk, each through a
//! centred STFT (reflect padding, periodic Hann, `n_fft` from the model) cut to `dim_f` bins
//! with bins 0-2 zeroed, the network (input `[1, 4, dim_f, dim_t]`: left real, left imaginary,
//! right real, right imaginary), the inverse STFT, a symmetric Hann weight per chunk, and
//! overlap-add divided by the summed weights. The mix is scaled to peak at most 0.9 before
//! the network as audio-separator does; the primary is scaled back to the input's level (where
//! audio-separator multiplies it by the input's peak and normalises its files), and the
//! secondary is the input minus `compensate` times the primary.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};
use realfft::num_complex::Complex32;
use serde::{Deserialize, Serialize};
use stemscribe_audio::timings::{measure, Stage};
use stemscribe_audio::{Audio, PROCESSING_RATE};
use stemscribe_runtime::{Input, Model, Progress, Runtime};
use thiserror::Error;

use crate::family::{Separate, SourceStem};
use crate::stft::reflect_pad;
use crate::{SeparationError, Stft};

/// Samples between STFT frames, fixed by UVR for every MDX-Net model.
pub const MDX_HOP: usize = 1024;
/// Bytes at the end of a model file that UVR hashes to recognise it.
pub const UVR_HASH_BYTES: u64 = 10_000 * 1024;
/// Share of a chunk that the next chunk overlaps (audio-separator's default).
const OVERLAP: f64 = 0.25;
/// Peak the mix is scaled down to, at most, before the network (audio-separator's default).
const NETWORK_PEAK: f32 = 0.9;
/// Low bins the reference zeroes before the network.
const ZEROED_BINS: usize = 3;

/// The stem an MDX-Net model estimates, as UVR's `primary_stem` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MdxStem {
    /// "Vocals"; the secondary stem is the instrumental.
    Vocals,
    /// "Instrumental"; the secondary stem is the vocals.
    Instrumental,
    /// "Drums"; the secondary stem is everything else.
    Drums,
    /// "Bass"; the secondary stem is everything else.
    Bass,
    /// "Other"; the secondary stem is everything else.
    Other,
}

impl MdxStem {
    /// UVR's `primary_stem` value for this stem.
    pub fn uvr_name(self) -> &'static str {
        match self {
            Self::Vocals => "Vocals",
            Self::Instrumental => "Instrumental",
            Self::Drums => "Drums",
            Self::Bass => "Bass",
            Self::Other => "Other",
        }
    }

    /// Parses UVR's `primary_stem` value.
    pub fn from_uvr(name: &str) -> Option<Self> {
        [
            Self::Vocals,
            Self::Instrumental,
            Self::Drums,
            Self::Bass,
            Self::Other,
        ]
        .into_iter()
        .find(|stem| stem.uvr_name().eq_ignore_ascii_case(name))
    }
}

/// How an MDX-Net model must be run: UVR's parameters for it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MdxParams {
    /// STFT size (`mdx_n_fft_scale_set`).
    pub n_fft: usize,
    /// Frequency bins the network reads (`mdx_dim_f_set`).
    pub dim_f: usize,
    /// STFT frames the network reads (`2 ^ mdx_dim_t_set`).
    pub dim_t: usize,
    /// Gain on the primary stem before it is subtracted from the mix (`compensate`).
    pub compensate: f32,
    /// The stem the network estimates (`primary_stem`).
    pub primary: MdxStem,
}

/// UVR's parameters of the MDX-Net models stemscribe recognises by their hash, as UVR's own
/// `model_data.json` lists them (keys: MD5 of the file's last 10,240,000 bytes).
const KNOWN_MODELS: &[(&str, f32, usize, u32, usize, MdxStem)] = &[(
    "cb790d0c913647ced70fc6b38f5bea1a",
    1.01,
    2560,
    8,
    5120,
    MdxStem::Instrumental,
)];

/// Why UVR's parameters for a model file could not be found or read.
#[derive(Debug, Error)]
pub enum MdxParamsError {
    /// The model file or its parameter file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The parameter file is not UVR's JSON.
    #[error("{path} is not an MDX-Net parameter file: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        source: serde_json::Error,
    },
    /// A parameter has an impossible value.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Neither a parameter file nor the built-in table knows the model.
    #[error(
        "unknown MDX-Net model {path} (UVR hash {hash}): put {json} beside it with UVR's fields, e.g. \
         {{\"compensate\": 1.035, \"mdx_dim_f_set\": 3072, \"mdx_dim_t_set\": 8, \
         \"mdx_n_fft_scale_set\": 6144, \"primary_stem\": \"Vocals\"}}"
    )]
    Unknown {
        /// The model file.
        path: PathBuf,
        /// Its UVR hash.
        hash: String,
        /// The parameter file that would describe it.
        json: PathBuf,
    },
}

/// UVR's fields for one MDX-Net model, as in `model_data.json` or a `MODEL.json`.
#[derive(Debug, Deserialize, Serialize)]
struct UvrFields {
    compensate: f32,
    mdx_dim_f_set: usize,
    mdx_dim_t_set: u32,
    mdx_n_fft_scale_set: usize,
    primary_stem: String,
}

impl MdxParams {
    /// The parameters of `model`: from `NAME.json` beside it, else `MODEL.json` beside it,
    /// else the built-in table of known models (by UVR hash).
    pub fn for_model(model: &Path) -> Result<Self, MdxParamsError> {
        if let Some(json) = crate::family::card_beside(model) {
            return Self::from_json_file(&json);
        }
        let hash = uvr_hash(model)?;
        KNOWN_MODELS
            .iter()
            .find(|known| known.0 == hash)
            .map(|&(_, compensate, dim_f, dim_t_set, n_fft, primary)| Self {
                n_fft,
                dim_f,
                dim_t: 1 << dim_t_set,
                compensate,
                primary,
            })
            .ok_or(MdxParamsError::Unknown {
                path: model.to_path_buf(),
                hash,
                json: model.with_extension("json"),
            })
    }

    /// Reads UVR's fields from a JSON file.
    pub fn from_json_file(path: &Path) -> Result<Self, MdxParamsError> {
        let text = std::fs::read_to_string(path).map_err(|source| MdxParamsError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let fields: UvrFields =
            serde_json::from_str(&text).map_err(|source| MdxParamsError::Json {
                path: path.to_path_buf(),
                source,
            })?;
        let invalid = |reason: String| MdxParamsError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let primary = MdxStem::from_uvr(&fields.primary_stem).ok_or_else(|| {
            invalid(format!(
                "primary_stem {:?} is not one of Vocals, Instrumental, Drums, Bass, Other",
                fields.primary_stem
            ))
        })?;
        if !(4..=12).contains(&fields.mdx_dim_t_set) {
            return Err(invalid(format!(
                "mdx_dim_t_set {} is outside 4-12",
                fields.mdx_dim_t_set
            )));
        }
        let n_fft = fields.mdx_n_fft_scale_set;
        if n_fft < 2 * MDX_HOP || n_fft % 2 != 0 || n_fft > 65_536 {
            return Err(invalid(format!(
                "mdx_n_fft_scale_set {n_fft} must be even and within {}-65536",
                2 * MDX_HOP
            )));
        }
        if fields.mdx_dim_f_set == 0 || fields.mdx_dim_f_set > n_fft / 2 + 1 {
            return Err(invalid(format!(
                "mdx_dim_f_set {} must be within 1-{}",
                fields.mdx_dim_f_set,
                n_fft / 2 + 1
            )));
        }
        // Each chunk's network input is 4 x dim_f x dim_t values, allocated whole.
        let chunk_values = fields.mdx_dim_f_set * (1 << fields.mdx_dim_t_set);
        if chunk_values > MAX_CHUNK_VALUES {
            return Err(invalid(format!(
                "mdx_dim_f_set {} x 2^mdx_dim_t_set {} is {chunk_values} values a chunk, over \
                 {MAX_CHUNK_VALUES}",
                fields.mdx_dim_f_set, fields.mdx_dim_t_set
            )));
        }
        if !(fields.compensate.is_finite() && fields.compensate > 0.0) {
            return Err(invalid(format!(
                "compensate {} must be positive",
                fields.compensate
            )));
        }
        Ok(Self {
            n_fft,
            dim_f: fields.mdx_dim_f_set,
            dim_t: 1 << fields.mdx_dim_t_set,
            compensate: fields.compensate,
            primary,
        })
    }

    /// These parameters as UVR's JSON fields (what [`MdxParams::from_json_file`] reads).
    pub fn to_uvr_json(&self) -> String {
        let fields = UvrFields {
            compensate: self.compensate,
            mdx_dim_f_set: self.dim_f,
            mdx_dim_t_set: self.dim_t.trailing_zeros(),
            mdx_n_fft_scale_set: self.n_fft,
            primary_stem: self.primary.uvr_name().to_owned(),
        };
        serde_json::to_string(&fields).expect("plain fields serialise")
    }

    /// Samples per chunk: `hop * (dim_t - 1)`.
    pub fn chunk_samples(&self) -> usize {
        MDX_HOP * (self.dim_t - 1)
    }
}

/// Most `dim_f x dim_t` values of one channel of a chunk: over five times UVR's largest
/// (3072 x 256).
const MAX_CHUNK_VALUES: usize = 1 << 22;

/// UVR's key for a model file: the hex MD5 of its last 10,240,000 bytes (of the whole file
/// when it is shorter).
pub fn uvr_hash(model: &Path) -> Result<String, MdxParamsError> {
    let io = |source| MdxParamsError::Io {
        path: model.to_path_buf(),
        source,
    };
    let mut file = File::open(model).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(UVR_HASH_BYTES)))
        .map_err(io)?;
    let mut hasher = Md5::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let read = file.read(&mut buffer).map_err(io)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Run-time choices for an MDX-Net model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MdxOptions {
    /// Run the network on the spectrogram and on its negation and average the two (UVR's
    /// "denoise"; twice the network time).
    pub denoise: bool,
}

/// The two stems of an MDX-Net separation.
#[derive(Debug, Clone, PartialEq)]
pub struct MdxStems {
    /// What the network estimates.
    pub primary: Audio,
    /// The input minus `compensate` times the primary.
    pub secondary: Audio,
}

/// A loaded MDX-Net model, shareable across threads; calls to the network are serialised.
#[derive(Debug)]
pub struct MdxModel {
    params: MdxParams,
    options: MdxOptions,
    stft: Stft,
    input: String,
    output: String,
    model: Model,
}

impl MdxModel {
    /// Loads `file` with `params` and checks that its input is `[batch, 4, dim_f, dim_t]`; it
    /// separates with [`MdxOptions::default`] unless given others ([`MdxModel::with_options`]).
    pub fn new(runtime: &Runtime, file: &Path, params: MdxParams) -> Result<Self, SeparationError> {
        Self::from_model(runtime.model_at(file)?, params)
    }

    /// Wraps a loaded model.
    pub(crate) fn from_model(model: Model, params: MdxParams) -> Result<Self, SeparationError> {
        let (input, output) = match (model.inputs(), model.outputs()) {
            ([input], [output, ..]) => (input, output),
            (inputs, _) => {
                return Err(model
                    .mismatch(format!(
                        "an MDX-Net model has one input, this one has {}",
                        inputs.len()
                    ))
                    .into())
            }
        };
        if let Some(shape) = &input.shape {
            let wanted = [-1, 4, params.dim_f as i64, params.dim_t as i64];
            let fits = shape.len() == 4
                && shape
                    .iter()
                    .zip(wanted)
                    .skip(1)
                    .all(|(&have, want)| have < 0 || have == want);
            if !fits {
                return Err(model
                    .mismatch(format!(
                        "input `{}` is {shape:?}, the parameters say [1, 4, {}, {}]",
                        input.name, params.dim_f, params.dim_t
                    ))
                    .into());
            }
        }
        Ok(Self {
            stft: Stft::new(params.n_fft, MDX_HOP),
            input: input.name.clone(),
            output: output.name.clone(),
            params,
            options: MdxOptions::default(),
            model,
        })
    }

    /// The same model, separating with `options`.
    pub fn with_options(self, options: MdxOptions) -> Self {
        Self { options, ..self }
    }

    /// The parameters it runs with.
    pub fn params(&self) -> &MdxParams {
        &self.params
    }

    /// Network calls [`MdxModel::separate`] makes for `samples` samples (without denoising).
    pub fn chunks(&self, samples: usize) -> usize {
        let (mixture, step) = self.layout(samples);
        mixture.div_ceil(step)
    }

    /// The padded mixture's length and the step between chunks, as the reference lays them out.
    fn layout(&self, samples: usize) -> (usize, usize) {
        let trim = self.params.n_fft / 2;
        let chunk = self.params.chunk_samples();
        let generated = chunk - 2 * trim;
        let pad = generated + trim - samples % generated;
        let step = ((1.0 - OVERLAP) * chunk as f64) as usize;
        (trim + samples + pad, step.max(1))
    }

    /// Separates 44.1 kHz stereo `audio` into the primary stem and the rest, with `options`
    /// instead of its own.
    pub fn separate_with(
        &self,
        audio: &Audio,
        options: &MdxOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<MdxStems, SeparationError> {
        if audio.sample_rate() != PROCESSING_RATE || audio.num_channels() != 2 {
            return Err(SeparationError::InputFormat {
                rate: audio.sample_rate(),
                channels: audio.num_channels(),
            });
        }
        let samples = audio.frames();
        let peak = audio.peak();
        let gain = if peak > NETWORK_PEAK {
            NETWORK_PEAK / peak
        } else {
            1.0
        };
        let trim = self.params.n_fft / 2;
        let chunk = self.params.chunk_samples();
        let (mixture_len, step) = self.layout(samples);
        let total = self.chunks(samples);
        let mut result = [vec![0.0f32; mixture_len], vec![0.0f32; mixture_len]];
        let mut divider = vec![0.0f32; mixture_len];
        let mut part = [vec![0.0f32; chunk], vec![0.0f32; chunk]];
        // Every chunk but the last few is whole: its weights are computed once.
        let whole_chunk = symmetric_hann(chunk);
        for (k, start) in (0..mixture_len).step_by(step).enumerate() {
            let end = (start + chunk).min(mixture_len);
            for (c, side) in part.iter_mut().enumerate() {
                let source = audio.channel(c);
                for (n, value) in side.iter_mut().enumerate() {
                    // Mixture position start + n holds input sample start + n - trim.
                    *value = (start + n)
                        .checked_sub(trim)
                        .filter(|&i| start + n < end && i < samples)
                        .map_or(0.0, |i| source[i] * gain);
                }
            }
            let waves = self.run_chunk(&part, options)?;
            let short_chunk;
            let weights = if end - start == chunk {
                &whole_chunk
            } else {
                short_chunk = symmetric_hann(end - start);
                &short_chunk
            };
            for (c, wave) in waves.iter().enumerate() {
                for (n, &w) in weights.iter().enumerate() {
                    result[c][start + n] += wave[n] * w;
                }
            }
            for (n, &w) in weights.iter().enumerate() {
                divider[start + n] += w;
            }
            progress(Progress { done: k + 1, total });
        }
        let mut primary = Vec::with_capacity(2);
        let mut secondary = Vec::with_capacity(2);
        for (c, summed) in result.iter().enumerate() {
            let stem: Vec<f32> = (0..samples)
                .map(|i| {
                    let weight = divider[trim + i];
                    if weight > 0.0 {
                        summed[trim + i] / weight / gain
                    } else {
                        0.0
                    }
                })
                .collect();
            secondary.push(
                audio
                    .channel(c)
                    .iter()
                    .zip(&stem)
                    .map(|(&mix, &p)| mix - self.params.compensate * p)
                    .collect(),
            );
            primary.push(stem);
        }
        Ok(MdxStems {
            primary: Audio::new(PROCESSING_RATE, primary)?,
            secondary: Audio::new(PROCESSING_RATE, secondary)?,
        })
    }

    /// One chunk through STFT, the network and the inverse STFT: `[2][chunk]` samples.
    fn run_chunk(
        &self,
        part: &[Vec<f32>; 2],
        options: &MdxOptions,
    ) -> Result<[Vec<f32>; 2], SeparationError> {
        let MdxParams { dim_f, dim_t, .. } = self.params;
        let half = self.params.n_fft / 2;
        let plane = dim_f * dim_t;
        let mut spectrogram = vec![0.0f32; 4 * plane];
        let mut scratch = vec![0.0f32; self.stft.fft_size()];
        let mut spectrum = vec![Complex32::default(); self.stft.bins()];
        measure(Stage::Stft, || {
            for (c, side) in part.iter().enumerate() {
                let padded = reflect_pad(side, half);
                for t in 0..dim_t {
                    self.stft.forward_frame_at(
                        &padded,
                        (t * MDX_HOP) as isize,
                        &mut scratch,
                        &mut spectrum,
                    );
                    for (f, value) in spectrum.iter().enumerate().take(dim_f).skip(ZEROED_BINS) {
                        spectrogram[2 * c * plane + f * dim_t + t] = value.re;
                        spectrogram[(2 * c + 1) * plane + f * dim_t + t] = value.im;
                    }
                }
            }
        });

        let estimate = if options.denoise {
            let negated: Vec<f32> = spectrogram.iter().map(|v| -v).collect();
            let positive = self.run_network(&spectrogram)?;
            let negative = self.run_network(&negated)?;
            positive
                .iter()
                .zip(&negative)
                .map(|(p, n)| 0.5 * p - 0.5 * n)
                .collect()
        } else {
            self.run_network(&spectrogram)?
        };
        let waves = measure(Stage::InverseStft, || {
            let length = self.params.chunk_samples();
            let mut waves = [Vec::new(), Vec::new()];
            for (c, wave) in waves.iter_mut().enumerate() {
                let mut accumulator = self.stft.accumulator(length);
                for t in 0..dim_t {
                    spectrum.fill(Complex32::default());
                    for (f, bin) in spectrum.iter_mut().enumerate().take(dim_f) {
                        *bin = Complex32::new(
                            estimate[2 * c * plane + f * dim_t + t],
                            estimate[(2 * c + 1) * plane + f * dim_t + t],
                        );
                    }
                    self.stft
                        .inverse_frame_add(&mut spectrum, t, &mut scratch, &mut accumulator);
                }
                *wave = self.stft.finish(accumulator, length);
            }
            waves
        });

        Ok(waves)
    }

    fn run_network(&self, spectrogram: &[f32]) -> Result<Vec<f32>, SeparationError> {
        let shape = [1usize, 4, self.params.dim_f, self.params.dim_t];
        let input = Input {
            name: &self.input,
            shape: &shape,
            data: spectrogram,
        };
        let mut outputs = self.model.run(&[input], &[&self.output])?;
        let estimate = outputs.swap_remove(0);
        if estimate.data.len() != spectrogram.len() {
            return Err(self
                .model
                .mismatch(format!(
                    "output `{}` is {:?}, not {shape:?}",
                    self.output, estimate.shape
                ))
                .into());
        }
        Ok(estimate.data)
    }
}

impl Separate for MdxModel {
    fn file(&self) -> &Path {
        self.model.file()
    }

    /// The primary stem, then the secondary: the instrumental for a vocal model, the vocals
    /// for an instrumental one, "no drums" for a drum model, and so on.
    fn stems(&self) -> Vec<SourceStem> {
        let primary = self.params.primary;
        let secondary = match primary {
            MdxStem::Vocals => SourceStem::Instrumental,
            MdxStem::Instrumental => SourceStem::Vocals,
            MdxStem::Drums => SourceStem::NoDrums,
            MdxStem::Bass => SourceStem::NoBass,
            MdxStem::Other => SourceStem::NoOther,
        };
        vec![primary.into(), secondary]
    }

    fn separate(
        &self,
        audio: &Audio,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<(SourceStem, Audio)>, SeparationError> {
        let separated = self.separate_with(audio, &self.options, progress)?;
        let stems = self.stems();
        Ok(vec![
            (stems[0], separated.primary),
            (stems[1], separated.secondary),
        ])
    }
}

/// numpy's `hanning(n)`: a symmetric Hann window that is 0 at both ends (1 for `n == 1`).
fn symmetric_hann(n: usize) -> Vec<f32> {
    if n == 1 {
        return vec![1.0];
    }
    (0..n)
        .map(|i| {
            let phase = 2.0 * std::f64::consts::PI * i as f64 / (n - 1) as f64;
            (0.5 - 0.5 * phase.cos()) as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflection_matches_numpy() {
        assert_eq!(
            reflect_pad(&[1.0, 2.0, 3.0, 4.0], 2),
            [3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 2.0]
        );
    }

    #[test]
    fn hann_matches_numpy() {
        let w = symmetric_hann(5);
        for (a, b) in w.iter().zip([0.0, 0.5, 1.0, 0.5, 0.0]) {
            assert!((a - b).abs() < 1e-6);
        }
        assert_eq!(symmetric_hann(1), [1.0]);
    }
}

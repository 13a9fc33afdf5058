//! BS-RoFormer, Mel-Band RoFormer and MDX23C models (audio-separator's MDXC family), converted
//! from their checkpoints (`scripts/setup/roformer.py`): the network alone is the ONNX graph
//! (input `bands` `[frames, features]`, output `masks` `[stems, frames, features]`), and its
//! card (`NAME.json`, key `roformer`) says how the spectrogram is cut into bands.
//!
//! Run as python-audio-separator 0.47.1's `MDXCSeparator` runs RoFormers at its defaults: the
//! mix scaled to peak at most 0.9; chunks of `hop * (dim_t - 1)` samples (`short_segment`
//! frames instead of `dim_t` for inputs under `short_seconds`) every `chunk / num_overlap`
//! samples, the last chunk aligned to the end of the input; each chunk through a centred STFT
//! (reflect padding, periodic Hann), the bins of each band with the two channels interleaved
//! per bin, the network, the complex mask scattered back to the bins and averaged where bands
//! overlap, the complex product and the inverse STFT; a symmetric Hamming weight per chunk,
//! overlap-added and divided by the summed weights. A single-target model's second stem is the
//! input minus the target. Stems are scaled back to the input's level (audio-separator instead
//! normalises the files it writes).
//!
//! MDX23C (TFC-TDF v3) differs where audio-separator's MDXC path differs for it: its one band is
//! bins `0..dim_f` and its output is each stem's spectrum (zero above `dim_f`), not a mask; the
//! mix is zero-padded by `chunk - step` in front and up to a whole number of steps behind, the
//! chunks (every `step = chunk / num_overlap`) are summed unweighted and divided by
//! `num_overlap`.

use std::path::{Path, PathBuf};

use realfft::num_complex::Complex32;
use serde::{Deserialize, Serialize};
use stemscribe_audio::timings::{measure, Stage};
use stemscribe_audio::{Audio, PROCESSING_RATE};
use stemscribe_runtime::{Input, Model, Progress, Runtime, WeightPacking};
use thiserror::Error;

use crate::family::{card_beside, Separate, SourceStem};
use crate::stft::reflect_pad;
use crate::{SeparationError, Stft};

/// The mix's peak before the network, as audio-separator normalises it.
const NETWORK_PEAK: f32 = 0.9;
/// The longest chunk a card may ask for: one minute at 44.1 kHz.
const MAX_CHUNK: usize = 60 * PROCESSING_RATE as usize;

/// Which RoFormer a converted model is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoformerFamily {
    /// BS-RoFormer: consecutive bands of bins (`freqs_per_bands`).
    BsRoformer,
    /// Mel-Band RoFormer: overlapping mel bands (`num_bands`).
    MelBandRoformer,
    /// MDX23C (TFC-TDF v3): bins `0..dim_f` in, the stems' spectra out.
    Mdx23c,
}

/// The most times the bands may list each bin, in all.
const MAX_BAND_OVERLAP: usize = 8;
/// The most stems (and instruments) a card may name.
const MAX_STEMS: usize = 16;

/// How stemscribe runs a converted RoFormer: what its card says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoformerParams {
    /// BS-RoFormer or Mel-Band RoFormer.
    pub family: RoformerFamily,
    /// STFT frame size.
    pub n_fft: usize,
    /// Samples between STFT frames.
    pub hop: usize,
    /// Audio channels the network reads (2).
    pub channels: usize,
    /// The bins of each band, in the network's order.
    pub band_bins: Vec<Vec<usize>>,
    /// Stems the network estimates.
    pub stems: usize,
    /// `training.instruments` of the config.
    pub instruments: Vec<String>,
    /// The one stem a single-target model estimates (`training.target_instrument`).
    pub target_instrument: Option<String>,
    /// Frames per chunk (`inference.dim_t`).
    pub dim_t: usize,
    /// Frames per chunk for inputs shorter than `short_seconds`.
    pub short_segment: usize,
    /// Inputs shorter than this many seconds use `short_segment`.
    pub short_seconds: f64,
    /// Chunks per chunk length (`inference.num_overlap`, 8 without it).
    pub num_overlap: usize,
    /// Whether the inverse STFT keeps the chunk's own length (Mel-Band's
    /// `match_input_audio_length`).
    pub match_input_length: bool,
}

/// Why a converted RoFormer's card cannot be used.
#[derive(Debug, Error)]
pub enum RoformerParamsError {
    /// No card beside the model.
    #[error("{0} has no card beside it (NAME.json with a `roformer` section); convert the checkpoint with `stemscribe models add MODEL.ckpt`")]
    Missing(PathBuf),
    /// The card could not be read.
    #[error("could not read {path}")]
    Read {
        /// The card.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The card is not a RoFormer card.
    #[error("{path} is not a RoFormer card")]
    Parse {
        /// The card.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A value is out of range.
    #[error("{path}: {reason}")]
    Invalid {
        /// The card.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Deserialize, Serialize)]
struct CardFile {
    roformer: RoformerParams,
}

impl RoformerParams {
    /// The card beside `model` (`NAME.json`, else `MODEL.json`).
    pub fn for_model(model: &Path) -> Result<Self, RoformerParamsError> {
        let path = card_beside(model).ok_or_else(|| RoformerParamsError::Missing(model.into()))?;
        let text = std::fs::read_to_string(&path).map_err(|source| RoformerParamsError::Read {
            path: path.clone(),
            source,
        })?;
        let card: CardFile =
            serde_json::from_str(&text).map_err(|source| RoformerParamsError::Parse {
                path: path.clone(),
                source,
            })?;
        card.roformer
            .check()
            .map_err(|reason| RoformerParamsError::Invalid { path, reason })?;
        Ok(card.roformer)
    }

    /// The card as JSON, as [`RoformerParams::for_model`] reads it.
    pub fn to_card_json(&self) -> String {
        serde_json::json!({ "roformer": self }).to_string()
    }

    fn check(&self) -> Result<(), String> {
        if self.n_fft % 2 != 0 || !(16..=65_536).contains(&self.n_fft) {
            return Err(format!(
                "n_fft {} is not an even size from 16 to 65536",
                self.n_fft
            ));
        }
        if self.hop == 0 || self.hop > self.n_fft {
            return Err(format!("hop {} is not within 1..={}", self.hop, self.n_fft));
        }
        if self.channels != 2 {
            return Err(format!("channels is {}, stereo models only", self.channels));
        }
        let bins = self.n_fft / 2 + 1;
        let listed: usize = self.band_bins.iter().map(Vec::len).sum();
        // Mel bands overlap (each bin in about two); more would only inflate the network's input.
        if listed > MAX_BAND_OVERLAP * bins || self.band_bins.len() > bins {
            return Err(format!(
                "{} bands listing {listed} bins, for {bins} bins",
                self.band_bins.len()
            ));
        }
        if self.stems > MAX_STEMS || self.instruments.len() > MAX_STEMS {
            return Err(format!(
                "{} stems and {} instruments; at most {MAX_STEMS}",
                self.stems,
                self.instruments.len()
            ));
        }
        if self.family == RoformerFamily::Mdx23c {
            let first_bins = self.band_bins.first().is_some_and(|band| {
                !band.is_empty() && band.len() <= bins && band.iter().copied().eq(0..band.len())
            });
            if self.band_bins.len() != 1 || !first_bins {
                return Err("an MDX23C card has one band, bins 0..dim_f".into());
            }
        }
        let mut covered = vec![false; bins];
        for band in &self.band_bins {
            if band.is_empty() {
                return Err("a band has no bins".into());
            }
            for &bin in band {
                *covered
                    .get_mut(bin)
                    .ok_or(format!("bin {bin} is past the {bins} bins"))? = true;
            }
        }
        if covered.contains(&false) && self.family != RoformerFamily::Mdx23c {
            return Err("some bins are in no band".into());
        }
        for (name, frames) in [("dim_t", self.dim_t), ("short_segment", self.short_segment)] {
            if frames < 2 || self.hop.saturating_mul(frames - 1) > MAX_CHUNK {
                return Err(format!("{name} {frames} makes chunks outside 1..=60 s"));
            }
            if self.num_overlap == 0 || self.hop * (frames - 1) < self.num_overlap {
                return Err(format!("num_overlap {} leaves no step", self.num_overlap));
            }
        }
        if !(self.short_seconds.is_finite() && self.short_seconds >= 0.0) {
            return Err(format!(
                "short_seconds {} is not a duration",
                self.short_seconds
            ));
        }
        self.stem_names().map(|_| ())
    }

    /// Features per frame the network reads: (re, im) × channels × bins of every band.
    pub fn features(&self) -> usize {
        2 * self.channels * self.band_bins.iter().map(Vec::len).sum::<usize>()
    }

    /// The stems the network estimates, then the residual's when there is one.
    fn stem_names(&self) -> Result<(Vec<SourceStem>, Option<SourceStem>), String> {
        let parse = |name: &str| {
            SourceStem::from_name(name).ok_or_else(|| {
                format!(
                    "stem `{name}` is not one stemscribe names (it knows {})",
                    SourceStem::ALL.map(SourceStem::name).join(", ")
                )
            })
        };
        match &self.target_instrument {
            Some(target) => {
                if self.stems != 1 {
                    return Err(format!(
                        "target_instrument `{target}` with {} stems",
                        self.stems
                    ));
                }
                let primary = parse(target)?;
                let other = self
                    .instruments
                    .iter()
                    .find(|i| !i.eq_ignore_ascii_case(target))
                    .map(|i| parse(i))
                    .transpose()?
                    .unwrap_or(complement(primary));
                Ok((vec![primary], Some(other)))
            }
            None => {
                if self.stems != self.instruments.len() || self.stems == 0 {
                    return Err(format!(
                        "{} stems, {} instruments",
                        self.stems,
                        self.instruments.len()
                    ));
                }
                let stems = self
                    .instruments
                    .iter()
                    .map(|i| parse(i))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((stems, None))
            }
        }
    }

    /// Samples per chunk for an input of `samples` samples.
    pub fn chunk_samples(&self, samples: usize) -> usize {
        let seconds = samples as f64 / f64::from(PROCESSING_RATE);
        let frames = if seconds < self.short_seconds {
            self.short_segment
        } else {
            self.dim_t
        };
        self.hop * (frames - 1)
    }
}

/// The stem that is the mix minus `stem`, as audio-separator pairs them.
fn complement(stem: SourceStem) -> SourceStem {
    match stem {
        SourceStem::Vocals => SourceStem::Instrumental,
        SourceStem::Instrumental | SourceStem::Accompaniment => SourceStem::Vocals,
        SourceStem::Drums => SourceStem::NoDrums,
        SourceStem::Bass => SourceStem::NoBass,
        _ => SourceStem::NoOther,
    }
}

/// Where chunks start: every `step` samples while a whole chunk fits, then one chunk aligned
/// to the end (or at 0 when the input is shorter than a chunk).
pub(crate) fn chunk_starts(samples: usize, chunk: usize, step: usize) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut offset = 0;
    while offset < samples {
        if offset + chunk >= samples {
            let tail = samples.saturating_sub(chunk);
            if starts.last() != Some(&tail) {
                starts.push(tail);
            }
            break;
        }
        starts.push(offset);
        offset += step;
    }
    starts
}

/// audio-separator's chunks for a TFC-TDF network: the input padded with `front` zeros (and
/// zeros behind up to a whole number of steps), `count` chunks every `step` samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MdxcChunks {
    /// Samples between chunk starts.
    pub step: usize,
    /// Zeros before the input (`chunk - step`).
    pub front: usize,
    /// Chunks in all.
    pub count: usize,
}

impl MdxcChunks {
    /// The chunks for an input of `samples` samples.
    pub fn new(samples: usize, chunk: usize, step: usize) -> Self {
        let front = chunk - step;
        // Python's `step - (samples - chunk) % step`, the remainder never negative.
        let remainder = (samples as i64 - chunk as i64).rem_euclid(step as i64) as usize;
        let padded = front + samples + (step - remainder) + front;
        Self {
            step,
            front,
            count: (padded - chunk) / step + 1,
        }
    }
}

/// Samples divided by their summed chunk weights at a time.
const DIVIDE_BLOCK: usize = 1 << 16;

/// The sum of the chunk windows over samples `from..from + out.len()`, each chunk `(start,
/// len)` having added `window[..len]` at `start`; summed in the chunks' order (as overlap-adding
/// them did), so the same `f32` values. `spans` are sorted by start.
fn window_sums(spans: &[(usize, usize)], window: &[f32], from: usize, out: &mut [f32]) {
    out.fill(0.0);
    let to = from + out.len();
    for &(start, len) in spans {
        let (lo, hi) = (start.max(from), (start + len).min(to));
        for i in lo..hi {
            out[i - from] += window[i - start];
        }
    }
}

/// scipy's `signal.windows.hamming(n)` (symmetric).
fn hamming(n: usize) -> Vec<f32> {
    if n == 1 {
        return vec![1.0];
    }
    (0..n)
        .map(|i| {
            let phase = std::f64::consts::TAU * i as f64 / (n - 1) as f64;
            (0.54 - 0.46 * phase.cos()) as f32
        })
        .collect()
}

/// A loaded RoFormer, shareable across threads.
#[derive(Debug)]
pub struct RoformerModel {
    params: RoformerParams,
    stft: Stft,
    /// The bin of each (band, bin) position, in the network's order.
    gather: Vec<usize>,
    /// 1 / the number of bands each bin is in.
    inverse_count: Vec<f32>,
    stems: Vec<SourceStem>,
    residual: Option<SourceStem>,
    model: Model,
}

impl RoformerModel {
    /// Loads a converted RoFormer (`file` and its card).
    pub fn new(runtime: &Runtime, file: &Path) -> Result<Self, crate::ModelFileError> {
        let params = RoformerParams::for_model(file)?;
        let model = runtime
            .model_at_with(file, WeightPacking::AsStored)
            .map_err(SeparationError::from)?;
        Ok(Self::from_model(model, params)?)
    }

    /// Wraps a loaded model, checking its tensors against `params`.
    pub(crate) fn from_model(
        model: Model,
        params: RoformerParams,
    ) -> Result<Self, SeparationError> {
        let features = params.features();
        let fits = model.input("bands").is_some_and(|input| {
            input
                .shape
                .as_ref()
                .is_some_and(|s| s.len() == 2 && (s[1] < 0 || s[1] as usize == features))
        });
        if !fits || model.outputs().iter().all(|o| o.name != "masks") {
            return Err(model
                .mismatch(format!(
                    "a converted RoFormer reads `bands` [frames, {features}] and writes `masks`"
                ))
                .into());
        }
        let (stems, residual) = params
            .stem_names()
            .map_err(|reason| model.mismatch(reason))?;
        let gather: Vec<usize> = params.band_bins.iter().flatten().copied().collect();
        let mut count = vec![0u32; params.n_fft / 2 + 1];
        for &bin in &gather {
            count[bin] += 1;
        }
        Ok(Self {
            stft: Stft::new(params.n_fft, params.hop),
            inverse_count: count.iter().map(|&c| 1.0 / c.max(1) as f32).collect(),
            gather,
            stems,
            residual,
            params,
            model,
        })
    }

    /// The parameters it runs with.
    pub fn params(&self) -> &RoformerParams {
        &self.params
    }

    /// The stem that is the input minus the network's one stem, for a single-target model.
    pub fn residual(&self) -> Option<SourceStem> {
        self.residual
    }

    /// Network calls [`Separate::separate`] makes for `samples` samples.
    pub fn chunks(&self, samples: usize) -> usize {
        let chunk = self.params.chunk_samples(samples);
        let step = chunk / self.params.num_overlap;
        if self.params.family == RoformerFamily::Mdx23c {
            MdxcChunks::new(samples, chunk, step).count
        } else {
            chunk_starts(samples, chunk, step).len()
        }
    }

    /// One chunk (`[2][len]` samples) through the model: `[stems][2][len']` samples.
    fn run_chunk(&self, part: &[Vec<f32>; 2]) -> Result<Vec<[Vec<f32>; 2]>, SeparationError> {
        let len = part[0].len();
        let frames = self.stft.frames(len);
        let bins = self.stft.bins();
        let half = self.params.n_fft / 2;
        let mut scratch = vec![0.0f32; self.params.n_fft];
        // spectra[c][t * bins + f]
        let spectra: [Vec<Complex32>; 2] = measure(Stage::Stft, || {
            part.each_ref().map(|side| {
                let padded = reflect_pad(side, half);
                let mut out = vec![Complex32::default(); frames * bins];
                for (t, frame) in out.chunks_exact_mut(bins).enumerate() {
                    self.stft.forward_frame_at(
                        &padded,
                        (t * self.params.hop) as isize,
                        &mut scratch,
                        frame,
                    );
                }
                out
            })
        });
        let features = self.params.features();
        let mut bands = vec![0.0f32; frames * features];
        for (t, row) in bands.chunks_exact_mut(features).enumerate() {
            for (j, &bin) in self.gather.iter().enumerate() {
                for (c, side) in spectra.iter().enumerate() {
                    let value = side[t * bins + bin];
                    row[4 * j + 2 * c] = value.re;
                    row[4 * j + 2 * c + 1] = value.im;
                }
            }
        }
        let shape = [frames, features];
        let input = Input {
            name: "bands",
            shape: &shape,
            data: &bands,
        };
        let masks = self.model.run(&[input], &["masks"])?.swap_remove(0);
        let stems = self.params.stems;
        if masks.data.len() != stems * frames * features {
            return Err(self
                .model
                .mismatch(format!(
                    "output `masks` is {:?}, not [{stems}, {frames}, {features}]",
                    masks.shape
                ))
                .into());
        }
        let length = if self.params.match_input_length {
            len
        } else {
            self.params.hop * (frames - 1)
        };
        let spectrum_out = self.params.family == RoformerFamily::Mdx23c;
        let out = measure(Stage::InverseStft, || {
            let mut out = Vec::with_capacity(stems);
            let mut summed = vec![Complex32::default(); bins];
            for mask in masks.data.chunks_exact(frames * features) {
                let mut waves = [self.stft.accumulator(length), self.stft.accumulator(length)];
                for (c, wave) in waves.iter_mut().enumerate() {
                    for t in 0..frames {
                        summed.fill(Complex32::default());
                        let row = &mask[t * features..(t + 1) * features];
                        for (j, &bin) in self.gather.iter().enumerate() {
                            summed[bin] +=
                                Complex32::new(row[4 * j + 2 * c], row[4 * j + 2 * c + 1]);
                        }
                        // MDX23C's output is the stem's spectrum itself; the RoFormers' a mask.
                        if !spectrum_out {
                            for (f, value) in summed.iter_mut().enumerate() {
                                *value =
                                    spectra[c][t * bins + f] * (*value * self.inverse_count[f]);
                            }
                        }
                        self.stft
                            .inverse_frame_add(&mut summed, t, &mut scratch, wave);
                    }
                }
                out.push(waves.map(|wave| self.stft.finish(wave, length)));
            }
            out
        });
        Ok(out)
    }
}

impl RoformerModel {
    /// MDX23C's chunking (see the module's documentation): every output sample is the sum of
    /// the chunks over it, in their order, divided by `num_overlap`.
    fn separate_unweighted(
        &self,
        audio: &Audio,
        gain: f32,
        chunk: usize,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<(SourceStem, Audio)>, SeparationError> {
        let samples = audio.frames();
        let chunks = MdxcChunks::new(samples, chunk, chunk / self.params.num_overlap);
        let mut result: Vec<[Vec<f32>; 2]> = (0..self.params.stems)
            .map(|_| [vec![0.0f32; samples], vec![0.0f32; samples]])
            .collect();
        for k in 0..chunks.count {
            // The chunk covers padded positions start..start + chunk, input sample
            // `position - front`.
            let start = k * chunks.step;
            let part = [0, 1].map(|c| {
                let input = audio.channel(c);
                (start..start + chunk)
                    .map(|p| {
                        p.checked_sub(chunks.front)
                            .and_then(|i| input.get(i))
                            .map_or(0.0, |&v| v * gain)
                    })
                    .collect::<Vec<f32>>()
            });
            let waves = self.run_chunk(&part)?;
            for (summed, wave) in result.iter_mut().zip(&waves) {
                for c in 0..2 {
                    for (offset, &v) in wave[c].iter().enumerate().take(chunk) {
                        let Some(i) = (start + offset).checked_sub(chunks.front) else {
                            continue;
                        };
                        match summed[c].get_mut(i) {
                            Some(acc) => *acc += v,
                            None => break,
                        }
                    }
                }
            }
            progress(Progress {
                done: k + 1,
                total: chunks.count,
            });
        }
        let overlap = self.params.num_overlap as f32;
        for side in result.iter_mut().flatten() {
            for v in side.iter_mut() {
                *v = *v / overlap / gain;
            }
        }
        self.with_residual(audio, result)
    }

    /// The network's stems as [`Audio`], then the input minus the first for a single-target
    /// model.
    fn with_residual(
        &self,
        audio: &Audio,
        result: Vec<[Vec<f32>; 2]>,
    ) -> Result<Vec<(SourceStem, Audio)>, SeparationError> {
        let mut out = Vec::with_capacity(result.len() + 1);
        for (stem, channels) in self.stems.iter().zip(result) {
            out.push((*stem, Audio::new(PROCESSING_RATE, Vec::from(channels))?));
        }
        if let Some(residual) = self.residual {
            let primary = &out[0].1;
            let channels = (0..2)
                .map(|c| {
                    audio
                        .channel(c)
                        .iter()
                        .zip(primary.channel(c))
                        .map(|(&mix, &p)| mix - p)
                        .collect()
                })
                .collect();
            out.push((residual, Audio::new(PROCESSING_RATE, channels)?));
        }
        Ok(out)
    }
}

impl Separate for RoformerModel {
    fn file(&self) -> &Path {
        self.model.file()
    }

    /// The network's stems in its order, then the residual of a single-target model.
    fn stems(&self) -> Vec<SourceStem> {
        let mut stems = self.stems.clone();
        stems.extend(self.residual);
        stems
    }

    fn separate(
        &self,
        audio: &Audio,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<(SourceStem, Audio)>, SeparationError> {
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
        let chunk = self.params.chunk_samples(samples);
        if self.params.family == RoformerFamily::Mdx23c {
            return self.separate_unweighted(audio, gain, chunk, progress);
        }
        let starts = chunk_starts(samples, chunk, chunk / self.params.num_overlap);
        let window = hamming(chunk);
        let stems = self.params.stems;
        let mut result: Vec<[Vec<f32>; 2]> = (0..stems)
            .map(|_| [vec![0.0f32; samples], vec![0.0f32; samples]])
            .collect();
        // Where each chunk's window was added: the weights are summed again when dividing,
        // instead of kept for the whole song.
        let mut spans = Vec::with_capacity(starts.len());
        for (k, &start) in starts.iter().enumerate() {
            let end = (start + chunk).min(samples);
            let part = [0, 1].map(|c| {
                audio.channel(c)[start..end]
                    .iter()
                    .map(|&v| v * gain)
                    .collect::<Vec<f32>>()
            });
            let waves = self.run_chunk(&part)?;
            let safe = (end - start).min(chunk).min(waves[0][0].len());
            for (summed, wave) in result.iter_mut().zip(&waves) {
                for c in 0..2 {
                    for ((acc, &v), &w) in summed[c][start..start + safe]
                        .iter_mut()
                        .zip(&wave[c][..safe])
                        .zip(&window[..safe])
                    {
                        *acc += v * w;
                    }
                }
            }
            spans.push((start, safe));
            progress(Progress {
                done: k + 1,
                total: starts.len(),
            });
        }
        // Each sum is divided where it lies and becomes its stem: no second copy of the song.
        let mut weights = vec![0.0f32; DIVIDE_BLOCK];
        for block in (0..samples).step_by(DIVIDE_BLOCK) {
            let end = (block + DIVIDE_BLOCK).min(samples);
            let weights = &mut weights[..end - block];
            window_sums(&spans, &window, block, weights);
            for side in result.iter_mut().flatten() {
                for (v, &w) in side[block..end].iter_mut().zip(weights.iter()) {
                    *v = *v / w.max(1e-10) / gain;
                }
            }
        }
        self.with_residual(audio, result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_input_and_the_last_is_aligned_to_its_end() {
        assert_eq!(chunk_starts(10, 4, 2), vec![0, 2, 4, 6]);
        assert_eq!(chunk_starts(11, 4, 2), vec![0, 2, 4, 6, 7]);
        assert_eq!(chunk_starts(3, 4, 1), vec![0]);
        assert_eq!(chunk_starts(0, 4, 1), Vec::<usize>::new());
    }

    #[test]
    fn window_sums_by_block_equal_the_overlap_added_windows() {
        let window = hamming(10);
        let spans = [(0, 10), (5, 10), (10, 10), (13, 7)];
        let mut whole = vec![0.0f32; 20];
        for &(start, len) in &spans {
            for (acc, &w) in whole[start..start + len].iter_mut().zip(&window) {
                *acc += w;
            }
        }
        for block in [1, 3, 7, 20] {
            let mut got = Vec::new();
            for from in (0..20).step_by(block) {
                let mut part = vec![f32::NAN; block.min(20 - from)];
                window_sums(&spans, &window, from, &mut part);
                got.extend(part);
            }
            assert_eq!(got, whole, "blocks of {block}");
        }
    }

    /// A small valid card: BS-RoFormer, n_fft 16 (9 bins) in three bands, one vocal stem.
    fn card() -> RoformerParams {
        RoformerParams {
            family: RoformerFamily::BsRoformer,
            n_fft: 16,
            hop: 4,
            channels: 2,
            band_bins: vec![vec![0, 1, 2], vec![3, 4, 5], vec![6, 7, 8]],
            stems: 1,
            instruments: vec!["vocals".into(), "other".into()],
            target_instrument: Some("vocals".into()),
            dim_t: 8,
            short_segment: 8,
            short_seconds: 0.0,
            num_overlap: 2,
            match_input_length: false,
        }
    }

    /// A change that spoils a card, and the field its error must name.
    type Spoil = (fn(&mut RoformerParams), &'static str);

    #[test]
    fn nonsense_in_a_card_is_refused_naming_the_field() {
        assert_eq!(card().check(), Ok(()));
        let cases: [Spoil; 12] = [
            (|c| c.n_fft = 15, "n_fft"),
            (|c| c.n_fft = 1 << 20, "n_fft"),
            (|c| c.hop = 0, "hop"),
            (|c| c.channels = 1, "channels"),
            (|c| c.band_bins[1].clear(), "no bins"),
            (|c| c.band_bins[2].push(9), "bin 9"),
            (|c| c.band_bins.truncate(2), "in no band"),
            (|c| c.band_bins[0] = vec![0; 1_000_000], "listing"),
            (|c| c.stems = 1_000_000, "stems"),
            (|c| c.dim_t = usize::MAX / 2, "dim_t"),
            (|c| c.num_overlap = 0, "num_overlap"),
            (|c| c.short_seconds = f64::NAN, "short_seconds"),
        ];
        for (spoil, field) in cases {
            let mut bad = card();
            spoil(&mut bad);
            let error = bad.check().expect_err(field);
            assert!(error.contains(field), "{field}: {error}");
        }
    }

    #[test]
    fn hamming_matches_scipy() {
        let w = hamming(5);
        let want = [0.08, 0.54, 1.0, 0.54, 0.08];
        for (a, b) in w.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{w:?}");
        }
    }
}

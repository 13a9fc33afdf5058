//! Runs a [`ModelSpec`] network over a song window by window and turns its estimates into
//! stem signals.
//!
//! Memory stays bounded by two windows (the spectra of `segment_frames` frames) and one
//! window's mask sums, plus the output signals, whatever the song's length: spectra are
//! computed per window and masks are applied, inverted and overlap-added as soon as no later
//! window covers a frame. While the network runs on one window, a helper thread finishes the
//! window before it and analyses the window after it, so the signal processing hides behind
//! the network where the cores allow; the stems are those of a run one step after another.

use std::path::Path;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use realfft::num_complex::Complex32;
use stemscribe_audio::{Audio, AudioError, PROCESSING_RATE};
use stemscribe_runtime::{Input, Model, Progress, Runtime, RuntimeError};
use thiserror::Error;

use crate::family::{Separate, SourceStem};
use crate::spec::ModelSpec;
use crate::stft::{self, Stft};
use crate::wiener;
use stemscribe_audio::timings::{measure, record, Stage};

/// Added to the sum of squared estimates so silent bins do not divide by zero (Spleeter's).
const MASK_EPSILON: f32 = 1e-10;

/// Why separation failed.
#[derive(Debug, Error)]
pub enum SeparationError {
    /// The runtime or the model could not be loaded or run, or its tensors are not what its
    /// card or family says.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The input is not 44.1 kHz stereo.
    #[error("separation needs {PROCESSING_RATE} Hz stereo input, got {rate} Hz with {channels} channels")]
    InputFormat {
        /// The input's rate.
        rate: u32,
        /// The input's channel count.
        channels: usize,
    },
    /// The stems could not be assembled.
    #[error(transparent)]
    Audio(#[from] AudioError),
}

/// What happens to the bins above those the network sees (above 11 kHz for Spleeter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HighBand {
    /// Silenced, as Spleeter does.
    Zero,
    /// Each frame's mask is extended upwards with its mean over the top `average_bins` bins.
    ExtendMask {
        /// How many of the highest modelled bins are averaged.
        average_bins: usize,
    },
}

/// What the network sees past the song's end, where the last window overhangs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndPadding {
    /// Silence, as Spleeter does. The network then tends to give the last seconds before
    /// the silence to the accompaniment, vocals included.
    Silence,
    /// The song's last frames in reverse order (reflected again, if need be, for a song
    /// shorter than half a window), so the music seems to go on. Only the network's input
    /// changes: the outputs still end with the song.
    Mirror,
}

/// Choices that change the output. [`SeparationOptions::default`] is the best measured
/// within the 20× real-time budget: the Wiener filter adds about 0.07 dB SDR but costs
/// about 40 % more time, so it is opt-in; mirroring the end adds 1.5 dB vocal SDR on a
/// 6.8-second clip, less on a song, since only its last window changes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeparationOptions {
    /// Treatment of the bins above the network's range.
    pub high_band: HighBand,
    /// Frames shared by consecutive windows, cross-faded to hide seams (0: Spleeter's
    /// back-to-back windows).
    pub overlap_frames: usize,
    /// Refine the masked estimates with a multichannel Wiener filter (one EM step, as
    /// `norbert.wiener(iterations=1)`).
    pub wiener: bool,
    /// The network's input past the song's end.
    pub end_padding: EndPadding,
    /// Scale what the network reads so that the input's loud part
    /// ([`stemscribe_audio::loud_level_db`] over 100 ms blocks) lies at this level in dBFS;
    /// the masks are applied to the unscaled spectra, so the stems keep the input's level.
    /// The network is not level-invariant: a mix 20 dB quieter loses 4.5 dB of vocal SDR, and
    /// 30 dB quieter 12.6 dB. `None`: the network reads the input as it is (Spleeter).
    pub loud_level_dbfs: Option<f32>,
}

/// The level [`SeparationOptions::default`] brings the loud part of an input to, in dBFS: the
/// level of mastered music, chosen on the three multitracks at hand (mean vocal SDR 8.73 dB,
/// against 8.71 dB for the input as it is, 8.72 at −10, 8.67 at −14, 8.57 at −16 and 8.43
/// at −20).
pub const LOUD_LEVEL_DBFS: f32 = -12.0;

impl SeparationOptions {
    /// Spleeter's exact behaviour: back-to-back windows and a silent band above 11 kHz.
    pub fn spleeter_reference() -> Self {
        Self {
            high_band: HighBand::Zero,
            overlap_frames: 0,
            wiener: false,
            end_padding: EndPadding::Silence,
            loud_level_dbfs: None,
        }
    }
}

impl Default for SeparationOptions {
    fn default() -> Self {
        Self {
            high_band: HighBand::ExtendMask { average_bins: 64 },
            overlap_frames: 64,
            wiener: false,
            end_padding: EndPadding::Mirror,
            loud_level_dbfs: Some(LOUD_LEVEL_DBFS),
        }
    }
}

/// A loaded magnitude-mask (Spleeter-style) model, shareable across threads; calls to the
/// network are serialised.
#[derive(Debug)]
pub struct Separator {
    spec: ModelSpec,
    stems: Vec<SourceStem>,
    stft: Stft,
    options: SeparationOptions,
    model: Model,
    /// Whether the network's input leaves its bin axis open, so that it can run on the lowest
    /// bins alone ([`Separate::separate_below`]).
    open_bins: bool,
}

/// A band-limited run feeds the network a multiple of this many bins (Spleeter's U-Net halves
/// the bin axis six times).
const BAND_BINS_STEP: usize = 64;

impl Separator {
    /// Loads the model `spec` describes and checks its tensors; it separates with
    /// [`SeparationOptions::default`] unless given others ([`Separator::with_options`]).
    pub fn new(runtime: &Runtime, spec: ModelSpec) -> Result<Self, SeparationError> {
        let model = runtime.model(&spec.file)?;
        let outputs: Vec<&str> = spec.stems.iter().map(String::as_str).collect();
        model.require(&[&spec.input], &outputs)?;
        if spec.bins == 0 || spec.bins > spec.fft_size / 2 + 1 || spec.segment_frames == 0 {
            return Err(model.mismatch("bins or segment length out of range").into());
        }
        let stems = spec
            .stems
            .iter()
            .map(|name| {
                SourceStem::from_name(name)
                    .ok_or_else(|| model.mismatch(format!("`{name}` is not a known stem")))
            })
            .collect::<Result<_, _>>()?;
        let open_bins = model
            .input(&spec.input)
            .and_then(|input| input.shape.as_ref())
            .and_then(|shape| shape.last())
            .is_some_and(|&bins| bins < 0);
        Ok(Self {
            stft: Stft::new(spec.fft_size, spec.hop),
            stems,
            spec,
            options: SeparationOptions::default(),
            model,
            open_bins,
        })
    }

    /// The same model, separating with `options`.
    pub fn with_options(self, options: SeparationOptions) -> Self {
        Self { options, ..self }
    }

    /// The model's description.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Splits 44.1 kHz stereo `audio` into one 44.1 kHz stereo signal per stem (in
    /// [`ModelSpec::stems`] order), each exactly as long as the input, with `options` instead
    /// of its own.
    pub fn separate_with(
        &self,
        audio: &Audio,
        options: &SeparationOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<Audio>, SeparationError> {
        let every = vec![true; self.stems.len()];
        let stems = self.separate_bins(audio, options, self.spec.bins, &every, progress)?;
        Ok(stems.into_iter().flatten().collect())
    }

    /// The network bins a run that needs only what lies below `max_hz` feeds it: the fewest
    /// multiple of 64 bins that reach `max_hz` when the model's bin axis is open, else all of
    /// them.
    pub fn bins_below(&self, max_hz: f32) -> usize {
        if !self.open_bins || !max_hz.is_finite() || max_hz <= 0.0 {
            return self.spec.bins;
        }
        let bin_hz = PROCESSING_RATE as f32 / self.spec.fft_size as f32;
        let needed = (max_hz / bin_hz).ceil() as usize + 1;
        needed
            .div_ceil(BAND_BINS_STEP)
            .saturating_mul(BAND_BINS_STEP)
            .min(self.spec.bins)
    }

    /// [`Separator::separate_with`], feeding the network the lowest `bins` bins only (the
    /// bins above get `options.high_band`'s treatment), and synthesising only the stems whose
    /// entry in `wanted` is true (the others are `None`: their masks are still computed, as
    /// every stem's mask depends on all of them).
    fn separate_bins(
        &self,
        audio: &Audio,
        options: &SeparationOptions,
        bins: usize,
        wanted: &[bool],
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<Option<Audio>>, SeparationError> {
        if audio.sample_rate() != PROCESSING_RATE || audio.num_channels() != 2 {
            return Err(SeparationError::InputFormat {
                rate: audio.sample_rate(),
                channels: audio.num_channels(),
            });
        }
        let len = audio.frames();
        let frames = self.stft.frames(len);
        let layout = WindowLayout::new(frames, self.spec.segment_frames, options.overlap_frames);
        let mut state = WindowState::new(&self.spec, bins, &self.stft, len, wanted);
        let gain = options
            .loud_level_dbfs
            .and_then(|target| audio.gain_to_loud_level(target))
            .unwrap_or(1.0);
        let new_input = || WindowInput::new(self.spec.segment_frames, bins, self.stft.bins());
        // Window k's spectra, those of the frames window k - 1 (`before`) shares copied.
        let analyse = |input: &mut WindowInput, k: usize, before: Option<&WindowInput>| {
            let start = k * layout.hop;
            let before = before.map(|before| (before, start - layout.hop));
            input.analyse(
                &self.stft,
                audio,
                start,
                frames,
                options.end_padding,
                gain,
                before,
            );
        };
        // Window k's masks and synthesis from its spectra and the network's estimates: the
        // seconds of each.
        let finish = |state: &mut WindowState, (input, estimates): &Analysed, k: usize| {
            let start = k * layout.hop;
            let masks = timed(|| state.accumulate_masks(estimates, &layout));
            let last = k + 1 == layout.count;
            let finished = if last { frames - start } else { layout.hop };
            let valid = (frames - start).min(self.spec.segment_frames);
            let inverse =
                timed(|| state.synthesise(input, &self.stft, start, finished, valid, options));
            if !last {
                state.advance(layout.hop);
            }
            [(Stage::Masks, masks), (Stage::InverseStft, inverse)]
        };
        let mut current = new_input();
        measure(Stage::Stft, || analyse(&mut current, 0, None));
        // While the network runs on window k, another thread finishes window k - 1 and then
        // analyses window k + 1 into the buffer window k - 1 leaves: the same operations in
        // the same order as one after the other, so the stems are the same, with one window
        // buffer more than that.
        let mut previous: Option<Analysed> = None;
        for k in 0..layout.count {
            let finished = previous.take();
            let (estimates, next) = std::thread::scope(|scope| {
                let state = &mut state;
                let shown = &current;
                let beside = scope.spawn(move || {
                    let (buffer, [masks, inverse]) = match finished {
                        Some(analysed) => {
                            let spent = finish(state, &analysed, k - 1);
                            (Some(analysed.0), spent)
                        }
                        None => (
                            None,
                            [
                                (Stage::Masks, Duration::ZERO),
                                (Stage::InverseStft, Duration::ZERO),
                            ],
                        ),
                    };
                    let mut next = (k + 1 < layout.count).then(|| buffer.unwrap_or_else(new_input));
                    let stft = next.as_mut().map_or(Duration::ZERO, |input| {
                        timed(|| analyse(input, k + 1, Some(shown)))
                    });
                    (next, [masks, inverse, (Stage::Stft, stft)])
                });
                let estimates = self.run_network(&current.magnitude, bins);
                let waiting = Instant::now();
                let (next, spent) = beside
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                record_wait(waiting.elapsed(), &spent);
                (estimates, next)
            });
            let estimates = estimates?;
            progress(Progress {
                done: k + 1,
                total: layout.count,
            });
            let Some(next) = next else {
                previous = Some((current, estimates));
                break;
            };
            previous = Some((std::mem::replace(&mut current, next), estimates));
        }
        if let Some(analysed) = previous.take() {
            for (stage, spent) in finish(&mut state, &analysed, layout.count - 1) {
                record(stage, spent);
            }
        }
        measure(Stage::InverseStft, || {
            state
                .outputs
                .into_iter()
                .zip(wanted)
                .map(|(sides, &wanted)| {
                    if !wanted {
                        return Ok(None);
                    }
                    let sides = sides
                        .into_par_iter()
                        .map(|accumulator| self.stft.finish(accumulator, len))
                        .collect();
                    Ok(Some(Audio::new(PROCESSING_RATE, sides)?))
                })
                .collect()
        })
    }

    /// Runs the network on one window of magnitudes, `bins` per frame; returns one estimate
    /// per stem.
    fn run_network(
        &self,
        magnitude: &[f32],
        bins: usize,
    ) -> Result<Vec<Vec<f32>>, SeparationError> {
        let shape = [1usize, 2, self.spec.segment_frames, bins];
        let input = Input {
            name: &self.spec.input,
            shape: &shape,
            data: magnitude,
        };
        let outputs: Vec<&str> = self.spec.stems.iter().map(String::as_str).collect();
        let estimates = self.model.run(&[input], &outputs)?;
        estimates
            .into_iter()
            .zip(&self.spec.stems)
            .map(|(estimate, stem)| {
                if estimate.data.len() != magnitude.len() {
                    return Err(self
                        .model
                        .mismatch(format!(
                            "`{stem}` has {} values, expected {}",
                            estimate.data.len(),
                            magnitude.len()
                        ))
                        .into());
                }
                Ok(estimate.data)
            })
            .collect()
    }
}

impl Separate for Separator {
    fn file(&self) -> &Path {
        self.model.file()
    }

    fn stems(&self) -> Vec<SourceStem> {
        self.stems.clone()
    }

    fn separate(
        &self,
        audio: &Audio,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<(SourceStem, Audio)>, SeparationError> {
        let stems = self.separate_with(audio, &self.options, progress)?;
        Ok(self.stems.iter().copied().zip(stems).collect())
    }

    fn separate_below(
        &self,
        audio: &Audio,
        max_hz: f32,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<(SourceStem, Audio)>, SeparationError> {
        self.separate_selected(audio, &self.stems, Some(max_hz), progress)
    }

    fn separate_selected(
        &self,
        audio: &Audio,
        wanted: &[SourceStem],
        max_hz: Option<f32>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<(SourceStem, Audio)>, SeparationError> {
        let bins = max_hz.map_or(self.spec.bins, |hz| self.bins_below(hz));
        let selected: Vec<bool> = self.stems.iter().map(|s| wanted.contains(s)).collect();
        let stems = self.separate_bins(audio, &self.options, bins, &selected, progress)?;
        Ok(self
            .stems
            .iter()
            .copied()
            .zip(stems)
            .filter_map(|(stem, audio)| Some((stem, audio?)))
            .collect())
    }
}

/// A window's spectra and the network's estimates for it.
type Analysed = (WindowInput, Vec<Vec<f32>>);

/// The wall time of `work`.
fn timed(work: impl FnOnce()) -> Duration {
    let started = Instant::now();
    work();
    started.elapsed()
}

/// Counts `waited`, the time the network's thread waited for the work beside it, in that
/// work's stages, in proportion to the time each took.
fn record_wait(waited: Duration, spent: &[(Stage, Duration)]) {
    let total: Duration = spent.iter().map(|(_, d)| *d).sum();
    if total.is_zero() {
        return;
    }
    for &(stage, d) in spent {
        record(stage, waited.mul_f64(d.as_secs_f64() / total.as_secs_f64()));
    }
}

/// The frame shown at `frame` (past the end) of a song of `frames` frames when its end is
/// mirrored: the frames reflected about the last one, periodically, so always in range.
fn mirrored(frame: usize, frames: usize) -> usize {
    let period = 2 * (frames.max(1) - 1);
    if period == 0 {
        return 0;
    }
    let phase = frame % period;
    if phase < frames {
        phase
    } else {
        period - phase
    }
}

/// Where the network windows fall on the frame axis.
struct WindowLayout {
    /// Frames between window starts.
    hop: usize,
    /// Windows in all.
    count: usize,
    /// Cross-fade weight of each frame of a window.
    weights: Vec<f32>,
}

impl WindowLayout {
    fn new(frames: usize, size: usize, overlap: usize) -> Self {
        let overlap = overlap.min(size / 2);
        let hop = size - overlap;
        let count = if frames <= size {
            1
        } else {
            1 + (frames - size).div_ceil(hop)
        };
        let ramp = (overlap + 1) as f32;
        let weights = (0..size)
            .map(|i| {
                if overlap == 0 {
                    1.0
                } else {
                    1f32.min((i + 1) as f32 / ramp)
                        .min((size - i) as f32 / ramp)
                }
            })
            .collect();
        Self {
            hop,
            count,
            weights,
        }
    }
}

/// The spectra of one window and the network's input made from them.
struct WindowInput {
    size: usize,
    bins: usize,
    full_bins: usize,
    /// Complex spectra, `[side][frame][full_bin]`.
    spectra: Vec<Complex32>,
    /// Network input, `[side][frame][bin]`.
    magnitude: Vec<f32>,
}

/// What outlives one window: mask sums and output signals.
struct WindowState {
    size: usize,
    bins: usize,
    full_bins: usize,
    /// Weighted mask sums, `[stem][side][frame][bin]`, frame 0 at the window start.
    masks: Vec<f32>,
    /// Summed cross-fade weights per frame.
    weight_sums: Vec<f32>,
    /// One row's sums of squared estimates over the stems (scratch).
    totals: Vec<f32>,
    /// Overlap-add accumulators, `[stem][side]`, padded as [`Stft::padded_len`] says.
    outputs: Vec<Vec<Vec<f32>>>,
}

impl WindowInput {
    /// Buffers for windows of `size` frames of `full_bins` bins, the network reading the
    /// lowest `bins`.
    fn new(size: usize, bins: usize, full_bins: usize) -> Self {
        Self {
            size,
            bins,
            full_bins,
            spectra: vec![Complex32::default(); 2 * size * full_bins],
            magnitude: vec![0.0; 2 * size * bins],
        }
    }

    /// Computes the spectra and magnitudes of the window starting at frame `start`; frames
    /// past the song's `frames` are filled as `end` says. The frames that `before` (a window
    /// analysed the same way, and the frame it starts at) holds are copied from it: a frame's
    /// spectrum depends on its place in the song only.
    #[allow(clippy::too_many_arguments)]
    fn analyse(
        &mut self,
        stft: &Stft,
        audio: &Audio,
        start: usize,
        frames: usize,
        end: EndPadding,
        gain: f32,
        before: Option<(&WindowInput, usize)>,
    ) {
        let (size, full_bins, bins) = (self.size, self.full_bins, self.bins);
        self.spectra
            .par_chunks_mut(full_bins)
            .zip(self.magnitude.par_chunks_mut(bins))
            .enumerate()
            .for_each_init(
                || vec![0.0f32; stft.fft_size()],
                |scratch, (row, (spectrum, magnitude))| {
                    let (side, frame) = (row / size, start + row % size);
                    let shared = before.and_then(|(window, first)| {
                        let offset = frame.checked_sub(first).filter(|&o| o < window.size)?;
                        Some((window, side * window.size + offset))
                    });
                    if let Some((window, row)) = shared {
                        spectrum.copy_from_slice(&window.spectra[row * full_bins..][..full_bins]);
                        magnitude.copy_from_slice(&window.magnitude[row * bins..][..bins]);
                        return;
                    }
                    let source = match end {
                        _ if frame < frames => Some(frame),
                        EndPadding::Mirror => Some(mirrored(frame, frames)),
                        EndPadding::Silence => None,
                    };
                    if let Some(source) = source {
                        stft.forward_frame(audio.channel(side), source, scratch, spectrum);
                        for (m, x) in magnitude.iter_mut().zip(spectrum.iter()) {
                            *m = stft::magnitude(*x) * gain;
                        }
                    } else {
                        spectrum.fill(Complex32::default());
                        magnitude.fill(0.0);
                    }
                },
            );
    }
}

impl WindowState {
    /// The working set for `spec`'s network fed its lowest `bins` bins.
    fn new(spec: &ModelSpec, bins: usize, stft: &Stft, len: usize, wanted: &[bool]) -> Self {
        let size = spec.segment_frames;
        let stems = spec.stems.len();
        Self {
            size,
            bins,
            full_bins: stft.bins(),
            masks: vec![0.0; stems * 2 * size * bins],
            weight_sums: vec![0.0; size],
            totals: Vec::new(),
            // An unwanted stem gets no sides: nothing is synthesised for it.
            outputs: wanted
                .iter()
                .map(|&w| {
                    if w {
                        vec![stft.accumulator(len), stft.accumulator(len)]
                    } else {
                        Vec::new()
                    }
                })
                .collect(),
        }
    }

    /// Adds this window's ratio masks, weighted by the cross-fade, to the running sums.
    /// Row by row of `bins` values, in loops that vectorise; each value is computed as
    /// `(e * e + ε / 2) / (Σ e² + ε)` with the stems summed in order, so the masks do not
    /// depend on how the work is cut.
    fn accumulate_masks(&mut self, estimates: &[Vec<f32>], layout: &WindowLayout) {
        let (size, bins) = (self.size, self.bins);
        let plane = 2 * size * bins;
        self.totals.resize(bins, 0.0);
        for row in 0..2 * size {
            let weight = layout.weights[row % size];
            let at = row * bins..(row + 1) * bins;
            let totals = &mut self.totals[..];
            let mut stems = estimates.iter().map(|e| &e[at.clone()]);
            if let Some(first) = stems.next() {
                for (t, &e) in totals.iter_mut().zip(first) {
                    *t = e * e;
                }
            }
            for estimate in stems {
                for (t, &e) in totals.iter_mut().zip(estimate) {
                    *t += e * e;
                }
            }
            for t in totals.iter_mut() {
                *t += MASK_EPSILON;
            }
            for (sums, estimate) in self.masks.chunks_mut(plane).zip(estimates) {
                let sums = &mut sums[at.clone()];
                for ((sum, &e), &total) in sums.iter_mut().zip(&estimate[at.clone()]).zip(&*totals)
                {
                    *sum += weight * ((e * e + MASK_EPSILON / 2.0) / total);
                }
            }
        }
        for (sum, weight) in self.weight_sums.iter_mut().zip(&layout.weights) {
            *sum += weight;
        }
    }

    /// Writes the full-band mask of one stem, side and frame into `mask` (`full_bins`).
    fn mask_row(
        &self,
        stem: usize,
        side: usize,
        frame: usize,
        high_band: HighBand,
        mask: &mut [f32],
    ) {
        let (size, bins) = (self.size, self.bins);
        let plane = 2 * size * bins;
        let weight = self.weight_sums[frame];
        let sums = &self.masks[stem * plane + (side * size + frame) * bins..][..bins];
        for (m, s) in mask[..bins].iter_mut().zip(sums) {
            *m = s / weight;
        }
        let high = match high_band {
            HighBand::Zero => 0.0,
            HighBand::ExtendMask { average_bins } => {
                let n = average_bins.clamp(1, bins);
                mask[bins - n..bins].iter().sum::<f32>() / n as f32
            }
        };
        mask[bins..].fill(high);
    }

    /// Wiener-filtered stem spectra of the first `count` frames, `[stem][side][frame][bin]`,
    /// with statistics over the window's `valid` frames.
    fn wiener_spectra(
        &self,
        input: &WindowInput,
        count: usize,
        valid: usize,
        high_band: HighBand,
    ) -> Vec<Complex32> {
        let full_bins = self.full_bins;
        let stems = self.masks.len() / (2 * self.size * self.bins);
        let mut masks = vec![0.0f32; stems * 2 * valid * full_bins];
        masks
            .par_chunks_mut(full_bins)
            .enumerate()
            .for_each(|(row, mask)| {
                let (stem, side, frame) = (row / (2 * valid), (row / valid) % 2, row % valid);
                self.mask_row(stem, side, frame, high_band, mask);
            });
        wiener::refine(&input.spectra, self.size, &masks, valid, count, full_bins)
    }

    /// Separates the first `count` frames of the window and overlap-adds them into the
    /// outputs; the Wiener filter estimates its statistics over the window's `valid` frames.
    fn synthesise(
        &mut self,
        input: &WindowInput,
        stft: &Stft,
        start: usize,
        count: usize,
        valid: usize,
        options: &SeparationOptions,
    ) {
        let full_bins = self.full_bins;
        let filtered = options
            .wiener
            .then(|| self.wiener_spectra(input, count, valid, options.high_band));
        // Taken out while the sides are written in parallel, so `self` stays readable.
        let mut outputs = std::mem::take(&mut self.outputs);
        let this = &*self;
        // (stem, side, accumulator) of the stems being synthesised.
        let mut sides: Vec<(usize, usize, &mut Vec<f32>)> = outputs
            .iter_mut()
            .enumerate()
            .flat_map(|(stem, sides)| {
                sides
                    .iter_mut()
                    .enumerate()
                    .map(move |(side, out)| (stem, side, out))
            })
            .collect();
        sides.par_iter_mut().for_each(|(stem, side, out)| {
            let (stem, side) = (*stem, *side);
            let index = 2 * stem + side;
            let mut spectrum = vec![Complex32::default(); full_bins];
            let mut mask = vec![0.0f32; full_bins];
            let mut scratch = vec![0.0f32; stft.fft_size()];
            for frame in 0..count {
                match &filtered {
                    Some(spectra) => spectrum.copy_from_slice(
                        &spectra[(index * count + frame) * full_bins..][..full_bins],
                    ),
                    None => {
                        this.mask_row(stem, side, frame, options.high_band, &mut mask);
                        let x =
                            &input.spectra[(side * this.size + frame) * full_bins..][..full_bins];
                        for ((y, x), m) in spectrum.iter_mut().zip(x).zip(&mask) {
                            *y = x * m;
                        }
                    }
                }
                stft.inverse_frame_add(&mut spectrum, start + frame, &mut scratch, out);
            }
        });
        self.outputs = outputs;
    }

    /// Moves the window forward by `hop` frames, keeping the mask sums of shared frames.
    fn advance(&mut self, hop: usize) {
        let (size, bins) = (self.size, self.bins);
        for block in self.masks.chunks_mut(size * bins) {
            block.copy_within(hop * bins.., 0);
            block[(size - hop) * bins..].fill(0.0);
        }
        self.weight_sums.copy_within(hop.., 0);
        self.weight_sums[size - hop..].fill(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrored_frames_reflect_about_the_last_and_stay_in_range() {
        // Frames 0..5: past the end come 3, 2, 1, 0, then 1, 2, 3, 4, 3, ...
        let shown: Vec<usize> = (5..15).map(|f| mirrored(f, 5)).collect();
        assert_eq!(shown, [3, 2, 1, 0, 1, 2, 3, 4, 3, 2]);
        assert_eq!(mirrored(7, 1), 0);
        assert_eq!(mirrored(1, 2), 1);
        assert_eq!(mirrored(2, 2), 0);
    }
}

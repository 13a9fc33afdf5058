//! Planar `f32` audio buffers and the conversions every stage shares: sample-rate
//! conversion (rubato, whole or streamed) and channel-layout conversion (mono, stereo, downmix);
//! and the per-stage timing every stage reports to ([`timings`]).
//!
//! Every buffer holds at least one channel, all channels have the same length, and the
//! sample rate is within [`MIN_SAMPLE_RATE`]..=[`MAX_SAMPLE_RATE`].

mod channels;
mod resample;
pub mod timings;

use thiserror::Error;

/// The rate all processing runs at: decoders deliver it, models consume it.
pub const PROCESSING_RATE: u32 = 44_100;
/// The lowest sample rate a buffer may have.
pub const MIN_SAMPLE_RATE: u32 = 1_000;
/// The highest sample rate a buffer may have.
pub const MAX_SAMPLE_RATE: u32 = 384_000;
/// The most channels a buffer may have.
pub const MAX_CHANNELS: usize = 32;

/// Why a buffer could not be built or converted.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AudioError {
    /// The sample rate is outside the supported range.
    #[error(
        "unsupported sample rate {0} Hz (supported: {MIN_SAMPLE_RATE}..={MAX_SAMPLE_RATE} Hz)"
    )]
    SampleRate(u32),
    /// The channel count is zero or larger than [`MAX_CHANNELS`].
    #[error("unsupported channel count {0} (supported: 1..={MAX_CHANNELS})")]
    ChannelCount(usize),
    /// The channels do not all hold the same number of samples.
    #[error("channels differ in length")]
    RaggedChannels,
    /// The resampler could not be built or failed.
    #[error("resampling failed: {0}")]
    Resample(String),
}

/// Planar audio: one `Vec<f32>` per channel, nominally within [-1, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    sample_rate: u32,
    channels: Vec<Vec<f32>>,
}

impl Audio {
    /// Builds a buffer, checking the rate, the channel count and that channels match in length.
    pub fn new(sample_rate: u32, channels: Vec<Vec<f32>>) -> Result<Self, AudioError> {
        check_sample_rate(sample_rate)?;
        check_channel_count(channels.len())?;
        let frames = channels[0].len();
        if channels.iter().any(|c| c.len() != frames) {
            return Err(AudioError::RaggedChannels);
        }
        Ok(Self {
            sample_rate,
            channels,
        })
    }

    /// Builds a buffer from interleaved samples; a trailing partial frame is dropped.
    pub fn from_interleaved(
        sample_rate: u32,
        num_channels: usize,
        samples: &[f32],
    ) -> Result<Self, AudioError> {
        check_channel_count(num_channels)?;
        let frames = samples.len() / num_channels;
        let channels = (0..num_channels)
            .map(|c| (0..frames).map(|i| samples[i * num_channels + c]).collect())
            .collect();
        Self::new(sample_rate, channels)
    }

    /// Samples per second.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Number of channels (at least one).
    pub fn num_channels(&self) -> usize {
        self.channels.len()
    }

    /// Number of samples in each channel.
    pub fn frames(&self) -> usize {
        self.channels[0].len()
    }

    /// Length in seconds.
    pub fn duration_secs(&self) -> f64 {
        self.frames() as f64 / f64::from(self.sample_rate)
    }

    /// The samples of channel `index`.
    ///
    /// # Panics
    /// If `index >= self.num_channels()`.
    pub fn channel(&self, index: usize) -> &[f32] {
        &self.channels[index]
    }

    /// All channels, in order.
    pub fn channels(&self) -> &[Vec<f32>] {
        &self.channels
    }

    /// Consumes the buffer, returning its channels.
    pub fn into_channels(self) -> Vec<Vec<f32>> {
        self.channels
    }

    /// The factor that brings the loud part of this audio ([`loud_level_db`] over 100 ms
    /// blocks) to `dbfs`; `None` for digital silence.
    pub fn gain_to_loud_level(&self, dbfs: f32) -> Option<f32> {
        let block = (self.sample_rate / 10).max(1) as usize;
        let level = loud_level_db(&self.channels, block)?;
        Some(10f64.powf((f64::from(dbfs) - level) / 20.0) as f32)
    }

    /// A copy of this audio scaled up so that its loud part lies at `dbfs`, when it lies
    /// below; `None` (and no copy) when it is loud enough or digital silence.
    pub fn raised_to(&self, dbfs: f32) -> Option<Self> {
        let gain = self.gain_to_loud_level(dbfs).filter(|&g| g > 1.0)?;
        let mut raised = self.clone();
        raised
            .channels
            .iter_mut()
            .flatten()
            .for_each(|s| *s *= gain);
        Some(raised)
    }

    /// The largest absolute sample value.
    pub fn peak(&self) -> f32 {
        self.channels
            .iter()
            .flatten()
            .fold(0.0f32, |peak, s| peak.max(s.abs()))
    }

    /// A copy of the frames in `range` (clamped to the buffer; empty when it lies past it).
    pub fn section(&self, range: std::ops::Range<usize>) -> Self {
        let end = range.end.min(self.frames());
        let start = range.start.min(end);
        Self {
            sample_rate: self.sample_rate,
            channels: self
                .channels
                .iter()
                .map(|c| c[start..end].to_vec())
                .collect(),
        }
    }

    /// Adds buffers sample by sample (e.g. stems back into a mix); all must share rate,
    /// channel count and length.
    pub fn sum(parts: &[Audio]) -> Result<Self, AudioError> {
        let (first, rest) = parts.split_first().ok_or(AudioError::ChannelCount(0))?;
        let mut channels = first.channels.clone();
        for part in rest {
            if part.sample_rate != first.sample_rate {
                return Err(AudioError::SampleRate(part.sample_rate));
            }
            if part.channels.len() != channels.len() {
                return Err(AudioError::ChannelCount(part.channels.len()));
            }
            if part.frames() != first.frames() {
                return Err(AudioError::RaggedChannels);
            }
            for (acc, channel) in channels.iter_mut().zip(&part.channels) {
                acc.iter_mut().zip(channel).for_each(|(a, b)| *a += b);
            }
        }
        Self::new(first.sample_rate, channels)
    }

    /// Converts to `sample_rate`; the result has `round(frames * out / in)` frames exactly.
    pub fn resample(self, sample_rate: u32) -> Result<Self, AudioError> {
        check_sample_rate(sample_rate)?;
        if sample_rate == self.sample_rate {
            return Ok(self);
        }
        let channels = resample::resample(&self.channels, self.sample_rate, sample_rate)?;
        Self::new(sample_rate, channels)
    }

    /// Converts to `num_channels` channels; see [`remix`] for the mixing rules.
    pub fn remix(self, num_channels: usize) -> Result<Self, AudioError> {
        check_channel_count(num_channels)?;
        if num_channels == self.channels.len() {
            return Ok(self);
        }
        let channels = channels::remix(self.channels, num_channels);
        Self::new(self.sample_rate, channels)
    }
}

fn check_sample_rate(rate: u32) -> Result<(), AudioError> {
    if (MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&rate) {
        Ok(())
    } else {
        Err(AudioError::SampleRate(rate))
    }
}

fn check_channel_count(count: usize) -> Result<(), AudioError> {
    if (1..=MAX_CHANNELS).contains(&count) {
        Ok(())
    } else {
        Err(AudioError::ChannelCount(count))
    }
}

pub use channels::{loud_level_db, mono, remix, rms, written_zeros};
pub use resample::StreamResampler;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_audio_is_raised_and_loud_audio_left_alone() {
        let tone: Vec<f32> = (0..44_100).map(|i| 0.5 * (i as f32 * 0.05).sin()).collect();
        let loud = Audio::new(44_100, vec![tone.clone(), tone]).expect("valid");
        let level = |a: &Audio| loud_level_db(a.channels(), 4410).expect("not silent");
        let before = level(&loud);
        assert_eq!(loud.raised_to(-30.0), None);
        let quiet = Audio::new(
            44_100,
            loud.channels()
                .iter()
                .map(|c| c.iter().map(|s| s * 1e-3).collect())
                .collect(),
        )
        .expect("valid");
        let raised = quiet.raised_to(-30.0).expect("raised");
        assert!((level(&raised) + 30.0).abs() < 1e-3, "{}", level(&raised));
        assert!(before > -30.0);
        let silence = Audio::new(44_100, vec![vec![0.0; 100]]).expect("valid");
        assert_eq!(silence.raised_to(-30.0), None);
    }

    #[test]
    fn rejects_bad_shapes() {
        assert_eq!(
            Audio::new(0, vec![vec![0.0]]),
            Err(AudioError::SampleRate(0))
        );
        assert_eq!(
            Audio::new(10_000_000, vec![vec![0.0]]),
            Err(AudioError::SampleRate(10_000_000))
        );
        assert_eq!(Audio::new(44_100, vec![]), Err(AudioError::ChannelCount(0)));
        assert_eq!(
            Audio::new(44_100, vec![vec![0.0], vec![]]),
            Err(AudioError::RaggedChannels)
        );
    }

    #[test]
    fn sections_are_clamped() {
        let audio = Audio::new(8_000, vec![vec![1.0, 2.0, 3.0]; 2]).unwrap();
        assert_eq!(audio.section(1..2).channel(1), &[2.0]);
        assert_eq!(audio.section(2..10).channel(0), &[3.0]);
        assert_eq!(audio.section(5..9).frames(), 0);
    }

    #[test]
    fn interleaved_round_trip() {
        let audio = Audio::from_interleaved(8_000, 2, &[1.0, -1.0, 0.5, -0.5, 0.25]).unwrap();
        assert_eq!(audio.frames(), 2);
        assert_eq!(audio.channel(0), &[1.0, 0.5]);
        assert_eq!(audio.channel(1), &[-1.0, -0.5]);
    }

    #[test]
    fn sums_matching_buffers_only() {
        let a = Audio::new(8_000, vec![vec![1.0, 2.0]]).unwrap();
        let b = Audio::new(8_000, vec![vec![0.5, -2.0]]).unwrap();
        let total = Audio::sum(&[a.clone(), b]).unwrap();
        assert_eq!(total.channel(0), &[1.5, 0.0]);
        let short = Audio::new(8_000, vec![vec![1.0]]).unwrap();
        assert_eq!(Audio::sum(&[a, short]), Err(AudioError::RaggedChannels));
        assert!(Audio::sum(&[]).is_err());
    }

    #[test]
    fn resample_keeps_duration_and_tone() {
        let rate_in = 48_000;
        let tone: Vec<f32> = (0..rate_in)
            .map(|i| (2.0 * std::f32::consts::PI * 1_000.0 * i as f32 / rate_in as f32).sin())
            .collect();
        let audio = Audio::new(rate_in, vec![tone])
            .unwrap()
            .resample(44_100)
            .unwrap();
        assert_eq!(audio.frames(), 44_100);
        let expected =
            |i: usize| (2.0 * std::f32::consts::PI * 1_000.0 * i as f32 / 44_100.0).sin();
        let max_err = (1_000..43_000)
            .map(|i| (audio.channel(0)[i] - expected(i)).abs())
            .fold(0.0f32, f32::max);
        assert!(max_err < 1e-3, "max error {max_err}");
    }

    #[test]
    fn resample_handles_coprime_rates() {
        let audio = Audio::new(44_101, vec![vec![0.25; 44_101]]).unwrap();
        let out = audio.resample(44_100).unwrap();
        assert_eq!(out.frames(), 44_100);
        assert!((out.channel(0)[22_050] - 0.25).abs() < 1e-3);
    }
}

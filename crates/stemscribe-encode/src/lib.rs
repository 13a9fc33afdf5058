//! Encoding: converts [`Audio`] to the delivery rate and channel count, then writes it as WAV.
//!
//! Samples beyond full scale are never wrapped around. 16-bit PCM hard-clips them at
//! ±1.0 and counts how many it clipped ([`EncodeReport::clipped_samples`]); 32-bit float
//! stores them unchanged, since float WAV represents them exactly.

use std::io::{Cursor, Seek, Write};

use stemscribe_audio::{Audio, AudioError};
use thiserror::Error;

/// Why audio could not be encoded.
#[derive(Debug, Error)]
pub enum EncodeError {
    /// The requested rate or channel count is not supported.
    #[error(transparent)]
    Audio(#[from] AudioError),
    /// Writing the file failed.
    #[error("cannot write WAV: {0}")]
    Wav(#[from] hound::Error),
}

/// How WAV samples are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WavSampleFormat {
    /// 16-bit integer PCM, hard-clipped at full scale.
    #[default]
    Pcm16,
    /// 32-bit IEEE float, unclipped.
    Float32,
}

/// The delivery format of one output file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputSpec {
    /// Samples per second; the audio is resampled when it differs.
    pub sample_rate: u32,
    /// 1 (mono downmix) or 2.
    pub channels: usize,
    /// Sample storage.
    pub sample_format: WavSampleFormat,
}

/// What encoding did to the signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EncodeReport {
    /// Frames written.
    pub frames: u64,
    /// Samples that were beyond full scale and clipped (16-bit PCM only).
    pub clipped_samples: u64,
}

/// Converts `audio` to `spec` and writes it as WAV to `out`.
pub fn write_wav<W: Write + Seek>(
    audio: Audio,
    spec: &OutputSpec,
    out: W,
) -> Result<EncodeReport, EncodeError> {
    let audio = audio.remix(spec.channels)?.resample(spec.sample_rate)?;
    let (bits_per_sample, sample_format) = match spec.sample_format {
        WavSampleFormat::Pcm16 => (16, hound::SampleFormat::Int),
        WavSampleFormat::Float32 => (32, hound::SampleFormat::Float),
    };
    let wav_spec = hound::WavSpec {
        channels: audio.num_channels() as u16,
        sample_rate: audio.sample_rate(),
        bits_per_sample,
        sample_format,
    };
    let mut writer = hound::WavWriter::new(out, wav_spec)?;
    let mut report = EncodeReport {
        frames: audio.frames() as u64,
        clipped_samples: 0,
    };
    for i in 0..audio.frames() {
        for channel in audio.channels() {
            let sample = channel[i];
            match spec.sample_format {
                WavSampleFormat::Pcm16 => {
                    if sample.abs() > 1.0 {
                        report.clipped_samples += 1;
                    }
                    writer.write_sample(to_i16(sample))?;
                }
                WavSampleFormat::Float32 => writer.write_sample(sample)?,
            }
        }
    }
    writer.finalize()?;
    Ok(report)
}

/// Encodes to an in-memory WAV file.
pub fn wav_bytes(audio: Audio, spec: &OutputSpec) -> Result<(Vec<u8>, EncodeReport), EncodeError> {
    let mut cursor = Cursor::new(Vec::new());
    let report = write_wav(audio, spec, &mut cursor)?;
    Ok((cursor.into_inner(), report))
}

/// Full scale maps to ±32767; beyond it clips; NaN becomes silence.
fn to_i16(sample: f32) -> i16 {
    if sample.is_nan() {
        0
    } else {
        (sample.clamp(-1.0, 1.0) * 32_767.0).round() as i16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(sample_rate: u32, channels: usize, sample_format: WavSampleFormat) -> OutputSpec {
        OutputSpec {
            sample_rate,
            channels,
            sample_format,
        }
    }

    #[test]
    fn pcm16_clips_instead_of_wrapping() {
        let audio = Audio::new(44_100, vec![vec![1.5, -2.0, 0.5, f32::NAN]; 2]).unwrap();
        let (bytes, report) = wav_bytes(audio, &spec(44_100, 2, WavSampleFormat::Pcm16)).unwrap();
        assert_eq!(report.clipped_samples, 4);
        let samples: Vec<i16> = hound::WavReader::new(Cursor::new(bytes))
            .unwrap()
            .into_samples()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            samples,
            [32_767, 32_767, -32_767, -32_767, 16_384, 16_384, 0, 0]
        );
    }

    #[test]
    fn float_keeps_peaks_and_converts_rate_and_channels() {
        let audio = Audio::new(44_100, vec![vec![1.5; 44_100], vec![0.5; 44_100]]).unwrap();
        let (bytes, report) = wav_bytes(audio, &spec(22_050, 1, WavSampleFormat::Float32)).unwrap();
        assert_eq!((report.frames, report.clipped_samples), (22_050, 0));
        let reader = hound::WavReader::new(Cursor::new(bytes)).unwrap();
        let wav = reader.spec();
        assert_eq!(
            (wav.sample_rate, wav.channels, wav.bits_per_sample),
            (22_050, 1, 32)
        );
        let samples: Vec<f32> = reader.into_samples().map(Result::unwrap).collect();
        assert!((samples[11_000] - 1.0).abs() < 1e-3);
    }

    #[test]
    fn refuses_unsupported_delivery() {
        let audio = Audio::new(44_100, vec![vec![0.0; 10]]).unwrap();
        assert!(wav_bytes(audio.clone(), &spec(0, 1, WavSampleFormat::Pcm16)).is_err());
        assert!(wav_bytes(audio, &spec(44_100, 0, WavSampleFormat::Pcm16)).is_err());
    }
}

//! WAV through hound: 16-bit PCM or 32-bit float.

use std::io::{Seek, Write};

use stemscribe_audio::Audio;

use crate::pcm::{interleaved, ToI16};
use crate::{EncodeError, WavSampleFormat};

/// Writes `audio` as WAV; returns the number of samples clipped.
pub(crate) fn write<W: Write + Seek>(
    audio: &Audio,
    sample_format: WavSampleFormat,
    out: W,
) -> Result<u64, EncodeError> {
    let (bits_per_sample, hound_format) = match sample_format {
        WavSampleFormat::Pcm16 => (16, hound::SampleFormat::Int),
        WavSampleFormat::Float32 => (32, hound::SampleFormat::Float),
    };
    let spec = hound::WavSpec {
        channels: audio.num_channels() as u16,
        sample_rate: audio.sample_rate(),
        bits_per_sample,
        sample_format: hound_format,
    };
    let mut writer = hound::WavWriter::new(out, spec)?;
    let mut to_i16 = ToI16::default();
    for sample in interleaved(audio) {
        match sample_format {
            WavSampleFormat::Pcm16 => writer.write_sample(to_i16.convert(sample))?,
            WavSampleFormat::Float32 => writer.write_sample(sample)?,
        }
    }
    writer.finalize()?;
    Ok(to_i16.clipped)
}

//! WAV, 16-bit PCM or 32-bit float, written front to back: the length is known before the
//! first sample, so the header is exact and no seeking is needed (pipes and devices work).

use std::io::{BufWriter, Write};

use rayon::prelude::*;

use stemscribe_audio::Audio;

use crate::pcm::ToI16;
use crate::{EncodeError, WavSampleFormat};

/// Frames converted to bytes before they are written: one channel after another into an
/// interleaved block, in slices of [`SLICE_FRAMES`] on the cores at hand.
const BLOCK_FRAMES: usize = 1 << 18;
/// Frames of a block one core converts.
const SLICE_FRAMES: usize = 1 << 14;

/// `WAVE_FORMAT_PCM`.
const FORMAT_PCM: u16 = 1;
/// `WAVE_FORMAT_IEEE_FLOAT`.
const FORMAT_FLOAT: u16 = 3;

/// Writes `audio` as WAV; returns the number of samples clipped.
pub(crate) fn write<W: Write>(
    audio: &Audio,
    sample_format: WavSampleFormat,
    out: W,
) -> Result<u64, EncodeError> {
    let channels = audio.num_channels() as u16;
    let (bytes_per_sample, tag) = match sample_format {
        WavSampleFormat::Pcm16 => (2u16, FORMAT_PCM),
        WavSampleFormat::Float32 => (4u16, FORMAT_FLOAT),
    };
    let block_align = channels * bytes_per_sample;
    let data_len = audio.frames() as u64 * u64::from(block_align);
    // Float WAV carries the extension size and a `fact` chunk, as non-PCM formats must.
    let extra = match sample_format {
        WavSampleFormat::Pcm16 => 0,
        WavSampleFormat::Float32 => 2 + 12,
    };
    let riff_len = 4 + 8 + 16 + extra + 8 + data_len;
    let riff_len = u32::try_from(riff_len).map_err(|_| EncodeError::TooLong(data_len))?;

    let mut out = BufWriter::with_capacity(1 << 16, out);
    out.write_all(b"RIFF")?;
    out.write_all(&riff_len.to_le_bytes())?;
    out.write_all(b"WAVEfmt ")?;
    let fmt_len: u32 = if extra == 0 { 16 } else { 18 };
    out.write_all(&fmt_len.to_le_bytes())?;
    out.write_all(&tag.to_le_bytes())?;
    out.write_all(&channels.to_le_bytes())?;
    out.write_all(&audio.sample_rate().to_le_bytes())?;
    out.write_all(&(audio.sample_rate() * u32::from(block_align)).to_le_bytes())?;
    out.write_all(&block_align.to_le_bytes())?;
    out.write_all(&(bytes_per_sample * 8).to_le_bytes())?;
    if extra != 0 {
        out.write_all(&0u16.to_le_bytes())?;
        out.write_all(b"fact")?;
        out.write_all(&4u32.to_le_bytes())?;
        out.write_all(&(audio.frames() as u32).to_le_bytes())?;
    }
    out.write_all(b"data")?;
    out.write_all(&(data_len as u32).to_le_bytes())?;
    let bytes_per_sample = usize::from(bytes_per_sample);
    let block_align = usize::from(block_align);
    let mut clipped = 0;
    let mut block = Vec::new();
    for start in (0..audio.frames()).step_by(BLOCK_FRAMES) {
        let end = (start + BLOCK_FRAMES).min(audio.frames());
        block.resize((end - start) * block_align, 0);
        // Slices of the block converted in parallel; each sample's bytes do not depend on
        // the cut.
        clipped += block
            .par_chunks_mut(SLICE_FRAMES * block_align)
            .enumerate()
            .map(|(k, bytes)| {
                let first = start + k * SLICE_FRAMES;
                let frames = first..first + bytes.len() / block_align;
                let mut to_i16 = ToI16::default();
                for (c, channel) in audio.channels().iter().enumerate() {
                    let samples = bytes
                        .chunks_exact_mut(block_align)
                        .map(|frame| &mut frame[c * bytes_per_sample..][..bytes_per_sample])
                        .zip(&channel[frames.clone()]);
                    match sample_format {
                        WavSampleFormat::Pcm16 => {
                            for (bytes, &sample) in samples {
                                bytes.copy_from_slice(&to_i16.convert(sample).to_le_bytes());
                            }
                        }
                        WavSampleFormat::Float32 => {
                            for (bytes, &sample) in samples {
                                bytes.copy_from_slice(&sample.to_le_bytes());
                            }
                        }
                    }
                }
                to_i16.clipped
            })
            .sum::<u64>();
        out.write_all(&block)?;
    }
    out.flush()?;
    Ok(clipped)
}

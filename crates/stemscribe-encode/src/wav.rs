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
/// Frames one core converts at a time.
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
    let layout = Layout::new(audio, sample_format);
    let header = layout.header(audio)?;
    let mut out = BufWriter::with_capacity(1 << 16, out);
    out.write_all(&header)?;
    let mut clipped = 0;
    let mut block = Vec::new();
    for start in (0..audio.frames()).step_by(BLOCK_FRAMES) {
        let end = (start + BLOCK_FRAMES).min(audio.frames());
        block.resize((end - start) * layout.block_align, 0);
        clipped += layout.fill(audio, start, &mut block);
        out.write_all(&block)?;
    }
    out.flush()?;
    Ok(clipped)
}

/// `audio` as a WAV file in memory, its samples converted on the cores at hand straight into
/// place; returns the bytes and the number of samples clipped.
pub(crate) fn to_vec(
    audio: &Audio,
    sample_format: WavSampleFormat,
) -> Result<(Vec<u8>, u64), EncodeError> {
    let layout = Layout::new(audio, sample_format);
    let header = layout.header(audio)?;
    // Zeroed by the kernel: each page is mapped by the core that first writes it.
    let mut bytes = vec![0u8; header.len() + audio.frames() * layout.block_align];
    let (head, data) = bytes.split_at_mut(header.len());
    head.copy_from_slice(&header);
    let clipped = layout.fill(audio, 0, data);
    Ok((bytes, clipped))
}

/// Where a sample's bytes go.
struct Layout {
    sample_format: WavSampleFormat,
    bytes_per_sample: usize,
    block_align: usize,
}

impl Layout {
    fn new(audio: &Audio, sample_format: WavSampleFormat) -> Self {
        let bytes_per_sample = match sample_format {
            WavSampleFormat::Pcm16 => 2,
            WavSampleFormat::Float32 => 4,
        };
        Self {
            sample_format,
            bytes_per_sample,
            block_align: audio.num_channels() * bytes_per_sample,
        }
    }

    /// The RIFF header up to the first sample; fails when the data does not fit 32-bit sizes.
    fn header(&self, audio: &Audio) -> Result<Vec<u8>, EncodeError> {
        let channels = audio.num_channels() as u16;
        let block_align = self.block_align as u16;
        let tag = match self.sample_format {
            WavSampleFormat::Pcm16 => FORMAT_PCM,
            WavSampleFormat::Float32 => FORMAT_FLOAT,
        };
        let data_len = audio.frames() as u64 * u64::from(block_align);
        // Float WAV carries the extension size and a `fact` chunk, as non-PCM formats must.
        let extra = match self.sample_format {
            WavSampleFormat::Pcm16 => 0,
            WavSampleFormat::Float32 => 2 + 12,
        };
        let riff_len = 4 + 8 + 16 + extra + 8 + data_len;
        let riff_len = u32::try_from(riff_len).map_err(|_| EncodeError::TooLong(data_len))?;
        let mut out = Vec::with_capacity(58);
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&riff_len.to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        let fmt_len: u32 = if extra == 0 { 16 } else { 18 };
        out.extend_from_slice(&fmt_len.to_le_bytes());
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&channels.to_le_bytes());
        out.extend_from_slice(&audio.sample_rate().to_le_bytes());
        out.extend_from_slice(&(audio.sample_rate() * u32::from(block_align)).to_le_bytes());
        out.extend_from_slice(&block_align.to_le_bytes());
        out.extend_from_slice(&(self.bytes_per_sample as u16 * 8).to_le_bytes());
        if extra != 0 {
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(b"fact");
            out.extend_from_slice(&4u32.to_le_bytes());
            out.extend_from_slice(&(audio.frames() as u32).to_le_bytes());
        }
        out.extend_from_slice(b"data");
        out.extend_from_slice(&(data_len as u32).to_le_bytes());
        Ok(out)
    }

    /// Writes the frames of `audio` from `start` on, interleaved, into `data` (as many as it
    /// holds), slice by slice on the cores at hand; returns the samples clipped. Each sample's
    /// bytes do not depend on the cut.
    fn fill(&self, audio: &Audio, start: usize, data: &mut [u8]) -> u64 {
        data.par_chunks_mut(SLICE_FRAMES * self.block_align)
            .enumerate()
            .map(|(k, bytes)| {
                let first = start + k * SLICE_FRAMES;
                let frames = first..first + bytes.len() / self.block_align;
                let mut to_i16 = ToI16::default();
                for (c, channel) in audio.channels().iter().enumerate() {
                    let samples = bytes
                        .chunks_exact_mut(self.block_align)
                        .map(|frame| {
                            &mut frame[c * self.bytes_per_sample..][..self.bytes_per_sample]
                        })
                        .zip(&channel[frames.clone()]);
                    match self.sample_format {
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
            .sum()
    }
}

//! Sample-rate conversion with rubato, whole buffers or streamed chunk by chunk.
//!
//! Rate pairs whose reduced ratio is small use rubato's synchronous FFT resampler; other
//! pairs (e.g. 44 101 → 44 100 Hz) use its asynchronous sinc resampler at a fixed ratio.
//! Either way the output has exactly `round(frames * rate_out / rate_in)` frames, aligned
//! with the input (rubato's delay is trimmed), and streaming the input in pieces of any size
//! gives the same samples as converting it in one call.

use rubato::audioadapter_buffers::direct::SequentialSliceOfVecs;
use rubato::{
    Async, Fft, FixedAsync, FixedSync, Indexing, Resampler, SincInterpolationParameters,
    SincInterpolationType, WindowFunction,
};

use crate::timings::{measure, Stage};
use crate::AudioError;

/// The largest reduced input or output factor for which the FFT resampler is used.
const MAX_FFT_FACTOR: u32 = 4_096;
/// Frames handed to the resampler per call.
const CHUNK: usize = 1_024;

/// Converts planar audio from one rate to another as it arrives, keeping only the converted
/// output and less than one chunk of pending input.
pub struct StreamResampler {
    /// `None` when the rates are equal: input is copied through.
    inner: Option<Box<dyn Resampler<f32>>>,
    rate_in: u32,
    rate_out: u32,
    /// Input not yet handed to the resampler (less than one chunk between calls).
    pending: Vec<Vec<f32>>,
    /// Output frames of rubato's delay still to drop.
    to_trim: usize,
    /// Input frames pushed so far.
    frames_in: u64,
    /// Converted frames, delay removed.
    output: Vec<Vec<f32>>,
    /// One call's output.
    scratch: Vec<Vec<f32>>,
}

impl std::fmt::Debug for StreamResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamResampler")
            .field("rate_in", &self.rate_in)
            .field("rate_out", &self.rate_out)
            .field("frames_in", &self.frames_in)
            .finish_non_exhaustive()
    }
}

impl StreamResampler {
    /// A converter for `channels` planar channels from `rate_in` to `rate_out`.
    pub fn new(rate_in: u32, rate_out: u32, channels: usize) -> Result<Self, AudioError> {
        crate::check_sample_rate(rate_in)?;
        crate::check_sample_rate(rate_out)?;
        crate::check_channel_count(channels)?;
        let inner = (rate_in != rate_out)
            .then(|| build(rate_in, rate_out, channels))
            .transpose()?;
        let to_trim = inner.as_ref().map_or(0, |r| r.output_delay());
        let scratch_len = inner.as_ref().map_or(0, |r| r.output_frames_max());
        Ok(Self {
            inner,
            rate_in,
            rate_out,
            pending: vec![Vec::new(); channels],
            to_trim,
            frames_in: 0,
            output: vec![Vec::new(); channels],
            scratch: vec![vec![0.0; scratch_len]; channels],
        })
    }

    /// Converts `chunk` (one slice per channel, all the same length) and appends the result.
    pub fn push(&mut self, chunk: &[Vec<f32>]) -> Result<(), AudioError> {
        measure(Stage::Resample, || self.convert(chunk))
    }

    /// [`StreamResampler::push`], taking `chunk`'s buffers as the output when the rates are
    /// equal and nothing came before (a decoder's whole song then is not copied); `chunk` is
    /// left empty or as it was.
    pub fn push_taking(&mut self, chunk: &mut Vec<Vec<f32>>) -> Result<(), AudioError> {
        let untouched = self.inner.is_none() && self.frames_in == 0;
        if !untouched || chunk.len() != self.output.len() {
            return self.push(chunk);
        }
        let frames = chunk.first().map_or(0, Vec::len);
        if chunk.iter().any(|c| c.len() != frames) {
            return Err(AudioError::RaggedChannels);
        }
        self.frames_in = frames as u64;
        self.output = std::mem::take(chunk);
        Ok(())
    }

    fn convert(&mut self, chunk: &[Vec<f32>]) -> Result<(), AudioError> {
        if chunk.len() != self.output.len() {
            return Err(AudioError::ChannelCount(chunk.len()));
        }
        let frames = chunk[0].len();
        if chunk.iter().any(|c| c.len() != frames) {
            return Err(AudioError::RaggedChannels);
        }
        self.frames_in += frames as u64;
        if self.inner.is_none() {
            for (out, input) in self.output.iter_mut().zip(chunk) {
                out.extend_from_slice(input);
            }
            return Ok(());
        }
        for (pending, input) in self.pending.iter_mut().zip(chunk) {
            pending.extend_from_slice(input);
        }
        let mut offset = 0;
        while let Some(needed) = self.inner.as_ref().map(|r| r.input_frames_next()) {
            if self.pending[0].len() - offset < needed {
                break;
            }
            offset += self.run(offset, None)?;
        }
        for pending in &mut self.pending {
            pending.drain(..offset);
        }
        Ok(())
    }

    /// Converts what is left and returns every channel, exactly
    /// `round(frames_in * rate_out / rate_in)` frames long.
    pub fn finish(self) -> Result<Vec<Vec<f32>>, AudioError> {
        measure(Stage::Resample, || self.drain())
    }

    fn drain(mut self) -> Result<Vec<Vec<f32>>, AudioError> {
        let expected = ((u128::from(self.frames_in) * u128::from(self.rate_out)
            + u128::from(self.rate_in) / 2)
            / u128::from(self.rate_in)) as usize;
        if self.inner.is_some() && self.frames_in > 0 {
            let left = self.pending[0].len();
            if left > 0 {
                self.run(0, Some(left))?;
            }
            while self.output[0].len() < expected {
                self.run(0, Some(0))?;
            }
        }
        for channel in &mut self.output {
            channel.resize(expected, 0.0);
        }
        Ok(self.output)
    }

    /// One resampler call on `pending` from `offset` (`partial`: frames left at the end);
    /// appends its output past the delay and returns the input frames consumed.
    fn run(&mut self, offset: usize, partial: Option<usize>) -> Result<usize, AudioError> {
        let Some(resampler) = self.inner.as_mut() else {
            return Ok(0);
        };
        let channels = self.pending.len();
        let input = SequentialSliceOfVecs::new(&self.pending, channels, self.pending[0].len())
            .map_err(|e| AudioError::Resample(e.to_string()))?;
        let capacity = self.scratch[0].len();
        let mut out = SequentialSliceOfVecs::new_mut(&mut self.scratch, channels, capacity)
            .map_err(|e| AudioError::Resample(e.to_string()))?;
        let mut indexing = Indexing::new().input_offset(offset);
        if let Some(partial) = partial {
            indexing = indexing.partial_len(partial);
        }
        let (consumed, produced) = resampler
            .process_into_buffer(&input, &mut out, Some(&indexing))
            .map_err(|e| AudioError::Resample(e.to_string()))?;
        let skip = self.to_trim.min(produced);
        self.to_trim -= skip;
        for (channel, scratch) in self.output.iter_mut().zip(&self.scratch) {
            channel.extend_from_slice(&scratch[skip..produced]);
        }
        Ok(consumed)
    }
}

/// Resamples every channel from `rate_in` to `rate_out`.
pub(crate) fn resample(
    channels: &[Vec<f32>],
    rate_in: u32,
    rate_out: u32,
) -> Result<Vec<Vec<f32>>, AudioError> {
    let mut stream = StreamResampler::new(rate_in, rate_out, channels.len())?;
    stream.push(channels)?;
    stream.finish()
}

/// The rubato resampler for a rate pair: FFT when the reduced ratio is small, else sinc.
fn build(
    rate_in: u32,
    rate_out: u32,
    channels: usize,
) -> Result<Box<dyn Resampler<f32>>, AudioError> {
    let divisor = gcd(rate_in, rate_out);
    let resampler: Box<dyn Resampler<f32>> =
        if rate_in / divisor <= MAX_FFT_FACTOR && rate_out / divisor <= MAX_FFT_FACTOR {
            Box::new(
                Fft::<f32>::new(
                    rate_in as usize,
                    rate_out as usize,
                    CHUNK,
                    channels,
                    FixedSync::Input,
                )
                .map_err(|e| AudioError::Resample(e.to_string()))?,
            )
        } else {
            let parameters = SincInterpolationParameters {
                sinc_len: 256,
                f_cutoff: None,
                oversampling_factor: 256,
                interpolation: SincInterpolationType::Cubic,
                window: WindowFunction::BlackmanHarris2,
            };
            Box::new(
                Async::<f32>::new_sinc(
                    f64::from(rate_out) / f64::from(rate_in),
                    1.0,
                    &parameters,
                    CHUNK,
                    channels,
                    FixedAsync::Input,
                )
                .map_err(|e| AudioError::Resample(e.to_string()))?,
            )
        };
    Ok(resampler)
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, frames: usize) -> Vec<f32> {
        (0..frames)
            .map(|i| (i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin())
            .collect()
    }

    #[test]
    fn streamed_equals_whole() {
        for (rate_in, frames) in [(48_000, 50_000), (44_101, 30_001), (8_000, 700)] {
            let input = vec![tone(rate_in, frames), tone(rate_in, frames)];
            let whole = resample(&input, rate_in, 44_100).unwrap();
            let mut stream = StreamResampler::new(rate_in, 44_100, 2).unwrap();
            let mut start = 0;
            for size in [1, 333, 4_096, 17].iter().cycle() {
                if start >= frames {
                    break;
                }
                let end = (start + size).min(frames);
                let piece: Vec<Vec<f32>> = input.iter().map(|c| c[start..end].to_vec()).collect();
                stream.push(&piece).unwrap();
                start = end;
            }
            assert_eq!(stream.finish().unwrap(), whole, "{rate_in} Hz");
        }
    }

    #[test]
    fn equal_rates_pass_through_and_shapes_are_checked() {
        let mut stream = StreamResampler::new(44_100, 44_100, 1).unwrap();
        stream.push(&[vec![0.5, -0.5]]).unwrap();
        assert!(stream.push(&[vec![0.0], vec![0.0]]).is_err());
        assert_eq!(stream.finish().unwrap(), vec![vec![0.5, -0.5]]);
        assert!(StreamResampler::new(0, 44_100, 1).is_err());
        let mut stream = StreamResampler::new(48_000, 44_100, 2).unwrap();
        assert!(stream.push(&[vec![0.0; 3], vec![0.0; 2]]).is_err());
    }
}

//! Encoding: converts [`Audio`] to the delivery rate and channel count, then writes it as
//! WAV, MP3 (LAME) or AAC-LC in ADTS (Fraunhofer FDK AAC).
//!
//! Guarantees, for an input of `n` frames at the delivery rate:
//! - **WAV** holds exactly `n` frames.
//! - **MP3** carries a LAME/Xing tag with the encoder delay and padding, so decoders that read it
//!   (ffmpeg, most players) give back exactly `n` frames.
//! - **AAC** (ADTS, which cannot signal a delay) decodes to `n + 1` to `n + 1024` frames: every
//!   AAC decoder starts with one 1024-frame priming frame of silence, and the stream ends on the
//!   first frame that reaches `n`, so at most the last 1023 frames of the input are cut. Streams
//!   are at least 3 AAC frames long, so that demuxers recognise them.
//!
//! Samples beyond full scale are never wrapped around. 16-bit PCM, MP3 and AAC hard-clip them
//! at ±1.0 and count how many were clipped ([`EncodeReport::clipped_samples`]); 32-bit float
//! WAV stores them unchanged, since float WAV represents them exactly.

#[cfg(feature = "aac")]
mod aac;
#[cfg(feature = "mp3")]
mod mp3;
mod pcm;
mod wav;

use std::fmt;
use std::io::Write;
use std::str::FromStr;

use stemscribe_audio::timings::{measure, Stage};
use stemscribe_audio::{Audio, AudioError, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE};
use thiserror::Error;

/// Why audio could not be encoded.
#[derive(Debug, Error)]
pub enum EncodeError {
    /// The requested rate or channel count cannot be converted to.
    #[error(transparent)]
    Audio(#[from] AudioError),
    /// The format cannot carry the requested sample rate.
    #[error("{format} cannot be written at {rate} Hz (supported: {})", list_rates(.supported))]
    UnsupportedRate {
        /// The requested format.
        format: OutputFormat,
        /// The requested rate.
        rate: u32,
        /// The rates the format can carry.
        supported: &'static [u32],
    },
    /// Only mono and stereo are delivered.
    #[error("{0} channels requested; output is 1 (mono) or 2 (stereo)")]
    UnsupportedChannels(usize),
    /// This build was compiled without the format's encoder (cargo feature `mp3` or `aac`).
    #[error("this build has no {0} encoder (it was compiled without the `{0}` feature)")]
    Disabled(OutputFormat),
    /// The audio is too long for a WAV file (its data is limited to 4 GiB).
    #[error("{0} bytes of audio do not fit in a WAV file (at most 4 GiB)")]
    TooLong(u64),
    /// The MP3 or AAC encoder refused its settings or failed.
    #[error("{format} encoder failed: {message}")]
    Codec {
        /// The format being written.
        format: OutputFormat,
        /// The encoder's own message.
        message: String,
    },
    /// Writing the encoded bytes failed.
    #[error("cannot write the encoded audio: {0}")]
    Io(#[from] std::io::Error),
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

/// The container and codec of an output file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// RIFF WAVE, uncompressed.
    Wav(WavSampleFormat),
    /// MPEG-1/2 Layer III, VBR (LAME `-V 2`), with a LAME tag for gapless length.
    Mp3,
    /// AAC-LC in an ADTS stream, constant bit rate (96 kbit/s per channel).
    Aac,
}

impl Default for OutputFormat {
    fn default() -> Self {
        Self::Wav(WavSampleFormat::Pcm16)
    }
}

impl OutputFormat {
    /// The usual file name extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Wav(_) => "wav",
            Self::Mp3 => "mp3",
            Self::Aac => "aac",
        }
    }

    /// The sample rates this format can carry; `None` when any rate can be written.
    pub fn sample_rates(self) -> Option<&'static [u32]> {
        match self {
            Self::Wav(_) => None,
            Self::Mp3 => Some(&[
                8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000,
            ]),
            Self::Aac => Some(&[
                8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000, 64_000,
                88_200, 96_000,
            ]),
        }
    }

    /// Whether this build can write the format.
    pub fn is_available(self) -> bool {
        match self {
            Self::Wav(_) => true,
            Self::Mp3 => cfg!(feature = "mp3"),
            Self::Aac => cfg!(feature = "aac"),
        }
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.extension())
    }
}

/// The name given was not `wav`, `mp3` or `aac`.
#[derive(Debug, Clone, Error)]
#[error("unknown output format `{0}` (wav, mp3, aac)")]
pub struct UnknownFormat(String);

impl FromStr for OutputFormat {
    type Err = UnknownFormat;

    /// Parses `wav` (16-bit PCM), `mp3` or `aac`, ignoring ASCII case.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.to_ascii_lowercase().as_str() {
            "wav" => Ok(Self::Wav(WavSampleFormat::Pcm16)),
            "mp3" => Ok(Self::Mp3),
            "aac" => Ok(Self::Aac),
            _ => Err(UnknownFormat(name.to_owned())),
        }
    }
}

/// The delivery format of one output file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputSpec {
    /// Samples per second; the audio is resampled when it differs.
    pub sample_rate: u32,
    /// 1 (mono downmix) or 2.
    pub channels: usize,
    /// Container and codec.
    pub format: OutputFormat,
}

impl OutputSpec {
    /// Checks, before any heavy work, that this spec can be encoded by this build.
    pub fn check(&self) -> Result<(), EncodeError> {
        if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&self.sample_rate) {
            return Err(AudioError::SampleRate(self.sample_rate).into());
        }
        if !self.format.is_available() {
            return Err(EncodeError::Disabled(self.format));
        }
        if !(1..=2).contains(&self.channels) {
            return Err(EncodeError::UnsupportedChannels(self.channels));
        }
        match self.format.sample_rates() {
            Some(supported) if !supported.contains(&self.sample_rate) => {
                Err(EncodeError::UnsupportedRate {
                    format: self.format,
                    rate: self.sample_rate,
                    supported,
                })
            }
            _ => Ok(()),
        }
    }
}

/// What encoding did to the signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EncodeReport {
    /// Frames of audio handed to the encoder, at the delivery rate.
    pub frames: u64,
    /// Samples that were beyond full scale and clipped (all formats but float WAV).
    pub clipped_samples: u64,
}

/// Converts `audio` to `spec` and writes it to `out`, front to back (no seeking, so `out`
/// may be a pipe or a device).
pub fn encode<W: Write>(
    audio: Audio,
    spec: &OutputSpec,
    out: W,
) -> Result<EncodeReport, EncodeError> {
    measure(Stage::Encode, || encode_unmeasured(audio, spec, out))
}

/// `audio` checked against `spec` and converted to its channels and rate.
fn delivered(audio: Audio, spec: &OutputSpec) -> Result<Audio, EncodeError> {
    spec.check()?;
    Ok(audio.remix(spec.channels)?.resample(spec.sample_rate)?)
}

fn encode_unmeasured<W: Write>(
    audio: Audio,
    spec: &OutputSpec,
    out: W,
) -> Result<EncodeReport, EncodeError> {
    let audio = delivered(audio, spec)?;
    let frames = audio.frames() as u64;
    let clipped_samples = match spec.format {
        OutputFormat::Wav(sample_format) => wav::write(&audio, sample_format, out)?,
        #[cfg(feature = "mp3")]
        OutputFormat::Mp3 => write_lossy(&audio, OutputFormat::Mp3, mp3::encode, out)?,
        #[cfg(feature = "aac")]
        OutputFormat::Aac => write_lossy(&audio, OutputFormat::Aac, aac::encode, out)?,
        #[cfg(not(all(feature = "mp3", feature = "aac")))]
        disabled => return Err(EncodeError::Disabled(disabled)),
    };
    Ok(EncodeReport {
        frames,
        clipped_samples,
    })
}

/// Encodes to an in-memory file.
pub fn encode_to_vec(
    audio: Audio,
    spec: &OutputSpec,
) -> Result<(Vec<u8>, EncodeReport), EncodeError> {
    let OutputFormat::Wav(sample_format) = spec.format else {
        let mut bytes = Vec::new();
        let report = encode(audio, spec, &mut bytes)?;
        return Ok((bytes, report));
    };
    measure(Stage::Encode, || {
        let audio = delivered(audio, spec)?;
        let (bytes, clipped_samples) = wav::to_vec(&audio, sample_format)?;
        let report = EncodeReport {
            frames: audio.frames() as u64,
            clipped_samples,
        };
        Ok((bytes, report))
    })
}

/// Signature of the MP3 and AAC encoders: interleaved samples, channels, rate to a stream.
#[cfg(any(feature = "mp3", feature = "aac"))]
type LossyEncoder = fn(&[i16], usize, u32) -> Result<Vec<u8>, String>;

/// Runs a lossy encoder over `audio` as 16-bit samples; returns the number clipped.
#[cfg(any(feature = "mp3", feature = "aac"))]
fn write_lossy<W: Write>(
    audio: &Audio,
    format: OutputFormat,
    encoder: LossyEncoder,
    mut out: W,
) -> Result<u64, EncodeError> {
    let mut to_i16 = pcm::ToI16::default();
    let samples: Vec<i16> = pcm::interleaved(audio).map(|s| to_i16.convert(s)).collect();
    let bytes = encoder(&samples, audio.num_channels(), audio.sample_rate())
        .map_err(|message| EncodeError::Codec { format, message })?;
    out.write_all(&bytes)?;
    Ok(to_i16.clipped)
}

fn list_rates(rates: &[u32]) -> String {
    rates
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn wav(sample_rate: u32, channels: usize, sample_format: WavSampleFormat) -> OutputSpec {
        OutputSpec {
            sample_rate,
            channels,
            format: OutputFormat::Wav(sample_format),
        }
    }

    #[test]
    fn wav_in_memory_is_the_streamed_file_byte_for_byte() {
        // Past one block of 2^18 frames and into a second slice of 2^14; beyond full scale.
        let frames = (1 << 18) + (1 << 14) + 3;
        for channels in [1, 2] {
            for sample_format in [WavSampleFormat::Pcm16, WavSampleFormat::Float32] {
                let audio = Audio::new(
                    44_100,
                    (0..channels)
                        .map(|c| {
                            (0..frames)
                                .map(|i| ((i * (c + 3)) as f32 * 0.001).sin() * 1.2)
                                .collect()
                        })
                        .collect(),
                )
                .unwrap();
                let spec = wav(44_100, channels, sample_format);
                let (bytes, report) = encode_to_vec(audio.clone(), &spec).unwrap();
                let mut streamed = Vec::new();
                let streamed_report = encode(audio, &spec, &mut streamed).unwrap();
                assert_eq!(bytes, streamed, "{channels} channels, {sample_format:?}");
                assert_eq!(report, streamed_report);
                assert_eq!(report.frames, frames as u64);
                let clips = sample_format == WavSampleFormat::Pcm16;
                assert_eq!(report.clipped_samples > 0, clips);
            }
        }
    }

    #[test]
    fn pcm16_clips_instead_of_wrapping() {
        let audio = Audio::new(44_100, vec![vec![1.5, -2.0, 0.5, f32::NAN]; 2]).unwrap();
        let (bytes, report) =
            encode_to_vec(audio, &wav(44_100, 2, WavSampleFormat::Pcm16)).unwrap();
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
        let spec = wav(22_050, 1, WavSampleFormat::Float32);
        let (bytes, report) = encode_to_vec(audio, &spec).unwrap();
        assert_eq!((report.frames, report.clipped_samples), (22_050, 0));
        let reader = hound::WavReader::new(Cursor::new(bytes)).unwrap();
        let header = reader.spec();
        assert_eq!(
            (header.sample_rate, header.channels, header.bits_per_sample),
            (22_050, 1, 32)
        );
        let samples: Vec<f32> = reader.into_samples().map(Result::unwrap).collect();
        assert!((samples[11_000] - 1.0).abs() < 1e-3);
    }

    #[test]
    fn refuses_unsupported_delivery() {
        let audio = Audio::new(44_100, vec![vec![0.0; 10]]).unwrap();
        let pcm16 = WavSampleFormat::Pcm16;
        assert!(encode_to_vec(audio.clone(), &wav(0, 1, pcm16)).is_err());
        assert!(encode_to_vec(audio, &wav(44_100, 0, pcm16)).is_err());
    }

    #[test]
    fn format_names_round_trip() {
        for format in [
            OutputFormat::default(),
            OutputFormat::Mp3,
            OutputFormat::Aac,
        ] {
            assert_eq!(format.to_string().parse::<OutputFormat>().unwrap(), format);
        }
        assert_eq!("MP3".parse::<OutputFormat>().unwrap(), OutputFormat::Mp3);
        assert!("ogg".parse::<OutputFormat>().is_err());
    }
}

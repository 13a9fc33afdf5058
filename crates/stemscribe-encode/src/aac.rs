//! AAC-LC in ADTS through the Fraunhofer FDK AAC encoder, constant bit rate (so that players
//! that estimate an ADTS stream's duration from its size get it right).
//!
//! FDK delays its output by `nDelay` samples (2048 for AAC-LC); the decoder needs one
//! frame of that as priming, so the frames before it, which hold only silence, are dropped.

use fdk_aac::enc::{AudioObjectType, BitRate, ChannelMode, Encoder, EncoderParams, Transport};

/// Bit rate per channel, before FDK's own cap for low sample rates.
const BITS_PER_SECOND_PER_CHANNEL: u32 = 96_000;

/// ADTS streams shorter than this are not recognised by some demuxers (ffmpeg's probe).
const MIN_FRAMES: usize = 3;

/// Encodes interleaved 16-bit samples into ADTS frames.
pub(crate) fn encode(samples: &[i16], channels: usize, rate: u32) -> Result<Vec<u8>, String> {
    let err = |e: fdk_aac::enc::EncoderError| e.to_string();
    let encoder = Encoder::new(EncoderParams {
        bit_rate: BitRate::Cbr(BITS_PER_SECOND_PER_CHANNEL * channels as u32),
        sample_rate: rate,
        transport: Transport::Adts,
        channels: if channels == 1 {
            ChannelMode::Mono
        } else {
            ChannelMode::Stereo
        },
        audio_object_type: AudioObjectType::Mpeg4LowComplexity,
    })
    .map_err(err)?;
    let info = encoder.info().map_err(err)?;
    let frame_len = info.frameLength as usize;
    if frame_len == 0 {
        return Err("encoder reports an empty frame length".to_owned());
    }
    let skip = (info.nDelay as usize).saturating_sub(frame_len) / frame_len;
    let input_frames = samples.len() / channels;
    // The decoder's priming frame plus the frames up to the first that reaches the input's end;
    // never fewer than ffmpeg needs to recognise an ADTS stream.
    let keep = (input_frames / frame_len + 1).max(MIN_FRAMES);

    let silence = vec![0_i16; frame_len * channels];
    let mut buffer = vec![0_u8; (info.maxOutBufBytes as usize).max(8_192)];
    let mut out = Vec::new();
    let (mut position, mut produced, mut kept) = (0, 0, 0);
    while kept < keep {
        let input = if position < samples.len() {
            &samples[position..]
        } else {
            &silence[..]
        };
        let step = encoder.encode(input, &mut buffer).map_err(err)?;
        if step.input_consumed == 0 && step.output_size == 0 {
            return Err("encoder stopped making progress".to_owned());
        }
        position += step.input_consumed;
        if step.output_size > 0 {
            produced += 1;
            if produced > skip {
                out.extend_from_slice(&buffer[..step.output_size]);
                kept += 1;
            }
        }
    }
    Ok(out)
}

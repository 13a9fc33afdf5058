//! MP3 through LAME: VBR `-V 2`, joint stereo, with a LAME tag that records the encoder
//! delay and padding so that decoders return exactly the input's length.

use std::num::NonZeroU32;

use mp3lame_encoder::{
    max_required_buffer_size, Builder, FlushGap, InterleavedPcm, Mode, MonoPcm, Quality, VbrMode,
};

/// Frames handed to LAME per call, to bound the output buffer.
const CHUNK_FRAMES: usize = 1 << 16;

/// Encodes interleaved 16-bit samples at a rate LAME supports without resampling.
pub(crate) fn encode(samples: &[i16], channels: usize, rate: u32) -> Result<Vec<u8>, String> {
    let mut builder = Builder::new().ok_or("LAME could not allocate an encoder")?;
    let err = |e: mp3lame_encoder::BuildError| e.to_string();
    builder.set_num_channels(channels as u8).map_err(err)?;
    builder.set_sample_rate(rate).map_err(err)?;
    builder
        .set_output_sample_rate(NonZeroU32::new(rate))
        .map_err(err)?;
    builder
        .set_mode(if channels == 1 {
            Mode::Mono
        } else {
            Mode::JointStereo
        })
        .map_err(err)?;
    builder.set_vbr_mode(VbrMode::Mtrh).map_err(err)?;
    builder.set_vbr_quality(Quality::NearBest).map_err(err)?;
    builder.set_quality(Quality::NearBest).map_err(err)?;
    builder.set_to_write_vbr_tag(true).map_err(err)?;
    let mut encoder = builder.build().map_err(err)?;

    let encode_err = |e: mp3lame_encoder::EncodeError| e.to_string();
    let mut out = Vec::new();
    for chunk in samples.chunks(CHUNK_FRAMES * channels) {
        out.reserve(max_required_buffer_size(chunk.len() / channels));
        if channels == 1 {
            encoder.encode_to_vec(MonoPcm(chunk), &mut out)
        } else {
            encoder.encode_to_vec(InterleavedPcm(chunk), &mut out)
        }
        .map_err(encode_err)?;
    }
    out.reserve(7_200);
    encoder
        .flush_to_vec::<FlushGap>(&mut out)
        .map_err(encode_err)?;

    // LAME left room for its tag in the first frame; it can be filled in only now.
    let mut tag = Vec::with_capacity(encoder.lame_tag_size());
    if let Some(written) = encoder.lame_tag_encode_to_vec(&mut tag) {
        let written = written.get();
        if written > out.len() {
            return Err("LAME tag is longer than the stream".to_owned());
        }
        out[..written].copy_from_slice(&tag[..written]);
    }
    Ok(out)
}

//! Any bytes through the decoders: containers and codecs by probing, and headerless PCM with
//! a rate and channel count taken from the first bytes. Errors are fine; panics are not.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stemscribe_decode::{decode, decode_raw_pcm, DecodeOptions, RawPcm};

fuzz_target!(|input: &[u8]| {
    let options = DecodeOptions {
        max_duration_secs: Some(600.0),
        ..DecodeOptions::default()
    };
    let _ = decode(input.to_vec(), &options);
    if let [a, b, c, rest @ ..] = input {
        let format = RawPcm {
            sample_rate: u32::from(u16::from_le_bytes([*a, *b])),
            channels: u16::from(*c % 9),
        };
        let _ = decode_raw_pcm(rest, format, Some(600.0));
    }
});

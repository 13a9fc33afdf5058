//! A tiny file that declares a huge stream: 599 s of 384 kHz, 8-channel silence in about
//! 240 KB of FLAC with no length in its header. Decoding it must hold no more than the
//! 44.1 kHz stereo result (about 211 MB), not the 7.4 GB the stream is at its own rate and
//! width. This file holds one test so that the process's peak memory is its alone.

use stemscribe_decode::{decode, DecodeOptions};

const RATE: u32 = 384_000;
const CHANNELS: u8 = 8;
const SECONDS: u64 = 599;
const BLOCK: u64 = 32_768;

/// CRC-8 (polynomial 0x07) as FLAC frame headers use it.
fn crc8(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |mut crc, &byte| {
        crc ^= byte;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
        }
        crc
    })
}

/// CRC-16 (polynomial 0x8005) as FLAC frame footers use it.
fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |mut crc, &byte| {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x8005
            } else {
                crc << 1
            };
        }
        crc
    })
}

/// FLAC's UTF-8-like coding of a frame number (up to 16 bits here).
fn coded_number(n: u64) -> Vec<u8> {
    match n {
        0..=0x7f => vec![n as u8],
        0x80..=0x7ff => vec![0xc0 | (n >> 6) as u8, 0x80 | (n & 0x3f) as u8],
        _ => vec![
            0xe0 | (n >> 12) as u8,
            0x80 | ((n >> 6) & 0x3f) as u8,
            0x80 | (n & 0x3f) as u8,
        ],
    }
}

/// A FLAC stream of silence: every subframe CONSTANT 0, total samples "unknown".
fn silent_flac() -> Vec<u8> {
    let mut out = b"fLaC".to_vec();
    out.extend_from_slice(&[0x80, 0, 0, 34]);
    out.extend_from_slice(&(BLOCK as u16).to_be_bytes());
    out.extend_from_slice(&(BLOCK as u16).to_be_bytes());
    out.extend_from_slice(&[0; 6]);
    // 20 bits rate, 3 bits channels - 1, 5 bits bits-per-sample - 1, 36 bits total (0).
    let packed: u64 = (u64::from(RATE) << 44) | (u64::from(CHANNELS - 1) << 41) | (15 << 36);
    out.extend_from_slice(&packed.to_be_bytes());
    out.extend_from_slice(&[0; 16]);
    let total = SECONDS * u64::from(RATE);
    let (mut frame_number, mut done) = (0u64, 0u64);
    while done < total {
        let size = BLOCK.min(total - done);
        let full = size == BLOCK;
        let mut frame = vec![0xff, 0xf8];
        // Block size: 32768 by code, else 16-bit (size - 1) after the number; rate from
        // STREAMINFO; 8 independent channels, 16 bits.
        frame.push(if full { 0xf0 } else { 0x70 });
        frame.push(((CHANNELS - 1) << 4) | 0b1000);
        frame.extend(coded_number(frame_number));
        if !full {
            frame.extend_from_slice(&((size - 1) as u16).to_be_bytes());
        }
        frame.push(crc8(&frame));
        for _ in 0..CHANNELS {
            frame.extend_from_slice(&[0, 0, 0]);
        }
        let footer = crc16(&frame);
        frame.extend_from_slice(&footer.to_be_bytes());
        out.extend(frame);
        done += size;
        frame_number += 1;
    }
    out
}

/// The process's peak resident memory in bytes, from /proc (Linux).
/// This process's peak resident memory in bytes (Linux: `VmHWM` of `/proc/self/status`).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|kb| kb.parse().ok())
        .expect("VmHWM in kB");
    kb * 1024
}

#[test]
fn a_small_file_cannot_take_all_memory() {
    let flac = silent_flac();
    assert!(flac.len() < 300_000, "{} bytes", flac.len());
    let audio = decode(
        flac,
        &DecodeOptions {
            max_duration_secs: Some(600.0),
            ..DecodeOptions::default()
        },
    )
    .unwrap();
    assert_eq!(audio.num_channels(), 2);
    assert_eq!(audio.sample_rate(), 44_100);
    assert_eq!(audio.frames() as u64, SECONDS * 44_100);
    let peak = peak_rss();
    eprintln!("peak RSS {} MB", peak >> 20);
    // Measured 210 MiB at 9862d97: the 599 s result itself is 202 MiB, so any second copy of
    // the song (or a buffer sized from the header's 384 kHz x 8 channels) passes the bound.
    assert!(peak < 300 << 20, "peak RSS {} MB", peak >> 20);
}

#[test]
fn decoding_stops_as_soon_as_the_limit_is_passed() {
    let started = std::time::Instant::now();
    let error = decode(
        silent_flac(),
        &DecodeOptions {
            max_duration_secs: Some(30.0),
            ..DecodeOptions::default()
        },
    )
    .unwrap_err();
    match error {
        stemscribe_decode::DecodeError::TooLong { seconds, limit } => {
            assert_eq!(limit, 30.0);
            assert!(seconds > 30.0 && seconds < 31.0, "{seconds}");
        }
        other => panic!("{other:?}"),
    }
    eprintln!("refused in {:.2} s", started.elapsed().as_secs_f64());
}

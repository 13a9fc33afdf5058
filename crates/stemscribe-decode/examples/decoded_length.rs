//! Prints `FRAMES RATE CHANNELS` of a file decoded at its own rate and width, for comparing
//! decoded lengths with other decoders (`scripts/test/check_decoded_lengths.sh`); with a second
//! argument, decodes under that duration limit in seconds, as the server does.

use std::process::ExitCode;

use stemscribe_decode::{decode_native, DecodeOptions};

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: decoded_length FILE [LIMIT_SECONDS]");
        return ExitCode::from(2);
    };
    let path = std::path::PathBuf::from(path);
    let limit = match std::env::args().nth(2).map(|a| a.parse::<f64>()) {
        None => None,
        Some(Ok(seconds)) => Some(seconds),
        Some(Err(_)) => {
            eprintln!("LIMIT_SECONDS must be a number");
            return ExitCode::from(2);
        }
    };
    let options = DecodeOptions {
        format_hint: path.extension().and_then(|e| e.to_str()).map(str::to_owned),
        max_duration_secs: limit,
        ..DecodeOptions::default()
    };
    let decoded = std::fs::read(&path)
        .map_err(|e| e.to_string())
        .and_then(|bytes| decode_native(bytes, &options).map_err(|e| e.to_string()));
    match decoded {
        Ok(audio) => {
            println!(
                "{} {} {}",
                audio.frames(),
                audio.sample_rate(),
                audio.num_channels()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {}: {error}", path.display());
            ExitCode::FAILURE
        }
    }
}

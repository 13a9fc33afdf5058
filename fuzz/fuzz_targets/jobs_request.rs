//! A jobs API submission as the server checks it before reading the body: the first line is
//! the query string (`key=value&...`, percent-decoded as the server's query extractor does),
//! the second the declared `Content-Length`. Credentials are required and one model is
//! installed, so every path is reached.

#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use stemscribe_server::{check_job_request, ServerConfig};

fuzz_target!(|input: &[u8]| {
    let text = String::from_utf8_lossy(input);
    let mut lines = text.splitn(3, '\n');
    let query: HashMap<String, String> = lines
        .next()
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect();
    let length = lines.next().and_then(|line| line.trim().parse::<u64>().ok());
    let config = ServerConfig {
        keys: Some(HashMap::from([("k".to_owned(), "t".to_owned())])),
        ..ServerConfig::default()
    };
    let installed = ["kim-vocals".to_owned()];
    let _ = check_job_request(&config, &query, &installed, length);
});

/// `%XX` and `+` decoded; anything malformed kept as it is.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(high), Some(low)) => {
                        out.push((high * 16 + low) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

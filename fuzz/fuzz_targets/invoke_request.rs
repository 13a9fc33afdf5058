//! An invoke request as the server reads it: the first line is the query string
//! (`key=value&...`), the rest the body. Credentials are required, so both paths are reached.

#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use stemscribe_server::{check_request, ServerConfig};

fuzz_target!(|input: &[u8]| {
    let (query, body) = match input.iter().position(|&b| b == b'\n') {
        Some(end) => (&input[..end], &input[end + 1..]),
        None => (&[][..], input),
    };
    let query: HashMap<String, String> = String::from_utf8_lossy(query)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let config = ServerConfig {
        keys: Some(HashMap::from([("k".to_owned(), "t".to_owned())])),
        ..ServerConfig::default()
    };
    let _ = check_request(&config, &query, body);
});

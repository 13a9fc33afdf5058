//! An invoke request as the server reads it: the first line is the query string
//! (`key=value&...`), the rest the body, checked both as a whole body and as the start of a
//! large one (the credential scan that runs before a large body is read on). Credentials are
//! required, so every path is reached.

#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use stemscribe_server::{check_large_request, check_request, ServerConfig};

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
    let _ = check_large_request(&config, &query, body);
});

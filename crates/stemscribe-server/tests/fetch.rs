//! `payload.url`: off by default, and when enabled, only within the operator's rules.
//! The fetch that is separated runs on the runtime and models from `scripts/setup.sh`; the
//! refusals run on test doubles ([`common::double`]).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use common::{assert_status, data, invoke, Server};
use serde_json::{json, Value};
use stemscribe_server::{FetchConfig, ServerConfig};

/// An origin server on loopback that answers by path, for as long as the test runs.
fn origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let song = data("rock_mix.wav");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let song = song.clone();
            std::thread::spawn(move || {
                let mut line = String::new();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                if reader.read_line(&mut line).is_err() {
                    return;
                }
                let path = line.split(' ').nth(1).unwrap_or("/").to_owned();
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                    header.clear();
                }
                let _ = match path.as_str() {
                    "/song.wav" => {
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            song.len()
                        );
                        stream
                            .write_all(head.as_bytes())
                            .and_then(|()| stream.write_all(&song))
                    }
                    "/declared-huge" => stream.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\nConnection: close\r\n\r\n",
                    ),
                    "/endless" => stream
                        .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
                        .and_then(|()| {
                            let block = vec![0_u8; 64 * 1024];
                            loop {
                                stream.write_all(&block)?;
                            }
                        }),
                    "/slow" => {
                        std::thread::sleep(Duration::from_secs(5));
                        stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                    }
                    "/away" => stream.write_all(
                        b"HTTP/1.1 302 Found\r\nLocation: http://elsewhere.invalid/song.wav\r\n\
                          Content-Length: 0\r\nConnection: close\r\n\r\n",
                    ),
                    "/back" => {
                        let head = format!(
                            "HTTP/1.1 302 Found\r\nLocation: http://{addr}/song.wav\r\n\
                             Content-Length: 0\r\nConnection: close\r\n\r\n"
                        );
                        stream.write_all(head.as_bytes())
                    }
                    _ => stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    ),
                };
            });
        }
    });
    addr
}

fn fetching(hosts: &[&str], allow_private: bool) -> ServerConfig {
    ServerConfig {
        fetch: Some(FetchConfig {
            allowed_hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            allow_private,
            max_bytes: 4 << 20,
            timeout: Duration::from_secs(2),
        }),
        ..ServerConfig::default()
    }
}

fn url_body(url: &str) -> Value {
    json!({"namespace": "MusicSourceSeparate",
           "payload": json!({"model": "2track_acc", "url": url}).to_string(), "data": ""})
}

fn assert_refused(response: &(u16, Value), code: u64, reason: &str) {
    assert_status(response, 400, code);
    let message = response.1["message"].as_str().unwrap();
    assert!(message.contains(reason), "{message}");
}

#[test]
fn urls_are_not_fetched_unless_enabled() {
    let origin = origin();
    let server = Server::start_double(ServerConfig::default());
    let url = format!("http://{origin}/song.wav");
    assert_refused(
        &invoke(server.addr, &url_body(&url)),
        40_000_024,
        "--fetch-host",
    );
    assert_refused(
        &invoke(server.addr, &url_body("")),
        40_000_023,
        "url is expected",
    );
}

#[test]
fn an_allowed_host_is_fetched_and_separated() {
    let origin = origin();
    let server = Server::start(fetching(&["127.0.0.1"], true));
    let response = invoke(server.addr, &url_body(&format!("http://{origin}/song.wav")));
    assert_status(&response, 200, 20_000_000);
    assert!(!response.1["data"].as_str().unwrap().is_empty());
    let redirected = invoke(server.addr, &url_body(&format!("http://{origin}/back")));
    assert_status(&redirected, 200, 20_000_000);
}

#[test]
fn fetches_outside_the_rules_fail_cleanly() {
    let origin = origin();
    let port = origin.port();
    let open = Server::start_double(fetching(&["127.0.0.1"], true));
    let cases = [
        (
            format!("ftp://127.0.0.1:{port}/song.wav"),
            "only http and https",
        ),
        (
            format!("http://localhost:{port}/song.wav"),
            "not on this server's list",
        ),
        (format!("http://{origin}/away"), "not on this server's list"),
        (format!("http://{origin}/missing"), "HTTP 404"),
        (
            format!("http://{origin}/declared-huge"),
            "larger than 4194304 bytes",
        ),
        (
            format!("http://{origin}/endless"),
            "larger than 4194304 bytes",
        ),
        (format!("http://{origin}/slow"), "took longer than 2s"),
        ("http://127.0.0.1:1/song.wav".to_owned(), "cannot download"),
        // TLS runs (rustls on ring) and fails cleanly on a server that does not speak it.
        (format!("https://{origin}/song.wav"), "tls handshake"),
    ];
    for (url, reason) in cases {
        assert_refused(&invoke(open.addr, &url_body(&url)), 40_000_024, reason);
    }

    let guarded = Server::start_double(fetching(&["127.0.0.1", "localhost"], false));
    for url in [
        format!("http://{origin}/song.wav"),
        format!("http://localhost:{port}/song.wav"),
    ] {
        assert_refused(
            &invoke(guarded.addr, &url_body(&url)),
            40_000_024,
            "loopback, private or link-local",
        );
    }
}

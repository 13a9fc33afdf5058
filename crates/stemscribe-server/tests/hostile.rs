//! Slow and greedy clients: idle and trickling connections, stalled uploads, a full queue,
//! shutdown with a client still connected, heads too large, and the JSON of every refusal.
//! All run on test doubles ([`common::double`]): none of them is about what the models return.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{assert_status, data, invoke, read_response, request, separate_body, Server};
use serde_json::json;
use stemscribe_server::{ServerConfig, MAX_DATA_BYTES};

/// Short limits, so that each test sees them act.
fn quick() -> ServerConfig {
    ServerConfig {
        header_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(2),
        write_timeout: Duration::from_secs(2),
        shutdown_grace: Duration::from_secs(2),
        ..ServerConfig::default()
    }
}

/// Reads until the server closes; `Err` if it is still open after `within`. A reset counts as
/// closed: a server that closes while the client is still sending resets the connection, and
/// whether the client then reads the close or the reset depends on timing.
fn wait_for_close(mut stream: TcpStream, within: Duration) -> Result<Vec<u8>, std::io::Error> {
    stream.set_read_timeout(Some(within))?;
    let mut seen = Vec::new();
    match stream.read_to_end(&mut seen) {
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => Ok(seen),
        other => other.map(|_| seen),
    }
}

fn keys() -> Option<HashMap<String, String>> {
    Some(HashMap::from([("k".to_owned(), "t".to_owned())]))
}

#[test]
fn idle_and_trickling_connections_are_closed() {
    let server = Server::start_double(quick());
    let started = Instant::now();
    let idle = TcpStream::connect(server.addr).unwrap();
    let trickling = TcpStream::connect(server.addr).unwrap();
    let writer = {
        let mut stream = trickling.try_clone().unwrap();
        std::thread::spawn(move || {
            for byte in b"POST /api/v1/invoke HTTP/1.1\r\nHost: x\r\n" {
                if stream.write_all(&[*byte]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    // The server's limit is 1 s for a request head (and for idling before one): both close
    // then, not at the test's 20 s of patience.
    for stream in [idle, trickling] {
        assert!(wait_for_close(stream, Duration::from_secs(20)).is_ok());
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(950) && waited < Duration::from_millis(1600),
            "{waited:?}"
        );
    }
    writer.join().unwrap();
}

/// Announces a 1000-byte body, sends its first 7 bytes and stalls; the answer, and how long
/// it took from the start of the request.
fn body_that_stalls(server: &Server) -> ((u16, serde_json::Value), Duration) {
    let mut stream = TcpStream::connect(server.addr).unwrap();
    let started = Instant::now();
    write!(
        stream,
        "POST /api/v1/invoke HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{{\"data\""
    )
    .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let response = read_response(stream);
    (response, started.elapsed())
}

#[test]
fn a_body_that_stops_arriving_is_answered() {
    let (response, waited) = body_that_stalls(&Server::start_double(quick()));
    // The total body limit is 2 s (the idle limit, 15 s, must not be what ended it).
    assert_answer(
        &response,
        (400, 40_000_000),
        "did not arrive within 2 s",
        waited,
        (1950, 2500),
    );
}

/// Asserts the answer's HTTP status and status code, that its message says `says`, and that it
/// came `waited` after the request, within `window_ms`: a limit acts at its configured value.
fn assert_answer(
    response: &(u16, serde_json::Value),
    (http, code): (u16, u64),
    says: &str,
    waited: Duration,
    window_ms: (u64, u64),
) {
    assert_status(response, http, code);
    let message = response.1["message"].as_str().unwrap_or_default();
    assert!(message.contains(says), "{}", response.1);
    let window = Duration::from_millis(window_ms.0)..Duration::from_millis(window_ms.1);
    assert!(window.contains(&waited), "{waited:?} outside {window:?}");
}

/// A long total body limit and a short idle one, so that only the idle limit can act.
fn idle_limited() -> ServerConfig {
    ServerConfig {
        body_timeout: Duration::from_secs(60),
        body_idle_timeout: Duration::from_secs(1),
        ..quick()
    }
}

#[test]
fn a_body_that_sends_nothing_is_refused_at_the_idle_timeout() {
    let (response, waited) = body_that_stalls(&Server::start_double(idle_limited()));
    // The idle limit is 1 s; the total limit (60 s) must not be what ended it.
    assert_answer(
        &response,
        (400, 40_000_000),
        "sent nothing for 1 s",
        waited,
        (950, 1500),
    );
}

#[test]
fn a_slow_but_steady_upload_of_the_largest_body_succeeds() {
    let server = Server::start_double(idle_limited());
    // The largest body the server accepts: a short song, the rest JSON whitespace.
    let mut body = separate_body(&json!({"model": "2track_vocal"}), &data("rock_mix.wav"))
        .to_string()
        .into_bytes();
    let largest = MAX_DATA_BYTES / 3 * 4 + 1024 * 1024;
    let padding = largest - body.len();
    body.splice(1..1, std::iter::repeat_n(b' ', padding));
    assert_eq!(body.len(), largest);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    write!(
        stream,
        "POST /api/v1/invoke HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    // Eight pieces 0.6 s apart: 4.2 s in all, four times the idle limit, never idle for 1 s.
    let started = Instant::now();
    for piece in body.chunks(body.len().div_ceil(8)) {
        std::thread::sleep(Duration::from_millis(600));
        stream.write_all(piece).unwrap();
    }
    assert!(started.elapsed() > Duration::from_secs(4));
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    assert_status(&read_response(stream), 200, 20_000_000);
}

/// Starts an upload that announces `length` bytes and sends `start`, then stalls.
fn stalled_upload(server: &Server, target: &str, length: usize, start: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(server.addr).unwrap();
    write!(
        stream,
        "POST {target} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\n\r\n"
    )
    .unwrap();
    stream.write_all(start).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
}

/// The start of a large body: `fields` then 5 MB of base64 in `data`, unfinished.
fn large_start(fields: &str) -> Vec<u8> {
    let mut body = format!("{{{fields}\"data\": \"").into_bytes();
    body.resize(body.len() + 5 * 1024 * 1024, b'A');
    body
}

#[test]
fn large_bodies_need_credentials_first_and_a_place() {
    let server = Server::start_double(ServerConfig {
        keys: keys(),
        max_jobs: 1,
        queue: 1,
        ..quick()
    });
    let invoke_target = "/api/v1/invoke";
    // Without credentials before the data: refused at once, not after 99 MB.
    let anonymous = stalled_upload(&server, invoke_target, 99 << 20, &large_start(""));
    assert_status(&read_response(anonymous), 401, 40_200_001);
    let wrong = large_start(r#""appkey": "k", "token": "x", "#);
    assert_status(
        &read_response(stalled_upload(&server, invoke_target, 99 << 20, &wrong)),
        401,
        40_200_002,
    );
    // With them: two places (1 job + 1 queued); a third stalled upload gets 429 at once.
    let first = large_start(r#""appkey": "k", "token": "t", "namespace": "MIDI", "#);
    let held: Vec<TcpStream> = (0..2)
        .map(|_| stalled_upload(&server, invoke_target, 99 << 20, &first))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let query = "/api/v1/invoke?appkey=k&token=t&namespace=MIDI";
    let third = stalled_upload(&server, query, 99 << 20, &large_start(""));
    assert_status(&read_response(third), 429, 40_200_011);
    // The held uploads end with the body timeout, and their places come back.
    for stream in held {
        assert_status(&read_response(stream), 400, 40_000_000);
    }
}

#[test]
fn a_queue_serves_more_clients_than_slots() {
    let server = Server::start_double(ServerConfig {
        max_jobs: 1,
        queue: 3,
        ..ServerConfig::default()
    });
    let addr = server.addr;
    let wav = std::sync::Arc::new(data("rock_mix.wav"));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let wav = wav.clone();
            std::thread::spawn(move || invoke(addr, &separate_body(&json!({}), &wav)))
        })
        .collect();
    for client in clients {
        assert_status(&client.join().unwrap(), 200, 20_000_000);
    }
}

#[test]
fn shutdown_ends_with_a_slow_client_connected() {
    let mut server = Server::start_double(ServerConfig {
        header_timeout: Duration::from_secs(600),
        body_timeout: Duration::from_secs(600),
        ..quick()
    });
    let mut slow = TcpStream::connect(server.addr).unwrap();
    write!(
        slow,
        "POST /api/v1/invoke HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{{"
    )
    .unwrap();
    let idle = TcpStream::connect(server.addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let (done, stopped) = std::sync::mpsc::channel();
    let asked = Instant::now();
    std::thread::spawn(move || {
        server.shutdown();
        let _ = done.send(());
    });
    // The grace period is 2 s: the slow client's request in flight holds the server that long,
    // and no longer.
    assert!(stopped.recv_timeout(Duration::from_secs(30)).is_ok());
    let waited = asked.elapsed();
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_millis(2600),
        "{waited:?}"
    );
    assert!(wait_for_close(idle, Duration::from_secs(5)).is_ok());
    drop(slow);
}

#[test]
fn every_refusal_is_json_with_a_status_code() {
    let server = Server::start_double(quick());
    let long_target = format!("/api/v1/invoke?x={}", "a".repeat(20_000));
    assert_status(
        &request(server.addr, "POST", &long_target, b"{}"),
        414,
        40_000_000,
    );
    let mut stream = TcpStream::connect(server.addr).unwrap();
    let mut head = String::from("POST /api/v1/invoke HTTP/1.1\r\nHost: x\r\n");
    for i in 0..150 {
        head.push_str(&format!("X-Filler-{i}: {}\r\n", "b".repeat(100)));
    }
    head.push_str("Content-Length: 2\r\nConnection: close\r\n\r\n{}");
    stream.write_all(head.as_bytes()).unwrap();
    assert_status(&read_response(stream), 431, 40_000_000);
    assert_status(
        &request(server.addr, "GET", "/nowhere", b""),
        404,
        40_000_000,
    );
    assert_status(
        &request(server.addr, "POST", "/healthz", b""),
        400,
        40_200_003,
    );
}

/// Sends a separation of rock_mix in a thread; its answer and how long it took.
fn separation_in_thread(
    server: &Server,
) -> std::thread::JoinHandle<((u16, serde_json::Value), Duration)> {
    let addr = server.addr;
    std::thread::spawn(move || {
        let started = Instant::now();
        let body = separate_body(&json!({}), &data("rock_mix.wav"));
        let response = invoke(addr, &body);
        (response, started.elapsed())
    })
}

#[test]
fn a_request_that_waits_past_queue_wait_gets_429() {
    let server = Server::start_with(
        ServerConfig {
            max_jobs: 1,
            queue: 1,
            queue_wait: Duration::from_secs(1),
            ..quick()
        },
        common::slow_double(Duration::from_secs(3)),
    );
    let first = separation_in_thread(&server);
    std::thread::sleep(Duration::from_millis(300));
    let (waiting, waited) = separation_in_thread(&server).join().unwrap();
    assert_answer(
        &waiting,
        (429, 40_200_011),
        "no job slot came free within 1 s",
        waited,
        (950, 1600),
    );
    let (served, _) = first.join().unwrap();
    assert_status(&served, 200, 20_000_000);
}

#[test]
fn a_job_past_its_time_limit_fails_with_a_server_error() {
    let server = Server::start_with(
        ServerConfig {
            job_timeout: Duration::from_secs(1),
            ..quick()
        },
        common::slow_double(Duration::from_secs(3)),
    );
    let (response, waited) = separation_in_thread(&server).join().unwrap();
    assert_answer(
        &response,
        (500, 50_000_000),
        "the job took longer than 1 s",
        waited,
        (950, 1600),
    );
}

#[test]
fn connections_over_max_connections_are_closed_at_once() {
    let server = Server::start_double(ServerConfig {
        max_connections: 2,
        header_timeout: Duration::from_secs(30),
        ..quick()
    });
    let held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let third = TcpStream::connect(server.addr).unwrap();
    assert!(wait_for_close(third, Duration::from_secs(5)).is_ok());
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    // The two within the cap are still open.
    for stream in &held {
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut byte = [0u8; 1];
        let read = (&*stream).read(&mut byte);
        assert!(
            matches!(&read, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
            "{read:?}"
        );
    }
    // Once one of them goes, a new connection is served.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let mut stream = TcpStream::connect(server.addr).unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no connection served after the cap freed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

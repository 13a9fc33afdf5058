//! Load test for a running `stemscribe serve`: N clients send 10 s clips for a while, half
//! separations and half transcriptions, and every answer is checked.
//!
//! ```text
//! stemscribe serve --listen 127.0.0.1:8000 &
//! cargo run --release -p stemscribe-server --example load -- 127.0.0.1:8000 SONG [CLIENTS] [SECONDS]
//! ```
//!
//! A client that gets 429 waits 200 ms before its next request. Printed: counts of correct
//! answers, clean 429s and failures (anything else, including lost connections), latency
//! percentiles and throughput. Exits non-zero if any request failed.

use std::error::Error;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};
use stemscribe_engine::decode::decode_native;
use stemscribe_engine::{
    decode_file, encode_to_vec, Audio, DecodeOptions, OutputFormat, OutputSpec,
};

const CLIP_SECS: usize = 10;
const BACKOFF: Duration = Duration::from_millis(200);

/// What one request ended as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Correct,
    Busy,
    Failed,
}

#[derive(Debug, Default)]
struct Tally {
    correct: Vec<Duration>,
    busy: Vec<Duration>,
    failures: Vec<String>,
    task_ids: Vec<String>,
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(addr), Some(song)) = (args.first(), args.get(1)) else {
        return Err("usage: load ADDR:PORT SONG [CLIENTS] [SECONDS]".into());
    };
    let addr: SocketAddr = addr.parse()?;
    let clients: usize = args.get(2).map_or(Ok(8), |s| s.parse())?;
    let seconds: u64 = args.get(3).map_or(Ok(60), |s| s.parse())?;

    let clip = ten_second_wav(song)?;
    let bodies = Arc::new([
        json!({"namespace": "MusicSourceSeparate", "payload": "{\"model\":\"2track_vocal\"}",
               "data": STANDARD.encode(&clip)})
        .to_string(),
        json!({"namespace": "MIDI", "payload": "", "data": STANDARD.encode(&clip)}).to_string(),
    ]);
    let tally = Arc::new(Mutex::new(Tally::default()));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|client| {
            let (bodies, tally) = (bodies.clone(), tally.clone());
            std::thread::spawn(move || {
                let mut turn = client;
                while Instant::now() < deadline {
                    let which = turn % 2;
                    turn += 1;
                    let sent = Instant::now();
                    let (outcome, detail) = match post(addr, &bodies[which]) {
                        Ok(response) => judge(which, &response),
                        Err(e) => (Outcome::Failed, format!("no answer: {e}")),
                    };
                    let elapsed = sent.elapsed();
                    let mut tally = tally.lock().unwrap_or_else(|e| e.into_inner());
                    match outcome {
                        Outcome::Correct => {
                            tally.correct.push(elapsed);
                            tally.task_ids.push(detail);
                        }
                        Outcome::Busy => tally.busy.push(elapsed),
                        Outcome::Failed => tally.failures.push(detail),
                    }
                    drop(tally);
                    if outcome == Outcome::Busy {
                        std::thread::sleep(BACKOFF);
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().map_err(|_| "a client thread panicked")?;
    }
    let wall = started.elapsed().as_secs_f64();
    let mut guard = tally.lock().unwrap_or_else(|e| e.into_inner());
    let tally = &mut *guard;
    let sent = tally.correct.len() + tally.busy.len() + tally.failures.len();
    let mut ids = tally.task_ids.clone();
    ids.sort();
    ids.dedup();
    println!("{clients} clients, {wall:.1} s, {sent} requests");
    println!(
        "correct: {} ({} distinct task ids), 429: {}, failed: {}",
        tally.correct.len(),
        ids.len(),
        tally.busy.len(),
        tally.failures.len()
    );
    for (name, times) in [("correct", &mut tally.correct), ("429", &mut tally.busy)] {
        times.sort();
        if !times.is_empty() {
            println!(
                "{name} latency: p50 {:.2} s, p99 {:.2} s, max {:.2} s",
                percentile(times, 0.50),
                percentile(times, 0.99),
                percentile(times, 1.0)
            );
        }
    }
    let done = tally.correct.len() as f64;
    println!(
        "throughput: {:.2} answers/s, {:.1} s of audio per second of wall time",
        done / wall,
        done * CLIP_SECS as f64 / wall
    );
    for failure in tally.failures.iter().take(10) {
        println!("failure: {failure}");
    }
    if tally.failures.is_empty() && ids.len() == tally.correct.len() {
        Ok(())
    } else {
        Err("some requests failed or shared a task id".into())
    }
}

/// The first 10 s of `song` as 44.1 kHz stereo 16-bit WAV.
fn ten_second_wav(song: &str) -> Result<Vec<u8>, Box<dyn Error>> {
    let audio = decode_file(song.as_ref(), &DecodeOptions::default())?;
    let frames = (CLIP_SECS * audio.sample_rate() as usize).min(audio.frames());
    let channels = audio
        .channels()
        .iter()
        .map(|c| c[..frames].to_vec())
        .collect();
    let clip = Audio::new(audio.sample_rate(), channels)?;
    let spec = OutputSpec {
        sample_rate: 44_100,
        channels: 2,
        format: OutputFormat::default(),
    };
    Ok(encode_to_vec(clip, &spec)?.0)
}

/// Sends one invoke request; returns (HTTP status, JSON body).
fn post(addr: SocketAddr, body: &str) -> Result<(u16, Value), Box<dyn Error>> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(180)))?;
    write!(
        stream,
        "POST /api/v1/invoke HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8(response)?;
    let (head, json) = text.split_once("\r\n\r\n").ok_or("no header end")?;
    let status = head.split(' ').nth(1).ok_or("no status")?.parse()?;
    Ok((status, serde_json::from_str(json)?))
}

/// Checks an answer: request 0 must be a 10 s mono 44.1 kHz WAV, request 1 a MIDI file or
/// "no sung melody"; 429 must carry its own code. Returns the task id or what was wrong.
fn judge(which: usize, (http, body): &(u16, Value)) -> (Outcome, String) {
    let code = body["status_code"].as_u64().unwrap_or(0);
    let namespace = body["namespace"].as_str().unwrap_or("");
    let expected_namespace = ["MusicSourceSeparate", "MIDI"][which];
    let task_id = body["task_id"].as_str().unwrap_or("").to_owned();
    if namespace != expected_namespace {
        return (
            Outcome::Failed,
            format!("namespace {namespace} for {expected_namespace}"),
        );
    }
    match (*http, code) {
        (429, 40_200_011) => (Outcome::Busy, task_id),
        (400, 40_000_010) if which == 1 => (Outcome::Correct, task_id),
        (200, 20_000_000) => {
            let data = STANDARD
                .decode(body["data"].as_str().unwrap_or(""))
                .unwrap_or_default();
            let right = if which == 0 {
                decode_native(data, &DecodeOptions::default()).is_ok_and(|audio| {
                    audio.sample_rate() == 44_100
                        && audio.num_channels() == 1
                        && audio.frames() == CLIP_SECS * 44_100
                })
            } else {
                data.starts_with(b"MThd")
            };
            if right {
                (Outcome::Correct, task_id)
            } else {
                (
                    Outcome::Failed,
                    format!("wrong result for {expected_namespace}"),
                )
            }
        }
        _ => (
            Outcome::Failed,
            format!("HTTP {http}, status {code}: {body}"),
        ),
    }
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index].as_secs_f64()
}

//! Slow and greedy clients against a running `stemscribe serve`, with the health check timed
//! throughout and the server's memory read from /proc.
//!
//! ```text
//! stemscribe serve --listen 127.0.0.1:8000 & echo $! > server.pid
//! cargo run --release -p stemscribe-server --example siege -- 127.0.0.1:8000 $(cat server.pid) [SECONDS]
//! ```
//!
//! For SECONDS (default 60): 150 connections that send nothing, 150 that trickle a request
//! head one byte every 500 ms, and 24 uploads that announce 99 MB, send 5 MB and stall; each
//! reconnects when the server closes it. A health check (`GET /healthz`, fresh connection)
//! every 100 ms must answer `ok`. Printed: health latency percentiles and failures, how often
//! the server closed each kind of attacker and how uploads were answered, and the server's
//! peak and final resident memory. Exits non-zero if a health check failed.

use std::error::Error;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const IDLE: usize = 150;
const TRICKLING: usize = 150;
const UPLOADS: usize = 24;

#[derive(Debug, Default)]
struct Counts {
    idle_closed: AtomicUsize,
    trickle_closed: AtomicUsize,
    upload_answers: Mutex<Vec<String>>,
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(addr), Some(pid)) = (args.first(), args.get(1)) else {
        return Err("usage: siege ADDR:PORT SERVER_PID [SECONDS]".into());
    };
    let addr: SocketAddr = addr.parse()?;
    let pid: u32 = pid.parse()?;
    let seconds: u64 = args.get(2).map_or(Ok(60), |s| s.parse())?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let counts = Arc::new(Counts::default());
    let mut attackers = Vec::new();
    for i in 0..IDLE + TRICKLING {
        let counts = counts.clone();
        let trickle = i >= IDLE;
        attackers.push(std::thread::spawn(move || {
            while Instant::now() < deadline {
                let Ok(mut stream) = TcpStream::connect(addr) else {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                };
                let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
                let head = b"POST /api/v1/invoke HTTP/1.1\r\nHost: siege\r\nX-Slow: yes";
                let mut sent = 0;
                let closed = loop {
                    if Instant::now() >= deadline {
                        break false;
                    }
                    if trickle && sent < head.len() && stream.write_all(&head[sent..=sent]).is_err()
                    {
                        break true;
                    }
                    sent += 1;
                    let mut byte = [0u8; 1];
                    match stream.read(&mut byte) {
                        Ok(0) => break true,
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(_) => break true,
                    }
                };
                if closed {
                    let counter = if trickle {
                        &counts.trickle_closed
                    } else {
                        &counts.idle_closed
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for _ in 0..UPLOADS {
        let counts = counts.clone();
        attackers.push(std::thread::spawn(move || {
            while Instant::now() < deadline {
                let answer = stalled_upload(addr, deadline);
                if let Ok(mut answers) = counts.upload_answers.lock() {
                    answers.push(answer);
                }
            }
        }));
    }
    let mut health = Vec::new();
    let mut health_failures = Vec::new();
    let mut peak_rss = 0u64;
    while Instant::now() < deadline {
        let asked = Instant::now();
        match healthz(addr) {
            Ok(()) => health.push(asked.elapsed()),
            Err(e) => health_failures.push(e.to_string()),
        }
        peak_rss = peak_rss.max(memory(pid, "VmRSS:").unwrap_or(0));
        std::thread::sleep(Duration::from_millis(100));
    }
    for attacker in attackers {
        let _ = attacker.join();
    }
    health.sort();
    println!(
        "{IDLE} idle + {TRICKLING} trickling connections and {UPLOADS} stalled 99 MB uploads for {seconds} s"
    );
    if !health.is_empty() {
        println!(
            "health: {} answered, {} failed; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            health.len(),
            health_failures.len(),
            percentile(&health, 0.5) * 1e3,
            percentile(&health, 0.99) * 1e3,
            percentile(&health, 1.0) * 1e3
        );
    }
    println!(
        "server closed {} idle and {} trickling connections",
        counts.idle_closed.load(Ordering::Relaxed),
        counts.trickle_closed.load(Ordering::Relaxed)
    );
    if let Ok(answers) = counts.upload_answers.lock() {
        let mut kinds: Vec<(String, usize)> = Vec::new();
        for answer in answers.iter() {
            match kinds.iter_mut().find(|(k, _)| k == answer) {
                Some((_, n)) => *n += 1,
                None => kinds.push((answer.clone(), 1)),
            }
        }
        for (kind, n) in kinds {
            println!("uploads answered {kind}: {n}");
        }
    }
    println!(
        "server memory: peak sampled RSS {} MB, VmHWM {} MB, now {} MB",
        peak_rss >> 10,
        memory(pid, "VmHWM:").unwrap_or(0) >> 10,
        memory(pid, "VmRSS:").unwrap_or(0) >> 10
    );
    for failure in health_failures.iter().take(5) {
        println!("health failure: {failure}");
    }
    if health_failures.is_empty() {
        Ok(())
    } else {
        Err("health checks failed".into())
    }
}

/// One upload that announces 99 MB, sends 5 MB and stalls; returns how it ended.
fn stalled_upload(addr: SocketAddr, deadline: Instant) -> String {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        std::thread::sleep(Duration::from_millis(100));
        return "refused connection".into();
    };
    let start = format!(
        "POST /api/v1/invoke?namespace=MIDI HTTP/1.1\r\nHost: siege\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{{\"data\": \"",
        99 << 20
    );
    if stream.write_all(start.as_bytes()).is_err() {
        return "closed while sending".into();
    }
    let chunk = vec![b'A'; 1 << 20];
    for _ in 0..5 {
        if stream.write_all(&chunk).is_err() {
            return "closed while sending".into();
        }
    }
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut response = Vec::new();
    loop {
        if Instant::now() >= deadline {
            return "not yet (test ended)".into();
        }
        let mut buffer = [0u8; 4096];
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&buffer[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
        if let Some(status) = status_code(&response) {
            return status;
        }
    }
    status_code(&response).unwrap_or_else(|| "closed without an answer".into())
}

/// `HTTP n / status_code m` once a whole JSON answer is in.
fn status_code(response: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(response).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let http = head.split(' ').nth(1)?;
    let json: serde_json::Value = serde_json::from_str(body).ok()?;
    Some(format!("HTTP {http} / {}", json["status_code"]))
}

fn healthz(addr: SocketAddr) -> Result<(), Box<dyn Error>> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: siege\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    if text.starts_with("HTTP/1.1 200") && text.ends_with("ok") {
        Ok(())
    } else {
        Err(format!("unexpected answer: {text:.80}").into())
    }
}

/// A `/proc/PID/status` memory line in KiB.
fn memory(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index].as_secs_f64()
}

//! The jobs API and the studio's assets, on the test doubles: what a job makes and how it is
//! shown, refused, bounded, expired and deleted.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{data, double, Server};
use serde_json::Value;
use stemscribe_engine::{
    decode, encode_to_vec, to_json, to_smf, DecodeOptions, OutputFormat, OutputSpec,
    SeparationModel, SmfOptions, WavSampleFormat,
};
use stemscribe_server::ServerConfig;

/// One raw response: status, lower-case headers, body.
struct Reply {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

fn send(addr: SocketAddr, method: &str, target: &str, body: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    // A refusal may come before the body is read: the answer is what matters, not the upload.
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = response[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = unchunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn unchunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&body[..line_end]).unwrap(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[line_end + 2..line_end + 2 + size]);
        body = &body[line_end + 4 + size..];
    }
}

/// Submits `audio` and returns the job's id, asserting 202.
fn submit(addr: SocketAddr, query: &str, audio: &[u8]) -> String {
    let reply = send(addr, "POST", &format!("/api/v1/jobs?{query}"), audio);
    assert_eq!(reply.status, 202, "{}", reply.json());
    reply.json()["id"].as_str().unwrap().to_owned()
}

/// Polls job `id` until it is done or failed.
fn wait(addr: SocketAddr, id: &str, suffix: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reply = send(addr, "GET", &format!("/api/v1/jobs/{id}{suffix}"), b"");
        assert_eq!(reply.status, 200, "{}", reply.json());
        let view = reply.json();
        if view["state"] == "done" || view["state"] == "failed" {
            return view;
        }
        assert!(Instant::now() < deadline, "job {id} did not end: {view}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn names(view: &Value) -> Vec<String> {
    view["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Every file under `dir`, at any depth.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else {
                out.push(path.display().to_string());
            }
        }
    }
    out
}

fn job_dir() -> tempfile_dir::Dir {
    tempfile_dir::Dir::new()
}

/// A folder of the test's own, removed at the end.
mod tempfile_dir {
    use std::path::PathBuf;

    pub struct Dir(pub PathBuf);

    impl Dir {
        pub fn new() -> Self {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static N: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "stemscribe-jobs-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&path).unwrap();
            Self(path)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[test]
fn a_job_makes_the_stems_and_the_melody_as_the_engine_writes_them() {
    let dir = job_dir();
    let server = Server::start_double(ServerConfig {
        job_dir: Some(dir.0.clone()),
        ..ServerConfig::default()
    });
    let audio = data("rock_mix.wav");
    let id = submit(
        server.addr,
        "separate=2track_vocal&midi=true&name=rock%20mix.wav",
        &audio,
    );
    let view = wait(server.addr, &id, "");
    assert_eq!(view["state"], "done", "{view}");
    assert_eq!(view["stage"], "done");
    assert_eq!(view["progress"], 1.0);
    assert_eq!(view["error"], Value::Null);
    assert_eq!(view["input"], "rock mix.wav");
    assert_eq!(
        names(&view),
        [
            "vocals.wav",
            "accompaniment.wav",
            "melody.mid",
            "melody.json"
        ]
    );

    // What `separate --stems` and `midi -o --json` write for the same engine and input.
    let engine = double();
    let song = decode(audio, &DecodeOptions::default()).unwrap();
    let spec = OutputSpec {
        sample_rate: 44_100,
        channels: 2,
        format: OutputFormat::Wav(WavSampleFormat::Float32),
    };
    let stems = engine
        .separate_all(&song, SeparationModel::TwoTrackVocal, &mut |_| {})
        .unwrap();
    let melody = engine.transcribe(&song, &mut |_| {}).unwrap();
    let mut expected: Vec<(String, Vec<u8>)> = stems
        .into_iter()
        .map(|stem| {
            let name = format!("{}.wav", stem.name());
            (name, encode_to_vec(stem.audio, &spec).unwrap().0)
        })
        .collect();
    expected.push(("melody.mid".into(), to_smf(&melody, &SmfOptions::default())));
    expected.push((
        "melody.json".into(),
        format!("{}\n", to_json(&melody)).into_bytes(),
    ));
    for (name, bytes) in expected {
        let file = view["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name.as_str())
            .unwrap();
        assert_eq!(
            file["url"],
            format!("/api/v1/jobs/{id}/files/{name}").as_str()
        );
        let reply = send(server.addr, "GET", file["url"].as_str().unwrap(), b"");
        assert_eq!(reply.status, 200);
        assert!(reply.body == bytes, "{name} differs from the engine's");
    }

    let mp3 = send(
        server.addr,
        "GET",
        &format!("/api/v1/jobs/{id}/files/vocals.wav?format=mp3"),
        b"",
    );
    assert_eq!(mp3.status, 200);
    assert_eq!(mp3.headers["content-type"], "audio/mpeg");
    let back = decode(mp3.body, &DecodeOptions::default()).unwrap();
    assert_eq!(back.frames(), song.frames(), "the MP3 is gapless");
    // Offered once: the MP3 is not listed among the job's results.
    assert_eq!(names(&wait(server.addr, &id, "")).len(), 4);

    let listed = send(server.addr, "GET", "/api/v1/jobs", b"").json();
    assert_eq!(listed["jobs"][0]["id"], id.as_str());

    assert_eq!(
        send(server.addr, "DELETE", &format!("/api/v1/jobs/{id}"), b"").status,
        204
    );
    let gone = send(server.addr, "GET", &format!("/api/v1/jobs/{id}"), b"");
    assert_eq!(gone.status, 404);
    assert_eq!(gone.json()["status_code"], 40_000_000);
    assert_eq!(files_under(&dir.0), Vec::<String>::new());
}

#[test]
fn a_four_track_job_writes_every_stem_and_a_melody_only_job_no_stems() {
    let server = Server::start_double(ServerConfig::default());
    let audio = data("rock_mix.wav");
    let four = submit(server.addr, "separate=bs_4track_acc", &audio);
    let view = wait(server.addr, &four, "");
    assert_eq!(
        names(&view),
        ["vocals.wav", "drums.wav", "bass.wav", "other.wav"],
        "{view}"
    );
    let melody = submit(server.addr, "midi=true", &audio);
    assert_eq!(
        names(&wait(server.addr, &melody, "")),
        ["melody.mid", "melody.json"]
    );
}

#[test]
fn requests_the_jobs_api_cannot_serve_are_refused_with_the_invoke_codes() {
    let server = Server::start_double(ServerConfig::default());
    let audio = data("rock_mix.wav");
    let cases: [(&str, &[u8], u16, u64); 5] = [
        ("midi=false", &audio, 400, 40_000_020),
        ("separate=5track", &audio, 400, 40_000_020),
        ("separate=2track_vocal&midi=maybe", &audio, 400, 40_000_020),
        ("separate=2track_vocal", b"", 400, 40_000_011),
        ("", &audio, 400, 40_000_020),
    ];
    for (query, body, http, code) in cases {
        let reply = send(server.addr, "POST", &format!("/api/v1/jobs?{query}"), body);
        assert_eq!(reply.status, http, "{query}: {}", reply.json());
        assert_eq!(reply.json()["status_code"], code, "{query}");
    }
    // Not audio: the job fails with IllegalData and keeps nothing.
    let id = submit(server.addr, "separate=2track_vocal", b"not audio at all");
    let view = wait(server.addr, &id, "");
    assert_eq!(view["state"], "failed");
    assert_eq!(view["error"]["status_code"], 40_000_012, "{view}");
    assert_eq!(view["error"]["status_text"], "IllegalData");
    assert!(names(&view).is_empty());
    let missing = send(
        server.addr,
        "GET",
        &format!("/api/v1/jobs/{id}/files/vocals.wav"),
        b"",
    );
    assert_eq!(missing.status, 404);
    assert_eq!(
        send(server.addr, "GET", "/api/v1/jobs/0123", b"").status,
        404
    );
}

#[test]
fn with_keys_a_job_belongs_to_its_appkey() {
    let server = Server::start_double(ServerConfig {
        keys: Some(HashMap::from([
            ("a".to_owned(), "ta".to_owned()),
            ("b".to_owned(), "tb".to_owned()),
        ])),
        ..ServerConfig::default()
    });
    let audio = data("rock_mix.wav");
    let refused = send(server.addr, "POST", "/api/v1/jobs?midi=true", &audio);
    assert_eq!(refused.status, 401);
    assert_eq!(refused.json()["status_code"], 40_200_001);
    let wrong = send(
        server.addr,
        "POST",
        "/api/v1/jobs?midi=true&appkey=a&token=tb",
        &audio,
    );
    assert_eq!(wrong.json()["status_code"], 40_200_002);
    let id = submit(server.addr, "midi=true&appkey=a&token=ta", &audio);
    assert_eq!(
        wait(server.addr, &id, "?appkey=a&token=ta")["state"],
        "done"
    );
    let other = send(
        server.addr,
        "GET",
        &format!("/api/v1/jobs/{id}?appkey=b&token=tb"),
        b"",
    );
    assert_eq!(other.status, 404);
    let listed = send(server.addr, "GET", "/api/v1/jobs?appkey=b&token=tb", b"");
    assert_eq!(listed.json()["jobs"], Value::Array(Vec::new()));
    let file = send(
        server.addr,
        "GET",
        &format!("/api/v1/jobs/{id}/files/melody.json"),
        b"",
    );
    assert_eq!(file.status, 401);
}

#[test]
fn job_storage_is_bounded_and_a_job_over_it_leaves_no_file() {
    let dir = job_dir();
    let audio = data("rock_mix.wav");
    // Room for the upload (32-bit float stereo) and one stem of it, not two.
    let server = Server::start_double(ServerConfig {
        job_storage: audio.len() as u64 * 3 / 2,
        job_dir: Some(dir.0.clone()),
        ..ServerConfig::default()
    });
    let id = submit(server.addr, "separate=2track_vocal", &audio);
    let view = wait(server.addr, &id, "");
    assert_eq!(view["state"], "failed", "{view}");
    assert_eq!(view["error"]["status_code"], 40_200_011);
    assert!(
        view["error"]["message"].as_str().unwrap().contains("busy"),
        "{view}"
    );
    assert!(names(&view).is_empty());
    assert_eq!(files_under(&dir.0), Vec::<String>::new());

    let tiny = Server::start_double(ServerConfig {
        job_storage: 1000,
        ..ServerConfig::default()
    });
    let refused = send(tiny.addr, "POST", "/api/v1/jobs?midi=true", &audio);
    assert_eq!(refused.status, 429);
    assert_eq!(refused.json()["status_code"], 40_200_011);
}

#[test]
fn finished_jobs_expire_with_their_files() {
    let dir = job_dir();
    let server = Server::start_double(ServerConfig {
        job_ttl: Duration::from_millis(400),
        job_dir: Some(dir.0.clone()),
        ..ServerConfig::default()
    });
    let id = submit(server.addr, "midi=true", &data("rock_mix.wav"));
    assert_eq!(wait(server.addr, &id, "")["state"], "done");
    assert_eq!(files_under(&dir.0).len(), 2);
    std::thread::sleep(Duration::from_millis(900));
    assert_eq!(
        send(server.addr, "GET", &format!("/api/v1/jobs/{id}"), b"").status,
        404
    );
    assert_eq!(files_under(&dir.0), Vec::<String>::new());
}

#[test]
fn the_studio_is_served_from_the_binary_and_loads_nothing_from_elsewhere() {
    let server = Server::start_double(ServerConfig::default());
    let page = send(server.addr, "GET", "/", b"");
    assert_eq!(page.status, 200);
    assert!(page.headers["content-type"].starts_with("text/html"));
    let policy = &page.headers["content-security-policy"];
    assert!(policy.contains("default-src 'self'"), "{policy}");
    let html = String::from_utf8(page.body).unwrap();
    assert!(html.contains("src=\"/studio.js\"") && html.contains("href=\"/studio.css\""));
    for asset in ["/studio.js", "/studio.css"] {
        let reply = send(server.addr, "GET", asset, b"");
        assert_eq!(reply.status, 200, "{asset}");
        let text = String::from_utf8(reply.body).unwrap();
        assert!(
            !text.contains("http://") && !text.contains("https://") && !text.contains("//cdn"),
            "{asset} names another host"
        );
    }
    let models = send(server.addr, "GET", "/api/v1/models", b"").json();
    assert_eq!(models["separation"][0], "2track_vocal");
    assert_eq!(models["installed"], Value::Array(Vec::new()));
}

//! What the server's integration tests share: a server on loopback, raw HTTP/1.1 requests.

// Each test file uses its own subset of these helpers.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};
use stemscribe_engine::separate::Separate;
use stemscribe_engine::transcribe::{PitchTrack, TrackPitch, Transcriber};
use stemscribe_engine::{
    Audio, DeviceUse, Engine, EngineConfig, EngineParts, Progress, SeparationError, SourceStem,
    TranscriptionError,
};
use stemscribe_server::{serve, ServerConfig};
use tokio::sync::oneshot;

pub fn data(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(name);
    std::fs::read(path).unwrap()
}

pub fn engine() -> Arc<Engine> {
    static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| Arc::new(Engine::new(&EngineConfig::default()).unwrap()))
        .clone()
}

/// An engine of test doubles, for tests that check how requests are validated and answered:
/// no ONNX Runtime, no model file. It separates every mix into two halves of itself and hears
/// a steady 220 Hz voice in anything.
pub fn double() -> Arc<Engine> {
    Arc::new(Engine::from_parts(EngineParts {
        two_stems: Box::new(HalfSplit),
        four_stems: None,
        transcriber: Some(Transcriber::with_tracker(
            Box::new(SteadyVoice),
            Default::default(),
        )),
        noise: Default::default(),
        derived: Default::default(),
        device: DeviceUse::Cpu { fallback: None },
    }))
}

/// [`double`] whose separations each take `delay`: for tests of waiting and time limits.
pub fn slow_double(delay: Duration) -> Arc<Engine> {
    Arc::new(Engine::from_parts(EngineParts {
        two_stems: Box::new(SlowSplit(delay)),
        four_stems: None,
        transcriber: None,
        noise: Default::default(),
        derived: Default::default(),
        device: DeviceUse::Cpu { fallback: None },
    }))
}

/// [`HalfSplit`] after a pause.
#[derive(Debug)]
struct SlowSplit(Duration);

impl Separate for SlowSplit {
    fn file(&self) -> &std::path::Path {
        "slow half-split (test double)".as_ref()
    }

    fn stems(&self) -> Vec<SourceStem> {
        HalfSplit.stems()
    }

    fn separate(
        &self,
        audio: &Audio,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<(SourceStem, Audio)>, SeparationError> {
        std::thread::sleep(self.0);
        HalfSplit.separate(audio, progress)
    }
}

/// A separator double: the vocals and the accompaniment are each half the mix.
#[derive(Debug)]
struct HalfSplit;

impl Separate for HalfSplit {
    fn file(&self) -> &std::path::Path {
        "half-split (test double)".as_ref()
    }

    fn stems(&self) -> Vec<SourceStem> {
        vec![SourceStem::Vocals, SourceStem::Accompaniment]
    }

    fn separate(
        &self,
        audio: &Audio,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<(SourceStem, Audio)>, SeparationError> {
        let sides = audio
            .channels()
            .iter()
            .map(|side| side.iter().map(|s| 0.5 * s).collect())
            .collect();
        let half = Audio::new(audio.sample_rate(), sides)?;
        progress(Progress { done: 1, total: 1 });
        Ok(vec![
            (SourceStem::Vocals, half.clone()),
            (SourceStem::Accompaniment, half),
        ])
    }
}

/// A pitch tracker double: 220 Hz, fully voiced, in every 10 ms frame.
#[derive(Debug)]
struct SteadyVoice;

impl TrackPitch for SteadyVoice {
    fn sample_rate(&self) -> u32 {
        16_000
    }

    fn windows(&self, _samples: usize) -> usize {
        1
    }

    fn track(
        &self,
        signal: &[f32],
        progress: &mut dyn FnMut(Progress),
    ) -> Result<PitchTrack, TranscriptionError> {
        let frames = signal.len() / 160;
        progress(Progress { done: 1, total: 1 });
        Ok(PitchTrack {
            frame_period: 0.01,
            pitch_hz: vec![220.0; frames],
            confidence: vec![0.95; frames],
            loudness_db: vec![-20.0; frames],
            harmonic_db: vec![-20.0; frames],
            envelope_db: vec![[0.0; 12]; frames],
        })
    }
}

/// A running server; dropping the sender shuts it down.
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// A server on the real models.
    pub fn start(config: ServerConfig) -> Self {
        Self::start_with(config, engine())
    }

    /// A server on the test doubles of [`double`].
    pub fn start_double(config: ServerConfig) -> Self {
        Self::start_with(config, double())
    }

    pub fn start_with(config: ServerConfig, engine: Arc<Engine>) -> Self {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                serve(listener, engine, config, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
            });
        });
        Self {
            addr: addr_rx.recv().unwrap(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Sends one request and returns (HTTP status, JSON body).
pub fn request(addr: SocketAddr, method: &str, target: &str, body: &[u8]) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    write!(
        stream,
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    read_response(stream)
}

pub fn read_response(mut stream: TcpStream) -> (u16, Value) {
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8(response).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    (status, serde_json::from_str(body).unwrap())
}

pub fn invoke(addr: SocketAddr, body: &Value) -> (u16, Value) {
    request(addr, "POST", "/api/v1/invoke", body.to_string().as_bytes())
}

pub fn separate_body(payload: &Value, audio: &[u8]) -> Value {
    json!({"appkey": "k", "token": "t", "namespace": "MusicSourceSeparate",
           "payload": payload.to_string(), "data": STANDARD.encode(audio)})
}

pub fn assert_status(response: &(u16, Value), http: u16, code: u64) {
    assert_eq!(response.0, http, "{}", response.1);
    assert_eq!(response.1["status_code"], code, "{}", response.1);
    if code != 20_000_000 {
        assert_eq!(response.1["data"], "");
        assert_eq!(response.1["payload"], "");
    }
}

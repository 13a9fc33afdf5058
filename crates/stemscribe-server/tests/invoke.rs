//! The server as clients see it: a real listener on loopback, raw HTTP/1.1 requests.
//! Tests of what the models return need the runtime and models from `scripts/setup.sh`;
//! tests of validation run on test doubles ([`common::double`]).

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use common::{assert_status, data, invoke, read_response, request, separate_body, Server};
use serde_json::{json, Value};
use stemscribe_engine::decode::decode_native;
use stemscribe_engine::DecodeOptions;
use stemscribe_server::ServerConfig;

fn wav_of(response: &Value) -> (hound::WavSpec, u32) {
    let bytes = STANDARD.decode(response["data"].as_str().unwrap()).unwrap();
    let reader = hound::WavReader::new(std::io::Cursor::new(bytes)).unwrap();
    (reader.spec(), reader.duration())
}

#[test]
fn body_form_separates_with_the_default_output() {
    let server = Server::start(ServerConfig::default());
    let response = invoke(
        server.addr,
        &separate_body(&json!({"model": "2track_acc"}), &data("rock_mix.wav")),
    );
    assert_status(&response, 200, 20_000_000);
    assert_eq!(response.1["status_text"], "OK");
    assert_eq!(response.1["namespace"], "MusicSourceSeparate");
    let (spec, frames) = wav_of(&response.1);
    assert_eq!((spec.sample_rate, spec.channels), (44_100, 1));
    assert_eq!(frames, 132_300);
}

#[test]
fn output_rate_and_channels_are_honoured() {
    let server = Server::start(ServerConfig::default());
    // Whole numbers written as floats are the same numbers; fractions are not.
    let payload = json!({"extra": {"output_sample_rate": 16000.0, "output_channel": 2}});
    let response = invoke(server.addr, &separate_body(&payload, &data("rock_mix.wav")));
    assert_status(&response, 200, 20_000_000);
    let (spec, frames) = wav_of(&response.1);
    assert_eq!((spec.sample_rate, spec.channels), (16_000, 2));
    assert_eq!(frames, 48_000);
    let payload = json!({"extra": {"output_sample_rate": 16000.5}});
    let response = invoke(server.addr, &separate_body(&payload, &data("rock_mix.wav")));
    assert_status(&response, 400, 40_000_022);
}

#[test]
fn every_format_and_model_decodes_at_the_requested_shape() {
    let server = Server::start(ServerConfig::default());
    let cases = [
        ("mp3", 22_050, 1, 0, "2track_acc"),
        ("aac", 48_000, 2, 1024, "bs_4track_vocal"),
        ("wav", 44_100, 1, 0, "bs_4track_acc"),
    ];
    for (format, rate, channels, max_extra, model) in cases {
        let payload = json!({"model": model, "extra": {"output_format": format,
            "output_sample_rate": rate, "output_channel": channels}});
        let response = invoke(server.addr, &separate_body(&payload, &data("rock_mix.wav")));
        assert_status(&response, 200, 20_000_000);
        let bytes = STANDARD
            .decode(response.1["data"].as_str().unwrap())
            .unwrap();
        let hint = DecodeOptions {
            format_hint: Some(format.to_owned()),
            ..DecodeOptions::default()
        };
        let audio = decode_native(bytes, &hint).unwrap();
        assert_eq!(
            (audio.sample_rate(), audio.num_channels()),
            (rate, channels)
        );
        let extra = audio.frames() - 3 * rate as usize;
        assert!(
            extra <= max_extra,
            "{format}: {extra} frames more than the input"
        );
    }
}

#[test]
fn query_form_transcribes_to_midi_and_json() {
    let server = Server::start(ServerConfig::default());
    let audio = STANDARD.encode(data("rock_mix.wav"));
    let target = "/api/v1/invoke?version=v4&token=t&appkey=k&namespace=MIDI";
    let body = json!({"data": audio});
    let response = request(server.addr, "POST", target, body.to_string().as_bytes());
    assert_status(&response, 200, 20_000_000);
    assert_eq!(response.1["namespace"], "MIDI");
    let midi = STANDARD
        .decode(response.1["data"].as_str().unwrap())
        .unwrap();
    assert_eq!(&midi[..4], b"MThd");

    let body = json!({"data": audio, "payload": "{\"extra\":{\"midi\":false}}"});
    let response = request(server.addr, "POST", target, body.to_string().as_bytes());
    assert_status(&response, 200, 20_000_000);
    let notes: Value = serde_json::from_str(response.1["payload"].as_str().unwrap()).unwrap();
    assert_eq!(notes["track"], "vocal");
    assert!(!notes["midiList"].as_array().unwrap().is_empty());
    assert_eq!(response.1["data"], "");
}

#[test]
fn every_client_error_has_its_code() {
    let server = Server::start_double(ServerConfig::default());
    let addr = server.addr;
    let wav = data("rock_mix.wav");
    let cases: Vec<(Value, u16, u64)> = vec![
        (
            json!({"namespace": "Nope", "data": "AAAA"}),
            400,
            40_200_014,
        ),
        (json!({"data": "AAAA"}), 400, 40_200_014),
        (
            json!({"namespace": "MusicSourceSeparate", "data": STANDARD.encode(&wav)}),
            400,
            40_000_021,
        ),
        (
            json!({"namespace": "MusicSourceSeparate", "payload": "{not json", "data": "AAAA"}),
            400,
            40_000_022,
        ),
        (
            json!({"namespace": "MusicSourceSeparate", "payload": "{\"model\": 7}", "data": "AAAA"}),
            400,
            40_000_022,
        ),
        (
            separate_body(&json!({"model": "5track"}), &wav),
            400,
            40_000_020,
        ),
        (
            separate_body(&json!({"extra": {"output_channel": 3}}), &wav),
            400,
            40_000_020,
        ),
        (
            separate_body(&json!({"extra": {"output_format": "flac"}}), &wav),
            400,
            40_000_020,
        ),
        (
            separate_body(
                &json!({"extra": {"output_format": "mp3", "output_sample_rate": 96000}}),
                &wav,
            ),
            400,
            40_000_020,
        ),
        (separate_body(&json!({}), &[]), 400, 40_000_011),
        (
            separate_body(&json!({"url": "http://192.168.0.1/a.mp3"}), &[]),
            400,
            40_000_024,
        ),
        (
            json!({"namespace": "MIDI", "data": "@@not base64@@"}),
            400,
            40_000_012,
        ),
        (
            json!({"namespace": "MIDI", "data": STANDARD.encode(b"RIFF....WAVEgarbage")}),
            400,
            40_000_012,
        ),
    ];
    for (body, http, code) in cases {
        let response = invoke(addr, &body);
        assert_status(&response, http, code);
        assert!(response.1["message"].is_string());
    }
    assert_status(
        &request(addr, "POST", "/api/v1/invoke", b"not json"),
        400,
        40_000_000,
    );
    assert_status(
        &request(addr, "GET", "/api/v1/invoke", b""),
        400,
        40_200_003,
    );
}

#[test]
fn speech_has_no_melody() {
    let server = Server::start(ServerConfig::default());
    let body =
        json!({"namespace": "MIDI", "data": STANDARD.encode(data("speech_arctic_a0007.wav"))});
    let response = invoke(server.addr, &body);
    assert_status(&response, 400, 40_000_010);
    assert!(response.1["message"].is_string());
}

#[test]
fn audio_over_ten_minutes_is_refused_before_separation() {
    let server = Server::start_double(ServerConfig::default());
    // 601 s of raw 16-bit mono PCM at 1 kHz.
    let pcm = vec![0u8; 601 * 1000 * 2];
    let payload = json!({"audio_info": {"format": "pcm", "sample_rate": 1000, "channel": 1}});
    let response = invoke(server.addr, &separate_body(&payload, &pcm));
    assert_status(&response, 400, 40_000_013);
}

#[test]
fn oversized_bodies_are_refused_while_reading() {
    let server = Server::start_double(ServerConfig::default());
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // Announce 200 MB but send only the start: the answer must not wait for the rest.
    write!(
        stream,
        "POST /api/v1/invoke HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: 200000000\r\nConnection: close\r\n\r\n{{\"data\":\""
    )
    .unwrap();
    let response = read_response(stream);
    assert_status(&response, 400, 40_000_016);
}

#[test]
fn keys_are_checked_when_configured() {
    let keys = HashMap::from([("k".to_owned(), "t".to_owned())]);
    let server = Server::start_double(ServerConfig {
        keys: Some(keys),
        ..ServerConfig::default()
    });
    let wav = data("rock_mix.wav");
    let mut body = separate_body(&json!({}), &wav);
    body["token"] = json!("wrong");
    assert_status(&invoke(server.addr, &body), 401, 40_200_002);
    body.as_object_mut().unwrap().remove("token");
    assert_status(&invoke(server.addr, &body), 401, 40_200_001);
    let target = "/api/v1/invoke?version=v4&token=t&appkey=k&namespace=MusicSourceSeparate";
    let body = json!({"payload": "{}", "data": STANDARD.encode(&wav)});
    let response = request(server.addr, "POST", target, body.to_string().as_bytes());
    assert_status(&response, 200, 20_000_000);
}

#[test]
fn concurrent_requests_each_get_their_own_answer() {
    let server = Server::start(ServerConfig {
        max_jobs: 1,
        ..ServerConfig::default()
    });
    let addr = server.addr;
    let wav = Arc::new(data("rock_mix.wav"));
    let clients: Vec<_> = (0..4u32)
        .map(|i| {
            let wav = wav.clone();
            std::thread::spawn(move || {
                // Each client asks for its own rate, so a mixed-up answer shows.
                let rate = 8_000 + 1_000 * i;
                let payload = json!({"extra": {"output_sample_rate": rate}});
                (rate, invoke(addr, &separate_body(&payload, &wav)))
            })
        })
        .collect();
    // One job slot and eight queue places: every request is served, one after another.
    let mut ids = std::collections::HashSet::new();
    for client in clients {
        let (rate, response) = client.join().unwrap();
        assert_status(&response, 200, 20_000_000);
        assert!(ids.insert(response.1["task_id"].as_str().unwrap().to_owned()));
        let (spec, frames) = wav_of(&response.1);
        assert_eq!(spec.sample_rate, rate);
        assert_eq!(frames, 3 * rate);
    }
    assert_eq!(ids.len(), 4);
}

#[test]
fn shutdown_finishes_requests_in_flight() {
    let mut server = Server::start(ServerConfig::default());
    let addr = server.addr;
    let body = separate_body(&json!({}), &data("rock_mix.wav"));
    let client = std::thread::spawn(move || invoke(addr, &body));
    std::thread::sleep(Duration::from_millis(300));
    server.shutdown();
    assert_status(&client.join().unwrap(), 200, 20_000_000);
    assert!(
        TcpStream::connect(addr).is_err(),
        "still accepting after shutdown"
    );
}

#[test]
fn healthz_answers() {
    let server = Server::start(ServerConfig::default());
    let mut stream = TcpStream::connect(server.addr).unwrap();
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("ok"));
}

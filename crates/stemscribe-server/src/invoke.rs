//! `POST /api/v1/invoke`: credentials, namespace and payload checks, then one job on a
//! blocking thread, answered in the API's response shape.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::BodyExt;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use stemscribe_engine::encode::UnknownFormat;
use stemscribe_engine::{
    decode, decode_raw_pcm, encode_to_vec, to_json, to_smf, Audio, DecodeError, DecodeOptions,
    Engine, EngineError, OutputFormat, OutputSpec, RawPcm, SeparationModel, SmfOptions,
    UnknownModel,
};

use crate::payload::{AudioInfo, MidiPayload, SeparatePayload};
use crate::prefix;
use crate::{FetchError, Fetcher, ServerConfig, Shared, Status, MAX_DATA_BYTES, MAX_DURATION_SECS};

const SEPARATE: &str = "MusicSourceSeparate";
const MIDI: &str = "MIDI";

/// Base64 of [`MAX_DATA_BYTES`] plus room for the JSON around it.
const MAX_BODY_BYTES: usize = MAX_DATA_BYTES / 3 * 4 + 1024 * 1024;
/// Bodies up to this size are read before anything else is checked; larger ones are read on
/// only once the credentials are checked and the request holds a place among the jobs.
pub(crate) const SMALL_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The request body; everything optional so that each absence gets its own status.
#[derive(Debug, Default, Deserialize)]
struct InvokeBody {
    appkey: Option<String>,
    token: Option<String>,
    namespace: Option<String>,
    /// A JSON text (the contract); a JSON object is accepted too.
    payload: Option<serde_json::Value>,
    data: Option<String>,
}

/// The response body, for success and failure alike.
#[derive(Debug, Serialize)]
struct InvokeResponse {
    task_id: String,
    namespace: String,
    data: String,
    payload: String,
    status_code: u32,
    status_text: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

/// A request that cannot be served, and why.
#[derive(Debug)]
pub struct Failure {
    pub(crate) status: Status,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(status: Status, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

/// What a job returns: base64 data and/or a payload text.
#[derive(Debug, Default)]
pub(crate) struct Output {
    data: Vec<u8>,
    payload: String,
}

pub async fn invoke(
    State(shared): State<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    body: Body,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let task_id = task_id();
    let mut namespace = query.get("namespace").cloned().unwrap_or_default();
    let result = handle(&shared, method, &headers, &query, body, &mut namespace).await;
    let (status, output, message) = match result {
        Ok(output) => (Status::Ok, output, None),
        Err(failure) => (failure.status, Output::default(), Some(failure.message)),
    };
    respond(task_id, namespace, status, output, message)
}

/// The API's response for `status`, in its JSON shape.
pub(crate) fn respond(
    task_id: String,
    namespace: String,
    status: Status,
    output: Output,
    message: Option<String>,
) -> Response {
    let response = InvokeResponse {
        task_id,
        namespace,
        data: STANDARD.encode(&output.data),
        payload: output.payload,
        status_code: status.code(),
        status_text: status.text(),
        message,
    };
    let http = StatusCode::from_u16(status.http()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (http, Json(response)).into_response()
}

/// An error answer outside `/api/v1/invoke` (unknown route, oversized head), in the same
/// JSON shape.
pub(crate) fn refuse(status: Status, message: impl Into<String>) -> Response {
    respond(
        task_id(),
        String::new(),
        status,
        Output::default(),
        Some(message.into()),
    )
}

/// Reads, checks and runs one request. The body is read in two steps: up to
/// [`SMALL_BODY_BYTES`] freely, the rest only once the credentials are known (from the query
/// or the start of the body) and the request holds a place among the running and queued jobs,
/// so stalled uploads cannot hold more than that many large bodies.
async fn handle(
    shared: &Arc<Shared>,
    method: Method,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    body: Body,
    namespace: &mut String,
) -> Result<Output, Failure> {
    if method != Method::POST {
        return Err(Failure::new(Status::InvalidMethod, "use POST"));
    }
    let config = &shared.config;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let query_credentials = check_query_credentials(config, query)?;
    let mut reader = BodyReader::new(body, config.body_timeout, config.body_idle_timeout);
    reader.read_until(SMALL_BODY_BYTES).await?;
    let mut place = None;
    if !reader.finished {
        if !query_credentials {
            check_large_body_start(config, &reader.bytes)?;
        }
        place = Some(take_place(shared)?);
        reader.read_until(MAX_BODY_BYTES).await?;
        if !reader.finished {
            return Err(too_large());
        }
    }
    let Accepted { job, source } = accept(
        config,
        shared.fetcher.as_ref(),
        query,
        &reader.into_bytes(),
        namespace,
    )?;
    let place = match place {
        Some(place) => place,
        None => take_place(shared)?,
    };
    let permit =
        match tokio::time::timeout(config.queue_wait, shared.jobs.clone().acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(Failure::new(Status::ServerError, "the server is stopping")),
            Err(_) => {
                return Err(Failure::new(
                    Status::ExceededQuota,
                    format!(
                        "no job slot came free within {} s; retry later",
                        config.queue_wait.as_secs()
                    ),
                ))
            }
        };
    let input = match source {
        Source::Url { url, fetcher } => {
            Input::Bytes(fetcher.fetch(&url).await.map_err(download_failure)?)
        }
        Source::Data(text) => Input::Base64(text),
    };
    let engine = shared.engine.clone();
    run_blocking(config.job_timeout, move || {
        let result = job.run(&engine, input);
        drop((permit, place));
        result
    })
    .await
}

/// Runs a job's `work` on a blocking thread, hands the memory it freed back to the system,
/// and waits for it at most `limit` (after which the job fails; the thread runs on).
pub(crate) async fn run_blocking<T: Send + 'static>(
    limit: Duration,
    work: impl FnOnce() -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    let work = tokio::task::spawn_blocking(move || {
        let result = work();
        return_freed_memory();
        result
    });
    match tokio::time::timeout(limit, work).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(Failure::new(
            Status::ServerError,
            "the job failed unexpectedly",
        )),
        Err(_) => Err(Failure::new(
            Status::ServerError,
            format!("the job took longer than {} s", limit.as_secs()),
        )),
    }
}

/// Checks credentials given in the query string, before any of the body is read; true when
/// they were given (and are right).
pub(crate) fn check_query_credentials(
    config: &ServerConfig,
    query: &HashMap<String, String>,
) -> Result<bool, Failure> {
    match (query.get("appkey"), query.get("token")) {
        (Some(appkey), Some(token)) if !appkey.is_empty() && !token.is_empty() => {
            authorise(
                config.keys.as_ref(),
                Some(appkey.clone()),
                Some(token.clone()),
            )?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// For a body over [`SMALL_BODY_BYTES`] without credentials in the query: with keys
/// configured, its start must carry them, before `data`.
pub(crate) fn check_large_body_start(config: &ServerConfig, start: &[u8]) -> Result<(), Failure> {
    if config.keys.is_none() {
        return Ok(());
    }
    let found = prefix::credentials(start);
    if found.appkey.is_none() || found.token.is_none() {
        return Err(Failure::new(
            Status::InvalidAccess,
            format!(
                "a request body over {} MB must carry appkey and token in the query string \
                 or before `data`",
                SMALL_BODY_BYTES >> 20
            ),
        ));
    }
    authorise(config.keys.as_ref(), found.appkey, found.token)
}

/// A place among the running and queued jobs, or 429 at once when every place is taken.
pub(crate) fn take_place(shared: &Shared) -> Result<OwnedSemaphorePermit, Failure> {
    shared.places.clone().try_acquire_owned().map_err(|_| {
        Failure::new(
            Status::ExceededQuota,
            format!(
                "{} jobs are running and {} waiting; retry later",
                shared.config.max_jobs, shared.config.queue
            ),
        )
    })
}

fn too_large() -> Failure {
    Failure::new(
        Status::ExceededDataSize,
        format!(
            "the request is larger than {} MB of audio allows",
            MAX_DATA_BYTES >> 20
        ),
    )
}

/// Hands memory freed by a finished job back to the system: glibc keeps freed pages in its
/// arenas otherwise, and a burst of large requests would leave the process at its peak.
fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A request body read in steps, each bounded in size and all by one deadline.
pub(crate) struct BodyReader {
    body: Body,
    bytes: Vec<u8>,
    finished: bool,
    /// When the whole body must have arrived (`body_timeout` from the start).
    deadline: Instant,
    /// The total limit, for the message.
    total: Duration,
    /// Longest wait for the next piece of the body.
    idle: Duration,
}

impl BodyReader {
    pub(crate) fn new(body: Body, total: Duration, idle: Duration) -> Self {
        Self {
            body,
            bytes: Vec::new(),
            finished: false,
            deadline: Instant::now() + total,
            total,
            idle,
        }
    }

    /// Reads until the body ends or holds more than `limit` bytes.
    pub(crate) async fn read_until(&mut self, limit: usize) -> Result<(), Failure> {
        while !self.finished && self.bytes.len() <= limit {
            let stalled = Instant::now() + self.idle;
            let frame = tokio::time::timeout_at(stalled.min(self.deadline), self.body.frame())
                .await
                .map_err(|_| {
                    let why = if stalled < self.deadline {
                        format!("sent nothing for {} s", self.idle.as_secs_f64())
                    } else {
                        format!("did not arrive within {} s", self.total.as_secs_f64())
                    };
                    Failure::new(Status::ClientError, format!("the request body {why}"))
                })?;
            match frame {
                None => self.finished = true,
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        if self.bytes.len() + data.len() > MAX_BODY_BYTES {
                            return Err(too_large());
                        }
                        self.bytes.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => {
                    return Err(Failure::new(
                        Status::ClientError,
                        format!("cannot read the request body: {e}"),
                    ))
                }
            }
        }
        Ok(())
    }

    /// Whether the whole body has been read.
    pub(crate) fn finished(&self) -> bool {
        self.finished
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// Where a request's audio comes from.
enum Source {
    /// Base64 in `data`.
    Data(String),
    /// `payload.url`, already checked against the fetch rules, and who fetches it.
    Url { url: String, fetcher: Fetcher },
}

/// The audio of a request, ready for the blocking job.
enum Input {
    /// Base64 text, decoded on the job's thread.
    Base64(String),
    /// Bytes fetched from `payload.url`.
    Bytes(Vec<u8>),
}

/// Picks `data`, else a fetchable `payload.url`, else the status for what is missing.
fn source_of(
    fetcher: Option<&Fetcher>,
    data: String,
    url: Option<&str>,
) -> Result<Source, Failure> {
    if !data.is_empty() {
        return Ok(Source::Data(data));
    }
    match url {
        None => Err(Failure::new(
            Status::EmptyData,
            "`data` is empty and there is no payload.url",
        )),
        Some(url) if url.trim().is_empty() => Err(Failure::new(
            Status::EmptyUrl,
            "`data` is empty, so payload.url is expected, but it is empty",
        )),
        Some(url) => match fetcher {
            None => Err(Failure::new(
                Status::FailedDownload,
                "this server does not fetch payload.url: fetching is off unless its operator \
                 enables it (`stemscribe serve --fetch-host HOST`); send the audio as base64 \
                 in `data`",
            )),
            Some(fetcher) => {
                fetcher.check(url).map_err(download_failure)?;
                Ok(Source::Url {
                    url: url.to_owned(),
                    fetcher: fetcher.clone(),
                })
            }
        },
    }
}

fn download_failure(error: FetchError) -> Failure {
    match error {
        FetchError::TooLarge { limit } if limit >= MAX_DATA_BYTES => Failure::new(
            Status::ExceededDataSize,
            "the audio at payload.url is larger than 100 MB",
        ),
        other => Failure::new(
            Status::FailedDownload,
            format!("payload.url was not fetched: {other}"),
        ),
    }
}

/// A request that passed every check that needs no heavy work.
pub(crate) struct Accepted {
    job: Job,
    source: Source,
}

/// Reads a request's body and query and checks credentials, namespace, payload and where the
/// audio comes from, without decoding it; `namespace` is set as soon as it is known, so that
/// refusals can echo it.
pub(crate) fn accept(
    config: &ServerConfig,
    fetcher: Option<&Fetcher>,
    query: &HashMap<String, String>,
    body: &[u8],
    namespace: &mut String,
) -> Result<Accepted, Failure> {
    let request: InvokeBody = serde_json::from_slice(body).map_err(|e| {
        Failure::new(
            Status::ClientError,
            format!("the body is not the invoke JSON: {e}"),
        )
    })?;
    let field = |own: &Option<String>, name: &str| {
        own.clone()
            .filter(|v| !v.is_empty())
            .or_else(|| query.get(name).cloned())
            .filter(|v| !v.is_empty())
    };
    if let Some(ns) = field(&request.namespace, "namespace") {
        *namespace = ns;
    }
    authorise(
        config.keys.as_ref(),
        field(&request.appkey, "appkey"),
        field(&request.token, "token"),
    )?;
    let job = match namespace.as_str() {
        SEPARATE => Job::Separate(read_payload(&request.payload, true)?),
        MIDI => Job::Midi(read_payload(&request.payload, false)?),
        "" => return Err(Failure::new(Status::DeniedNamespace, "no namespace given")),
        other => {
            return Err(Failure::new(
                Status::DeniedNamespace,
                format!("unknown namespace `{other}` (known: {SEPARATE}, {MIDI})"),
            ))
        }
    };
    job.check()?;
    let source = source_of(fetcher, request.data.unwrap_or_default(), job.url())?;
    Ok(Accepted { job, source })
}

pub(crate) fn authorise(
    keys: Option<&HashMap<String, String>>,
    appkey: Option<String>,
    token: Option<String>,
) -> Result<(), Failure> {
    let Some(keys) = keys else {
        return Ok(());
    };
    let (Some(appkey), Some(token)) = (appkey, token) else {
        return Err(Failure::new(
            Status::InvalidAccess,
            "appkey and token are required",
        ));
    };
    if keys.get(&appkey) == Some(&token) {
        Ok(())
    } else {
        Err(Failure::new(Status::DeniedAccess, "wrong appkey or token"))
    }
}

/// Parses `payload` (a JSON text, or a JSON object) into `T`; absent or empty is the
/// defaults unless `required`.
fn read_payload<T: DeserializeOwned + Default>(
    payload: &Option<serde_json::Value>,
    required: bool,
) -> Result<T, Failure> {
    let value = match payload {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(text)) if text.trim().is_empty() => None,
        Some(serde_json::Value::String(text)) => Some(
            serde_json::from_str::<serde_json::Value>(text).map_err(|e| {
                Failure::new(Status::IllegalPayload, format!("payload is not JSON: {e}"))
            })?,
        ),
        Some(value) => Some(value.clone()),
    };
    match value {
        None if required => Err(Failure::new(Status::EmptyPayload, "payload is required")),
        None => Ok(T::default()),
        Some(value) => serde_json::from_value(value).map_err(|e| {
            Failure::new(
                Status::IllegalPayload,
                format!("payload has a wrong type: {e}"),
            )
        }),
    }
}

/// One request's work.
#[derive(Debug)]
enum Job {
    Separate(SeparatePayload),
    Midi(MidiPayload),
}

impl Job {
    fn url(&self) -> Option<&str> {
        match self {
            Self::Separate(p) => p.url.as_deref(),
            Self::Midi(p) => p.url.as_deref(),
        }
    }

    fn audio_info(&self) -> Option<&AudioInfo> {
        match self {
            Self::Separate(p) => p.audio_info.as_ref(),
            Self::Midi(p) => p.audio_info.as_ref(),
        }
    }

    /// Checks every payload value before any heavy work.
    fn check(&self) -> Result<(), Failure> {
        if let Some(info) = self.audio_info() {
            match info.format.as_deref() {
                None | Some("wav" | "mp3" | "aac" | "m4a" | "flac" | "ogg") => {}
                Some("pcm") if info.sample_rate.is_some() && info.channel.is_some() => {}
                Some("pcm") => {
                    return Err(Failure::new(
                        Status::InvalidPayload,
                        "pcm needs audio_info.sample_rate and audio_info.channel",
                    ))
                }
                Some(other) => {
                    return Err(Failure::new(
                        Status::InvalidPayload,
                        format!("unknown audio_info.format `{other}`"),
                    ))
                }
            }
        }
        if let Self::Separate(payload) = self {
            output_of(payload)?;
        }
        Ok(())
    }

    fn run(self, engine: &Engine, input: Input) -> Result<Output, Failure> {
        let bytes = match input {
            Input::Base64(text) => decode_base64(&text)?,
            Input::Bytes(bytes) => bytes,
        };
        let audio = decode_audio(bytes, self.audio_info())?;
        match self {
            Self::Separate(payload) => {
                let (model, spec) = output_of(&payload)?;
                let stem = engine
                    .separate(&audio, model, &mut |_| {})
                    .map_err(server_error)?;
                let (bytes, _) = encode_to_vec(stem, &spec).map_err(|e| {
                    Failure::new(
                        Status::ServerError,
                        format!("cannot encode the output: {e}"),
                    )
                })?;
                Ok(Output {
                    data: bytes,
                    payload: String::new(),
                })
            }
            Self::Midi(payload) => {
                let melody = engine
                    .transcribe(&audio, &mut |_| {})
                    .map_err(|e| match e {
                        EngineError::NoOutput(why) => {
                            Failure::new(Status::NoOutput, why.to_string())
                        }
                        other => server_error(other),
                    })?;
                if payload.extra.and_then(|e| e.midi).unwrap_or(true) {
                    Ok(Output {
                        data: to_smf(&melody, &SmfOptions::default()),
                        payload: String::new(),
                    })
                } else {
                    Ok(Output {
                        data: Vec::new(),
                        payload: to_json(&melody),
                    })
                }
            }
        }
    }
}

/// The model and output format a separation payload asks for.
fn output_of(payload: &SeparatePayload) -> Result<(SeparationModel, OutputSpec), Failure> {
    let name = payload.model.as_deref().unwrap_or("2track_vocal");
    let model: SeparationModel = name
        .parse()
        .map_err(|e: UnknownModel| Failure::new(Status::InvalidPayload, e.to_string()))?;
    let extra = payload.extra.as_ref();
    let format = match extra.and_then(|e| e.output_format.as_deref()) {
        None => OutputFormat::default(),
        Some(name) => name
            .parse()
            .map_err(|e: UnknownFormat| Failure::new(Status::InvalidPayload, e.to_string()))?,
    };
    let sample_rate = extra.and_then(|e| e.output_sample_rate).unwrap_or(44_100);
    if !(1_000..=384_000).contains(&sample_rate) {
        return Err(Failure::new(
            Status::InvalidPayload,
            "output_sample_rate must be 1000-384000 Hz",
        ));
    }
    let spec = OutputSpec {
        sample_rate,
        channels: extra.and_then(|e| e.output_channel).unwrap_or(1) as usize,
        format,
    };
    spec.check()
        .map_err(|e| Failure::new(Status::InvalidPayload, e.to_string()))?;
    Ok((model, spec))
}

fn decode_base64(data: &str) -> Result<Vec<u8>, Failure> {
    if data.len() / 4 * 3 > MAX_DATA_BYTES + 3 {
        return Err(Failure::new(
            Status::ExceededDataSize,
            "the audio is larger than 100 MB",
        ));
    }
    let bytes = if data.bytes().any(|b| b.is_ascii_whitespace()) {
        let compact: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        STANDARD.decode(compact)
    } else {
        STANDARD.decode(data)
    }
    .map_err(|e| {
        Failure::new(
            Status::IllegalData,
            format!("data is not standard base64: {e}"),
        )
    })?;
    Ok(bytes)
}

pub(crate) fn decode_audio(bytes: Vec<u8>, info: Option<&AudioInfo>) -> Result<Audio, Failure> {
    if bytes.len() > MAX_DATA_BYTES {
        return Err(Failure::new(
            Status::ExceededDataSize,
            "the audio is larger than 100 MB",
        ));
    }
    let decoded = match info {
        Some(AudioInfo {
            format: Some(format),
            sample_rate: Some(sample_rate),
            channel: Some(channels),
        }) if format == "pcm" => decode_raw_pcm(
            &bytes,
            RawPcm {
                sample_rate: *sample_rate,
                channels: *channels,
            },
            Some(MAX_DURATION_SECS),
        ),
        _ => decode(
            bytes,
            &DecodeOptions {
                format_hint: info.and_then(|i| i.format.clone()),
                max_duration_secs: Some(MAX_DURATION_SECS),
                ..DecodeOptions::default()
            },
        ),
    };
    decoded.map_err(|e| match e {
        DecodeError::TooLong { .. } => Failure::new(Status::ExceededDuration, e.to_string()),
        other => Failure::new(
            Status::IllegalData,
            format!("cannot decode the audio: {other}"),
        ),
    })
}

fn server_error(error: EngineError) -> Failure {
    Failure::new(Status::ServerError, error.to_string())
}

/// A process-unique id: start time and a counter, hex.
fn task_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static START: std::sync::OnceLock<u128> = std::sync::OnceLock::new();
    let start = START.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:016x}{n:08x}", *start as u64)
}

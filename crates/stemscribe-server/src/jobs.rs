//! The jobs API beside `invoke`: `POST /api/v1/jobs` takes an audio file as the raw body and
//! answers at once with a job id; the job separates and/or transcribes on a blocking thread
//! under the same slots, places and timeouts as `invoke`, and its results are files on disk,
//! written exactly as the command line writes them, until the job is deleted or expires.
//!
//! Invariants: a file is listed only once it is complete (written under a temporary name,
//! then renamed); the bytes jobs hold on disk never exceed [`ServerConfig::job_storage`]
//! (space is reserved before anything is written); a failed, expired or deleted job leaves
//! no file behind.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::io::Write as _;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use stemscribe_engine::{
    decode, encode, to_json, to_smf, Audio, DecodeOptions, EngineError, OutputFormat, OutputSpec,
    SeparationModel, SmfOptions, Stem, WavSampleFormat, PROCESSING_RATE,
};

use crate::invoke::{authorise, decode_audio, refuse, run_blocking, BodyReader, Failure};
use crate::{ServerConfig, Shared, Status, MAX_DATA_BYTES};

/// Bytes reserved for a job's `melody.mid` and `melody.json`.
const MELODY_BYTES: u64 = 4 << 20;
/// Bytes a WAV file may carry beyond its samples (its header).
const WAV_HEADER_BYTES: u64 = 4096;

/// What a job makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Separation {
    /// One of the invoke API's models: every stem of its family, as `separate --stems` writes them.
    Model(SeparationModel),
    /// A model file installed with `stemscribe models add`, by name.
    Installed(String),
}

/// A job's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum JobState {
    Queued,
    Running,
    Done,
    Failed,
}

/// One result file of a job.
#[derive(Debug, Clone)]
struct JobFile {
    name: String,
    path: PathBuf,
    bytes: u64,
}

/// What the server knows of one job.
#[derive(Debug)]
struct Job {
    /// The appkey that made it, when keys are configured: only it may see the job.
    owner: Option<String>,
    /// The file name the client gave (`name=`), shown back.
    input: String,
    separate: Option<String>,
    midi: bool,
    state: JobState,
    stage: &'static str,
    progress: f32,
    error: Option<Failure>,
    files: Vec<JobFile>,
    /// Where its files live.
    dir: PathBuf,
    /// Bytes reserved on disk for it (files written and about to be written).
    reserved: u64,
    /// When it finished, for expiry.
    finished: Option<Instant>,
}

/// Every job, and the disk space they hold.
#[derive(Debug)]
pub(crate) struct JobStore {
    root: PathBuf,
    ttl: Duration,
    capacity: u64,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    jobs: HashMap<String, Job>,
    /// Sum of every job's `reserved`.
    used: u64,
}

impl JobStore {
    /// A store under a new folder of `parent` (the system's temporary folder by default);
    /// the folder is removed when the store is dropped.
    pub(crate) fn new(config: &ServerConfig) -> std::io::Result<Self> {
        let parent = config.job_dir.clone().unwrap_or_else(std::env::temp_dir);
        let root = parent.join(format!(
            "stemscribe-jobs-{}-{}",
            std::process::id(),
            random_id()
        ));
        std::fs::create_dir_all(&root)?;
        Ok(Self {
            root,
            ttl: config.job_ttl,
            capacity: config.job_storage,
            inner: Mutex::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reserves `bytes` for job `id`, or says why not (the store is full, or the job is gone).
    fn reserve(&self, id: &str, bytes: u64) -> Result<(), Failure> {
        let mut inner = self.lock();
        if inner.used + bytes > self.capacity {
            return Err(storage_full(inner.used, self.capacity));
        }
        let Some(job) = inner.jobs.get_mut(id) else {
            return Err(Failure::new(Status::NotFound, "the job was deleted"));
        };
        job.reserved += bytes;
        inner.used += bytes;
        Ok(())
    }

    /// Gives back `bytes` of job `id`'s reservation.
    fn release(&self, id: &str, bytes: u64) {
        let mut inner = self.lock();
        if let Some(job) = inner.jobs.get_mut(id) {
            let bytes = bytes.min(job.reserved);
            job.reserved -= bytes;
            inner.used -= bytes;
        }
    }

    /// Changes job `id` while it exists; false when it was deleted.
    fn update(&self, id: &str, change: impl FnOnce(&mut Job)) -> bool {
        let mut inner = self.lock();
        match inner.jobs.get_mut(id) {
            Some(job) => {
                change(job);
                true
            }
            None => false,
        }
    }

    /// Removes job `id` and its files; false when there was none.
    fn remove(&self, id: &str) -> bool {
        let removed = {
            let mut inner = self.lock();
            let job = inner.jobs.remove(id);
            if let Some(job) = &job {
                inner.used -= job.reserved;
            }
            job
        };
        match removed {
            Some(job) => {
                let _ = std::fs::remove_dir_all(&job.dir);
                true
            }
            None => false,
        }
    }

    /// Removes jobs that finished more than the time to live ago.
    pub(crate) fn expire(&self) {
        let expired: Vec<String> = self
            .lock()
            .jobs
            .iter()
            .filter(|(_, job)| job.finished.is_some_and(|at| at.elapsed() >= self.ttl))
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.remove(&id);
        }
    }

    /// How often [`JobStore::expire`] should run.
    pub(crate) fn sweep_interval(&self) -> Duration {
        (self.ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(30))
    }
}

impl Drop for JobStore {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn storage_full(used: u64, capacity: u64) -> Failure {
    Failure::new(
        Status::ExceededQuota,
        format!(
            "the server is busy: its jobs hold {} of the {} MB they may keep on disk; retry \
             when jobs finish, or delete finished ones",
            used >> 20,
            capacity >> 20
        ),
    )
}

/// A job as `GET /api/v1/jobs/{id}` shows it.
#[derive(Debug, Serialize)]
struct JobView {
    id: String,
    input: String,
    separate: Option<String>,
    midi: bool,
    state: JobState,
    stage: &'static str,
    progress: f32,
    error: Option<ErrorView>,
    files: Vec<FileView>,
}

#[derive(Debug, Serialize)]
struct ErrorView {
    status_code: u32,
    status_text: &'static str,
    message: String,
}

#[derive(Debug, Serialize)]
struct FileView {
    name: String,
    url: String,
}

fn view(id: &str, job: &Job) -> JobView {
    JobView {
        id: id.to_owned(),
        input: job.input.clone(),
        separate: job.separate.clone(),
        midi: job.midi,
        state: job.state,
        stage: job.stage,
        progress: job.progress,
        error: job.error.as_ref().map(|failure| ErrorView {
            status_code: failure.status.code(),
            status_text: failure.status.text(),
            message: failure.message.clone(),
        }),
        files: job
            .files
            .iter()
            .filter(|file| !file.name.ends_with(".mp3"))
            .map(|file| FileView {
                name: file.name.clone(),
                url: format!("/api/v1/jobs/{id}/files/{}", file.name),
            })
            .collect(),
    }
}

/// A random 128-bit id, hex.
fn random_id() -> String {
    let half = || {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        hasher.finish()
    };
    format!("{:016x}{:016x}", half(), half())
}

type QueryMap = Result<Query<HashMap<String, String>>, QueryRejection>;

/// The appkey a request is made with, once its credentials are checked.
pub(crate) fn caller(
    config: &ServerConfig,
    query: &HashMap<String, String>,
) -> Result<Option<String>, Failure> {
    let appkey = query.get("appkey").filter(|v| !v.is_empty()).cloned();
    let token = query.get("token").filter(|v| !v.is_empty()).cloned();
    authorise(config.keys.as_ref(), appkey.clone(), token)?;
    Ok(config.keys.as_ref().and(appkey))
}

fn failure_response(failure: Failure) -> Response {
    refuse(failure.status, failure.message)
}

/// Reads `separate` and `midi` from the query; `installed` are the installed model files' names.
pub(crate) fn what_to_make(
    installed: &[String],
    query: &HashMap<String, String>,
) -> Result<(Option<Separation>, bool), Failure> {
    let midi = match query.get("midi").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(Failure::new(
                Status::InvalidPayload,
                format!("midi must be true or false, not `{other}`"),
            ))
        }
    };
    let separation = match query.get("separate").map(String::as_str) {
        None | Some("") => None,
        Some(name) => Some(match name.parse::<SeparationModel>() {
            Ok(model) => Separation::Model(model),
            Err(_) if installed.iter().any(|known| known == name) => {
                Separation::Installed(name.to_owned())
            }
            Err(_) => {
                return Err(Failure::new(
                    Status::InvalidPayload,
                    format!(
                        "unknown model `{name}`: use 2track_vocal, 2track_acc, bs_4track_vocal, \
                         bs_4track_acc{}",
                        if installed.is_empty() {
                            String::new()
                        } else {
                            format!(" or an installed model ({})", installed.join(", "))
                        }
                    ),
                ));
            }
        }),
    };
    if separation.is_none() && !midi {
        return Err(Failure::new(
            Status::InvalidPayload,
            "ask for something: separate=MODEL, midi=true, or both",
        ));
    }
    Ok((separation, midi))
}

/// `POST /api/v1/jobs?separate=MODEL&midi=true|false[&name=FILE]`: the audio file is the body.
pub(crate) async fn create(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    query: QueryMap,
    body: Body,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let mut body = Some(body);
    match create_job(&shared, &headers, &query, &mut body).await {
        Ok(id) => (StatusCode::ACCEPTED, Json(serde_json::json!({ "id": id }))).into_response(),
        Err(failure) => {
            // Refused before its body was read: read (and drop) the start of it, so that a
            // client still sending a small file gets the answer instead of a reset connection.
            if let Some(body) = body {
                let config = &shared.config;
                let mut reader = BodyReader::new(body, DRAIN_TIME, config.body_idle_timeout);
                let _ = reader.read_until(DRAIN_BYTES).await;
            }
            failure_response(failure)
        }
    }
}

/// How much of a refused request's body is read before the answer, and for how long at most.
const DRAIN_BYTES: usize = 16 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Checks a submission, reads its body (taking it out of `body`) and starts its job.
async fn create_job(
    shared: &Arc<Shared>,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    body: &mut Option<Body>,
) -> Result<String, Failure> {
    let config = &shared.config;
    let owner = caller(config, query)?;
    let (separation, midi) = what_to_make(&shared.engine.installed_models(), query)?;
    let store = &shared.store;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_DATA_BYTES as u64) {
        return Err(too_large());
    }
    if let Some(length) = declared {
        let used = store.lock().used;
        if used + length > store.capacity {
            return Err(storage_full(used, store.capacity));
        }
    }
    // A place among the running and queued jobs before the body is read, so that stalled
    // uploads cannot hold more bodies than there are places.
    let place = crate::invoke::take_place(shared)?;
    let Some(body) = body.take() else {
        return Err(Failure::new(
            Status::ServerError,
            "the request body was already read",
        ));
    };
    let mut reader = BodyReader::new(body, config.body_timeout, config.body_idle_timeout);
    reader.read_until(MAX_DATA_BYTES).await?;
    if !reader.finished() {
        return Err(too_large());
    }
    let bytes = reader.into_bytes();
    if bytes.is_empty() {
        return Err(Failure::new(
            Status::EmptyData,
            "the request body (the audio file) is empty",
        ));
    }
    let id = random_id();
    let dir = store.root.join(&id);
    std::fs::create_dir_all(&dir).map_err(|e| {
        Failure::new(
            Status::ServerError,
            format!("cannot make the job's folder: {e}"),
        )
    })?;
    {
        let mut inner = store.lock();
        inner.jobs.insert(
            id.clone(),
            Job {
                owner,
                input: query.get("name").cloned().unwrap_or_default(),
                separate: query.get("separate").filter(|s| !s.is_empty()).cloned(),
                midi,
                state: JobState::Queued,
                stage: "queued",
                progress: 0.0,
                error: None,
                files: Vec::new(),
                dir: dir.clone(),
                reserved: 0,
                finished: None,
            },
        );
    }
    // The upload counts against the storage until it is decoded.
    if let Err(failure) = store.reserve(&id, bytes.len() as u64) {
        store.remove(&id);
        return Err(failure);
    }
    let shared = shared.clone();
    let job_id = id.clone();
    tokio::spawn(async move {
        let id = job_id;
        let store = &shared.store;
        let Ok(permit) = shared.jobs.clone().acquire_owned().await else {
            finish(
                store,
                &id,
                Err(Failure::new(Status::ServerError, "the server is stopping")),
            );
            return;
        };
        store.update(&id, |job| {
            job.state = JobState::Running;
            job.stage = "decoding";
        });
        let result = {
            let shared = shared.clone();
            let id = id.clone();
            run_blocking(shared.config.job_timeout, move || {
                let result = run(&shared, &id, bytes, separation.as_ref(), midi);
                drop((permit, place));
                result
            })
            .await
        };
        finish(store, &id, result);
    });
    Ok(id)
}

/// Records how job `id` ended. A failed job keeps no files, unless only its melody failed
/// for want of singing: then its stems stay and the error says why there is no melody.
fn finish(store: &JobStore, id: &str, result: Result<(), Failure>) {
    let mut leftover = Vec::new();
    let mut freed = 0;
    store.update(id, |job| {
        if job.state == JobState::Done || job.state == JobState::Failed {
            return;
        }
        job.finished = Some(Instant::now());
        job.progress = 1.0;
        match result {
            Ok(()) => {
                job.state = JobState::Done;
                job.stage = "done";
            }
            Err(failure) if failure.status == Status::NoOutput && !job.files.is_empty() => {
                job.state = JobState::Done;
                job.stage = "done";
                job.error = Some(failure);
            }
            Err(failure) => {
                job.state = JobState::Failed;
                job.stage = "failed";
                job.error = Some(failure);
                leftover = std::mem::take(&mut job.files);
                freed = job.reserved;
            }
        }
    });
    for file in &leftover {
        let _ = std::fs::remove_file(&file.path);
    }
    store.release(id, freed);
}

/// How far along a job is: the share of `stage_index` of `stages`, and `fraction` of it.
fn overall(stage_index: usize, stages: usize, fraction: f32) -> f32 {
    let start = 0.05;
    let span = 0.95 / stages.max(1) as f32;
    (start + span * (stage_index as f32 + fraction.clamp(0.0, 1.0))).min(0.99)
}

/// The stems' delivery format: what `separate --stems` writes.
fn stem_spec(format: OutputFormat) -> OutputSpec {
    OutputSpec {
        sample_rate: PROCESSING_RATE,
        channels: 2,
        format,
    }
}

/// Decodes, separates and transcribes on a blocking thread, writing each result as it comes.
fn run(
    shared: &Shared,
    id: &str,
    bytes: Vec<u8>,
    separation: Option<&Separation>,
    midi: bool,
) -> Result<(), Failure> {
    let store = &shared.store;
    let engine = &shared.engine;
    let upload = bytes.len() as u64;
    let audio = decode_audio(bytes, None);
    store.release(id, upload);
    let audio = audio?;
    let stages = usize::from(separation.is_some()) + usize::from(midi);
    let report = |stage: &'static str, index: usize, fraction: f32| {
        store.update(id, |job| {
            job.stage = stage;
            job.progress = overall(index, stages, fraction);
        })
    };
    if let Some(separation) = separation {
        report("separating", 0, 0.0);
        let spec = stem_spec(OutputFormat::Wav(WavSampleFormat::Float32));
        let stem_bytes = audio.frames() as u64 * 8 + WAV_HEADER_BYTES;
        let mut failure = None;
        let mut write = |stem: Stem| -> ControlFlow<()> {
            let name = format!("{}.wav", stem.name());
            match write_file(store, id, &name, stem_bytes, |file| {
                encode(stem.audio, &spec, file)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }) {
                Ok(()) => ControlFlow::Continue(()),
                Err(error) => {
                    failure = Some(error);
                    ControlFlow::Break(())
                }
            }
        };
        let mut progress = |p: stemscribe_engine::Progress| {
            if p.total > 0 {
                report("separating", 0, p.done as f32 / p.total as f32);
            }
        };
        let separated = match separation {
            Separation::Model(model) => {
                engine.separate_each(&audio, *model, &mut progress, &mut write)
            }
            Separation::Installed(name) => engine
                .separate_installed(name, &audio, &mut progress)
                .map(|stems| {
                    for stem in stems {
                        if write(stem).is_break() {
                            break;
                        }
                    }
                }),
        };
        separated.map_err(engine_failure)?;
        if let Some(failure) = failure {
            return Err(failure);
        }
    }
    if midi {
        let index = usize::from(separation.is_some());
        report("transcribing", index, 0.0);
        let melody = engine
            .transcribe(&audio, &mut |p| {
                if p.total > 0 {
                    report("transcribing", index, p.done as f32 / p.total as f32);
                }
            })
            .map_err(engine_failure)?;
        let smf = to_smf(&melody, &SmfOptions::default());
        let json = format!("{}\n", to_json(&melody));
        store.reserve(id, MELODY_BYTES)?;
        let written = write_file(store, id, "melody.mid", 0, |file| {
            file.write_all(&smf).map_err(|e| e.to_string())
        })
        .and_then(|()| {
            write_file(store, id, "melody.json", 0, |file| {
                file.write_all(json.as_bytes()).map_err(|e| e.to_string())
            })
        });
        store.release(id, MELODY_BYTES);
        written?;
    }
    Ok(())
}

fn engine_failure(error: EngineError) -> Failure {
    match error {
        EngineError::NoOutput(why) => Failure::new(Status::NoOutput, why.to_string()),
        EngineError::UserModelMissing { name, .. } => Failure::new(
            Status::InvalidPayload,
            format!("no model is installed as `{name}`"),
        ),
        other => Failure::new(Status::ServerError, other.to_string()),
    }
}

/// Writes job `id`'s file `name` under a temporary name with `fill`, then renames it and
/// lists it; `reserve` bytes are reserved first (0: already reserved by the caller) and
/// the reservation is trimmed to the file's size.
fn write_file(
    store: &JobStore,
    id: &str,
    name: &str,
    reserve: u64,
    fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> Result<(), String>,
) -> Result<(), Failure> {
    if reserve > 0 {
        store.reserve(id, reserve)?;
    }
    let Some(dir) = store.lock().jobs.get(id).map(|job| job.dir.clone()) else {
        return Err(Failure::new(Status::NotFound, "the job was deleted"));
    };
    let path = dir.join(name);
    let partial = dir.join(format!(".{name}.{}.partial", random_id()));
    let written = (|| {
        let file = std::fs::File::create(&partial).map_err(|e| e.to_string())?;
        let mut writer = std::io::BufWriter::new(file);
        fill(&mut writer)?;
        writer
            .into_inner()
            .map_err(|e| e.to_string())?
            .sync_all()
            .map_err(|e| e.to_string())?;
        std::fs::rename(&partial, &path).map_err(|e| e.to_string())
    })();
    if let Err(error) = written {
        let _ = std::fs::remove_file(&partial);
        store.release(id, reserve);
        return Err(Failure::new(
            Status::ServerError,
            format!("cannot write {name}: {error}"),
        ));
    }
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(reserve);
    if reserve > 0 {
        store.release(id, reserve.saturating_sub(bytes));
    }
    let listed = store.update(id, |job| {
        job.files.retain(|file| file.name != name);
        job.files.push(JobFile {
            name: name.to_owned(),
            path: path.clone(),
            bytes,
        });
    });
    if !listed {
        let _ = std::fs::remove_file(&path);
        return Err(Failure::new(Status::NotFound, "the job was deleted"));
    }
    Ok(())
}

pub(crate) fn too_large() -> Failure {
    Failure::new(
        Status::ExceededDataSize,
        format!("the audio file is larger than {} MB", MAX_DATA_BYTES >> 20),
    )
}

/// Looks up job `id` for the caller, or answers 404 (also for another appkey's job).
fn with_job<T>(
    shared: &Shared,
    query: &HashMap<String, String>,
    id: &str,
    read: impl FnOnce(&Job) -> T,
) -> Result<T, Failure> {
    let owner = caller(&shared.config, query)?;
    let inner = shared.store.lock();
    match inner.jobs.get(id) {
        Some(job) if job.owner == owner => Ok(read(job)),
        _ => Err(Failure::new(Status::NotFound, format!("no job {id}"))),
    }
}

/// `GET /api/v1/jobs`: the caller's jobs, oldest first.
pub(crate) async fn list(State(shared): State<Arc<Shared>>, query: QueryMap) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let owner = match caller(&shared.config, &query) {
        Ok(owner) => owner,
        Err(failure) => return failure_response(failure),
    };
    let inner = shared.store.lock();
    let mut jobs: Vec<(&String, &Job)> = inner
        .jobs
        .iter()
        .filter(|(_, job)| job.owner == owner)
        .collect();
    jobs.sort_by_key(|(id, _)| (*id).clone());
    let views: Vec<JobView> = jobs.into_iter().map(|(id, job)| view(id, job)).collect();
    Json(serde_json::json!({ "jobs": views })).into_response()
}

/// `GET /api/v1/jobs/{id}`.
pub(crate) async fn show(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    query: QueryMap,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    match with_job(&shared, &query, &id, |job| view(&id, job)) {
        Ok(view) => Json(view).into_response(),
        Err(failure) => failure_response(failure),
    }
}

/// `DELETE /api/v1/jobs/{id}`: removes the job and its files (a running job stops writing).
pub(crate) async fn delete(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    query: QueryMap,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    match with_job(&shared, &query, &id, |_| ()) {
        Ok(()) => {
            shared.store.remove(&id);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(failure) => failure_response(failure),
    }
}

/// `GET /api/v1/jobs/{id}/files/{name}[?format=mp3]`.
pub(crate) async fn file(
    State(shared): State<Arc<Shared>>,
    UrlPath((id, name)): UrlPath<(String, String)>,
    query: QueryMap,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    match serve_file(&shared, &query, &id, &name).await {
        Ok(response) => response,
        Err(failure) => failure_response(failure),
    }
}

async fn serve_file(
    shared: &Arc<Shared>,
    query: &HashMap<String, String>,
    id: &str,
    name: &str,
) -> Result<Response, Failure> {
    let find = |job: &Job, wanted: &str| job.files.iter().find(|f| f.name == wanted).cloned();
    let found = with_job(shared, query, id, |job| find(job, name))?;
    let missing = || Failure::new(Status::NotFound, format!("job {id} has no file {name}"));
    let file = found.ok_or_else(missing)?;
    let file = match query.get("format").map(String::as_str) {
        None | Some("wav" | "") => file,
        Some("mp3") if name.ends_with(".wav") => {
            let mp3 = format!("{}.mp3", name.trim_end_matches(".wav"));
            match with_job(shared, query, id, |job| find(job, &mp3))? {
                Some(made) => made,
                None => {
                    let shared = shared.clone();
                    let id = id.to_owned();
                    tokio::task::spawn_blocking(move || make_mp3(&shared, &id, &file, &mp3))
                        .await
                        .map_err(|_| {
                            Failure::new(Status::ServerError, "the MP3 encoder failed")
                        })??
                }
            }
        }
        Some(other) => {
            return Err(Failure::new(
                Status::InvalidPayload,
                format!("format={other} is not offered for {name}: use wav, or mp3 for a stem"),
            ))
        }
    };
    let path = file.path.clone();
    let bytes = tokio::task::spawn_blocking(move || std::fs::read(path))
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(missing)?;
    let kind = match Path::new(&file.name).extension().and_then(|e| e.to_str()) {
        Some("wav") => "audio/wav",
        Some("mp3") => "audio/mpeg",
        Some("mid") => "audio/midi",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    };
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", file.name)) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// Encodes a stem's WAV as the MP3 `separate --stems DIR --format mp3` writes, once.
fn make_mp3(shared: &Shared, id: &str, wav: &JobFile, mp3: &str) -> Result<JobFile, Failure> {
    let bytes = std::fs::read(&wav.path).map_err(|_| {
        Failure::new(
            Status::NotFound,
            format!("job {id} has no file {}", wav.name),
        )
    })?;
    let audio: Audio = decode(bytes, &DecodeOptions::default()).map_err(|e| {
        Failure::new(
            Status::ServerError,
            format!("cannot read {}: {e}", wav.name),
        )
    })?;
    let spec = stem_spec(OutputFormat::Mp3);
    write_file(
        &shared.store,
        id,
        mp3,
        wav.bytes / 4 + WAV_HEADER_BYTES,
        |file| {
            encode(audio, &spec, file)
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    )?;
    shared
        .store
        .lock()
        .jobs
        .get(id)
        .and_then(|job| job.files.iter().find(|f| f.name == mp3).cloned())
        .ok_or_else(|| Failure::new(Status::NotFound, "the job was deleted"))
}

/// `GET /api/v1/models`: what `separate=` takes.
pub(crate) async fn models(State(shared): State<Arc<Shared>>) -> Response {
    Json(serde_json::json!({
        "separation": ["2track_vocal", "2track_acc", "bs_4track_vocal", "bs_4track_acc"],
        "installed": shared.engine.installed_models(),
    }))
    .into_response()
}

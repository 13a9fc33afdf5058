//! A local drop-in for the cloud invoke API: `POST /api/v1/invoke` for the
//! `MusicSourceSeparate` and `MIDI` namespaces, answered by a shared [`Engine`], with the
//! API's request forms, response shape and status codes (see [`Status`]); beside it the jobs
//! API (`/api/v1/jobs`: submit, poll, download, delete) and the studio page at `/`, whose
//! assets are embedded in the binary.
//!
//! Heavy work runs on blocking threads, at most [`ServerConfig::max_jobs`] at once, with up to
//! [`ServerConfig::queue`] more requests waiting (at most [`ServerConfig::queue_wait`]) for a
//! slot; beyond that a request is answered `429` at once. Bodies larger than a few MB are read
//! only once the credentials are checked and the request holds one of those places, and are
//! refused while being read once they exceed what 100 MB of base64 audio can take.
//! Connections are capped and time out (headers, body, stalled writes); shutdown ends within
//! a grace period. `payload.url` is fetched only when the operator configures [`FetchConfig`].

mod conn;
mod fetch;
mod invoke;
mod jobs;
mod limits;
mod payload;
mod prefix;
mod status;
mod studio;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get};
use axum::Router;
use stemscribe_engine::Engine;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use fetch::{FetchConfig, FetchError, Fetcher};
pub use status::Status;

/// Largest audio accepted, after base64 decoding.
pub const MAX_DATA_BYTES: usize = 100 * 1024 * 1024;
/// Longest audio accepted.
pub const MAX_DURATION_SECS: f64 = 600.0;

/// How the server behaves.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Jobs (decode + model + encode) that may run at once.
    pub max_jobs: usize,
    /// Requests that may wait for a job slot; more get 429 at once.
    pub queue: usize,
    /// Longest a queued request waits for a job slot before it gets 429.
    pub queue_wait: Duration,
    /// Open connections; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Longest a client may take to send a request's line and headers, and longest a
    /// connection may sit idle between requests.
    pub header_timeout: Duration,
    /// Longest a client may take to send a request's body.
    pub body_timeout: Duration,
    /// Longest a request's body may send nothing before the request is refused, however
    /// much of [`body_timeout`](Self::body_timeout) is left: a stalled upload is closed
    /// early while a slow but steady one keeps going.
    pub body_idle_timeout: Duration,
    /// Longest a response may stall because the client does not read it.
    pub write_timeout: Duration,
    /// After a shutdown signal, longest the server waits for requests in flight.
    pub shutdown_grace: Duration,
    /// appkey → token; `None` leaves the server open.
    pub keys: Option<HashMap<String, String>>,
    /// Longest a job may take before the request fails with a server error.
    pub job_timeout: Duration,
    /// Fetching of `payload.url`; `None` (the default) refuses every url.
    pub fetch: Option<FetchConfig>,
    /// How long a finished job and its files are kept.
    pub job_ttl: Duration,
    /// The most bytes jobs may hold on disk (uploads waiting and results); a job that would
    /// need more is refused as busy.
    pub job_storage: u64,
    /// Where jobs' files go (in a new folder, removed when the server stops); `None` is the
    /// system's temporary folder.
    pub job_dir: Option<std::path::PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_jobs: 2,
            queue: 8,
            queue_wait: Duration::from_secs(30),
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
            body_idle_timeout: Duration::from_secs(15),
            write_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            keys: None,
            job_timeout: Duration::from_secs(120),
            fetch: None,
            job_ttl: Duration::from_secs(3600),
            job_storage: 2_000_000_000,
            job_dir: None,
        }
    }
}

/// What every request shares.
#[derive(Debug)]
struct Shared {
    engine: Arc<Engine>,
    config: ServerConfig,
    /// Job slots: held while a job runs.
    jobs: Arc<Semaphore>,
    /// Places among running and queued jobs: held from before a large body is read (or
    /// after a small one is) until its job ends.
    places: Arc<Semaphore>,
    fetcher: Option<Fetcher>,
    /// The jobs of the jobs API and their files.
    store: jobs::JobStore,
}

/// Why the server could not start (once serving, a failed accept is retried, not fatal).
#[derive(Debug, Error)]
pub enum ServeError {
    /// The url fetcher could not be set up.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The folder for jobs' files could not be made.
    #[error("cannot make a folder for jobs' files: {0}")]
    JobDir(#[source] std::io::Error),
}

/// The service's routes: `POST /api/v1/invoke`, the jobs API, the studio page and
/// `GET /healthz`. Called within a Tokio runtime, it also starts the task that expires
/// finished jobs (it ends when the router is dropped).
pub fn router(engine: Arc<Engine>, config: ServerConfig) -> Result<Router, ServeError> {
    let fetcher = config.fetch.clone().map(Fetcher::new).transpose()?;
    let jobs = config.max_jobs.max(1);
    let store = jobs::JobStore::new(&config).map_err(ServeError::JobDir)?;
    let shared = Arc::new(Shared {
        engine,
        jobs: Arc::new(Semaphore::new(jobs)),
        places: Arc::new(Semaphore::new(jobs + config.queue)),
        config,
        fetcher,
        store,
    });
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let weak = Arc::downgrade(&shared);
        let every = shared.store.sweep_interval();
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match weak.upgrade() {
                    Some(shared) => shared.store.expire(),
                    None => break,
                }
            }
        });
    }
    Ok(Router::new()
        .route("/api/v1/invoke", any(invoke::invoke))
        .route("/api/v1/jobs", get(jobs::list).post(jobs::create))
        .route("/api/v1/jobs/{id}", get(jobs::show).delete(jobs::delete))
        .route("/api/v1/jobs/{id}/files/{name}", get(jobs::file))
        .route("/api/v1/models", get(jobs::models))
        .route("/", get(studio::page))
        .route("/studio.js", get(studio::script))
        .route("/studio.css", get(studio::style))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(limits::not_found)
        .method_not_allowed_fallback(limits::wrong_method)
        .layer(axum::middleware::from_fn(limits::check_head))
        .layer(DefaultBodyLimit::disable())
        .with_state(shared))
}

/// Serves on `listener` until `shutdown` resolves, then stops accepting, finishes the
/// requests in flight and closes idle connections, returning after at most
/// [`ServerConfig::shutdown_grace`].
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let router = router(engine, config.clone())?;
    conn::run(listener, router, &config, shutdown).await;
    Ok(())
}

/// Checks an invoke request as the server does before any heavy work (body JSON, credentials,
/// namespace, payload values, `data` or `payload.url` present) and returns the status it would
/// be refused with. Fetches nothing and decodes no audio.
pub fn check_request(
    config: &ServerConfig,
    query: &HashMap<String, String>,
    body: &[u8],
) -> Result<(), Status> {
    let fetcher = config
        .fetch
        .clone()
        .map(Fetcher::new)
        .transpose()
        .map_err(|_| Status::ServerError)?;
    let mut namespace = String::new();
    invoke::accept(config, fetcher.as_ref(), query, body, &mut namespace)
        .map(|_| ())
        .map_err(|failure| failure.status)
}

/// Checks what the server checks of a request whose body is larger than a few MB before
/// reading past its start: the credentials in the query string, or else (with keys
/// configured) at the start of the body, before `data`. Reads nothing else.
pub fn check_large_request(
    config: &ServerConfig,
    query: &HashMap<String, String>,
    body_start: &[u8],
) -> Result<(), Status> {
    let result = match invoke::check_query_credentials(config, query) {
        Ok(true) => Ok(()),
        Ok(false) => invoke::check_large_body_start(config, body_start),
        Err(failure) => Err(failure),
    };
    result.map_err(|failure| failure.status)
}

/// Checks a jobs API submission as the server does before reading its body: credentials,
/// `separate` (an API model or one of `installed`) and `midi`, and the declared body length.
/// Starts nothing.
pub fn check_job_request(
    config: &ServerConfig,
    query: &HashMap<String, String>,
    installed: &[String],
    content_length: Option<u64>,
) -> Result<(), Status> {
    let checked = jobs::caller(config, query)
        .and_then(|_| jobs::what_to_make(installed, query))
        .and_then(|_| match content_length {
            Some(length) if length > MAX_DATA_BYTES as u64 => Err(jobs::too_large()),
            _ => Ok(()),
        });
    checked.map(|_| ()).map_err(|failure| failure.status)
}

/// Reads a keys file: one `appkey:token` per line; blank lines and `#` comments skipped.
/// An appkey listed twice is an error, so that one line cannot silently replace another.
pub fn parse_keys(text: &str) -> Result<HashMap<String, String>, String> {
    let mut keys = HashMap::new();
    let mut lines: HashMap<String, usize> = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once(':') {
            Some((appkey, token)) if !appkey.trim().is_empty() && !token.trim().is_empty() => {
                let appkey = appkey.trim().to_owned();
                if let Some(first) = lines.insert(appkey.clone(), index + 1) {
                    return Err(format!(
                        "line {}: appkey `{appkey}` is already on line {first}",
                        index + 1
                    ));
                }
                keys.insert(appkey, token.trim().to_owned());
            }
            _ => return Err(format!("line {}: expected `appkey:token`", index + 1)),
        }
    }
    if keys.is_empty() {
        return Err("no keys in the file".into());
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_appkeys_are_an_error() {
        assert_eq!(parse_keys("a:1\nb:2\n").map(|k| k.len()), Ok(2));
        let error = parse_keys("a:1\n# c\na:2\n").unwrap_err();
        assert!(
            error.contains("line 3") && error.contains("line 1"),
            "{error}"
        );
    }

    #[test]
    fn requests_are_checked_without_running_them() {
        let config = ServerConfig {
            keys: Some(HashMap::from([("k".to_owned(), "t".to_owned())])),
            ..ServerConfig::default()
        };
        let query: HashMap<String, String> =
            [("appkey", "k"), ("token", "t"), ("namespace", "MIDI")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        let midi = br#"{"data": "AAAA", "payload": ""}"#;
        assert_eq!(check_request(&config, &query, midi), Ok(()));
        let cases: [(&HashMap<String, String>, &[u8], Status); 5] = [
            (&HashMap::new(), midi, Status::InvalidAccess),
            (&query, b"[1, 2]", Status::ClientError),
            (&query, br#"{"data": ""}"#, Status::EmptyData),
            (
                &query,
                br#"{"data": "", "payload": "{\"url\": \" \"}"}"#,
                Status::EmptyUrl,
            ),
            (
                &query,
                br#"{"data": "", "payload": "{\"url\": \"http://a.b/c\"}"}"#,
                Status::FailedDownload,
            ),
        ];
        for (query, body, status) in cases {
            assert_eq!(check_request(&config, query, body), Err(status));
        }
    }
}

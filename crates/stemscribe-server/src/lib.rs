//! A local drop-in for the cloud invoke API: `POST /api/v1/invoke` for the
//! `MusicSourceSeparate` and `MIDI` namespaces, answered by a shared [`Engine`], with the
//! API's request forms, response shape and status codes (see [`Status`]).
//!
//! Heavy work runs on blocking threads, at most [`ServerConfig::max_jobs`] at once; a request
//! beyond that is answered `429` at once. Request bodies are refused while being read once
//! they exceed what 100 MB of base64 audio can take. `payload.url` is fetched only when the
//! operator configures [`FetchConfig`].

mod fetch;
mod invoke;
mod payload;
mod status;

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
    /// Jobs (decode + model + encode) that may run at once; more get 429.
    pub max_jobs: usize,
    /// appkey → token; `None` leaves the server open.
    pub keys: Option<HashMap<String, String>>,
    /// Longest a job may take before the request fails with a server error.
    pub job_timeout: Duration,
    /// Fetching of `payload.url`; `None` (the default) refuses every url.
    pub fetch: Option<FetchConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_jobs: 2,
            keys: None,
            job_timeout: Duration::from_secs(120),
            fetch: None,
        }
    }
}

/// What every request shares.
#[derive(Debug)]
struct Shared {
    engine: Arc<Engine>,
    config: ServerConfig,
    jobs: Arc<Semaphore>,
    fetcher: Option<Fetcher>,
}

/// Why the server could not start or stopped.
#[derive(Debug, Error)]
pub enum ServeError {
    /// The url fetcher could not be set up.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// Accepting connections failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The service's routes: `POST /api/v1/invoke` and `GET /healthz`.
pub fn router(engine: Arc<Engine>, config: ServerConfig) -> Result<Router, FetchError> {
    let fetcher = config.fetch.clone().map(Fetcher::new).transpose()?;
    let shared = Arc::new(Shared {
        engine,
        jobs: Arc::new(Semaphore::new(config.max_jobs.max(1))),
        config,
        fetcher,
    });
    Ok(Router::new()
        .route("/api/v1/invoke", any(invoke::invoke))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::disable())
        .with_state(shared))
}

/// Serves on `listener` until `shutdown` resolves, then stops accepting and finishes the
/// requests in flight.
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    axum::serve(listener, router(engine, config)?)
        .with_graceful_shutdown(shutdown)
        .await?;
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

/// Reads a keys file: one `appkey:token` per line; blank lines and `#` comments skipped.
pub fn parse_keys(text: &str) -> Result<HashMap<String, String>, String> {
    let mut keys = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once(':') {
            Some((appkey, token)) if !appkey.trim().is_empty() && !token.trim().is_empty() => {
                keys.insert(appkey.trim().to_owned(), token.trim().to_owned());
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

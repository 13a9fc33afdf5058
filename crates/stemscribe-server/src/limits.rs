//! Answers, in the API's JSON shape, what the routes do not: unknown routes, and request
//! heads too large to serve (hyper itself answers only heads over its buffer, 256 KB).

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

use crate::invoke::refuse;
use crate::Status;

/// The longest request target served.
pub(crate) const MAX_URI_BYTES: usize = 16 * 1024;
/// The most bytes of header names and values served.
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most header lines served.
pub(crate) const MAX_HEADERS: usize = 100;

/// Refuses request heads over the limits above with 414 or 431 before any route runs.
pub(crate) async fn check_head(request: Request, next: Next) -> Response {
    let uri = request.uri().to_string().len();
    if uri > MAX_URI_BYTES {
        return refuse(
            Status::UriTooLong,
            format!("the request target is {uri} bytes; at most {MAX_URI_BYTES} are served"),
        );
    }
    let headers = request.headers();
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEAD_BYTES {
        return refuse(
            Status::HeadersTooLarge,
            format!(
                "{} header lines of {bytes} bytes; at most {MAX_HEADERS} lines and \
                 {MAX_HEAD_BYTES} bytes are served",
                headers.len()
            ),
        );
    }
    next.run(request).await
}

/// Any route the router does not know.
pub(crate) async fn not_found(request: Request) -> Response {
    refuse(
        Status::NotFound,
        format!(
            "no route {}: use POST /api/v1/invoke, /api/v1/jobs, GET / (the studio) or GET /healthz",
            request.uri().path()
        ),
    )
}

/// A known route asked with a method it does not answer.
pub(crate) async fn wrong_method(request: Request) -> Response {
    refuse(
        Status::InvalidMethod,
        format!(
            "{} does not answer {}",
            request.uri().path(),
            request.method()
        ),
    )
}

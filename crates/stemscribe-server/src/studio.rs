//! The studio: one page, its script and its style, embedded in the binary and served with a
//! content security policy that lets the page load nothing from any other host.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

/// Only this server's own assets; audio is decoded from fetched bytes (`blob:` for downloads).
const POLICY: &str = "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; \
connect-src 'self'; style-src 'self'; script-src 'self'; object-src 'none'; \
base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(body: &'static str, kind: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /`: the studio page.
pub(crate) async fn page() -> Response {
    asset(
        include_str!("../studio/index.html"),
        "text/html; charset=utf-8",
    )
}

/// `GET /studio.js`.
pub(crate) async fn script() -> Response {
    asset(
        include_str!("../studio/studio.js"),
        "text/javascript; charset=utf-8",
    )
}

/// `GET /studio.css`.
pub(crate) async fn style() -> Response {
    asset(
        include_str!("../studio/studio.css"),
        "text/css; charset=utf-8",
    )
}

//! Cross-cutting HTTP behaviour: metrics per route, timeouts, overload, panics, fallbacks.

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use super::AppState;
use super::error::ApiError;

/// Records request count and latency under the route template (never the raw path,
/// which would explode label cardinality).
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(req.method()).to_owned();
    let start = Instant::now();
    let in_flight = state.registry.metrics().in_flight();
    let resp = next.run(req).await;
    drop(in_flight);
    state
        .registry
        .metrics()
        .observe_http(&route, &method, resp.status().as_u16(), start.elapsed());
    resp
}

/// The `method` label: one of a fixed set, never the raw method string,
/// which a client chooses freely (any token, of any length).
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method as M;
    match *method {
        M::GET => "GET",
        M::HEAD => "HEAD",
        M::PUT => "PUT",
        M::POST => "POST",
        M::DELETE => "DELETE",
        M::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Bounds the whole request (including reading the body).
pub async fn timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "REQUEST_TIMEOUT",
            format!("the request did not complete within {} ms", limit.as_millis()),
        )
        .into_response(),
    }
}

/// Request slots shared by every route; beyond them the registry sheds load.
#[derive(Clone)]
pub struct Slots(pub Arc<Semaphore>);

/// Paths that never wait for or take a slot: probes and scrapes must keep
/// answering exactly when the registry is saturated.
const UNLIMITED: &[&str] = &["/healthz", "/readyz", "/metrics"];

/// Answers 429 with `Retry-After` when every slot is taken.
pub async fn shed_load(State(slots): State<Slots>, req: Request, next: Next) -> Response {
    if UNLIMITED.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    match slots.0.clone().try_acquire_owned() {
        Ok(permit) => {
            let resp = next.run(req).await;
            drop(permit);
            resp
        }
        Err(_) => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TOO_MANY_REQUESTS",
            "the registry is at its concurrent request limit; retry shortly",
        )
        .retry_after(1)
        .into_response(),
    }
}

/// A panicking handler answers 500 in the usual error shape, and the server keeps running.
pub fn panicked(_payload: Box<dyn Any + Send + 'static>) -> Response<Body> {
    tracing::error!("handler panicked");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", "internal error").into_response()
}

/// Unknown route.
pub async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "no such endpoint; see /openapi.json",
    )
}

/// Known route, wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "this endpoint does not accept that method; see /openapi.json",
    )
}

#[cfg(test)]
mod tests {
    use super::method_label;
    use axum::http::Method;

    #[test]
    fn methods_map_to_a_fixed_set() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        assert_eq!(method_label(&Method::PATCH), "other");
        let custom = Method::from_bytes("X".repeat(60_000).as_bytes()).expect("a valid token");
        assert_eq!(method_label(&custom), "other");
    }
}

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

/// The route template as a static label. Templates are the router's own
/// registered paths (a fixed, small set: `MatchedPath` never holds a raw
/// path), so each is leaked once and every later request borrows it.
fn route_label(template: &str) -> &'static str {
    static ROUTES: std::sync::OnceLock<std::sync::RwLock<std::collections::HashSet<&'static str>>> =
        std::sync::OnceLock::new();
    let routes = ROUTES.get_or_init(Default::default);
    if let Some(known) = routes.read().ok().and_then(|r| r.get(template).copied()) {
        return known;
    }
    let Ok(mut w) = routes.write() else {
        return "unmatched";
    };
    if let Some(known) = w.get(template).copied() {
        return known;
    }
    let leaked: &'static str = Box::leak(template.to_owned().into_boxed_str());
    w.insert(leaked);
    leaked
}

/// Everything every request passes through, in one layer (one boxed future
/// instead of three): the in-flight gauge, load shedding (429 once every
/// slot is taken; probes and scrapes are never limited), the whole-request
/// deadline (408), and the request's count and latency under its route
/// template (never the raw path, which would explode label cardinality).
pub async fn gate(State(gate): State<Arc<Gate>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| route_label(p.as_str()));
    let method = method_label(req.method());
    let start = Instant::now();
    let metrics = gate.state.registry.metrics();
    let in_flight = metrics.in_flight();
    let permit = if UNLIMITED.contains(&req.uri().path()) {
        None
    } else {
        match gate.slots.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                let resp = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TOO_MANY_REQUESTS",
                    "the registry is at its concurrent request limit; retry shortly",
                )
                .retry_after(1)
                .into_response();
                drop(in_flight);
                metrics.observe_http(route, method, resp.status().as_u16(), start.elapsed());
                return resp;
            }
        }
    };
    let resp = match tokio::time::timeout(gate.request_timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "REQUEST_TIMEOUT",
            format!(
                "the request did not complete within {} ms",
                gate.request_timeout.as_millis()
            ),
        )
        .into_response(),
    };
    drop(permit);
    drop(in_flight);
    metrics.observe_http(route, method, resp.status().as_u16(), start.elapsed());
    resp
}

/// What [`gate`] needs: the state (metrics), request slots and the deadline
/// (shared: the router clones it for every request).
pub struct Gate {
    /// Handler state, for the metrics.
    pub state: AppState,
    /// Request slots shared by every route; beyond them the registry sheds load.
    pub slots: Arc<Semaphore>,
    /// Bound on the whole request (including reading the body).
    pub request_timeout: Duration,
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

/// Paths that never wait for or take a slot: probes and scrapes must keep
/// answering exactly when the registry is saturated.
const UNLIMITED: &[&str] = &["/healthz", "/readyz", "/metrics"];

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

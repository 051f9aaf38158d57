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

/// The request id header: a client's own is kept, else one is made.
const X_REQUEST_ID: axum::http::HeaderName = axum::http::HeaderName::from_static("x-request-id");

/// Gives every request an id (the client's `x-request-id`, else a new
/// UUID), opens the request's span with it (so every log line of the
/// request carries it) and returns it in the response. One layer instead of
/// tower-http's set, trace and propagate layers: no request header or
/// extension is written and no response body is wrapped, which is most of
/// what a cached read costs above nginx's.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestContextLayer;

impl<S> tower::Layer<S> for RequestContextLayer {
    type Service = RequestContext<S>;

    fn layer(&self, inner: S) -> RequestContext<S> {
        RequestContext { inner }
    }
}

/// The service of [`RequestContextLayer`].
#[derive(Clone, Debug)]
pub struct RequestContext<S> {
    inner: S,
}

impl<S> tower::Service<Request> for RequestContext<S>
where
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        use tracing::Instrument;
        let id = match req.headers().get(&X_REQUEST_ID) {
            Some(id) => id.clone(),
            None => new_request_id(),
        };
        let span = tracing::info_span!(
            "request",
            method = %req.method(),
            path = %req.uri().path(),
            request_id = %id.to_str().unwrap_or("-"),
        );
        // The service that was made ready serves this request; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(
            async move {
                let mut resp = inner.call(req).await?;
                resp.headers_mut().insert(X_REQUEST_ID, id);
                Ok(resp)
            }
            .instrument(span),
        )
    }
}

/// A new random (v4) UUID as a header value, formatted without a `String`.
fn new_request_id() -> axum::http::HeaderValue {
    let mut buf = uuid::Uuid::encode_buffer();
    let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
    axum::http::HeaderValue::from_str(text).unwrap_or_else(|_| axum::http::HeaderValue::from_static("-"))
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

//! Cross-cutting HTTP behaviour: metrics per route, timeouts, overload, panics, fallbacks.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::FutureExt as _;
use tokio::sync::Semaphore;

use super::AppState;
use super::error::ApiError;
use crate::metrics::RouteMetrics;

/// Everything every routed request passes through, in one layer: the
/// in-flight gauge, load shedding (429 once every slot is taken; probes and
/// scrapes are never limited), the whole-request deadline (408), and the
/// request's count and latency under its route template. A hand-written
/// service rather than `from_fn`: that boxes the rest of the stack and
/// splits the request for every call, a measurable part of a cached read.
#[derive(Clone)]
pub struct GateLayer(pub Arc<Gate>);

impl<S> tower::Layer<S> for GateLayer {
    type Service = GateService<S>;

    fn layer(&self, inner: S) -> GateService<S> {
        GateService {
            gate: self.0.clone(),
            inner,
        }
    }
}

/// The service of [`GateLayer`].
#[derive(Clone)]
pub struct GateService<S> {
    gate: Arc<Gate>,
    inner: S,
}

impl<S> tower::Service<Request> for GateService<S>
where
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> BoxFuture {
        let gate = self.gate.clone();
        let start = tokio::time::Instant::now();
        let in_flight = gate.state.registry.metrics().in_flight();
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
                    gate.observe(&req, &resp, start);
                    return Box::pin(std::future::ready(Ok(resp)));
                }
            }
        };
        // The route and method are all the metrics need of the request.
        let template = req.extensions().get::<MatchedPath>().cloned();
        let method = req.method().clone();
        // The service that was made ready serves this request; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let mut served = std::pin::pin!(inner.call(req));
            // Most requests (every cached read) finish in their first poll:
            // the deadline's timer is set only for one that has to wait.
            let first = std::future::poll_fn(|cx| std::task::Poll::Ready(served.as_mut().poll(cx))).await;
            let resp = match first {
                std::task::Poll::Ready(Ok(resp)) => resp,
                std::task::Poll::Pending => match tokio::time::timeout_at(start + gate.request_timeout, served).await {
                    Ok(Ok(resp)) => resp,
                    Err(_) => ApiError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "REQUEST_TIMEOUT",
                        format!(
                            "the request did not complete within {} ms",
                            gate.request_timeout.as_millis()
                        ),
                    )
                    .into_response(),
                },
            };
            drop(permit);
            drop(in_flight);
            gate.routes.observe(
                template.as_ref().map(MatchedPath::as_str),
                &method,
                resp.status().as_u16(),
                start.elapsed(),
            );
            Ok(resp)
        })
    }
}

/// The future of the request layers.
type BoxFuture = std::pin::Pin<Box<dyn Future<Output = Result<Response, std::convert::Infallible>> + Send>>;

/// The request id header: a client's own is kept, else one is made.
const X_REQUEST_ID: axum::http::HeaderName = axum::http::HeaderName::from_static("x-request-id");

/// Gives every request an id (the client's `x-request-id`, else a new
/// UUID), opens the request's span with it (so every log line of the
/// request carries it), answers a panicking handler with a 500 and returns
/// the id in the response. One layer instead of tower-http's set, trace,
/// propagate and catch-panic layers: no request header or extension is
/// written and no response body is wrapped or boxed again, which was most
/// of what a cached read cost above nginx's.
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

impl Gate {
    /// Records a request answered by the gate itself.
    fn observe(&self, req: &Request, resp: &Response, start: tokio::time::Instant) {
        let template = req.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
        self.routes
            .observe(template, req.method(), resp.status().as_u16(), start.elapsed());
    }
}

impl<S> tower::Service<Request> for RequestContext<S>
where
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        use tracing::Instrument;
        let id = match req.headers().get(&X_REQUEST_ID) {
            Some(id) => id.clone(),
            None => new_request_id(),
        };
        let span = crate::logging::request_span(req.method().as_str(), req.uri().path(), id.to_str().unwrap_or("-"));
        // The service that was made ready serves this request; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(
            async move {
                // A panic in a handler (or in making its future) answers 500
                // and the connection and the server go on.
                let served = match std::panic::catch_unwind(AssertUnwindSafe(|| inner.call(req))) {
                    Ok(future) => AssertUnwindSafe(future).catch_unwind().await,
                    Err(payload) => Err(payload),
                };
                let mut resp = match served {
                    Ok(Ok(resp)) => resp,
                    Ok(Err(never)) => match never {},
                    Err(payload) => panicked(payload),
                };
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

/// What [`GateLayer`] needs: the metrics, request slots and the deadline
/// (shared: the router clones it for every request).
pub struct Gate {
    /// Handler state, for the in-flight gauge.
    pub state: AppState,
    /// Request count and latency by route and method.
    pub routes: RouteMetrics,
    /// Request slots shared by every route; beyond them the registry sheds load.
    pub slots: Arc<Semaphore>,
    /// Bound on the whole request (including reading the body).
    pub request_timeout: Duration,
}

/// Paths that never wait for or take a slot: probes and scrapes must keep
/// answering exactly when the registry is saturated.
const UNLIMITED: &[&str] = &["/healthz", "/readyz", "/metrics"];

/// A panicking handler answers 500 in the usual error shape, and the server keeps running.
fn panicked(_payload: Box<dyn Any + Send + 'static>) -> Response<Body> {
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
    use super::RequestContextLayer;
    use axum::body::Body;
    use axum::extract::Request;
    use axum::response::Response;
    use tower::{Layer as _, ServiceExt as _};

    async fn serve(panic_in_future: bool) -> Response {
        let handler = tower::service_fn(move |_: Request| async move {
            if panic_in_future {
                panic!("a handler bug");
            }
            Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
        });
        let req = Request::builder()
            .uri("/v1/packs")
            .header("x-request-id", "req-7")
            .body(Body::empty())
            .expect("a request");
        RequestContextLayer
            .layer(handler)
            .oneshot(req)
            .await
            .expect("infallible")
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_with_the_request_id() {
        let ok = serve(false).await;
        assert_eq!(ok.status(), 200);
        assert_eq!(ok.headers()["x-request-id"], "req-7");
        let failed = serve(true).await;
        assert_eq!(failed.status(), 500);
        assert_eq!(failed.headers()["x-request-id"], "req-7");
        let body = axum::body::to_bytes(failed.into_body(), 4096).await.expect("a body");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(body["errors"][0]["code"], "INTERNAL_ERROR");
    }
}

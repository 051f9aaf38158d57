//! The request gate: in-flight gauge, load shedding, the whole-request
//! deadline and per-route metrics, in one layer inside the router.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::future::Either;
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
    type Future = GateFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let gate = self.gate.clone();
        let start = tokio::time::Instant::now();
        let in_flight = gate.state.registry.metrics().in_flight();
        let slot = if UNLIMITED.contains(&req.uri().path()) {
            Ok(None)
        } else {
            gate.slots.clone().try_acquire_owned().map(Some)
        };
        let mut tally = Tally {
            // The route and method are all the metrics need of the request.
            template: req.extensions().get::<MatchedPath>().cloned(),
            method: req.method().clone(),
            gate,
            start,
            permit: None,
            in_flight: Some(in_flight),
        };
        let served = match slot {
            Ok(permit) => {
                tally.permit = permit;
                // The service that was made ready serves this request; a clone takes its place.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                Either::Left(inner.call(req))
            }
            Err(_) => Either::Right(std::future::ready(Ok(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TOO_MANY_REQUESTS",
                "the registry is at its concurrent request limit; retry shortly",
            )
            .retry_after(1)
            .into_response()))),
        };
        GateFuture {
            served,
            deadline: None,
            tally,
        }
    }
}

/// What a request's gate future waits on: the service, or the gate's own answer (429).
type Served<F> = Either<F, std::future::Ready<Result<Response, std::convert::Infallible>>>;

pin_project_lite::pin_project! {
    /// The future of [`GateService`]: the request served within its
    /// deadline, then counted. A named type rather than a boxed `async`
    /// block, so a request allocates no future here (the router boxes
    /// each route's future already).
    pub struct GateFuture<F> {
        #[pin]
        served: Served<F>,
        // Set only once the request has had to wait: most never do, and
        // a timer costs a registration and a removal.
        #[pin]
        deadline: Option<tokio::time::Sleep>,
        tally: Tally,
    }
}

/// What the gate holds for a request until it is answered and counted.
struct Tally {
    gate: Arc<Gate>,
    start: tokio::time::Instant,
    template: Option<MatchedPath>,
    method: axum::http::Method,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    in_flight: Option<crate::metrics::InFlight>,
}

impl<F> Future for GateFuture<F>
where
    F: Future<Output = Result<Response, std::convert::Infallible>>,
{
    type Output = Result<Response, std::convert::Infallible>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        use std::task::Poll;
        let mut this = self.project();
        let tally = &mut *this.tally;
        let resp = match this.served.poll(cx) {
            Poll::Ready(Ok(resp)) => resp,
            Poll::Ready(Err(never)) => match never {},
            Poll::Pending => {
                if this.deadline.is_none() {
                    let at = tally.start + tally.gate.request_timeout;
                    this.deadline.set(Some(tokio::time::sleep_until(at)));
                }
                match this.deadline.as_mut().as_pin_mut().map(|d| d.poll(cx)) {
                    Some(Poll::Ready(())) => ApiError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "REQUEST_TIMEOUT",
                        format!(
                            "the request did not complete within {} ms",
                            tally.gate.request_timeout.as_millis()
                        ),
                    )
                    .into_response(),
                    _ => return Poll::Pending,
                }
            }
        };
        tally.permit.take();
        tally.in_flight.take();
        tally.gate.routes.observe(
            tally.template.as_ref().map(MatchedPath::as_str),
            &tally.method,
            resp.status().as_u16(),
            tally.start.elapsed(),
        );
        Poll::Ready(Ok(resp))
    }
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

//! The request context: every request's id, its log span, and a 500 for a
//! panicking handler, in one layer around the router.

use std::any::Any;
use std::panic::AssertUnwindSafe;

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::FutureExt as _;
use futures::future::Either;

use super::error::ApiError;

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

impl<S> tower::Service<Request> for RequestContext<S>
where
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = RequestFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let id = match req.headers().get(&X_REQUEST_ID) {
            Some(id) => id.clone(),
            None => new_request_id(),
        };
        let span = crate::logging::request_span(req.method().as_str(), req.uri().path(), id.to_str().unwrap_or("-"));
        // The service that was made ready serves this request; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        // A panic in a handler, or in making its future, answers 500 and
        // the connection and the server go on. Making the future logs
        // nothing (routing), so the span is entered only to serve it.
        let served = match std::panic::catch_unwind(AssertUnwindSafe(|| inner.call(req))) {
            Ok(future) => Either::Left(AssertUnwindSafe(future).catch_unwind()),
            Err(payload) => Either::Right(std::future::ready(Err(payload))),
        };
        RequestFuture {
            served,
            span,
            id: Some(id),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`RequestContext`]: the request served inside its
    /// span, its id added to the response. A named type rather than a
    /// boxed `async` block, so a request allocates no future here.
    pub struct RequestFuture<F> {
        #[pin]
        served: InContext<F>,
        span: tracing::Span,
        id: Option<axum::http::HeaderValue>,
    }
}

/// The request being served with its panics caught, or the panic of making its future.
type InContext<F> = Either<
    futures::future::CatchUnwind<AssertUnwindSafe<F>>,
    std::future::Ready<Result<Result<Response, std::convert::Infallible>, Box<dyn Any + Send + 'static>>>,
>;

impl<F> Future for RequestFuture<F>
where
    F: Future<Output = Result<Response, std::convert::Infallible>>,
{
    type Output = Result<Response, std::convert::Infallible>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        use std::task::Poll;
        let this = self.project();
        let _entered = this.span.enter();
        let mut resp = match this.served.poll(cx) {
            Poll::Ready(Ok(Ok(resp))) => resp,
            Poll::Ready(Ok(Err(never))) => match never {},
            Poll::Ready(Err(payload)) => panicked(payload),
            Poll::Pending => return Poll::Pending,
        };
        if let Some(id) = this.id.take() {
            resp.headers_mut().insert(X_REQUEST_ID, id);
        }
        Poll::Ready(Ok(resp))
    }
}

/// A new random (v4) UUID as a header value, formatted without a `String`.
fn new_request_id() -> axum::http::HeaderValue {
    let mut buf = uuid::Uuid::encode_buffer();
    let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
    axum::http::HeaderValue::from_str(text).unwrap_or_else(|_| axum::http::HeaderValue::from_static("-"))
}

/// A panicking handler answers 500 in the usual error shape, and the server keeps running.
fn panicked(_payload: Box<dyn Any + Send + 'static>) -> Response<Body> {
    tracing::error!("handler panicked");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", "internal error").into_response()
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

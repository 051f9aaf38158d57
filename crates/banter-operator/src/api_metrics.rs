//! A tower layer on the Kubernetes client counting every request by verb,
//! resource and status code (`banter_operator_kube_api_requests_total`,
//! `…_kube_api_errors_total`). Labels come from fixed sets, never from a
//! path or name.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Method, Request, Response};
use tower::{Layer, Service};

use crate::metrics::Metrics;

/// Resources the operator talks to; anything else is `other`.
const RESOURCES: &[&str] = &[
    "banterregistries",
    "configmaps",
    "secrets",
    "persistentvolumeclaims",
    "services",
    "statefulsets",
    "deployments",
    "poddisruptionbudgets",
    "networkpolicies",
    "servicemonitors",
    "prometheusrules",
    "leases",
    "events",
];

/// The `verb` and `resource` labels of one request.
pub fn classify(method: &Method, path: &str, query: Option<&str>) -> (&'static str, &'static str) {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match segs.first() {
        Some(&"api") => segs.get(2..),
        Some(&"apis") => segs.get(3..),
        _ => None,
    };
    let rest = match rest {
        // `/api/v1`, `/apis/g/v`, `/version`: discovery.
        None | Some([]) => return (verb(method, true, query), "discovery"),
        Some(r) => r,
    };
    let rest = match rest {
        ["namespaces", _, tail @ ..] if !tail.is_empty() => tail,
        r => r,
    };
    let resource = rest
        .first()
        .and_then(|p| RESOURCES.iter().find(|r| *r == p).copied())
        .unwrap_or("other");
    (verb(method, rest.len() == 1, query), resource)
}

fn verb(method: &Method, collection: bool, query: Option<&str>) -> &'static str {
    let watching = query.is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    match *method {
        Method::GET if watching => "watch",
        Method::GET if collection => "list",
        Method::GET => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "other",
    }
}

/// Counts requests of the wrapped client service.
#[derive(Clone)]
pub struct ApiMetricsLayer(pub Arc<Metrics>);

impl<S> Layer<S> for ApiMetricsLayer {
    type Service = ApiMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ApiMetrics {
            inner,
            metrics: self.0.clone(),
        }
    }
}

/// The service made by [`ApiMetricsLayer`].
#[derive(Clone)]
pub struct ApiMetrics<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B, R> Service<Request<B>> for ApiMetrics<S>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (verb, resource) = classify(req.method(), req.uri().path(), req.uri().query());
        let metrics = self.metrics.clone();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let result = fut.await;
            let code = result.as_ref().ok().map(|r| r.status().as_u16());
            metrics.kube_api_request(verb, resource, code);
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_map_to_verbs_and_resources() {
        let cases = [
            (
                Method::GET,
                "/apis/apps/v1/namespaces/ns/deployments/reg",
                None,
                ("get", "deployments"),
            ),
            (
                Method::GET,
                "/apis/apps/v1/deployments",
                Some("labelSelector=x"),
                ("list", "deployments"),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/ns/services",
                Some("watch=true&resourceVersion=5"),
                ("watch", "services"),
            ),
            (
                Method::PATCH,
                "/apis/banterpacks.io/v1alpha1/namespaces/ns/banterregistries/r/status",
                None,
                ("patch", "banterregistries"),
            ),
            (
                Method::POST,
                "/api/v1/namespaces/ns/secrets",
                None,
                ("create", "secrets"),
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/ns/persistentvolumeclaims/d",
                None,
                ("delete", "persistentvolumeclaims"),
            ),
            (
                Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/ns/leases/l",
                None,
                ("update", "leases"),
            ),
            (
                Method::GET,
                "/apis/monitoring.coreos.com/v1",
                None,
                ("list", "discovery"),
            ),
            (Method::GET, "/version", None, ("list", "discovery")),
            (Method::GET, "/api/v1/namespaces/ns/pods/p", None, ("get", "other")),
            (Method::OPTIONS, "/api/v1/namespaces/ns/pods", None, ("other", "other")),
        ];
        for (m, path, q, want) in cases {
            assert_eq!(classify(&m, path, q), want, "{m} {path}");
        }
    }
}

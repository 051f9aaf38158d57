//! Everything that is not a pack: stats, schema, OpenAPI, health, metrics.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use banter_contract::exposition;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::model::HealthResponse;
use crate::storage::{Stats, StorageError};

/// How long readiness waits for the backend before answering 503.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Counts of packs, versions and bytes.
#[utoipa::path(get, path = "/v1/stats", tag = "meta",
    responses((status = 200, body = Stats), (status = 503, body = ErrorBody)))]
pub async fn stats(State(state): State<AppState>) -> Result<Json<Stats>, ApiError> {
    Ok(Json(state.registry.stats().await?))
}

/// The pack JSON Schema.
#[utoipa::path(get, path = "/v1/schema/pack.json", tag = "meta",
    responses((status = 200, description = "JSON Schema (draft 2020-12)", content_type = "application/schema+json", body = Object)))]
pub async fn schema() -> Response {
    let mut r = banter_pack::SCHEMA_JSON.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/schema+json"),
    );
    r
}

/// Liveness: the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "meta", responses((status = 200, body = HealthResponse)))]
pub async fn healthz() -> Json<HealthResponse> {
    Json(HealthResponse { status: "ok".into() })
}

/// Readiness: the storage backend answers and the registry is not shutting down.
#[utoipa::path(get, path = "/readyz", tag = "meta",
    responses((status = 200, body = HealthResponse), (status = 503, body = ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<HealthResponse>, ApiError> {
    if state.draining.load(std::sync::atomic::Ordering::Acquire) {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SHUTTING_DOWN",
            "the registry is shutting down; in-flight requests are being finished",
        ));
    }
    match tokio::time::timeout(READY_TIMEOUT, state.registry.ready()).await {
        Ok(Ok(())) => Ok(Json(HealthResponse { status: "ok".into() })),
        Ok(Err(e)) => Err(ApiError::from(e)),
        Err(_) => {
            state
                .registry
                .metrics()
                .set_storage_up(state.registry.storage().kind().as_str(), false);
            Err(StorageError::Unavailable("readiness check timed out".into()).into())
        }
    }
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "meta",
    responses((status = 200, description = "Prometheus metrics: OpenMetrics when the Accept header asks for it (Prometheus does), else the Prometheus text format 0.0.4", content((String = "text/plain"), (String = "application/openmetrics-text")))))]
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    // A few scrapers at once (Prometheus HA pairs); more wait for none of it.
    static SCRAPES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);
    let Ok(_permit) = SCRAPES.try_acquire() else {
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TOO_MANY_SCRAPES",
            "too many concurrent /metrics requests; retry later",
        )
        .retry_after(1)
        .into_response();
    };
    // Refresh the stored-content gauges (maintained counters: one small read),
    // but never let a slow backend block a scrape.
    let _ = tokio::time::timeout(Duration::from_secs(1), state.registry.stats()).await;
    match state.registry.metrics().encode() {
        Ok(text) => {
            let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
            let (text, content_type) = exposition::negotiate(accept, text);
            let mut r = text.into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            r
        }
        Err(_) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "metrics encoding failed",
        )
        .into_response(),
    }
}

//! Content-addressed blobs.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::packs::{IMMUTABLE, content_response};
use super::request::{IfNoneMatch, path_error};
use crate::resolve_cache::digest_headers;

/// Fetch bytes by digest; the digest is verified on every read.
#[utoipa::path(
    method(get, head),
    path = "/v1/blobs/{digest}",
    tag = "blobs",
    params(("digest" = String, Path, description = "sha256:<64 lowercase hex>")),
    responses(
        (status = 200, description = "The bytes; cacheable forever", content_type = "application/json", body = Object),
        (status = 304, description = "Not modified"),
        (status = 400, description = "Malformed digest", body = ErrorBody),
        (status = 404, description = "No such blob", body = ErrorBody),
        (status = 500, description = "Stored bytes failed verification", body = ErrorBody),
    )
)]
pub async fn blob(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    if_none_match: IfNoneMatch,
) -> Result<Response, ApiError> {
    let Path(digest) = path.map_err(path_error)?;
    let hex = digest.strip_prefix("sha256:").ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            format!("digest {digest:?} must look like sha256:<64 lowercase hex characters>"),
        )
    })?;
    // Existence is checked (404) before the conditional answer.
    let bytes = state.registry.blob(hex).await?;
    let bytes = (!if_none_match.matches(digest.as_bytes())).then_some(bytes);
    let (digest_value, etag) = digest_headers(&digest);
    Ok(content_response(&state, digest_value, etag, IMMUTABLE, bytes))
}

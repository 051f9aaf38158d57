//! Answers for requests no route takes, in the usual error shape.

use axum::http::StatusCode;

use super::error::ApiError;

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

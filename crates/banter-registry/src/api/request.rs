//! Request-side checks shared by the handlers: auth, content type, bounded bodies, paths.

use axum::body::Body;
use axum::extract::RawPathParams;
use axum::extract::rejection::{PathRejection, QueryRejection, RawPathParamsRejection};
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::error::ApiError;
use crate::tokens::LiveTokens;

/// Media types a pack may be published as.
pub const PACK_MEDIA_TYPES: &[&str] = &["application/json", "application/vnd.banterpacks.pack.v1+json"];

/// Requires a valid bearer token: 401 when absent, 403 when wrong.
pub fn authorize(tokens: &LiveTokens, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::unauthorized(
            "a bearer token is required to change the registry",
        ));
    };
    // The scheme name is case-insensitive (RFC 9110 section 11.1).
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthorized("the Authorization header must be 'Bearer <token>'"))?;
    if tokens.accepts(token) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "DENIED",
            "the token is not accepted",
        ))
    }
}

/// Requires a JSON content type (parameters such as charset are allowed).
pub fn require_json(headers: &HeaderMap, accepted: &[&str]) -> Result<(), ApiError> {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    match media {
        Some(m) if accepted.contains(&m.as_str()) => Ok(()),
        Some(m) => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            format!("content type {m:?} is not accepted; use one of {accepted:?}"),
        )),
        None => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            format!("a Content-Type header is required; use one of {accepted:?}"),
        )),
    }
}

fn too_large(code: &'static str, limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        code,
        format!("request body is over the limit of {limit} bytes"),
    )
    .detail(serde_json::json!({ "limit_bytes": limit }))
}

/// Reads the whole body, refusing more than `limit` bytes (413 with `code`) without buffering them.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize, code: &'static str) -> Result<Bytes, ApiError> {
    // A declared length over the limit is refused before reading anything.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(code, limit));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large(code, limit)),
        Err(e) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "BODY_UNREADABLE",
            format!("could not read the request body: {e}"),
        )),
    }
}

/// A path that axum could not decode (bad percent-encoding, not UTF-8).
pub fn path_error(e: PathRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "NAME_INVALID",
        format!("invalid path: {}", e.body_text()),
    )
}

/// A route's first two path parameters (`{name}` and the one after it),
/// percent-decoded, borrowed from the router's own copy: the hot read
/// routes take them this way rather than as new `String`s.
pub fn two_params(params: &Result<RawPathParams, RawPathParamsRejection>) -> Result<(&str, &str), ApiError> {
    let invalid =
        |text: String| ApiError::new(StatusCode::BAD_REQUEST, "NAME_INVALID", format!("invalid path: {text}"));
    let params = params.as_ref().map_err(|e| invalid(e.body_text()))?;
    let mut values = params.iter().map(|(_, value)| value);
    match (values.next(), values.next()) {
        (Some(first), Some(second)) => Ok((first, second)),
        _ => Err(invalid("missing path parameters".to_owned())),
    }
}

/// A query string that does not parse.
pub fn query_error(e: QueryRejection) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "QUERY_INVALID", e.body_text())
}

/// The request's `If-None-Match` values, and nothing else of its headers
/// (the `HeaderMap` extractor would copy them all on every read). A client
/// sends one such header, which is kept without allocating.
pub struct IfNoneMatch {
    first: Option<axum::http::HeaderValue>,
    more: Vec<axum::http::HeaderValue>,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for IfNoneMatch {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        let mut values = parts.headers.get_all(header::IF_NONE_MATCH).iter().cloned();
        Ok(Self {
            first: values.next(),
            more: values.collect(),
        })
    }
}

impl IfNoneMatch {
    /// Whether the request carries the header at all.
    pub fn present(&self) -> bool {
        self.first.is_some()
    }

    /// Whether one of the values matches the entity tag `"<digest>"` (or is `*`).
    pub fn matches(&self, digest: &[u8]) -> bool {
        self.first.iter().chain(&self.more).any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .map(str::trim)
                    .any(|t| t == "*" || t.trim_start_matches("W/").trim_matches('"').as_bytes() == digest)
            })
        })
    }
}

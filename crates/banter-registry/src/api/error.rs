//! Every error the API answers, in the OCI distribution error shape.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use crate::registry::RegistryError;
use crate::storage::StorageError;

/// `{"errors": [...]}`.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The errors (always at least one).
    pub errors: Vec<ErrorEntry>,
}

/// One error.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorEntry {
    /// Machine-readable code, UPPER_SNAKE.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// Structured detail (for PACK_INVALID: the violations with their JSON pointers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub detail: Option<Value>,
}

/// An HTTP error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    detail: Option<Value>,
    retry_after: Option<u32>,
    authenticate: bool,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            detail: None,
            retry_after: None,
            authenticate: false,
        }
    }

    /// Adds structured detail.
    pub fn detail(mut self, detail: Value) -> Self {
        self.detail = Some(detail);
        self
    }

    /// Adds `Retry-After` (seconds).
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// 401 with a bearer challenge.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message);
        e.authenticate = true;
        e
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The error code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Unavailable(m) => {
                tracing::warn!(error = %m, "storage unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "STORAGE_UNAVAILABLE",
                    "the storage backend is unavailable; retry later",
                )
                .retry_after(1)
            }
            StorageError::Full(m) => {
                tracing::error!(error = %m, "storage full");
                Self::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "STORAGE_FULL",
                    "the storage backend is out of space; nothing was stored",
                )
            }
            StorageError::PackNotFound => Self::new(StatusCode::NOT_FOUND, "NAME_UNKNOWN", "pack not found"),
            StorageError::VersionNotFound => Self::new(StatusCode::NOT_FOUND, "VERSION_UNKNOWN", "version not found"),
            StorageError::Internal(m) => {
                tracing::error!(error = %m, "storage failure");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "INTERNAL_ERROR",
                    "internal storage error",
                )
            }
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        use RegistryError as E;
        let message = e.to_string();
        match e {
            E::NameInvalid(_) => Self::new(StatusCode::BAD_REQUEST, "NAME_INVALID", message),
            E::TagInvalid(_) => Self::new(StatusCode::BAD_REQUEST, "TAG_INVALID", message),
            E::VersionInvalid(_) => Self::new(StatusCode::BAD_REQUEST, "VERSION_INVALID", message),
            E::DigestInvalid(_) => Self::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", message),
            E::TooLarge { limit, .. } => Self::new(StatusCode::PAYLOAD_TOO_LARGE, "PACK_TOO_LARGE", message)
                .detail(serde_json::json!({ "limit_bytes": limit })),
            E::Malformed(_) => Self::new(StatusCode::BAD_REQUEST, "JSON_MALFORMED", message),
            E::DuplicateKey(pointer) => Self::new(StatusCode::BAD_REQUEST, "DUPLICATE_KEY", message)
                .detail(serde_json::json!({ "pointer": pointer })),
            E::Invalid(violations) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "PACK_INVALID", message)
                .detail(serde_json::json!({ "violations": violations })),
            E::VersionExists {
                existing_version,
                existing_digest,
                ..
            } => Self::new(StatusCode::CONFLICT, "VERSION_EXISTS", message).detail(serde_json::json!({
                "existing_version": existing_version,
                "existing_digest": existing_digest,
            })),
            E::PackNotFound(_) => Self::new(StatusCode::NOT_FOUND, "NAME_UNKNOWN", message),
            E::VersionNotFound { .. } => Self::new(StatusCode::NOT_FOUND, "VERSION_UNKNOWN", message),
            E::BlobNotFound(_) => Self::new(StatusCode::NOT_FOUND, "BLOB_UNKNOWN", message),
            E::Corrupt(_) => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "CONTENT_CORRUPT", message),
            E::Storage(s) => s.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            errors: vec![ErrorEntry {
                code: self.code.to_owned(),
                message: self.message,
                detail: self.detail,
            }],
        };
        let mut resp = (self.status, Json(body)).into_response();
        let headers = resp.headers_mut();
        if let Some(s) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.authenticate {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"banter-registry\""),
            );
        }
        // Errors describe this request only; never cache them.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }
}

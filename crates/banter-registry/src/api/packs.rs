//! Pack endpoints: publish, fetch, list, tag, yank.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection, RawPathParamsRejection};
use axum::extract::{Path, Query, RawPathParams, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::model::{PackList, PackResponse, PublishResponse, TagRequest, TagResponse, YankResponse};
use super::request::{
    IfNoneMatch, PACK_MEDIA_TYPES, authorize, path_error, query_error, read_body, require_json, two_params,
};
use crate::registry::Published;
use crate::resolve_cache::digest_headers;

/// Default page size of the listing.
pub const DEFAULT_PAGE: usize = 100;
/// Largest page size; larger `n` is clamped.
pub const MAX_PAGE: usize = 1000;
/// Cache policy for content addressed by its digest: it can never change.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Cache policy for an exact version: the bytes never change, but the yank
/// state reported alongside them can, so caches keep it for minutes, not forever.
const EXACT_VERSION: &str = "public, max-age=300";
/// Cache policy for content behind a movable name (tags).
const REVALIDATE: &str = "public, no-cache";

/// Query of a publish.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PublishQuery {
    /// Expected `sha256:<hex>` of the body; the publish fails if it differs.
    pub digest: Option<String>,
}

/// Query of the listing.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only names starting with this.
    pub prefix: Option<String>,
    /// Page size (default 100, also when empty; clamped to 1000; 0 returns an empty page).
    pub n: Option<String>,
    /// Return names strictly after this one (the last name of the previous page).
    pub last: Option<String>,
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Stored content with its `Digest`, `ETag` and cache policy; `None` answers
/// 304 Not Modified (the caller found the client's copy current).
pub fn content_response(
    state: &AppState,
    digest: HeaderValue,
    etag: HeaderValue,
    cache: &'static str,
    bytes: Option<bytes::Bytes>,
) -> Response {
    // Room for every header of this response and those the outer layers
    // add (request id), so the map is allocated once and never grows.
    let mut headers = header::HeaderMap::with_capacity(RESPONSE_HEADERS);
    let mut resp = match bytes {
        Some(bytes) => {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Response::new(axum::body::Body::from(bytes))
        }
        None => {
            state.registry.metrics().not_modified();
            let mut r = Response::new(axum::body::Body::empty());
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            r
        }
    };
    headers.insert(DIGEST, digest);
    headers.insert(header::ETAG, etag);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    *resp.headers_mut() = headers;
    resp
}

/// Headers a content response carries at most (content type, digest, ETag,
/// cache control, pack version, yanked, request id), with room to spare.
const RESPONSE_HEADERS: usize = 12;

/// The `Digest` header.
const DIGEST: header::HeaderName = header::HeaderName::from_static("digest");
/// The exact version a reference resolved to.
const PACK_VERSION: header::HeaderName = header::HeaderName::from_static("banter-pack-version");
/// Present when that version is yanked.
const PACK_YANKED: header::HeaderName = header::HeaderName::from_static("banter-pack-yanked");

/// Publish a pack version.
#[utoipa::path(
    put,
    path = "/v1/packs/{name}/versions/{version}",
    tag = "packs",
    params(
        ("name" = String, Path, description = "Pack name"),
        ("version" = String, Path, description = "Semantic version"),
        PublishQuery,
    ),
    request_body(content = Object, content_type = "application/json", description = "The pack document; its name and version must match the URL"),
    responses(
        (status = 201, description = "New version stored", body = PublishResponse),
        (status = 200, description = "Identical bytes were already stored under this version", body = PublishResponse),
        (status = 400, description = "Malformed JSON, invalid name, version or digest", body = ErrorBody),
        (status = 401, description = "No bearer token", body = ErrorBody),
        (status = 403, description = "Token not accepted", body = ErrorBody),
        (status = 409, description = "The version exists with different content", body = ErrorBody),
        (status = 413, description = "Body over the size limit", body = ErrorBody),
        (status = 415, description = "Content type is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid pack; every violation with its JSON pointer", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
        (status = 507, description = "Storage full (disk, size cap or Redis maxmemory); nothing was stored", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn publish(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<PublishQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    authorize(&state.tokens, &headers)?;
    let Path((name, version)) = path.map_err(path_error)?;
    let Query(query) = query.map_err(query_error)?;
    require_json(&headers, PACK_MEDIA_TYPES)?;
    let bytes = read_body(&headers, body, state.registry.limits().max_pack_bytes, "PACK_TOO_LARGE")
        .await
        .inspect_err(|e| state.registry.metrics().validation_failure(e.code()))?;
    if bytes.is_empty() {
        state.registry.metrics().validation_failure("JSON_MALFORMED");
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "JSON_MALFORMED",
            "the body is empty; expected a JSON pack document",
        ));
    }
    let Published { created, digest, size } = state
        .registry
        .publish(&name, &version, bytes, query.digest.as_deref())
        .await?;
    let digest = digest.to_string();
    tracing::info!(pack = %name, %version, %digest, created, "published");
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    let location = format!("/v1/packs/{name}/versions/{version}");
    let mut resp = (
        status,
        Json(PublishResponse {
            name,
            version,
            digest: digest.clone(),
            size,
            created,
        }),
    )
        .into_response();
    let h = resp.headers_mut();
    h.insert(header::LOCATION, header_value(&location));
    let (digest, etag) = digest_headers(&digest);
    h.insert(DIGEST, digest);
    h.insert(header::ETAG, etag);
    Ok(resp)
}

/// Fetch a pack version's bytes, by exact version or tag.
#[utoipa::path(
    method(get, head),
    path = "/v1/packs/{name}/versions/{version}",
    tag = "packs",
    params(
        ("name" = String, Path, description = "Pack name"),
        ("version" = String, Path, description = "Exact version, or a tag such as `latest`"),
        ("If-None-Match" = Option<String>, Header, description = "Entity tag from an earlier response"),
    ),
    responses(
        (status = 200, description = "The pack exactly as published; `Digest`, `ETag`, `Banter-Pack-Version` headers", content_type = "application/json", body = Object),
        (status = 304, description = "Not modified"),
        (status = 400, description = "Invalid name, version or tag", body = ErrorBody),
        (status = 404, description = "No such pack, version or tag", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    )
)]
pub async fn get_version(
    State(state): State<AppState>,
    params: Result<RawPathParams, RawPathParamsRejection>,
    if_none_match: IfNoneMatch,
) -> Result<Response, ApiError> {
    let (name, reference) = two_params(&params)?;
    // A client that sends If-None-Match most likely has the content: its
    // read asks storage for the record only.
    let (resolved, read) = state
        .registry
        .resolve_for_read(name, reference, !if_none_match.present())
        .await?;
    let cache = if resolved.exact { EXACT_VERSION } else { REVALIDATE };
    // A current copy is answered from the resolution alone: no content read.
    let bytes = if if_none_match.matches(resolved.digest.as_bytes()) {
        None
    } else if let Some(bytes) = read {
        Some(bytes)
    } else {
        Some(state.registry.content(&resolved.record.digest).await?)
    };
    let mut resp = content_response(&state, resolved.digest.clone(), resolved.etag.clone(), cache, bytes);
    let h = resp.headers_mut();
    h.insert(PACK_VERSION, resolved.version.clone());
    if resolved.record.yanked {
        h.insert(PACK_YANKED, HeaderValue::from_static("true"));
    }
    Ok(resp)
}

/// Query of a pack's versions.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VersionsQuery {
    /// Versions per page (default and maximum 1000, also when empty; larger is clamped; 0 returns no versions).
    pub n: Option<String>,
    /// Return versions strictly after this one in precedence order (the last version of the previous page).
    pub last: Option<String>,
}

/// A pack's versions and tags, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/packs/{name}",
    tag = "packs",
    params(("name" = String, Path, description = "Pack name"), VersionsQuery),
    responses(
        (status = 200, description = "Versions (digest, size, published time, yanked) in precedence order, the explicit tags pointing at them and the effective `latest`; `Link: <...>; rel=\"next\"` while more versions remain", body = PackResponse),
        (status = 400, description = "Invalid name, n or last", body = ErrorBody),
        (status = 404, description = "No such pack", body = ErrorBody),
    )
)]
pub async fn pack(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<VersionsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(name) = path.map_err(path_error)?;
    let Query(q) = query.map_err(query_error)?;
    let n = page_size(q.n.as_deref(), MAX_PAGE)?;
    let (info, more) = state.registry.pack_page(&name, q.last.as_deref(), n).await?;
    let next = more.then(|| info.versions.last().map(|v| v.version.clone())).flatten();
    let mut resp = Json(PackResponse::from(info)).into_response();
    if let Some(last) = next {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("n", &n.to_string()).append_pair("last", &last);
        let link = format!("</v1/packs/{name}?{}>; rel=\"next\"", query.finish());
        resp.headers_mut().insert(header::LINK, header_value(&link));
    }
    Ok(resp)
}

/// List packs by name, paginated.
#[utoipa::path(
    get,
    path = "/v1/packs",
    tag = "packs",
    params(ListQuery),
    responses(
        (status = 200, description = "One page; `Link: <...>; rel=\"next\"` while more remain", body = PackList),
        (status = 400, description = "Invalid n or prefix", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(query_error)?;
    let n = page_size(q.n.as_deref(), DEFAULT_PAGE)?;
    let prefix = q.prefix.unwrap_or_default();
    let (packs, more) = state.registry.list(&prefix, q.last.as_deref(), n).await?;
    let next = more.then(|| packs.last().cloned()).flatten();
    let mut resp = Json(PackList { packs }).into_response();
    if let Some(last) = next {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("n", &n.to_string()).append_pair("last", &last);
        if !prefix.is_empty() {
            query.append_pair("prefix", &prefix);
        }
        let link = format!("</v1/packs?{}>; rel=\"next\"", query.finish());
        resp.headers_mut().insert(header::LINK, header_value(&link));
    }
    Ok(resp)
}

/// `n` of a paginated answer: `default` when absent or empty, clamped to
/// [`MAX_PAGE`]; any run of digits is valid, however long (large values are
/// clamped as documented, never refused for overflowing).
fn page_size(n: Option<&str>, default: usize) -> Result<usize, ApiError> {
    match n {
        None | Some("") => Ok(default),
        Some(s) if s.bytes().all(|b| b.is_ascii_digit()) => Ok(s.parse::<usize>().unwrap_or(MAX_PAGE).min(MAX_PAGE)),
        Some(s) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "PAGINATION_NUMBER_INVALID",
            format!("n must be a non-negative integer, got {s:?}"),
        )),
    }
}

/// Point a tag at a version.
#[utoipa::path(
    put,
    path = "/v1/packs/{name}/tags/{tag}",
    tag = "packs",
    params(
        ("name" = String, Path, description = "Pack name"),
        ("tag" = String, Path, description = "Tag: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}, never a version"),
    ),
    request_body = TagRequest,
    responses(
        (status = 200, description = "Tag set", body = TagResponse),
        (status = 400, description = "Invalid name, tag, version or body", body = ErrorBody),
        (status = 401, description = "No bearer token", body = ErrorBody),
        (status = 403, description = "Token not accepted", body = ErrorBody),
        (status = 404, description = "No such pack or version", body = ErrorBody),
        (status = 415, description = "Content type is not JSON", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
        (status = 507, description = "Storage full (disk, size cap or Redis maxmemory); nothing was stored", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn set_tag(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<TagResponse>, ApiError> {
    authorize(&state.tokens, &headers)?;
    let Path((name, tag)) = path.map_err(path_error)?;
    require_json(&headers, &["application/json"])?;
    let bytes = read_body(&headers, body, 4096, "BODY_TOO_LARGE").await?;
    let req: TagRequest = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "JSON_MALFORMED",
            format!("expected {{\"version\": \"<semver>\"}}: {e}"),
        )
    })?;
    let version = state.registry.set_tag(&name, &tag, &req.version).await?;
    tracing::info!(pack = %name, %tag, %version, "tag set");
    Ok(Json(TagResponse { name, tag, version }))
}

async fn set_yanked(
    state: AppState,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    yanked: bool,
) -> Result<Json<YankResponse>, ApiError> {
    authorize(&state.tokens, &headers)?;
    let Path((name, version)) = path.map_err(path_error)?;
    let version = state.registry.set_yanked(&name, &version, yanked).await?;
    tracing::info!(pack = %name, %version, yanked, "yank state set");
    Ok(Json(YankResponse { name, version, yanked }))
}

/// Yank a version: still fetchable by exact version, never resolved by `latest`.
#[utoipa::path(
    post,
    path = "/v1/packs/{name}/versions/{version}/yank",
    tag = "packs",
    params(("name" = String, Path, description = "Pack name"), ("version" = String, Path, description = "Exact version")),
    responses(
        (status = 200, description = "Yanked (idempotent)", body = YankResponse),
        (status = 401, description = "No bearer token", body = ErrorBody),
        (status = 403, description = "Token not accepted", body = ErrorBody),
        (status = 400, description = "Invalid name or version", body = ErrorBody),
        (status = 404, description = "No such pack or version", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
        (status = 507, description = "Storage full (disk, size cap or Redis maxmemory); nothing was stored", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn yank(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Json<YankResponse>, ApiError> {
    set_yanked(state, path, headers, true).await
}

/// Un-yank a version.
#[utoipa::path(
    delete,
    path = "/v1/packs/{name}/versions/{version}/yank",
    tag = "packs",
    params(("name" = String, Path, description = "Pack name"), ("version" = String, Path, description = "Exact version")),
    responses(
        (status = 200, description = "Un-yanked (idempotent)", body = YankResponse),
        (status = 401, description = "No bearer token", body = ErrorBody),
        (status = 403, description = "Token not accepted", body = ErrorBody),
        (status = 400, description = "Invalid name or version", body = ErrorBody),
        (status = 404, description = "No such pack or version", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
        (status = 507, description = "Storage full (disk, size cap or Redis maxmemory); nothing was stored", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn unyank(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Json<YankResponse>, ApiError> {
    set_yanked(state, path, headers, false).await
}

//! The HTTP API v1: routes, their documentation, and the middleware stack.

mod blobs;
pub mod error;
mod fallback;
mod gate;
mod meta;
pub mod model;
mod packs;
mod request;
mod request_context;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use packs::{DEFAULT_PAGE, MAX_PAGE};

use crate::registry::Registry;
use crate::tokens::LiveTokens;

/// What every handler can reach, behind one shared pointer: the router
/// clones the state for every request, and one reference count is cheaper
/// than the dozens inside the registry and its metrics.
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

/// The contents of [`AppState`].
pub struct AppParts {
    /// The registry rules over the backend.
    pub registry: Registry,
    /// Accepted publish tokens.
    pub tokens: Arc<LiveTokens>,
    /// Set when shutdown begins: readiness fails from then on.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
}

impl AppState {
    /// The state of a router over `parts`.
    pub fn new(parts: AppParts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

/// Limits of the HTTP layer.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Whole-request deadline.
    pub request_timeout: Duration,
    /// Requests served at once; more are answered 429.
    pub max_concurrent_requests: usize,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Banter pack registry",
        description = "Stores and serves versioned banter packs. Versions are immutable and content-addressed; errors use the OCI distribution shape.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    components(schemas(error::ErrorBody, error::ErrorEntry)),
    tags(
        (name = "packs", description = "Publish, fetch, list, tag and yank packs"),
        (name = "blobs", description = "Content-addressed bytes"),
        (name = "meta", description = "Stats, schema, health and metrics"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// The server's own rules for every path and query parameter, so the
/// document admits exactly the values the handlers accept.
struct ParameterRules;

impl utoipa::Modify for ParameterRules {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use banter_pack::{NAME_PATTERN, VERSION_PATTERN, reference_pattern, tag_pattern};
        use utoipa::openapi::path::ParameterIn;
        use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
        use utoipa::openapi::{RefOr, path::Operation};

        const DIGEST: &str = "^sha256:[0-9a-f]{64}$";
        let rule = |path: &str,
                    p: &ParameterIn,
                    name: &str,
                    reads: bool|
         -> Option<(String, Option<usize>, Option<usize>)> {
            Some(match (p, name) {
                // A pack's versions page after a version; the listing's `last` is any name.
                (ParameterIn::Query, "last") if path == "/v1/packs/{name}" => (VERSION_PATTERN.into(), Some(5), None),
                (ParameterIn::Path, "name") => (NAME_PATTERN.into(), Some(1), Some(63)),
                (ParameterIn::Path, "tag") => (tag_pattern(), Some(1), Some(128)),
                // GET and HEAD take a version or a tag; writes an exact version.
                (ParameterIn::Path, "version") if reads => (reference_pattern(), Some(1), None),
                (ParameterIn::Path, "version") => (VERSION_PATTERN.into(), Some(5), None),
                (ParameterIn::Path, "digest") | (ParameterIn::Query, "digest") => (DIGEST.into(), Some(71), Some(71)),
                // Empty means the default page size.
                (ParameterIn::Query, "n") => ("^[0-9]*$".into(), None, None),
                (ParameterIn::Query, "prefix") => ("^[a-z0-9-]*$".into(), None, None),
                _ => return None,
            })
        };
        let apply = |path: &str, op: &mut Operation, reads: bool| {
            for p in op.parameters.iter_mut().flatten() {
                if let Some((pattern, min, max)) = rule(path, &p.parameter_in, &p.name, reads) {
                    p.schema = Some(RefOr::T(Schema::Object(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .pattern(Some(pattern))
                            .min_length(min)
                            .max_length(max)
                            .build(),
                    )));
                }
            }
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            for op in [&mut item.get, &mut item.head].into_iter().flatten() {
                apply(path, op, true);
            }
            for op in [&mut item.put, &mut item.post, &mut item.delete].into_iter().flatten() {
                apply(path, op, false);
            }
        }
    }
}

/// Answers any route can give, whatever its handler does (middleware).
struct CommonResponses;

impl utoipa::Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{Ref, RefOr, ResponseBuilder, content::ContentBuilder};
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        let common = [
            ("408", "The request did not complete within the request timeout"),
            ("429", "Concurrent request limit reached; see Retry-After"),
            ("500", "Internal error"),
        ];
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.head,
            ]
            .into_iter()
            .flatten()
            {
                for (status, description) in common {
                    op.responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| RefOr::T(error(description)));
                }
            }
        }
    }
}

/// Documented routes and the OpenAPI document generated from their annotations.
fn documented() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(packs::publish, packs::get_version))
        .routes(routes!(packs::pack))
        .routes(routes!(packs::list))
        .routes(routes!(packs::set_tag))
        .routes(routes!(packs::yank, packs::unyank))
        .routes(routes!(blobs::blob))
        .routes(routes!(meta::stats))
        .routes(routes!(meta::schema))
        .routes(routes!(meta::healthz))
        .routes(routes!(meta::readyz))
        .routes(routes!(meta::metrics))
        .split_for_parts();
    // Applied after the routes are merged in: it edits every operation.
    utoipa::Modify::modify(&CommonResponses, &mut doc);
    utoipa::Modify::modify(&ParameterRules, &mut doc);
    (router, doc)
}

/// The OpenAPI document of this API, as served at `/openapi.json`: the
/// generated document with the pack JSON Schema as the publish body (its
/// `$defs` moved to `components.schemas`, so every `$ref` resolves) and the
/// tag body's version pattern.
pub fn openapi() -> serde_json::Value {
    let mut generated = documented().1;
    generated.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let mut doc = serde_json::to_value(&generated).unwrap_or_default();
    let mut pack = banter_pack::schema_value().clone();
    let defs = pack
        .as_object_mut()
        .map(|o| {
            o.remove("$schema");
            o.remove("$id");
            o.remove("$defs")
        })
        .unwrap_or_default();
    let schemas = &mut doc["components"]["schemas"];
    if let Some(defs) = defs.as_ref().and_then(serde_json::Value::as_object) {
        for (name, def) in defs {
            let mut def = def.clone();
            rewrite_refs(&mut def);
            schemas[format!("Pack_{name}")] = def;
        }
    }
    rewrite_refs(&mut pack);
    schemas["Pack"] = pack;
    schemas["TagRequest"]["properties"]["version"]["pattern"] = banter_pack::VERSION_PATTERN.into();
    doc["paths"]["/v1/packs/{name}/versions/{version}"]["put"]["requestBody"]["content"]["application/json"]["schema"] =
        serde_json::json!({"$ref": "#/components/schemas/Pack"});
    doc
}

/// `#/$defs/X` (inside the pack schema) → `#/components/schemas/Pack_X`.
fn rewrite_refs(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                match (k.as_str(), child.as_str()) {
                    ("$ref", Some(r)) if r.starts_with("#/$defs/") => {
                        *child = format!("#/components/schemas/Pack_{}", &r["#/$defs/".len()..]).into();
                    }
                    _ => rewrite_refs(child),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}

/// The complete application: the routes with the request gate (which needs
/// the matched route), wrapped once in the request context (id and span)
/// and panic layers. Those wrap the router rather than every route, so a request
/// clones one small stack instead of a boxed copy of all of them.
pub fn router(
    state: AppState,
    limits: HttpLimits,
) -> impl tower::Service<
    axum::extract::Request,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future: Send + 'static,
> + Clone
+ Send
+ Sync
+ 'static {
    let (routes, _) = documented();
    let doc = openapi().to_string();
    let doc: Arc<str> = doc.into();
    let openapi_json = get(move || {
        let doc = doc.clone();
        async move {
            let mut r = doc.to_string().into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
    });

    let gate = Arc::new(gate::Gate {
        routes: crate::metrics::RouteMetrics::new(state.registry.metrics().clone()),
        state: state.clone(),
        slots: Arc::new(tokio::sync::Semaphore::new(limits.max_concurrent_requests.max(1))),
        request_timeout: limits.request_timeout,
    });

    let routes = routes
        .route("/openapi.json", openapi_json)
        .fallback(fallback::not_found)
        .method_not_allowed_fallback(fallback::method_not_allowed)
        .layer(gate::GateLayer(gate))
        .with_state(state);
    tower::ServiceBuilder::new()
        .layer(request_context::RequestContextLayer)
        .service(routes)
}

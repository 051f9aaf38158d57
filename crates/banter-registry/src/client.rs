//! The command-line client of the HTTP API: publish, get, ls, tag, yank.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use clap::Args;
use reqwest::{Method, StatusCode};

use crate::api::error::ErrorBody;
use crate::api::model::{PackList, PackResponse, PublishResponse, TagResponse, YankResponse};

/// How to reach a registry.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Registry base URL.
    #[arg(
        long,
        env = "BANTER_REGISTRY_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub registry: String,

    /// File holding the publish token (first non-comment line).
    #[arg(long, env = "BANTER_REGISTRY_TOKEN_FILE", global = true)]
    pub token_file: Option<PathBuf>,

    /// Publish token (prefer --token-file: arguments are visible to other users).
    #[arg(long, env = "BANTER_REGISTRY_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
}

/// A connected client.
pub struct Client {
    base: url::Url,
    http: reqwest::Client,
    token: Option<String>,
}

/// Reads the pack's own `name` and `version` fields.
pub fn name_and_version(bytes: &[u8]) -> anyhow::Result<(String, String)> {
    #[derive(serde::Deserialize)]
    struct Head {
        name: String,
        version: String,
    }
    let head: Head = serde_json::from_slice(bytes)
        .context("not a pack: expected a JSON object with string fields name and version")?;
    Ok((head.name, head.version))
}

/// Splits `NAME`, `NAME@VERSION` or `NAME@TAG`; the reference defaults to
/// `latest`. An empty name or reference, or a second `@`, is a usage error.
pub fn split_ref(s: &str) -> anyhow::Result<(&str, &str)> {
    let (name, reference) = s.split_once('@').unwrap_or((s, "latest"));
    if name.is_empty() || reference.is_empty() || reference.contains('@') {
        anyhow::bail!("expected NAME, NAME@VERSION or NAME@TAG, got {s:?}");
    }
    Ok((name, reference))
}

fn read_token(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading token file {}", path.display()))?;
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("token file {} holds no token", path.display()))
}

impl Client {
    /// A client for `args`.
    pub fn new(args: &ClientArgs) -> anyhow::Result<Self> {
        let mut base =
            url::Url::parse(&args.registry).with_context(|| format!("invalid --registry URL {:?}", args.registry))?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let token = match (&args.token, &args.token_file) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(p)) => Some(read_token(p)?),
            (None, None) => None,
        };
        let http = reqwest::Client::builder()
            .user_agent(concat!("banter-registry/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(60))
            .build()?;
        Ok(Self { base, http, token })
    }

    fn url(&self, path: &str) -> anyhow::Result<url::Url> {
        self.base.join(path).with_context(|| format!("building URL for {path}"))
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, bool)>,
    ) -> anyhow::Result<reqwest::Response> {
        let url = self.url(path)?;
        let mut req = self.http.request(method.clone(), url.clone());
        if let Some((bytes, needs_auth)) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes);
            if needs_auth {
                req = self.auth(req)?;
            }
        } else if method != Method::GET {
            req = self.auth(req)?;
        }
        let resp = req.send().await.with_context(|| format!("{method} {url}"))?;
        if resp.status().is_success() || resp.status() == StatusCode::NOT_MODIFIED {
            return Ok(resp);
        }
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        Err(describe_error(status, &text))
    }

    fn auth(&self, req: reqwest::RequestBuilder) -> anyhow::Result<reqwest::RequestBuilder> {
        let token = self.token.as_deref().ok_or_else(|| {
            anyhow!("a publish token is needed: pass --token-file FILE (or set BANTER_REGISTRY_TOKEN_FILE)")
        })?;
        Ok(req.bearer_auth(token))
    }

    /// Publishes a pack file.
    pub async fn publish(&self, file: &Path) -> anyhow::Result<PublishResponse> {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let (name, version) = name_and_version(&bytes).with_context(|| file.display().to_string())?;
        let digest = banter_pack::Digest::of(&bytes);
        let path = format!("v1/packs/{}/versions/{}?digest={digest}", enc(&name), enc(&version));
        let resp = self.send(Method::PUT, &path, Some((bytes, true))).await?;
        Ok(resp.json().await?)
    }

    /// Fetches a pack's bytes by version or tag.
    pub async fn get(&self, name: &str, reference: &str) -> anyhow::Result<bytes::Bytes> {
        let path = format!("v1/packs/{}/versions/{}", enc(name), enc(reference));
        let resp = self.send(Method::GET, &path, None).await?;
        let expected = resp
            .headers()
            .get("digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = resp.bytes().await?;
        if let Some(expected) = expected {
            let actual = banter_pack::Digest::of(&bytes).to_string();
            if actual != expected {
                bail!("downloaded bytes have digest {actual}, but the registry announced {expected}");
            }
        }
        Ok(bytes)
    }

    /// A pack's versions and tags, following pagination.
    pub async fn pack(&self, name: &str) -> anyhow::Result<PackResponse> {
        let mut whole: Option<PackResponse> = None;
        let mut last: Option<String> = None;
        loop {
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            q.append_pair("n", "1000");
            if let Some(l) = &last {
                q.append_pair("last", l);
            }
            let resp = self
                .send(Method::GET, &format!("v1/packs/{}?{}", enc(name), q.finish()), None)
                .await?;
            let more = resp.headers().contains_key(reqwest::header::LINK);
            let page: PackResponse = resp.json().await?;
            last = page.versions.last().map(|v| v.version.clone());
            match whole.as_mut() {
                None => whole = Some(page),
                Some(w) => {
                    w.versions.extend(page.versions);
                    w.tags.extend(page.tags);
                }
            }
            if !more || last.is_none() {
                return whole.ok_or_else(|| anyhow::anyhow!("{name}: the registry answered no page"));
            }
        }
    }

    /// Every pack name with `prefix`, following pagination.
    pub async fn list(&self, prefix: &str) -> anyhow::Result<Vec<String>> {
        let mut names = Vec::new();
        let mut last: Option<String> = None;
        loop {
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            q.append_pair("n", "1000");
            if !prefix.is_empty() {
                q.append_pair("prefix", prefix);
            }
            if let Some(l) = &last {
                q.append_pair("last", l);
            }
            let resp = self
                .send(Method::GET, &format!("v1/packs?{}", q.finish()), None)
                .await?;
            let more = resp.headers().contains_key(reqwest::header::LINK);
            let page: PackList = resp.json().await?;
            last = page.packs.last().cloned();
            names.extend(page.packs);
            if !more || last.is_none() {
                return Ok(names);
            }
        }
    }

    /// Points a tag at a version.
    pub async fn tag(&self, name: &str, tag: &str, version: &str) -> anyhow::Result<TagResponse> {
        let body = serde_json::to_vec(&serde_json::json!({ "version": version }))?;
        let path = format!("v1/packs/{}/tags/{}", enc(name), enc(tag));
        Ok(self.send(Method::PUT, &path, Some((body, true))).await?.json().await?)
    }

    /// Yanks or un-yanks a version.
    pub async fn yank(&self, name: &str, version: &str, undo: bool) -> anyhow::Result<YankResponse> {
        let path = format!("v1/packs/{}/versions/{}/yank", enc(name), enc(version));
        let method = if undo { Method::DELETE } else { Method::POST };
        Ok(self.send(method, &path, None).await?.json().await?)
    }
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// One readable error from an API error body.
fn describe_error(status: StatusCode, body: &str) -> anyhow::Error {
    let Ok(parsed) = serde_json::from_str::<ErrorBody>(body) else {
        return anyhow!(
            "registry answered {status}: {}",
            body.chars().take(200).collect::<String>()
        );
    };
    let mut out = String::new();
    for e in parsed.errors {
        out.push_str(&format!("{status} {}: {}", e.code, e.message));
        if let Some(violations) = e
            .detail
            .as_ref()
            .and_then(|d| d.get("violations"))
            .and_then(|v| v.as_array())
        {
            for v in violations {
                let pointer = v.get("pointer").and_then(|p| p.as_str()).unwrap_or("");
                let message = v.get("message").and_then(|p| p.as_str()).unwrap_or("");
                out.push_str(&format!(
                    "\n  at {}: {message}",
                    if pointer.is_empty() { "/" } else { pointer }
                ));
            }
        }
    }
    anyhow!(out)
}

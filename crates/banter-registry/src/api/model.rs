//! JSON bodies of the API (the OpenAPI document is generated from these).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::registry::PackInfo;
use crate::storage::VersionRecord;

/// Answer to a publish.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PublishResponse {
    /// Pack name.
    pub name: String,
    /// Version as stored.
    pub version: String,
    /// `sha256:<hex>` of the bytes.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// True when this request stored a new version, false for an identical re-publish.
    pub created: bool,
}

/// One version in a pack listing.
#[derive(Debug, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct VersionEntry {
    /// Version as published.
    pub version: String,
    /// `sha256:<hex>` of the bytes.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// When it was published (RFC 3339, UTC).
    pub published_at: DateTime<Utc>,
    /// Yanked versions stay fetchable by exact version but never become `latest`.
    pub yanked: bool,
}

impl From<VersionRecord> for VersionEntry {
    fn from(v: VersionRecord) -> Self {
        Self {
            version: v.version,
            digest: v.digest.to_string(),
            size: v.size,
            published_at: v.published_at,
            yanked: v.yanked,
        }
    }
}

/// A pack's versions and tags.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PackResponse {
    /// Pack name.
    pub name: String,
    /// Versions in semver precedence order, oldest first.
    pub versions: Vec<VersionEntry>,
    /// Tag → version, including the effective `latest`.
    pub tags: BTreeMap<String, String>,
}

impl From<PackInfo> for PackResponse {
    fn from(p: PackInfo) -> Self {
        Self {
            name: p.name,
            versions: p.versions.into_iter().map(Into::into).collect(),
            tags: p.tags,
        }
    }
}

/// One page of pack names.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PackList {
    /// Pack names in name order.
    pub packs: Vec<String>,
}

/// Body of a tag update.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagRequest {
    /// The version the tag points at.
    pub version: String,
}

/// Answer to a tag update.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TagResponse {
    /// Pack name.
    pub name: String,
    /// Tag.
    pub tag: String,
    /// Version it now points at.
    pub version: String,
}

/// Answer to a yank or un-yank.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct YankResponse {
    /// Pack name.
    pub name: String,
    /// Version.
    pub version: String,
    /// The yank state now.
    pub yanked: bool,
}

/// Health or readiness.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HealthResponse {
    /// `ok`.
    pub status: String,
}

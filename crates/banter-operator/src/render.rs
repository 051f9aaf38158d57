//! `banter-operator render`: the objects `run` would apply, offline.

use banter_api::BanterRegistry;

use crate::children::{self, BuildInput};
use crate::discovery::OptionalApis;
use crate::{Error, Settings};

/// Token shown in place of the generated one: the real token is created
/// once in the cluster and never printed.
pub const RENDER_TOKEN_PLACEHOLDER: &str = "<generated-once-in-cluster>";
/// Uid shown in owner references when the input has none.
pub const RENDER_UID_PLACEHOLDER: &str = "<uid-of-the-BanterRegistry>";

/// Errors of `render`.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The input is not a BanterRegistry document.
    #[error("input is not a valid BanterRegistry: {0}")]
    Parse(#[from] serde_norway::Error),
    /// The spec is rejected (same rule as the CRD and the controller).
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// Building the children failed.
    #[error(transparent)]
    Build(#[from] Error),
}

/// Renders every child of the registry described by `yaml` as
/// multi-document YAML. A ServiceMonitor is rendered when requested,
/// as on a cluster that serves monitoring.coreos.com/v1.
pub fn render(yaml: &str, settings: &Settings) -> Result<String, RenderError> {
    let mut registry: BanterRegistry = serde_norway::from_str(yaml)?;
    registry.spec.validate().map_err(RenderError::InvalidSpec)?;
    let meta = &mut registry.metadata;
    if meta.namespace.is_none() {
        meta.namespace = Some("default".into());
    }
    if meta.uid.is_none() {
        meta.uid = Some(RENDER_UID_PLACEHOLDER.into());
    }
    let input = BuildInput::new(&registry, settings, OptionalApis::all(true), RENDER_TOKEN_PLACEHOLDER)?;
    let mut out = String::new();
    for child in children::desired(&input)? {
        out.push_str("---\n");
        out.push_str(&crate::yaml::to_string(&child.object)?);
    }
    Ok(out)
}

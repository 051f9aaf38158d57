//! Errors of the reconciler.

/// Everything a reconcile can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the Kubernetes API failed.
    #[error("kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    /// The finalizer helper failed (adding, running cleanup, removing).
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// An object could not be (de)serialized.
    #[error("serialization failed: {0}")]
    Serde(#[from] serde_json::Error),
    /// The watch caches have not finished their first list.
    #[error("the watch caches have not listed every child kind yet")]
    CacheNotSynced,
    /// The resource lacks metadata the operator relies on.
    #[error("resource is missing {0}")]
    MissingMetadata(&'static str),
    /// Handing the Deployment's replicas to the autoscaler failed (a stale
    /// cache, a conflict with the autoscaler): retried, never a spec error.
    #[error("handing spec.replicas over to the autoscaler failed")]
    ReplicasHandOver(#[source] kube::Error),
}

impl Error {
    /// Short, bounded label for the `reason` of the error metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Kube(e) => kube_reason(e),
            Self::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(inner)
                | kube::runtime::finalizer::Error::CleanupFailed(inner) => inner.reason(),
                kube::runtime::finalizer::Error::AddFinalizer(e)
                | kube::runtime::finalizer::Error::RemoveFinalizer(e) => kube_reason(e),
                _ => "Finalizer",
            },
            Self::Serde(_) => "Serialization",
            Self::MissingMetadata(_) => "MissingMetadata",
            Self::CacheNotSynced => "CacheNotSynced",
            Self::ReplicasHandOver(_) => "ReplicasHandOver",
        }
    }
}

fn kube_reason(e: &kube::Error) -> &'static str {
    match e {
        kube::Error::Api(status) => match status.code {
            409 => "Conflict",
            404 => "NotFound",
            403 => "Forbidden",
            422 => "Invalid",
            429 => "TooManyRequests",
            500..=599 => "ServerError",
            _ => "ApiError",
        },
        _ => "Transport",
    }
}

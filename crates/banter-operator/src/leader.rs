//! Leader election on a `coordination.k8s.io/v1` Lease, so two operator
//! replicas never reconcile at once.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};

/// One replica's handle on the Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    lease_duration: Duration,
    /// Another holder's record (holder and renewTime) and when this replica
    /// first saw it. Expiry is judged by local observation, as client-go
    /// does, so clock skew between replicas cannot steal or keep a lease.
    seen: Mutex<Option<(String, Instant)>>,
}

/// Whether a record first seen at `first_seen`, unchanged since, has expired at `now`.
pub fn expired_by_observation(first_seen: Instant, lease_seconds: i32, now: Instant) -> bool {
    let lease = Duration::from_secs(u64::try_from(lease_seconds.max(1)).unwrap_or(1));
    now.saturating_duration_since(first_seen) >= lease
}

impl LeaderElector {
    /// An elector for Lease `namespace/name` under `identity`.
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str, lease_duration: Duration) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            lease_duration,
            seen: Mutex::new(None),
        }
    }

    /// Whether another replica's unexpired claim stands, judged by when this
    /// replica last saw the record change.
    fn other_holds(&self, lease: &Lease) -> bool {
        let Some(spec) = &lease.spec else { return false };
        let holder = spec.holder_identity.as_deref().unwrap_or_default();
        if holder.is_empty() || holder == self.identity {
            return false;
        }
        let record = format!("{holder}|{:?}", spec.renew_time.as_ref().map(|t| t.0));
        let now = Instant::now();
        let Ok(mut seen) = self.seen.lock() else { return true };
        match seen.as_ref() {
            Some((r, first)) if *r == record => {
                !expired_by_observation(*first, spec.lease_duration_seconds.unwrap_or(15), now)
            }
            _ => {
                *seen = Some((record, now));
                true
            }
        }
    }

    /// Gives the Lease up (on shutdown), so a standby takes over at its
    /// next attempt instead of after a whole lease duration.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else { return Ok(()) };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        self.api.replace(&self.name, &PostParams::default(), &lease).await?;
        Ok(())
    }

    /// Takes or renews the Lease; `Ok(false)` when another replica holds it
    /// or won a race (optimistic concurrency through resourceVersion).
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let seconds = i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX);
        match self.api.get_opt(&self.name).await? {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.identity.clone()),
                        lease_duration_seconds: Some(seconds),
                        acquire_time: Some(MicroTime(now)),
                        renew_time: Some(MicroTime(now)),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Some(mut lease) => {
                if self.other_holds(&lease) {
                    return Ok(false);
                }
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
                    spec.holder_identity = Some(self.identity.clone());
                    spec.acquire_time = Some(MicroTime(now));
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                }
                spec.renew_time = Some(MicroTime(now));
                spec.lease_duration_seconds = Some(seconds);
                // replace carries the resourceVersion we read: a concurrent
                // writer makes this fail with 409 instead of both winning.
                match self.api.replace(&self.name, &PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Waits until this replica holds the Lease.
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => return,
                Ok(false) => tracing::debug!(lease = %self.name, "lease held by another replica"),
                Err(e) => tracing::warn!(error = %e, "leader election request failed"),
            }
            tokio::time::sleep(self.lease_duration / 5).await;
        }
    }

    /// Renews the Lease until a renewal is impossible for 2/3 of the lease
    /// duration; returns then, and the caller must stop reconciling.
    pub async fn hold(&self) {
        let deadline = self.lease_duration * 2 / 3;
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.lease_duration / 5).await;
            // A renewal request may hang (API-server failover, partition): it
            // must not outlive the deadline, or a standby could take the Lease
            // while this replica still reconciles.
            let remaining = deadline.saturating_sub(last_ok.elapsed());
            match tokio::time::timeout(remaining, self.try_acquire_or_renew()).await {
                Ok(Ok(true)) => last_ok = tokio::time::Instant::now(),
                Ok(Ok(false)) => {
                    tracing::error!(lease = %self.name, "leadership lost to another replica");
                    return;
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "renewing the lease failed"),
                Err(_) => tracing::warn!(lease = %self.name, "renewing the lease timed out"),
            }
            if last_ok.elapsed() >= deadline {
                tracing::error!(lease = %self.name, "could not renew the lease in time");
                return;
            }
        }
    }
}

//! Which optional APIs the cluster serves, found by discovery once and then
//! refreshed on a timer, never per reconcile.

use std::time::Duration;

use kube::Client;
use tokio::sync::watch;

use crate::Error;
use crate::children::ChildKind;

/// How often discovery is refreshed, so a CRD installed later is picked up.
pub const REFRESH: Duration = Duration::from_secs(60);

/// Which optional kinds (custom resources of other projects) are served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OptionalApis {
    /// Prometheus Operator `monitoring.coreos.com/v1` ServiceMonitor.
    pub service_monitor: bool,
    /// Prometheus Operator `monitoring.coreos.com/v1` PrometheusRule.
    pub prometheus_rule: bool,
    /// Gateway API `gateway.networking.k8s.io/v1` HTTPRoute.
    pub http_route: bool,
}

impl OptionalApis {
    /// Every optional kind served (`true`) or none.
    pub fn all(served: bool) -> Self {
        Self {
            service_monitor: served,
            prometheus_rule: served,
            http_route: served,
        }
    }

    /// Whether the optional `kind` is served (every other kind always is).
    pub fn serves(self, kind: ChildKind) -> bool {
        match kind {
            ChildKind::ServiceMonitor => self.service_monitor,
            ChildKind::PrometheusRule => self.prometheus_rule,
            ChildKind::HttpRoute => self.http_route,
            _ => true,
        }
    }
}

/// Cached discovery of the optional CRDs the operator uses.
pub struct Discovery {
    served: watch::Sender<OptionalApis>,
}

impl Discovery {
    /// Discovery with a known answer for every optional kind (tests, `render`).
    pub fn fixed(served: bool) -> Self {
        Self::with(OptionalApis::all(served))
    }

    /// Discovery with a known answer.
    pub fn with(apis: OptionalApis) -> Self {
        Self {
            served: watch::Sender::new(apis),
        }
    }

    /// The optional kinds served, as last seen.
    pub fn apis(&self) -> OptionalApis {
        *self.served.borrow()
    }

    /// Resolves once `kind` is served (at once if it is).
    pub async fn appears(&self, kind: ChildKind) {
        let mut rx = self.served.subscribe();
        // Err only when the sender is gone: then it never appears.
        if rx.wait_for(|served| served.serves(kind)).await.is_err() {
            futures::future::pending::<()>().await;
        }
    }

    /// Asks the API server once and records the answer.
    pub async fn refresh(&self, client: &Client) -> Result<(), Error> {
        let served = optional_served(client).await?;
        self.served.send_if_modified(|old| {
            let changed = *old != served;
            *old = served;
            changed
        });
        Ok(())
    }

    /// Refreshes every `REFRESH` for ever; a failed refresh keeps the last answer.
    pub async fn refresh_loop(&self, client: Client) {
        loop {
            tokio::time::sleep(REFRESH).await;
            if let Err(e) = self.refresh(&client).await {
                tracing::warn!(error = %e, "discovery refresh failed; keeping the last answer");
            }
        }
    }
}

/// Which optional kinds are served (one discovery GET per API group).
pub async fn optional_served(client: &Client) -> Result<OptionalApis, Error> {
    let monitoring = group_resources(client, "monitoring.coreos.com/v1").await?;
    let gateway = group_resources(client, "gateway.networking.k8s.io/v1").await?;
    Ok(OptionalApis {
        service_monitor: monitoring.iter().any(|r| r == "servicemonitors"),
        prometheus_rule: monitoring.iter().any(|r| r == "prometheusrules"),
        http_route: gateway.iter().any(|r| r == "httproutes"),
    })
}

/// The resource names `group_version` serves; none when it is not served.
async fn group_resources(client: &Client, group_version: &str) -> Result<Vec<String>, Error> {
    match client.list_api_group_resources(group_version).await {
        Ok(list) => Ok(list.resources.into_iter().map(|r| r.name).collect()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn appearance_wakes_waiters() {
        let d = std::sync::Arc::new(Discovery::with(OptionalApis {
            service_monitor: true,
            ..OptionalApis::default()
        }));
        let waiter = {
            let d = d.clone();
            tokio::spawn(async move { d.appears(ChildKind::PrometheusRule).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        d.served.send_replace(OptionalApis::all(true));
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("task");
        assert!(d.apis().prometheus_rule);
    }
}

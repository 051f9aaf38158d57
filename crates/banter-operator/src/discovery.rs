//! Which optional APIs the cluster serves, found by discovery once and then
//! refreshed on a timer, never per reconcile.

use std::time::Duration;

use kube::Client;
use tokio::sync::watch;

use crate::Error;
use crate::children::ChildKind;

/// How often discovery is refreshed, so a CRD installed later is picked up.
pub const REFRESH: Duration = Duration::from_secs(60);

/// Which Prometheus Operator kinds of `monitoring.coreos.com/v1` are served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MonitoringApis {
    /// ServiceMonitor.
    pub service_monitor: bool,
    /// PrometheusRule.
    pub prometheus_rule: bool,
}

impl MonitoringApis {
    /// Both served (`true`) or neither: they come in one CRD bundle.
    pub fn all(served: bool) -> Self {
        Self {
            service_monitor: served,
            prometheus_rule: served,
        }
    }

    /// Whether the optional `kind` is served (every other kind always is).
    pub fn serves(self, kind: ChildKind) -> bool {
        match kind {
            ChildKind::ServiceMonitor => self.service_monitor,
            ChildKind::PrometheusRule => self.prometheus_rule,
            _ => true,
        }
    }
}

/// Cached discovery of the optional CRDs the operator uses.
pub struct Discovery {
    served: watch::Sender<MonitoringApis>,
}

impl Discovery {
    /// Discovery with a known answer for both monitoring kinds (tests, `render`).
    pub fn fixed(served: bool) -> Self {
        Self::with(MonitoringApis::all(served))
    }

    /// Discovery with a known answer.
    pub fn with(apis: MonitoringApis) -> Self {
        Self {
            served: watch::Sender::new(apis),
        }
    }

    /// The monitoring kinds served, as last seen.
    pub fn monitoring(&self) -> MonitoringApis {
        *self.served.borrow()
    }

    /// Whether `monitoring.coreos.com/v1` ServiceMonitor is served, as last seen.
    pub fn service_monitor(&self) -> bool {
        self.monitoring().service_monitor
    }

    /// Resolves once `kind` is served (at once if it is).
    pub async fn appears(&self, kind: ChildKind) {
        let mut rx = self.served.subscribe();
        // Err only when the sender is gone: then it never appears.
        if rx.wait_for(|served| served.serves(kind)).await.is_err() {
            futures::future::pending::<()>().await;
        }
    }

    /// Resolves once ServiceMonitors are served (at once if they are).
    pub async fn service_monitor_appears(&self) {
        self.appears(ChildKind::ServiceMonitor).await;
    }

    /// Asks the API server once and records the answer.
    pub async fn refresh(&self, client: &Client) -> Result<(), Error> {
        let served = monitoring_served(client).await?;
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

/// Which kinds `monitoring.coreos.com/v1` serves (one discovery GET).
pub async fn monitoring_served(client: &Client) -> Result<MonitoringApis, Error> {
    match client.list_api_group_resources("monitoring.coreos.com/v1").await {
        Ok(list) => Ok(MonitoringApis {
            service_monitor: list.resources.iter().any(|r| r.name == "servicemonitors"),
            prometheus_rule: list.resources.iter().any(|r| r.name == "prometheusrules"),
        }),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(MonitoringApis::default()),
        Err(e) => Err(e.into()),
    }
}

/// Whether `monitoring.coreos.com/v1` serves ServiceMonitors (one discovery GET).
pub async fn service_monitor_served(client: &Client) -> Result<bool, Error> {
    Ok(monitoring_served(client).await?.service_monitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn appearance_wakes_waiters() {
        let d = std::sync::Arc::new(Discovery::with(MonitoringApis {
            service_monitor: true,
            prometheus_rule: false,
        }));
        let waiter = {
            let d = d.clone();
            tokio::spawn(async move { d.appears(ChildKind::PrometheusRule).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        d.served.send_replace(MonitoringApis::all(true));
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("task");
        assert!(d.monitoring().prometheus_rule);
    }
}

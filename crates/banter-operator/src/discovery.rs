//! Which optional APIs the cluster serves, found by discovery once and then
//! refreshed on a timer, never per reconcile.

use std::time::Duration;

use kube::Client;
use tokio::sync::watch;

use crate::Error;

/// How often discovery is refreshed, so a CRD installed later is picked up.
pub const REFRESH: Duration = Duration::from_secs(60);

/// Cached discovery of the optional CRDs the operator uses.
pub struct Discovery {
    service_monitor: watch::Sender<bool>,
}

impl Discovery {
    /// Discovery with a known answer (tests, `render`).
    pub fn fixed(service_monitor_served: bool) -> Self {
        Self {
            service_monitor: watch::Sender::new(service_monitor_served),
        }
    }

    /// Whether `monitoring.coreos.com/v1` ServiceMonitor is served, as last seen.
    pub fn service_monitor(&self) -> bool {
        *self.service_monitor.borrow()
    }

    /// Resolves once ServiceMonitors are served (at once if they are).
    pub async fn service_monitor_appears(&self) {
        let mut rx = self.service_monitor.subscribe();
        // Err only when the sender is gone: then it never appears.
        if rx.wait_for(|served| *served).await.is_err() {
            futures::future::pending::<()>().await;
        }
    }

    /// Asks the API server once and records the answer.
    pub async fn refresh(&self, client: &Client) -> Result<(), Error> {
        let served = service_monitor_served(client).await?;
        self.service_monitor.send_if_modified(|old| {
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

/// Whether `monitoring.coreos.com/v1` serves ServiceMonitors (one discovery GET).
pub async fn service_monitor_served(client: &Client) -> Result<bool, Error> {
    match client.list_api_group_resources("monitoring.coreos.com/v1").await {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == "servicemonitors")),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn appearance_wakes_waiters() {
        let d = std::sync::Arc::new(Discovery::fixed(false));
        let waiter = {
            let d = d.clone();
            tokio::spawn(async move { d.service_monitor_appears().await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        d.service_monitor.send_replace(true);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("task");
        assert!(d.service_monitor());
    }
}

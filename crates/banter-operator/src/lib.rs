#![warn(missing_docs)]
//! banter-operator: reconciles `BanterRegistry` resources into a running,
//! monitored pack registry.

pub mod api_metrics;
pub mod cache;
pub mod children;
pub mod cli;
pub mod conditions;
pub mod controller;
pub mod crd;
pub mod dashboards;
pub mod decode;
pub mod discovery;
pub mod drift;
pub mod error;
pub mod events;
pub mod labels;
pub mod leader;
pub mod metrics;
pub mod reconcile;
pub mod render;
pub mod settings;
pub mod status;
pub mod yaml;

pub use error::Error;
pub use settings::Settings;

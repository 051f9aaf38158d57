//! Grafana dashboards embedded at build time from `dashboards/`.

include!(concat!(env!("OUT_DIR"), "/dashboards.rs"));

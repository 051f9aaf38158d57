//! `banter-registry`: the banter-pack registry service, its storage backends
//! and its command line.

pub mod api;
pub mod archive;
pub mod blob_cache;
pub mod cli;
pub mod client;
pub mod config;
pub mod listener;
pub mod logging;
pub mod metrics;
pub mod registry;
pub mod resolve_cache;
pub mod scrub;
pub mod server;
pub mod storage;
pub mod tokens;

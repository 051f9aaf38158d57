//! The banter pack: its data model, its JSON Schema, the checks a registry
//! applies before accepting one, and the content digest that identifies it.
//!
//! Shared by the registry service and its command line so that a pack the CLI
//! accepts locally is exactly a pack the registry accepts.

mod digest;
mod duplicate;
mod model;
mod name;
mod schema;
mod validate;

pub use digest::{Digest, DigestError};
pub use duplicate::first_duplicate_key;
pub use model::{Line, Pack, Persona};
pub use name::{
    NAME_PATTERN, NameError, PackName, Reference, TAG_CHARS_PATTERN, TagName, VERSION_PATTERN, VersionError,
    parse_version, reference_pattern, tag_pattern, version_key,
};
pub use schema::{SCHEMA_JSON, schema_value};
pub use validate::{Limits, PackError, Violation, validate_pack};

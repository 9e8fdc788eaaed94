//! `skill_manifest.yaml`: the single source of the tool interface.
//!
//! The manifest is embedded in the binary at build time, so a server started from any
//! directory advertises exactly what the checked-in manifest declares. From it we
//! derive, at start-up:
//! - each tool's `inputSchema` ([`schema`]), flat JSON Schema 2020-12 objects;
//! - argument validation with messages that name the argument, the rule and the fix
//!   ([`args`]), applied before any GPU time is spent;
//! - whether a tool's typed arguments agree with its declaration ([`agree`]: types,
//!   enums, bounds, requiredness, defaults), for the registry's start-up check;
//! - the gate catalogue (rule + fix per gate id) that tools cite when they refuse;
//! - the sanity checks evaluated on every evidence document (parsed here into
//!   [`crate::evidence::sanity::SanityCheck`]s, evaluated by the evidence builder).
//!
//! Layering: the manifest reads YAML and shapes schemas; it never reaches up into the
//! tools. Output schemas are *handed* to [`schema::tool_specs`] by the tool registry,
//! which also checks at start-up that the manifest and the implementations agree.

pub(crate) mod agree;
pub mod args;
pub(crate) mod model;
pub mod schema;

pub(crate) use model::{Manifest, ManifestError, ToolDecl};
pub use schema::ToolSpec;

/// The manifest as checked in at build time.
pub(crate) const EMBEDDED_MANIFEST: &str = include_str!("../../skill_manifest.yaml");

/// Load and check the embedded manifest. A failure here is a build defect, caught by tests.
pub fn embedded() -> Result<Manifest, ManifestError> {
    Manifest::parse(EMBEDDED_MANIFEST)
}

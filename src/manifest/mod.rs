//! `skill_manifest.yaml`: the single source of the tool interface.
//!
//! The manifest is embedded in the binary at build time, so a server started from any
//! directory advertises exactly what the checked-in manifest declares. From it we
//! derive, at start-up:
//! - each tool's `inputSchema` ([`schema`]), flat JSON Schema 2020-12 objects;
//! - argument validation with messages that name the argument, the rule and the fix
//!   ([`args`]), applied before any GPU time is spent;
//! - the gate catalogue (rule + fix per gate id) that tools cite when they refuse;
//! - the sanity checks evaluated on every evidence document ([`sanity`]).

pub mod args;
pub mod model;
pub mod sanity;
pub mod schema;

pub use model::{ArgSpec, GateSpec, Manifest, ManifestError, ToolDecl};

/// The manifest as checked in at build time.
pub const EMBEDDED_MANIFEST: &str = include_str!("../../skill_manifest.yaml");

/// Hand-written schema documents the manifest refers to by path, embedded at build time
/// so the binary does not depend on its working directory. (The evidence schema is not
/// here: it is generated from the Rust types, see [`crate::evidence::evidence_schema`].)
pub const EMBEDDED_SCHEMAS: &[(&str, &str)] = &[
    (
        "schemas/inspect_report.schema.json",
        include_str!("../../schemas/inspect_report.schema.json"),
    ),
    (
        "schemas/labels.schema.json",
        include_str!("../../schemas/labels.schema.json"),
    ),
    (
        "verifiers/ct_segmentation_quality_v1/report.schema.json",
        include_str!("../../verifiers/ct_segmentation_quality_v1/report.schema.json"),
    ),
];

/// Load and check the embedded manifest. A failure here is a build defect, caught by tests.
pub fn embedded() -> Result<Manifest, ManifestError> {
    Manifest::parse(EMBEDDED_MANIFEST)
}

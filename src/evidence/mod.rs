//! The evidence document and the on-disk evidence pack.
//!
//! Format: `ctmr-skill.evidence/1`. Every field of the reference wrapper's JSON
//! (`skill`, `model`, `input`, `output`, `invocation`, `runtime`, `logs`,
//! `intended_use_disclaimer`) keeps its name and meaning so tooling built for the
//! reference keeps working; what the reference lacks is added beside it (`status`,
//! per-class rows keyed by id, hashes, versions, gate and sanity results). The JSON
//! Schema in `schemas/evidence.schema.json` is generated from these types
//! (`ctmr-skill schema`), so the two cannot drift.

pub mod document;
pub mod pack;

pub use document::*;
pub use pack::{write_pack, PackFiles, RunManifest, ValidationSummary};

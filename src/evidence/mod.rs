//! The evidence of a run and its pack on disk.
//!
//! Format: `ctmr-skill.evidence/1`. Every field of the reference wrapper's JSON
//! (`skill`, `model`, `input`, `output`, `invocation`, `runtime`, `logs`,
//! `intended_use_disclaimer`) keeps its name and meaning so tooling built for the
//! reference keeps working; what the reference lacks is added beside it (`status`,
//! per-class rows keyed by id, hashes, versions, gate and sanity results). The JSON
//! Schema in `schemas/evidence.schema.json` is generated from these types
//! (`ctmr-skill schema`), so the two cannot drift.
//!
//! | file | what |
//! |---|---|
//! | `document` | the types of `output.json` |
//! | `builder` | the document of one finished run, from the files it left; the pack write |
//! | `pack` | `manifest.json`, `validation_summary.json`, the atomic pack write |
//! | `sanity` | the manifest's sanity checks, evaluated on every document |
//! | `cohort` | `cohort.json` / `cohort_volumes.csv`, the evidence of a batch |

pub(crate) mod builder;
pub mod cohort;
pub(crate) mod document;
pub(crate) mod pack;
pub(crate) mod replay;
pub mod sanity;

pub(crate) use builder::{
    write_evidence, InputHashes, RunFacts, RunIds, Skill, UpstreamRun, PREVIEW_FILE,
};
pub use document::*;

//! # ctmr-skill
//!
//! A stdio MCP tool-server and CLI that runs NVIDIA's NV-Segment-CTMR MONAI bundle
//! through its documented entry point and returns *evidence*: JSON that a separate
//! verifier can check without trusting us. **Not for clinical use.**
//!
//! Contributors: start with `docs/ARCHITECTURE.md` (the path of one call, where to change X).
//!
//! ## Layout: layers, and what each may use
//! Dependencies point down only: a module uses modules of its own layer's lower rows
//! and of the layers below, never one above (tests excepted). The test
//! `tests/it/layers.rs` reads the sources and fails on an upward reference.
//!
//! | layer | module | concern | may use |
//! |---|---|---|---|
//! | 1 foundations | [`files`] | bounded, non-blocking reads of regular files only (no FIFOs, devices) | std |
//! | | [`atomic`] | write-then-rename, so no file is ever half-written | std |
//! | | [`nifti`] | streaming NIfTI-1/-2 reader with nibabel's semantics | std, `files` |
//! | | [`json_schema`] | the one JSON Schema generator (from Rust types) | std |
//! | | [`config`] | the environment, read once at start-up and passed down | std |
//! | | [`call`] | progress, call context, tool outcome: what a running call deals in | std |
//! | 2 domain | [`inspect`] | one-pass label-map statistics, components, intensities, confusion, geometry | layer 1 |
//! | | [`labels`] | the upstream label table, everything-sets, prompts, name resolution, sidecars | layer 1 |
//! | | [`render`] | pictures: the overlay montage of a label map, the cohort volume plot | layer 1, `inspect`, `labels` |
//! | | [`upstream`] | bundle roots, the documented argv, the supervised child process | layer 1 |
//! | | [`cluster`] | Slurm: task placement and states, the job script, sbatch/squeue/scontrol/scancel | layer 1 |
//! | | [`verifier`] | the paired verifier `ct_segmentation_quality_v1` | layer 1, `inspect`, `labels`, `render` |
//! | | [`evidence`] | the evidence document, its builder, sanity checks, packs, cohorts | layer 1, `inspect`, `labels`, `render`, `upstream`, `dicom`, `cluster` |
//! | | [`jobs`] | background runs: the one job table, run records, the runs index | layer 1 |
//! | | [`dicom`] | a DICOM series (directory or zip) checked and converted to NIfTI, no patient data | layer 1 |
//! | | [`runner`] | run infrastructure: run slots per device, the environment-probe cache, the warm workers | layer 1, `upstream`, `evidence` |
//! | 3 interface | [`manifest`] | `skill_manifest.yaml`: argument validation, input schemas, gates, tool specs | layers 1-2 |
//! | 4 tools | [`tools`] | one file per tool behind one `Tool` trait; the registry | layers 1-3 |
//! | 5 faces | [`server`] | the MCP stdio server (rmcp), confined to one module | layers 1-4 |
//! | | [`cli`] | clap arguments, subcommands, exit codes, the progress bar | layers 1-4, `server` |

// These docs are for contributors: the layer table and the module docs link to
// crate-private modules on purpose. `scripts/test.sh` builds them with
// `--document-private-items`, so every such link is checked.
#![allow(rustdoc::private_intra_doc_links)]

mod atomic;
pub mod call;
pub mod cli;
mod cluster;
pub mod config;
mod dicom;
pub mod evidence;
mod files;
pub mod inspect;
pub mod jobs;
mod json_schema;
pub mod labels;
pub mod manifest;
pub mod nifti;
mod render;
pub mod runner;
pub mod server;
pub mod tools;
pub mod upstream;
pub mod verifier;

/// The statement every output carries.
pub const NOT_FOR_CLINICAL_USE: &str = "Research and benchmarking use only. Not for clinical use: \
outputs are not diagnoses and have no diagnostic validity.";

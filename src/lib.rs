//! # ctmr-skill
//!
//! A stdio MCP tool-server and CLI that runs NVIDIA's NV-Segment-CTMR MONAI bundle
//! through its documented entry point and returns *evidence*: JSON that a separate
//! verifier can check without trusting us. **Not for clinical use.**
//!
//! ## Layout
//! Each concern has its own module, with a pure, testable core and I/O at the edges:
//!
//! | module | concern |
//! |---|---|
//! | [`cli`] | argument parsing, exit codes |
//! | [`config`] | what the process learns from its environment, read once |
//! | [`commands`] | the CLI subcommands, each a thin face over the library |
//! | [`progress_bar`] | the CLI's progress bar on a terminal (pure renderer, throttled redraws) |
//! | [`nifti`] | streaming NIfTI-1/-2 reader with nibabel's semantics (affine, zooms, scaling) |
//! | [`inspect`] | one-pass label-map statistics, components, intensities, two-map confusion, geometry |
//! | [`labels`] | the upstream label table, everything-sets, prompt expansion, name resolution, sidecars |
//! | [`manifest`] | `skill_manifest.yaml`: argument gates, JSON Schema generation, sanity checks |
//! | [`upstream`] | bundle-root resolution, the documented argv, the supervised child process |
//! | [`evidence`] | the evidence document and the on-disk evidence pack |
//! | [`jobs`] | background runs (`wait: false` and MCP tasks): the one job table, on-disk run records, the runs index |
//! | [`tools`] | one file per tool (`run_script`, `inspect_label_map`, ...): parse, execute, document; run slots per device |
//! | [`server`] | the MCP stdio server (rmcp), confined to one module |
//! | [`verifier`] | the paired verifier `ct_segmentation_quality_v1` |
//! | [`atomic`] | write-then-rename so no evidence file is ever half-written |

pub mod atomic;
pub mod cli;
pub mod commands;
pub mod config;
pub mod evidence;
pub mod inspect;
pub mod jobs;
pub mod labels;
pub mod manifest;
pub mod nifti;
pub mod progress_bar;
pub mod server;
pub mod tools;
pub mod upstream;
pub mod verifier;

/// The statement every output carries.
pub const NOT_FOR_CLINICAL_USE: &str = "Research and benchmarking use only. Not for clinical use: \
outputs are not diagnoses and have no diagnostic validity.";

//! The integration tests, one binary with a module per area: one link instead of forty
//! (a clean `cargo test --no-run` spent most of its time linking a binary per file).
//! Kept apart: `server_stdio` (its own harness), `nifti_props` (a counting global
//! allocator) and `nifti_streaming` (it measures its own resident memory).

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod inspect_reference;
mod jobs;
mod knobs;
mod labels_bundle;
mod labels_monai;
mod labels_sidecars;
mod layers;
mod nifti_reader;
mod protocol_stdio;
mod render;
mod run_batch;
mod run_batch_tasks;
mod run_script;
mod run_verify_mcp;
mod sandbox_demo_bundle;
mod sandbox_supervise;
mod schemas_current;
mod server_wire;
mod slurm_cluster;
mod tool_names;
mod transport_props;
mod trust_boundary;
mod untrusted_files;
mod upstream_argv;
mod upstream_demo_bundle;
mod upstream_isolation;
mod upstream_monai;
mod upstream_probe;
mod upstream_supervise;
mod verifier_bounds;
mod verifier_cli;
mod verifier_mri_body;
mod verifier_packs;
mod verifier_real_pack;
mod verifier_reference_packs;
mod verifier_surface;
mod warm_serve;
mod warm_worker;

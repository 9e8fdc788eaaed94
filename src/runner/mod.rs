//! Run infrastructure: what the run tools share to place and execute an upstream run,
//! kept apart from the tools so `tools/` holds the registry and one file (or folder)
//! per tool.
//!
//! - [`slots`]: the concurrency limit on upstream runs, one queue per device;
//! - [`probe_cache`]: the environment probe, once per interpreter, bundle and device;
//! - [`workers`]: the warm workers of `serve` (one loaded model per interpreter,
//!   bundle and device) and their listing for `doctor`.
//!
//! None of it knows a tool: `run_script` and `run_batch` use it, the CLI and the
//! server build the shared pieces ([`slots::RunSlots`], [`workers::Workers`]).

pub(crate) mod probe_cache;
pub mod slots;
pub(crate) mod workers;

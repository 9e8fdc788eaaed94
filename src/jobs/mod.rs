//! The job table behind `wait: false`, `get_run`, `list_runs` and the server's MCP
//! tasks (a task id is a run id): one table, so a run started either way is seen
//! either way, and both survive a restart of the server.
//!
//! Why on disk as well as in memory: a client that started a long run must be able to
//! find it again after the server restarted. Each run writes a small record
//! (`<pack>/.runs/<run_id>.json`, atomically, at start and at end) into its own pack,
//! and a pointer to that record into the runs index directory (`CTMR_SKILL_RUNS_DIR`,
//! else `$XDG_STATE_HOME/ctmr-skill/runs`, else `~/.local/state/ctmr-skill/runs`,
//! else `<cwd>/.ctmr-skill/runs`). Listing reads the index; a record still `running`
//! whose process is gone is rewritten as `interrupted`.
//!
//! The map: [`record`] holds what a run is (its state, record and views, and the
//! run id); [`index`] holds the runs index's pointers and what the server believes of
//! a record read from a pack; [`table`] is the [`JobTable`] that starts, follows and
//! lists runs; [`child`] and [`inventory`] are the upstream child and the files a run
//! wrote.

mod child;
mod index;
pub(crate) mod inventory;
mod record;
mod table;

pub(crate) use child::ChildProcess;
pub(crate) use inventory::Inventory;
#[cfg(test)]
pub(crate) use record::RUN_RECORD_SCHEMA_VERSION;
pub(crate) use record::{new_run_id, valid_run_id, RunList};
pub use record::{ProgressView, RunRecord, RunState, RunView};
pub use table::JobTable;

#[cfg(test)]
mod tests;

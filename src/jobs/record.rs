//! What a run is, as records, `get_run` and `list_runs` show it: its state, the
//! record written into its pack, the views built from it, and the form of a run id.
//! Plain data, so the table and the index share one definition of it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ChildProcess;

pub(crate) const RUN_RECORD_SCHEMA_VERSION: &str = "ctmr-skill.run/1";

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    /// The tool returned a result without error (for a batch: some volumes succeeded).
    Succeeded,
    /// The tool returned an error result (upstream failure, refusal, nothing segmented).
    Failed,
    Cancelled,
    /// It was running when its server stopped; it will not finish.
    Interrupted,
}

impl RunState {
    /// The word the records use (`running`, `interrupted`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
            RunState::Interrupted => "interrupted",
        }
    }
}

/// The last progress report of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProgressView {
    pub progress: f64,
    pub total: Option<f64>,
    pub message: Option<String>,
    /// When it was reported (RFC 3339).
    pub at: String,
}

/// The run record: in the pack, in `list_runs`, and returned by a `wait: false` call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunRecord {
    /// `ctmr-skill.run/1`.
    pub schema_version: String,
    /// Pass to `get_run`.
    pub run_id: String,
    /// `run_script` or `run_batch`.
    pub tool: String,
    pub state: RunState,
    /// The evidence pack (run_script) or output root (run_batch).
    pub pack_dir: String,
    /// The result document once finished: `output.json` or `cohort.json` in pack_dir.
    pub result_file: String,
    /// Whether this run wrote `result_file` (false while running, and for a call
    /// refused before anything ran: a file there then belongs to another run).
    #[serde(default = "written_by_default")]
    pub result_written: bool,
    /// The server process that ran it.
    pub pid: u32,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// The tool's summary or error message once finished.
    pub message: Option<String>,
    /// The latest progress (while running, from the live server only).
    pub progress: Option<ProgressView>,
    /// The upstream process group the run started last, so a restarted server can end
    /// it if it outlived its server. Absent in records written before this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child: Option<ChildProcess>,
}

/// `get_run`'s answer: the record, and the result document when there is one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunView {
    pub run: RunRecord,
    /// The evidence (run_script) or cohort summary (run_batch) once finished.
    #[schemars(with = "Option<serde_json::Map<String, Value>>")]
    pub result: Option<Value>,
}

/// `list_runs`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct RunList {
    pub runs_dir: String,
    /// Newest first.
    pub runs: Vec<RunRecord>,
}

/// A fresh run id: UTC time and a random suffix (`20261204T153000Z-1a2b3c4d`).
pub(crate) fn new_run_id() -> String {
    format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// Whether `id` has the form [`new_run_id`] gives (`20261204T153000Z-1a2b3c4d`).
/// Ids come from clients: only this form ever touches the file system, so `../x`
/// or an absolute path can never name a file.
pub(crate) fn valid_run_id(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() == 25
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z'
        && b[16] == b'-'
        && b[17..]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
}

/// Records written before `result_written` existed pointed at their result.
fn written_by_default() -> bool {
    true
}

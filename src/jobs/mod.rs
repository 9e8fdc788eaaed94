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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::tools::{Progress, ToolOutcome};

pub const RUN_RECORD_SCHEMA_VERSION: &str = "ctmr-skill.run/1";
/// Environment variable naming the runs index directory.
pub const RUNS_DIR_ENV: &str = "CTMR_SKILL_RUNS_DIR";

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
pub struct RunList {
    pub runs_dir: String,
    /// Newest first.
    pub runs: Vec<RunRecord>,
}

/// The runs index directory from the environment's values (pure).
pub fn index_dir(
    runs_env: Option<&str>,
    xdg_state_home: Option<&str>,
    home: Option<&str>,
    cwd: &Path,
) -> PathBuf {
    let set = |v: Option<&str>| {
        v.map(str::trim)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = set(runs_env) {
        return cwd.join(dir);
    }
    if let Some(state) = set(xdg_state_home).filter(|p| p.is_absolute()) {
        return state.join("ctmr-skill/runs");
    }
    if let Some(home) = set(home).filter(|p| p.is_absolute()) {
        return home.join(".local/state/ctmr-skill/runs");
    }
    cwd.join(".ctmr-skill/runs")
}

/// A pointer in the index.
#[derive(Debug, Serialize, Deserialize)]
struct Pointer {
    run_id: String,
    record: PathBuf,
}

struct Live {
    record: RunRecord,
    record_path: PathBuf,
    cancel: CancellationToken,
    result: Option<Value>,
}

/// Runs started by this server, plus the index of every run.
pub struct JobTable {
    index: PathBuf,
    live: Mutex<HashMap<String, Live>>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339()
}

/// Records written before `result_written` existed pointed at their result.
fn written_by_default() -> bool {
    true
}

fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    pid > 0
        && (unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
}

impl JobTable {
    /// A table over `index`; records left `running` by dead servers are marked
    /// `interrupted` now.
    pub fn new(index: PathBuf) -> Self {
        let table = JobTable {
            index,
            live: Mutex::new(HashMap::new()),
        };
        let _ = table.list();
        table
    }

    pub fn index(&self) -> &Path {
        &self.index
    }

    /// Register a run and write its record and pointer. The cancel token ends it.
    pub fn start(
        &self,
        tool: &str,
        pack_dir: &Path,
        result_file: &str,
    ) -> std::io::Result<(RunRecord, CancellationToken)> {
        let run_id = crate::tools::run_script::run::new_run_id();
        let record = RunRecord {
            schema_version: RUN_RECORD_SCHEMA_VERSION.into(),
            run_id: run_id.clone(),
            tool: tool.into(),
            state: RunState::Running,
            pack_dir: pack_dir.display().to_string(),
            result_file: result_file.into(),
            result_written: false,
            pid: std::process::id(),
            started_at: now(),
            finished_at: None,
            message: None,
            progress: None,
        };
        let record_path = pack_dir.join(".runs").join(format!("{run_id}.json"));
        crate::atomic::write_json(&record_path, &record)?;
        crate::atomic::write_json(
            &self.index.join(format!("{run_id}.json")),
            &Pointer {
                run_id: run_id.clone(),
                record: record_path.clone(),
            },
        )?;
        let cancel = CancellationToken::new();
        self.lock().insert(
            run_id,
            Live {
                record: record.clone(),
                record_path,
                cancel: cancel.clone(),
                result: None,
            },
        );
        Ok((record, cancel))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The latest progress of a live run.
    pub fn progress(&self, run_id: &str, p: &Progress) {
        if let Some(live) = self.lock().get_mut(run_id) {
            live.record.progress = Some(ProgressView {
                progress: p.progress,
                total: p.total,
                message: p.message.clone(),
                at: now(),
            });
        }
    }

    /// Record how a live run ended (memory and disk).
    pub fn finish(&self, run_id: &str, outcome: &ToolOutcome, cancelled: bool) {
        let mut live = self.lock();
        let Some(entry) = live.get_mut(run_id) else {
            return;
        };
        let (state, message, result) = match outcome {
            ToolOutcome::Success {
                structured,
                summary,
            } => (
                RunState::Succeeded,
                summary.clone(),
                Some(structured.clone()),
            ),
            ToolOutcome::Failure {
                message,
                structured,
            } => (
                if cancelled {
                    RunState::Cancelled
                } else {
                    RunState::Failed
                },
                message.clone(),
                structured.clone(),
            ),
        };
        entry.record.state = state;
        entry.record.result_written = result.is_some();
        entry.record.message = Some(message);
        entry.record.finished_at = Some(now());
        entry.result = result;
        let mut on_disk = entry.record.clone();
        on_disk.progress = None;
        if let Err(e) = crate::atomic::write_json(&entry.record_path, &on_disk) {
            tracing::warn!(
                "run record {} not written: {e}",
                entry.record_path.display()
            );
        }
    }

    /// Cancel a live run; false when it is not running here.
    pub fn cancel(&self, run_id: &str) -> bool {
        match self.lock().get(run_id) {
            Some(live) if live.record.state == RunState::Running => {
                live.cancel.cancel();
                true
            }
            _ => false,
        }
    }

    /// One run: live state first, else the record on disk (marked interrupted if its
    /// server is gone), with the result document read from the pack when finished.
    pub fn get(&self, run_id: &str) -> Option<RunView> {
        if let Some(live) = self.lock().get(run_id) {
            let result = live.result.clone().or_else(|| {
                (live.record.state != RunState::Running)
                    .then(|| read_result(&live.record))
                    .flatten()
            });
            return Some(RunView {
                run: live.record.clone(),
                result,
            });
        }
        let pointer: Pointer = read_json(&self.index.join(format!("{run_id}.json")))?;
        let record = self.settle(&pointer.record)?;
        let result = (record.state != RunState::Running)
            .then(|| read_result(&record))
            .flatten();
        Some(RunView {
            run: record,
            result,
        })
    }

    /// Every run in the index, newest first.
    pub fn list(&self) -> Vec<RunRecord> {
        let Ok(entries) = std::fs::read_dir(&self.index) else {
            return Vec::new();
        };
        let mut runs: Vec<RunRecord> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .filter_map(|e| read_json::<Pointer>(&e.path()))
            .filter_map(|p| {
                if let Some(live) = self.lock().get(&p.run_id) {
                    return Some(live.record.clone());
                }
                self.settle(&p.record)
            })
            .collect();
        runs.sort_by(|a, b| {
            b.started_at
                .cmp(&a.started_at)
                .then(b.run_id.cmp(&a.run_id))
        });
        runs
    }

    /// A record from disk; one left `running` by a server that is gone becomes
    /// `interrupted` (and is rewritten so).
    fn settle(&self, path: &Path) -> Option<RunRecord> {
        let mut record: RunRecord = read_json(path)?;
        let ours = self.lock().contains_key(&record.run_id);
        if record.state == RunState::Running
            && !ours
            && !(record.pid != std::process::id() && pid_alive(record.pid))
        {
            record.state = RunState::Interrupted;
            record.message = Some(format!(
                "the server (pid {}) stopped while this run was in flight; start it again (run_batch resumes finished volumes)",
                record.pid
            ));
            if let Err(e) = crate::atomic::write_json(path, &record) {
                tracing::warn!("run record {} not rewritten: {e}", path.display());
            }
        }
        Some(record)
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn read_result(record: &RunRecord) -> Option<Value> {
    if !record.result_written {
        return None;
    }
    read_json(&Path::new(&record.pack_dir).join(&record.result_file))
}

/// The output schema of a tool that answers either with `base` (waited) or with a
/// [`RunRecord`] (`wait: false`).
pub fn waited_or_started_schema(base: Value, what: &str) -> Value {
    let strip = |mut v: Value| {
        if let Some(o) = v.as_object_mut() {
            o.remove("$schema");
        }
        v
    };
    let started = schema_of::<RunRecord>();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": format!("{what}, or the run record of a call made with wait: false"),
        "type": "object",
        "anyOf": [strip(base), strip(started)],
    })
}

/// A root schema of `T` (2020-12, inlined), without schemars' Rust number formats.
pub fn schema_of<T: JsonSchema>() -> Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .into_generator();
    let mut schema =
        serde_json::to_value(generator.into_root_schema_for::<T>()).expect("schema serialises");
    strip_number_formats(&mut schema);
    schema
}

/// schemars writes Rust number types (`uint32`, `double`, ...) as `format`s, which are
/// not JSON Schema formats; MCP clients' validators warn on each one.
pub fn strip_number_formats(node: &mut Value) {
    const RUST_NUMBERS: [&str; 12] = [
        "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64",
        "float", "double",
    ];
    match node {
        Value::Object(map) => {
            if map
                .get("format")
                .and_then(Value::as_str)
                .is_some_and(|f| RUST_NUMBERS.contains(&f))
            {
                map.remove("format");
            }
            map.values_mut().for_each(strip_number_formats);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_number_formats),
        _ => {}
    }
}

/// The schemas this module and `run_batch` add, by their manifest paths: embedded for
/// the tools' outputSchemas and written under `schemas/` by `ctmr-skill schema`.
pub fn extra_schemas() -> Vec<(&'static str, Value)> {
    use crate::tools::run_batch::cohort::{cohort_schema, COHORT_SCHEMA_PATH};
    vec![
        (COHORT_SCHEMA_PATH, cohort_schema()),
        (
            "schemas/run_script.result.schema.json",
            waited_or_started_schema(crate::evidence::evidence_schema(), "The evidence document"),
        ),
        (
            "schemas/run_batch.result.schema.json",
            waited_or_started_schema(cohort_schema(), "The cohort summary"),
        ),
        ("schemas/run_view.schema.json", schema_of::<RunView>()),
        ("schemas/run_list.schema.json", schema_of::<RunList>()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_schemas_carry_no_rust_number_formats() {
        for (path, schema) in extra_schemas() {
            let text = serde_json::to_string(&schema).unwrap();
            for f in ["uint", "int32", "int64", "double", "float"] {
                assert!(
                    !text.contains(&format!("\"format\":\"{f}")),
                    "{path} has format {f}"
                );
            }
        }
    }

    #[test]
    fn index_dir_precedence() {
        let cwd = Path::new("/work/here");
        assert_eq!(
            index_dir(Some("runs"), Some("/state"), Some("/home/u"), cwd),
            PathBuf::from("/work/here/runs")
        );
        assert_eq!(
            index_dir(Some(" "), Some("/state"), Some("/home/u"), cwd),
            PathBuf::from("/state/ctmr-skill/runs")
        );
        assert_eq!(
            index_dir(None, Some("relative"), Some("/home/u"), cwd),
            PathBuf::from("/home/u/.local/state/ctmr-skill/runs")
        );
        assert_eq!(
            index_dir(None, None, None, cwd),
            PathBuf::from("/work/here/.ctmr-skill/runs")
        );
    }

    #[test]
    fn records_survive_a_restart_and_dead_runs_become_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let index = dir.path().join("index");
        let pack = dir.path().join("pack");
        let table = JobTable::new(index.clone());
        let (done, _) = table.start("run_script", &pack, "output.json").unwrap();
        let (running, cancel) = table.start("run_batch", &pack, "cohort.json").unwrap();
        std::fs::write(pack.join("output.json"), r#"{"status": "succeeded"}"#).unwrap();
        table.progress(
            &running.run_id,
            &Progress {
                progress: 1.0,
                total: Some(3.0),
                message: Some("1/3 volumes done".into()),
                item: None,
            },
        );
        table.finish(
            &done.run_id,
            &ToolOutcome::Success {
                structured: json!({"status": "succeeded"}),
                summary: "ok".into(),
            },
            false,
        );
        let live = table.get(&running.run_id).unwrap();
        assert_eq!(live.run.state, RunState::Running);
        assert_eq!(live.run.progress.as_ref().unwrap().progress, 1.0);
        assert!(table.cancel(&running.run_id));
        assert!(cancel.is_cancelled());
        assert!(!table.cancel(&done.run_id));

        // A restarted server: same index, nothing live. The finished run is listed
        // with its result; the one in flight was this (now "dead") process's, so it is
        // interrupted. Simulate the dead server by rewriting its pid to one that
        // cannot exist.
        let record_path = pack.join(".runs").join(format!("{}.json", running.run_id));
        let mut record: RunRecord = read_json(&record_path).unwrap();
        record.pid = i32::MAX as u32;
        crate::atomic::write_json(&record_path, &record).unwrap();
        drop(table);
        let restarted = JobTable::new(index);
        let runs = restarted.list();
        assert_eq!(runs.len(), 2);
        let state = |id: &str| runs.iter().find(|r| r.run_id == id).unwrap().state;
        assert_eq!(state(&done.run_id), RunState::Succeeded);
        assert_eq!(state(&running.run_id), RunState::Interrupted);
        let rewritten: RunRecord = read_json(&record_path).unwrap();
        assert_eq!(rewritten.state, RunState::Interrupted);
        let view = restarted.get(&done.run_id).unwrap();
        assert_eq!(view.result, Some(json!({"status": "succeeded"})));
        assert_eq!(view.run.message.as_deref(), Some("ok"));
        assert!(restarted.get("no-such-run").is_none());
    }
}

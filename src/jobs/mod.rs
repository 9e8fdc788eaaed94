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
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::call::{Progress, ToolOutcome};

mod child;
pub(crate) mod inventory;

pub(crate) use child::ChildProcess;
pub(crate) use inventory::Inventory;

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

/// A pointer in the runs index. Only the server that ran the run writes it, and the
/// index is the operator's, so what it says is believed: the pack, the result file,
/// the server and its child, the files the run wrote. The record in the pack is only
/// data (state, message, times): a forged one can change neither where the server
/// reads nor what it signals. Pointers written before these fields existed name only
/// the record; for them the pack is the record's grandparent and no child is killed.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pointer {
    run_id: String,
    record: PathBuf,
    /// The pack, canonical, as this server wrote into it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pack_dir: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result_file: Option<String>,
    /// The server process that ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    server_pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    child: Option<ChildProcess>,
    /// What the run wrote into its pack (taken when it ended): all that is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    files: Option<Inventory>,
}

/// The result documents a run writes: a result file is one of these names, in the pack.
pub(crate) const RESULT_FILES: [&str; 2] = ["output.json", "cohort.json"];

impl Pointer {
    /// The pack the pointer vouches for: its own, or (older pointers) the directory
    /// two levels above a record named `.runs/<run_id>.json`.
    fn pack(&self) -> Option<PathBuf> {
        if let Some(pack) = &self.pack_dir {
            return Some(pack.clone());
        }
        let runs = self.record.parent()?;
        let named = self.record.file_name()? == format!("{}.json", self.run_id).as_str()
            && runs.file_name()? == ".runs";
        named
            .then(|| runs.parent().map(Path::to_path_buf))
            .flatten()
    }
}

struct Live {
    record: RunRecord,
    /// What the index says of it (rewritten with the child and the files).
    pointer: Pointer,
    /// The pack, and the record's place in it (`.runs/<id>.json`).
    pack_dir: PathBuf,
    record_rel: PathBuf,
    started: std::time::SystemTime,
    cancel: CancellationToken,
    result: Option<Value>,
}

/// Runs started by this server, plus the index of every run.
pub struct JobTable {
    index: PathBuf,
    live: Mutex<HashMap<String, Live>>,
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

    /// A table over `index` that reads nothing until asked: for in-process calls (the
    /// CLI's), which run nothing in the background and must not settle a server's runs.
    pub(crate) fn unopened(index: PathBuf) -> Self {
        JobTable {
            index,
            live: Mutex::new(HashMap::new()),
        }
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
        let started = std::time::SystemTime::now();
        let run_id = new_run_id();
        let record_rel = Path::new(".runs").join(format!("{run_id}.json"));
        std::fs::create_dir_all(pack_dir)?;
        let pack = pack_dir.canonicalize()?;
        self.settle_pack(&pack);
        let record = RunRecord {
            schema_version: RUN_RECORD_SCHEMA_VERSION.into(),
            run_id: run_id.clone(),
            tool: tool.into(),
            state: RunState::Running,
            pack_dir: pack.display().to_string(),
            result_file: result_file.into(),
            result_written: false,
            pid: std::process::id(),
            started_at: now(),
            finished_at: None,
            message: None,
            progress: None,
            child: None,
        };
        crate::atomic::write_json_beneath(&pack, &record_rel, &record)?;
        let pointer = Pointer {
            run_id: run_id.clone(),
            record: pack.join(&record_rel),
            pack_dir: Some(pack.clone()),
            result_file: Some(result_file.into()),
            server_pid: Some(std::process::id()),
            child: None,
            files: None,
        };
        self.write_pointer(&pointer)?;
        let cancel = CancellationToken::new();
        self.lock().insert(
            run_id,
            Live {
                record: record.clone(),
                pointer,
                pack_dir: pack,
                record_rel,
                started,
                cancel: cancel.clone(),
                result: None,
            },
        );
        Ok((record, cancel))
    }

    fn write_pointer(&self, pointer: &Pointer) -> std::io::Result<()> {
        crate::atomic::write_json(
            &self.index.join(format!("{}.json", pointer.run_id)),
            pointer,
        )
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

    /// Record the upstream child a live run started (memory, the index and the pack).
    pub fn child(&self, run_id: &str, pid: u32) {
        let mut live = self.lock();
        let Some(entry) = live.get_mut(run_id) else {
            return;
        };
        entry.record.child = ChildProcess::of(pid);
        entry.pointer.child = entry.record.child;
        if let Err(e) = self.write_pointer(&entry.pointer) {
            tracing::warn!("runs index entry of {run_id} not updated with its child: {e}");
        }
        entry.write_record();
    }

    /// Record how a live run ended (memory, the index and the pack), with what it
    /// wrote into its pack.
    pub fn finish(&self, run_id: &str, outcome: &ToolOutcome, cancelled: bool) {
        // Taken outside the lock: a cohort's inventory reads many files.
        let place = self
            .lock()
            .get(run_id)
            .map(|e| (e.pack_dir.clone(), e.started));
        let files = place.map(|(pack, started)| Inventory::take(&pack, started));
        let mut live = self.lock();
        let Some(entry) = live.get_mut(run_id) else {
            return;
        };
        let (state, message, result) = match outcome {
            ToolOutcome::Success {
                structured,
                summary,
                ..
            } => (
                RunState::Succeeded,
                summary.clone(),
                Some(structured.clone()),
            ),
            ToolOutcome::Failure {
                message,
                structured,
                ..
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
        entry.pointer.files = files;
        if let Err(e) = self.write_pointer(&entry.pointer) {
            tracing::warn!("runs index entry of {run_id} not written: {e}");
        }
        entry.write_record();
    }

    /// Cancel a live run; false when it is not running here.
    pub fn cancel(&self, run_id: &str) -> bool {
        if !valid_run_id(run_id) {
            return false;
        }
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
        if !valid_run_id(run_id) {
            return None;
        }
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
        let pointer = self.pointer(run_id)?;
        let record = self.settle(&pointer)?;
        let result = (record.state != RunState::Running)
            .then(|| read_result(&record))
            .flatten();
        Some(RunView {
            run: record,
            result,
        })
    }

    /// The index's pointer of `run_id` (an id already checked), if it is one.
    fn pointer(&self, run_id: &str) -> Option<Pointer> {
        let pointer: Pointer = read_json(&self.index.join(format!("{run_id}.json")))?;
        (pointer.run_id == run_id).then_some(pointer)
    }

    /// Every pointer of the index (files named `<run id>.json` for their own run).
    fn pointers(&self) -> Vec<Pointer> {
        let Ok(entries) = std::fs::read_dir(&self.index) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let id = name.strip_suffix(".json").filter(|id| valid_run_id(id))?;
                self.pointer(id)
            })
            .collect()
    }

    /// Every run in the index, newest first.
    pub fn list(&self) -> Vec<RunRecord> {
        let mut runs: Vec<RunRecord> = self
            .pointers()
            .into_iter()
            .filter_map(|p| {
                if let Some(live) = self.lock().get(&p.run_id) {
                    return Some(live.record.clone());
                }
                self.settle(&p)
            })
            .collect();
        runs.sort_by(|a, b| {
            b.started_at
                .cmp(&a.started_at)
                .then(b.run_id.cmp(&a.run_id))
        });
        runs
    }

    /// What each finished run of the index wrote, by pack (canonical): the files the
    /// server may serve. Live runs are in the index too once they end.
    pub fn served(&self) -> Vec<(PathBuf, Inventory)> {
        self.pointers()
            .into_iter()
            .filter_map(|p| Some((p.pack_dir?, p.files?)))
            .collect()
    }

    /// Before a new run uses `pack_dir`: settle the earlier runs there that the index
    /// knows, so an upstream that outlived its server is killed before it can write
    /// into the new run's pack. A record in the pack with no pointer is only data.
    fn settle_pack(&self, pack_dir: &Path) {
        let Ok(entries) = std::fs::read_dir(pack_dir.join(".runs")) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".json").filter(|id| valid_run_id(id)) else {
                continue;
            };
            if let Some(pointer) = self.pointer(id) {
                if pointer.pack().as_deref() == Some(pack_dir) {
                    let _ = self.settle(&pointer);
                }
            }
        }
    }

    /// A run of the index: the record in its pack read as data under what the
    /// pointer vouches for; one left `running` by a server that is gone becomes
    /// `interrupted` (and is rewritten so), and the child the index recorded is killed
    /// if it is still the process that was started.
    fn settle(&self, pointer: &Pointer) -> Option<RunRecord> {
        let pack = pointer.pack()?;
        let record_rel = Path::new(".runs").join(format!("{}.json", pointer.run_id));
        let mut record: RunRecord = read_json(&pack.join(&record_rel))?;
        if record.run_id != pointer.run_id {
            return None;
        }
        vouch(&mut record, pointer, &pack);
        let ours = self.lock().contains_key(&record.run_id);
        if record.state == RunState::Running
            && !ours
            && !(record.pid != std::process::id() && pid_alive(record.pid))
        {
            record.state = RunState::Interrupted;
            let orphan = pointer.child.filter(|c| c.kill_group());
            record.message = Some(format!(
                "the server (pid {}) stopped while this run was in flight{}; start it again (a batch run resumes its finished volumes)",
                record.pid,
                orphan
                    .map(|c| format!(
                        "; its upstream process group (pid {}) was still running and was killed",
                        c.pid
                    ))
                    .unwrap_or_default()
            ));
            if let Err(e) = crate::atomic::write_json_beneath(&pack, &record_rel, &record) {
                tracing::warn!("run record of {} not rewritten: {e}", record.run_id);
            }
        }
        Some(record)
    }
}

/// Lay what the index says over a record read from a pack: the pack, the result
/// file, the server and its child are the index's; a result file of an older pointer
/// is kept only if it is one of [`RESULT_FILES`].
fn vouch(record: &mut RunRecord, pointer: &Pointer, pack: &Path) {
    record.pack_dir = pack.display().to_string();
    match &pointer.result_file {
        Some(name) => record.result_file = name.clone(),
        None if RESULT_FILES.contains(&record.result_file.as_str()) => {}
        None => {
            tracing::warn!(
                "run record {} names result file {:?}; ignored (not a result file name)",
                record.run_id,
                record.result_file
            );
            record.result_file = RESULT_FILES[0].into();
            record.result_written = false;
        }
    }
    if let Some(pid) = pointer.server_pid {
        record.pid = pid;
    }
    record.child = pointer.child;
}

impl Live {
    /// The record as the pack keeps it (no progress), beneath the pack, no link followed.
    fn write_record(&self) {
        let mut on_disk = self.record.clone();
        on_disk.progress = None;
        if let Err(e) =
            crate::atomic::write_json_beneath(&self.pack_dir, &self.record_rel, &on_disk)
        {
            tracing::warn!(
                "run record {} not written: {e}",
                self.pack_dir.join(&self.record_rel).display()
            );
        }
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    // Bounded, regular files only: a FIFO or device in the runs directory is skipped.
    let text = crate::files::read_to_string_capped(path, crate::files::JSON_CAP).ok()?;
    serde_json::from_str(&text).ok()
}

/// The result document of a finished run: a [`RESULT_FILES`] name in its pack,
/// reached with no link on the way (a link planted there is not followed).
fn read_result(record: &RunRecord) -> Option<Value> {
    if !record.result_written || !RESULT_FILES.contains(&record.result_file.as_str()) {
        return None;
    }
    let path = Path::new(&record.pack_dir).join(&record.result_file);
    if path.canonicalize().ok()? != path {
        tracing::warn!(
            "{} is reached through a link; the result is not read",
            path.display()
        );
        return None;
    }
    read_json(&path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_fifo_or_device_in_the_index_is_skipped_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let index = dir.path().join("index");
        std::fs::create_dir_all(&index).unwrap();
        let fifo = index.join("fifo-run.json");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        std::os::unix::fs::symlink("/dev/zero", index.join("zero-run.json")).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let table = JobTable::new(index);
            let _ = tx.send((table.list().len(), table.get("fifo-run").is_none()));
        });
        let (listed, absent) = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("listing runs blocked on a FIFO");
        assert_eq!((listed, absent), (0, true));
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
                images: Vec::new(),
                brief: Default::default(),
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
        // with its result; the one in flight was this process's, which no longer
        // has it live, so it is interrupted.
        let record_path = pack.join(".runs").join(format!("{}.json", running.run_id));
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

    #[test]
    fn run_ids_are_checked_before_they_touch_the_file_system() {
        let id = new_run_id();
        assert!(valid_run_id(&id), "{id}");
        for bad in [
            "../x",
            "/etc/passwd",
            "",
            "20261204T153000Z-1a2b3c4",
            "20261204T153000Z-1A2B3C4D",
            "20261204T153000Z/1a2b3c4d",
            "../../20261204T15300-1a2b3c4d",
        ] {
            assert!(!valid_run_id(bad), "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        let index = dir.path().join("index");
        std::fs::create_dir_all(&index).unwrap();
        // A pointer-shaped file outside the index is never read through a crafted id.
        std::fs::write(
            dir.path().join("x.json"),
            r#"{"run_id": "x", "record": "/etc/hostname"}"#,
        )
        .unwrap();
        let table = JobTable::new(index);
        assert!(table.get("../x").is_none());
        assert!(!table.cancel("../x"));
    }

    #[test]
    fn a_restarted_server_kills_an_upstream_that_outlived_its_server() {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().unwrap();
        let index = dir.path().join("index");
        let pack = dir.path().join("pack");
        let table = JobTable::new(index.clone());
        let (record, _) = table.start("run_script", &pack, "output.json").unwrap();
        let mut orphan = std::process::Command::new("sleep")
            .arg("60")
            .process_group(0)
            .spawn()
            .unwrap();
        table.child(&record.run_id, orphan.id());
        // The server "died" without ending its run (SIGKILL): its pid is gone.
        let pointer_path = index.join(format!("{}.json", record.run_id));
        let mut pointer: Pointer = read_json(&pointer_path).unwrap();
        assert_eq!(pointer.child.map(|c| c.pid), Some(orphan.id()));
        pointer.server_pid = Some(i32::MAX as u32);
        crate::atomic::write_json(&pointer_path, &pointer).unwrap();
        drop(table);
        let restarted = JobTable::new(index);
        let status = orphan.wait().unwrap();
        assert!(!status.success(), "the orphan was killed: {status:?}");
        let view = restarted.get(&record.run_id).unwrap();
        assert_eq!(view.run.state, RunState::Interrupted);
        assert!(view
            .run
            .message
            .unwrap()
            .contains("was still running and was killed"));
    }

    /// Issue 21, item 2: a record edited in its pack (another pack_dir, a result file
    /// outside it, `running` with the child of an unrelated process group) changes
    /// neither where the server reads nor what it signals.
    #[test]
    fn a_forged_record_in_a_pack_is_data_not_authority() {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let (index, pack) = (base.join("index"), base.join("pack"));
        std::fs::create_dir_all(base.join("elsewhere")).unwrap();
        std::fs::write(base.join("elsewhere/secret.json"), r#"{"secret": 1}"#).unwrap();
        let table = JobTable::new(index.clone());
        let (run, _) = table.start("run_script", &pack, "output.json").unwrap();
        let done = ToolOutcome::failure("stopped");
        table.finish(&run.run_id, &done, false);
        drop(table);
        let mut victim = std::process::Command::new("sleep")
            .arg("60")
            .process_group(0)
            .spawn()
            .unwrap();
        let record_path = pack.join(".runs").join(format!("{}.json", run.run_id));
        let mut forged: RunRecord = read_json(&record_path).unwrap();
        forged.state = RunState::Running;
        forged.pid = i32::MAX as u32;
        forged.pack_dir = base.join("elsewhere").display().to_string();
        forged.result_file = "../elsewhere/secret.json".into();
        forged.result_written = true;
        forged.child = ChildProcess::of(victim.id());
        crate::atomic::write_json(&record_path, &forged).unwrap();
        // A record planted in the pack with no pointer in the index.
        let planted = new_run_id();
        forged.run_id = planted.clone();
        crate::atomic::write_json(&pack.join(format!(".runs/{planted}.json")), &forged).unwrap();

        let restarted = JobTable::new(index);
        let view = restarted.get(&run.run_id).unwrap();
        assert_eq!(view.run.pack_dir, pack.display().to_string());
        assert_eq!(view.run.result_file, "output.json");
        assert_eq!(view.result, None, "read a file outside the pack");
        assert!(restarted.get(&planted).is_none());
        let _ = restarted.start("run_script", &pack, "output.json").unwrap();
        assert!(restarted.list().iter().all(|r| r.run_id != planted));
        assert!(
            victim.try_wait().unwrap().is_none(),
            "a forged record made the server kill an unrelated process group"
        );
        victim.kill().unwrap();
        let _ = victim.wait();
    }
}

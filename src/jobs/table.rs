//! The [`JobTable`]: the runs this server started (live, in memory) over the runs
//! index on disk. It starts, follows, cancels and lists runs and keeps the pack's
//! record and the index's pointer in step with what happened.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::index::{read_json, read_result, vouch, Pointer};
use super::record::{
    new_run_id, valid_run_id, ProgressView, RunRecord, RunState, RunView, RUN_RECORD_SCHEMA_VERSION,
};
use super::{ChildProcess, Inventory};
use crate::call::{Progress, ToolOutcome};

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

fn now() -> String {
    chrono::Utc::now().to_rfc3339()
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

//! The runs index: one pointer per run, written only by the server that ran it, and
//! the rule that what the index says outweighs what a record in a pack claims. Apart
//! from the table so the trust boundary (what is believed, what is only data) reads
//! in one place.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ChildProcess, Inventory, RunRecord};

/// A pointer in the runs index. Only the server that ran the run writes it, and the
/// index is the operator's, so what it says is believed: the pack, the result file,
/// the server and its child, the files the run wrote. The record in the pack is only
/// data (state, message, times): a forged one can change neither where the server
/// reads nor what it signals. Pointers written before these fields existed name only
/// the record; for them the pack is the record's grandparent and no child is killed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Pointer {
    pub(super) run_id: String,
    pub(super) record: PathBuf,
    /// The pack, canonical, as this server wrote into it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) pack_dir: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) result_file: Option<String>,
    /// The server process that ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) server_pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) child: Option<ChildProcess>,
    /// What the run wrote into its pack (taken when it ended): all that is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) files: Option<Inventory>,
}

/// The result documents a run writes: a result file is one of these names, in the pack.
pub(crate) const RESULT_FILES: [&str; 2] = ["output.json", "cohort.json"];

impl Pointer {
    /// The pack the pointer vouches for: its own, or (older pointers) the directory
    /// two levels above a record named `.runs/<run_id>.json`.
    pub(super) fn pack(&self) -> Option<PathBuf> {
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

/// Lay what the index says over a record read from a pack: the pack, the result
/// file, the server and its child are the index's; a result file of an older pointer
/// is kept only if it is one of [`RESULT_FILES`].
pub(super) fn vouch(record: &mut RunRecord, pointer: &Pointer, pack: &Path) {
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

pub(super) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    // Bounded, regular files only: a FIFO or device in the runs directory is skipped.
    let text = crate::files::read_to_string_capped(path, crate::files::JSON_CAP).ok()?;
    serde_json::from_str(&text).ok()
}

/// The result document of a finished run: a [`RESULT_FILES`] name in its pack,
/// reached with no link on the way (a link planted there is not followed).
pub(super) fn read_result(record: &RunRecord) -> Option<Value> {
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

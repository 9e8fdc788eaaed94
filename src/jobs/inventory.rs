//! What a run wrote into its pack: the only files the server will ever serve from it.
//!
//! Why: a pack is a directory inside an allowed directory, which others may be able
//! to write to (a shared output root), and which may have held files before the run
//! (a home directory chosen as `output_dir`). Serving "whatever lies in the pack"
//! would serve those. So when a run ends, the server that ran it lists the regular
//! files that changed since the run started (hidden names and links left out), with
//! the size of each and the sha256 of each text file it may serve, and keeps that
//! list in memory and in the operator's runs index — never only in the pack, where a
//! pack file could claim anything. A file is served only when it is in the list and
//! still has the recorded size and hash, reached with no link on the way.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Files listed per inventory, at most (a cohort of a few hundred packs).
pub(crate) const MAX_FILES: usize = 4096;
/// How deep below the pack files are listed: `<root>/<case>/<stem>/<mask>` is 3.
pub(crate) const MAX_DEPTH: usize = 3;
/// Text files larger than this are listed but not hashed, so never served.
pub(crate) const TEXT_CAP: u64 = 4 * 1024 * 1024;

/// One file a run wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WrittenFile {
    pub bytes: u64,
    /// Present for the text files that may be served (JSON, CSV, text, logs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// The files of one pack a run wrote, by path relative to the pack.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Inventory {
    /// When it was taken (milliseconds since the epoch): a later one wins.
    pub taken_at_ms: u64,
    pub files: BTreeMap<String, WrittenFile>,
}

/// Whether a file's name makes it one `resources/read` serves as text.
pub(crate) fn is_text(name: &str) -> bool {
    [".json", ".csv", ".md", ".txt", ".log", ".yaml", ".yml"]
        .iter()
        .any(|ending| name.ends_with(ending))
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Inventory {
    /// The files under `pack` (canonical) modified at or after `since` (less the
    /// kernel's coarse file-time tick, so a file written just after `since` counts).
    pub fn take(pack: &Path, since: SystemTime) -> Inventory {
        let since = since
            .checked_sub(std::time::Duration::from_millis(100))
            .unwrap_or(since);
        let mut inventory = Inventory {
            taken_at_ms: millis(SystemTime::now()),
            files: BTreeMap::new(),
        };
        walk(pack, "", 1, since, &mut inventory.files);
        inventory
    }

    /// `later` laid over `self`: its entries replace those of the same name.
    pub fn merged(mut self, later: Inventory) -> Inventory {
        self.taken_at_ms = self.taken_at_ms.max(later.taken_at_ms);
        self.files.extend(later.files);
        self
    }

    /// Several inventories of one pack, the later ones winning.
    pub(crate) fn merge_all(mut all: Vec<Inventory>) -> Option<Inventory> {
        all.sort_by_key(|i| i.taken_at_ms);
        all.into_iter().reduce(Inventory::merged)
    }

    /// The text of `rel`, if it is listed as served text, is reached from `pack` with
    /// no link on the way, and still has its recorded size and hash.
    pub(crate) fn read(&self, pack: &Path, rel: &str) -> Result<String, String> {
        let entry = self.files.get(rel).ok_or_else(|| {
            format!(
                "{rel} was not written by a run into this pack; only files a run wrote are served"
            )
        })?;
        let sha = entry.sha256.as_deref().ok_or_else(|| {
            format!("{rel} is not a text file of at most {TEXT_CAP} bytes; only JSON, CSV and text files are served (open binary files such as masks from disk)")
        })?;
        let full = pack.join(rel);
        if full.canonicalize().ok().as_deref() != Some(full.as_path()) {
            return Err(format!(
                "{rel} is no longer the file the run wrote (a link or a missing file is there now)"
            ));
        }
        let bytes = crate::files::read_capped(&full, TEXT_CAP).map_err(|e| e.to_string())?;
        if bytes.len() as u64 != entry.bytes || hex(&Sha256::digest(&bytes)) != sha {
            return Err(format!(
                "{rel} changed after the run wrote it (size or sha256 differs); it is not served"
            ));
        }
        String::from_utf8(bytes).map_err(|_| format!("{rel} is not UTF-8"))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn walk(dir: &Path, prefix: &str, depth: usize, since: SystemTime, out: &mut Files) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        if out.len() >= MAX_FILES {
            return;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        // The entry's own type (lstat): a link is neither a file nor a directory here.
        let (Ok(kind), false) = (entry.file_type(), name.starts_with('.')) else {
            continue;
        };
        let rel = format!("{prefix}{name}");
        if kind.is_dir() && depth < MAX_DEPTH {
            walk(&entry.path(), &format!("{rel}/"), depth + 1, since, out);
        } else if kind.is_file() {
            if let Some(file) = written_since(&entry.path(), &name, since) {
                out.insert(rel, file);
            }
        }
    }
}

type Files = BTreeMap<String, WrittenFile>;

fn written_since(path: &Path, name: &str, since: SystemTime) -> Option<WrittenFile> {
    let file = crate::files::open_regular(path).ok()?;
    let meta = file.metadata().ok()?;
    if meta.modified().ok()? < since {
        return None;
    }
    let bytes = meta.len();
    let sha256 = (is_text(name) && bytes <= TEXT_CAP)
        .then(|| {
            let mut buf = Vec::new();
            file.take(TEXT_CAP + 1).read_to_end(&mut buf).ok()?;
            (buf.len() as u64 == bytes).then(|| hex(&Sha256::digest(&buf)))
        })
        .flatten();
    Some(WrittenFile { bytes, sha256 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn only_files_written_since_the_start_are_listed_and_served_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let pack = dir.path().canonicalize().unwrap();
        std::fs::write(pack.join("old.json"), "{}").unwrap();
        let old = SystemTime::now() - Duration::from_secs(3600);
        let f = std::fs::File::options()
            .write(true)
            .open(pack.join("old.json"))
            .unwrap();
        f.set_modified(old).unwrap();
        let since = SystemTime::now() - Duration::from_secs(1);
        std::fs::create_dir_all(pack.join("case/ct")).unwrap();
        std::fs::write(pack.join("output.json"), "{\"a\":1}").unwrap();
        std::fs::write(pack.join("case/ct/mask.nii.gz"), [0u8; 8]).unwrap();
        std::fs::write(pack.join(".hidden.json"), "{}").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", pack.join("link.txt")).unwrap();
        let inv = Inventory::take(&pack, since);
        let names: Vec<&str> = inv.files.keys().map(String::as_str).collect();
        assert_eq!(names, vec!["case/ct/mask.nii.gz", "output.json"]);
        assert!(inv.files["case/ct/mask.nii.gz"].sha256.is_none());
        assert_eq!(inv.read(&pack, "output.json").unwrap(), "{\"a\":1}");
        for (rel, words) in [
            ("old.json", "not written by a run"),
            ("link.txt", "not written by a run"),
            ("case/ct/mask.nii.gz", "not a text file"),
        ] {
            let e = inv.read(&pack, rel).unwrap_err();
            assert!(e.contains(words), "{rel}: {e}");
        }
        std::fs::write(pack.join("output.json"), "{\"a\":2}").unwrap();
        assert!(inv
            .read(&pack, "output.json")
            .unwrap_err()
            .contains("changed"));
        std::fs::remove_file(pack.join("output.json")).unwrap();
        std::os::unix::fs::symlink(pack.join("old.json"), pack.join("output.json")).unwrap();
        assert!(inv
            .read(&pack, "output.json")
            .unwrap_err()
            .contains("no longer the file"));
    }

    #[test]
    fn a_later_inventory_wins() {
        let file = |n| WrittenFile {
            bytes: n,
            sha256: None,
        };
        let a = Inventory {
            taken_at_ms: 1,
            files: BTreeMap::from([("x".into(), file(1)), ("y".into(), file(1))]),
        };
        let b = Inventory {
            taken_at_ms: 2,
            files: BTreeMap::from([("x".into(), file(2))]),
        };
        let m = Inventory::merge_all(vec![b, a]).unwrap();
        assert_eq!(m.files["x"].bytes, 2);
        assert_eq!(m.files["y"].bytes, 1);
        assert_eq!(m.taken_at_ms, 2);
    }
}

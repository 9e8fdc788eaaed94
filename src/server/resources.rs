//! The full evidence one step away: `resource_link`s in every result that names an
//! evidence pack, and MCP resources over the packs' files.
//!
//! URI scheme: `ctmr://pack` followed by the file's absolute path (percent-encoded), e.g.
//! `ctmr://pack/data/runs/case1/output.json`. `resources/read` serves only files
//! inside a pack directory this server linked in a result or that a run in the runs
//! index names (after resolving symbolic links), and only text files (JSON, CSV, text,
//! logs) of at most [`READ_CAP`] bytes; `resources/list` lists the result document of
//! the most recent [`LIST_RUNS`] runs and the files of the packs linked so far.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rmcp::model::Resource;
use serde_json::Value;

/// The URI prefix; the absolute path follows.
pub const SCHEME: &str = "ctmr://pack";
/// Largest file `resources/read` returns.
pub const READ_CAP: u64 = 4 * 1024 * 1024;
/// Runs of the runs index `resources/list` shows, newest first.
pub const LIST_RUNS: usize = 50;
/// Files linked per pack, at most.
pub const LINKS_PER_PACK: usize = 40;

/// The pack directories this server has linked (canonical paths).
#[derive(Default)]
pub struct Packs(Mutex<BTreeSet<PathBuf>>);

impl Packs {
    pub fn remember(&self, dir: &Path) {
        if let Ok(dir) = dir.canonicalize() {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(dir);
        }
    }

    pub fn all(&self) -> Vec<PathBuf> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

/// The URI of a file: bytes other than letters, digits, `/`, `-`, `.`, `_` and `~`
/// percent-encoded, so any path makes a valid URI.
pub fn uri_of(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut uri = String::from(SCHEME);
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            uri.push(b as char);
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri
}

/// The absolute path a URI names, if it is one of ours.
pub fn path_of(uri: &str) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let rest = uri.strip_prefix(SCHEME)?.as_bytes();
    let mut bytes = Vec::with_capacity(rest.len());
    let mut i = 0;
    while i < rest.len() {
        if rest[i] == b'%' {
            let hex = std::str::from_utf8(rest.get(i + 1..i + 3)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            bytes.push(rest[i]);
            i += 1;
        }
    }
    let path = PathBuf::from(std::ffi::OsString::from_vec(bytes));
    path.is_absolute().then_some(path)
}

/// The MIME type by file name.
pub fn mime_of(path: &Path) -> &'static str {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    match () {
        _ if name.ends_with(".json") => "application/json",
        _ if name.ends_with(".csv") => "text/csv",
        _ if name.ends_with(".md") => "text/markdown",
        _ if name.ends_with(".txt") || name.ends_with(".log") => "text/plain",
        _ if name.ends_with(".yaml") || name.ends_with(".yml") => "text/plain",
        _ if name.ends_with(".png") => "image/png",
        _ if name.ends_with(".nii.gz") || name.ends_with(".gz") => "application/gzip",
        _ if name.ends_with(".nii") => "application/octet-stream",
        _ => "application/octet-stream",
    }
}

/// Whether `resources/read` serves this file (text only).
pub fn readable_kind(path: &Path) -> bool {
    mime_of(path).starts_with("text/") || mime_of(path) == "application/json"
}

/// The pack directories a result document names: `pack_dir` (also under `run` and
/// `result`), the verifier's `target.evidence_pack`, and `output_root`.
pub fn pack_dirs(doc: &Value) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = [
        "/pack_dir",
        "/run/pack_dir",
        "/result/pack_dir",
        "/target/evidence_pack",
        "/output_root",
        "/result/output_root",
    ]
    .iter()
    .filter_map(|p| doc.pointer(p).and_then(Value::as_str))
    .map(PathBuf::from)
    .filter(|p| p.is_absolute() && p.is_dir())
    .collect();
    dirs.dedup();
    dirs
}

/// The files of a pack: regular files up to two levels down, hidden entries (the
/// run records under `.runs/`) left out; at most [`LINKS_PER_PACK`], sorted.
pub fn files_of(dir: &Path) -> Vec<(PathBuf, u64)> {
    fn walk(dir: &Path, depth: usize, out: &mut Vec<(PathBuf, u64)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            if out.len() >= LINKS_PER_PACK {
                return;
            }
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let Ok(meta) = entry.file_type() else {
                continue;
            };
            if meta.is_file() {
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                out.push((entry.path(), size));
            } else if meta.is_dir() && depth < 2 {
                walk(&entry.path(), depth + 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, 1, &mut out);
    out
}

/// A resource (or resource link) for one file of a pack.
pub fn resource_of(path: &Path, size: u64, pack: &Path) -> Resource {
    let name = path
        .strip_prefix(pack)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.display().to_string());
    Resource::new(uri_of(path), name)
        .with_mime_type(mime_of(path))
        .with_size(size)
}

/// The links of a result document: every file of every pack it names. Each pack is
/// remembered, so `resources/read` may serve its files.
pub fn links(doc: &Value, packs: &Packs) -> Vec<Resource> {
    let mut out = Vec::new();
    for dir in pack_dirs(doc) {
        packs.remember(&dir);
        for (path, size) in files_of(&dir) {
            out.push(resource_of(&path, size, &dir));
        }
    }
    out
}

/// Why a read is refused, or the file's text.
pub fn read(uri: &str, allowed: &[PathBuf]) -> Result<(String, &'static str), String> {
    let path = path_of(uri).ok_or_else(|| {
        format!("unknown resource '{uri}': URIs look like {SCHEME}/<absolute path of a pack file>")
    })?;
    let real = path
        .canonicalize()
        .map_err(|e| format!("resource '{uri}': {e}"))?;
    if !allowed.iter().any(|dir| real.starts_with(dir)) {
        return Err(format!(
            "resource '{uri}' is not inside an evidence pack this server knows (a pack linked in a result, or a run in the runs index)"
        ));
    }
    if !readable_kind(&real) {
        return Err(format!(
            "resource '{uri}' is not a text file; only JSON, CSV and text files are served (open binary files such as masks from disk)"
        ));
    }
    let bytes = crate::files::read_capped(&real, READ_CAP).map_err(|e| e.to_string())?;
    let text = String::from_utf8(bytes).map_err(|_| format!("resource '{uri}' is not UTF-8"))?;
    Ok((text, mime_of(&real)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_round_trip_and_reads_stay_inside_known_packs() {
        let dir = std::env::temp_dir().join(format!("ctmr-res-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("case")).unwrap();
        std::fs::write(dir.join("output.json"), "{\"a\":1}").unwrap();
        std::fs::write(dir.join("case/mask.nii.gz"), [0u8; 4]).unwrap();
        let outside = std::env::temp_dir().join(format!("ctmr-out-{}.json", std::process::id()));
        std::fs::write(&outside, "{}").unwrap();
        let packs = Packs::default();
        let doc = serde_json::json!({"pack_dir": dir.display().to_string()});
        let links = links(&doc, &packs);
        let names: Vec<&str> = links.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, vec!["case/mask.nii.gz", "output.json"]);
        let allowed = packs.all();
        let json_uri = &links[1].uri;
        assert_eq!(path_of(json_uri).unwrap(), dir.join("output.json"));
        let odd = Path::new("/data/my runs/case%1/ö.json");
        assert_eq!(
            uri_of(odd),
            "ctmr://pack/data/my%20runs/case%251/%C3%B6.json"
        );
        assert_eq!(path_of(&uri_of(odd)).unwrap(), odd);
        assert_eq!(path_of("ctmr://pack/x%2"), None);
        assert_eq!(read(json_uri, &allowed).unwrap().0, "{\"a\":1}");
        assert!(read(&links[0].uri, &allowed)
            .unwrap_err()
            .contains("not a text file"));
        assert!(read(&uri_of(&outside), &allowed)
            .unwrap_err()
            .contains("not inside"));
        let escape = format!(
            "{}/../{}",
            uri_of(&dir),
            outside.file_name().unwrap().to_string_lossy()
        );
        assert!(read(&escape, &allowed).unwrap_err().contains("not inside"));
        std::fs::remove_dir_all(&dir).ok();
        std::fs::remove_file(&outside).ok();
    }
}

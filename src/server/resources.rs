//! The full evidence one step away: `resource_link`s in every result that names an
//! evidence pack, and MCP resources over the files runs wrote into their packs.
//!
//! URI scheme: `ctmr://pack` followed by the file's absolute path (percent-encoded), e.g.
//! `ctmr://pack/data/runs/case1/output.json`. What may be served is decided by an
//! [`Inventory`] of each pack — the files a run wrote, with sizes and hashes — taken
//! by this server when one of its writing tools answered (the files changed since the
//! call started) or when a background run ended (kept in the operator's runs index).
//! Nothing else that lies in a pack directory is ever listed or served, nor a file
//! that changed since it was written, nor one reached through a link; a file inside a
//! pack (a run record, `output.json`) can name other directories, but a name is never
//! enough to be served. Only text files (JSON, CSV, text, logs) of at most
//! `jobs::inventory::TEXT_CAP` bytes are read; `resources/list` lists the result document of the most
//! recent [`LIST_RUNS`] runs and the files of the packs linked so far.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use rmcp::model::Resource;
use serde_json::Value;

use crate::jobs::Inventory;

/// The URI prefix; the absolute path follows.
pub(crate) const SCHEME: &str = "ctmr://pack";
/// Runs of the runs index `resources/list` shows, newest first.
pub(crate) const LIST_RUNS: usize = 50;
/// Files linked per pack, at most.
pub(crate) const LINKS_PER_PACK: usize = 40;

/// What this server's own calls wrote, by pack (canonical path).
#[derive(Default)]
pub(crate) struct Packs(Mutex<BTreeMap<PathBuf, Inventory>>);

impl Packs {
    /// Take the inventory of what a call of this server wrote into `dir` since
    /// `since`, laid over what was known of it.
    pub(crate) fn take(&self, dir: &Path, since: SystemTime) {
        let Ok(dir) = dir.canonicalize() else {
            return;
        };
        let taken = Inventory::take(&dir, since);
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let merged = match map.remove(&dir) {
            Some(known) => known.merged(taken),
            None => taken,
        };
        map.insert(dir, merged);
    }

    pub(crate) fn all(&self) -> Vec<(PathBuf, Inventory)> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(d, i)| (d.clone(), i.clone())).collect()
    }
}

/// The inventories known for each pack (this server's and the runs index's), merged
/// per pack, the later winning for a file listed in several.
pub(crate) fn known(all: Vec<(PathBuf, Inventory)>) -> BTreeMap<PathBuf, Inventory> {
    let mut by_pack: BTreeMap<PathBuf, Vec<Inventory>> = BTreeMap::new();
    for (dir, inventory) in all {
        by_pack.entry(dir).or_default().push(inventory);
    }
    by_pack
        .into_iter()
        .filter_map(|(dir, all)| Some((dir, Inventory::merge_all(all)?)))
        .collect()
}

/// The URI of a file: bytes other than letters, digits, `/`, `-`, `.`, `_` and `~`
/// percent-encoded, so any path makes a valid URI.
pub(crate) fn uri_of(path: &Path) -> String {
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
pub(crate) fn path_of(uri: &str) -> Option<PathBuf> {
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
pub(crate) fn mime_of(path: &Path) -> &'static str {
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

/// The pack directories a result document names: `pack_dir` (also under `run` and
/// `result`), the verifier's `target.evidence_pack`, and `output_root`.
pub(crate) fn pack_dirs(doc: &Value) -> Vec<PathBuf> {
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

/// A resource (or resource link) for one file of a pack.
pub(crate) fn resource_of(pack: &Path, rel: &str, bytes: u64) -> Resource {
    let path = pack.join(rel);
    Resource::new(uri_of(&path), rel.to_owned())
        .with_mime_type(mime_of(&path))
        .with_size(bytes)
}

/// The resources of a pack's inventory, at most [`LINKS_PER_PACK`].
pub(crate) fn resources_of(pack: &Path, inventory: &Inventory) -> Vec<Resource> {
    inventory
        .files
        .iter()
        .take(LINKS_PER_PACK)
        .map(|(rel, file)| resource_of(pack, rel, file.bytes))
        .collect()
}

/// The links of a result document: the files runs wrote into each pack it names.
/// `wrote_since`: the call that answered writes, and started then: what it wrote
/// into the packs it names is taken first. `indexed` gives the runs index's
/// inventories (read only when a named pack is not one this server wrote into).
pub(crate) fn links(
    doc: &Value,
    packs: &Packs,
    wrote_since: Option<SystemTime>,
    indexed: &dyn Fn() -> Vec<(PathBuf, Inventory)>,
) -> Vec<Resource> {
    let dirs: Vec<PathBuf> = pack_dirs(doc)
        .iter()
        .filter_map(|d| d.canonicalize().ok())
        .collect();
    if dirs.is_empty() {
        return Vec::new();
    }
    if let Some(since) = wrote_since {
        dirs.iter().for_each(|d| packs.take(d, since));
    }
    let mut all = packs.all();
    if dirs.iter().any(|d| all.iter().all(|(p, _)| p != d)) {
        all.extend(indexed());
    }
    let known = known(all);
    dirs.iter()
        .filter_map(|d| Some(resources_of(d, known.get(d)?)))
        .flatten()
        .collect()
}

/// `resources/list`: the result document of each of the newest [`LIST_RUNS`] runs of
/// the index (when its run wrote it), then the files of the packs this server wrote.
pub(crate) fn listing(
    jobs: Option<std::sync::Arc<crate::jobs::JobTable>>,
    linked: Vec<(PathBuf, Inventory)>,
) -> Vec<Resource> {
    let mut out = Vec::new();
    if let Some(jobs) = jobs {
        let served = known(jobs.served());
        for run in jobs.list().into_iter().take(LIST_RUNS) {
            let pack = PathBuf::from(&run.pack_dir);
            let Some(file) = served
                .get(&pack)
                .and_then(|i| i.files.get(&run.result_file))
            else {
                continue;
            };
            let state = serde_json::to_value(run.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let name = format!("run {} ({}, {state})", run.run_id, run.tool);
            let mut resource = resource_of(&pack, &run.result_file, file.bytes);
            resource.name = name;
            out.push(resource);
        }
    }
    for (pack, inventory) in known(linked) {
        for resource in resources_of(&pack, &inventory) {
            if !out.iter().any(|r| r.uri == resource.uri) {
                out.push(resource);
            }
        }
    }
    out
}

/// `path` with `.` and `..` applied to its text (no link is looked at): a URI that
/// climbs out of a pack is judged by where it lands.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Why a read is refused, or the file's text: the file must be one a run wrote into
/// a known pack (`known`), unchanged, and text.
pub(crate) fn read(
    uri: &str,
    known: &BTreeMap<PathBuf, Inventory>,
) -> Result<(String, &'static str), String> {
    let path = path_of(uri).ok_or_else(|| {
        format!("unknown resource '{uri}': URIs look like {SCHEME}/<absolute path of a pack file>")
    })?;
    let path = lexical(&path);
    let found = known.iter().find_map(|(pack, inventory)| {
        let rel = path.strip_prefix(pack).ok()?.to_str()?.to_owned();
        Some((pack, inventory, rel))
    });
    let Some((pack, inventory, rel)) = found else {
        return Err(format!(
            "resource '{uri}' is not inside an evidence pack this server knows (a pack one of its runs wrote)"
        ));
    };
    let text = inventory
        .read(pack, &rel)
        .map_err(|why| format!("resource '{uri}': {why}"))?;
    Ok((text, mime_of(&path)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn uris_round_trip_and_only_what_a_run_wrote_is_served() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let pack = base.join("pack");
        std::fs::create_dir_all(pack.join("case")).unwrap();
        std::fs::write(pack.join("before.json"), "{}").unwrap();
        let f = std::fs::File::options()
            .write(true)
            .open(pack.join("before.json"))
            .unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(3600))
            .unwrap();
        let since = SystemTime::now() - Duration::from_secs(1);
        std::fs::write(pack.join("output.json"), "{\"a\":1}").unwrap();
        std::fs::write(pack.join("case/mask.nii.gz"), [0u8; 4]).unwrap();
        let outside = base.join("outside.json");
        std::fs::write(&outside, "{}").unwrap();
        let packs = Packs::default();
        let doc = serde_json::json!({"pack_dir": pack.display().to_string()});
        assert!(
            links(&doc, &packs, None, &Vec::new).is_empty(),
            "an unknown pack was linked"
        );
        let links = links(&doc, &packs, Some(since), &Vec::new);
        let names: Vec<&str> = links.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, vec!["case/mask.nii.gz", "output.json"]);
        let known = known(packs.all());
        let json_uri = &links[1].uri;
        assert_eq!(path_of(json_uri).unwrap(), pack.join("output.json"));
        let odd = Path::new("/data/my runs/case%1/ö.json");
        assert_eq!(
            uri_of(odd),
            "ctmr://pack/data/my%20runs/case%251/%C3%B6.json"
        );
        assert_eq!(path_of(&uri_of(odd)).unwrap(), odd);
        assert_eq!(path_of("ctmr://pack/x%2"), None);
        assert_eq!(read(json_uri, &known).unwrap().0, "{\"a\":1}");
        let refused = |path: &Path| read(&uri_of(path), &known).unwrap_err();
        assert!(refused(&pack.join("case/mask.nii.gz")).contains("not a text file"));
        assert!(refused(&outside).contains("not inside"));
        assert!(refused(&pack.join("before.json")).contains("not written by a run"));
        let escape = format!("{}/../outside.json", uri_of(&pack));
        assert!(read(&escape, &known).unwrap_err().contains("not inside"));
    }
}

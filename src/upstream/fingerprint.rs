//! A fingerprint of the bundle's code and configs, and how it compares with the
//! published upstream.
//!
//! Why: the evidence claims the upstream's own entry point produced the mask, but the
//! entry point runs whatever `configs/*.json` and `scripts/**/*.py` the bundle root
//! holds (MONAI configs can evaluate Python). A reader of the evidence must be able to
//! tell a pristine NV-Segment-CTMR checkout from an edited one, so every run records
//! the sha256 of those files and which of them differ from the published bundle at
//! upstream commit c46f994 (`data/upstream/NV-Segment-CTMR.SHA256SUMS`, shipped in
//! the binary).

use std::collections::BTreeMap;
use std::path::Path;

use sha2::{Digest, Sha256};

/// The upstream commit the shipped checksums describe.
pub(crate) const PUBLISHED_COMMIT: &str = "c46f9946cc869ba697ec61358ec19daa033aa93a";

/// `sha256sum` output for every file of the published bundle folder at
/// [`PUBLISHED_COMMIT`].
const PUBLISHED_SUMS: &str = include_str!("../../data/upstream/NV-Segment-CTMR.SHA256SUMS");

/// The bundle's code and configs by hash, and the comparison with the published bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fingerprint {
    /// Relative path → sha256, for `configs/*.json` and `scripts/**/*.py`.
    pub files: BTreeMap<String, String>,
    /// sha256 over the sorted `path  sha256` lines of `files` (one value to compare).
    pub digest: String,
    /// Every fingerprinted file is published with the same hash, and every published
    /// config and script is present.
    pub matches_published: bool,
    /// Present here and published, with another hash.
    pub differing: Vec<String>,
    /// Published, absent here.
    pub missing: Vec<String>,
    /// Present here, not published.
    pub extra: Vec<String>,
}

/// Whether a relative path is part of the fingerprint.
fn fingerprinted(rel: &str) -> bool {
    (rel.starts_with("configs/")
        && !rel["configs/".len()..].contains('/')
        && rel.ends_with(".json"))
        || (rel.starts_with("scripts/") && rel.ends_with(".py"))
}

/// The published hashes of the fingerprinted files.
fn published() -> BTreeMap<String, String> {
    PUBLISHED_SUMS
        .lines()
        .filter_map(|line| line.split_once("  "))
        .filter(|(_, path)| fingerprinted(path))
        .map(|(sum, path)| (path.to_string(), sum.to_string()))
        .collect()
}

/// Files under `dir` (relative to `root`), recursively, not following symlinked
/// directories.
fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            walk(root, &path, out);
        } else if kind.is_file() {
            if let Ok(rel) = path.strip_prefix(root) {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
}

/// Fingerprint the bundle at `root`.
pub(crate) fn fingerprint(root: &Path) -> Fingerprint {
    let mut rels = Vec::new();
    walk(root, &root.join("configs"), &mut rels);
    walk(root, &root.join("scripts"), &mut rels);
    let files: BTreeMap<String, String> = rels
        .into_iter()
        .filter(|rel| fingerprinted(rel) && !rel.contains("__pycache__"))
        .filter_map(|rel| {
            let sum = super::sha256_file(&root.join(&rel)).ok()?;
            Some((rel, sum))
        })
        .collect();
    compare(files, &published())
}

/// The comparison of `files` with `published` (pure).
pub(crate) fn compare(
    files: BTreeMap<String, String>,
    published: &BTreeMap<String, String>,
) -> Fingerprint {
    let mut hasher = Sha256::new();
    for (path, sum) in &files {
        hasher.update(format!("{path}  {sum}\n").as_bytes());
    }
    let differing: Vec<String> = files
        .iter()
        .filter(|(p, s)| published.get(*p).is_some_and(|want| want != *s))
        .map(|(p, _)| p.clone())
        .collect();
    let missing: Vec<String> = published
        .keys()
        .filter(|p| !files.contains_key(*p))
        .cloned()
        .collect();
    let extra: Vec<String> = files
        .keys()
        .filter(|p| !published.contains_key(*p))
        .cloned()
        .collect();
    Fingerprint {
        digest: super::hash::hex(&hasher.finalize()),
        matches_published: differing.is_empty() && missing.is_empty() && extra.is_empty(),
        files,
        differing,
        missing,
        extra,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_sums_cover_the_configs_and_scripts() {
        let published = published();
        assert!(published.contains_key("configs/inference.json"));
        assert!(published.contains_key("scripts/inferer.py"));
        assert!(!published
            .keys()
            .any(|p| p.starts_with("brain_t1_preprocess/")));
    }

    #[test]
    fn a_pristine_copy_matches_and_an_edit_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let published: BTreeMap<String, String> = [
            ("configs/inference.json", "a.json"),
            ("scripts/inferer.py", "b.py"),
        ]
        .into_iter()
        .map(|(rel, content)| {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, content).unwrap();
            (rel.to_string(), super::super::sha256_file(&path).unwrap())
        })
        .collect();
        let mut files = BTreeMap::new();
        for rel in published.keys() {
            files.insert(
                rel.clone(),
                super::super::sha256_file(&dir.path().join(rel)).unwrap(),
            );
        }
        let pristine = compare(files.clone(), &published);
        assert!(pristine.matches_published, "{pristine:?}");

        files.insert("configs/inference.json".into(), "0".repeat(64));
        files.insert("scripts/extra.py".into(), "1".repeat(64));
        files.remove("scripts/inferer.py");
        let edited = compare(files, &published);
        assert!(!edited.matches_published);
        assert_eq!(edited.differing, vec!["configs/inference.json"]);
        assert_eq!(edited.missing, vec!["scripts/inferer.py"]);
        assert_eq!(edited.extra, vec!["scripts/extra.py"]);
        assert_ne!(edited.digest, pristine.digest);
    }

    #[test]
    fn the_demo_bundle_is_fingerprinted_and_differs() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo-bundle");
        let f = fingerprint(&root);
        assert!(f.files.contains_key("configs/inference.json"));
        assert!(f.files.contains_key("scripts/inferer.py"));
        assert!(!f.matches_published);
        assert!(f.differing.contains(&"configs/inference.json".to_string()));
    }
}

//! Finding the bundle root, taking stock of what it holds, and where its weights came from.
//!
//! Every candidate root is recorded with its source and the reason it was rejected,
//! because "bundle not found" is the most common failure and the record is the fix.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Serialize;

use super::error::UpstreamError;

/// The bundle root found without any setting (defined once, in the config).
pub(crate) use crate::config::WORKBENCH_ROOT;

/// Where a candidate root came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RootSource {
    /// Passed explicitly (flag or tool argument); when given, it is the only candidate.
    Explicit,
    /// `$NV_SEGMENT_CTMR_ROOT`.
    Env,
    /// `<base>/.workbench_data/upstreams/NV-Segment-CTMR/NV-Segment-CTMR`.
    Workbench,
}

impl RootSource {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            RootSource::Explicit => "explicit root",
            RootSource::Env => "$NV_SEGMENT_CTMR_ROOT",
            RootSource::Workbench => "workbench checkout",
        }
    }
}

/// Why a candidate root was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RootRejection {
    /// Nothing exists at the path.
    Missing,
    /// Something exists but it is not a directory.
    NotADirectory,
    /// A directory without `configs/inference.json`.
    NoInferenceConfig,
}

/// One candidate root and its verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckedRoot {
    pub path: PathBuf,
    pub source: RootSource,
    /// `None` when this root was accepted.
    pub rejected: Option<RootRejection>,
}

impl CheckedRoot {
    pub(crate) fn status_text(&self) -> &'static str {
        match self.rejected {
            None => "accepted",
            Some(RootRejection::Missing) => "does not exist",
            Some(RootRejection::NotADirectory) => "not a directory",
            Some(RootRejection::NoInferenceConfig) => "no configs/inference.json",
        }
    }
}

/// The outcome of [`resolve_root`]: the root, if any, and every candidate checked in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RootResolution {
    pub root: Option<PathBuf>,
    pub source: Option<RootSource>,
    pub checked: Vec<CheckedRoot>,
}

impl RootResolution {
    /// The root, or an error that lists every candidate and how to install the bundle:
    /// [`UpstreamError::ConfigMissing`] when some candidate directory exists (wrong
    /// level of the clone, most likely), else [`UpstreamError::RootNotFound`].
    pub fn require(&self) -> Result<&Path, UpstreamError> {
        if let Some(root) = &self.root {
            return Ok(root);
        }
        let some_dir_exists = self
            .checked
            .iter()
            .any(|c| c.rejected == Some(RootRejection::NoInferenceConfig));
        if some_dir_exists {
            Err(UpstreamError::ConfigMissing {
                checked: self.checked.clone(),
            })
        } else {
            Err(UpstreamError::RootNotFound {
                checked: self.checked.clone(),
            })
        }
    }
}

/// Resolve the bundle root. `explicit` (a flag), when given, is the only candidate;
/// otherwise `$NV_SEGMENT_CTMR_ROOT` (passed in as `env_value`; empty counts as unset),
/// then [`WORKBENCH_ROOT`] under `base`. Relative candidates are taken relative to
/// `base`; an accepted root is canonicalised (it becomes the child's working directory).
/// A root is valid iff `configs/inference.json` is a file in it.
pub fn resolve_root(
    explicit: Option<&Path>,
    env_value: Option<&OsStr>,
    base: &Path,
) -> RootResolution {
    let mut candidates: Vec<(PathBuf, RootSource)> = Vec::new();
    if let Some(p) = explicit {
        candidates.push((p.to_path_buf(), RootSource::Explicit));
    } else {
        if let Some(v) = env_value.filter(|v| !v.to_string_lossy().trim().is_empty()) {
            candidates.push((PathBuf::from(v), RootSource::Env));
        }
        candidates.push((PathBuf::from(WORKBENCH_ROOT), RootSource::Workbench));
    }

    let mut checked = Vec::new();
    for (path, source) in candidates {
        let path = base.join(path);
        let path = std::fs::canonicalize(&path).unwrap_or(path);
        if checked.iter().any(|c: &CheckedRoot| c.path == path) {
            continue;
        }
        let rejected = if !path.exists() {
            Some(RootRejection::Missing)
        } else if !path.is_dir() {
            Some(RootRejection::NotADirectory)
        } else if !path.join(super::argv::CONFIG_FILE).is_file() {
            Some(RootRejection::NoInferenceConfig)
        } else {
            None
        };
        checked.push(CheckedRoot {
            path: path.clone(),
            source,
            rejected,
        });
        if rejected.is_none() {
            return RootResolution {
                root: Some(path),
                source: Some(source),
                checked,
            };
        }
    }
    RootResolution {
        root: None,
        source: None,
        checked,
    }
}

/// A label file the bundle may carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabelFile {
    pub path: PathBuf,
    pub present: bool,
}

/// `models/STAND_IN_WEIGHTS.json`, written by `scripts/make-standin-weights.py`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StandInMarker {
    pub path: PathBuf,
    /// The marker's `"stand_in"` is `true`.
    pub stand_in: bool,
    /// The digest of the model file the marker was written for.
    pub sha256: Option<String>,
    /// Why the marker could not be read, if it could not.
    pub unreadable: Option<String>,
}

/// What a bundle root holds. Cheap: nothing is hashed here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BundleInventory {
    pub root: PathBuf,
    pub config_file: PathBuf,
    pub config_present: bool,
    pub batch_config_present: bool,
    pub model_pt_path: PathBuf,
    pub model_pt_present: bool,
    pub model_pt_bytes: Option<u64>,
    /// `configs/label_dict.json`, `configs/metadata.json`, `configs/label_mappings.json`.
    pub label_files: Vec<LabelFile>,
    /// The first present of label_dict.json / metadata.json (the reference's label map order).
    pub label_map_path: Option<PathBuf>,
    pub stand_in_marker: Option<StandInMarker>,
    /// `configs/metadata.json` carries `"ctmr_skill_demo": true`.
    pub demo_bundle: bool,
}

impl BundleInventory {
    /// The model file, or [`UpstreamError::ModelMissing`] naming it and how to get weights.
    pub(crate) fn require_model(&self) -> Result<&Path, UpstreamError> {
        if self.model_pt_present {
            Ok(&self.model_pt_path)
        } else {
            Err(UpstreamError::ModelMissing {
                model_path: self.model_pt_path.clone(),
            })
        }
    }
}

/// Take stock of `root`.
pub fn inventory(root: &Path) -> BundleInventory {
    let config_file = root.join(super::argv::CONFIG_FILE);
    let model_pt_path = root.join("models/model.pt");
    let model_meta = std::fs::metadata(&model_pt_path)
        .ok()
        .filter(|m| m.is_file());
    let label_files: Vec<LabelFile> = ["label_dict.json", "metadata.json", "label_mappings.json"]
        .iter()
        .map(|name| {
            let path = root.join("configs").join(name);
            LabelFile {
                present: path.is_file(),
                path,
            }
        })
        .collect();
    let label_map_path = label_files
        .iter()
        .take(2)
        .find(|f| f.present)
        .map(|f| f.path.clone());
    let marker_path = root.join("models/STAND_IN_WEIGHTS.json");
    let stand_in_marker = marker_path.exists().then(|| read_marker(&marker_path));
    let demo_bundle = std::fs::read(root.join("configs/metadata.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v.get("ctmr_skill_demo") == Some(&serde_json::Value::Bool(true)));
    BundleInventory {
        root: root.to_path_buf(),
        config_present: config_file.is_file(),
        config_file,
        batch_config_present: root.join(super::argv::BATCH_CONFIG_FILES[1]).is_file(),
        model_pt_present: model_meta.is_some(),
        model_pt_bytes: model_meta.map(|m| m.len()),
        model_pt_path,
        label_files,
        label_map_path,
        stand_in_marker,
        demo_bundle,
    }
}

fn read_marker(path: &Path) -> StandInMarker {
    let parsed = std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).map_err(|e| e.to_string()));
    match parsed {
        Ok(v) => StandInMarker {
            path: path.to_path_buf(),
            stand_in: v.get("stand_in") == Some(&serde_json::Value::Bool(true)),
            sha256: v
                .get("sha256")
                .and_then(|s| s.as_str())
                .map(|s| s.trim().to_ascii_lowercase()),
            unreadable: None,
        },
        Err(e) => StandInMarker {
            path: path.to_path_buf(),
            stand_in: false,
            sha256: None,
            unreadable: Some(e),
        },
    }
}

/// Where the weights came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum WeightsProvenance {
    /// Presumed the published checkpoint: no marker claims otherwise.
    #[serde(rename = "upstream")]
    Upstream,
    /// Random-initialised stand-in weights (marker present and its digest matches the model file).
    #[serde(rename = "stand_in_random_init")]
    StandIn,
    /// The project's demo bundle (`configs/metadata.json` has `"ctmr_skill_demo": true`).
    #[serde(rename = "demo_bundle")]
    DemoBundle,
}

impl WeightsProvenance {
    /// The evidence string (`weights.provenance`).
    pub fn as_str(self) -> &'static str {
        match self {
            WeightsProvenance::Upstream => "upstream",
            WeightsProvenance::StandIn => "stand_in_random_init",
            WeightsProvenance::DemoBundle => "demo_bundle",
        }
    }

    /// A sentence for `weights.note`.
    pub fn note(self) -> &'static str {
        match self {
            WeightsProvenance::Upstream => {
                "models/model.pt carries no stand-in marker; presumed the published NV-Segment-CTMR checkpoint"
            }
            WeightsProvenance::StandIn => {
                "random-initialised stand-in weights (scripts/make-standin-weights.py): the pipeline ran for real, \
the segmentation is meaningless"
            }
            WeightsProvenance::DemoBundle => {
                "the project's demo bundle, not the upstream model: the pipeline ran, the segmentation is not VISTA3D's"
            }
        }
    }
}

/// Provenance of the weights in `inv`. `model_sha256` is the digest of `models/model.pt`
/// (computed by the caller, who records it anyway). A stand-in marker counts only when it
/// says `"stand_in": true` and its digest equals the model file's: a marker left behind
/// after the real weights were downloaded over the stand-in is ignored.
pub fn weights_provenance(inv: &BundleInventory, model_sha256: Option<&str>) -> WeightsProvenance {
    if inv.demo_bundle {
        return WeightsProvenance::DemoBundle;
    }
    let marker_matches = match (&inv.stand_in_marker, model_sha256) {
        (Some(m), Some(actual)) => {
            m.stand_in && m.sha256.as_deref() == Some(actual.trim().to_ascii_lowercase().as_str())
        }
        _ => false,
    };
    if marker_matches {
        WeightsProvenance::StandIn
    } else {
        WeightsProvenance::Upstream
    }
}

/// The commit of the git checkout holding `root`, if `configs/inference.json` is tracked
/// there (so a bundle copied, untracked, into some other repository does not borrow
/// that repository's commit). `None` when git is absent or the root is not a checkout.
pub fn git_commit(root: &Path) -> Option<String> {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .env("GIT_OPTIONAL_LOCKS", "0")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
    };
    git(&[
        "ls-files",
        "--error-unmatch",
        "--",
        super::argv::CONFIG_FILE,
    ])?;
    let out = git(&["rev-parse", "--verify", "HEAD"])?;
    let commit = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (commit.len() >= 40 && commit.bytes().all(|b| b.is_ascii_hexdigit())).then_some(commit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(dir: &Path) {
        std::fs::create_dir_all(dir.join("configs")).unwrap();
        std::fs::write(dir.join("configs/inference.json"), "{}").unwrap();
    }

    #[test]
    fn explicit_root_is_the_only_candidate() {
        let base = tempfile::tempdir().unwrap();
        let env_root = base.path().join("env-root");
        bundle(&env_root);
        let r = resolve_root(
            Some(Path::new("nowhere")),
            Some(env_root.as_os_str()),
            base.path(),
        );
        assert_eq!(r.root, None);
        assert_eq!(r.checked.len(), 1);
        assert_eq!(r.checked[0].source, RootSource::Explicit);
        assert_eq!(r.checked[0].rejected, Some(RootRejection::Missing));
        assert!(r.checked[0].path.ends_with("nowhere"));
        assert!(matches!(
            r.require(),
            Err(UpstreamError::RootNotFound { .. })
        ));
    }

    #[test]
    fn env_then_workbench_with_reasons() {
        let base = tempfile::tempdir().unwrap();
        let base_canon = std::fs::canonicalize(base.path()).unwrap();
        // $NV_SEGMENT_CTMR_ROOT points at the clone's top, not the nested bundle directory.
        let clone = base.path().join("clone");
        std::fs::create_dir_all(&clone).unwrap();
        bundle(&base.path().join(WORKBENCH_ROOT));
        let r = resolve_root(None, Some(clone.as_os_str()), base.path());
        assert_eq!(r.source, Some(RootSource::Workbench));
        assert_eq!(
            r.root.as_deref(),
            Some(base_canon.join(WORKBENCH_ROOT).as_path())
        );
        assert_eq!(r.checked.len(), 2);
        assert_eq!(r.checked[0].source, RootSource::Env);
        assert_eq!(
            r.checked[0].rejected,
            Some(RootRejection::NoInferenceConfig)
        );
        assert_eq!(r.checked[1].rejected, None);
        assert_eq!(r.require().unwrap(), base_canon.join(WORKBENCH_ROOT));
    }

    #[test]
    fn env_root_wins_over_workbench_and_relative_env_is_based() {
        let base = tempfile::tempdir().unwrap();
        bundle(&base.path().join("mine"));
        bundle(&base.path().join(WORKBENCH_ROOT));
        let r = resolve_root(None, Some(OsStr::new("mine")), base.path());
        assert_eq!(r.source, Some(RootSource::Env));
        assert_eq!(r.checked.len(), 1);
        assert!(r.root.unwrap().ends_with("mine"));
    }

    #[test]
    fn empty_env_counts_as_unset_and_errors_distinguish_cases() {
        let base = tempfile::tempdir().unwrap();
        let r = resolve_root(None, Some(OsStr::new("  ")), base.path());
        assert_eq!(r.checked.len(), 1);
        assert_eq!(r.checked[0].source, RootSource::Workbench);
        let msg = r.require().unwrap_err().to_string();
        assert!(msg.contains("not found"), "{msg}");
        assert!(
            msg.contains("git clone https://github.com/NVIDIA-Medtech/NV-Segment-CTMR"),
            "{msg}"
        );
        assert!(msg.contains("export NV_SEGMENT_CTMR_ROOT="), "{msg}");
        assert!(msg.contains("does not exist"), "{msg}");

        let file = base.path().join("a-file");
        std::fs::write(&file, "").unwrap();
        let r = resolve_root(Some(&file), None, base.path());
        assert_eq!(r.checked[0].rejected, Some(RootRejection::NotADirectory));

        let dir = base.path().join("dir");
        std::fs::create_dir(&dir).unwrap();
        let err = resolve_root(Some(&dir), None, base.path())
            .require()
            .unwrap_err();
        assert!(matches!(err, UpstreamError::ConfigMissing { .. }));
        assert!(err.to_string().contains("configs/inference.json"));
    }

    #[test]
    fn inventory_and_provenance() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        bundle(root);
        let inv = inventory(root);
        assert!(inv.config_present);
        assert!(!inv.model_pt_present);
        assert!(!inv.batch_config_present);
        assert_eq!(inv.label_map_path, None);
        let err = inv.require_model().unwrap_err();
        assert!(err.to_string().contains("models/model.pt"));
        assert!(err
            .to_string()
            .contains("hf download nvidia/NV-Segment-CTMR"));
        assert!(err.to_string().contains("make-standin-weights.py"));
        assert_eq!(weights_provenance(&inv, None), WeightsProvenance::Upstream);

        std::fs::create_dir_all(root.join("models")).unwrap();
        std::fs::write(root.join("models/model.pt"), b"weights").unwrap();
        std::fs::write(root.join("configs/metadata.json"), r#"{"version": "1"}"#).unwrap();
        std::fs::write(root.join("configs/label_mappings.json"), "{}").unwrap();
        let digest = super::super::sha256_file(&root.join("models/model.pt")).unwrap();
        std::fs::write(
            root.join("models/STAND_IN_WEIGHTS.json"),
            format!(
                r#"{{"stand_in": true, "sha256": "{}"}}"#,
                digest.to_uppercase()
            ),
        )
        .unwrap();
        let inv = inventory(root);
        assert!(inv.model_pt_present);
        assert_eq!(inv.model_pt_bytes, Some(7));
        assert_eq!(inv.require_model().unwrap(), root.join("models/model.pt"));
        assert_eq!(inv.label_map_path, Some(root.join("configs/metadata.json")));
        assert_eq!(
            inv.label_files
                .iter()
                .map(|f| f.present)
                .collect::<Vec<_>>(),
            vec![false, true, true]
        );
        assert!(!inv.demo_bundle);
        assert_eq!(
            weights_provenance(&inv, Some(&digest)),
            WeightsProvenance::StandIn
        );
        // Real weights downloaded over the stand-in: the marker no longer matches.
        assert_eq!(
            weights_provenance(&inv, Some(&"0".repeat(64))),
            WeightsProvenance::Upstream
        );
        assert_eq!(weights_provenance(&inv, None), WeightsProvenance::Upstream);

        // A marker that does not say stand_in: true does not count.
        std::fs::write(
            root.join("models/STAND_IN_WEIGHTS.json"),
            format!(r#"{{"stand_in": false, "sha256": "{digest}"}}"#),
        )
        .unwrap();
        assert_eq!(
            weights_provenance(&inventory(root), Some(&digest)),
            WeightsProvenance::Upstream
        );
        std::fs::write(root.join("models/STAND_IN_WEIGHTS.json"), "not json").unwrap();
        let inv = inventory(root);
        assert!(inv.stand_in_marker.as_ref().unwrap().unreadable.is_some());
        assert_eq!(
            weights_provenance(&inv, Some(&digest)),
            WeightsProvenance::Upstream
        );

        std::fs::write(
            root.join("configs/metadata.json"),
            r#"{"ctmr_skill_demo": true}"#,
        )
        .unwrap();
        let inv = inventory(root);
        assert!(inv.demo_bundle);
        assert_eq!(
            weights_provenance(&inv, Some(&digest)),
            WeightsProvenance::DemoBundle
        );
        assert_eq!(
            serde_json::to_value(WeightsProvenance::StandIn).unwrap(),
            serde_json::json!("stand_in_random_init")
        );
    }

    #[test]
    fn git_commit_only_for_tracked_bundles() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo/NV-Segment-CTMR");
        bundle(&root);
        assert_eq!(git_commit(&root), None);
        let repo = dir.path().join("repo");
        let git = |args: &[&str]| {
            let ok = Command::new("git")
                .arg("-C")
                .arg(&repo)
                .args(args)
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@example.com")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@example.com")
                .output()
                .unwrap();
            assert!(
                ok.status.success(),
                "{}",
                String::from_utf8_lossy(&ok.stderr)
            );
            String::from_utf8(ok.stdout).unwrap()
        };
        git(&["init", "-q"]);
        // A repository that does not track the bundle's config lends it no commit.
        std::fs::write(repo.join("README"), "x").unwrap();
        git(&["add", "README"]);
        git(&["commit", "-q", "-m", "init"]);
        assert_eq!(git_commit(&root), None);
        git(&["add", "."]);
        git(&["commit", "-q", "-m", "bundle"]);
        let head = git(&["rev-parse", "HEAD"]).trim().to_string();
        assert_eq!(git_commit(&root), Some(head));
    }
}

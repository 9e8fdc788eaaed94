//! Reading an evidence pack's JSON documents into the few facts the verifier needs,
//! leniently (a missing field is a recorded absence, never a crash) and without
//! believing any of them: every claim read here is either a pointer to a file that
//! is then opened and recomputed, or reported side by side with the recomputation.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::report::ClaimedFacts;

/// A JSON document of the pack: parsed, absent, or unparseable (with the reason).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PackDoc {
    Parsed(Value),
    Missing(PathBuf),
    Invalid { path: PathBuf, reason: String },
}

impl PackDoc {
    /// Read `<pack_dir>/<name>`.
    pub(crate) fn read(pack_dir: &Path, name: &str) -> PackDoc {
        let path = pack_dir.join(name);
        // Bounded, regular files only: a FIFO or /dev/zero here is refused at once.
        match crate::files::read_to_string_capped(&path, crate::files::JSON_CAP) {
            Err(e) if e.io_kind() == std::io::ErrorKind::NotFound => PackDoc::Missing(path),
            Err(e) => PackDoc::Invalid {
                path,
                reason: e.into_io_without_path().to_string(),
            },
            Ok(text) => match serde_json::from_str::<Value>(&text) {
                Ok(v) if v.is_object() => PackDoc::Parsed(v),
                Ok(_) => PackDoc::Invalid {
                    path,
                    reason: "not a JSON object".to_string(),
                },
                Err(e) => PackDoc::Invalid {
                    path,
                    reason: format!("not valid JSON: {e}"),
                },
            },
        }
    }

    pub(crate) fn value(&self) -> Option<&Value> {
        match self {
            PackDoc::Parsed(v) => Some(v),
            _ => None,
        }
    }

    /// Why the document is not usable, if it is not.
    pub(crate) fn problem(&self) -> Option<String> {
        match self {
            PackDoc::Parsed(_) => None,
            PackDoc::Missing(p) => Some(format!("{} is missing", p.display())),
            PackDoc::Invalid { path, reason } => {
                Some(format!("{} cannot be used: {reason}", path.display()))
            }
        }
    }
}

/// The facts the verifier takes from the pack's documents.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct PackFacts {
    /// `manifest.skill_id`, else `output.skill_id`, else `output.skill`.
    pub skill_id: String,
    /// `output.status`.
    pub status: Option<String>,
    /// `validation_summary.overall_status`.
    pub validation_overall: Option<String>,
    /// `invocation.exit_code` (the reference wrapper's success signal, with
    /// `validation_overall`, in packs that record no `status`).
    pub exit_code: Option<i64>,
    /// `validation_summary.schema_status` and `sanity_status` as recorded (the
    /// reference wrapper's summary fields; reported only).
    pub validation_schema_status: Option<String>,
    pub validation_sanity_status: Option<String>,
    /// `output.schema_version` (ctmr-skill packs record it; the reference wrapper's do not).
    pub schema_version: Option<String>,
    /// `output.json` records the reference wrapper's `skill` and `invocation` blocks.
    pub has_reference_fields: bool,
    /// `input.modality`, else `invocation.modality`.
    pub modality: Option<String>,
    pub mask_path: Option<String>,
    pub input_path: Option<String>,
    pub ground_truth_path: Option<String>,
    /// `output.label_prompts_requested`, else `invocation.label_prompts`.
    pub prompts: Vec<u32>,
    /// Prompts that could not be read as label ids (reported, and they fail the run checks).
    pub prompt_problems: Vec<String>,
    pub label_map_source: Option<String>,
    pub upstream_root: Option<String>,
    pub claimed: ClaimedFacts,
    /// Every SHA-256 the documents record, with the file it is about and its field.
    pub hash_claims: Vec<HashClaim>,
    /// Every skill id the documents record, with its field.
    pub skill_id_claims: Vec<(String, String)>,
}

/// Which file a recorded hash is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HashedFile {
    Mask,
    Input,
    GroundTruth,
}

/// One recorded hash.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HashClaim {
    pub file: HashedFile,
    /// Where it was recorded, e.g. `manifest.json hashes.mask_sha256`.
    pub field: String,
    pub sha256: String,
}

/// Which evidence showed whether the run succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunSuccessEvidence {
    /// `output.json` `status` (ctmr-skill packs).
    Status,
    /// No `status`: `invocation.exit_code` together with `validation_summary.json`
    /// `overall_status`, as the reference wrapper records success.
    ExitCodeAndValidation,
    /// Neither is recorded: the run cannot be shown to have succeeded.
    None,
}

impl PackFacts {
    /// Whether the run succeeded by its own account, which evidence said so, and why.
    /// `status` wins when recorded; otherwise the reference wrapper's signals
    /// (`invocation.exit_code == 0` and `overall_status == "passed"`); neither fails.
    pub(crate) fn run_succeeded(&self) -> (bool, RunSuccessEvidence, String) {
        if let Some(s) = &self.status {
            return (
                s == "succeeded",
                RunSuccessEvidence::Status,
                format!("output.json status is {s:?}"),
            );
        }
        let Some(code) = self.exit_code else {
            return (
                false,
                RunSuccessEvidence::None,
                "output.json records neither status nor invocation.exit_code: the run cannot be \
                 shown to have succeeded"
                    .to_string(),
            );
        };
        let overall = match &self.validation_overall {
            Some(s) => format!("validation_summary.json overall_status is {s:?}"),
            None => "validation_summary.json records no overall_status".to_string(),
        };
        let ok = code == 0 && self.validation_overall.as_deref() == Some("passed");
        (
            ok,
            RunSuccessEvidence::ExitCodeAndValidation,
            format!(
                "output.json records no status (the reference wrapper's layout), so success is read \
                 from its own signals: invocation.exit_code is {code} and {overall}{}",
                if ok { "" } else { "; success needs exit code 0 and \"passed\"" }
            ),
        )
    }

    /// Whether the pack is laid out as the reference wrapper writes it: `output.json`
    /// has its `skill` and `invocation` blocks and no ctmr-skill `schema_version`
    /// (ctmr-skill packs always record one).
    pub(crate) fn reference_layout(&self) -> bool {
        self.has_reference_fields
            && !self
                .schema_version
                .as_deref()
                .is_some_and(|v| v.starts_with("ctmr-skill."))
    }

    /// The recorded hashes of one file.
    pub(crate) fn hashes_of(&self, file: HashedFile) -> impl Iterator<Item = &HashClaim> {
        self.hash_claims.iter().filter(move |c| c.file == file)
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for key in path {
        cur = cur.get(key)?;
    }
    cur.as_str().filter(|s| !s.is_empty())
}

fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for key in path {
        cur = cur.get(key)?;
    }
    (!cur.is_null()).then_some(cur)
}

/// Label prompts as recorded: an array of ids, or a comma-separated string.
fn parse_prompts(v: &Value, problems: &mut Vec<String>) -> Vec<u32> {
    let mut out = Vec::new();
    let mut push = |raw: String, parsed: Option<u32>| match parsed {
        Some(id) => out.push(id),
        None => problems.push(format!(
            "label prompt {raw} is not a non-negative integer id"
        )),
    };
    match v {
        Value::Array(items) => {
            for item in items {
                let parsed = item
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .or_else(|| item.as_str().and_then(|s| s.trim().parse().ok()));
                push(item.to_string(), parsed);
            }
        }
        Value::String(s) => {
            for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                push(format!("{part:?}"), part.parse().ok());
            }
        }
        Value::Null => {}
        other => problems.push(format!(
            "label prompts {other} are neither a list nor a comma-separated string"
        )),
    }
    out
}

impl PackFacts {
    /// Gather the facts from the three documents (any of which may be absent).
    pub(crate) fn gather(
        output: &Value,
        manifest: Option<&Value>,
        validation: Option<&Value>,
    ) -> PackFacts {
        let mut f = PackFacts {
            skill_id: manifest
                .and_then(|m| str_at(m, &["skill_id"]))
                .or_else(|| str_at(output, &["skill_id"]))
                .or_else(|| str_at(output, &["skill"]))
                .unwrap_or_default()
                .to_string(),
            status: str_at(output, &["status"]).map(str::to_string),
            exit_code: at(output, &["invocation", "exit_code"]).and_then(Value::as_i64),
            validation_schema_status: validation
                .and_then(|v| str_at(v, &["schema_status"]))
                .map(str::to_string),
            validation_sanity_status: validation
                .and_then(|v| str_at(v, &["sanity_status"]))
                .map(str::to_string),
            schema_version: str_at(output, &["schema_version"]).map(str::to_string),
            has_reference_fields: str_at(output, &["skill"]).is_some()
                && output.get("invocation").is_some_and(Value::is_object),
            validation_overall: validation
                .and_then(|v| str_at(v, &["overall_status"]))
                .map(str::to_string),
            modality: str_at(output, &["input", "modality"])
                .or_else(|| str_at(output, &["invocation", "modality"]))
                .map(str::to_string),
            mask_path: str_at(output, &["output", "path"]).map(str::to_string),
            input_path: str_at(output, &["input", "path"]).map(str::to_string),
            ground_truth_path: str_at(output, &["input", "ground_truth_path"]).map(str::to_string),
            label_map_source: str_at(output, &["output", "label_map_source"]).map(str::to_string),
            upstream_root: str_at(output, &["invocation", "upstream_root"]).map(str::to_string),
            ..PackFacts::default()
        };
        let mut problems = Vec::new();
        let prompts = at(output, &["output", "label_prompts_requested"])
            .or_else(|| at(output, &["invocation", "label_prompts"]));
        if let Some(p) = prompts {
            f.prompts = parse_prompts(p, &mut problems);
        }
        f.prompts.sort_unstable();
        f.prompts.dedup();
        f.prompt_problems = problems;
        let mut hash = |file: HashedFile, doc: Option<&Value>, doc_name: &str, path: &[&str]| {
            if let Some(sha) = doc.and_then(|d| str_at(d, path)) {
                f.hash_claims.push(HashClaim {
                    file,
                    field: format!("{doc_name} {}", path.join(".")),
                    sha256: sha.to_string(),
                });
            }
        };
        hash(
            HashedFile::Mask,
            Some(output),
            "output.json",
            &["output", "sha256"],
        );
        hash(
            HashedFile::Mask,
            manifest,
            "manifest.json",
            &["hashes", "mask_sha256"],
        );
        hash(
            HashedFile::Input,
            Some(output),
            "output.json",
            &["input", "sha256"],
        );
        hash(
            HashedFile::Input,
            manifest,
            "manifest.json",
            &["hashes", "input_sha256"],
        );
        hash(
            HashedFile::GroundTruth,
            manifest,
            "manifest.json",
            &["hashes", "ground_truth_sha256"],
        );
        for (doc, doc_name, key) in [
            (manifest, "manifest.json", "skill_id"),
            (Some(output), "output.json", "skill_id"),
            (Some(output), "output.json", "skill"),
        ] {
            if let Some(id) = doc.and_then(|d| str_at(d, &[key])) {
                f.skill_id_claims
                    .push((format!("{doc_name} {key}"), id.to_string()));
            }
        }
        f.claimed = ClaimedFacts {
            affine_match: at(output, &["output", "geometry", "affine_match"])
                .and_then(Value::as_bool),
            label_ids_present: at(output, &["output", "label_ids_present"]).and_then(|v| {
                v.as_array().map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_u64().and_then(|n| u32::try_from(n).ok()))
                        .collect()
                })
            }),
            mask_sha256: str_at(output, &["output", "sha256"])
                .or_else(|| manifest.and_then(|m| str_at(m, &["hashes", "mask_sha256"])))
                .map(str::to_string),
            shape: at(output, &["output", "shape"]).and_then(|v| {
                v.as_array()
                    .map(|a| a.iter().filter_map(Value::as_u64).collect())
            }),
            shape_match: at(output, &["output", "geometry", "shape_match"])
                .and_then(Value::as_bool),
            spacing_match: at(output, &["output", "geometry", "spacing_match"])
                .and_then(Value::as_bool),
            voxel_volume_ml: at(output, &["output", "voxel_volume_ml"]).and_then(Value::as_f64),
        };
        f
    }
}

/// Resolve a path recorded in the pack: absolute as-is; relative against the pack
/// directory, then the caller's working directory `cwd` (from its config). When
/// neither exists, the pack-relative candidate is returned so the report names where
/// it was looked for.
pub(crate) fn resolve_recorded_path(pack_dir: &Path, raw: &str, cwd: Option<&Path>) -> PathBuf {
    let p = Path::new(raw);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    let in_pack = pack_dir.join(p);
    if in_pack.exists() {
        return in_pack;
    }
    if let Some(cwd) = cwd {
        let in_cwd = cwd.join(p);
        if in_cwd.exists() {
            return in_cwd;
        }
    }
    in_pack
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn facts_prefer_manifest_skill_id_and_read_prompts_in_both_spellings() {
        let output = json!({
            "skill": "nv_segment_ctmr",
            "status": "succeeded",
            "input": {"path": "/x/ct.nii.gz", "modality": "CT_BODY", "ground_truth_path": null},
            "output": {"path": "m.nii.gz", "label_prompts_requested": [14, 3, 3], "shape": [4, 5, 6],
                       "geometry": {"affine_match": true}},
            "invocation": {"label_prompts": "1,2", "upstream_root": "/bundle"}
        });
        let manifest =
            json!({"skill_id": "medagent.nv_segment_ctmr", "hashes": {"mask_sha256": "ab"}});
        let f = PackFacts::gather(
            &output,
            Some(&manifest),
            Some(&json!({"overall_status": "passed"})),
        );
        assert_eq!(f.skill_id, "medagent.nv_segment_ctmr");
        assert_eq!(f.prompts, vec![3, 14]);
        assert_eq!(f.ground_truth_path, None);
        assert_eq!(f.validation_overall.as_deref(), Some("passed"));
        assert_eq!(f.claimed.shape, Some(vec![4, 5, 6]));
        assert_eq!(f.claimed.mask_sha256.as_deref(), Some("ab"));
        let masks: Vec<&str> = f
            .hashes_of(HashedFile::Mask)
            .map(|c| c.field.as_str())
            .collect();
        assert_eq!(masks, vec!["manifest.json hashes.mask_sha256"]);
        assert_eq!(f.skill_id_claims.len(), 2);
        assert_eq!(f.upstream_root.as_deref(), Some("/bundle"));

        let output = json!({"skill": "nv_segment_ctmr", "invocation": {"label_prompts": "1, 2,x"}});
        let f = PackFacts::gather(&output, None, None);
        assert_eq!(f.skill_id, "nv_segment_ctmr");
        assert_eq!(f.prompts, vec![1, 2]);
        assert_eq!(f.prompt_problems.len(), 1);
        assert_eq!(f.status, None);
    }

    #[test]
    fn documents_report_missing_and_invalid() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            PackDoc::read(dir.path(), "output.json"),
            PackDoc::Missing(_)
        ));
        std::fs::write(dir.path().join("output.json"), "{not json").unwrap();
        let d = PackDoc::read(dir.path(), "output.json");
        assert!(d
            .problem()
            .unwrap()
            .contains("output.json cannot be used: not valid JSON"));
        std::fs::write(dir.path().join("output.json"), "[1]").unwrap();
        assert!(PackDoc::read(dir.path(), "output.json")
            .problem()
            .unwrap()
            .contains("not a JSON object"));
    }

    #[test]
    fn a_document_that_is_a_device_or_fifo_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("manifest.json")).unwrap();
        let problem = PackDoc::read(dir.path(), "manifest.json")
            .problem()
            .unwrap();
        assert!(
            problem.contains("manifest.json cannot be used: is a character device"),
            "{problem}"
        );
        let fifo = dir.path().join("output.json");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let problem = PackDoc::read(dir.path(), "output.json").problem().unwrap();
        assert!(problem.contains("is a FIFO (named pipe)"), "{problem}");
    }

    #[test]
    fn relative_paths_resolve_against_the_pack_first() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.nii.gz"), b"").unwrap();
        assert_eq!(
            resolve_recorded_path(dir.path(), "m.nii.gz", None),
            dir.path().join("m.nii.gz")
        );
        assert_eq!(
            resolve_recorded_path(dir.path(), "nope.nii.gz", None),
            dir.path().join("nope.nii.gz")
        );
        assert_eq!(
            resolve_recorded_path(dir.path(), "/abs/x", None),
            PathBuf::from("/abs/x")
        );
    }
}

//! Where and how an attempt stages its inputs for the upstream's batch config: links
//! `<id>.nii[.gz]` in a fresh directory, passed as `--input_dir` and, in order, as the
//! `--input_list` override (plus `--input_dicts` with the prompts).
//!
//! The override values are Python literals that MONAI reads as configuration, and
//! [`upstream::build_batch_argv`] refuses any that holds `$`, `@` or `%` (code, a
//! reference, a macro). The links' own names are safe ids, so only the directory could
//! bring one in (an output root such as `/data/$cohort/out`): then the links go to a
//! private directory under the temp dir instead, and no such character reaches the
//! bundle. Inputs with those characters in their own paths are only link targets.

use std::path::{Path, PathBuf};

use super::Entry;
use crate::tools::run_script::request::RunRequest;
use crate::tools::run_script::run::{self as single, StartFailure};
use crate::upstream::{self, MONAI_SPECIAL};

/// The directory an attempt stages its inputs in; removed when dropped.
pub(super) struct Staging(PathBuf);

impl Staging {
    /// `<attempt>/inputs`, or `<temp dir>/ctmr-skill-<run id>-<attempt>-<random>` when the first
    /// holds a character MONAI would read as code, a reference or a macro.
    pub(super) fn new(attempt: &Path) -> Result<Staging, StartFailure> {
        let inside = attempt.join("inputs");
        if !holds_special(&inside) {
            return Ok(Staging(inside));
        }
        let name: Vec<String> = attempt
            .iter()
            .rev()
            .take(2)
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        // A random suffix: the temp dir may be shared, and a name another user could
        // predict could be created (or linked) there first.
        let private = std::env::temp_dir().join(format!(
            "ctmr-skill-{}-{}-{}",
            name[1],
            name[0],
            uuid::Uuid::new_v4().simple()
        ));
        if holds_special(&private) {
            return Err(StartFailure(format!(
                "cannot stage the inputs: both {} and the temp dir {} contain '$', '@' or '%', \
                 which MONAI reads as code; choose an output_root without them, or set TMPDIR",
                inside.display(),
                private.display()
            )));
        }
        Ok(Staging(private))
    }

    pub(super) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn holds_special(path: &Path) -> bool {
    path.to_string_lossy().contains(MONAI_SPECIAL)
}

/// A volume staged for an attempt: its index, the staged link, where its mask lands.
pub(super) type Staged = (usize, PathBuf, PathBuf);

/// Stage the inputs of `order` as links in `staging` (the batch config reads a
/// directory), moving aside stale masks of earlier runs.
pub(super) fn stage(
    order: &[usize],
    entries: &mut [Entry],
    staging: &Path,
    masks: &Path,
) -> Result<Vec<Staged>, StartFailure> {
    let io = |what: &str, path: &Path, e: std::io::Error| {
        StartFailure(format!("{what} {}: {e}", path.display()))
    };
    std::fs::create_dir_all(staging).map_err(|e| io("cannot create", staging, e))?;
    let mut staged = Vec::new();
    for &i in order {
        let entry = &mut entries[i];
        let link = staging.join(entry.volume.staged_name());
        // The gated input: the volume itself, or its conversion from DICOM in the pack.
        std::os::unix::fs::symlink(&entry.gated.request.input, &link)
            .map_err(|e| io("cannot stage the input as", &link, e))?;
        entry.stale = upstream::move_aside_stale(&entry.gated.mask_path, chrono::Utc::now())
            .map_err(|e| StartFailure(e.to_string()))?;
        let scratch_mask = upstream::expected_mask_path(masks, &link);
        staged.push((i, link, scratch_mask));
    }
    Ok(staged)
}

/// The batch's overrides: the staged list, the prompts per input (the batch config
/// otherwise prompts everything), and the documented memory/speed switches.
pub(super) fn batch_overrides(
    staged: &[Staged],
    prompts: Option<&[u32]>,
    first: &RunRequest,
) -> Vec<(String, String)> {
    let mut overrides = vec![(
        "input_list".to_string(),
        py_list(staged.iter().map(|s| &s.1)),
    )];
    if let Some(prompts) = prompts {
        let ids: Vec<String> = prompts.iter().map(u32::to_string).collect();
        let dicts: Vec<String> = staged
            .iter()
            .map(|(_, link, _)| {
                format!(
                    "{{'image': {}, 'label_prompt': [{}]}}",
                    upstream::python_repr_str(&link.to_string_lossy()),
                    ids.join(", ")
                )
            })
            .collect();
        overrides.push(("input_dicts".into(), format!("[{}]", dicts.join(", "))));
    }
    overrides.extend(single::overrides_of(first));
    overrides
}

/// A Python list literal of absolute paths.
fn py_list<'a>(paths: impl Iterator<Item = &'a PathBuf>) -> String {
    let items: Vec<String> = paths
        .map(|p| upstream::python_repr_str(&p.to_string_lossy()))
        .collect();
    format!("[{}]", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_go_where_no_monai_special_character_is_in_the_path() {
        let clean = Path::new("/data/out/.batch/20261204T153000Z-1a2b3c4d/attempt-1");
        assert_eq!(Staging::new(clean).unwrap().path(), clean.join("inputs"));
        for special in ['$', '@', '%'] {
            let attempt = PathBuf::from(format!(
                "/data/co{special}hort/out/.batch/20261204T153000Z-1a2b3c4d/attempt-2"
            ));
            let staging = Staging::new(&attempt).unwrap();
            let name = staging.path().file_name().unwrap().to_string_lossy();
            assert_eq!(
                staging.path().parent(),
                Some(std::env::temp_dir().as_path())
            );
            assert!(
                name.starts_with("ctmr-skill-20261204T153000Z-1a2b3c4d-attempt-2-")
                    && name.len() == "ctmr-skill-20261204T153000Z-1a2b3c4d-attempt-2-".len() + 32,
                "{name}"
            );
            assert!(!holds_special(staging.path()));
        }
    }
}

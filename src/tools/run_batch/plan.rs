//! The pure parts of a batch: naming volumes, finding inputs, deciding what a
//! finished attempt means, and whether an earlier pack can be reused.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::evidence::{Evidence, RunStatus};

/// One volume of the cohort.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Volume {
    /// Position in the cohort (sorted input order).
    pub index: usize,
    /// Unique, filesystem-safe name: the pack directory under the output root and
    /// the name the input is staged under for the upstream.
    pub id: String,
    /// Absolute input path.
    pub input: PathBuf,
}

impl Volume {
    /// The file name the input is staged under (`<id>.nii.gz` or `<id>.nii`), so the
    /// upstream writes `<masks>/<id>/<id>_trans.nii.gz` whatever the input was called.
    pub(crate) fn staged_name(&self) -> String {
        let name = self.input.to_string_lossy().to_ascii_lowercase();
        if name.ends_with(".nii") {
            format!("{}.nii", self.id)
        } else {
            format!("{}.nii.gz", self.id)
        }
    }
}

/// Ids from input stems: characters outside `[A-Za-z0-9._-]` become `_`, a leading
/// dot is dropped, and repeats get `-2`, `-3`, ... in input order, so the same list
/// of inputs always gets the same ids (which is what makes a re-run find its packs).
pub(crate) fn assign_ids(inputs: &[PathBuf]) -> Vec<Volume> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut taken: BTreeSet<String> = BTreeSet::new();
    inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let stem = crate::upstream::nifti_stem(input);
            let mut base: String = stem
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            base = base.trim_start_matches('.').to_string();
            if base.is_empty() {
                base = format!("volume_{index}");
            }
            let mut id = base.clone();
            while taken.contains(&id) {
                let n = seen.entry(base.clone()).or_insert(1);
                *n += 1;
                id = format!("{base}-{n}");
            }
            taken.insert(id.clone());
            Volume {
                index,
                id,
                input: input.clone(),
            }
        })
        .collect()
}

/// Files under `dir` (recursively, like the upstream's `**/*.nii.gz`) whose names end
/// with `suffix`, sorted; hidden directories and anything under `exclude` (the output
/// root, when it lies inside the input directory) are skipped. A dangling link or an
/// unreadable entry is left out (logged), not fatal for the whole directory; a
/// directory reached twice through links (a loop) is walked once.
pub(crate) fn discover(dir: &Path, suffix: &str, exclude: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut first = true;
    while let Some(d) = stack.pop() {
        if !seen.insert(std::fs::canonicalize(&d).unwrap_or_else(|_| d.clone())) {
            continue;
        }
        let entries = match std::fs::read_dir(&d) {
            Ok(entries) => entries,
            Err(e) if first => return Err(e),
            Err(e) => {
                tracing::warn!("input_dir: skipping {}: {e}", d.display());
                continue;
            }
        };
        first = false;
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.starts_with(exclude) || name.starts_with('.') {
                continue;
            }
            match std::fs::metadata(&path) {
                Ok(kind) if kind.is_dir() => stack.push(path),
                Ok(kind) if kind.is_file() && name.ends_with(suffix) => out.push(path),
                Ok(_) => {}
                Err(e) => tracing::warn!("input_dir: skipping {}: {e}", path.display()),
            }
        }
    }
    out.sort();
    Ok(out)
}

/// What one batch attempt left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Every volume of the attempt has its mask.
    AllWritten,
    /// The process stopped (died, or ended early) at `suspect`, the first volume in
    /// attempt order without a mask: the one in flight. `rest` comes after it.
    StoppedAt {
        suspect: usize,
        rest: Vec<usize>,
        wrote_any: bool,
    },
}

/// Judge an attempt over `order` given which volumes got a mask. The upstream
/// processes its list in order (no shuffle), so the first gap is where it stopped.
pub(crate) fn judge(order: &[usize], written: &BTreeSet<usize>) -> Verdict {
    match order.iter().position(|i| !written.contains(i)) {
        None => Verdict::AllWritten,
        Some(at) => Verdict::StoppedAt {
            suspect: order[at],
            rest: order[at + 1..]
                .iter()
                .copied()
                .filter(|i| !written.contains(i))
                .collect(),
            wrote_any: order.iter().any(|i| written.contains(i)),
        },
    }
}

/// Whether an earlier pack of this volume can stand: it succeeded, for the same input
/// bytes, modality and prompts, and its mask is still there with the recorded hash.
/// `Err` says why not (for the log); `mask_sha` hashes the recorded mask.
/// The earlier run's mask, resolved, when it lies inside `pack`: a path read back from
/// a pack's `output.json` is data, and one that points elsewhere is never hashed or
/// reused (a forged `output.json` could name any file).
pub(crate) fn mask_in_pack(pack: &Path, mask: &str) -> Option<PathBuf> {
    let pack = pack.canonicalize().ok()?;
    let mask = Path::new(mask).canonicalize().ok()?;
    mask.starts_with(&pack).then_some(mask)
}

pub(crate) fn reusable(
    previous: &Evidence,
    input_sha: &str,
    modality: &str,
    prompts: Option<&[u32]>,
    mask_sha: impl FnOnce(&Path) -> Option<String>,
) -> Result<(), String> {
    if previous.status != RunStatus::Succeeded {
        return Err(format!(
            "the earlier run ended {}",
            previous.status.as_str()
        ));
    }
    if previous.input.sha256.as_deref() != Some(input_sha) {
        return Err("the input changed since the earlier run (sha256 differs)".into());
    }
    if previous.input.modality != modality {
        return Err(format!(
            "the earlier run used modality {}",
            previous.input.modality
        ));
    }
    let earlier = previous.invocation.label_prompts.as_deref().unwrap_or(&[]);
    if earlier != prompts.unwrap_or(&[]) {
        return Err(format!("the earlier run used prompts {earlier:?}"));
    }
    let Some(mask) = previous.output.path.as_deref() else {
        return Err("the earlier run recorded no mask".into());
    };
    match mask_sha(Path::new(mask)) {
        Some(sha) if Some(&sha) == previous.output.sha256.as_ref() => Ok(()),
        Some(_) => Err(format!("the mask {mask} changed since the earlier run")),
        None => Err(format!("the mask {mask} is gone")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(inputs: &[&str]) -> Vec<String> {
        let inputs: Vec<PathBuf> = inputs.iter().map(PathBuf::from).collect();
        assign_ids(&inputs).into_iter().map(|v| v.id).collect()
    }

    #[test]
    fn ids_are_unique_safe_and_stable() {
        assert_eq!(
            ids(&["/a/ct.nii.gz", "/b/ct.nii.gz", "/c/ct.nii", "/d/x y.nii.gz"]),
            ["ct", "ct-2", "ct-3", "x_y"]
        );
        assert_eq!(ids(&["/a/.hidden.nii.gz", "/a/日本.nii"]), ["hidden", "__"]);
        assert_eq!(
            ids(&["/a/ct-2.nii.gz", "/b/ct.nii.gz", "/c/ct.nii.gz"]),
            ["ct-2", "ct", "ct-3"]
        );
        let v = &assign_ids(&[PathBuf::from("/a/B.NII")])[0];
        assert_eq!(v.staged_name(), "B.nii");
        let v = &assign_ids(&[PathBuf::from("/a/c.nii.gz")])[0];
        assert_eq!(v.staged_name(), "c.nii.gz");
    }

    #[test]
    fn the_first_gap_is_the_suspect() {
        let written = |v: &[usize]| v.iter().copied().collect::<BTreeSet<_>>();
        assert_eq!(judge(&[0, 1, 2], &written(&[0, 1, 2])), Verdict::AllWritten);
        assert_eq!(
            judge(&[0, 1, 2], &written(&[0])),
            Verdict::StoppedAt {
                suspect: 1,
                rest: vec![2],
                wrote_any: true
            }
        );
        assert_eq!(
            judge(&[3, 5, 7], &written(&[])),
            Verdict::StoppedAt {
                suspect: 3,
                rest: vec![5, 7],
                wrote_any: false
            }
        );
        // A mask past the gap (out-of-order writing) is kept, not re-run.
        assert_eq!(
            judge(&[0, 1, 2, 3], &written(&[0, 2])),
            Verdict::StoppedAt {
                suspect: 1,
                rest: vec![3],
                wrote_any: true
            }
        );
    }

    #[test]
    fn discovery_is_recursive_sorted_and_skips_the_output_root() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        for f in [
            "b.nii.gz",
            "a.nii.gz",
            "sub/c.nii.gz",
            "notes.txt",
            ".hid/d.nii.gz",
            "out/e.nii.gz",
        ] {
            let p = base.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x").unwrap();
        }
        let found = discover(base, ".nii.gz", &base.join("out")).unwrap();
        let names: Vec<String> = found
            .iter()
            .map(|p| p.strip_prefix(base).unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["a.nii.gz", "b.nii.gz", "sub/c.nii.gz"]);
    }

    #[test]
    fn dangling_links_and_loops_do_not_refuse_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("in");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("a.nii.gz"), b"x").unwrap();
        std::fs::write(root.join("sub/b.nii.gz"), b"x").unwrap();
        std::os::unix::fs::symlink(root.join("gone.nii.gz"), root.join("dangling.nii.gz")).unwrap();
        std::os::unix::fs::symlink(&root, root.join("sub/loop")).unwrap();
        std::os::unix::fs::symlink(root.join("sub/self"), root.join("sub/self")).unwrap();
        let found = discover(&root, ".nii.gz", &dir.path().join("out")).unwrap();
        assert_eq!(
            found,
            vec![root.join("a.nii.gz"), root.join("sub/b.nii.gz")]
        );
    }

    #[test]
    fn a_mask_recorded_outside_its_pack_is_not_taken() {
        let dir = tempfile::tempdir().unwrap();
        let pack = dir.path().join("pack");
        std::fs::create_dir_all(pack.join("ct")).unwrap();
        std::fs::write(pack.join("ct/ct_trans.nii.gz"), b"x").unwrap();
        std::fs::write(dir.path().join("elsewhere.nii.gz"), b"x").unwrap();
        std::os::unix::fs::symlink(
            dir.path().join("elsewhere.nii.gz"),
            pack.join("link.nii.gz"),
        )
        .unwrap();
        let inside = pack.join("ct/ct_trans.nii.gz");
        assert_eq!(
            mask_in_pack(&pack, inside.to_str().unwrap()),
            Some(inside.canonicalize().unwrap())
        );
        for forged in [
            dir.path().join("elsewhere.nii.gz"),
            pack.join("../elsewhere.nii.gz"),
            pack.join("link.nii.gz"),
            PathBuf::from("/etc/hostname"),
        ] {
            assert_eq!(
                mask_in_pack(&pack, forged.to_str().unwrap()),
                None,
                "{forged:?}"
            );
        }
    }
}

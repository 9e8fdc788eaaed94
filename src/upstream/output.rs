//! Where the upstream writes its mask, and the rules that keep us from reporting the
//! wrong file: a leftover mask from an earlier run is moved aside (and reported) before
//! the run; afterwards the file is adopted only if this run wrote it. The input file and
//! the upstream checkout are never written to.

use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::error::UpstreamError;

/// The bundle's `output_postfix` and `output_ext` (configs/inference.json).
const POSTFIX: &str = "_trans";
const EXT: &str = ".nii.gz";

/// The file stem MONAI's `SaveImaged` derives from the input name
/// (`monai.data.utils.create_file_basename`): one extension removed, a second one too
/// when the first was `.gz`. For `x.nii.gz` and `x.nii` that is `x`.
pub(crate) fn nifti_stem(input: &Path) -> String {
    let name = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (stem, ext) = python_splitext(&name);
    if ext == ".gz" {
        python_splitext(stem).0.to_string()
    } else {
        stem.to_string()
    }
}

/// `os.path.splitext` on a file name: leading dots never start an extension.
fn python_splitext(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(i) if name[..i].chars().any(|c| c != '.') => (&name[..i], &name[i..]),
        _ => (name, ""),
    }
}

/// `<output_dir>/<stem>/<stem>_trans.nii.gz`: where the bundle writes the mask
/// (`separate_folder: true`, `output_postfix: trans`, `output_ext: .nii.gz`).
pub fn expected_mask_path(output_dir: &Path, input: &Path) -> PathBuf {
    let stem = nifti_stem(input);
    output_dir.join(&stem).join(format!("{stem}{POSTFIX}{EXT}"))
}

/// A mask from an earlier run, moved out of the way before this run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaleOutput {
    pub original: PathBuf,
    pub moved_to: PathBuf,
}

/// If something already sits at `mask_path`, rename it to
/// `<name>.stale-<UTC timestamp>.nii.gz` beside it (a counter is added if that exists
/// too) and report the move; `Ok(None)` when nothing was there.
pub(crate) fn move_aside_stale(
    mask_path: &Path,
    now: DateTime<Utc>,
) -> Result<Option<StaleOutput>, UpstreamError> {
    match std::fs::symlink_metadata(mask_path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(UpstreamError::Io {
                action: "could not inspect",
                path: mask_path.to_path_buf(),
                source: e,
            })
        }
        Ok(_) => {}
    }
    let name = mask_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base = name.strip_suffix(EXT).unwrap_or(&name);
    let stamp = now.format("%Y%m%dT%H%M%SZ");
    let mut moved_to = mask_path.with_file_name(format!("{base}.stale-{stamp}{EXT}"));
    let mut n = 1;
    while std::fs::symlink_metadata(&moved_to).is_ok() {
        moved_to = mask_path.with_file_name(format!("{base}.stale-{stamp}-{n}{EXT}"));
        n += 1;
    }
    std::fs::rename(mask_path, &moved_to).map_err(|source| UpstreamError::MoveAside {
        from: mask_path.to_path_buf(),
        to: moved_to.clone(),
        source,
    })?;
    Ok(Some(StaleOutput {
        original: mask_path.to_path_buf(),
        moved_to,
    }))
}

/// Refuse an output directory inside the upstream checkout (which is never written
/// into). Paths are compared after resolving symlinks of their existing parts, so `..`
/// and links cannot sneak past.
pub(crate) fn check_output_dir(output_dir: &Path, bundle_root: &Path) -> Result<(), UpstreamError> {
    if resolve_existing_prefix(output_dir).starts_with(resolve_existing_prefix(bundle_root)) {
        return Err(UpstreamError::OutputInsideBundle {
            output_dir: output_dir.to_path_buf(),
            root: bundle_root.to_path_buf(),
        });
    }
    Ok(())
}

/// [`check_output_dir`], and refuse when the expected mask path resolves to the input
/// itself (possible only through links, since the mask's name adds `_trans`: the
/// move-aside would otherwise rename the real input). Returns the expected mask path.
pub(crate) fn check_output_location(
    input: &Path,
    output_dir: &Path,
    bundle_root: &Path,
) -> Result<PathBuf, UpstreamError> {
    check_output_dir(output_dir, bundle_root)?;
    let mask = expected_mask_path(output_dir, input);
    if resolve_existing_prefix(&mask) == resolve_existing_prefix(input) {
        return Err(UpstreamError::MaskWouldOverwriteInput { path: mask });
    }
    Ok(mask)
}

/// Canonicalise the longest existing ancestor of `path` and append the rest lexically.
fn resolve_existing_prefix(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest: Vec<std::ffi::OsString> = Vec::new();
    loop {
        if let Ok(canon) = std::fs::canonicalize(&existing) {
            let mut out = canon;
            for part in rest.iter().rev() {
                match Path::new(part).components().next() {
                    Some(Component::ParentDir) => {
                        out.pop();
                    }
                    Some(Component::CurDir) | None => {}
                    _ => out.push(part),
                }
            }
            return out;
        }
        let last = existing.components().next_back();
        match (existing.parent(), last) {
            (Some(parent), Some(last)) if !parent.as_os_str().is_empty() => {
                rest.push(last.as_os_str().to_os_string());
                existing = parent.to_path_buf();
            }
            _ => {
                // Nothing exists, not even the first component: clean up lexically.
                let mut out = PathBuf::new();
                for c in path.components() {
                    match c {
                        Component::ParentDir => {
                            out.pop();
                        }
                        Component::CurDir => {}
                        other => out.push(other),
                    }
                }
                return out;
            }
        }
    }
}

/// Whether the run's mask can be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum MaskAdoption {
    /// Written by this run.
    Adopted { path: PathBuf, bytes: u64 },
    /// No file at the expected path.
    Missing { path: PathBuf },
    /// Something other than a regular file is there.
    NotAFile { path: PathBuf },
    /// A zero-byte file.
    Empty { path: PathBuf },
    /// Last modified before the run started: not this run's output.
    Stale { path: PathBuf },
}

impl MaskAdoption {
    /// The adopted mask, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            MaskAdoption::Adopted { path, .. } => Some(path),
            _ => None,
        }
    }
}

/// Adopt `mask_path` only if it is a non-empty regular file modified at or after
/// `run_started`. The start is floored to whole seconds because some file systems keep
/// coarse modification times; the pre-run move-aside already cleared the path.
pub(crate) fn adopt_mask(mask_path: &Path, run_started: SystemTime) -> MaskAdoption {
    let path = mask_path.to_path_buf();
    let meta = match std::fs::metadata(mask_path) {
        Ok(m) => m,
        Err(_) => return MaskAdoption::Missing { path },
    };
    if !meta.is_file() {
        return MaskAdoption::NotAFile { path };
    }
    if meta.len() == 0 {
        return MaskAdoption::Empty { path };
    }
    let floor = run_started
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| SystemTime::UNIX_EPOCH + Duration::from_secs(d.as_secs()))
        .unwrap_or(run_started);
    match meta.modified() {
        Ok(mtime) if mtime >= floor => MaskAdoption::Adopted {
            path,
            bytes: meta.len(),
        },
        _ => MaskAdoption::Stale { path },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_follow_monai() {
        let cases = [
            ("/d/case.nii.gz", "case"),
            ("/d/case.nii", "case"),
            ("/d/case.v2.nii.gz", "case.v2"),
            ("/d/it's a.nii.gz", "it's a"),
            ("/d/x.gz", "x"),
            ("/d/x.mha", "x"),
            ("/d/.hidden.nii.gz", ".hidden"),
            ("/d/noext", "noext"),
        ];
        for (input, stem) in cases {
            assert_eq!(nifti_stem(Path::new(input)), stem, "{input}");
        }
        assert_eq!(
            expected_mask_path(Path::new("/out"), Path::new("/in/s0289.nii.gz")),
            Path::new("/out/s0289/s0289_trans.nii.gz")
        );
    }

    #[test]
    fn stale_mask_is_moved_aside_and_reported() {
        let t = tempfile::tempdir().unwrap();
        let mask = expected_mask_path(t.path(), Path::new("/in/ct.nii.gz"));
        let now = DateTime::parse_from_rfc3339("2026-11-29T11:14:42Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(move_aside_stale(&mask, now).unwrap(), None);

        std::fs::create_dir_all(mask.parent().unwrap()).unwrap();
        std::fs::write(&mask, b"old").unwrap();
        let s = move_aside_stale(&mask, now).unwrap().unwrap();
        assert_eq!(s.original, mask);
        assert_eq!(
            s.moved_to,
            t.path().join("ct/ct_trans.stale-20261129T111442Z.nii.gz")
        );
        assert!(!mask.exists());
        assert_eq!(std::fs::read(&s.moved_to).unwrap(), b"old");

        // Same second again: a counter keeps the first stale copy.
        std::fs::write(&mask, b"older").unwrap();
        let s2 = move_aside_stale(&mask, now).unwrap().unwrap();
        assert_eq!(
            s2.moved_to,
            t.path().join("ct/ct_trans.stale-20261129T111442Z-1.nii.gz")
        );
        assert_eq!(std::fs::read(&s.moved_to).unwrap(), b"old");
        assert_eq!(std::fs::read(&s2.moved_to).unwrap(), b"older");
    }

    #[test]
    fn refuses_writing_into_the_bundle_or_over_the_input() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("bundle");
        std::fs::create_dir_all(root.join("configs")).unwrap();
        let input = t.path().join("data/ct.nii.gz");
        for out in [
            root.join("eval"),
            root.clone(),
            t.path().join("data/../bundle/x"),
        ] {
            let err = check_output_location(&input, &out, &root).unwrap_err();
            assert!(
                matches!(err, UpstreamError::OutputInsideBundle { .. }),
                "{out:?}"
            );
            assert!(err.to_string().contains("outside the checkout"));
        }
        #[cfg(unix)]
        {
            let link = t.path().join("link-to-bundle");
            std::os::unix::fs::symlink(&root, &link).unwrap();
            assert!(check_output_location(&input, &link.join("out"), &root).is_err());
        }
        // File names alone never collide (the mask adds `_trans`), but links can: an
        // input that is a link to `data/ct_trans.nii.gz`, with `runs/ct` a link to
        // `data/`, would have its real file moved aside and overwritten.
        #[cfg(unix)]
        {
            let real = t.path().join("data/ct_trans.nii.gz");
            std::fs::create_dir_all(real.parent().unwrap()).unwrap();
            std::fs::write(&real, b"input").unwrap();
            let alias = t.path().join("alias/ct.nii.gz");
            std::fs::create_dir_all(alias.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(&real, &alias).unwrap();
            let out = t.path().join("runs");
            std::fs::create_dir_all(&out).unwrap();
            std::os::unix::fs::symlink(t.path().join("data"), out.join("ct")).unwrap();
            let err = check_output_location(&alias, &out, &root).unwrap_err();
            assert!(
                matches!(err, UpstreamError::MaskWouldOverwriteInput { .. }),
                "{err}"
            );
            assert!(err.to_string().contains("input file itself"));
        }
        // Writing into the input's own directory is fine.
        let mask = check_output_location(&input, &t.path().join("data"), &root).unwrap();
        assert_eq!(mask, t.path().join("data/ct/ct_trans.nii.gz"));
        // A sibling whose name merely starts with the root's name is outside it.
        assert!(check_output_location(&input, &t.path().join("bundle-out"), &root).is_ok());
    }

    #[test]
    fn adoption_rules() {
        let t = tempfile::tempdir().unwrap();
        let mask = t.path().join("m.nii.gz");
        let started = SystemTime::now();
        assert!(matches!(
            adopt_mask(&mask, started),
            MaskAdoption::Missing { .. }
        ));
        std::fs::write(&mask, b"").unwrap();
        assert!(matches!(
            adopt_mask(&mask, started),
            MaskAdoption::Empty { .. }
        ));
        std::fs::write(&mask, b"data").unwrap();
        assert_eq!(
            adopt_mask(&mask, started),
            MaskAdoption::Adopted {
                path: mask.clone(),
                bytes: 4
            }
        );
        assert_eq!(adopt_mask(&mask, started).path(), Some(mask.as_path()));
        // A file last written well before the run started is not this run's output.
        let old = SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&mask)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert!(matches!(
            adopt_mask(&mask, started),
            MaskAdoption::Stale { .. }
        ));
        std::fs::remove_file(&mask).unwrap();
        std::fs::create_dir(&mask).unwrap();
        assert!(matches!(
            adopt_mask(&mask, started),
            MaskAdoption::NotAFile { .. }
        ));
    }
}

//! Write-then-rename, so a reader never sees a half-written evidence file and a
//! crash mid-write never destroys an earlier, complete one.

use std::io::Write;
use std::path::Path;

/// Write `bytes` to `path` atomically: a sibling temporary file is written and
/// synced, then renamed over `path`.
pub(crate) fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// [`write()`] `rel` beneath the directory `base` (already checked by the caller),
/// refusing to pass through a symbolic link on the way: a link planted at `.runs/`
/// or `logs/` inside a pack must not carry a write outside it. Missing directories are
/// created; a link at the final name is replaced, never followed.
pub(crate) fn write_beneath(base: &Path, rel: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(base)?;
    let mut dir = base.to_path_buf();
    for part in rel.parent().into_iter().flat_map(Path::components) {
        dir.push(part);
        match std::fs::symlink_metadata(&dir) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(std::io::Error::other(format!(
                    "{} is a symbolic link; refusing to write through it",
                    dir.display()
                )))
            }
            Ok(_) => {}
            Err(_) => std::fs::create_dir(&dir).or_else(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => Ok(()),
                _ => Err(e),
            })?,
        }
    }
    write(&base.join(rel), bytes)
}

/// [`write_beneath`] of pretty JSON.
pub(crate) fn write_json_beneath<T: serde::Serialize>(
    base: &Path,
    rel: &Path,
    value: &T,
) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    write_beneath(base, rel, &bytes)
}

/// Serialise `value` as pretty JSON (keys as serde_json orders them) and write it atomically.
pub(crate) fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    write(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("output.json");
        write(&path, b"first").unwrap();
        write(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("output.json")]);
    }

    #[test]
    fn failure_keeps_the_earlier_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("output.json");
        write(&path, b"good").unwrap();
        // A directory in the way of the rename makes the write fail.
        let blocked = dir.path().join("blocked");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("x"), b"").unwrap();
        assert!(write(&blocked, b"bad").is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"good");
    }

    #[test]
    fn writes_beneath_a_base_never_pass_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let pack = dir.path().join("pack");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&pack).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, pack.join(".runs")).unwrap();
        let e = write_beneath(&pack, Path::new(".runs/r.json"), b"{}").unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        write_beneath(&pack, Path::new("logs/a/b.txt"), b"x").unwrap();
        assert_eq!(std::fs::read(pack.join("logs/a/b.txt")).unwrap(), b"x");
        // A link at the final name is replaced, not written through.
        std::os::unix::fs::symlink(outside.join("target"), pack.join("out.json")).unwrap();
        write_beneath(&pack, Path::new("out.json"), b"y").unwrap();
        assert!(!outside.join("target").exists());
        assert_eq!(std::fs::read(pack.join("out.json")).unwrap(), b"y");
    }
}

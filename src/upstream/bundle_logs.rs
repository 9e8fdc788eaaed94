//! The log files a bundle's own logging config appends to, so the sandbox can let the
//! documented command write them and nothing else outside its run directory.
//!
//! `monai.bundle run` applies `configs/logging.conf` with `logging.config.fileConfig`;
//! NV-Segment-CTMR's declares a `FileHandler` on `training.log`, relative to the working
//! directory (the bundle root). Under a sandbox that allows writing only the run's
//! directories the upstream then fails before it starts ("Permission denied:
//! training.log"). Granting the bundle root itself would let a run create or replace
//! code there; instead each declared file is created (append, never truncated, no
//! symlink followed) by this trusted process and the child may only write to that one
//! file (Landlock `write_file` on it).

use std::path::{Path, PathBuf};

/// The bundle's logging config, relative to the working directory of the documented
/// command (MONAI's default: the config files' folder).
pub(crate) const LOGGING_CONF: &str = "configs/logging.conf";

/// The files `<cwd>/configs/logging.conf`'s file handlers append to, each created if
/// missing; empty when there is no such config. Relative paths resolve against `cwd`,
/// as `fileConfig` in a child started there resolves them.
pub(crate) fn bundle_log_files(cwd: &Path) -> Vec<PathBuf> {
    let Ok(text) = crate::files::read_to_string_capped(&cwd.join(LOGGING_CONF), 1 << 20) else {
        return Vec::new();
    };
    file_handler_paths(&text)
        .into_iter()
        .map(|p| cwd.join(p))
        .filter(|p| ensure_exists(p))
        .collect()
}

/// The first argument of every `[handler_*]` section whose class is a file handler
/// (`FileHandler`, `RotatingFileHandler`, `handlers.WatchedFileHandler`, ...).
fn file_handler_paths(conf: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut in_handler = false;
    let (mut class, mut args) = (None::<String>, None::<String>);
    let mut flush = |class: &mut Option<String>, args: &mut Option<String>| {
        if let (Some(c), Some(a)) = (class.take(), args.take()) {
            if c.ends_with("FileHandler") {
                paths.extend(first_string_argument(&a));
            }
        }
    };
    for line in conf.lines().map(str::trim) {
        if line.starts_with('[') {
            flush(&mut class, &mut args);
            in_handler = line.starts_with("[handler_");
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key.trim() {
            "class" if in_handler => class = Some(value.trim().to_string()),
            "args" if in_handler => args = Some(value.trim().to_string()),
            _ => {}
        }
    }
    flush(&mut class, &mut args);
    paths
}

/// `('training.log', 'a')` → `training.log`; `None` when the first argument is not a
/// plain string literal (an expression: left alone, the upstream decides).
fn first_string_argument(args: &str) -> Option<String> {
    let inner = args.trim().strip_prefix('(')?.trim_start();
    let quote = inner.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let rest = &inner[1..];
    let end = rest.find(quote)?;
    Some(rest[..end].to_string()).filter(|p| !p.is_empty())
}

/// Create `path` for appending if it is missing (no truncation, no symlink followed);
/// true when it is a regular file afterwards.
fn ensure_exists(path: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    let opened = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path);
    match opened {
        Ok(file) => file.metadata().is_ok_and(|m| m.is_file()),
        Err(e) => {
            tracing::warn!(
                "the bundle's log file {} cannot be created: {e}",
                path.display()
            );
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPSTREAM_LIKE: &str = "[loggers]\nkeys=root\n\n[handlers]\nkeys=consoleHandler,fileHandler\n\n\
        [handler_consoleHandler]\nclass=StreamHandler\nlevel=INFO\nargs=(sys.stdout,)\n\n\
        [handler_fileHandler]\nclass=FileHandler\nlevel=INFO\nformatter=fullFormatter\nargs=('training.log',)\n\n\
        [formatter_fullFormatter]\nformat=%(asctime)s - %(message)s\n";

    #[test]
    fn file_handlers_are_found_and_stream_handlers_are_not() {
        assert_eq!(file_handler_paths(UPSTREAM_LIKE), vec!["training.log"]);
        let more =
            "[handler_a]\nclass=handlers.RotatingFileHandler\nargs=(\"logs/run.log\", 'a', 1000)\n\
                    [handler_b]\nclass=FileHandler\nargs=(os.path.join('x', 'y'),)\n";
        assert_eq!(file_handler_paths(more), vec!["logs/run.log"]);
    }

    #[test]
    fn the_declared_file_is_created_once_and_never_truncated() {
        let dir = std::env::temp_dir().join(format!("ctmr-logs-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("configs")).unwrap();
        assert!(
            bundle_log_files(&dir).is_empty(),
            "no logging.conf, no files"
        );
        std::fs::write(dir.join(LOGGING_CONF), UPSTREAM_LIKE).unwrap();
        let files = bundle_log_files(&dir);
        assert_eq!(files, vec![dir.join("training.log")]);
        std::fs::write(&files[0], b"earlier runs\n").unwrap();
        assert_eq!(bundle_log_files(&dir), files);
        assert_eq!(std::fs::read(&files[0]).unwrap(), b"earlier runs\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_symlinked_log_file_is_not_followed() {
        let dir = std::env::temp_dir().join(format!("ctmr-logs-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("configs")).unwrap();
        std::fs::write(dir.join(LOGGING_CONF), UPSTREAM_LIKE).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.join("training.log")).unwrap();
        assert!(bundle_log_files(&dir).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

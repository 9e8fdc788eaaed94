//! Opening and reading files named by untrusted input, boundedly and without blocking.
//!
//! Every path this crate reads may come from a caller or from an evidence pack, so it
//! may name a FIFO (whose `open` or `read` blocks until a writer appears), a device
//! such as `/dev/zero` (endless), a socket or a directory. [`open_regular`] opens
//! without blocking, checks the *opened* descriptor (no race with a rename) and
//! refuses anything but a regular file; [`read_capped`] also refuses a file larger
//! than a limit, counting the bytes actually read, since `/proc`-like files report a
//! size of zero.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The size limit for JSON documents and sidecars (pack documents, run records,
/// label tables, bounds files): 64 MiB, far above any genuine one.
pub(crate) const JSON_CAP: u64 = 64 << 20;

/// Why a file could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FileError {
    /// The operating system refused to open, inspect or read the file.
    #[error("{}: cannot read: {source} (check the path exists and is readable)", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The path names something other than a regular file; `kind` says what, in words
    /// ("a FIFO (named pipe)", "a character device", ...).
    #[error("{}: {}", path.display(), not_regular_text(kind))]
    NotRegular { path: PathBuf, kind: &'static str },

    /// The file is larger than the limit for its kind of content.
    #[error("{}: {}", path.display(), too_large_text(*cap))]
    TooLarge { path: PathBuf, cap: u64 },
}

fn not_regular_text(kind: &str) -> String {
    format!(
        "is {kind}, not a regular file: refused so that reading it cannot block or run \
         without end (give the path of an ordinary file)"
    )
}

fn too_large_text(cap: u64) -> String {
    format!(
        "is larger than the {} limit for this kind of file (a genuine one is far smaller: \
         check the path names the intended file)",
        size_words(cap)
    )
}

fn size_words(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes}-byte")
    }
}

impl FileError {
    /// The closest [`io::ErrorKind`]: the original one for [`FileError::Io`]
    /// (so `NotFound` stays `NotFound`).
    pub(crate) fn io_kind(&self) -> io::ErrorKind {
        match self {
            FileError::Io { source, .. } => source.kind(),
            FileError::NotRegular { .. } => io::ErrorKind::InvalidInput,
            FileError::TooLarge { .. } => io::ErrorKind::FileTooLarge,
        }
    }

    /// The error as an [`io::Error`] whose message does *not* name the path, for
    /// wrapping into an error type that names it already.
    pub(crate) fn into_io_without_path(self) -> io::Error {
        match self {
            FileError::Io { source, .. } => source,
            FileError::NotRegular { kind, .. } => {
                io::Error::new(io::ErrorKind::InvalidInput, not_regular_text(kind))
            }
            FileError::TooLarge { cap, .. } => {
                io::Error::new(io::ErrorKind::FileTooLarge, too_large_text(cap))
            }
        }
    }
}

/// An [`io::Error`] of the same kind whose message names the path and the problem.
impl From<FileError> for io::Error {
    fn from(e: FileError) -> io::Error {
        io::Error::new(e.io_kind(), e)
    }
}

/// What a non-regular file type is, in words.
fn kind_in_words(ft: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if ft.is_char_device() {
            return "a character device";
        }
        if ft.is_block_device() {
            return "a block device";
        }
        if ft.is_socket() {
            return "a socket";
        }
    }
    if ft.is_dir() {
        "a directory"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file (an unknown kind)"
    }
}

/// Open `path` for reading, refusing anything that is not a regular file.
///
/// The open itself never blocks (`O_NONBLOCK`: a FIFO without a writer opens at
/// once), the type is taken from the opened descriptor, and `O_NONBLOCK` is cleared
/// again before the file is returned so later reads behave normally.
pub(crate) fn open_regular(path: &Path) -> Result<File, FileError> {
    let io_err = |source: io::Error| FileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY);
    }
    let file = options.open(path).map_err(io_err)?;
    let ft = file.metadata().map_err(io_err)?.file_type();
    if !ft.is_file() {
        return Err(FileError::NotRegular {
            path: path.to_path_buf(),
            kind: kind_in_words(&ft),
        });
    }
    #[cfg(unix)]
    clear_nonblock(&file).map_err(io_err)?;
    Ok(file)
}

#[cfg(unix)]
fn clear_nonblock(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: `fd` is a descriptor owned by `file`, open for the duration of the calls;
    // F_GETFL/F_SETFL only read and set its status flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & libc::O_NONBLOCK != 0 {
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The whole of a regular file, refused if it is larger than `cap` bytes (by its
/// reported size, and by the bytes actually read: at most `cap + 1` are).
pub(crate) fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, FileError> {
    let io_err = |source: io::Error| FileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let too_large = || FileError::TooLarge {
        path: path.to_path_buf(),
        cap,
    };
    let file = open_regular(path)?;
    let len = file.metadata().map_err(io_err)?.len();
    if len > cap {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    if bytes.len() as u64 > cap {
        return Err(too_large());
    }
    Ok(bytes)
}

/// [`read_capped`], as UTF-8 text.
pub(crate) fn read_to_string_capped(path: &Path, cap: u64) -> Result<String, FileError> {
    let bytes = read_capped(path, cap)?;
    String::from_utf8(bytes).map_err(|_| FileError::Io {
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidData, "is not valid UTF-8 text"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// Run `f` on a thread; panic if it has not returned within a second.
    fn promptly<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(1))
            .expect("the call blocked for over a second")
    }

    fn fifo_in(dir: &Path) -> PathBuf {
        use std::os::unix::ffi::OsStrExt;
        let path = dir.join("pipe");
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        path
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = fifo_in(dir.path());
        let p = fifo.clone();
        let started = Instant::now();
        let err = promptly(move || open_regular(&p).unwrap_err());
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(matches!(err, FileError::NotRegular { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("is a FIFO (named pipe)"), "{text}");
        assert!(text.contains(&fifo.display().to_string()), "{text}");

        let p = fifo.clone();
        let err = promptly(move || read_capped(&p, JSON_CAP).unwrap_err());
        assert!(err.to_string().contains("FIFO"), "{err}");
        let p = fifo.clone();
        let err = promptly(move || read_to_string_capped(&p, 10).unwrap_err());
        assert!(err.to_string().contains("FIFO"), "{err}");
    }

    #[test]
    fn devices_are_refused_as_character_devices() {
        for dev in ["/dev/zero", "/dev/null"] {
            let err = promptly(move || read_capped(Path::new(dev), JSON_CAP).unwrap_err());
            let text = err.to_string();
            assert!(text.contains("is a character device"), "{text}");
            assert!(text.contains(dev), "{text}");
        }
    }

    #[test]
    fn a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = open_regular(dir.path()).unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
        assert_eq!(err.io_kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn a_file_over_the_cap_is_refused_and_one_at_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.json");
        std::fs::write(&path, vec![b'x'; 2 << 20]).unwrap();
        let err = read_capped(&path, 1 << 20).unwrap_err();
        assert!(matches!(err, FileError::TooLarge { cap, .. } if cap == 1 << 20));
        let text = err.to_string();
        assert!(text.contains("1 MiB limit"), "{text}");
        assert!(text.contains("big.json"), "{text}");
        assert_eq!(read_capped(&path, 2 << 20).unwrap().len(), 2 << 20);
    }

    #[test]
    fn a_file_that_lies_about_its_size_is_stopped_at_the_cap() {
        // /proc files report a size of 0; this one has more than 16 bytes.
        let path = Path::new("/proc/self/status");
        if path.exists() {
            let err = read_capped(path, 16).unwrap_err();
            assert!(matches!(err, FileError::TooLarge { .. }), "{err:?}");
        }
    }

    #[test]
    fn a_normal_file_is_read_and_missing_one_keeps_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        std::fs::write(&path, "{\"a\": 1}").unwrap();
        assert_eq!(
            read_to_string_capped(&path, JSON_CAP).unwrap(),
            "{\"a\": 1}"
        );
        let mut file = open_regular(&path).unwrap();
        let mut s = String::new();
        file.read_to_string(&mut s).unwrap();
        assert_eq!(s, "{\"a\": 1}");

        let err = read_capped(&dir.path().join("absent"), JSON_CAP).unwrap_err();
        assert_eq!(err.io_kind(), io::ErrorKind::NotFound);
        let io: io::Error = err.into();
        assert_eq!(io.kind(), io::ErrorKind::NotFound);
        assert!(io.to_string().contains("absent"), "{io}");
    }

    #[test]
    fn invalid_utf8_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bin");
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        let err = read_to_string_capped(&path, JSON_CAP).unwrap_err();
        assert!(err.to_string().contains("not valid UTF-8"), "{err}");
    }
}

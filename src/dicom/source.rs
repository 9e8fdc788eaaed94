//! The files of a DICOM source, read one at a time into memory.
//!
//! A directory is walked recursively (hidden names skipped, a directory reached twice
//! through links walked once); a zip is read entry by entry from its central
//! directory. Nothing is ever extracted to disk, so an entry name such as
//! `../../etc/x` can write nothing anywhere; such names are skipped all the same.
//! Caps bound the work a hostile source can cause: the number of entries, the size
//! of one entry, and the bytes read (inflated) in all.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::DicomError;

/// Most files (or zip entries) one source may hold.
pub(crate) const MAX_ENTRIES: usize = 50_000;
/// Largest single file or entry: 256 MiB (a CT slice is about 0.5 MiB).
pub(crate) const MAX_ENTRY_BYTES: u64 = 256 << 20;
/// Most bytes one pass may read (for a zip: after inflating): 16 GiB.
pub(crate) const MAX_TOTAL_BYTES: u64 = 16 << 30;
/// Deepest directory level walked below the source directory.
pub(crate) const MAX_DEPTH: usize = 16;

/// What kind of source the input was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Container {
    Directory,
    Zip,
}

#[derive(Debug, Clone)]
enum EntryRef {
    File(PathBuf),
    Zip(usize),
}

/// A DICOM source: its entries (relative names, sorted) and how to read them.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub path: PathBuf,
    pub container: Container,
    names: Vec<String>,
    refs: Vec<EntryRef>,
}

impl Source {
    /// List the entries of a directory or a `.zip`.
    pub(crate) fn open(path: &Path) -> Result<Source, DicomError> {
        if path.is_dir() {
            let mut found = Vec::new();
            walk(path, path, 0, &mut BTreeSet::new(), &mut found)?;
            found.sort();
            let (names, refs) = found
                .into_iter()
                .map(|(name, p)| (name, EntryRef::File(p)))
                .unzip();
            return Ok(Source {
                path: path.to_path_buf(),
                container: Container::Directory,
                names,
                refs,
            });
        }
        let mut archive = open_zip(path)?;
        if archive.len() > MAX_ENTRIES {
            return Err(too_many(path, archive.len()));
        }
        let mut entries = Vec::new();
        for i in 0..archive.len() {
            let entry = archive
                .by_index_raw(i)
                .map_err(|e| zip_error(path, &format!("entry {i}"), &e))?;
            let Some(name) = entry.enclosed_name() else {
                tracing::warn!("{}: entry {i} has an unsafe name; skipped", path.display());
                continue;
            };
            let hidden = name.components().any(|c| {
                let s = c.as_os_str().to_string_lossy();
                s.starts_with('.') || s == "__MACOSX"
            });
            if !entry.is_dir() && !hidden {
                entries.push((name.to_string_lossy().into_owned(), EntryRef::Zip(i)));
            }
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let (names, refs) = entries.into_iter().unzip();
        Ok(Source {
            path: path.to_path_buf(),
            container: Container::Zip,
            names,
            refs,
        })
    }

    /// A directory source with these entry names (for tests of the checks).
    #[cfg(test)]
    pub(crate) fn listed(names: &[&str]) -> Source {
        Source {
            path: PathBuf::from("/series"),
            container: Container::Directory,
            names: names.iter().map(|n| n.to_string()).collect(),
            refs: names
                .iter()
                .map(|n| EntryRef::File(PathBuf::from(n)))
                .collect(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    /// The entry's name relative to the source (a path inside the directory or zip).
    pub(crate) fn name(&self, index: usize) -> &str {
        &self.names[index]
    }

    /// Read the entries `which` in that order, handing each one's bytes to `f`.
    pub(crate) fn read_each(
        &self,
        which: &[usize],
        mut f: impl FnMut(usize, Vec<u8>) -> Result<(), DicomError>,
    ) -> Result<(), DicomError> {
        let mut total = 0u64;
        let mut archive = match self.container {
            Container::Zip => Some(open_zip(&self.path)?),
            Container::Directory => None,
        };
        for &i in which {
            let bytes = match (&self.refs[i], archive.as_mut()) {
                (EntryRef::File(p), _) => crate::files::read_capped(p, MAX_ENTRY_BYTES)?,
                (EntryRef::Zip(at), Some(zip)) => self.read_zip_entry(zip, *at, i)?,
                (EntryRef::Zip(_), None) => unreachable!("zip entries come from a zip source"),
            };
            total += bytes.len() as u64;
            if total > MAX_TOTAL_BYTES {
                return Err(DicomError::Limit(format!(
                    "{}: more than {} GiB to read; ctmr-skill reads at most that much of one \
                     DICOM source. Fix: pass a directory or zip holding only the series to segment",
                    self.path.display(),
                    MAX_TOTAL_BYTES >> 30
                )));
            }
            f(i, bytes)?;
        }
        Ok(())
    }

    fn read_zip_entry(
        &self,
        zip: &mut zip::ZipArchive<std::fs::File>,
        at: usize,
        i: usize,
    ) -> Result<Vec<u8>, DicomError> {
        let name = &self.names[i];
        let entry = zip
            .by_index(at)
            .map_err(|e| zip_error(&self.path, name, &e))?;
        let mut bytes = Vec::with_capacity(initial_capacity(
            entry.size(),
            entry.compressed_size(),
            entry.compression() == zip::CompressionMethod::Stored,
            std::fs::metadata(&self.path).map_or(0, |m| m.len()),
        ));
        entry
            .take(MAX_ENTRY_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| {
                DicomError::Zip(format!(
                    "{}: entry {name} cannot be inflated: {e}. Fix: re-create the zip \
                     (deflate or stored entries)",
                    self.path.display()
                ))
            })?;
        if bytes.len() as u64 > MAX_ENTRY_BYTES {
            return Err(entry_too_large(&self.path, name));
        }
        Ok(bytes)
    }
}

/// Most bytes one deflated byte can inflate to (deflate's limit is about 1032:1).
const MAX_DEFLATE_RATIO: u64 = 1032;

/// Room reserved before reading an entry: its declared size, but never more than its
/// compressed bytes (at most the archive's length) can produce, nor [`MAX_ENTRY_BYTES`].
/// The declared sizes come from the archive and may lie; reading grows the buffer
/// past this when an entry really is larger.
fn initial_capacity(declared: u64, compressed: u64, stored: bool, archive_len: u64) -> usize {
    let ratio = if stored { 1 } else { MAX_DEFLATE_RATIO };
    let producible = compressed.min(archive_len).saturating_mul(ratio);
    declared.min(producible).min(MAX_ENTRY_BYTES) as usize
}

fn open_zip(path: &Path) -> Result<zip::ZipArchive<std::fs::File>, DicomError> {
    let file = crate::files::open_regular(path)?;
    zip::ZipArchive::new(file).map_err(|e| {
        DicomError::Zip(format!(
            "{}: not a readable zip archive ({e}). Fix: pass a directory of DICOM files or a \
             valid .zip of them",
            path.display()
        ))
    })
}

fn zip_error(path: &Path, entry: &str, e: &zip::result::ZipError) -> DicomError {
    DicomError::Zip(format!(
        "{}: entry {entry}: {e} (ctmr-skill reads unencrypted entries, stored or deflated). \
         Fix: re-create the zip without a password, with deflate compression",
        path.display()
    ))
}

fn too_many(path: &Path, n: usize) -> DicomError {
    DicomError::Limit(format!(
        "{}: {n} or more entries; a DICOM source may hold at most {MAX_ENTRIES}. Fix: pass a \
         directory or zip holding only the series to segment",
        path.display()
    ))
}

fn entry_too_large(path: &Path, name: &str) -> DicomError {
    DicomError::Limit(format!(
        "{}: entry {name} is larger than {} MiB, far above a DICOM slice (multi-frame files are \
         not supported). Fix: {}",
        path.display(),
        MAX_ENTRY_BYTES >> 20,
        super::CONVERT_ELSEWHERE
    ))
}

/// Regular files below `dir`, as (name relative to `root`, path).
fn walk(
    root: &Path,
    dir: &Path,
    depth: usize,
    seen: &mut BTreeSet<PathBuf>,
    found: &mut Vec<(String, PathBuf)>,
) -> Result<(), DicomError> {
    let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    if depth > MAX_DEPTH || !seen.insert(canonical) {
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| {
        DicomError::File(crate::files::FileError::Io {
            path: dir.to_path_buf(),
            source: e,
        })
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => walk(root, &path, depth + 1, seen, found)?,
            Ok(meta) if meta.is_file() => {
                let name = path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned();
                found.push((name, path));
                if found.len() > MAX_ENTRIES {
                    return Err(too_many(root, found.len()));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_directory_lists_its_files_recursively_without_hidden_ones() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["b", "a", "sub/c", ".hidden/d", "sub/.e"] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, f.as_bytes()).unwrap();
        }
        std::os::unix::fs::symlink(dir.path(), dir.path().join("sub/loop")).unwrap();
        let source = Source::open(dir.path()).unwrap();
        assert_eq!(source.container, Container::Directory);
        let names: Vec<&str> = (0..source.len()).map(|i| source.name(i)).collect();
        assert_eq!(names, ["a", "b", "sub/c"]);
        let mut read = Vec::new();
        source
            .read_each(&[2, 0], |i, bytes| {
                read.push((i, bytes));
                Ok(())
            })
            .unwrap();
        assert_eq!(read, vec![(2, b"sub/c".to_vec()), (0, b"a".to_vec())]);
    }

    #[test]
    fn a_zip_is_read_in_memory_and_unsafe_names_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.zip");
        let mut w = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, body) in [
            ("series/2.dcm", "two"),
            ("series/1.dcm", "one"),
            ("../../escape.dcm", "x"),
            ("__MACOSX/._1.dcm", "y"),
        ] {
            w.start_file(name, opts).unwrap();
            w.write_all(body.as_bytes()).unwrap();
        }
        w.finish().unwrap();
        let source = Source::open(&path).unwrap();
        assert_eq!(source.container, Container::Zip);
        let names: Vec<&str> = (0..source.len()).map(|i| source.name(i)).collect();
        assert_eq!(names, ["series/1.dcm", "series/2.dcm"]);
        let mut read = Vec::new();
        source
            .read_each(&[1], |_, bytes| {
                read.push(bytes);
                Ok(())
            })
            .unwrap();
        assert_eq!(read, vec![b"two".to_vec()]);
        assert!(!dir.path().parent().unwrap().join("escape.dcm").exists());
    }

    /// Set the uncompressed size every header of `bytes` declares for its entries.
    fn declare_size(bytes: &mut [u8], size: u32) {
        for at in 0..bytes.len().saturating_sub(30) {
            let field = match &bytes[at..at + 4] {
                b"PK\x03\x04" => at + 22,
                b"PK\x01\x02" => at + 24,
                _ => continue,
            };
            bytes[field..field + 4].copy_from_slice(&size.to_le_bytes());
        }
    }

    #[test]
    fn a_zip_entry_declaring_a_huge_size_reserves_only_what_its_bytes_can_give() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.zip");
        let mut w = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        w.start_file("IM0", stored).unwrap();
        w.write_all(b"eight by").unwrap();
        w.finish().unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        declare_size(&mut bytes, 200 << 20);
        std::fs::write(&path, &bytes).unwrap();
        let source = Source::open(&path).unwrap();
        let mut capacity = usize::MAX;
        let read = source.read_each(&[0], |_, bytes| {
            capacity = bytes.capacity();
            Ok(())
        });
        // The stored entry's 8 bytes are read; nothing near the declared 200 MiB reserved.
        read.unwrap();
        assert!(capacity < 1 << 20, "reserved {capacity} bytes");
        assert_eq!(initial_capacity(200 << 20, 8, true, 200), 8);
        assert_eq!(initial_capacity(200 << 20, 8, false, 200), 8 * 1032);
        assert_eq!(initial_capacity(5, 8, false, 200), 5);
        assert_eq!(
            initial_capacity(1 << 40, 1 << 30, false, 1 << 30),
            256 << 20
        );
    }

    #[test]
    fn a_file_that_is_not_a_zip_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.zip");
        std::fs::write(&path, b"not a zip").unwrap();
        let e = Source::open(&path).unwrap_err().to_string();
        assert!(e.contains("not a readable zip archive"), "{e}");
    }
}

//! Streaming voxel access: one z-slice at a time, so memory stays at one chunk
//! (≤ 1 MiB) of raw bytes plus the caller's one slice of `f64`, whatever the
//! volume size. nibabel's `get_fdata()` materialises the volume; we never do.
//!
//! gzip is recognised by its magic bytes (not the file name) and decoded member
//! by member (see `gz`), because some writers (pigz, concatenation) emit several
//! gzip members. The stream is read strictly forward: the header, then the
//! bytes up to `vox_offset` (extensions, padding) are skipped, then slices.
//! A stream that ends before the header's promise is a `Truncated` error.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::{Path, PathBuf};

use super::gz::Members;
use super::header::{DataType, Header, MAX_HEADER_BYTES};
use super::NiftiError;

/// The byte stream of the image: the file itself, or its inflated contents.
enum Stream {
    Plain(BufReader<File>),
    Gzip(Box<Members<BufReader<File>>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(r) => r.read(buf),
            Stream::Gzip(r) => r.read(buf),
        }
    }
}

impl Stream {
    fn is_gzip(&self) -> bool {
        matches!(self, Stream::Gzip(_))
    }
}

/// Voxel bytes are read and decoded in chunks of at most this size.
const READ_CHUNK_BYTES: usize = 1 << 20;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// After the last slice of a gzip stream we read this much further so that the
/// member's CRC-32 (which follows the data) gets checked, without ever
/// inflating an unbounded tail.
const GZIP_TAIL_CHECK_BYTES: u64 = 64 * 1024;

/// A forward-only reader of one NIfTI volume, slice by slice.
pub struct VolumeReader {
    path: PathBuf,
    header: Header,
    stream: Stream,
    next_z: usize,
    /// Raw bytes of one read chunk (at most `READ_CHUNK_BYTES`).
    raw: Vec<u8>,
    failed: bool,
}

impl std::fmt::Debug for VolumeReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VolumeReader")
            .field("path", &self.path)
            .field("gzip", &self.stream.is_gzip())
            .field("next_z", &self.next_z)
            .finish_non_exhaustive()
    }
}

impl VolumeReader {
    /// Open `path` (`.nii` or `.nii.gz`), decode and validate the header, and
    /// position the stream at the first voxel.
    pub fn open(path: &Path) -> Result<VolumeReader, NiftiError> {
        let (header, stream) = open_stream(path)?;
        Ok(VolumeReader {
            path: path.to_path_buf(),
            header,
            stream,
            next_z: 0,
            raw: Vec::new(),
            failed: false,
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Fill `out` (cleared, resized to nx*ny) with the next z-slice, x fastest;
    /// scaled exactly as nibabel's `get_fdata()`. `Ok(false)` after the last slice.
    ///
    /// After an error the reader is spent: later calls fail too (reopen to retry).
    pub fn read_slice(&mut self, out: &mut Vec<f64>) -> Result<bool, NiftiError> {
        let [nx, ny, nz] = self.header.shape;
        out.clear();
        if self.failed {
            return Err(NiftiError::Io {
                path: self.path.clone(),
                source: io::Error::other("an earlier read of this file failed; open it again"),
            });
        }
        if self.next_z >= nz {
            return Ok(false);
        }
        if let Err(e) = self.fill_slice(nx * ny, out) {
            self.failed = true;
            out.clear();
            let z = self.next_z;
            let datatype = self.header.datatype.name();
            return Err(self.stream_error(e, || {
                format!(
                    "voxel data ends inside z-slice {z} of {nz} (shape {:?}, {datatype})",
                    [nx, ny, nz]
                )
            }));
        }
        self.next_z += 1;
        if self.next_z == nz {
            if let Err(e) = self.check_gzip_tail() {
                self.failed = true;
                out.clear();
                return Err(e);
            }
        }
        Ok(true)
    }

    /// Read `count` voxels in bounded chunks, so `out` only grows as far as data
    /// actually arrives: a small file whose header claims a huge slice fails at
    /// its end instead of allocating the claim up front.
    fn fill_slice(&mut self, count: usize, out: &mut Vec<f64>) -> io::Result<()> {
        let datatype = self.header.datatype;
        let item = datatype.size_bytes();
        let per_chunk = (READ_CHUNK_BYTES / item).max(1);
        let mut remaining = count;
        while remaining > 0 {
            let n = remaining.min(per_chunk);
            self.raw.resize(n * item, 0);
            read_full(&mut self.stream, &mut self.raw)?;
            let start = out.len();
            out.resize(start + n, 0.0);
            let chunk = &mut out[start..];
            decode(&self.raw, datatype, self.header.little_endian, chunk);
            if let Some((slope, inter)) = self.header.scaling {
                // Same operations in the same order as nibabel's apply_read_scaling (float64).
                for v in chunk.iter_mut() {
                    if slope != 1.0 {
                        *v *= slope;
                    }
                    if inter != 0.0 {
                        *v += inter;
                    }
                }
            }
            remaining -= n;
        }
        Ok(())
    }

    /// Inflate the rest of the last member (bounded) so a corrupted member's CRC
    /// is noticed. Bytes after that member are never read, as in nibabel.
    fn check_gzip_tail(&mut self) -> Result<(), NiftiError> {
        let Stream::Gzip(members) = &mut self.stream else {
            return Ok(());
        };
        match members.finish_member(GZIP_TAIL_CHECK_BYTES) {
            Ok(_) => Ok(()),
            Err(e) => Err(classify(&self.path, true, e, || {
                "in the gzip member holding the last voxels".into()
            })),
        }
    }

    fn stream_error(&self, e: io::Error, context: impl FnOnce() -> String) -> NiftiError {
        if self.header.pair_magic && e.kind() == io::ErrorKind::UnexpectedEof {
            return super::header::pair_header(&self.path, self.header.version);
        }
        classify(&self.path, self.stream.is_gzip(), e, context)
    }
}

/// Turn an I/O error on the (possibly inflating) stream into the right kind.
fn classify(path: &Path, gzip: bool, e: io::Error, context: impl FnOnce() -> String) -> NiftiError {
    let path = path.to_path_buf();
    match e.kind() {
        io::ErrorKind::UnexpectedEof => NiftiError::Truncated {
            path,
            detail: context(),
        },
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput if gzip => NiftiError::Gzip {
            path,
            detail: format!("{e} ({})", context()),
        },
        _ => NiftiError::Io { path, source: e },
    }
}

/// Like `read_exact`, but an early end is always `UnexpectedEof` (also when the
/// gzip decoder reports a cut stream as `Ok(0)`).
fn read_full(stream: &mut dyn Read, mut buf: &mut [u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match stream.read(buf) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "stream ended early",
                ))
            }
            Ok(n) => buf = &mut buf[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Read up to `buf.len()` bytes; returns how many (fewer only at end of stream).
fn read_up_to(stream: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match stream.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Open, sniff gzip, decode the header, skip to `vox_offset`.
fn open_stream(path: &Path) -> Result<(Header, Stream), NiftiError> {
    let io_err = |source: io::Error| NiftiError::Io {
        path: path.to_path_buf(),
        source,
    };
    // A regular file only: a FIFO, device, socket or directory is refused at once,
    // without blocking, naming what it is.
    let mut file =
        crate::files::open_regular(path).map_err(|e| io_err(e.into_io_without_path()))?;
    let file_len = file.metadata().map_err(io_err)?.len();
    let mut magic = [0u8; 2];
    let got = read_up_to(&mut file, &mut magic).map_err(io_err)?;
    let gzip = got == 2 && magic == GZIP_MAGIC;
    file.rewind().map_err(io_err)?;
    let buffered = BufReader::with_capacity(1 << 16, file);
    let mut stream = if gzip {
        Stream::Gzip(Box::new(Members::new(buffered)))
    } else {
        Stream::Plain(buffered)
    };

    // Read enough for either header version, then decode.
    let mut buf = [0u8; MAX_HEADER_BYTES];
    let first = read_up_to(&mut stream, &mut buf[..4])
        .map_err(|e| classify(path, gzip, e, || "inside the header".into()))?;
    let mut have = first;
    if first == 4 {
        // Unrecognised sizeof_hdr: read a NIfTI-1 header's worth, for sniffing by magic.
        let size = super::header::detect_version([buf[0], buf[1], buf[2], buf[3]])
            .map_or(348, |(version, _)| version.header_size());
        have += read_up_to(&mut stream, &mut buf[4..size])
            .map_err(|e| classify(path, gzip, e, || "inside the header".into()))?;
    }
    let header = Header::parse_stream(&buf[..have], path, gzip)?;

    // Uncompressed: the file length tells us about truncation before any reading.
    if !gzip {
        let needed = header.vox_offset.saturating_add(header.data_bytes());
        if file_len < needed && header.pair_magic {
            return Err(super::header::pair_header(path, header.version));
        }
        if file_len < needed {
            return Err(NiftiError::Truncated {
                path: path.to_path_buf(),
                detail: format!(
                    "the header promises {} bytes of {} voxels from byte {}, so the file should hold at least {needed} bytes, but it has {file_len}",
                    header.data_bytes(),
                    header.datatype.name(),
                    header.vox_offset,
                ),
            });
        }
    }

    // Skip extensions / padding up to the voxel data.
    let skip = header.vox_offset - have as u64;
    let skipped = io::copy(&mut (&mut stream).take(skip), &mut io::sink()).map_err(|e| {
        classify(path, gzip, e, || {
            format!("before the voxel data at byte {}", header.vox_offset)
        })
    })?;
    if skipped < skip && header.pair_magic {
        return Err(super::header::pair_header(path, header.version));
    }
    if skipped < skip {
        return Err(NiftiError::Truncated {
            path: path.to_path_buf(),
            detail: format!(
                "the stream ends at byte {} but the voxel data starts at vox_offset {}",
                have as u64 + skipped,
                header.vox_offset
            ),
        });
    }
    Ok((header, stream))
}

/// Decode and read just the header of `path`.
pub(crate) fn read_header(path: &Path) -> Result<Header, NiftiError> {
    open_stream(path).map(|(header, _)| header)
}

/// Raw bytes of one slice to `f64`, honouring byte order.
fn decode(raw: &[u8], datatype: DataType, little_endian: bool, out: &mut [f64]) {
    macro_rules! convert {
        ($t:ty) => {{
            const N: usize = std::mem::size_of::<$t>();
            for (dst, chunk) in out.iter_mut().zip(raw.chunks_exact(N)) {
                let mut b = [0u8; N];
                b.copy_from_slice(chunk);
                let v = if little_endian {
                    <$t>::from_le_bytes(b)
                } else {
                    <$t>::from_be_bytes(b)
                };
                *dst = v as f64;
            }
        }};
    }
    match datatype {
        DataType::UInt8 => convert!(u8),
        DataType::Int8 => convert!(i8),
        DataType::Int16 => convert!(i16),
        DataType::UInt16 => convert!(u16),
        DataType::Int32 => convert!(i32),
        DataType::UInt32 => convert!(u32),
        DataType::Int64 => convert!(i64),
        DataType::UInt64 => convert!(u64),
        DataType::Float32 => convert!(f32),
        DataType::Float64 => convert!(f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_can_move_to_a_worker_thread() {
        fn is_send<T: Send>() {}
        is_send::<VolumeReader>();
    }

    #[test]
    fn decode_big_and_little_endian() {
        let mut out = vec![0.0; 2];
        decode(&[0x01, 0x00, 0xff, 0xff], DataType::Int16, true, &mut out);
        assert_eq!(out, [1.0, -1.0]);
        decode(&[0x01, 0x00, 0xff, 0xfe], DataType::Int16, false, &mut out);
        assert_eq!(out, [256.0, -2.0]);
        decode(
            &1.5f32
                .to_be_bytes()
                .iter()
                .chain(&(-2.0f32).to_be_bytes())
                .copied()
                .collect::<Vec<_>>(),
            DataType::Float32,
            false,
            &mut out,
        );
        assert_eq!(out, [1.5, -2.0]);
        decode(
            &u64::MAX
                .to_le_bytes()
                .iter()
                .chain(&7u64.to_le_bytes())
                .copied()
                .collect::<Vec<_>>(),
            DataType::UInt64,
            true,
            &mut out,
        );
        assert_eq!(out, [u64::MAX as f64, 7.0]);
    }
}

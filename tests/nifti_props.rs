//! Property tests of the NIfTI reader against hostile input: arbitrary bytes, and
//! arbitrary mutations of valid NIfTI-1 and NIfTI-2 files (plain and gzip), must
//! never panic and never allocate beyond a fixed bound, whatever the header claims
//! (a huge `dim` is an error or a short read, not an allocation). A counting global
//! allocator records the largest single allocation of the whole test binary.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use ctmr_skill::nifti::{
    Header, NiftiError, VolumeReader, MAX_SLICE_VOXELS, MAX_TOTAL_VOXELS, MAX_VOX_OFFSET,
};
use proptest::prelude::*;

/// Records the largest allocation requested, then lets the system allocator serve it.
struct Largest;

static LARGEST_ALLOCATION: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST_ALLOCATION.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST_ALLOCATION.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST_ALLOCATION.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

/// The bound: the reader's 1 MiB read chunk and one slice of these small files,
/// with a wide margin; a claimed-size allocation would be orders of magnitude more.
const ALLOCATION_BOUND: usize = 32 << 20;

const CASES: u32 = 256;

/// Shape of the valid volumes: 4 x 5 x 6 int16.
const SHAPE: [usize; 3] = [4, 5, 6];
const VOXEL_BYTES: usize = 4 * 5 * 6 * 2;

fn voxels() -> Vec<u8> {
    (0..VOXEL_BYTES).map(|i| (i % 7) as u8).collect()
}

/// A valid little-endian NIfTI-1 file (header, 4 extension bytes, voxels at 352).
fn nifti1_file() -> Vec<u8> {
    let mut h = vec![0u8; 352];
    h[0..4].copy_from_slice(&348i32.to_le_bytes());
    let dims = [
        3i16,
        SHAPE[0] as i16,
        SHAPE[1] as i16,
        SHAPE[2] as i16,
        1,
        1,
        1,
        1,
    ];
    for (i, d) in dims.iter().enumerate() {
        h[40 + 2 * i..42 + 2 * i].copy_from_slice(&d.to_le_bytes());
    }
    h[70..72].copy_from_slice(&4i16.to_le_bytes());
    for (i, p) in [-1f32, 1.5, 2.0, 3.0, 1.0, 1.0, 1.0, 1.0]
        .iter()
        .enumerate()
    {
        h[76 + 4 * i..80 + 4 * i].copy_from_slice(&p.to_le_bytes());
    }
    h[108..112].copy_from_slice(&352f32.to_le_bytes());
    h[112..116].copy_from_slice(&2f32.to_le_bytes());
    h[123] = 2;
    h[252..254].copy_from_slice(&1i16.to_le_bytes());
    h[254..256].copy_from_slice(&1i16.to_le_bytes());
    for (i, p) in [0.1f32, 0.2, 0.3, 10., 20., 30.].iter().enumerate() {
        h[256 + 4 * i..260 + 4 * i].copy_from_slice(&p.to_le_bytes());
    }
    let srow = [1.5f32, 0., 0., 1., 0., 2., 0., 2., 0., 0., 3., 3.];
    for (i, p) in srow.iter().enumerate() {
        h[280 + 4 * i..284 + 4 * i].copy_from_slice(&p.to_le_bytes());
    }
    h[344..348].copy_from_slice(b"n+1\0");
    h.extend(voxels());
    h
}

/// A valid little-endian NIfTI-2 file (header, 4 extension bytes, voxels at 544).
fn nifti2_file() -> Vec<u8> {
    let mut h = vec![0u8; 544];
    h[0..4].copy_from_slice(&540i32.to_le_bytes());
    h[4..8].copy_from_slice(b"n+2\0");
    h[8..12].copy_from_slice(&[13, 10, 26, 10]);
    h[12..14].copy_from_slice(&4i16.to_le_bytes());
    let dims = [
        3i64,
        SHAPE[0] as i64,
        SHAPE[1] as i64,
        SHAPE[2] as i64,
        1,
        1,
        1,
        1,
    ];
    for (i, d) in dims.iter().enumerate() {
        h[16 + 8 * i..24 + 8 * i].copy_from_slice(&d.to_le_bytes());
    }
    for (i, p) in [1f64, 1.5, 2.0, 3.0, 1.0, 1.0, 1.0, 1.0].iter().enumerate() {
        h[104 + 8 * i..112 + 8 * i].copy_from_slice(&p.to_le_bytes());
    }
    h[168..176].copy_from_slice(&544i64.to_le_bytes());
    h[344..348].copy_from_slice(&1i32.to_le_bytes());
    for (i, p) in [0.1f64, 0.2, 0.3, 10., 20., 30.].iter().enumerate() {
        h[352 + 8 * i..360 + 8 * i].copy_from_slice(&p.to_le_bytes());
    }
    h[500..504].copy_from_slice(&2i32.to_le_bytes());
    h.extend(voxels());
    h
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// One edit of a file: overwrite a byte, or write a value into a header field.
#[derive(Debug, Clone)]
enum Edit {
    Byte(usize, u8),
    I16(usize, i16),
    I32(usize, i32),
    I64(usize, i64),
    F32(usize, f32),
    F64(usize, f64),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    // Offsets cover the NIfTI-2 header (540) and a little beyond; values are
    // arbitrary, which includes huge dims, NaN and infinite floats.
    let at = 0usize..600;
    prop_oneof![
        (at.clone(), any::<u8>()).prop_map(|(o, v)| Edit::Byte(o, v)),
        (at.clone(), any::<i16>()).prop_map(|(o, v)| Edit::I16(o, v)),
        (at.clone(), any::<i32>()).prop_map(|(o, v)| Edit::I32(o, v)),
        (at.clone(), any::<i64>()).prop_map(|(o, v)| Edit::I64(o, v)),
        (at.clone(), any::<f32>()).prop_map(|(o, v)| Edit::F32(o, v)),
        (at.clone(), any::<f64>()).prop_map(|(o, v)| Edit::F64(o, v)),
        (0usize..1400).prop_map(Edit::Truncate),
    ]
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    fn put(bytes: &mut [u8], offset: usize, value: &[u8]) {
        if let Some(dst) = bytes.get_mut(offset..offset + value.len()) {
            dst.copy_from_slice(value);
        }
    }
    for e in edits {
        match *e {
            Edit::Byte(o, v) => put(&mut bytes, o, &[v]),
            Edit::I16(o, v) => put(&mut bytes, o, &v.to_le_bytes()),
            Edit::I32(o, v) => put(&mut bytes, o, &v.to_le_bytes()),
            Edit::I64(o, v) => put(&mut bytes, o, &v.to_le_bytes()),
            Edit::F32(o, v) => put(&mut bytes, o, &v.to_le_bytes()),
            Edit::F64(o, v) => put(&mut bytes, o, &v.to_le_bytes()),
            Edit::Truncate(n) => bytes.truncate(n),
        }
    }
    bytes
}

/// What every decoded header must satisfy, and what no error message may show.
fn check_parse(raw: &[u8], path: &Path) -> Result<(), TestCaseError> {
    match Header::parse(raw, path) {
        Ok(h) => check_header(&h)?,
        Err(e) => check_error(&e, raw, path)?,
    }
    Ok(())
}

fn check_header(h: &Header) -> Result<(), TestCaseError> {
    let [nx, ny, _] = h.shape;
    prop_assert!((nx as u64) * (ny as u64) <= MAX_SLICE_VOXELS);
    prop_assert!(h.voxel_count() <= MAX_TOTAL_VOXELS);
    prop_assert!(h.vox_offset <= MAX_VOX_OFFSET);
    prop_assert!(
        h.spacing.iter().chain(&h.zooms).all(|z| z.is_finite()),
        "non-finite zooms {:?}",
        h.zooms
    );
    Ok(())
}

fn check_error(e: &NiftiError, raw: &[u8], path: &Path) -> Result<(), TestCaseError> {
    let message = e.to_string();
    prop_assert!(
        message.starts_with(&path.display().to_string()),
        "{message}"
    );
    if e.kind() == "not_nifti" && raw.len() >= 4 {
        let first4 = [raw[0], raw[1], raw[2], raw[3]];
        for n in [i32::from_le_bytes(first4), i32::from_be_bytes(first4)] {
            if n.unsigned_abs() >= 1000 {
                prop_assert!(!message.contains(&n.to_string()), "{message}");
            }
        }
    }
    Ok(())
}

/// Open `bytes` as a file and stream every slice, as a caller would.
fn check_read(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), TestCaseError> {
    let path: PathBuf = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    match VolumeReader::open(&path) {
        Err(e) => {
            prop_assert!(e.to_string().starts_with(&path.display().to_string()));
        }
        Ok(mut reader) => {
            check_header(reader.header())?;
            let nz = reader.header().shape[2];
            let mut slice = Vec::new();
            for _ in 0..=nz {
                match reader.read_slice(&mut slice) {
                    Ok(true) => {}
                    Ok(false) | Err(_) => break,
                }
            }
        }
    }
    let largest = LARGEST_ALLOCATION.load(Ordering::Relaxed);
    prop_assert!(
        largest <= ALLOCATION_BOUND,
        "an allocation of {largest} bytes"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn arbitrary_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..1200)) {
        check_parse(&raw, Path::new("/in/arbitrary.nii"))?;
        let dir = tempfile::tempdir().unwrap();
        check_read(dir.path(), "arbitrary.nii", &raw)?;
    }

    #[test]
    fn mutated_nifti1_never_panics(edits in proptest::collection::vec(edit(), 1..6), gz in any::<bool>()) {
        let bytes = apply(nifti1_file(), &edits);
        check_parse(&bytes, Path::new("/in/mutated1.nii"))?;
        let dir = tempfile::tempdir().unwrap();
        if gz {
            check_read(dir.path(), "mutated1.nii.gz", &gzip(&bytes))?;
        } else {
            check_read(dir.path(), "mutated1.nii", &bytes)?;
        }
    }

    #[test]
    fn mutated_nifti2_never_panics(edits in proptest::collection::vec(edit(), 1..6), gz in any::<bool>()) {
        let bytes = apply(nifti2_file(), &edits);
        check_parse(&bytes, Path::new("/in/mutated2.nii"))?;
        let dir = tempfile::tempdir().unwrap();
        if gz {
            check_read(dir.path(), "mutated2.nii.gz", &gzip(&bytes))?;
        } else {
            check_read(dir.path(), "mutated2.nii", &bytes)?;
        }
    }

    #[test]
    fn mutated_gzip_streams_never_panic(edits in proptest::collection::vec((0usize..2000, any::<u8>()), 1..4)) {
        let mut gz = gzip(&nifti1_file());
        for (at, v) in edits {
            let n = gz.len();
            gz[at % n] = v;
        }
        let dir = tempfile::tempdir().unwrap();
        check_read(dir.path(), "damaged.nii.gz", &gz)?;
    }
}

#[test]
fn the_valid_files_read_completely() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("v1.nii", nifti1_file()),
        ("v2.nii", nifti2_file()),
        ("v1.nii.gz", gzip(&nifti1_file())),
        ("v2.nii.gz", gzip(&nifti2_file())),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let mut reader = VolumeReader::open(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(reader.header().shape, SHAPE, "{name}");
        let mut slice = Vec::new();
        let mut slices = 0;
        while reader.read_slice(&mut slice).unwrap() {
            slices += 1;
        }
        assert_eq!(slices, SHAPE[2], "{name}");
    }
}

#[test]
fn huge_dims_are_refused_before_any_allocation() {
    let dir = tempfile::tempdir().unwrap();
    // NIfTI-2 allows 64-bit dims: 2^40 x 2^40 x 2^40 must be an error, not an allocation.
    let mut v2 = nifti2_file();
    for i in 1..=3 {
        v2[16 + 8 * i..24 + 8 * i].copy_from_slice(&(1i64 << 40).to_le_bytes());
    }
    let path = dir.path().join("huge.nii");
    std::fs::write(&path, &v2).unwrap();
    let err = VolumeReader::open(&path).unwrap_err();
    assert_eq!(err.kind(), "too_large", "{err}");
    // Within the limits but far beyond the file: truncated, with memory flat.
    let mut v1 = nifti1_file();
    for (i, d) in [16384i16, 16384, 200].iter().enumerate() {
        v1[42 + 2 * i..44 + 2 * i].copy_from_slice(&d.to_le_bytes());
    }
    let gz = dir.path().join("claims.nii.gz");
    std::fs::write(&gz, gzip(&v1)).unwrap();
    let mut reader = VolumeReader::open(&gz).unwrap();
    let mut slice = Vec::new();
    let err = reader.read_slice(&mut slice).unwrap_err();
    assert_eq!(err.kind(), "truncated", "{err}");
    assert!(LARGEST_ALLOCATION.load(Ordering::Relaxed) <= ALLOCATION_BOUND);
}

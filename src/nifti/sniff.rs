//! Naming what a file is when it is not NIfTI, from its first bytes and its
//! name, so that an error says "a DICOM file: convert it with dcm2niix"
//! instead of showing the bytes (which may be anything, e.g. someone's text).
//!
//! Only fixed signatures are compared; no byte of the file ever reaches a message.

use std::path::Path;

/// What a file that is not a single-file NIfTI image looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// No bytes at all.
    Empty,
    /// Fewer bytes than the 4 of `sizeof_hdr`.
    Short(usize),
    /// `DICM` at byte 128.
    Dicom,
    /// HDF5 (MINC-2) or NetCDF (MINC-1) signature, or a `.mnc` name.
    Minc,
    /// FreeSurfer MGH (version 1, big-endian), or a `.mgh`/`.mgz` name.
    Mgh,
    /// Philips PAR/REC: a `.par`/`.rec` name or the PAR text header.
    ParRec,
    /// The headerless data half of an Analyze/NIfTI pair: a `.img` name.
    ImgHalf,
    /// Printable text.
    Text,
    /// None of the above.
    Unknown,
}

const HDF5_SIGNATURE: &[u8] = b"\x89HDF\r\n\x1a\n";

/// Classify `raw` (the first bytes of the file or of its decompressed stream).
/// `path` contributes its extension (a trailing `.gz` is ignored).
pub(crate) fn sniff(raw: &[u8], path: &Path) -> Found {
    if raw.is_empty() {
        return Found::Empty;
    }
    if raw.len() < 4 {
        return Found::Short(raw.len());
    }
    if raw.get(128..132) == Some(b"DICM".as_slice()) {
        return Found::Dicom;
    }
    if raw.starts_with(HDF5_SIGNATURE) || raw.starts_with(b"CDF\x01") || raw.starts_with(b"CDF\x02")
    {
        return Found::Minc;
    }
    match extension(path).as_deref() {
        Some("mnc") => return Found::Minc,
        Some("mgh" | "mgz") => return Found::Mgh,
        Some("par" | "rec") => return Found::ParRec,
        Some("img") => return Found::ImgHalf,
        _ => {}
    }
    if i32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]) == 1 {
        return Found::Mgh;
    }
    if is_text(raw) {
        let par = b"DATA DESCRIPTION FILE";
        if raw.windows(par.len()).any(|w| w == par) {
            return Found::ParRec;
        }
        return Found::Text;
    }
    Found::Unknown
}

impl Found {
    /// What the file is and what to do, in words. `gzip`: the bytes came out of a gzip stream.
    pub(crate) fn message(self, gzip: bool) -> String {
        let what = match self {
            Found::Empty if gzip => return "a gzip stream that does not decompress to NIfTI: it decompresses to nothing (re-create or re-download the .nii.gz)".to_string(),
            Found::Short(n) if gzip => return format!("a gzip stream that does not decompress to NIfTI: it decompresses to only {n} bytes, too few for a header (re-create or re-download the .nii.gz)"),
            Found::Empty => "not a NIfTI file: it is empty (0 bytes); copy or download it again".to_string(),
            Found::Short(n) => format!("not a NIfTI file: only {n} bytes, too short for a header; copy or download it again"),
            Found::Dicom => "DICOM file (DICM at byte 128), not NIfTI: convert the series to NIfTI with dcm2niix".to_string(),
            Found::Minc => "MINC file (HDF5/NetCDF), not NIfTI: convert with mnc2nii or nibabel".to_string(),
            Found::Mgh => "MGH/MGZ (FreeSurfer) file, not NIfTI: convert with mri_convert (e.g. mri_convert in.mgz out.nii.gz)".to_string(),
            Found::ParRec => "PAR/REC (Philips) file, not NIfTI: convert with dcm2niix or nibabel".to_string(),
            Found::ImgHalf => "this is the data half (.img) of an Analyze/NIfTI .hdr/.img pair, which holds no header: convert the pair to a single .nii or .nii.gz (e.g. with nibabel) and pass that".to_string(),
            Found::Text => "not a NIfTI file: it starts with text; pass the .nii or .nii.gz image itself".to_string(),
            Found::Unknown => "not a NIfTI file: it starts with neither a NIfTI-1/NIfTI-2 header (sizeof_hdr 348 or 540, or the NIfTI-1 magic) nor a format recognised here (DICOM, MINC, MGH, PAR/REC); pass a .nii or .nii.gz image".to_string(),
        };
        if gzip {
            format!("a gzip stream that does not decompress to NIfTI; what it holds: {what}")
        } else {
            what
        }
    }
}

/// The lower-case extension, ignoring a trailing `.gz`.
fn extension(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    let (_, ext) = name.rsplit_once('.')?;
    Some(ext.to_string())
}

/// True when the bytes read as UTF-8 text without control characters other than
/// tab, newline, carriage return and form feed (a character cut at the end is fine).
fn is_text(raw: &[u8]) -> bool {
    let valid = match std::str::from_utf8(raw) {
        Ok(s) => s,
        Err(e) if e.error_len().is_none() => {
            // Only the last character is incomplete (the read stopped inside it).
            std::str::from_utf8(&raw[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return false,
    };
    !valid.is_empty()
        && valid
            .chars()
            .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r' | '\x0c'))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::PathBuf;

    use super::*;
    use crate::nifti::{read_header, NiftiError};

    /// Write `bytes` as `name` in `dir` and read its header, which must fail as `not_nifti`.
    fn refusal(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> String {
        let path: PathBuf = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let err = read_header(&path).expect_err(name);
        assert_eq!(err.kind(), "not_nifti", "{name}: {err}");
        assert!(
            matches!(err, NiftiError::NotNiftiFile { .. }),
            "{name}: {err:?}"
        );
        let message = err.to_string();
        assert!(
            message.starts_with(&path.display().to_string()),
            "{name}: message does not name the file: {message}"
        );
        if bytes.len() >= 4 {
            let first4 = [bytes[0], bytes[1], bytes[2], bytes[3]];
            for raw in [i32::from_le_bytes(first4), i32::from_be_bytes(first4)] {
                if raw.unsigned_abs() > 9 {
                    assert!(
                        !message.contains(&raw.to_string()),
                        "{name}: message shows the raw sizeof_hdr {raw}: {message}"
                    );
                }
            }
            assert!(!message.contains("sizeof_hdr is"), "{name}: {message}");
        }
        message
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn with_prefix(prefix: &[u8], len: usize) -> Vec<u8> {
        let mut b = prefix.to_vec();
        b.resize(len, 0);
        b
    }

    #[test]
    fn text_is_named_text_without_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let text = b"patient: Jane Doe, DOB 1970-01-01\n".repeat(20);
        let m = refusal(&dir, "notes.nii", &text);
        assert!(m.contains("not a NIfTI file: it starts with text"), "{m}");
        assert!(!m.contains("Jane") && !m.contains("pati"), "{m}");
        let m = refusal(
            &dir,
            "utf8.nii",
            "Größe: 12 mm — ok\n".repeat(30).as_bytes(),
        );
        assert!(m.contains("starts with text"), "{m}");
    }

    #[test]
    fn dicom_minc_mgh_and_par_rec_are_named_with_their_converters() {
        let dir = tempfile::tempdir().unwrap();
        let mut dicom = vec![0u8; 400];
        dicom[128..132].copy_from_slice(b"DICM");
        let m = refusal(&dir, "IM0001", &dicom);
        assert!(m.contains("DICOM") && m.contains("dcm2niix"), "{m}");

        let m = refusal(&dir, "brain.mnc", &with_prefix(b"\x89HDF\r\n\x1a\n", 400));
        assert!(
            m.contains("MINC file (HDF5/NetCDF)") && m.contains("mnc2nii"),
            "{m}"
        );
        let m = refusal(&dir, "netcdf.nii", &with_prefix(b"CDF\x01", 400));
        assert!(m.contains("MINC file (HDF5/NetCDF)"), "{m}");

        let mut mgh = with_prefix(&1i32.to_be_bytes(), 400);
        mgh[4..8].copy_from_slice(&256i32.to_be_bytes());
        let m = refusal(&dir, "orig.nii", &mgh);
        assert!(
            m.contains("MGH/MGZ (FreeSurfer)") && m.contains("mri_convert"),
            "{m}"
        );
        let m = refusal(&dir, "orig.mgz", &gzip(&mgh));
        assert!(
            m.contains("gzip stream that does not decompress to NIfTI"),
            "{m}"
        );
        assert!(m.contains("MGH/MGZ (FreeSurfer)"), "{m}");

        let par =
            b"# === DATA DESCRIPTION FILE ======================================\n#\n".repeat(5);
        let m = refusal(&dir, "scan.txt", &par);
        assert!(
            m.contains("PAR/REC (Philips)") && m.contains("dcm2niix"),
            "{m}"
        );
        let m = refusal(&dir, "scan.PAR", b"anything at all, even binary \x01\x02");
        assert!(m.contains("PAR/REC (Philips)"), "{m}");
        let m = refusal(&dir, "scan.REC", &[7u8; 1000]);
        assert!(m.contains("PAR/REC (Philips)"), "{m}");
    }

    #[test]
    fn the_halves_of_a_pair_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let m = refusal(&dir, "scan.img", &[3u8; 2000]);
        assert!(
            m.contains("data half (.img) of an Analyze/NIfTI .hdr/.img pair"),
            "{m}"
        );

        let mut ni2 = vec![0u8; 540];
        ni2[0..4].copy_from_slice(&540i32.to_le_bytes());
        ni2[4..8].copy_from_slice(b"ni2\0");
        let m = refusal(&dir, "scan.hdr", &ni2);
        assert!(
            m.contains("header half of a NIfTI-2 .hdr/.img pair") && m.contains("convert to .nii"),
            "{m}"
        );

        let mut ni1 = vec![0u8; 348];
        ni1[0..4].copy_from_slice(&348i32.to_be_bytes());
        ni1[344..348].copy_from_slice(b"ni1\0");
        let m = refusal(&dir, "old.hdr", &ni1);
        assert!(m.contains("header half of a NIfTI-1 .hdr/.img pair"), "{m}");
    }

    #[test]
    fn empty_short_gzip_and_unknown_files() {
        let dir = tempfile::tempdir().unwrap();
        let m = refusal(&dir, "empty.nii", b"");
        assert!(m.contains("empty (0 bytes)"), "{m}");
        let m = refusal(&dir, "short.nii", b"ab");
        assert!(m.contains("only 2 bytes"), "{m}");
        let m = refusal(&dir, "empty.nii.gz", &gzip(b""));
        assert!(m.contains("decompresses to nothing"), "{m}");
        let m = refusal(&dir, "text.nii.gz", &gzip(&b"hello world\n".repeat(40)));
        assert!(
            m.contains("gzip stream that does not decompress to NIfTI")
                && m.contains("starts with text"),
            "{m}"
        );
        let m = refusal(
            &dir,
            "noise.nii",
            &[0xffu8, 0xfe, 0x00, 0x07, 0x80].repeat(100),
        );
        assert!(
            m.contains("not a NIfTI file") && m.contains(".nii or .nii.gz"),
            "{m}"
        );
    }

    #[test]
    fn an_analyze_header_is_named_without_its_magic_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("analyze.hdr");
        let mut hdr = vec![0u8; 348];
        hdr[0..4].copy_from_slice(&348i32.to_le_bytes());
        std::fs::write(&path, &hdr).unwrap();
        let m = read_header(&path).unwrap_err().to_string();
        assert!(m.contains("Analyze 7.5"), "{m}");
        hdr[344..348].copy_from_slice(b"secr");
        std::fs::write(&path, &hdr).unwrap();
        let m = read_header(&path).unwrap_err().to_string();
        assert!(m.contains("magic") && !m.contains("secr"), "{m}");
    }

    #[test]
    fn sniffing_ignores_a_gz_suffix_and_case() {
        assert_eq!(extension(Path::new("/a/B.MGZ")).as_deref(), Some("mgz"));
        assert_eq!(extension(Path::new("x.img.gz")).as_deref(), Some("img"));
        assert_eq!(extension(Path::new("noext")), None);
        assert_eq!(sniff(b"", Path::new("x")), Found::Empty);
        assert!(is_text("é".as_bytes()));
        assert!(is_text(&"aé".as_bytes()[..2]), "a character cut at the end");
        assert!(!is_text(b"a\0b"));
    }
}

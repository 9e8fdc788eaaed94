//! Decoding a header's bytes into a [`Header`], section by section in the order the
//! header holds them, so the first problem found (and reported) is always the same
//! one; nibabel's on-load fixes are applied and noted, the refusals explained.

use std::path::Path;

use super::affine::{base_affine, identity, max_abs_diff, qform_affine, QformParams};
use super::layout::{Fields, Layout, LAYOUT_V1, LAYOUT_V2};
use super::{detect_version, pair_header, AffineSource, DataType, Header, NiftiVersion};
use crate::nifti::{sniff, Affine, NiftiError, MAX_SLICE_VOXELS, MAX_TOTAL_VOXELS, MAX_VOX_OFFSET};

impl Header {
    /// Decode a header from its raw bytes (at least `sizeof_hdr` of them; more is fine).
    /// `path` is only used to name the file in errors.
    ///
    /// The steps run in the order of the header's sections, so the first problem
    /// found (and reported) is always the same one: identification (`sizeof_hdr`,
    /// magic, `eol_check`), datatype, dimensions, pixdim, `vox_offset`, scaling,
    /// transforms, units and `descrip`.
    pub fn parse(raw: &[u8], path: &Path) -> Result<Header, NiftiError> {
        Header::parse_stream(raw, path, false)
    }

    /// [`Header::parse`] for bytes that came out of a gzip stream when `gzip`
    /// (a file that is not NIfTI is then described as such).
    pub(crate) fn parse_stream(raw: &[u8], path: &Path, gzip: bool) -> Result<Header, NiftiError> {
        let mut notes = Vec::new();
        let (version, little_endian) = identify(raw, path, gzip, &mut notes)?;
        let header_size = version.header_size();
        if raw.len() < header_size {
            return Err(NiftiError::Truncated {
                path: path.to_path_buf(),
                detail: format!(
                    "the {} header needs {header_size} bytes but the file holds only {}",
                    version,
                    raw.len()
                ),
            });
        }
        let mut p = Parser {
            f: Fields {
                bytes: &raw[..header_size],
                little_endian,
            },
            layout: match version {
                NiftiVersion::Nifti1 => &LAYOUT_V1,
                NiftiVersion::Nifti2 => &LAYOUT_V2,
            },
            version,
            path,
            notes,
        };
        let pair_magic = p.magic_and_eol()?;
        let datatype = p.datatype()?;
        let (dim, shape) = p.dims()?;
        let Zooms {
            zooms,
            spacing,
            qfac,
        } = p.zooms(dim.len())?;
        let vox_offset = p.vox_offset(pair_magic)?;
        let Scaling {
            scl_slope,
            scl_inter,
            scaling,
        } = p.scaling()?;
        let t = p.transforms(&shape, spacing, qfac)?;
        let xyz_units = p.xyz_units();
        if t.affine.iter().flatten().any(|v| !v.is_finite()) {
            p.notes.push(format!(
                "the {:?} affine has non-finite entries",
                t.affine_source
            ));
        }
        let descrip = p.descrip();

        Ok(Header {
            version,
            little_endian,
            datatype,
            dim,
            shape,
            zooms,
            spacing,
            affine: t.affine,
            affine_source: t.affine_source,
            sform_code: t.sform_code,
            qform_code: t.qform_code,
            sform: t.sform,
            qform: t.qform,
            sform_qform_max_abs_diff: t.sform_qform_max_abs_diff,
            scl_slope,
            scl_inter,
            scaling,
            vox_offset,
            descrip,
            xyz_units,
            notes: p.notes,
            pair_magic,
        })
    }
}

/// Version and byte order from `sizeof_hdr`, or (as nibabel) from the NIfTI-1 magic alone.
fn identify(
    raw: &[u8],
    path: &Path,
    gzip: bool,
    notes: &mut Vec<String>,
) -> Result<(NiftiVersion, bool), NiftiError> {
    let not_nifti = || NiftiError::NotNiftiFile {
        path: path.to_path_buf(),
        what: sniff::sniff(raw, path).message(gzip),
    };
    if raw.len() < 4 {
        return Err(not_nifti());
    }
    let first4 = [raw[0], raw[1], raw[2], raw[3]];
    if let Some(found) = detect_version(first4) {
        return Ok(found);
    }
    // nibabel recognises NIfTI-1 by its magic alone and fixes sizeof_hdr.
    let found = sniff_nifti1_by_magic(raw).ok_or_else(not_nifti)?;
    notes.push(format!(
        "sizeof_hdr is {}, not 348; recognised by the NIfTI-1 magic as nibabel does",
        if found.1 {
            i32::from_le_bytes(first4)
        } else {
            i32::from_be_bytes(first4)
        }
    ));
    Ok(found)
}

/// pixdim after nibabel's on-load fixes.
struct Zooms {
    zooms: Vec<f64>,
    spacing: [f64; 3],
    qfac: f64,
}

/// Raw `scl_slope`/`scl_inter` and what is applied to voxels (`None` = identity).
struct Scaling {
    scl_slope: f64,
    scl_inter: f64,
    scaling: Option<(f64, f64)>,
}

/// The spatial transforms and the affine chosen from them.
struct Transforms {
    affine: Affine,
    affine_source: AffineSource,
    sform_code: i32,
    qform_code: i32,
    sform: Option<Affine>,
    qform: Option<Affine>,
    sform_qform_max_abs_diff: Option<f64>,
}

/// One header being decoded: its bytes, layout, and the notes gathered so far.
struct Parser<'a> {
    f: Fields<'a>,
    layout: &'static Layout,
    version: NiftiVersion,
    path: &'a Path,
    notes: Vec<String>,
}

impl Parser<'_> {
    fn not_nifti(&self, reason: String) -> NiftiError {
        NiftiError::NotNifti {
            path: self.path.to_path_buf(),
            reason,
        }
    }

    fn invalid(&self, problem: String) -> NiftiError {
        NiftiError::InvalidHeader {
            path: self.path.to_path_buf(),
            problem,
        }
    }

    fn read_dim(&self, i: usize) -> i64 {
        match self.layout.dim_width {
            2 => self.f.i16(self.layout.dim + 2 * i),
            _ => self.f.i64(self.layout.dim + 8 * i),
        }
    }

    fn read_float(&self, offset: usize) -> f64 {
        match self.layout.float_width {
            4 => self.f.f32(offset),
            _ => self.f.f64(offset),
        }
    }

    fn read_code(&self, offset: usize) -> i64 {
        match self.layout.code_width {
            2 => self.f.i16(offset),
            _ => self.f.i32(offset),
        }
    }

    /// `vox_offset` as stored (NaN stays NaN), before any check.
    fn raw_vox_offset(&self) -> f64 {
        match self.version {
            NiftiVersion::Nifti1 => self.f.f32(self.layout.vox_offset),
            NiftiVersion::Nifti2 => self.f.i64(self.layout.vox_offset) as f64,
        }
    }

    /// The smallest `vox_offset` of a single-file image: the header plus 4 extension bytes.
    fn min_vox_offset(&self) -> u64 {
        self.version.header_size() as u64 + 4
    }

    /// The refusal of the header half of a .hdr/.img pair (pair magic, voxels not in this file).
    fn pair_header(&self) -> NiftiError {
        pair_header(self.path, self.version)
    }

    /// The magic (`Ok(true)` for the magic of a .hdr/.img pair) and, for NIfTI-2, `eol_check`.
    /// The header half of a pair (pair magic, `vox_offset` inside the header) is refused here.
    fn magic_and_eol(&mut self) -> Result<bool, NiftiError> {
        let pair_magic = check_magic(&self.f, self.version).map_err(|r| self.not_nifti(r))?;
        if pair_magic && self.raw_vox_offset() < self.min_vox_offset() as f64 {
            return Err(self.pair_header());
        }
        if self.version == NiftiVersion::Nifti2 {
            let eol = self.f.array::<4>(8);
            if eol == [0, 0, 0, 0] {
                self.notes
                    .push("NIfTI-2 eol_check was all zero (nibabel sets it; harmless)".into());
            } else if eol != [13, 10, 26, 10] {
                return Err(self.invalid(format!(
                    "NIfTI-2 eol_check is {eol:?}, not [13, 10, 26, 10]: the file was probably damaged by a text-mode (line-ending) conversion"
                )));
            }
        }
        Ok(pair_magic)
    }

    fn datatype(&self) -> Result<DataType, NiftiError> {
        DataType::from_code(self.f.i16(self.layout.datatype) as i32).map_err(|what| {
            NiftiError::Unsupported {
                path: self.path.to_path_buf(),
                what,
            }
        })
    }

    /// `dim[1..=dim[0]]` and the 3-D shape, within the size limits.
    fn dims(&self) -> Result<(Vec<usize>, [usize; 3]), NiftiError> {
        let ndim = self.read_dim(0);
        if !(1..=7).contains(&ndim) {
            return Err(self.invalid(format!(
                "dim[0] (number of dimensions) is {ndim}, must be 1..=7"
            )));
        }
        let raw_dims: Vec<i64> = (1..=ndim as usize).map(|i| self.read_dim(i)).collect();
        if let Some(bad) = raw_dims.iter().find(|&&d| d < 0) {
            return Err(self.invalid(format!("negative dimension {bad} in dim {raw_dims:?}")));
        }
        if raw_dims.contains(&0) {
            return Err(self.invalid(format!(
                "zero-length dimension in dim {raw_dims:?}: the image holds no voxels"
            )));
        }
        let dim: Vec<usize> = raw_dims
            .iter()
            .map(|&d| {
                usize::try_from(d)
                    .map_err(|_| self.invalid(format!("dimension {d} does not fit this platform")))
            })
            .collect::<Result<_, _>>()?;
        let shape = spatial_shape(&dim).map_err(|hint| NiftiError::NotThreeD {
            path: self.path.to_path_buf(),
            shape: dim.clone(),
            hint,
        })?;
        check_size(&shape, self.path)?;
        Ok((dim, shape))
    }

    /// Zooms, with nibabel's on-load fixes of pixdim; a NaN or infinite one is refused
    /// (nibabel would load it, but no voxel volume or affine can come of it).
    fn zooms(&mut self, ndim: usize) -> Result<Zooms, NiftiError> {
        let mut pixdim: Vec<f64> = (0..8)
            .map(|i| self.read_float(self.layout.pixdim + self.layout.float_width * i))
            .collect();
        let mut qfac = pixdim[0];
        if qfac != 1.0 && qfac != -1.0 {
            self.notes.push(format!(
                "qfac (pixdim[0]) was {qfac}, treated as 1 as nibabel does"
            ));
            qfac = 1.0;
        }
        for (axis, p) in pixdim.iter_mut().enumerate().take(4).skip(1) {
            if *p == 0.0 {
                self.notes
                    .push(format!("pixdim[{axis}] was 0, set to 1 as nibabel does"));
                *p = 1.0;
            } else if *p < 0.0 {
                self.notes.push(format!(
                    "pixdim[{axis}] was {p}, made positive as nibabel does"
                ));
                *p = p.abs();
            }
        }
        // dims() has made sure of a 3-D volume, so ndim >= 3 and the spacing is checked too.
        if let Some(axis) = (1..=ndim).find(|&axis| !pixdim[axis].is_finite()) {
            return Err(self.invalid(format!(
                "pixdim[{axis}] (the voxel size along axis {axis}) is {}, not a finite number, so voxel volumes and the affine cannot be computed; rewrite the header with the real voxel spacing (e.g. nibabel's header.set_zooms) or re-export the image",
                pixdim[axis]
            )));
        }
        let zooms: Vec<f64> = pixdim[1..=ndim].to_vec();
        let spacing = [pixdim[1], pixdim[2], pixdim[3]];
        Ok(Zooms {
            zooms,
            spacing,
            qfac,
        })
    }

    /// Where the voxels start, checked against the header size and the limit.
    fn vox_offset(&mut self, pair_magic: bool) -> Result<u64, NiftiError> {
        let version = self.version;
        let vox_offset = match version {
            NiftiVersion::Nifti1 => {
                let v = self.f.f32(self.layout.vox_offset);
                if !(0.0..=1e15).contains(&v) {
                    return Err(self.invalid(format!("vox_offset is {v}, not a byte offset")));
                }
                v.trunc() as u64
            }
            NiftiVersion::Nifti2 => {
                let v = self.f.i64(self.layout.vox_offset);
                u64::try_from(v)
                    .map_err(|_| self.invalid(format!("vox_offset is {v}, not a byte offset")))?
            }
        };
        let min_offset = self.min_vox_offset();
        if vox_offset > MAX_VOX_OFFSET {
            return Err(NiftiError::TooLarge {
                path: self.path.to_path_buf(),
                detail: format!(
                    "vox_offset {vox_offset} puts over {} MiB of extensions before the voxels (at most {} MiB accepted)",
                    vox_offset >> 20,
                    MAX_VOX_OFFSET >> 20
                ),
            });
        }
        if pair_magic {
            if vox_offset < min_offset {
                return Err(self.pair_header());
            }
            self.notes.push(format!(
                "pair magic in a single file; voxels read from vox_offset {vox_offset} as nibabel does"
            ));
        }
        if vox_offset < min_offset {
            return Err(self.invalid(format!(
                "vox_offset is {vox_offset}, but a single-file {version} image keeps its voxels at or after byte {min_offset}"
            )));
        }
        Ok(vox_offset)
    }

    /// Scaling, as nibabel's get_slope_inter() and apply_read_scaling().
    fn scaling(&self) -> Result<Scaling, NiftiError> {
        let scl_slope = self.read_float(self.layout.scl_slope);
        let scl_inter = self.read_float(self.layout.scl_inter);
        let scaling = if scl_slope == 0.0 || !scl_slope.is_finite() {
            None
        } else if !scl_inter.is_finite() {
            return Err(self.invalid(format!(
                "scl_slope is {scl_slope} but scl_inter is {scl_inter}: no valid intercept (nibabel refuses this too)"
            )));
        } else if scl_slope == 1.0 && scl_inter == 0.0 {
            None
        } else {
            Some((scl_slope, scl_inter))
        };
        Ok(Scaling {
            scl_slope,
            scl_inter,
            scaling,
        })
    }

    /// A transform code as nibabel holds it: outside 0..=5 becomes 0 (noted).
    fn fixed_code(&mut self, name: &str, offset: usize) -> i32 {
        let code = self.read_code(offset);
        if (0..=5).contains(&code) {
            code as i32
        } else {
            self.notes.push(format!(
                "{name} {code} is not a valid code, treated as 0 as nibabel does"
            ));
            0
        }
    }

    /// sform, qform and the affine nibabel picks from them.
    fn transforms(
        &mut self,
        shape: &[usize; 3],
        spacing: [f64; 3],
        qfac: f64,
    ) -> Result<Transforms, NiftiError> {
        let layout = self.layout;
        let qform_code = self.fixed_code("qform_code", layout.qform_code);
        let sform_code = self.fixed_code("sform_code", layout.sform_code);

        let sform = (sform_code > 0).then(|| {
            let mut a = identity();
            for (row, a_row) in a.iter_mut().enumerate().take(3) {
                for (col, v) in a_row.iter_mut().enumerate() {
                    *v = self.read_float(layout.srow_x + layout.float_width * (4 * row + col));
                }
            }
            a
        });
        let quatern = |i: usize| self.read_float(layout.quatern_b + layout.float_width * i);
        let qform_params = QformParams {
            bcd: [quatern(0), quatern(1), quatern(2)],
            offset: [quatern(3), quatern(4), quatern(5)],
            pixdim: spacing,
            qfac,
        };
        let qform = if qform_code > 0 {
            match qform_affine(&qform_params) {
                Ok(a) => Some(a),
                Err(problem) if sform.is_some() => {
                    self.notes.push(format!("qform ignored: {problem}"));
                    None
                }
                Err(problem) => {
                    return Err(
                        self.invalid(format!("qform (the only transform) is unusable: {problem}"))
                    )
                }
            }
        } else {
            None
        };
        let (affine, affine_source) = match (sform, qform) {
            (Some(s), _) => (s, AffineSource::Sform),
            (None, Some(q)) => (q, AffineSource::Qform),
            (None, None) => (base_affine(shape, &spacing), AffineSource::Fallback),
        };
        let sform_qform_max_abs_diff = match (sform, qform) {
            (Some(s), Some(q)) => Some(max_abs_diff(&s, &q)),
            _ => None,
        };
        Ok(Transforms {
            affine,
            affine_source,
            sform_code,
            qform_code,
            sform,
            qform,
            sform_qform_max_abs_diff,
        })
    }

    /// Spatial unit: NIfTI-1 keeps xyzt_units in one byte, NIfTI-2 in an int32;
    /// the spatial bits are the low three.
    fn xyz_units(&mut self) -> &'static str {
        let units = match self.version {
            NiftiVersion::Nifti1 => i64::from(self.f.bytes[self.layout.xyzt_units]),
            NiftiVersion::Nifti2 => self.f.i32(self.layout.xyzt_units),
        } & 0x07;
        let xyz_units = match units {
            1 => "meter",
            2 => "mm",
            3 => "micron",
            _ => "unknown",
        };
        if matches!(xyz_units, "meter" | "micron") {
            self.notes.push(format!(
                "spatial unit is {xyz_units}: spacing and affine are in that unit, not mm (nibabel does not convert either)"
            ));
        }
        xyz_units
    }

    /// `descrip`, up to its first NUL.
    fn descrip(&self) -> String {
        let descrip_bytes = &self.f.bytes[self.layout.descrip..self.layout.descrip + 80];
        let end = descrip_bytes.iter().position(|&b| b == 0).unwrap_or(80);
        String::from_utf8_lossy(&descrip_bytes[..end]).into_owned()
    }
}

/// `Ok(false)` for single-file magic, `Ok(true)` for the magic of a .hdr/.img pair.
fn check_magic(f: &Fields, version: NiftiVersion) -> Result<bool, String> {
    let (offset, single, pair) = match version {
        NiftiVersion::Nifti1 => (344, b"n+1\0", b"ni1\0"),
        NiftiVersion::Nifti2 => (4, b"n+2\0", b"ni2\0"),
    };
    let magic = f.array::<4>(offset);
    if &magic == single {
        Ok(false)
    } else if &magic == pair {
        Ok(true)
    } else {
        Err(missing_magic(version, magic == [0; 4]))
    }
}

/// Why a header of the right size is not NIfTI, without showing its bytes.
fn missing_magic(version: NiftiVersion, all_zero: bool) -> String {
    match version {
        NiftiVersion::Nifti1 if all_zero => "a 348-byte header without the NIfTI magic: an Analyze 7.5 header (or a damaged NIfTI-1 one); convert it to NIfTI with nibabel or fslchfiletype".to_string(),
        NiftiVersion::Nifti1 => "the NIfTI-1 magic at byte 344 is damaged (expected \"n+1\" or \"ni1\"): the file is corrupt or not NIfTI".to_string(),
        NiftiVersion::Nifti2 => "the NIfTI-2 magic at byte 4 is missing or damaged (expected \"n+2\" or \"ni2\"): the file is corrupt or not NIfTI".to_string(),
    }
}

/// nibabel's NIfTI-1 sniffing when `sizeof_hdr` is wrong: the magic at byte 344,
/// byte order from `dim[0]` (1..=7 when read the right way round).
fn sniff_nifti1_by_magic(raw: &[u8]) -> Option<(NiftiVersion, bool)> {
    let magic = raw.get(344..348)?;
    if magic != b"n+1\0" && magic != b"ni1\0" {
        return None;
    }
    let ndim_le = i16::from_le_bytes([raw[40], raw[41]]);
    Some((NiftiVersion::Nifti1, (1..=7).contains(&ndim_le)))
}

/// Drop trailing singleton dimensions beyond the third; anything but three left is not a volume.
fn spatial_shape(dim: &[usize]) -> Result<[usize; 3], String> {
    let mut kept = dim.len();
    while kept > 3 && dim[kept - 1] == 1 {
        kept -= 1;
    }
    match kept {
        3 => Ok([dim[0], dim[1], dim[2]]),
        1 | 2 => Err(format!("a {kept}-D image; a 3-D volume is required")),
        _ => Err(format!(
            "a {kept}-D image with {} volumes beyond the first three axes; extract one 3-D volume first",
            dim[3..kept].iter().product::<usize>()
        )),
    }
}

fn check_size(shape: &[usize; 3], path: &Path) -> Result<(), NiftiError> {
    let too_large = |detail: String| NiftiError::TooLarge {
        path: path.to_path_buf(),
        detail,
    };
    let slice = (shape[0] as u64).checked_mul(shape[1] as u64);
    match slice {
        Some(s) if s <= MAX_SLICE_VOXELS => {}
        _ => {
            return Err(too_large(format!(
                "one z-slice of shape {shape:?} holds {} x {} voxels",
                shape[0], shape[1]
            )))
        }
    }
    let total = slice.and_then(|s| s.checked_mul(shape[2] as u64));
    match total {
        Some(t) if t <= MAX_TOTAL_VOXELS => Ok(()),
        _ => Err(too_large(format!(
            "shape {shape:?} claims {} x {} x {} voxels",
            shape[0], shape[1], shape[2]
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_singletons_are_dropped_but_series_refused() {
        assert_eq!(spatial_shape(&[4, 5, 6, 1, 1]).unwrap(), [4, 5, 6]);
        assert_eq!(spatial_shape(&[4, 5, 6]).unwrap(), [4, 5, 6]);
        assert_eq!(spatial_shape(&[4, 5, 1]).unwrap(), [4, 5, 1]);
        assert!(spatial_shape(&[4, 5, 6, 2])
            .unwrap_err()
            .contains("2 volumes"));
        assert!(spatial_shape(&[4, 5]).unwrap_err().contains("2-D"));
        assert!(spatial_shape(&[4, 5, 6, 1, 3]).is_err());
    }

    /// A valid little-endian NIfTI-1 header of a 4x5x6 float32 volume, voxels at 352.
    fn nifti1_header() -> Vec<u8> {
        let mut h = vec![0u8; 352];
        h[0..4].copy_from_slice(&348i32.to_le_bytes());
        for (i, d) in [3i16, 4, 5, 6, 1, 1, 1, 1].iter().enumerate() {
            h[40 + 2 * i..42 + 2 * i].copy_from_slice(&d.to_le_bytes());
        }
        h[70..72].copy_from_slice(&16i16.to_le_bytes());
        for (i, p) in [1f32, 1.5, 2.0, 3.0, 1.0, 1.0, 1.0, 1.0].iter().enumerate() {
            h[76 + 4 * i..80 + 4 * i].copy_from_slice(&p.to_le_bytes());
        }
        h[108..112].copy_from_slice(&352f32.to_le_bytes());
        h[344..348].copy_from_slice(b"n+1\0");
        h
    }

    #[test]
    fn non_finite_pixdim_is_refused_naming_pixdim_and_the_fix() {
        let path = Path::new("/data/scan.nii");
        assert_eq!(
            Header::parse(&nifti1_header(), path).unwrap().spacing,
            [1.5, 2.0, 3.0]
        );
        for (axis, value) in [(1, f32::NAN), (2, f32::INFINITY), (3, f32::NEG_INFINITY)] {
            let mut h = nifti1_header();
            h[76 + 4 * axis..80 + 4 * axis].copy_from_slice(&value.to_le_bytes());
            let err = Header::parse(&h, path).unwrap_err();
            assert_eq!(err.kind(), "invalid_header", "{err}");
            let message = err.to_string();
            assert!(message.starts_with("/data/scan.nii: "), "{message}");
            assert!(message.contains(&format!("pixdim[{axis}]")), "{message}");
            assert!(message.contains("set_zooms"), "{message}");
        }
        // A 4-D header with a singleton time axis: its zoom is reported, so it is checked too.
        let mut h = nifti1_header();
        h[40..42].copy_from_slice(&4i16.to_le_bytes());
        h[92..96].copy_from_slice(&f32::NAN.to_le_bytes());
        let message = Header::parse(&h, path).unwrap_err().to_string();
        assert!(message.contains("pixdim[4]"), "{message}");
        // pixdim beyond dim[0] is not used, so it may hold anything.
        let mut h = nifti1_header();
        h[96..100].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(Header::parse(&h, path).is_ok());
    }
}

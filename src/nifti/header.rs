//! Header decoding: the raw NIfTI-1 (348-byte) or NIfTI-2 (540-byte) header
//! turned into a [`Header`] whose derived values (shape, zooms, affine,
//! scaling) are the ones nibabel reports after `nib.load`.
//!
//! nibabel does not read headers verbatim: on load it runs its header checks
//! *with fixing on* (`check_fix`), so the values that `img.affine`,
//! `header.get_zooms()` and `get_fdata()` use are the fixed ones. We mirror the
//! checks that change numbers and the ones that refuse the file:
//!
//! * `pixdim[1..=3]` zero → 1, negative → absolute value;
//! * `pixdim[0]` (qfac) not exactly ±1 → 1;
//! * `qform_code`/`sform_code` outside 0..=5 → 0;
//! * unknown datatype, bad magic, `vox_offset` below the header size, a
//!   NIfTI-2 `eol_check` that is neither zero nor `0D 0A 1A 0A`: refused;
//! * a NaN or infinite `pixdim[1..=dim[0]]` (voxel size): refused, where nibabel
//!   loads it, because no voxel volume, spacing or affine can be derived from it.
//!
//! Every fix applied is recorded in [`Header::notes`] so nothing is silent.

use std::path::Path;

use super::{
    orientation, sniff, Affine, NiftiError, MAX_SLICE_VOXELS, MAX_TOTAL_VOXELS, MAX_VOX_OFFSET,
};

/// Which NIfTI flavour the file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NiftiVersion {
    /// 348-byte header, 16-bit dims, 32-bit floats.
    Nifti1,
    /// 540-byte header, 64-bit dims, 64-bit floats.
    Nifti2,
}

impl std::fmt::Display for NiftiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NiftiVersion::Nifti1 => "NIfTI-1",
            NiftiVersion::Nifti2 => "NIfTI-2",
        })
    }
}

impl NiftiVersion {
    /// Size of the fixed header in bytes (`sizeof_hdr`).
    pub fn header_size(&self) -> usize {
        match self {
            NiftiVersion::Nifti1 => 348,
            NiftiVersion::Nifti2 => 540,
        }
    }
}

/// Where [`Header::affine`] comes from, in nibabel's order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AffineSource {
    /// `sform_code > 0`: the `srow_*` rows.
    Sform,
    /// `sform_code == 0`, `qform_code > 0`: the quaternion.
    Qform,
    /// Neither code set: nibabel's `get_base_affine` (centre origin, x flipped).
    Fallback,
}

/// The scalar voxel types this reader handles (serialised as numpy names, "float32").
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    UInt8,
    Int8,
    Int16,
    UInt16,
    Int32,
    UInt32,
    Int64,
    UInt64,
    Float32,
    Float64,
}

impl DataType {
    /// Decode a NIfTI `datatype` code; `Err` carries a description of why not.
    pub fn from_code(code: i32) -> Result<DataType, String> {
        Ok(match code {
            2 => DataType::UInt8,
            4 => DataType::Int16,
            8 => DataType::Int32,
            16 => DataType::Float32,
            64 => DataType::Float64,
            256 => DataType::Int8,
            512 => DataType::UInt16,
            768 => DataType::UInt32,
            1024 => DataType::Int64,
            1280 => DataType::UInt64,
            1 => return Err("datatype 1 (1-bit binary)".into()),
            32 => return Err("datatype 32 (complex64)".into()),
            128 => return Err("datatype 128 (RGB24)".into()),
            1536 => return Err("datatype 1536 (float128)".into()),
            1792 => return Err("datatype 1792 (complex128)".into()),
            2048 => return Err("datatype 2048 (complex256)".into()),
            2304 => return Err("datatype 2304 (RGBA32)".into()),
            other => return Err(format!("datatype code {other} (not a NIfTI datatype)")),
        })
    }

    /// The NIfTI `datatype` code.
    pub fn code(&self) -> i32 {
        match self {
            DataType::UInt8 => 2,
            DataType::Int16 => 4,
            DataType::Int32 => 8,
            DataType::Float32 => 16,
            DataType::Float64 => 64,
            DataType::Int8 => 256,
            DataType::UInt16 => 512,
            DataType::UInt32 => 768,
            DataType::Int64 => 1024,
            DataType::UInt64 => 1280,
        }
    }

    /// numpy-style name, as `str(img.get_data_dtype())` prints it.
    pub fn name(&self) -> &'static str {
        match self {
            DataType::UInt8 => "uint8",
            DataType::Int8 => "int8",
            DataType::Int16 => "int16",
            DataType::UInt16 => "uint16",
            DataType::Int32 => "int32",
            DataType::UInt32 => "uint32",
            DataType::Int64 => "int64",
            DataType::UInt64 => "uint64",
            DataType::Float32 => "float32",
            DataType::Float64 => "float64",
        }
    }

    /// True for the integer types (label maps should be one of these, or float with integral values).
    pub fn is_integer(&self) -> bool {
        !matches!(self, DataType::Float32 | DataType::Float64)
    }

    /// Bytes per voxel.
    pub fn size_bytes(&self) -> usize {
        match self {
            DataType::UInt8 | DataType::Int8 => 1,
            DataType::Int16 | DataType::UInt16 => 2,
            DataType::Int32 | DataType::UInt32 | DataType::Float32 => 4,
            DataType::Int64 | DataType::UInt64 | DataType::Float64 => 8,
        }
    }
}

/// A decoded header with nibabel's derived values. Built only by [`super::read_header`] /
/// [`super::VolumeReader::open`] (or [`Header::parse`] on raw bytes).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Header {
    pub version: NiftiVersion,
    pub little_endian: bool,
    pub datatype: DataType,
    /// `dim[1..=dim[0]]` as stored.
    pub dim: Vec<usize>,
    /// Spatial shape after dropping trailing singleton dimensions.
    pub shape: [usize; 3],
    /// As nibabel's `header.get_zooms()`: `pixdim[1..=dim[0]]`, spatial ones fixed.
    pub zooms: Vec<f64>,
    /// The first three zooms (mm).
    pub spacing: [f64; 3],
    /// As nibabel's `img.affine`.
    pub affine: Affine,
    pub affine_source: AffineSource,
    /// Codes as nibabel holds them after its fixes (invalid codes become 0).
    pub sform_code: i32,
    pub qform_code: i32,
    /// The sform, when `sform_code > 0`.
    pub sform: Option<Affine>,
    /// The qform, when `qform_code > 0` and the quaternion is valid.
    pub qform: Option<Affine>,
    /// Largest absolute element difference between sform and qform when both are present.
    pub sform_qform_max_abs_diff: Option<f64>,
    /// Raw header values.
    pub scl_slope: f64,
    pub scl_inter: f64,
    /// What is actually applied to voxels (`raw * slope + inter`); `None` = identity.
    pub scaling: Option<(f64, f64)>,
    /// Byte offset of the voxel data in the (decompressed) stream.
    pub vox_offset: u64,
    pub descrip: String,
    /// Spatial unit from `xyzt_units`: "unknown", "meter", "mm" or "micron".
    /// Like nibabel, zooms and spacing are reported as stored, whatever the unit.
    pub xyz_units: &'static str,
    /// Fixes applied the way nibabel applies them on load, and other remarks.
    pub notes: Vec<String>,
    /// The magic of a .hdr/.img pair (`ni1`/`ni2`): a file that then lacks the voxels
    /// is the header half of a pair, not a truncated image.
    #[serde(skip)]
    pub pair_magic: bool,
}

/// sform and qform are said to disagree when an element differs by more than this (mm).
pub const SFORM_QFORM_TOLERANCE: f64 = 1e-4;

/// The size of the first read needed to decode any header: the NIfTI-2 header size.
pub const MAX_HEADER_BYTES: usize = 540;

/// Typed access to header bytes in the file's byte order.
struct Fields<'a> {
    bytes: &'a [u8],
    little_endian: bool,
}

impl Fields<'_> {
    fn array<const N: usize>(&self, offset: usize) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&self.bytes[offset..offset + N]);
        a
    }
    fn i16(&self, offset: usize) -> i64 {
        let a = self.array::<2>(offset);
        i64::from(if self.little_endian {
            i16::from_le_bytes(a)
        } else {
            i16::from_be_bytes(a)
        })
    }
    fn i32(&self, offset: usize) -> i64 {
        let a = self.array::<4>(offset);
        i64::from(if self.little_endian {
            i32::from_le_bytes(a)
        } else {
            i32::from_be_bytes(a)
        })
    }
    fn i64(&self, offset: usize) -> i64 {
        let a = self.array::<8>(offset);
        if self.little_endian {
            i64::from_le_bytes(a)
        } else {
            i64::from_be_bytes(a)
        }
    }
    fn f32(&self, offset: usize) -> f64 {
        let a = self.array::<4>(offset);
        f64::from(if self.little_endian {
            f32::from_le_bytes(a)
        } else {
            f32::from_be_bytes(a)
        })
    }
    fn f64(&self, offset: usize) -> f64 {
        let a = self.array::<8>(offset);
        if self.little_endian {
            f64::from_le_bytes(a)
        } else {
            f64::from_be_bytes(a)
        }
    }
}

/// Byte offsets of the fields we use, per version; integer and float widths differ too.
struct Layout {
    datatype: usize,
    dim: usize,
    dim_width: usize,
    pixdim: usize,
    vox_offset: usize,
    scl_slope: usize,
    scl_inter: usize,
    descrip: usize,
    qform_code: usize,
    sform_code: usize,
    code_width: usize,
    quatern_b: usize,
    srow_x: usize,
    float_width: usize,
    xyzt_units: usize,
}

const LAYOUT_V1: Layout = Layout {
    datatype: 70,
    dim: 40,
    dim_width: 2,
    pixdim: 76,
    vox_offset: 108,
    scl_slope: 112,
    scl_inter: 116,
    descrip: 148,
    qform_code: 252,
    sform_code: 254,
    code_width: 2,
    quatern_b: 256,
    srow_x: 280,
    float_width: 4,
    xyzt_units: 123,
};

const LAYOUT_V2: Layout = Layout {
    datatype: 12,
    dim: 16,
    dim_width: 8,
    pixdim: 104,
    vox_offset: 168,
    scl_slope: 176,
    scl_inter: 184,
    descrip: 240,
    qform_code: 344,
    sform_code: 348,
    code_width: 4,
    quatern_b: 352,
    srow_x: 400,
    float_width: 8,
    xyzt_units: 500,
};

/// Recognise the version and byte order from the first four bytes (`sizeof_hdr`).
pub fn detect_version(first4: [u8; 4]) -> Option<(NiftiVersion, bool)> {
    match (i32::from_le_bytes(first4), i32::from_be_bytes(first4)) {
        (348, _) => Some((NiftiVersion::Nifti1, true)),
        (540, _) => Some((NiftiVersion::Nifti2, true)),
        (_, 348) => Some((NiftiVersion::Nifti1, false)),
        (_, 540) => Some((NiftiVersion::Nifti2, false)),
        _ => None,
    }
}

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

    /// Number of voxels in the 3-D volume.
    pub fn voxel_count(&self) -> u64 {
        self.shape.iter().map(|&d| d as u64).product()
    }

    /// Volume of one voxel in millilitres (spacing in mm, 1 ml = 1000 mm³).
    pub fn voxel_volume_ml(&self) -> f64 {
        self.spacing.iter().product::<f64>() / 1000.0
    }

    /// Axis codes as nibabel's `aff2axcodes(img.affine)`, e.g. `['R','A','S']`;
    /// `'?'` for an axis nibabel reports as `None` (degenerate affine).
    pub fn orientation(&self) -> [char; 3] {
        orientation::axcodes(&self.affine)
    }

    /// Bytes of voxel data the header promises.
    pub fn data_bytes(&self) -> u64 {
        self.voxel_count() * self.datatype.size_bytes() as u64
    }

    /// True when both transforms are present and differ beyond [`SFORM_QFORM_TOLERANCE`].
    pub fn sform_qform_disagree(&self) -> bool {
        self.sform_qform_max_abs_diff
            .is_some_and(|d| d.is_nan() || d > SFORM_QFORM_TOLERANCE)
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

/// The refusal of the header half of a .hdr/.img pair: pair magic, and the voxels
/// not in this file (`vox_offset` inside the header, or the file ends before them).
pub(crate) fn pair_header(path: &Path, version: NiftiVersion) -> NiftiError {
    NiftiError::NotNiftiFile {
        path: path.to_path_buf(),
        what: format!(
            "this is the header half of a {version} .hdr/.img pair (its voxels are in the matching .img file): pass the .img with it or convert to .nii (e.g. with nibabel); only single-file .nii/.nii.gz images are read"
        ),
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

fn identity() -> Affine {
    let mut a = [[0.0; 4]; 4];
    for (i, row) in a.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    a
}

fn max_abs_diff(a: &Affine, b: &Affine) -> f64 {
    let mut worst: f64 = 0.0;
    for (ra, rb) in a.iter().zip(b) {
        for (x, y) in ra.iter().zip(rb) {
            let d = (x - y).abs();
            // NaN must count as disagreement, so it wins over any number.
            if d.is_nan() || d > worst {
                worst = d;
            }
        }
    }
    worst
}

/// The inputs of the qform, already fixed as nibabel fixes them.
pub(crate) struct QformParams {
    pub bcd: [f64; 3],
    pub offset: [f64; 3],
    pub pixdim: [f64; 3],
    pub qfac: f64,
}

/// nibabel's `get_qform`: `fillpositive` (w from b, c, d; threshold 3 float32 eps)
/// then `quat2mat`, columns scaled by pixdim with the z one multiplied by qfac.
pub(crate) fn qform_affine(p: &QformParams) -> Result<Affine, String> {
    // nibabel's Nifti1Header.quaternion_threshold, also used for NIfTI-2.
    let threshold = 3.0 * f64::from(f32::EPSILON);
    let [x, y, z] = p.bcd;
    let w2 = 1.0 - (x * x + y * y + z * z);
    if !w2.is_finite() {
        return Err(format!(
            "quaternion (b, c, d) = ({x}, {y}, {z}) is not finite"
        ));
    }
    let w = if w2.abs() < threshold {
        0.0
    } else if w2 < 0.0 {
        return Err(format!(
            "quaternion (b, c, d) = ({x}, {y}, {z}) has b²+c²+d² > 1, so it is not a rotation"
        ));
    } else {
        w2.sqrt()
    };
    let rotation = quat2mat([w, x, y, z]);
    let scale = [p.pixdim[0], p.pixdim[1], p.pixdim[2] * p.qfac];
    let mut a = identity();
    for r in 0..3 {
        for c in 0..3 {
            a[r][c] = rotation[r][c] * scale[c];
        }
        a[r][3] = p.offset[r];
    }
    Ok(a)
}

/// nibabel's `quaternions.quat2mat` (accepts non-unit quaternions).
fn quat2mat(q: [f64; 4]) -> [[f64; 3]; 3] {
    let [w, x, y, z] = q;
    let nq = w * w + x * x + y * y + z * z;
    if nq < f64::EPSILON {
        return [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    }
    let s = 2.0 / nq;
    let (xs, ys, zs) = (x * s, y * s, z * s);
    let (wx, wy, wz) = (w * xs, w * ys, w * zs);
    let (xx, xy, xz) = (x * xs, x * ys, x * zs);
    let (yy, yz, zz) = (y * ys, y * zs, z * zs);
    [
        [1.0 - (yy + zz), xy - wz, xz + wy],
        [xy + wz, 1.0 - (xx + zz), yz - wx],
        [xz - wy, yz + wx, 1.0 - (xx + yy)],
    ]
}

/// nibabel's `get_base_affine` (`shape_zoom_affine` with x flipped): the centre
/// of the volume at the origin, radiological x.
pub(crate) fn base_affine(shape: &[usize; 3], spacing: &[f64; 3]) -> Affine {
    let zooms = [-spacing[0], spacing[1], spacing[2]];
    let mut a = identity();
    for i in 0..3 {
        let origin = (shape[i] as f64 - 1.0) / 2.0;
        a[i][i] = zooms[i];
        a[i][3] = -origin * zooms[i];
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_affine_matches_nibabel_docstring() {
        // nibabel: shape (3, 5, 7), zooms (3, 2, 1) -> diag(-3, 2, 1), translation (3, -4, -3).
        let a = base_affine(&[3, 5, 7], &[3.0, 2.0, 1.0]);
        assert_eq!(a[0], [-3.0, 0.0, 0.0, 3.0]);
        assert_eq!(a[1], [0.0, 2.0, 0.0, -4.0]);
        assert_eq!(a[2], [0.0, 0.0, 1.0, -3.0]);
        assert_eq!(a[3], [0.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn quaternion_180_about_x() {
        let p = QformParams {
            bcd: [1.0, 0.0, 0.0],
            offset: [1.0, 2.0, 3.0],
            pixdim: [2.0, 3.0, 4.0],
            qfac: -1.0,
        };
        let a = qform_affine(&p).unwrap();
        assert_eq!(a[0][..3], [2.0, 0.0, 0.0]);
        assert_eq!(a[1][..3], [0.0, -3.0, 0.0]);
        assert_eq!(a[2][..3], [0.0, 0.0, 4.0]);
        assert_eq!([a[0][3], a[1][3], a[2][3]], [1.0, 2.0, 3.0]);
    }

    #[test]
    fn non_rotation_quaternion_is_refused() {
        let p = QformParams {
            bcd: [1.0, 1.0, 0.0],
            offset: [0.0; 3],
            pixdim: [1.0; 3],
            qfac: 1.0,
        };
        assert!(qform_affine(&p).unwrap_err().contains("not a rotation"));
    }

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

    #[test]
    fn version_detection_both_byte_orders() {
        assert_eq!(
            detect_version(348i32.to_le_bytes()),
            Some((NiftiVersion::Nifti1, true))
        );
        assert_eq!(
            detect_version(348i32.to_be_bytes()),
            Some((NiftiVersion::Nifti1, false))
        );
        assert_eq!(
            detect_version(540i32.to_le_bytes()),
            Some((NiftiVersion::Nifti2, true))
        );
        assert_eq!(
            detect_version(540i32.to_be_bytes()),
            Some((NiftiVersion::Nifti2, false))
        );
        assert_eq!(detect_version(*b"\x1f\x8b\x08\x00"), None);
    }
}

//! Writing a 3-D NIfTI-1 volume (`.nii.gz`): the one writer in the crate, for the
//! volume converted from a DICOM series.
//!
//! Why our own: the project reads NIfTI with its own nibabel-faithful reader (see the
//! module docs), and the only crate writer (`nifti`) needs `ndarray` and writes to a
//! path in place; here the bytes are built in memory, and the caller writes them
//! with `crate::atomic`, so no half-written input ever reaches the upstream. The header
//! is the 348-byte NIfTI-1 layout; both the sform (exact affine) and the qform (its
//! rotation as a quaternion, when the affine's axes are orthogonal) are set with code
//! 1 (scanner), as dcm2niix does. Round trips are tested against our reader here and
//! against nibabel in `tests/py/test_dicom_*.py`.

use std::io::Write;

use super::Affine;

/// Voxel values of a volume to write, x fastest, then y, then z.
#[derive(Debug, Clone, PartialEq)]
pub enum Voxels {
    Int16(Vec<i16>),
    Float32(Vec<f32>),
}

impl Voxels {
    fn len(&self) -> usize {
        match self {
            Voxels::Int16(v) => v.len(),
            Voxels::Float32(v) => v.len(),
        }
    }

    /// (NIfTI datatype code, bits per voxel).
    fn code(&self) -> (i16, i16) {
        match self {
            Voxels::Int16(_) => (4, 16),
            Voxels::Float32(_) => (16, 32),
        }
    }

    /// numpy's name of the type ("int16", "float32").
    pub fn dtype(&self) -> &'static str {
        match self {
            Voxels::Int16(_) => "int16",
            Voxels::Float32(_) => "float32",
        }
    }

    fn extend_le(&self, out: &mut Vec<u8>) {
        match self {
            Voxels::Int16(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Voxels::Float32(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        }
    }
}

/// A volume ready to write: shape (x, y, z), the voxel-to-RAS affine, the voxels.
#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    pub shape: [usize; 3],
    pub affine: Affine,
    pub voxels: Voxels,
    /// Up to 79 ASCII characters for the header's `descrip` field.
    pub description: String,
}

/// Bytes of a `.nii` file (header, empty extension block, voxels).
pub fn nifti1_bytes(volume: &Volume) -> Result<Vec<u8>, String> {
    let [nx, ny, nz] = volume.shape;
    if nx * ny * nz != volume.voxels.len() {
        return Err(format!(
            "{} voxels for a {nx}x{ny}x{nz} volume",
            volume.voxels.len()
        ));
    }
    if volume
        .shape
        .iter()
        .any(|&n| n == 0 || n > i16::MAX as usize)
    {
        return Err(format!(
            "shape {:?} does not fit NIfTI-1 (each axis 1..=32767)",
            volume.shape
        ));
    }
    let mut out = header(volume);
    out.extend_from_slice(&[0u8; 4]);
    out.reserve(volume.voxels.len() * 4);
    volume.voxels.extend_le(&mut out);
    Ok(out)
}

/// Bytes of a `.nii.gz` file (the caller writes them with `crate::atomic`).
pub fn nii_gz_bytes(volume: &Volume) -> Result<Vec<u8>, String> {
    let raw = nifti1_bytes(volume)?;
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(raw.len() / 2),
        flate2::Compression::fast(),
    );
    gz.write_all(&raw).map_err(|e| e.to_string())?;
    gz.finish().map_err(|e| e.to_string())
}

fn put_i16(h: &mut [u8], at: usize, v: i16) {
    h[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn put_f32(h: &mut [u8], at: usize, v: f32) {
    h[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// The 348-byte NIfTI-1 header (single file, `n+1`, voxels at 352).
fn header(volume: &Volume) -> Vec<u8> {
    let mut h = vec![0u8; 348];
    h[0..4].copy_from_slice(&348i32.to_le_bytes());
    h[38] = b'r';
    let dims = [
        3,
        volume.shape[0],
        volume.shape[1],
        volume.shape[2],
        1,
        1,
        1,
        1,
    ];
    for (i, d) in dims.iter().enumerate() {
        put_i16(&mut h, 40 + 2 * i, *d as i16);
    }
    let (code, bits) = volume.voxels.code();
    put_i16(&mut h, 70, code);
    put_i16(&mut h, 72, bits);
    let a = &volume.affine;
    let zooms: Vec<f64> = (0..3)
        .map(|j| (0..3).map(|i| a[i][j] * a[i][j]).sum::<f64>().sqrt())
        .collect();
    let quaternion = quaternion_of(a, &zooms);
    let qfac = quaternion.map_or(1.0, |q| q.3);
    let pixdim = [qfac, zooms[0], zooms[1], zooms[2], 1.0, 1.0, 1.0, 1.0];
    for (i, p) in pixdim.iter().enumerate() {
        put_f32(&mut h, 76 + 4 * i, *p as f32);
    }
    put_f32(&mut h, 108, 352.0);
    put_f32(&mut h, 112, 1.0); // scl_slope: values are stored as they are
    h[123] = 2; // xyzt_units: mm
    let descrip: Vec<u8> = volume
        .description
        .bytes()
        .filter(u8::is_ascii)
        .take(79)
        .collect();
    h[148..148 + descrip.len()].copy_from_slice(&descrip);
    if let Some((b, c, d, _)) = quaternion {
        put_i16(&mut h, 252, 1);
        for (i, v) in [b, c, d, a[0][3], a[1][3], a[2][3]].iter().enumerate() {
            put_f32(&mut h, 256 + 4 * i, *v as f32);
        }
    }
    put_i16(&mut h, 254, 1);
    for (row, at) in a.iter().take(3).zip([280, 296, 312]) {
        for (col, v) in row.iter().enumerate() {
            put_f32(&mut h, at + 4 * col, *v as f32);
        }
    }
    h[344..348].copy_from_slice(b"n+1\0");
    h
}

/// The qform of `affine`: quaternion (b, c, d) and qfac, as NIfTI's
/// `nifti_mat44_to_quatern` computes them for an orthonormal rotation. `None` when
/// the axes are not orthogonal (within 1e-4), where no quaternion can say it; the
/// sform then stands alone.
fn quaternion_of(affine: &Affine, zooms: &[f64]) -> Option<(f64, f64, f64, f64)> {
    if zooms.iter().any(|z| *z <= 0.0 || !z.is_finite()) {
        return None;
    }
    let mut r = [[0.0f64; 3]; 3];
    for (i, row) in r.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = affine[i][j] / zooms[j];
        }
    }
    let dot = |p: usize, q: usize| (0..3).map(|i| r[i][p] * r[i][q]).sum::<f64>();
    if [dot(0, 1), dot(0, 2), dot(1, 2)]
        .iter()
        .any(|d| d.abs() > 1e-4)
    {
        return None;
    }
    let det = r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1])
        - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
        + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]);
    let qfac = if det > 0.0 { 1.0 } else { -1.0 };
    if qfac < 0.0 {
        for row in r.iter_mut() {
            row[2] = -row[2];
        }
    }
    let (b, c, d) = rotation_to_quaternion(&r);
    Some((b, c, d, qfac))
}

/// (b, c, d) of the unit quaternion (a >= 0) of a proper rotation matrix.
fn rotation_to_quaternion(r: &[[f64; 3]; 3]) -> (f64, f64, f64) {
    let trace = r[0][0] + r[1][1] + r[2][2] + 1.0;
    let (a, b, c, d);
    if trace > 0.5 {
        a = 0.5 * trace.sqrt();
        b = 0.25 * (r[2][1] - r[1][2]) / a;
        c = 0.25 * (r[0][2] - r[2][0]) / a;
        d = 0.25 * (r[1][0] - r[0][1]) / a;
    } else {
        let xd = 1.0 + r[0][0] - (r[1][1] + r[2][2]);
        let yd = 1.0 + r[1][1] - (r[0][0] + r[2][2]);
        let zd = 1.0 + r[2][2] - (r[0][0] + r[1][1]);
        if xd > 1.0 {
            b = 0.5 * xd.sqrt();
            c = 0.25 * (r[0][1] + r[1][0]) / b;
            d = 0.25 * (r[0][2] + r[2][0]) / b;
            a = 0.25 * (r[2][1] - r[1][2]) / b;
        } else if yd > 1.0 {
            c = 0.5 * yd.sqrt();
            b = 0.25 * (r[0][1] + r[1][0]) / c;
            d = 0.25 * (r[1][2] + r[2][1]) / c;
            a = 0.25 * (r[0][2] - r[2][0]) / c;
        } else {
            d = 0.5 * zd.sqrt();
            b = 0.25 * (r[0][2] + r[2][0]) / d;
            c = 0.25 * (r[1][2] + r[2][1]) / d;
            a = 0.25 * (r[1][0] - r[0][1]) / d;
        }
    }
    if a < 0.0 {
        (-b, -c, -d)
    } else {
        (b, c, d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nifti::header::DataType;
    use crate::nifti::{AffineSource, VolumeReader};

    fn roundtrip(affine: Affine, voxels: Voxels) -> (crate::nifti::Header, Vec<f64>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.nii.gz");
        let volume = Volume {
            shape: [3, 2, 2],
            affine,
            voxels,
            description: "test".into(),
        };
        std::fs::write(&path, nii_gz_bytes(&volume).unwrap()).unwrap();
        let mut reader = VolumeReader::open(&path).unwrap();
        let header = reader.header().clone();
        let mut all = Vec::new();
        let mut slice = Vec::new();
        while reader.read_slice(&mut slice).unwrap() {
            all.extend_from_slice(&slice);
        }
        (header, all)
    }

    #[test]
    fn an_oblique_float_volume_reads_back_with_its_affine_and_values() {
        let (s, c) = (30f64.to_radians().sin(), 30f64.to_radians().cos());
        // Rotation about z by 30 degrees, zooms 0.7, 0.8, 2.5, RAS offsets.
        let affine = [
            [0.7 * c, -0.8 * s, 0.0, -100.5],
            [0.7 * s, 0.8 * c, 0.0, 20.25],
            [0.0, 0.0, 2.5, -30.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let values: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 1024.25).collect();
        let (h, read) = roundtrip(affine, Voxels::Float32(values.clone()));
        assert_eq!(h.shape, [3, 2, 2]);
        assert_eq!(h.datatype, DataType::Float32);
        assert_eq!(h.affine_source, AffineSource::Sform);
        for (got, want) in h.affine.iter().zip(&affine).take(3) {
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 1e-4, "{got:?} vs {want:?}");
            }
        }
        assert!(
            !h.sform_qform_disagree(),
            "the qform says what the sform says"
        );
        let expected: Vec<f64> = values.iter().map(|v| *v as f64).collect();
        assert_eq!(read, expected);
    }

    #[test]
    fn int16_volumes_and_flipped_axes_keep_their_sign() {
        // LPS->RAS of an axial series: x and y negated; a left-handed affine (qfac -1).
        let affine = [
            [-0.5, 0.0, 0.0, 10.0],
            [0.0, -0.5, 0.0, 20.0],
            [0.0, 0.0, -3.0, 30.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let values: Vec<i16> = (0..12).map(|i| i * 100 - 1024).collect();
        let (h, read) = roundtrip(affine, Voxels::Int16(values.clone()));
        assert_eq!(h.datatype, DataType::Int16);
        assert_eq!(h.qform_code, 1);
        assert!(!h.sform_qform_disagree());
        assert_eq!(h.spacing, [0.5, 0.5, 3.0]);
        assert_eq!(read, values.iter().map(|v| *v as f64).collect::<Vec<_>>());
    }

    #[test]
    fn a_wrong_voxel_count_is_refused() {
        let volume = Volume {
            shape: [2, 2, 2],
            affine: [
                [1.0, 0.0, 0.0, 0.0],
                [0.0, 1.0, 0.0, 0.0],
                [0.0, 0.0, 1.0, 0.0],
                [0.0; 4],
            ],
            voxels: Voxels::Int16(vec![0; 7]),
            description: String::new(),
        };
        assert!(nifti1_bytes(&volume).unwrap_err().contains("7 voxels"));
    }
}

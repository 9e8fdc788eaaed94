//! Errors of the NIfTI reader. Every variant carries the file's path so that a
//! message reaching a user (or an evidence document) always says *which* file
//! is at fault, what is wrong with it and what to do about it.

use std::path::PathBuf;

/// What went wrong reading a NIfTI file.
#[derive(Debug, thiserror::Error)]
pub enum NiftiError {
    /// The operating system refused to open or read the file.
    #[error("{}: cannot read: {source} (check the path exists and is readable)", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The header has a NIfTI size but not a single-file NIfTI-1/NIfTI-2 image's
    /// magic (Analyze 7.5, damaged magic). Files that are not NIfTI at all are
    /// [`NiftiError::NotNiftiFile`].
    #[error("{}: not a NIfTI-1/NIfTI-2 image: {reason} (expected a .nii or .nii.gz file)", path.display())]
    NotNifti { path: PathBuf, reason: String },

    /// The file is not NIfTI at all, and `what` says what it is instead (DICOM,
    /// MINC, MGH, PAR/REC, text, the data half of a pair...) and how to convert it.
    /// Never shows the file's bytes. Same [`NiftiError::kind`] as `NotNifti`.
    #[error("{}: {what}", path.display())]
    NotNiftiFile { path: PathBuf, what: String },

    /// The header is recognisably NIfTI but inconsistent or unusable.
    #[error("{}: invalid NIfTI header: {problem} (the file is corrupt or was written by a non-conforming tool)", path.display())]
    InvalidHeader { path: PathBuf, problem: String },

    /// A valid NIfTI feature this reader deliberately does not handle.
    #[error("{}: unsupported NIfTI content: {what} (convert the image to a scalar integer or float type, e.g. with nibabel)", path.display())]
    Unsupported { path: PathBuf, what: String },

    /// The image is not a single 3-D volume.
    #[error("{}: not a 3-D volume: shape {shape:?} ({hint})", path.display())]
    NotThreeD {
        path: PathBuf,
        shape: Vec<usize>,
        hint: String,
    },

    /// The header claims a size beyond the documented limits (absurd or hostile).
    #[error(
        "{}: image too large: {detail} (limits: {} voxels per slice, {} voxels in all, voxels starting within {} MiB; the header is corrupt or hostile)",
        path.display(),
        crate::nifti::MAX_SLICE_VOXELS,
        crate::nifti::MAX_TOTAL_VOXELS,
        crate::nifti::MAX_VOX_OFFSET >> 20
    )]
    TooLarge { path: PathBuf, detail: String },

    /// The voxel data (or the header) ends before what the header claims.
    #[error("{}: truncated: {detail} (the file was cut short; copy or download it again)", path.display())]
    Truncated { path: PathBuf, detail: String },

    /// The gzip stream is corrupt (bad header, bad deflate data, CRC mismatch).
    #[error("{}: corrupt gzip stream: {detail} (the .nii.gz is damaged; re-create or re-download it)", path.display())]
    Gzip { path: PathBuf, detail: String },
}

impl NiftiError {
    /// The file the error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            NiftiError::Io { path, .. }
            | NiftiError::NotNifti { path, .. }
            | NiftiError::NotNiftiFile { path, .. }
            | NiftiError::InvalidHeader { path, .. }
            | NiftiError::Unsupported { path, .. }
            | NiftiError::NotThreeD { path, .. }
            | NiftiError::TooLarge { path, .. }
            | NiftiError::Truncated { path, .. }
            | NiftiError::Gzip { path, .. } => path,
        }
    }

    /// A short stable name for the kind of problem (for evidence documents and tests).
    pub fn kind(&self) -> &'static str {
        match self {
            NiftiError::Io { .. } => "io",
            NiftiError::NotNifti { .. } | NiftiError::NotNiftiFile { .. } => "not_nifti",
            NiftiError::InvalidHeader { .. } => "invalid_header",
            NiftiError::Unsupported { .. } => "unsupported",
            NiftiError::NotThreeD { .. } => "not_3d",
            NiftiError::TooLarge { .. } => "too_large",
            NiftiError::Truncated { .. } => "truncated",
            NiftiError::Gzip { .. } => "gzip",
        }
    }
}

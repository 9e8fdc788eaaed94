//! Where each header field sits: the byte offsets and widths of NIfTI-1 and NIfTI-2,
//! and typed reads of those bytes in the file's byte order. Kept apart so the parser
//! reads fields by name and never by number.

/// Typed access to header bytes in the file's byte order.
pub(super) struct Fields<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) little_endian: bool,
}

impl Fields<'_> {
    pub(super) fn array<const N: usize>(&self, offset: usize) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&self.bytes[offset..offset + N]);
        a
    }
    pub(super) fn i16(&self, offset: usize) -> i64 {
        let a = self.array::<2>(offset);
        i64::from(if self.little_endian {
            i16::from_le_bytes(a)
        } else {
            i16::from_be_bytes(a)
        })
    }
    pub(super) fn i32(&self, offset: usize) -> i64 {
        let a = self.array::<4>(offset);
        i64::from(if self.little_endian {
            i32::from_le_bytes(a)
        } else {
            i32::from_be_bytes(a)
        })
    }
    pub(super) fn i64(&self, offset: usize) -> i64 {
        let a = self.array::<8>(offset);
        if self.little_endian {
            i64::from_le_bytes(a)
        } else {
            i64::from_be_bytes(a)
        }
    }
    pub(super) fn f32(&self, offset: usize) -> f64 {
        let a = self.array::<4>(offset);
        f64::from(if self.little_endian {
            f32::from_le_bytes(a)
        } else {
            f32::from_be_bytes(a)
        })
    }
    pub(super) fn f64(&self, offset: usize) -> f64 {
        let a = self.array::<8>(offset);
        if self.little_endian {
            f64::from_le_bytes(a)
        } else {
            f64::from_be_bytes(a)
        }
    }
}

/// Byte offsets of the fields we use, per version; integer and float widths differ too.
pub(super) struct Layout {
    pub(super) datatype: usize,
    pub(super) dim: usize,
    pub(super) dim_width: usize,
    pub(super) pixdim: usize,
    pub(super) vox_offset: usize,
    pub(super) scl_slope: usize,
    pub(super) scl_inter: usize,
    pub(super) descrip: usize,
    pub(super) qform_code: usize,
    pub(super) sform_code: usize,
    pub(super) code_width: usize,
    pub(super) quatern_b: usize,
    pub(super) srow_x: usize,
    pub(super) float_width: usize,
    pub(super) xyzt_units: usize,
}

pub(super) const LAYOUT_V1: Layout = Layout {
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

pub(super) const LAYOUT_V2: Layout = Layout {
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

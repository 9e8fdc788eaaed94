//! Reading just the planes a picture needs, in one streamed pass.
//!
//! Why not the volume: a label map and its CT are each ~400 MiB once decoded. A
//! plane through voxel axis z is one slice; through y it is one row of every slice;
//! through x one column of every slice. So one forward pass over the z-slices (the
//! order the file stores them) fills every wanted plane, and memory is the planes
//! (a few hundred KiB each) plus the slices in flight.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::inspect::stream::SliceStream;
use crate::nifti::{NiftiError, VolumeReader};

/// One plane: voxel axis `axis` held at `index`. Values are indexed by the two
/// other voxel axes (`p` < `q`), `p` fastest.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plane {
    pub axis: usize,
    pub index: usize,
    /// Sizes along the two free voxel axes, ascending axis order.
    pub dims: [usize; 2],
    pub values: Vec<f32>,
}

impl Plane {
    fn new(axis: usize, index: usize, shape: [usize; 3]) -> Plane {
        let dims = match axis {
            0 => [shape[1], shape[2]],
            1 => [shape[0], shape[2]],
            _ => [shape[0], shape[1]],
        };
        Plane {
            axis,
            index,
            dims,
            values: vec![f32::NAN; dims[0] * dims[1]],
        }
    }

    /// The value at a voxel of the plane (its coordinate along `axis` is ignored).
    pub(crate) fn at(&self, voxel: [usize; 3]) -> f32 {
        let (p, q) = match self.axis {
            0 => (voxel[1], voxel[2]),
            1 => (voxel[0], voxel[2]),
            _ => (voxel[0], voxel[1]),
        };
        self.values[q * self.dims[0] + p]
    }

    /// Copy what z-slice `z` (x fastest, `nx` wide) holds of this plane.
    fn take(&mut self, z: usize, slice: &[f64], nx: usize) {
        match self.axis {
            2 if z == self.index => {
                for (dst, src) in self.values.iter_mut().zip(slice) {
                    *dst = *src as f32;
                }
            }
            2 => {}
            1 => {
                let row = &slice[self.index * nx..(self.index + 1) * nx];
                let out = &mut self.values[z * nx..(z + 1) * nx];
                for (dst, src) in out.iter_mut().zip(row) {
                    *dst = *src as f32;
                }
            }
            _ => {
                let ny = self.dims[0];
                for y in 0..ny {
                    self.values[z * ny + y] = slice[y * nx + self.index] as f32;
                }
            }
        }
    }
}

/// The planes of one volume, by (axis, index).
pub(crate) type Planes = BTreeMap<(usize, usize), Plane>;

/// Why the planes could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PlaneError {
    #[error(transparent)]
    Nifti(#[from] NiftiError),
    #[error("{}: cannot start a reader thread: {source}", path.display())]
    Thread {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "image {}: shape {image:?} differs from the mask's {mask:?}; pass the image the mask \
         was segmented from (the same voxel grid), or leave --image out",
        path.display()
    )]
    Grid {
        path: PathBuf,
        mask: [usize; 3],
        image: [usize; 3],
    },
    #[error("{}: the volume ended after {got} of {want} z-slices (re-create the file)", path.display())]
    Short {
        path: PathBuf,
        got: usize,
        want: usize,
    },
}

fn open(path: &Path) -> Result<SliceStream, PlaneError> {
    let reader = VolumeReader::open(path)?;
    SliceStream::spawn(reader).map_err(|source| PlaneError::Thread {
        path: path.to_path_buf(),
        source,
    })
}

/// Read `wanted` planes (voxel axis, index) of the mask, and of the image when given
/// (it must share the mask's shape), in one pass over both in lockstep.
pub(crate) fn read_planes(
    mask: &Path,
    image: Option<&Path>,
    wanted: &[(usize, usize)],
) -> Result<(Planes, Option<Planes>), PlaneError> {
    let mut mask_stream = open(mask)?;
    let shape = mask_stream.header().shape;
    let mut image_stream = match image {
        Some(path) => {
            let stream = open(path)?;
            if stream.header().shape != shape {
                return Err(PlaneError::Grid {
                    path: path.to_path_buf(),
                    mask: shape,
                    image: stream.header().shape,
                });
            }
            Some(stream)
        }
        None => None,
    };
    let fresh = || -> Planes {
        wanted
            .iter()
            .map(|&(axis, index)| ((axis, index), Plane::new(axis, index, shape)))
            .collect()
    };
    let mut mask_planes = fresh();
    let mut image_planes = image_stream.as_ref().map(|_| fresh());
    let nx = shape[0];
    for z in 0..shape[2] {
        feed(&mut mask_stream, z, shape[2], nx, &mut mask_planes)?;
        if let (Some(stream), Some(planes)) = (&mut image_stream, &mut image_planes) {
            feed(stream, z, shape[2], nx, planes)?;
        }
    }
    Ok((mask_planes, image_planes))
}

fn feed(
    stream: &mut SliceStream,
    z: usize,
    nz: usize,
    nx: usize,
    planes: &mut Planes,
) -> Result<(), PlaneError> {
    let path = stream.path().to_path_buf();
    let Some(slice) = stream.next_slice()? else {
        return Err(PlaneError::Short {
            path,
            got: z,
            want: nz,
        });
    };
    for plane in planes.values_mut() {
        plane.take(z, slice, nx);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_plane_takes_its_part_of_every_slice() {
        let shape = [3, 2, 2];
        // value = x + 10 y + 100 z
        let slices: Vec<Vec<f64>> = (0..2)
            .map(|z| {
                (0..6)
                    .map(|i| (i % 3) as f64 + 10.0 * (i / 3) as f64 + 100.0 * z as f64)
                    .collect()
            })
            .collect();
        let mut planes = [
            Plane::new(0, 2, shape),
            Plane::new(1, 1, shape),
            Plane::new(2, 1, shape),
        ];
        for (z, slice) in slices.iter().enumerate() {
            for p in &mut planes {
                p.take(z, slice, 3);
            }
        }
        for p in &planes {
            for x in 0..3 {
                for y in 0..2 {
                    for z in 0..2 {
                        let mut v = [x, y, z];
                        v[p.axis] = p.index;
                        let want = (v[0] + 10 * v[1] + 100 * v[2]) as f32;
                        assert_eq!(p.at(v), want, "plane {:?} at {v:?}", (p.axis, p.index));
                    }
                }
            }
        }
    }
}

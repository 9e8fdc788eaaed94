"""Generating DICOM series at test time with pydicom, and converting them with an
independent converter (SimpleITK) to compare ctmr-skill's conversion with.

Every series carries planted patient data (PLANTED_VALUES) so the tests can prove none
of it reaches an output. Voxel values are stored as int16/uint16 and rescaled with
RescaleSlope/RescaleIntercept, as scanners write them.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEG2000Lossless, MRImageStorage, generate_uid

# Identifying attributes planted in every generated file; none may appear in any output.
PLANTED_NAME = "Zzplanted^Quixotic"
PLANTED_ID = "PID-7734-QX"
PLANTED_BIRTH = "19230417"
PLANTED_VALUES = [PLANTED_NAME, "Zzplanted", "Quixotic", PLANTED_ID, PLANTED_BIRTH]

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


@dataclass
class SeriesSpec:
    """A series to write: `stored[k]` is slice k (rows x columns) in acquisition order."""

    rows: int = 24
    columns: int = 20
    slices: int = 12
    pixel_spacing: tuple[float, float] = (0.8, 0.7)  # (row spacing, column spacing)
    orientation: tuple[float, ...] = AXIAL
    origin: tuple[float, float, float] = (-8.5, -12.25, 40.0)
    slice_step: float = 2.5
    # Extra offsets (mm) along the normal per slice, to make spacing non-uniform.
    z_offsets: dict[int, float] = field(default_factory=dict)
    slope: float = 1.0
    intercept: float = -1024.0
    modality: str = "CT"
    description: str = "AXIAL TEST"
    series_uid: str = field(default_factory=generate_uid)
    study_uid: str = field(default_factory=generate_uid)
    transfer_syntax: str = ExplicitVRLittleEndian
    signed: bool = False
    seed: int = 0

    def normal(self) -> np.ndarray:
        r = np.array(self.orientation[:3])
        c = np.array(self.orientation[3:])
        return np.cross(r, c)

    def position(self, k: int) -> np.ndarray:
        along = k * self.slice_step + self.z_offsets.get(k, 0.0)
        return np.array(self.origin) + along * self.normal()

    def stored(self) -> np.ndarray:
        """(slices, rows, columns) stored values: a smooth pattern plus noise, distinct per slice."""
        rng = np.random.default_rng(self.seed)
        k, j, i = np.meshgrid(np.arange(self.slices), np.arange(self.rows), np.arange(self.columns), indexing="ij")
        base = 1024 + 40 * k + 7 * j - 3 * i + rng.integers(0, 50, size=k.shape)
        if self.signed:
            base = base - 1500
        return base.astype(np.int16 if self.signed else np.uint16)


def _dataset(spec: SeriesSpec, k: int, pixels: np.ndarray, path: Path) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage if spec.modality == "CT" else MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = spec.transfer_syntax
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = PLANTED_NAME
    ds.PatientID = PLANTED_ID
    ds.PatientBirthDate = PLANTED_BIRTH
    ds.Modality = spec.modality
    ds.SeriesDescription = spec.description
    ds.StudyInstanceUID = spec.study_uid
    ds.SeriesInstanceUID = spec.series_uid
    ds.InstanceNumber = k + 1
    # DS values hold at most 16 characters: 6 decimals, as scanners write them.
    ds.ImagePositionPatient = [round(float(x), 6) for x in spec.position(k)]
    ds.ImageOrientationPatient = [round(float(x), 6) for x in spec.orientation]
    ds.PixelSpacing = [float(x) for x in spec.pixel_spacing]
    ds.SliceThickness = 9.99  # deliberately wrong: spacing must come from the positions
    ds.Rows, ds.Columns = spec.rows, spec.columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if spec.signed else 0
    ds.RescaleSlope = spec.slope
    ds.RescaleIntercept = spec.intercept
    ds.PixelData = pixels.tobytes()
    return ds


def write_series(directory: Path, spec: SeriesSpec, reverse_names: bool = False, prefix: str = "IM") -> list[Path]:
    """Write one file per slice; with `reverse_names` the file names run against the
    slice order (so neither names nor InstanceNumber order the slices)."""
    directory.mkdir(parents=True, exist_ok=True)
    stored = spec.stored()
    paths = []
    for k in range(spec.slices):
        number = spec.slices - 1 - k if reverse_names else k
        path = directory / f"{prefix}{number:04d}.dcm"
        ds = _dataset(spec, k, stored[k], path)
        if spec.transfer_syntax == JPEG2000Lossless:
            # Encapsulated (compressed) pixel data: the bytes need not decode, the
            # converter must refuse by the transfer syntax before trying.
            ds.PixelData = encapsulate([stored[k].tobytes()[:64]])
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def zip_directory(directory: Path, zip_path: Path, under: str = "export") -> Path:
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                z.write(path, f"{under}/{path.relative_to(directory)}")
    return zip_path


def simpleitk_reference(directory: Path, series_uid: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(RAS affine, voxels as (x, y, z) float64) of the series as SimpleITK reads it
    (GDCM sorts the files along the normal; the image is LPS, so x and y are negated)."""
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    files = reader.GetGDCMSeriesFileNames(str(directory), series_uid or "")
    reader.SetFileNames(files)
    image = reader.Execute()
    direction = np.array(image.GetDirection()).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = direction @ np.diag(image.GetSpacing())
    affine[:3, 3] = image.GetOrigin()
    affine[:2, :] *= -1  # LPS -> RAS
    voxels = np.transpose(sitk.GetArrayFromImage(image).astype(np.float64), (2, 1, 0))
    return affine, voxels


def files_mentioning(root: Path, needles: list[str]) -> list[str]:
    """Every file under `root` (recursively) whose bytes, raw or gunzipped, contain a needle."""
    import gzip

    hits = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            try:
                data = gzip.decompress(data)
            except OSError:
                pass
        hits += [f"{path}: {n}" for n in needles if n.encode() in data]
    hits += [f"file name {p}: {n}" for p in root.rglob("*") for n in needles if n in p.name]
    return hits


def oblique_orientation(about_x_deg: float, about_y_deg: float) -> tuple[float, ...]:
    """ImageOrientationPatient of an axial plane rotated about x, then about y."""
    ax, ay = np.radians(about_x_deg), np.radians(about_y_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rotation = ry @ rx
    return tuple(float(v) for v in (*rotation @ [1, 0, 0], *rotation @ [0, 1, 0]))


def sorted_listing_sha256(files: list[Path], names: list[str], spec: SeriesSpec) -> str:
    """The `files_sha256` ctmr-skill records: one `<sha256>  <name>` line per slice, in
    the order of the slices along the normal (independently recomputed)."""
    import hashlib

    import pydicom as _p

    normal = np.cross(np.array(spec.orientation[:3]), np.array(spec.orientation[3:]))
    along = [float(np.dot(np.array(_p.dcmread(f).ImagePositionPatient, dtype=float), normal)) for f in files]
    lines = "".join(
        f"{hashlib.sha256(files[i].read_bytes()).hexdigest()}  {names[i]}\n" for i in np.argsort(along, kind="stable")
    )
    return hashlib.sha256(lines.encode()).hexdigest()

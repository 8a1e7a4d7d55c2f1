"""Small, valid DICOM files made with pydicom, for sources, emulators and transfer tests."""

from __future__ import annotations

from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, CTImageStorage, ExplicitVRLittleEndian


def make_instance(
    path: Path,
    *,
    patient: str,
    study: str,
    series: str,
    sop: str,
    modality: str = "CT",
    body_part: str | None = "CHEST",
    pixels: int = 64,
) -> Path:
    """Write one CT instance with a ``pixels`` x ``pixels`` 16-bit image; returns ``path``."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop
    ds.PatientID = patient
    ds.PatientName = f"Test^{patient}"
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.Modality = modality
    if body_part:
        ds.BodyPartExamined = body_part
    ds.StudyDate = "20240101"
    ds.SeriesNumber = 1
    ds.InstanceNumber = int(sop.rsplit(".", 1)[-1]) % 10_000
    ds.Rows = ds.Columns = pixels
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = bytes(pixels * pixels * 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def make_series(
    root: Path, patient: str, study: str, series: str, count: int, **kwargs: object
) -> list[Path]:
    return [
        make_instance(
            root / patient / series / f"{i:04d}.dcm",
            patient=patient,
            study=study,
            series=series,
            sop=f"{series}.{i + 1}",
            **kwargs,  # type: ignore[arg-type]
        )
        for i in range(count)
    ]

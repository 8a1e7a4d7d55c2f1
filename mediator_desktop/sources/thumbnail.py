"""A series' preview from one of its DICOM instances: the middle frame, windowed for people (the
instance's own window for CT/MR, else the 1st to 99th percentile), at most ``SIZE`` pixels a side,
as PNG; a slide's JPEG frame as it is (the smallest instance of a slide is its thumbnail level).

Only one frame is decoded, so an enormous multi-frame instance costs what one frame costs. What
cannot be decoded raises ``SourceError`` with the reason, for the placeholder.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any

from mediator_desktop.core.errors import SourceError

#: The longest side of a preview, in pixels.
SIZE = 256
#: Transfer syntaxes whose frames are JPEG files as they are (baseline and extended).
_JPEG = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"}
#: Frames larger than this many pixels are not decoded (a preview must stay cheap).
MAX_PIXELS = 64_000_000


def png(pixels: Any) -> bytes:
    """A PNG of an 8-bit numpy array: rows x columns (grey) or rows x columns x 3 (RGB)."""
    import numpy as np

    data = np.ascontiguousarray(pixels, dtype=np.uint8)
    rows, cols = data.shape[:2]
    colour = 2 if data.ndim == 3 else 0
    raw = b"".join(b"\x00" + data[r].tobytes() for r in range(rows))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", cols, rows, 8, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


def _number(value: Any) -> float | None:
    """A DICOM DS value (maybe multi-valued: the first) as a float."""
    if value is None or value == "":
        return None
    try:
        return float(
            value[0] if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else value
        )
    except (TypeError, ValueError, IndexError):
        return None


def windowed(frame: Any, ds: Any) -> Any:
    """``frame`` (stored values) as 8-bit grey or RGB: rescaled to modality values, windowed by
    the instance's own window when it has one, else stretched between its 1st and 99th percentile."""
    import numpy as np

    if frame.ndim == 3:  # colour
        if frame.dtype != np.uint8:
            top = float(frame.max()) or 1.0
            frame = frame.astype(np.float32) * (255.0 / top)
        return frame.astype(np.uint8)
    values = frame.astype(np.float32)
    slope, intercept = _number(ds.get("RescaleSlope")), _number(ds.get("RescaleIntercept"))
    values = values * (slope if slope is not None else 1.0) + (intercept or 0.0)
    centre, width = _number(ds.get("WindowCenter")), _number(ds.get("WindowWidth"))
    if centre is not None and width is not None and width > 1:
        low, high = centre - width / 2, centre + width / 2
    else:
        low, high = (float(v) for v in np.percentile(values, (1, 99)))
    if high <= low:
        high = low + 1
    out = np.clip((values - low) * (255.0 / (high - low)), 0, 255).astype(np.uint8)
    if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        out = 255 - out
    return out


def shrink(image: Any, size: int = SIZE) -> Any:
    """Every n-th pixel, so the longest side is at most ``size`` (cheap, fine for a thumbnail)."""
    step = max(1, -(-max(image.shape[:2]) // size))
    return image[::step, ::step]


def render(source: bytes | Path, size: int = SIZE) -> bytes:
    """A preview of one DICOM instance: PNG bytes, or a slide's JPEG frame as it is.

    Raises:
        SourceError: the file is not DICOM, has no image, or its pixels cannot be decoded here.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Large values (the pixel data) stay in the file until a frame is read from it.
            ds = pydicom.dcmread(
                io.BytesIO(source) if isinstance(source, bytes) else source, defer_size="256 KB"
            )
    except FileNotFoundError:
        raise  # the source says which series is gone
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, AttributeError) as exc:
        raise SourceError(f"not readable as DICOM ({type(exc).__name__})") from None
    if "PixelData" not in ds:
        modality = str(ds.get("Modality", "")) or "this"
        raise SourceError(f"a {modality} instance holds no image")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    meta = getattr(ds, "file_meta", None)
    syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if syntax in _JPEG:  # a slide's tiles (or any JPEG): one frame as it is, Qt decodes it
        from pydicom.encaps import generate_frames

        try:
            return next(generate_frames(ds.PixelData, number_of_frames=frames))
        except (StopIteration, ValueError) as exc:
            raise SourceError(f"its JPEG frames are damaged ({exc})") from None
    if rows * cols > MAX_PIXELS:
        raise SourceError(f"its frames are too large to preview ({cols:,} x {rows:,} pixels)")
    from pydicom.pixels.utils import pixel_array

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Only the middle frame is read and decoded, from the file itself.
            src = io.BytesIO(source) if isinstance(source, bytes) else source
            frame = pixel_array(src, index=frames // 2) if frames > 1 else pixel_array(src)
    except (NotImplementedError, RuntimeError):
        name = pydicom.uid.UID(syntax).name if syntax else "its encoding"
        raise SourceError(f"cannot decode {name} pixels here (no decoder installed for it)") from None
    except (ValueError, AttributeError, KeyError, TypeError) as exc:
        raise SourceError(f"its pixel data is damaged ({type(exc).__name__}: {str(exc)[:120]})") from None
    if frame.ndim == 3 and frame.shape[-1] not in (3, 4):
        frame = frame[frame.shape[0] // 2]  # a volume decoded whole: its middle slice
    if frame.ndim == 3:
        frame = frame[..., :3]
    return png(shrink(windowed(frame, ds), size))

"""Names of tree entries as imaging people read them, from the metadata the archives give.

A study reads as its date and description ("2004-03-12 CT CHEST W CONTRAST"), a series as its
modality, number, description and image count ("CT 3: 1.25mm lung, 245 images"), a patient as its
ID with age and sex where known ("LIDC-IDRI-0001 (67 y, F)"). The UIDs stay the keys: views show
them in a column and a tooltip. Sources put the metadata in ``BrowseItem.details`` under the DICOM
keywords below; ``readable`` turns an item into its label, so the app and the CLI say the same.

``LabelBook`` remembers the labels of what was browsed, so a set's tree (which holds keys only)
shows them too.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping

from mediator_desktop.core.source import BrowseItem

#: The ``BrowseItem.details`` keys labels are made of (DICOM keywords; ``ImageCount`` is TCIA's).
STUDY_DATE, STUDY_DESCRIPTION = "StudyDate", "StudyDescription"
MODALITY, SERIES_NUMBER, SERIES_DESCRIPTION, IMAGES = (
    "Modality",
    "SeriesNumber",
    "SeriesDescription",
    "ImageCount",
)
PATIENT_AGE, PATIENT_SEX = "PatientAge", "PatientSex"

_DICOM_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})")
_AGE = re.compile(r"0*(\d+)\s*([DWMY]?)", re.IGNORECASE)
_AGE_UNITS = {"D": "d", "W": "w", "M": "mo", "Y": "y", "": "y"}


def human_date(value: str | None) -> str:
    """``20040312`` (DICOM DA) or ``2004-03-12`` -> ``2004-03-12``; other text as it is."""
    text = (value or "").strip()
    match = _DICOM_DATE.fullmatch(text)
    return f"{match[1]}-{match[2]}-{match[3]}" if match else text


def human_age(value: str | None) -> str:
    """``067Y`` (DICOM AS) -> ``67 y``; ``6M`` -> ``6 mo``; other text as it is."""
    text = (value or "").strip()
    match = _AGE.fullmatch(text)
    return f"{int(match[1])} {_AGE_UNITS[match[2].upper()]}" if match else text


def _clean(value: object) -> str:
    return "" if value is None else " ".join(str(value).split())


def study_label(date: str | None, description: str | None) -> str:
    """``2004-03-12 CT CHEST W CONTRAST``; empty when neither is known."""
    return " ".join(p for p in (human_date(date), _clean(description)) if p)


def series_label(
    modality: str | None, number: str | int | None, description: str | None, images: int | str | None
) -> str:
    """``CT 3: 1.25mm lung, 245 images``; the parts that are known, empty when none is."""
    head = " ".join(p for p in (_clean(modality), _clean(number)) if p)
    tail = _clean(description)
    text = f"{head}: {tail}" if head and tail else head or tail
    count = _clean(images)
    if count.isdigit():
        n = int(count)
        text = (
            f"{text}, {n:,} image{'s' if n != 1 else ''}" if text else f"{n:,} image{'s' if n != 1 else ''}"
        )
    return text


def patient_label(patient_id: str, age: str | None, sex: str | None) -> str:
    """``LIDC-IDRI-0001 (67 y, F)``; the ID alone when neither age nor sex is known."""
    extra = ", ".join(p for p in (human_age(age), _clean(sex)) if p)
    return f"{patient_id} ({extra})" if extra else patient_id


def readable(item: BrowseItem) -> str:
    """The label of ``item`` from its details, by level; the source's own label (or the key) when
    its details say nothing readable."""
    details = dict(item.details)
    made = ""
    if item.level == "study":
        made = study_label(details.get(STUDY_DATE), details.get(STUDY_DESCRIPTION))
    elif item.level == "series":
        made = series_label(
            details.get(MODALITY),
            details.get(SERIES_NUMBER),
            details.get(SERIES_DESCRIPTION),
            details.get(IMAGES),
        )
    elif item.level in ("patient", "subject", "case") and (
        details.get(PATIENT_AGE) or details.get(PATIENT_SEX)
    ):
        made = patient_label(item.key, details.get(PATIENT_AGE), details.get(PATIENT_SEX))
    return made or item.label or item.key


def is_uid(key: str) -> bool:
    """Whether ``key`` looks like a DICOM UID (digits and dots): views then name the entry by its
    label and show the UID one column away."""
    return len(key) > 8 and key.count(".") >= 2 and all(c.isdigit() or c == "." for c in key)


class LabelBook:
    """Labels and details of what was browsed, by (source, path), the most recent ``capacity``.
    Thread-safe: workers fill it, the GUI thread reads it."""

    def __init__(self, capacity: int = 200_000) -> None:
        self._labels: OrderedDict[tuple[str, tuple[str, ...]], tuple[str, Mapping[str, str]]] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._labels)

    def remember(self, source_id: str, parent: tuple[str, ...], items: Iterable[BrowseItem]) -> None:
        """Remember the children ``items`` of ``parent`` in ``source_id``."""
        with self._lock:
            for item in items:
                key = (source_id, (*parent, item.key))
                self._labels[key] = (readable(item), dict(item.details))
                self._labels.move_to_end(key)
            while len(self._labels) > self._capacity:
                self._labels.popitem(last=False)

    def label(self, source_id: str, path: tuple[str, ...]) -> str | None:
        """The readable label of an entry, or None when it was never browsed."""
        with self._lock:
            known = self._labels.get((source_id, path))
        return None if known is None else known[0]

    def details(self, source_id: str, path: tuple[str, ...]) -> Mapping[str, str]:
        with self._lock:
            known = self._labels.get((source_id, path))
        return {} if known is None else known[1]

    def knows(self, source_id: str, path: tuple[str, ...]) -> bool:
        with self._lock:
            return (source_id, path) in self._labels


#: The app's labels: the archive browser fills it, the set view and the diff view read it.
LABELS = LabelBook()

"""A series' thumbnail next to a tree: made on a worker by its archive (``Previewing``), cached on
disk (``core.previews``) and in memory, decoded off the GUI thread. A series that cannot be
pictured shows a quiet placeholder with the reason ("No preview: JPEG 2000 cannot be decoded
here"), never a dialog.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Callable

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from mediator_desktop.core.errors import MediatorError
from mediator_desktop.core.previews import PreviewCache
from mediator_desktop.core.service import Archives
from mediator_desktop.ui.workers import Runner

#: ``Previewing.preview``.
Preview = Callable[[tuple[str, ...]], bytes | None]
#: Decoded previews kept in memory (a few hundred KB each at most).
REMEMBERED = 64
#: Python's thread switch interval while previews decode (seconds).
SWITCH_INTERVAL = 0.001
#: The side of the picture area, in pixels.
SIDE = 160


class PreviewWidget(QWidget):
    """The picture of the chosen series, or why there is none.

    Signals: shown(str): "image" once a picture is up, else the placeholder's reason.
    """

    shown = Signal(str)

    def __init__(
        self, archives: Archives, cache: PreviewCache | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("preview")
        self.archives = archives
        self.cache = cache
        # Decoding holds the GIL in bursts; with Python's default 5 ms switch interval the GUI
        # thread waited up to 300 ms for it while 200 previews decoded (bench/ui_latency.py).
        # 1 ms keeps it under its 50 ms goal; the whole app's threads share the setting.
        if sys.getswitchinterval() > SWITCH_INTERVAL:
            sys.setswitchinterval(SWITCH_INTERVAL)
        # Two workers: a slow archive does not hold up local files; stale requests are dropped.
        self.runner = Runner(self, workers=2, name="preview")
        self._memory: OrderedDict[tuple[str, tuple[str, ...]], QImage] = OrderedDict()
        self._wanted: tuple[str, tuple[str, ...]] | None = None
        self.picture = QLabel(self)
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.picture.setFixedSize(QSize(SIDE, SIDE))
        self.picture.setStyleSheet("QLabel { background: #202020; color: #c8c8c8; border-radius: 4px; }")
        self.picture.setAccessibleName("Series preview")
        self.picture.setWordWrap(True)
        self.caption = QLabel("", self)
        self.caption.setWordWrap(True)
        self.caption.setMaximumWidth(SIDE)
        self.caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.picture)
        layout.addWidget(self.caption)
        layout.addStretch(1)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Preferred)
        self.clear()

    @property
    def reason(self) -> str:
        """The placeholder's text (empty while a picture is shown)."""
        pixmap = self.picture.pixmap()
        return "" if pixmap is not None and not pixmap.isNull() else self.picture.text()

    def clear(self, text: str = "Choose a series to see a preview.") -> None:
        self._wanted = None
        self.picture.setPixmap(QPixmap())
        self.picture.setText(text)
        self.caption.setText("")

    def show_leaf(self, source_id: str, path: tuple[str, ...], caption: str = "") -> None:
        """Show the preview of the series at ``path`` (from memory at once, else from a worker)."""
        key = (source_id, path)
        self._wanted = key
        self.caption.setText(caption)
        known = self._memory.get(key)
        if known is not None:
            self._memory.move_to_end(key)
            self._put(known)
            return
        self.picture.setPixmap(QPixmap())
        self.picture.setText("Loading the preview…")
        self.runner.run(
            self.make,
            source_id,
            path,
            done=lambda result: self._arrived(key, result),
            failed=lambda error: self._failed(key, error),
        )

    def make(self, source_id: str, path: tuple[str, ...]) -> QImage | str:
        """The decoded picture, or the reason there is none. Called on a worker."""
        data = self.cache.get(source_id, path) if self.cache is not None else None
        if data is None:
            source = self.archives.get(source_id)
            preview: Preview | None = getattr(source, "preview", None)  # the ``Previewing`` protocol
            if not callable(preview):
                return f"{self.archives.title(source_id)} offers no previews."
            made = preview(path)
            if made is None:
                return "This series holds nothing to picture."
            data = bytes(made)
            if self.cache is not None:
                self.cache.put(source_id, path, data)
        image = QImage.fromData(data)
        if image.isNull():
            return "The archive's picture could not be decoded."
        if max(image.width(), image.height()) > SIDE:
            image = image.scaled(
                SIDE, SIDE, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
            )
        return image

    def _arrived(self, key: tuple[str, tuple[str, ...]], result: QImage | str) -> None:
        if isinstance(result, QImage):
            self._memory[key] = result
            while len(self._memory) > REMEMBERED:
                self._memory.popitem(last=False)
        if key != self._wanted:
            return  # another series was chosen meanwhile
        if isinstance(result, QImage):
            self._put(result)
        else:
            self._placeholder(result)

    def _failed(self, key: tuple[str, tuple[str, ...]], error: BaseException) -> None:
        if not isinstance(error, (MediatorError, OSError)):
            raise error  # a bug: the crash hook shows it
        if key == self._wanted:
            self._placeholder(str(error) or type(error).__name__)

    def _put(self, image: QImage) -> None:
        self.picture.setText("")
        self.picture.setPixmap(QPixmap.fromImage(image))
        self.shown.emit("image")

    def _placeholder(self, reason: str) -> None:
        text = f"No preview: {reason}"
        self.picture.setPixmap(QPixmap())
        self.picture.setText(text)
        self.picture.setToolTip(text)
        self.shown.emit(reason)

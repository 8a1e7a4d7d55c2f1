"""Small painted bar charts: a set's composition at a glance (series per modality, per archive, size
per collection) and a diff's (added, removed, changed). Plain QPainter, no QtCharts."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPaintEvent
from PySide6.QtWidgets import QHBoxLayout, QSizePolicy, QWidget

#: Bars drawn at most; the rest are summed into "others".
MAX_BARS = 6
BAR_COLOUR = QColor(52, 120, 200)


def top(values: Sequence[tuple[str, float]], most: int = MAX_BARS) -> list[tuple[str, float]]:
    """The largest ``most - 1`` values and "N others" summing the rest (all when they fit)."""
    ordered = sorted(values, key=lambda kv: (-kv[1], kv[0]))
    if len(ordered) <= most:
        return ordered
    rest = ordered[most - 1 :]
    return [*ordered[: most - 1], (f"{len(rest)} others", sum(v for _, v in rest))]


class BarChart(QWidget):
    """A titled horizontal bar chart of (label, value) pairs; ``text`` formats values."""

    def __init__(
        self,
        title: str,
        text: Callable[[float], str] = lambda v: f"{v:,.0f}",
        colour: QColor = BAR_COLOUR,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.title = title
        self.text = text
        self.colour = colour
        self.values: list[tuple[str, float]] = []
        self.setAccessibleName(title)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_values(self, values: Sequence[tuple[str, float]]) -> None:
        self.values = top(values)
        self.setToolTip("\n".join(f"{k}: {self.text(v)}" for k, v in values))
        self.updateGeometry()
        self.update()

    def _row(self) -> int:
        return QFontMetrics(self.font()).height() + 4

    def sizeHint(self) -> QSize:
        return QSize(220, self._row() * (1 + max(1, len(self.values))) + 4)

    def minimumSizeHint(self) -> QSize:
        return QSize(140, self.sizeHint().height())

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        row = self._row()
        metrics = QFontMetrics(self.font())
        bold = painter.font()
        bold.setBold(True)
        painter.setFont(bold)
        painter.drawText(QRectF(0, 0, self.width(), row), Qt.AlignmentFlag.AlignVCenter, self.title)
        painter.setFont(self.font())
        if not self.values:
            painter.setPen(self.palette().placeholderText().color())
            painter.drawText(QRectF(0, row, self.width(), row), Qt.AlignmentFlag.AlignVCenter, "nothing yet")
            return
        label_w = min(self.width() // 3, max(metrics.horizontalAdvance(k) for k, _ in self.values) + 6)
        value_w = max(metrics.horizontalAdvance(self.text(v)) for _, v in self.values) + 6
        bar_w = max(10, self.width() - label_w - value_w)
        largest = max(v for _, v in self.values) or 1.0
        for i, (label, value) in enumerate(self.values):
            y = row * (i + 1)
            painter.setPen(self.palette().text().color())
            shown = metrics.elidedText(label, Qt.TextElideMode.ElideRight, label_w - 4)
            painter.drawText(QRectF(0, y, label_w - 4, row), Qt.AlignmentFlag.AlignVCenter, shown)
            width = bar_w * value / largest
            painter.fillRect(QRectF(label_w, y + 3, max(1.0, width), row - 6), self.colour)
            painter.drawText(
                QRectF(label_w + width + 4, y, value_w, row), Qt.AlignmentFlag.AlignVCenter, self.text(value)
            )
        painter.end()


class ChartRow(QWidget):
    """Charts side by side (a set's details, a diff's summary)."""

    def __init__(self, charts: Sequence[BarChart], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.charts = list(charts)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(16)
        for chart in self.charts:
            chart.setParent(self)
            layout.addWidget(chart, 1)

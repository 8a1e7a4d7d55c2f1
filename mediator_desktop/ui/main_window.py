"""The main window. The full browser, set editor and panels come with the desktop-app issue."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QMainWindow, QVBoxLayout, QWidget

from mediator_desktop import __version__
from mediator_desktop.node import Node


class MainWindow(QMainWindow):
    """Top-level window over one running node."""

    def __init__(self, node: Node) -> None:
        super().__init__()
        self.node = node
        self.setWindowTitle("MEDIator Desktop")
        self.resize(1000, 640)
        central = QWidget(self)
        layout = QVBoxLayout(central)
        self.title_label = QLabel(f"<h2>MEDIator Desktop {__version__}</h2>", central)
        self.status_label = QLabel(
            f"Single-node cluster. Data folder: {node.data_dir}\nNo replica sets yet.", central
        )
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.title_label)
        layout.addWidget(self.status_label)
        layout.addStretch(1)
        self.setCentralWidget(central)
        self.statusBar().showMessage("Ready")

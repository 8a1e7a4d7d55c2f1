"""The desktop app: PySide6 widgets over the core service. The only package that imports Qt."""

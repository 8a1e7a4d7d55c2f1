"""The README's Python example runs as printed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_python_examples_run(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks
    for i, code in enumerate(blocks):
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "MEDIATOR_HOME": str(tmp_path / f"home{i}")},
            check=False,
        )
        assert done.returncode == 0, f"README example {i + 1} failed:\n{done.stderr}"


def test_the_sdk_guide_runs_as_printed(tmp_path: Path) -> None:
    """docs/sdk.md's ```python blocks, in order, as one notebook session (downloads and the 3D
    Slicer snippet are ```py: they need the archive's network or Slicer)."""
    guide = README.parent / "docs" / "sdk.md"
    code = "\n".join(re.findall(r"```python\n(.*?)```", guide.read_text(), re.S))
    assert "create_set" in code and "diff" in code
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MEDIATOR_HOME": str(tmp_path / "home")},
        check=False,
    )
    assert done.returncode == 0, f"docs/sdk.md failed:\n{done.stderr}"
    assert "embedded" in done.stdout and "series" in done.stdout

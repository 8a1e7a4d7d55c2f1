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

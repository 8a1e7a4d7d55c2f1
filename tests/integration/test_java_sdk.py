"""The Java SDK (java/): its JUnit 5 tests against real headless nodes, run by ``java/build.sh``, and the
parity of the local API, the Python SDK and the Java SDK, read from docs/java-sdk.md's tables."""

from __future__ import annotations

import inspect
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mediator_desktop.api.app import build_app
from mediator_desktop.core import errors
from mediator_desktop.sdk import DownloadHandle, Mediator

ROOT = Path(__file__).resolve().parents[2]
JAVA = ROOT / "java"
SOURCES = JAVA / "src" / "main" / "java" / "org" / "mediator" / "sdk"
GUIDE = ROOT / "docs" / "java-sdk.md"
GSON = Path("/usr/share/java/gson.jar")
JUNIT = Path("/usr/share/java/junit-platform-console-standalone.jar")
NONE = "—"


def _toolchain_or_fail() -> None:
    """No silent skip: without the JDK and the jars, say what installs them."""
    missing = [
        what
        for what, ok in (
            ("default-jdk-headless (javac)", shutil.which("javac") is not None),
            (f"libgoogle-gson-java ({GSON})", GSON.is_file()),
            (f"junit5 ({JUNIT})", JUNIT.is_file()),
        )
        if not ok
    ]
    if missing:
        pytest.fail(
            f"the Java SDK's tests need {', '.join(missing)}; `make test` installs them (or: sudo apt-get "
            "install --no-install-recommends default-jdk-headless junit5 libgoogle-gson-java)",
            pytrace=False,
        )


def _summary(output: str) -> str:
    """JUnit's summary: the line that ends the run and the counters that are not zero."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("Test run finished")), None)
    if start is None:
        return "JUnit printed no summary"
    counters = [line for line in lines[start + 1 :] if re.match(r"^\[\s*\d+ ", line)]
    shown = [line for line in counters if not re.match(r"^\[\s*0 ", line)]
    return "\n".join([lines[start], *shown])


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_the_java_sdk_builds_and_its_junit_tests_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _toolchain_or_fail()
    env = {**os.environ, "BUILD_DIR": str(tmp_path / "build"), "MEDIATOR_PYTHON": sys.executable}
    # Its own session: on a timeout the whole group goes (the JVM, and the nodes and emulators it started).
    with subprocess.Popen(
        ["bash", str(JAVA / "build.sh")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=360)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                stdout, stderr = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                stdout, stderr = proc.communicate()
            pytest.fail(f"java/build.sh did not finish within 360 s:\n{stdout[-8000:]}\n{stderr[-4000:]}")
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    summary = _summary(done.stdout)
    with capsys.disabled():  # the CI log shows the Java tests ran, with or without pytest's -s
        print(f"\nJUnit (java/build.sh):\n{summary}", flush=True)
    assert done.returncode == 0, (
        f"java/build.sh exited with {done.returncode}\n{summary}\n\n"
        f"{done.stdout[-8000:]}\n{done.stderr[-4000:]}"
    )
    assert re.search(r"\[\s*[1-9]\d* tests successful", summary), summary
    assert "tests failed" not in summary, summary

    # The walkthrough in docs/java-sdk.md compiles against the jar just built (a developer pastes it).
    [walkthrough] = re.findall(r"```java\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S)
    source = tmp_path / "paste" / "Walkthrough.java"
    source.parent.mkdir()
    source.write_text(walkthrough, encoding="utf-8")
    jar = tmp_path / "build" / "mediator-sdk.jar"
    compiled = subprocess.run(
        [
            "javac",
            "--release",
            "17",
            "-Xlint:all",
            "-Werror",
            "-cp",
            f"{jar}:{GSON}",
            "-d",
            str(source.parent),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert compiled.returncode == 0, compiled.stderr


# -- parity: the local API, the Python SDK and the Java SDK ---------------------------------------------
def _tables() -> list[list[list[str]]]:
    """docs/java-sdk.md's tables, each a list of rows of cells (the header and rule left out)."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] | None = None
    for line in GUIDE.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            current = None
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if current is None:
            current = []
            tables.append(current)
            continue  # the header
        if set("".join(cells)) <= set("-: "):
            continue  # the rule under the header
        current.append(cells)
    return tables


def _names(cell: str) -> list[str]:
    return [] if cell == NONE else re.findall(r"`([^`]+)`", cell)


def _operation_table() -> dict[str, tuple[list[str], list[str]]]:
    rows = next(t for t in _tables() if t and re.match(r"`(GET|POST|PUT|PATCH|DELETE) /", t[0][0]))
    table: dict[str, tuple[list[str], list[str]]] = {}
    for operation, python, java in rows:
        [name] = _names(operation)
        assert name not in table, f"{name} is listed twice in docs/java-sdk.md"
        table[name] = (_names(python), _names(java))
    return table


def _method_table() -> list[tuple[list[str], list[str]]]:
    rows = next(t for t in _tables() if t and t[0][0] == "`Mediator`")
    return [(_names(python), _names(java)) for python, java, _note in rows]


def _java_methods() -> dict[str, set[str]]:
    """The public methods (and static factories) of the Java SDK's ``Mediator`` and ``DownloadHandle``;
    members of nested classes (the option builders) are indented deeper and left out."""
    out: dict[str, set[str]] = {}
    for cls in ("Mediator", "DownloadHandle"):
        text = (SOURCES / f"{cls}.java").read_text(encoding="utf-8")
        out[cls] = set(re.findall(r"^    public (?:static )?(?:final )?[\w<>\[\], .?]+? (\w+)\(", text, re.M))
    return out


def _python_has(qualified: str) -> bool:
    owner, _, name = qualified.rpartition(".")
    cls = DownloadHandle if owner == "DownloadHandle" else Mediator
    if qualified == "Mediator":
        return True
    attributes = inspect.getsource(cls.__init__)
    return (hasattr(cls, name) and not name.startswith("_")) or f"self.{name} =" in attributes


def _java_has(qualified: str, methods: dict[str, set[str]]) -> bool:
    owner, _, name = qualified.rpartition(".")
    return name in methods[owner or "Mediator"]


def test_every_operation_of_the_local_api_is_covered_by_an_sdk() -> None:
    document = build_app(None, "token").openapi()  # type: ignore[arg-type]  # the document needs no service
    operations = {f"{method.upper()} {path}" for path, ops in document["paths"].items() for method in ops}
    table = _operation_table()
    uncovered = sorted(op for op in operations if not any(table.get(op, ([], []))))
    assert not uncovered, (
        f"operations of the local API that neither SDK covers: {uncovered}; add them to the Python SDK "
        "and/or the Java SDK, and to the table in docs/java-sdk.md"
    )
    gone = sorted(set(table) - operations)
    assert not gone, f"docs/java-sdk.md lists operations the API no longer has: {gone}"
    java = _java_methods()
    for operation, (python_names, java_names) in table.items():
        for name in python_names:
            assert _python_has(name), f"{operation}: the Python SDK has no {name}"
        for name in java_names:
            assert _java_has(name, java), f"{operation}: the Java SDK has no {name}"


def test_every_python_sdk_method_has_a_java_counterpart_and_back() -> None:
    rows = _method_table()
    java = _java_methods()
    listed_python = {name for python, _ in rows for name in python}
    listed_java = {name for _, names in rows for name in names}
    public_python = {n for n, _ in inspect.getmembers(Mediator) if not n.startswith("_")} | {
        f"DownloadHandle.{n}" for n, _ in inspect.getmembers(DownloadHandle) if not n.startswith("_")
    }
    assert not public_python - listed_python, (
        f"Python SDK methods missing from docs/java-sdk.md: {sorted(public_python - listed_python)}"
    )
    for python, names in rows:
        for name in python:
            assert _python_has(name), f"docs/java-sdk.md names {name}, which the Python SDK does not have"
        for name in names:
            assert _java_has(name, java), f"docs/java-sdk.md names {name}, which the Java SDK does not have"
        if python and python != ["embedded"]:
            assert names, f"{python} has no Java counterpart in docs/java-sdk.md"
    public_java = java["Mediator"] | {f"DownloadHandle.{n}" for n in java["DownloadHandle"]}
    assert not public_java - listed_java, (
        f"Java SDK methods missing from docs/java-sdk.md: {sorted(public_java - listed_java)}"
    )


def test_every_error_code_of_the_api_has_a_java_exception() -> None:
    kinds: list[type[errors.MediatorError]] = [errors.MediatorError]
    python: dict[str, str] = {}
    while kinds:
        kind = kinds.pop()
        if kind.__module__ == errors.__name__:  # the API's errors, not a helper's subclass of one
            python.setdefault(kind.code, kind.__name__)
        kinds.extend(kind.__subclasses__())
    text = (SOURCES / "MediatorException.java").read_text(encoding="utf-8")
    java = dict(re.findall(r'kind\("(\w+)", "(\w+)"', text))
    assert java == python, (
        f"codes only in Python: {python.keys() - java.keys()}; only in Java: {java.keys() - python.keys()}"
    )

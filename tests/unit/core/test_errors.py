"""The one table of typed errors: codes, HTTP statuses, exit codes, and the round trips through it."""

from __future__ import annotations

import inspect
import re
from typing import Any

import pytest

from mediator_desktop.core import errors, state
from mediator_desktop.core.errors import (
    EXIT_ARCHIVE_ERROR,
    EXIT_CLUSTER_UNAVAILABLE,
    EXIT_CONFLICT,
    EXIT_NOT_FOUND,
    EXIT_PERMISSION_DENIED,
    EXIT_USER_ERROR,
    ClusterUnavailable,
    ConflictError,
    ImmutableError,
    IntegrityError,
    MediatorError,
    NotFound,
    PermissionDenied,
    ReplayError,
    SourceError,
    ValidationError,
)
from mediator_desktop.core.store import unwrap


def subclasses(cls: type[MediatorError]) -> list[type[MediatorError]]:
    found: list[type[MediatorError]] = []
    for sub in cls.__subclasses__():
        found += [sub, *subclasses(sub)]
    return found


ALL = subclasses(MediatorError)


def sample(cls: type[MediatorError], message: str = "what happened; what to do") -> MediatorError:
    return ConflictError(message, current_head=7) if cls is ConflictError else cls(message)


def test_there_are_errors_to_check() -> None:
    names = {cls.__name__ for cls in ALL}
    assert {"ValidationError", "NotFound", "ConflictError", "ReplayError", "NodeUnreachable"} <= names


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_every_error_has_its_code_status_and_exit_code(cls: type[MediatorError]) -> None:
    assert "code" in cls.__dict__, f"{cls.__name__} inherits its code instead of having its own"
    assert re.fullmatch(r"[a-z][a-z_]*", cls.code)
    assert isinstance(cls.http_status, int) and 400 <= cls.http_status <= 599
    assert isinstance(cls.exit_code, int) and 1 <= cls.exit_code <= 255


def test_codes_and_names_are_unique() -> None:
    codes = [cls.code for cls in ALL]
    assert len(codes) == len(set(codes)), sorted(c for c in codes if codes.count(c) > 1)
    assert MediatorError.code not in codes
    names = [cls.__name__ for cls in ALL]
    assert len(names) == len(set(names))


@pytest.mark.parametrize(
    ("cls", "status", "exit_code"),
    [
        (ValidationError, 400, EXIT_USER_ERROR),
        (NotFound, 404, EXIT_NOT_FOUND),
        (PermissionDenied, 403, EXIT_PERMISSION_DENIED),
        (ReplayError, 403, EXIT_PERMISSION_DENIED),
        (ConflictError, 409, EXIT_CONFLICT),
        (ClusterUnavailable, 503, EXIT_CLUSTER_UNAVAILABLE),
        (SourceError, 502, EXIT_ARCHIVE_ERROR),
        (IntegrityError, 502, EXIT_ARCHIVE_ERROR),
    ],
)
def test_the_table_keeps_what_the_frontends_answered_before(
    cls: type[MediatorError], status: int, exit_code: int
) -> None:
    assert (cls.http_status, cls.exit_code) == (status, exit_code)


def test_errors_still_are_the_builtin_errors_callers_catch() -> None:
    assert issubclass(ValidationError, ValueError)
    assert issubclass(NotFound, LookupError)
    assert issubclass(ReplayError, PermissionDenied) and issubclass(ImmutableError, PermissionDenied)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_by_code_and_by_name_find_the_class(cls: type[MediatorError]) -> None:
    assert errors.by_code(cls.code) is cls
    assert errors.by_name(cls.__name__) is cls


@pytest.mark.parametrize("cls", [MediatorError, *ALL], ids=lambda c: c.__name__)
def test_from_json_round_trips_to_json(cls: type[MediatorError]) -> None:
    error = sample(cls)
    body = error.to_json()
    assert body["error"] == cls.__name__ and body["code"] == cls.code
    assert body["message"] == "what happened; what to do"
    back = errors.from_json(body)
    assert type(back) is cls
    assert str(back) == str(error)
    assert back.to_json() == body


def test_conflict_keeps_the_current_head() -> None:
    body = ConflictError("someone committed meanwhile", current_head=4).to_json()
    assert body["current_head"] == 4
    back = errors.from_json(body)
    assert isinstance(back, ConflictError) and back.current_head == 4
    assert ConflictError("no head yet").to_json()["current_head"] is None
    odd = errors.from_json({"code": "conflict", "message": "m", "current_head": "4"})
    assert isinstance(odd, ConflictError) and odd.current_head is None


def test_from_json_of_an_older_body_reads_the_class_name() -> None:
    back = errors.from_json({"error": "NotFound", "message": "no set x"})
    assert type(back) is NotFound and str(back) == "no set x"
    conflict = errors.from_json({"error": "ConflictError", "message": "stale", "current_head": 2})
    assert isinstance(conflict, ConflictError) and conflict.current_head == 2


@pytest.mark.parametrize(
    "body",
    [
        {"error": "BrandNewError", "code": "brand_new", "message": "from a newer node"},
        {"code": "brand_new", "message": "from a newer node"},
        {"error": "BrandNewError", "message": "from a newer node"},
    ],
)
def test_an_unknown_code_gives_a_mediator_error(body: dict[str, Any]) -> None:
    back = errors.from_json(body)
    assert type(back) is MediatorError
    assert str(back) == "from a newer node"
    assert errors.by_code("brand_new") is MediatorError
    assert errors.by_name("BrandNewError") is MediatorError


def test_from_json_without_a_message_falls_back() -> None:
    assert str(errors.from_json({"code": "not_found"}, "HTTP 404")) == "HTTP 404"
    assert str(errors.from_json({"code": "not_found"}))  # never an empty message


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("validation", ValidationError),
        ("permission", PermissionDenied),
        ("conflict", ConflictError),
        ("not_found", NotFound),
        ("integrity", IntegrityError),
        ("replay", ReplayError),
        ("immutable", ImmutableError),
    ],
)
def test_error_of_store_result_codes(code: str, cls: type[MediatorError]) -> None:
    error = errors.error_of(code, "refused", {"current_head": 3})
    assert type(error) is cls and str(error) == "refused"
    if cls is ConflictError:
        assert isinstance(error, ConflictError) and error.current_head == 3
    with pytest.raises(cls, match="refused"):
        unwrap(("err", code, "refused", {}))


def test_error_of_an_unknown_code_gives_a_mediator_error() -> None:
    error = errors.error_of("from_the_future", "refused", None)
    assert type(error) is MediatorError and str(error) == "refused"
    conflict = errors.error_of("conflict", "stale", None)
    assert isinstance(conflict, ConflictError) and conflict.current_head is None
    assert unwrap(("ok", {"version": 3})) == {"version": 3}


def test_every_code_the_store_answers_with_has_a_typed_error() -> None:
    """The state refuses commands with ``Rejected(code, ...)``; each code must map to its class."""
    codes = set(re.findall(r'Rejected\(\s*"([a-z_]+)"', inspect.getsource(state)))
    codes |= set(re.findall(r'\("err", "([a-z_]+)"', inspect.getsource(state)))
    assert {"validation", "permission", "conflict", "not_found", "replay", "immutable"} <= codes
    for code in codes:
        assert errors.by_code(code) is not MediatorError, f"store code {code!r} has no typed error"

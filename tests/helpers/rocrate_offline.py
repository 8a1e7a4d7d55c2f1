"""roc-validator offline: it fetches the RO-Crate JSON-LD context over HTTP, and tests and benchmarks
run without the internet, so it gets the context the ``rocrate`` package ships (the spec's own
context document; the RO-Crate contexts only ever added terms)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests


def context_document() -> bytes:
    import rocrate

    return (Path(rocrate.__file__).parent / "data" / "ro-crate.jsonld").read_bytes()


@contextmanager
def offline_context() -> Iterator[None]:
    """While it lasts, roc-validator's requests for ``https://w3id.org/ro/crate/...`` are answered
    with the bundled context; every other request goes out as usual."""
    from rocrate_validator.utils import http as validator_http

    context = context_document()
    requester = validator_http.HttpRequester
    original = requester.__dict__.get("get")  # none: the requester hands HTTP verbs to its session

    def get(self: Any, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        if url.startswith("https://w3id.org/ro/crate/"):
            response = requests.Response()
            response.status_code = 200
            response._content = context
            response.headers["Content-Type"] = "application/ld+json"
            response.url = url
            return response
        if original is not None:
            return original(self, url, *args, **kwargs)  # type: ignore[no-any-return]
        return self.session.get(url, *args, **kwargs)  # type: ignore[no-any-return]

    requester.get = get
    try:
        yield
    finally:
        if original is None:
            del requester.get
        else:
            requester.get = original


def validate(crate: Path) -> list[str]:
    """roc-validator's verdict on a crate folder by the RO-Crate 1.1 profile at REQUIRED severity:
    the messages of its issues, [] when it passes."""
    from rocrate_validator import models, services

    settings = models.ValidationSettings(
        rocrate_uri=str(crate.absolute()),
        profile_identifier="ro-crate-1.1",
        requirement_severity=models.Severity.REQUIRED,
        offline=True,
    )
    with offline_context():
        result = services.validate(settings)
    return [] if result.passed() else [issue.message or "" for issue in result.get_issues()]

"""HTTP plumbing every web archive client shares: one session, timeouts, retries, clear errors."""

from __future__ import annotations

import json
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ReadTimeoutError
from urllib3.util.retry import Retry

from mediator_desktop.core.errors import SourceError

#: Connect and read timeouts (seconds).
TIMEOUT = (5.0, 60.0)


def session(retries: int = 3, backoff: float = 0.5) -> requests.Session:
    """A pooled session that retries 429 and 5xx answers with exponential backoff."""
    s = requests.Session()
    retry = Retry(
        total=retries,
        backoff_factor=backoff,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET", "HEAD"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    adapter = HTTPAdapter(max_retries=retry, pool_connections=8, pool_maxsize=16)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s


def get(
    s: requests.Session,
    archive: str,
    url: str,
    *,
    what: str,
    timeout: tuple[float, float] = TIMEOUT,
    **kwargs: Any,
) -> requests.Response:
    """GET ``url``; any failure becomes a ``SourceError`` that names the archive and the item."""
    try:
        response = s.get(url, timeout=timeout, **kwargs)
    except requests.exceptions.RetryError as exc:
        raise SourceError(
            f"{archive} kept failing for {what} ({exc.__class__.__name__}); try later"
        ) from None
    except requests.exceptions.Timeout:
        raise SourceError(f"{archive} did not answer in time for {what}; try later") from None
    except requests.exceptions.ConnectionError as exc:
        reason = getattr(exc.args[0] if exc.args else None, "reason", None)
        if isinstance(reason, ReadTimeoutError):  # retried, then given up
            raise SourceError(f"{archive} did not answer in time for {what}; try later") from None
        raise SourceError(
            f"{archive} cannot be reached for {what}: {exc.__class__.__name__}; check the address"
        ) from None
    if response.status_code in (401, 403):
        raise SourceError(
            f"{archive} refused access to {what} ({response.status_code}); check the credentials"
        )
    if response.status_code == 429 or response.status_code >= 500:
        raise SourceError(f"{archive} answered {response.status_code} for {what} after retries; try later")
    if response.status_code >= 400:
        raise SourceError(f"{archive} answered {response.status_code} for {what}: {response.text[:200]!r}")
    return response


def json_body(response: requests.Response, archive: str, what: str) -> Any:
    """The JSON of a response; an empty body means no rows. HTML or garbage is a ``SourceError``."""
    if response.status_code == 204 or not response.content.strip():
        return []
    try:
        return response.json()
    except (json.JSONDecodeError, ValueError):
        kind = response.headers.get("Content-Type", "unknown type")
        raise SourceError(
            f"{archive} answered {what} with something that is not JSON ({kind}: {response.text[:80]!r})"
        ) from None

"""DOI services a published version is minted with: DataCite's REST API and Zenodo's deposit API.

Both implement ``core.publishing.Minter``: each step is recorded (``record``) before the next, so a
retry after a crash, or on another member, resumes where the first try stopped and never mints a
second DOI for the same version.

- DataCite: the DOI is ``<prefix>/mediator.<key>``, a name derived from the version, so a retry
  creates nothing new: the draft (``POST /dois``, all metadata and the landing URL) is recorded as
  ``{"doi"}``, then made findable (``PUT /dois/{doi}`` with ``event: publish``). A create that finds
  "This DOI has already been taken" reads the DOI back and goes on when it points to the same
  landing page (an earlier try made it), and stops otherwise.
- Zenodo: a deposition (``{"deposition", "bucket"}`` recorded), its metadata, the attachment (the set's
  RO-Crate), publish (``{"doi", "concept", "url"}`` recorded). With the steps of the set's previous published
  version, the deposition is a ``newversion`` of that one, so both versions share one concept DOI (files the
  draft copied from that version under other names are removed). A retry reads the recorded deposition first
  and takes its DOI when an earlier publish went through unheard.

Failures: a host that cannot be reached or does not answer in time is ``ArchiveUnreachable``;
429/5xx is ``SourceError`` (both: retry later); 401/403 is ``PermissionDenied`` (fix the settings,
do not retry); 400/422 is ``ValidationError`` with the service's own messages.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from mediator_desktop.core.errors import (
    ArchiveUnreachable,
    MediatorError,
    PermissionDenied,
    SourceError,
    ValidationError,
)
from mediator_desktop.core.publishing import DoiMetadata, Minted, Minter
from mediator_desktop.core.source import SourceKind, SourceOption
from mediator_desktop.sources import http

DATACITE_URL = "https://api.datacite.org/"
DATACITE_TEST_URL = "https://api.test.datacite.org/"
ZENODO_URL = "https://zenodo.org/api"
ZENODO_SANDBOX_URL = "https://sandbox.zenodo.org/api"
JSON_API = "application/vnd.api+json"
#: Where the user fixes credentials (the messages name it).
SETTINGS = "Settings > Publishing"

DATACITE_KIND = SourceKind(
    "datacite",
    "DataCite",
    "Mint DOIs with your institution's DataCite repository account (draft, then findable).",
    options=(
        SourceOption(
            "base_url",
            "API address",
            f"DataCite's REST API: {DATACITE_URL}, or {DATACITE_TEST_URL} for the test system.",
            kind="url",
            default=DATACITE_URL,
        ),
        SourceOption("repository", "Repository ID", "Your repository account, e.g. ABC.XYZ.", required=True),
        SourceOption("prefix", "DOI prefix", "Your repository's prefix, e.g. 10.12345.", required=True),
    ),
    secret="password",
    secret_help="The repository account's password (kept in the OS keyring).",
)
ZENODO_KIND = SourceKind(
    "zenodo",
    "Zenodo",
    "Deposit the set's RO-Crate on Zenodo, which hosts the landing page and mints the DOI.",
    options=(
        SourceOption(
            "base_url",
            "API address",
            f"Zenodo's API: {ZENODO_URL}, or {ZENODO_SANDBOX_URL} to try things out.",
            kind="url",
            default=ZENODO_URL,
        ),
    ),
    secret="token",
    secret_help="A personal access token with the deposit:write and deposit:actions scopes.",
)
KINDS = {"datacite": DATACITE_KIND, "zenodo": ZENODO_KIND}

_SUFFIX_UNSAFE = re.compile(r"[^a-z0-9._-]+")


def datacite_suffix(key: str) -> str:
    """The DOI suffix of a version's ``key``: ``mediator.`` + the key, lowercase, in DOI-safe
    characters (``Set 1/v3`` -> ``mediator.set-1-v3``)."""
    cleaned = _SUFFIX_UNSAFE.sub("-", key.strip().lower()).strip("-.")
    if not cleaned:
        raise ValidationError(f"a DOI needs a version key of letters or digits, not {key!r}")
    return f"mediator.{cleaned}"


class _Client:
    """One DOI service over HTTP: a session (GETs retried on 429/5xx), timeouts, typed failures."""

    name = ""
    title = ""
    credentials = ""

    def __init__(self, base_url: str, *, timeout: tuple[float, float], retries: int, backoff: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session = http.session(retries=retries, backoff=backoff)

    def close(self) -> None:
        self._session.close()

    def _call(self, method: str, url: str, what: str, **kwargs: Any) -> requests.Response:
        try:
            return self._session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.exceptions.RetryError:
            raise SourceError(
                f"{self.title} kept failing while {what}; the DOI is minted on a later try"
            ) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            host = urlsplit(url).netloc
            late = isinstance(exc, requests.exceptions.Timeout)
            reason = "did not answer in time" if late else "cannot be reached"
            raise ArchiveUnreachable(
                f"{self.title} ({host}) {reason} while {what}; the DOI is minted when it answers again "
                "(check the network, or the service's address in " + SETTINGS + ")",
                host=host,
                reason=f"{type(exc).__name__}: {exc}",
            ) from None

    @staticmethod
    def _body(response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            return None

    def _messages(self, response: requests.Response) -> str:
        raise NotImplementedError

    def _failure(self, response: requests.Response, what: str) -> MediatorError:
        """The typed error of an unsuccessful answer."""
        status = response.status_code
        said = self._messages(response)
        if status in (401, 403):
            refused = "refused the credentials" if status == 401 else "refused access"
            return PermissionDenied(
                f"{self.title} {refused} ({status}: {said}) while {what}: check the {self.credentials} "
                f"in {SETTINGS}"
            )
        if status == 429 or status >= 500:
            return SourceError(
                f"{self.title} answered {status} while {what}; the DOI is minted when it answers again "
                "(retry later)"
            )
        if status in (400, 422):
            return ValidationError(f"{self.title} rejected the record while {what}: {said}")
        return SourceError(f"{self.title} answered {status} while {what}: {said}")

    def _json(self, response: requests.Response, what: str) -> dict[str, Any]:
        body = self._body(response)
        if not isinstance(body, dict):
            kind = response.headers.get("Content-Type", "unknown type")
            raise SourceError(
                f"{self.title} answered {what} with something that is not a JSON object "
                f"({kind}: {response.text[:80]!r})"
            )
        return body


class DataCiteMinter(_Client):
    """Mints findable DOIs through DataCite's REST API with a repository account."""

    name = "datacite"
    title = "DataCite"
    credentials = "repository ID and password"

    def __init__(
        self,
        base_url: str = DATACITE_URL,
        username: str = "",
        password: str = "",
        prefix: str = "",
        *,
        timeout: tuple[float, float] = http.TIMEOUT,
        retries: int = 3,
        backoff: float = 0.5,
    ) -> None:
        super().__init__(base_url, timeout=timeout, retries=retries, backoff=backoff)
        if not username or not password:
            raise PermissionDenied(f"DataCite needs a repository ID and password: set them in {SETTINGS}")
        if not re.fullmatch(r"10\.\d{4,9}", prefix.strip()):
            raise ValidationError(
                f"{prefix!r} is no DOI prefix (10.12345); set your repository's in {SETTINGS}"
            )
        self.prefix = prefix.strip()
        self._session.auth = (username, password)

    def doi_for(self, key: str) -> str:
        """The DOI a version's ``key`` is minted as."""
        return f"{self.prefix}/{datacite_suffix(key)}"

    def _messages(self, response: requests.Response) -> str:
        body = self._body(response)
        errors = body.get("errors") if isinstance(body, dict) else None
        if isinstance(errors, list) and errors:
            parts = []
            for e in errors:
                if isinstance(e, dict):
                    source, title = e.get("source"), str(e.get("title") or "")
                    parts.append(f"{source}: {title}" if source else title)
            return "; ".join(p for p in parts if p) or response.text[:200]
        return response.text[:200] or response.reason

    def _dois(self, doi: str = "") -> str:
        return f"{self.base_url}/dois" + (f"/{quote(doi, safe='/')}" if doi else "")

    def read(self, doi: str) -> dict[str, Any] | None:
        """The attributes of ``doi`` as DataCite holds them, or None when it does not know it."""
        what = f"reading {doi}"
        response = self._call("GET", self._dois(doi), what, headers={"Accept": JSON_API})
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._failure(response, what)
        data = self._json(response, what).get("data")
        attributes = data.get("attributes") if isinstance(data, dict) else None
        if not isinstance(attributes, dict):
            raise SourceError(f"DataCite answered {what} without the DOI's attributes")
        return attributes

    def _send(self, method: str, doi: str, attributes: Mapping[str, Any], what: str) -> requests.Response:
        body = {"data": {"type": "dois", "attributes": dict(attributes)}}
        url = self._dois() if method == "POST" else self._dois(doi)
        return self._call(
            method, url, what, json=body, headers={"Content-Type": JSON_API, "Accept": JSON_API}
        )

    def mint(
        self,
        key: str,
        metadata: DoiMetadata,
        landing_url: str | None,
        attachment: tuple[str, bytes] | None,
        done: Mapping[str, str],
        record: Callable[[Mapping[str, str]], None],
        previous: Mapping[str, str] | None,
    ) -> Minted:
        """See ``Minter.mint``. ``attachment`` and ``previous`` mean nothing to DataCite."""
        if not landing_url:
            raise ValidationError(
                "DataCite needs a landing page the DOI resolves to: give one when publishing "
                "(your lab's page of the set, or its Zenodo record)"
            )
        metadata.check()
        steps = dict(done)
        doi = steps.get("doi") or self.doi_for(key)
        if steps.get("state") == "findable":
            return Minted(doi, landing_url, "findable", steps)
        attributes = {**metadata.datacite_attributes(), "url": landing_url}
        if "doi" not in steps:
            what = f"creating the draft DOI {doi}"
            response = self._send("POST", doi, {**attributes, "doi": doi}, what)
            if response.status_code == 422 and "already been taken" in response.text:
                self._ours(doi, landing_url)
            elif response.status_code != 201:
                raise self._failure(response, what)
            steps["doi"] = doi
            record({"doi": doi})
        what = f"making {doi} findable"
        response = self._send("PUT", doi, {**attributes, "event": "publish"}, what)
        if response.status_code not in (200, 201):
            raise self._failure(response, what)
        data = self._json(response, what).get("data")
        state = data.get("attributes", {}).get("state") if isinstance(data, dict) else None
        if state != "findable":
            raise SourceError(
                f"DataCite left {doi} {state or 'in an unknown state'} after publishing it; try again"
            )
        steps["state"] = "findable"
        record({"state": "findable"})
        return Minted(doi, landing_url, "findable", steps)

    def _ours(self, doi: str, landing_url: str) -> None:
        """Goes on when the existing ``doi`` is the one an earlier try made (same landing page)."""
        existing = self.read(doi)
        if existing is None:
            raise SourceError(
                f"DataCite says {doi} is taken but does not show it to this repository; try later"
            )
        url = existing.get("url")
        if url and url != landing_url:
            raise ValidationError(
                f"DataCite already holds {doi} for another landing page ({url}), not this version's "
                f"({landing_url}); nothing was changed"
            )


class ZenodoMinter(_Client):
    """Deposits a version's record on Zenodo, which hosts its landing page and mints its DOI."""

    name = "zenodo"
    title = "Zenodo"
    credentials = "Zenodo access token (scopes deposit:write and deposit:actions)"

    def __init__(
        self,
        base_url: str = ZENODO_URL,
        token: str = "",
        *,
        timeout: tuple[float, float] = http.TIMEOUT,
        retries: int = 3,
        backoff: float = 0.5,
    ) -> None:
        if urlsplit(base_url).path.strip("/") == "":  # "https://zenodo.org": its API lies under /api
            base_url = base_url.rstrip("/") + "/api"
        super().__init__(base_url, timeout=timeout, retries=retries, backoff=backoff)
        if not token:
            raise PermissionDenied(f"Zenodo needs a personal access token: set it in {SETTINGS}")
        self._session.headers["Authorization"] = f"Bearer {token}"

    def _messages(self, response: requests.Response) -> str:
        body = self._body(response)
        if not isinstance(body, dict):
            return response.text[:200] or response.reason
        parts = []
        for e in body.get("errors") or []:
            if isinstance(e, dict):
                field, message = e.get("field"), str(e.get("message") or "")
                parts.append(f"{field}: {message}" if field else message)
        if parts:
            return "; ".join(parts)
        return str(body.get("message") or response.text[:200])

    def _deposition(self, number: str) -> str:
        return f"{self.base_url}/deposit/depositions/{quote(number, safe='')}"

    def _expect(self, response: requests.Response, status: tuple[int, ...], what: str) -> dict[str, Any]:
        if response.status_code not in status:
            raise self._failure(response, what)
        return self._json(response, what)

    def mint(
        self,
        key: str,
        metadata: DoiMetadata,
        landing_url: str | None,
        attachment: tuple[str, bytes] | None,
        done: Mapping[str, str],
        record: Callable[[Mapping[str, str]], None],
        previous: Mapping[str, str] | None,
    ) -> Minted:
        """See ``Minter.mint``. ``landing_url`` means nothing to Zenodo (it makes its own page);
        ``key`` names the version in messages only."""
        metadata.check()
        steps = dict(done)
        if steps.get("doi") and steps.get("concept"):
            return Minted(
                steps["doi"], steps.get("url") or f"https://doi.org/{steps['doi']}", "findable", steps
            )
        if "deposition" in steps:
            what = f"reading deposition {steps['deposition']} of {key}"
            deposition = self._expect(
                self._call("GET", self._deposition(steps["deposition"]), what), (200,), what
            )
            if deposition.get("submitted"):  # an earlier publish went through unheard
                return self._finish(deposition, steps, record)
        else:
            deposition = self._start(key, previous)
            new = {"deposition": str(deposition["id"]), "bucket": str(deposition["links"]["bucket"])}
            steps.update(new)
            record(new)
        number = steps["deposition"]
        what = f"sending the metadata of {key}"
        self._expect(
            self._call("PUT", self._deposition(number), what, json={"metadata": metadata.zenodo_metadata()}),
            (200,),
            what,
        )
        if attachment is not None:
            filename, data = attachment
            self._drop_others(deposition, filename, key)
            what = f"uploading {filename} of {key}"
            bucket = steps.get("bucket") or str(deposition["links"]["bucket"])
            url = f"{bucket.rstrip('/')}/{quote(filename, safe='')}"
            headers = {"Content-Type": "application/octet-stream"}
            self._expect(self._call("PUT", url, what, data=data, headers=headers), (200, 201), what)
        what = f"publishing {key}"
        published = self._expect(
            self._call("POST", f"{self._deposition(number)}/actions/publish", what), (202,), what
        )
        return self._finish(published, steps, record)

    def _drop_others(self, deposition: Mapping[str, Any], filename: str, key: str) -> None:
        """Removes the files a new version's draft copied from the last version, but ``filename``
        (which the upload replaces): the new record holds this version's crate only."""
        for stale in deposition.get("files") or []:
            link = stale.get("links", {}).get("self") if isinstance(stale, dict) else None
            if stale.get("filename") == filename or not isinstance(link, str):
                continue
            what = f"removing {stale.get('filename')} of the last version from {key}"
            response = self._call("DELETE", link, what)
            if response.status_code not in (204, 404):
                raise self._failure(response, what)

    def _start(self, key: str, previous: Mapping[str, str] | None) -> dict[str, Any]:
        """A new deposition: a new version of ``previous``'s when there is one."""
        earlier = (previous or {}).get("deposition")
        if not earlier:
            what = f"creating the deposition of {key}"
            return self._expect(
                self._call("POST", f"{self.base_url}/deposit/depositions", what, json={}), (201,), what
            )
        what = f"making {key} a new version of deposition {earlier}"
        answer = self._expect(
            self._call("POST", f"{self._deposition(earlier)}/actions/newversion", what), (200, 201), what
        )
        draft = answer.get("links", {}).get("latest_draft")
        if not isinstance(draft, str) or not draft:
            raise SourceError(f"Zenodo answered {what} without the new version's draft")
        what = f"reading the new version's draft of {key}"
        deposition = self._expect(self._call("GET", draft, what), (200,), what)
        if "id" not in deposition or "bucket" not in deposition.get("links", {}):
            raise SourceError(f"Zenodo answered {what} without the deposition's id or bucket")
        return deposition

    def _finish(
        self,
        deposition: Mapping[str, Any],
        steps: dict[str, str],
        record: Callable[[Mapping[str, str]], None],
    ) -> Minted:
        doi, concept = str(deposition.get("doi") or ""), str(deposition.get("conceptdoi") or "")
        if not doi:
            raise SourceError(f"Zenodo published deposition {deposition.get('id')} without a DOI; try again")
        links = deposition.get("links") or {}
        url = str(links.get("record_html") or links.get("html") or f"https://doi.org/{doi}")
        new = {"doi": doi, "concept": concept, "url": url}
        steps.update(new)
        record(new)
        return Minted(doi, url, "findable", steps)


def create_minter(kind: str, options: Mapping[str, Any], secret: str | None) -> Minter:
    """The minter of a DOI service as the settings describe it.

    Args:
        kind: ``datacite`` or ``zenodo``.
        options: DataCite: ``base_url`` (default production; ``DATACITE_TEST_URL`` for the test
            system), ``repository`` (the repository ID), ``prefix``. Zenodo: ``base_url``.
        secret: the DataCite password or the Zenodo token, from the OS keyring.
    """
    spec = KINDS.get(kind)
    if spec is None:
        raise ValidationError(f"no DOI service {kind!r}; choose one of {', '.join(sorted(KINDS))}")
    # The settings keep one set of DOI options for both services: a Zenodo minter ignores DataCite's.
    known = {o.name for o in spec.options}
    spec.check({k: v for k, v in options.items() if k in known})
    if kind == "datacite":
        return DataCiteMinter(
            str(options.get("base_url") or DATACITE_URL),
            str(options["repository"]),
            secret or "",
            str(options["prefix"]),
        )
    return ZenodoMinter(str(options.get("base_url") or ZENODO_URL), secret or "")

"""Hot reads of the local API answered without the framework: ``GET /v1/sets/{id}``.

Programs poll a set's answer (its head, its totals, whether an update waits), often from many
clients at once, so this read must cost its node little. ``FastSetReads`` answers it before
FastAPI's routing, dependencies, thread pool and response validation, with the bytes the full
route gave the last time (``SetAnswers``), as long as everything that answer was made of is still
the same. Whatever it is not sure of goes to the full app unchanged: another host name, another
form of the token, a body, a set this user may not read (the 404 comes from the route), a set
whose answer is not known yet or changed. The answers are the route's own, byte for byte, so the
OpenAPI document and every client see no difference.

What an answer is made of, and how a change shows:
- the set itself, its head version and the archive update of that head (``ReplicaSet``,
  ``Version``, ``DriftRecord``: frozen records that the store replaces, never changes in place,
  so a change is a different object; a whole new replica brings new objects too);
- the owner's display name and whether the head's manifest has arrived: a counter of the
  events that announce them (``UserRegistered``, ``ManifestCommitted``, ``StateReloaded``),
  emitted after the change;
- the local user (``Service.key_id``).
The key is taken before the full route runs and again after it; an answer is kept only when
both are the same, so an answer made while a command was being applied is never kept.
"""

from __future__ import annotations

import hmac
import re
from typing import Any

from starlette import types as asgi

from mediator_desktop.core import errors
from mediator_desktop.core.events import Event, ManifestCommitted, StateReloaded, UserRegistered
from mediator_desktop.core.service import Service

__all__ = ["FastSetReads", "SetAnswers"]

#: The path of the read answered here (``scope["path"]``, already percent-decoded).
_SET_PATH = re.compile(r"/v1/sets/([0-9a-f]{32})")
#: Host headers the API's ``TrustedHostMiddleware`` takes for sure (others go the long way).
_HOST = re.compile(rb"(?:127\.0\.0\.1|localhost)(?::[0-9]{1,5})?", re.IGNORECASE)
#: Answers kept at most (the least recently stored goes first).
ANSWERS_KEPT = 4096


class SetAnswers:
    """The last full answer of ``GET /v1/sets/{id}`` per set, with what it was made of.

    ``key`` is read on the event loop (a few dictionary look-ups); the event counter is bumped by
    the thread that applies commands, its only writer.
    """

    def __init__(self, service: Service, kept: int = ANSWERS_KEPT) -> None:
        self._service = service
        self._kept = kept
        self._answers: dict[str, tuple[tuple[Any, ...], asgi.Message, bytes]] = {}
        self._changes = 0
        self.hits = 0
        self.misses = 0
        self.close = service.events.subscribe(self._changed, UserRegistered, ManifestCommitted, StateReloaded)
        """Stop listening to the service's events (the API stops)."""

    def _changed(self, event: Event) -> None:
        self._changes += 1

    def key(self, set_id: str) -> tuple[Any, ...] | None:
        """What the answer for ``set_id`` is made of now; None when the route must say why not
        (no such set, or not one this user may read)."""
        changes = self._changes  # first: an event after the look-ups below must change the key
        sets = self._service.sets
        rs = sets.find(set_id)
        if rs is None:
            return None
        version = drift = None
        if rs.head is not None:
            try:
                version = sets.version(set_id, rs.head)
                drift = self._service.tracking.drift(set_id)
            except errors.NotFound:  # deleted or hidden meanwhile, or its version not here yet
                return None
        return (changes, self._service.key_id, rs, version, drift)

    def get(self, set_id: str, key: tuple[Any, ...]) -> tuple[asgi.Message, bytes] | None:
        kept = self._answers.get(set_id)
        if kept is None or kept[0] != key:
            self.misses += 1
            return None
        self.hits += 1
        return kept[1], kept[2]

    def put(self, set_id: str, key: tuple[Any, ...], start: asgi.Message, body: bytes) -> None:
        self._answers.pop(set_id, None)
        while len(self._answers) >= self._kept:
            del self._answers[next(iter(self._answers))]
        self._answers[set_id] = (key, start, body)


class FastSetReads:
    """ASGI middleware answering ``GET /v1/sets/{id}`` from ``answers`` when it can (see the module)."""

    def __init__(self, app: asgi.ASGIApp, answers: SetAnswers, token: str) -> None:
        self.app = app
        self.answers = answers
        self._authorization = b"Bearer " + token.encode()

    async def __call__(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        set_id = self._set_read(scope)
        key = None if set_id is None else self.answers.key(set_id)
        if set_id is None or key is None:
            await self.app(scope, receive, send)
            return
        kept = self.answers.get(set_id, key)
        if kept is not None:
            await send(dict(kept[0]))
            await send({"type": "http.response.body", "body": kept[1], "more_body": False})
            return
        start: asgi.Message = {}
        chunks: list[bytes] = []
        whole = True

        async def keep(message: asgi.Message) -> None:
            nonlocal start, whole
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            else:
                whole = False
            await send(message)

        await self.app(scope, receive, keep)
        if whole and start.get("status") == 200 and self.answers.key(set_id) == key:
            self.answers.put(set_id, key, start, b"".join(chunks))

    def _set_read(self, scope: asgi.Scope) -> str | None:
        """The set id of a plain, authorised ``GET /v1/sets/{id}`` on a loopback host name, else None."""
        if scope["type"] != "http" or scope["method"] != "GET" or scope.get("root_path"):
            return None
        match = _SET_PATH.fullmatch(scope["path"])
        if match is None:
            return None
        host = authorization = None
        for name, value in scope["headers"]:
            if name == b"host":
                host = value if host is None else host
            elif name == b"authorization":
                authorization = value if authorization is None else authorization
            elif name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
                return None  # a body: BodyLimit and the route decide
        if host is None or authorization is None or _HOST.fullmatch(host) is None:
            return None
        if not hmac.compare_digest(authorization, self._authorization):
            return None  # the app answers 401 (or takes another spelling of the scheme)
        return match.group(1)

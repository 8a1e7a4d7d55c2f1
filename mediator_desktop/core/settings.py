"""Settings: one declarative, validated model, stored as JSON under the user's config folder.

Every field carries a title and a description (shown by the settings dialog and ``mediator``).
Secrets never live here: they go to the OS keyring.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import platformdirs

from mediator_desktop.core.errors import ValidationError
from mediator_desktop.core.layout import DEFAULT_LAYOUT, Layout

log = logging.getLogger(__name__)

APP_NAME = "mediator-desktop"
#: Overrides every folder (data, config, downloads) at once: one node per folder, as tests need.
HOME_ENV = "MEDIATOR_HOME"


#: Field annotations checked as they are read: the type, and how a message names it.
_PLAIN_TYPES: dict[str, tuple[type, str]] = {
    "str": (str, "text"),
    "int": (int, "a whole number"),
    "bool": (bool, "true or false"),
}
_ADDRESS = re.compile(r"[A-Za-z0-9.\-\[\]:]+:[0-9]{1,5}")


def _describe(title: str, description: str, *, live: bool = False) -> dict[str, Any]:
    """A field's title and description, and whether a change applies at once (``live``) or when
    the node starts next."""
    return {"title": title, "description": description, "live": live}


def default_home() -> Path | None:
    home = os.environ.get(HOME_ENV)
    return Path(home).expanduser() if home else None


def default_data_dir() -> Path:
    home = default_home()
    return home / "data" if home else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def default_config_dir() -> Path:
    home = default_home()
    return home / "config" if home else Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def default_download_dir() -> Path:
    home = default_home()
    return home / "downloads" if home else Path(platformdirs.user_downloads_dir()) / "MEDIator"


def default_display_name() -> str:
    """The OS user's full name (or login) and the machine: ``Ada Lovelace (lab-ws-3)``, so
    members of a lab can tell each other apart and name each other in commands."""
    name = ""
    try:
        import pwd

        entry = pwd.getpwuid(os.getuid())
        name = entry.pw_gecos.split(",")[0].strip() or entry.pw_name
    except (ImportError, KeyError, OSError):
        pass
    name = name or os.environ.get("USER") or os.environ.get("USERNAME") or "me"
    host = socket.gethostname().split(".")[0]
    return f"{name} ({host})" if host else name


@dataclass(frozen=True, slots=True)
class SettingField:
    name: str
    title: str
    description: str
    #: True: a change applies at once; False: when the node starts next.
    live: bool


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a user or an administrator can configure."""

    data_dir: Path = field(
        default_factory=default_data_dir,
        metadata=_describe("Data folder", "Where this node keeps the cluster journal, dumps and keys."),
    )
    download_dir: Path = field(
        default_factory=default_download_dir,
        metadata=_describe("Download folder", "Default destination for downloaded replica sets.", live=True),
    )
    download_layout: str = field(
        default=DEFAULT_LAYOUT,
        metadata=_describe(
            "Download folder layout",
            "Folders per leaf, from its metadata: {collection}, {patient}, {study}, {series}, {modality}...",
            live=True,
        ),
    )
    display_name: str = field(
        default_factory=lambda: default_display_name(),
        metadata=_describe("Display name", "How other members of the cluster see you.", live=True),
    )
    raft_address: str = field(
        default="",
        metadata=_describe(
            "Cluster address",
            "host:port this node's Raft traffic uses; chosen on first start (loopback for a lone node).",
        ),
    )
    peers: tuple[str, ...] = field(
        default=(),
        metadata=_describe("Cluster peers", "host:port of the other members this node starts with."),
    )
    sources: tuple[dict[str, Any], ...] = field(
        default=({"kind": "idc", "id": "idc"},),
        metadata=_describe(
            "Archives",
            "The sources to browse: kind (idc, tcia, dicomweb, local...), id, and options such as "
            "base_url or folder (docs/sources.md). Passwords and tokens live in the OS keyring, never here.",
            live=True,
        ),
    )
    discovery: bool = field(
        default_factory=lambda: os.environ.get("MEDIATOR_DISCOVERY", "on") != "off",
        metadata=_describe(
            "Discovery", "Advertise this node on the local network (mDNS) and list the machines seen."
        ),
    )
    start_at_login: bool = field(
        default=False,
        metadata=_describe(
            "Start at login",
            "Start MEDIator minimised to the tray when you log in (an autostart entry of the desktop), "
            "so shares, new versions and archive updates reach you without opening it.",
            live=True,
        ),
    )
    update_check_minutes: int = field(
        default=60,
        metadata=_describe(
            "Update check interval (minutes)",
            "How often followed sets are checked for new data in their archives (0: never; "
            "one member of the cluster checks for all).",
            live=True,
        ),
    )

    doi_service: str = field(
        default="",
        metadata=_describe(
            "DOI service",
            "Who mints the DOIs of published versions: zenodo (any lab), datacite (a repository "
            "account), or empty for none; the password or token goes to the OS keyring.",
            live=True,
        ),
    )
    doi_url: str = field(
        default="",
        metadata=_describe(
            "DOI service address",
            "The service's API (empty: its production API; e.g. https://api.test.datacite.org/ or "
            "https://sandbox.zenodo.org/api to try it out).",
            live=True,
        ),
    )
    doi_repository: str = field(
        default="",
        metadata=_describe(
            "DataCite repository", "The repository ID DataCite gave you (e.g. ABC.XYZ).", live=True
        ),
    )
    doi_prefix: str = field(
        default="",
        metadata=_describe("DataCite prefix", "Your repository's DOI prefix (e.g. 10.80000).", live=True),
    )
    publisher: str = field(
        default="",
        metadata=_describe(
            "Publisher",
            "Who publishes your data sets (your institution); the publish form starts with it.",
            live=True,
        ),
    )

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            kind = _PLAIN_TYPES.get(str(f.type))
            if kind is not None and type(value) is not kind[0]:
                raise ValidationError(
                    f"setting {f.name} must be {kind[1]}, not {value!r}; "
                    "fix the settings file or delete the line to get the default"
                )
            if f.type in ("Path",) and not isinstance(value, Path):
                object.__setattr__(self, f.name, Path(value).expanduser())
        if not isinstance(self.peers, tuple):
            object.__setattr__(self, "peers", tuple(self.peers))
        if not all(isinstance(peer, str) for peer in self.peers):
            raise ValidationError(
                f"setting peers must be a list of host:port texts, not {list(self.peers)!r}"
            )
        if not isinstance(self.sources, tuple):
            object.__setattr__(self, "sources", tuple(self.sources))
        for source in self.sources:
            if not isinstance(source, dict) or not isinstance(source.get("kind"), str):
                raise ValidationError(f"each source is an object with a kind; got {source!r}")
            if any(k in (source.get("options") or {}) for k in ("password", "token", "secret")):
                raise ValidationError(
                    f"source {source.get('id') or source['kind']!r} has a secret in its options: "
                    "secrets go to the OS keyring (mediator sources secret ID), never into settings"
                )
        for address in (self.raft_address, *self.peers):
            if address and not _ADDRESS.fullmatch(address):
                raise ValidationError(f"{address!r} is not host:port")
        Layout(self.download_layout)  # a bad template fails here, with what is wrong
        if not self.display_name.strip():
            raise ValidationError("the display name is empty")
        if self.doi_service not in ("", "datacite", "zenodo"):
            raise ValidationError(f"doi_service is datacite, zenodo or empty, not {self.doi_service!r}")
        if self.doi_url and not self.doi_url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise ValidationError("doi_url is an https:// address")
        if not 0 <= self.update_check_minutes <= 7 * 24 * 60:
            raise ValidationError(
                "the update check interval must be between 1 minute and 7 days, or 0 for no checks"
            )

    @staticmethod
    def field_info() -> tuple[SettingField, ...]:
        """Every field, in declaration order, with its title, description and whether a change
        applies live."""
        return tuple(
            SettingField(f.name, f.metadata["title"], f.metadata["description"], f.metadata["live"])
            for f in fields(Settings)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            k: str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v
            for k, v in asdict(self).items()
        }

    @classmethod
    def from_json(cls, data: Any) -> Settings:
        if not isinstance(data, dict):
            raise ValidationError("the settings file does not hold an object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            log.warning("ignoring unknown settings: %s", ", ".join(unknown))
        try:
            return replace(cls(), **{k: v for k, v in data.items() if k in known})
        except (TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, ValidationError):
                raise
            raise ValidationError(f"a setting has the wrong type: {exc}") from None

    @classmethod
    def load(cls, path: Path | None = None) -> Settings:
        """Read the settings file; a missing file gives the defaults."""
        path = path or default_config_dir() / "settings.json"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls()
        try:
            return cls.from_json(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ValidationError(
                f"settings file {path} is not valid JSON ({exc}); fix or delete it to get the defaults"
            ) from None

    def save(self, path: Path | None = None) -> Path:
        """Write atomically (temporary file, then rename)."""
        path = path or default_config_dir() / "settings.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path


class SettingsFile:
    """The settings of one running node: read, changed with validation and saved atomically.

    Thread-safe. The service's settings part and the cluster membership both change settings
    through one of these, so neither overwrites what the other saved.
    """

    def __init__(
        self, settings: Settings | None = None, path: Path | None = None, *, persist: bool = True
    ) -> None:
        """Args:
        settings: the settings to start with (default: read from ``path``).
        path: the settings file (default: ``settings.json`` under the config folder).
        persist: False keeps changes in memory only (a service without a node around it).
        """
        self._path = path
        self._persist = persist
        self._settings = settings if settings is not None else Settings.load(path)
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        """The file these settings are saved to."""
        return self._path or default_config_dir() / "settings.json"

    @property
    def current(self) -> Settings:
        return self._settings

    def validate(self, **changes: Any) -> Settings:
        """The settings ``changes`` would make, saving nothing.

        Raises:
            ValidationError: a value breaks a rule, or names no setting.
        """
        known = {f.name for f in fields(Settings)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValidationError(
                f"no such setting: {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        try:
            return replace(self._settings, **changes)
        except (TypeError, AttributeError) as exc:
            raise ValidationError(f"a setting has the wrong type: {exc}") from None

    def change(self, **changes: Any) -> Settings:
        """Validate and save ``changes``; returns the new settings. Raises as ``validate``, and
        then nothing was saved."""
        with self._lock:
            new = self.validate(**changes)
            if self._persist:
                new.save(self._path)
            self._settings = new
            return new

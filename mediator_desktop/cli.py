"""The ``mediator`` command: replica sets, archives, downloads and the cluster from a terminal.

Every command but ``node run`` talks to the node running on this machine (the desktop app or
``mediator node run``) through its local API; with none running, it starts one for the length
of the command. ``--json`` gives machine-readable output on every command.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import logging
import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mediator_desktop._version import __version__
from mediator_desktop.core import errors
from mediator_desktop.core.diff import ManifestDiff
from mediator_desktop.core.errors import (
    EXIT_ARCHIVE_ERROR,
    EXIT_CLUSTER_UNAVAILABLE,
    EXIT_CONFLICT,
    EXIT_DOWNLOAD_INCOMPLETE,
    EXIT_INTERRUPTED,
    EXIT_NO_NODE,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_OUTCOME_UNKNOWN,
    EXIT_PERMISSION_DENIED,
    EXIT_USAGE,
    EXIT_USER_ERROR,
)
from mediator_desktop.core.jobs import human_bytes
from mediator_desktop.core.layout import DEFAULT_LAYOUT
from mediator_desktop.core.manifest import Manifest
from mediator_desktop.core.paths import private_dir
from mediator_desktop.core.pointer import Pointer, make_filters
from mediator_desktop.core.selection import JOIN_EVERY, JOIN_FILTER
from mediator_desktop.core.settings import HOME_ENV, Settings, default_config_dir

if TYPE_CHECKING:
    from mediator_desktop.sdk import Mediator

# The exit codes live with the errors (``core.errors``: each error carries its own); their names
# stay importable from here.
__all__ = [
    "EXIT_ARCHIVE_ERROR",
    "EXIT_CLUSTER_UNAVAILABLE",
    "EXIT_CONFLICT",
    "EXIT_DOWNLOAD_INCOMPLETE",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_NO_NODE",
    "EXIT_OK",
    "EXIT_OUTCOME_UNKNOWN",
    "EXIT_PERMISSION_DENIED",
    "EXIT_USAGE",
    "EXIT_USER_ERROR",
    "build_parser",
    "main",
]

EPILOG = """exit status:
  0 ok; 1 user error (bad input, a rule broken); 2 usage; 3 cluster unavailable (no quorum,
  nothing was written); 4 not found; 5 permission denied; 6 conflict (someone committed first: run
  again on the new head); 7 archive error; 8 download finished with failures (run it again to retry
  them); 9 no node reachable; 10 outcome unknown (the change may have been applied: look before you
  run it again); 130 interrupted.
pointers: SOURCE[/KEY...][?NAME=VALUE[,VALUE][&NAME=VALUE]], e.g. idc/nlst?Modality=CT
"""


def _emit(args: argparse.Namespace, data: Any, human: Callable[[], None]) -> int:
    if args.json:
        print(json.dumps(_plain(data), indent=None))
    else:
        human()
    return EXIT_OK


def _plain(data: Any) -> Any:
    if hasattr(data, "model_dump"):
        return data.model_dump(mode="json")
    if isinstance(data, list):
        return [_plain(x) for x in data]
    if isinstance(data, dict):
        return {k: _plain(v) for k, v in data.items()}
    return data


def _client(args: argparse.Namespace) -> Mediator:
    from mediator_desktop.sdk import Mediator

    client = Mediator()
    if client.embedded and not args.json:
        print(
            "(no node was running: one runs for this command; `mediator node run` keeps one up)",
            file=sys.stderr,
        )
    return client


def _size(n: int | None) -> str:
    return "?" if n is None else human_bytes(n)


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M")


# -- offline commands ----------------------------------------------------------------------------
def _info(args: argparse.Namespace) -> int:
    path = default_config_dir() / "settings.json"
    settings = Settings.load(path)
    data = {"version": __version__, "settings_file": str(path), **settings.to_json()}

    def human() -> None:
        print(f"MEDIator Desktop {__version__}")
        exists = "" if path.exists() else " (not written yet: every setting has its default)"
        print(f"Settings file: {path}{exists}")
        for field in Settings.field_info():
            print(f"{field.title}: {data[field.name]}")
        print(
            "Change settings with `mediator settings --set NAME=VALUE`, archives with `mediator sources add`."
        )

    return _emit(args, data, human)


def _manifest_diff(args: argparse.Namespace) -> int:
    old, new = (Manifest.decode(Path(p).read_bytes()) for p in (args.old, args.new))
    diff = ManifestDiff.between(old, new)
    data = {
        "old": old.id,
        "new": new.id,
        "summary": diff.summary(),
        "added": len(diff.added),
        "removed": len(diff.removed),
        "changed": len(diff.changed),
    }
    return _emit(args, data, lambda: print(diff.summary()))


# -- the headless node ---------------------------------------------------------------------------
def _node_run(args: argparse.Namespace) -> int:
    from mediator_desktop.node import Node, cluster_secret, set_cluster_secret

    settings = Settings.load()
    changed: dict[str, Any] = {}
    if args.data_dir:
        changed["data_dir"] = Path(args.data_dir).expanduser().absolute()
    if args.listen:
        changed["raft_address"] = args.listen
    if args.peer:
        changed["peers"] = tuple(args.peer)
    if changed:
        settings = replace(settings, **changed)
        settings.save()
    log_file = Path(args.log_file) if args.log_file else settings.data_dir / "logs" / "node.log"
    _setup_logging(log_file, args.verbose)
    if args.secret_file:
        secret = Path(args.secret_file).read_text(encoding="utf-8").strip()
        if len(secret) < 16:
            raise errors.ValidationError(
                f"the cluster secret in {args.secret_file} is shorter than 16 characters"
            )
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if cluster_secret(settings.data_dir) != secret:
            set_cluster_secret(settings.data_dir, secret)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with Node(settings, api=True) as node:
        if args.join:
            if len(node.service.cluster.status().members) > 1:
                logging.getLogger("mediator").warning("already in a cluster; --join is ignored")
            else:
                node.service.cluster.join(args.join)
        assert node.api is not None
        ready = {
            "state": "ready",
            "api": node.api.url,
            "cluster_address": node.settings.raft_address,
            "data_dir": str(node.data_dir),
            "log_file": str(log_file),
            "pid": os.getpid(),
        }
        if args.json:
            print(json.dumps(ready), flush=True)
        else:
            print(
                f"mediator node ready: API {node.api.url}, cluster address {node.settings.raft_address}, "
                f"data in {node.data_dir}, log in {log_file}. Stop with Ctrl-C or SIGTERM.",
                flush=True,
            )
        # Waking now and then, not one endless wait: Python runs a signal's handler on the main
        # thread only when that thread runs bytecode, and a SIGTERM that the kernel delivered to
        # another thread (right after a SIGCONT, say) would otherwise never be acted on.
        while not stop.wait(0.5):
            pass
        logging.getLogger("mediator").info("stopping on a signal")
    return EXIT_OK


def _setup_logging(log_file: Path, verbose: bool) -> None:
    import logging.handlers

    private_dir(log_file.parent)  # under the data folder, which it may create first
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    to_file = logging.handlers.RotatingFileHandler(log_file, maxBytes=10_000_000, backupCount=3)
    to_stderr = logging.StreamHandler(sys.stderr)
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for handler in (to_file, to_stderr):
        handler.setFormatter(formatter)
        root.addHandler(handler)


# -- archives ------------------------------------------------------------------------------------
def _filters(items: Sequence[str] | None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in items or ():
        name, eq, value = item.partition("=")
        if not eq or not name or not value:
            raise errors.ValidationError(f"--filter {item!r} must be NAME=VALUE, e.g. --filter Modality=CT")
        out.setdefault(name, []).extend(v for v in value.split(",") if v)
    return out


def _print_items(items: Sequence[Any]) -> None:
    for item in items:
        count = "" if item.leaves is None else f"{item.leaves} leaves"
        size = "" if item.size is None else _size(item.size)
        label = f"  {item.label}" if item.label and item.label != item.key else ""
        print(f"{item.key}\t{item.level}\t{count}\t{size}{label}")


def _sources_list(args: argparse.Namespace) -> int:
    with _client(args) as m:
        sources = m.sources()

    def human() -> None:
        for s in sources:
            print(f"{s.id}\t{s.title}\t{' > '.join(s.levels)}\tfilters: {', '.join(s.filterable) or '-'}")

    return _emit(args, sources, human)


def _sources_kinds(args: argparse.Namespace) -> int:
    with _client(args) as m:
        kinds = m.source_kinds()

    def human() -> None:
        for kind in kinds:
            print(f"{kind.name}: {kind.title}. {kind.description}".rstrip())
            for o in kind.options:
                need = (
                    "required"
                    if o.required
                    else f"default {o.default}"
                    if o.default is not None
                    else "optional"
                )
                flag = f"--{o.name.replace('_', '-')}" if o.name in _ADD_FLAGS else f"--option {o.name}=..."
                print(f"  {flag} ({need}): {o.help or o.title}")
            if kind.secret:
                secret = kind.secret_help or "kept in the OS keyring"
                print(f"  --{kind.secret.replace(' ', '-')}-from-stdin: {secret}")

    return _emit(args, kinds, human)


def _read_secret(what: str) -> str:
    import getpass

    if sys.stdin.isatty():
        return getpass.getpass(f"{what}: ")
    return sys.stdin.readline().rstrip("\r\n")


def _option_value(kind: Any, name: str, text: str) -> str | int | bool:
    """``text`` as the value of option ``name`` of a kind of archive (its type from the kind)."""
    spec = next((o for o in kind.options if o.name == name), None)
    if spec is None:
        known = ", ".join(f"--{o.name.replace('_', '-')}" for o in kind.options) or "none"
        raise errors.ValidationError(f"a {kind.name} archive has no option {name!r}; its options: {known}")
    if spec.kind == "int":
        try:
            return int(text)
        except ValueError:
            raise errors.ValidationError(
                f"--{name.replace('_', '-')} is a whole number, not {text!r}"
            ) from None
    if spec.kind == "bool":
        return _setting_value(name, text, False)  # type: ignore[no-any-return]
    if spec.kind == "folder":
        return str(Path(text).expanduser().absolute())  # named from here; the node may run elsewhere
    return text


#: Options of archives that ``sources add`` takes as flags of their own; others go as ``--option``.
_ADD_FLAGS = ("base_url", "folder", "username", "endpoint_url", "index")


def _sources_add(args: argparse.Namespace) -> int:
    pairs = list(args.option or ())
    for name in _ADD_FLAGS:
        if getattr(args, name, None):
            pairs.append(f"{name}={getattr(args, name)}")
    secret = _read_secret(f"{args.secret} for {args.id or args.kind}") if args.secret else None
    with _client(args) as m:
        kinds = {k.name: k for k in m.source_kinds()}
        if args.kind not in kinds:
            raise errors.ValidationError(
                f"unknown kind of archive {args.kind!r}; kinds: {', '.join(sorted(kinds))} "
                "(see `mediator sources kinds`)"
            )
        kind = kinds[args.kind]
        options: dict[str, str | int | bool] = {}
        for item in pairs:
            name, eq, text = item.partition("=")
            if not eq or not name:
                raise errors.ValidationError(f"--option {item!r} must be NAME=VALUE")
            options[name.replace("-", "_")] = _option_value(kind, name.replace("-", "_"), text)
        if secret is not None and not kind.secret:
            raise errors.ValidationError(f"a {kind.name} archive takes no password or token")
        checked = "" if args.no_test else m.test_source(args.id, kind=args.kind, secret=secret, **options)
        source = m.add_source(args.kind, id=args.id, secret=secret, **options)

    def human() -> None:
        print(f"added {source.id}: {source.title}" + (f" ({checked})" if checked else ""))
        print(f"browse it with `mediator sources browse {source.id}`", file=sys.stderr)

    return _emit(args, {"source": source, "test": checked or None}, human)


def _sources_remove(args: argparse.Namespace) -> int:
    with _client(args) as m:
        m.remove_source(args.source)
    return _emit(
        args,
        {"removed": args.source},
        lambda: print(
            f"removed {args.source}; sets keep their pointers to it and resolve again once it is added back"
        ),
    )


def _sources_test(args: argparse.Namespace) -> int:
    with _client(args) as m:
        message = m.test_source(args.source)
    return _emit(
        args, {"source": args.source, "message": message}, lambda: print(f"{args.source}: {message}")
    )


def _sources_rescan(args: argparse.Namespace) -> int:
    with _client(args) as m:
        report = m.rescan(args.source)

    def human() -> None:
        print(f"{args.source}: {report.summary}")
        for example in report.skipped_examples[:5]:
            print(f"  skipped {example}", file=sys.stderr)

    return _emit(args, report, human)


def _sources_secret(args: argparse.Namespace) -> int:
    secret = _read_secret(f"password or token for {args.source}")
    if not secret:
        raise errors.ValidationError("no password or token was given (on standard input)")
    with _client(args) as m:
        m.set_source_secret(args.source, secret)
    return _emit(
        args,
        {"source": args.source, "stored": True},
        lambda: print(f"stored the secret of {args.source} in the OS keyring; it is used from now on"),
    )


def _identity(args: argparse.Namespace) -> int:
    with _client(args) as m:
        if args.identity_command == "set-name":
            m.change_settings(display_name=args.name)
        node = m.node()
    data = {"display_name": node.display_name, "key_id": node.key_id}
    return _emit(args, data, lambda: print(f"{node.display_name} (key {node.key_id[:8]}: {node.key_id})"))


def _source_path(args: argparse.Namespace) -> tuple[str, ...]:
    """The source id and path, also when given as one pointer (``gdc/TCGA/TCGA-LUAD?...``, as
    ``sets create --add`` takes it): its filters join ``--filter``."""
    if "/" not in args.source and "?" not in args.source:
        return (args.source, *args.path)
    pointer = Pointer.parse(args.source)
    args.filter = [*(args.filter or []), *(f"{k}={','.join(v)}" for k, v in pointer.filters)]
    return (pointer.source_id, *pointer.path, *args.path)


def _sources_browse(args: argparse.Namespace) -> int:
    where = _source_path(args)
    with _client(args) as m:
        page = m.browse(*where, filters=_filters(args.filter), offset=args.offset, limit=args.limit)

    def human() -> None:
        _print_items(page.items)
        shown = f"{page.offset + 1}-{page.offset + len(page.items)}" if page.items else "none"
        hint = f"; next page: --offset {page.offset + len(page.items)}" if page.more else ""
        print(f"({shown} of {page.total}{hint})", file=sys.stderr)

    return _emit(args, page, human)


def _sources_search(args: argparse.Namespace) -> int:
    source, *path = _source_path(args)
    with _client(args) as m:
        found = m.search(source, args.text, *path, filters=_filters(args.filter), limit=args.limit)

    def human() -> None:
        _print_items(found)
        print(f"({len(found)} found)", file=sys.stderr)

    return _emit(args, found, human)


# -- sets ----------------------------------------------------------------------------------------
def _print_set(rs: Any) -> None:
    owner = f"{rs.owner_name} ({rs.owner[:8]})" if rs.owner_name else rs.owner[:8]
    print(f"{rs.name}  [{rs.id}]")
    print(f"  owner: {owner}; visibility: {rs.visibility}; head: {rs.head or 'no version yet'}")
    if rs.head:
        print(f"  {rs.leaves} leaves, {_size(rs.size)}")
    if rs.description:
        print(f"  {rs.description}")
    if rs.editors:
        print(f"  editors: {', '.join(e[:8] for e in rs.editors)}")
    if rs.forked_from:
        print(f"  forked from {rs.forked_from.set_id} version {rs.forked_from.version}")
    if rs.published:
        print(f"  published versions: {', '.join(map(str, rs.published))}")
    if rs.update:
        print(f"  archive update: {rs.update} (see `mediator sets drift {_quoted(rs.name)}`)")


def _quoted(name: str) -> str:
    """A set's name as a shell command takes it."""
    return shlex.quote(name)


def _sets_list(args: argparse.Namespace) -> int:
    with _client(args) as m:
        sets = m.sets(args.scope)

    def human() -> None:
        if not sets:
            print("no sets yet: create one with `mediator sets create NAME --add POINTER`", file=sys.stderr)
        for rs in sets:
            head = f"v{rs.head}" if rs.head else "-"
            update = f"\tupdate: {rs.update}" if rs.update else ""  # an archive update waits
            size = _size(rs.size)
            print(f"{rs.id}\t{rs.name}\t{rs.visibility}\t{head}\t{rs.leaves or 0} leaves\t{size}{update}")

    return _emit(args, sets, human)


def _cohort(args: argparse.Namespace, m: Mediator) -> list[str]:
    """The join pointer of ``--cohort TABLE --where COND... --in TARGET...``, the joined rules of
    ``--match POINTER... --in TARGET... [--every]``, or none."""
    if args.match:
        if args.cohort is not None:
            raise errors.ValidationError(
                "--cohort (a clinical table's patients) and --match (an archive's patients) are two "
                "kinds of cohort; give one at a time"
            )
        if args.where:
            raise errors.ValidationError(
                "--where goes with --cohort TABLE; with --match, filter the pointer itself, "
                "e.g. --match 'idc/tcga_luad?Modality=CT'"
            )
        if not args.into:
            raise errors.ValidationError(
                f"--match {args.match[0]} needs --in TARGET: the archives to find its patients in, "
                "e.g. --in gdc --in pathology (see `mediator match`)"
            )
        if not args.kind:
            return m.match_cohort(args.match, into=args.into, every=args.every)
        return m.match_cohort(args.match, into=args.into, chosen=_chosen(args), every=args.every)
    for flag, given in (("--every", args.every), ("--kind", args.kind)):
        if given:
            raise errors.ValidationError(
                f"{flag} goes with --match POINTER --in TARGET (see `mediator sets create --help`)"
            )
    if args.cohort is None:
        if args.where or args.into:
            raise errors.ValidationError(
                "--where and --in go with --cohort TABLE, e.g. --cohort trial --where 'age>=60' "
                "--in idc/nlst (or --in with --match POINTER)"
            )
        return []
    if not args.into:
        raise errors.ValidationError(
            f"--cohort {args.cohort} needs --in TARGET: the archives to find its patients in, "
            "e.g. --in idc/nlst"
        )
    return [m.cohort(args.cohort, *(args.where or ()), into=args.into)]


def _chosen(args: argparse.Namespace) -> dict[str, list[str] | None]:
    """The kinds of data chosen per archive of ``--in``: ``--kind gdc=RNA-Seq,WXS`` (an archive
    without ``--kind``: everything it holds)."""
    chosen: dict[str, list[str] | None] = {Pointer.parse(text).source_id: None for text in args.into}
    for item in args.kind:
        name, eq, labels = item.partition("=")
        kinds = [label.strip() for label in labels.split(",") if label.strip()]
        if not eq or not name or not kinds:
            raise errors.ValidationError(
                f"--kind {item!r} must be ARCHIVE=KIND[,KIND], e.g. --kind gdc=RNA-Seq,WXS "
                "(the kinds as `mediator match` names them)"
            )
        if name not in chosen:
            raise errors.ValidationError(
                f"--kind {item}: {name} is not an archive of --in ({', '.join(chosen)}); add --in {name}"
            )
        chosen[name] = [*(chosen[name] or []), *kinds]
    return chosen


def _sets_create(args: argparse.Namespace) -> int:
    with _client(args) as m:
        cohort = _cohort(args, m)
        rs = m.create_set(
            args.name,
            add=[*(args.add or ()), *cohort],
            description=args.description,
            visibility=args.visibility,
            message=args.message,
            strict=args.strict,
        )
    _warn(rs.warnings)

    def human() -> None:
        _print_set(rs)
        if not args.add and not cohort:
            print(f"created; add data with `mediator sets add {rs.id} POINTER`", file=sys.stderr)

    return _emit(args, rs, human)


def _sets_show(args: argparse.Namespace) -> int:
    with _client(args) as m:
        rs = m.find_set(args.set)
        number = args.version or rs.head
        version = m.version(rs.id, number) if number else None
        leaves = list(m.leaves(rs.id, number)) if args.leaves and number else []
    data = {"set": rs, "version": version, "leaves": leaves if args.leaves else None}

    def human() -> None:
        _print_set(rs)
        if version is not None:
            print(f"version {version.number} ({_when(version.time)}): {version.message or '(no message)'}")
            for rule in version.rules:
                print(f"  {'+' if rule.include else '-'} {_rule_text(rule.pointer)}")
        for leaf in leaves:
            print(f"{'/'.join([leaf.source, *leaf.path])}\t{_size(leaf.size)}")

    return _emit(args, data, human)


def _rule_text(pointer: Any) -> str:
    """A rule's pointer as people read it: ``idc/nlst?Modality=CT``; a cohort as ``cohort
    clinical/trial where age>=60 in idc/nlst, lab`` (``@every``: ``... (only patients every
    archive holds)``)."""
    text = "/".join([pointer.source, *pointer.path])
    targets = pointer.filters.get(JOIN_FILTER)
    if targets:
        from mediator_desktop.core.clinical import describe_filters  # heavy (the store): only here

        own = {k: v for k, v in pointer.filters.items() if k != JOIN_EVERY}
        try:
            where = describe_filters(make_filters(own))
        except errors.ValidationError:  # not written by parse_conditions: show it as it is
            where = [f"{k}={','.join(v)}" for k, v in own.items() if k != JOIN_FILTER]
        every = " (only patients every archive holds)" if JOIN_EVERY in pointer.filters else ""
        return (
            f"cohort {text}"
            + (f" where {', '.join(where)}" if where else "")
            + f" in {', '.join(targets)}{every}"
        )
    if pointer.filters:
        text += "?" + "&".join(f"{k}={','.join(v)}" for k, v in pointer.filters.items())
    return text


def _update(args: argparse.Namespace, add: Sequence[str], remove: Sequence[str]) -> int:
    with _client(args) as m:
        rs = m.find_set(args.set)
        if "cohort" in args:
            add = [*add, *_cohort(args, m)]
            if not add:
                raise errors.ValidationError(
                    "say what to add: POINTER..., or a cohort: --cohort TABLE --where COND --in TARGET, "
                    "or --match POINTER --in TARGET"
                )
        result = m.update(rs.id, add=add, remove=remove, message=args.message, strict=args.strict)
    _warn(result.warnings)

    def human() -> None:
        if result.version is None:
            print(f"{rs.name}: nothing changed (still version {rs.head})")
        else:
            print(
                f"{rs.name}: version {result.version}, {result.set.leaves} leaves, {_size(result.set.size)}"
            )

    return _emit(args, result, human)


def _warn(said: Sequence[str]) -> None:
    """The node's warnings (a pointer that selects nothing...) as ``warning: ...`` lines."""
    for text in said:
        print(f"warning: {text}", file=sys.stderr)


def _sets_add(args: argparse.Namespace) -> int:
    return _update(args, args.pointers, ())


def _sets_remove(args: argparse.Namespace) -> int:
    return _update(args, (), args.pointers)


def _sets_diff(args: argparse.Namespace) -> int:
    with _client(args) as m:
        rs = m.find_set(args.set)
        other = m.find_set(args.other).id if args.other else None
        diff = m.diff(rs.id, args.old, args.new, other=other, limit=args.limit)

    def human() -> None:
        print(diff.summary)
        if diff.selection_summary != "no changes":
            print(f"selection: {diff.selection_summary}")
        _print_leaves(diff)

    return _emit(args, diff, human)


def _print_leaves(diff: Any) -> None:
    """The leaves of a diff, one a line: ``+`` added, ``-`` removed, ``~`` changed."""
    for mark, leaves in (
        ("+", diff.added_leaves),
        ("-", diff.removed_leaves),
        ("~", diff.changed_leaves),
    ):
        for leaf in leaves:
            print(f"{mark} {leaf}")
    listed = len(diff.added_leaves) + len(diff.removed_leaves) + len(diff.changed_leaves)
    if listed < diff.added + diff.removed + diff.changed:
        print(
            f"({listed} of {diff.added + diff.removed + diff.changed} listed; more with --limit)",
            file=sys.stderr,
        )


def _sets_duplicate(args: argparse.Namespace) -> int:
    with _client(args) as m:
        rs = m.duplicate(m.find_set(args.set).id, args.version, args.name)
    return _emit(args, rs, lambda: _print_set(rs))


def _sets_share(args: argparse.Namespace) -> int:
    if not (args.visibility or args.editor or args.revoke):
        raise errors.ValidationError(
            "say how to share: --visibility cluster|public|private, --editor USER, --revoke USER"
        )
    with _client(args) as m:
        rs = m.find_set(args.set)
        users = m.users()

        def key_of(who: str) -> str:
            exact = [u.key_id for u in users if who in (u.key_id, u.display_name)]
            prefix = [u.key_id for u in users if u.key_id.startswith(who)]
            found = exact or prefix
            if len(set(found)) != 1:
                known = ", ".join(f"{u.display_name} ({u.key_id[:8]})" for u in users)
                raise errors.NotFound(
                    f"{who!r} names {'no' if not found else 'more than one'} user; known: {known}"
                )
            return found[0]

        rs = m.share(
            rs.id,
            visibility=args.visibility,
            editors=[key_of(w) for w in args.editor or ()],
            revoke=[key_of(w) for w in args.revoke or ()],
        )
    return _emit(args, rs, lambda: _print_set(rs))


def _sets_follow(args: argparse.Namespace) -> int:
    with _client(args) as m:
        rs = m.find_set(args.set)
        rs = m.unfollow(rs.id) if args.stop else m.follow(rs.id)
    return _emit(args, rs, lambda: print(f"{'no longer following' if args.stop else 'following'} {rs.name}"))


def _sets_rename(args: argparse.Namespace) -> int:
    with _client(args) as m:
        rs = m.rename(m.find_set(args.set).id, args.new_name, args.description)
    return _emit(args, rs, lambda: _print_set(rs))


def _sets_delete(args: argparse.Namespace) -> int:
    with _client(args) as m:
        rs = m.find_set(args.set)
        if not args.yes:
            raise errors.ValidationError(
                f"deleting {rs.name!r} ({rs.id}) cannot be undone; add --yes to do it"
            )
        m.delete_set(rs.id)
    return _emit(args, {"deleted": rs.id}, lambda: print(f"deleted {rs.name}"))


def _sets_history(args: argparse.Namespace) -> int:
    with _client(args) as m:
        rs = m.find_set(args.set)
        versions = m.history(rs.id)
        users = {u.key_id: u.display_name for u in m.users()}

    def human() -> None:
        for v in versions:
            who = users.get(v.author, v.author[:8])
            print(f"v{v.number}\t{_when(v.time)}\t{who}\t{v.message or '(no message)'}")

    return _emit(args, versions, human)


# -- archive updates -----------------------------------------------------------------------------
def _sets_check(args: argparse.Namespace) -> int:
    with _client(args) as m:
        ids = [m.find_set(name).id for name in args.sets]
        outcomes = m.check(*ids, full=args.full)

    def human() -> None:
        if not outcomes:
            print(
                "no sets to check: you neither own nor follow any (follow one: `mediator sets follow NAME`)",
                file=sys.stderr,
            )
        for outcome in outcomes:
            print(outcome.line)
        if any(o.drift is not None for o in outcomes):
            print("see what changed with `mediator sets drift NAME`", file=sys.stderr)

    _emit(args, outcomes, human)
    return errors.SourceError.exit_code if any(o.error for o in outcomes) else EXIT_OK


def _sets_drift(args: argparse.Namespace) -> int:
    with _client(args) as m:
        rs = m.find_set(args.set)
        track = m.drift(rs.id)
        diff = m.drift_diff(rs.id, limit=args.limit) if track.drift is not None else None

    def human() -> None:
        drift, check = track.drift, track.last_check
        head = f" v{rs.head}" if rs.head else ""
        if drift is None:
            print(f"{rs.name}{head}: {track.line}")
        else:  # the update first, even when a later check failed
            declined = " (declined)" if track.declined else ""
            print(f"{rs.name}{head}: archive update{declined}: {drift.summary}")
            state = f", against {drift.state}" if drift.state else ""
            print(f"  found {_when(drift.checked)} by {drift.by_name or drift.by[:8]}{state}")
            for note in drift.notes:
                print(f"  note: {note}")
        if check is not None:
            outcome = f"failed: {check.error}" if check.error else "worked"
            print(f"  last check: {_when(check.time)} by {check.by_name or check.by[:8]}, {outcome}")
        if diff is not None:
            _print_leaves(diff)
        name = _quoted(rs.name)
        if drift is None:
            print(f"check now with `mediator sets check {name}`", file=sys.stderr)
        elif track.declined:
            print(f"you declined this update; `mediator sets accept {name}` still takes it", file=sys.stderr)
        else:
            print(
                f"take it with `mediator sets accept {name}`, or `mediator sets decline {name}`",
                file=sys.stderr,
            )

    return _emit(args, {"set": rs, "track": track, "diff": diff}, human)


def _sets_accept(args: argparse.Namespace) -> int:
    if args.name and not args.fork:
        raise errors.ValidationError("--name names the new set: use it with --fork")
    with _client(args) as m:
        rs = m.find_set(args.set)
        result = m.accept(rs.id, fork=args.fork, name=args.name or "")
    _warn(result.warnings)

    def human() -> None:
        new = result.set
        copy = "" if new.id == rs.id else f" (a new set of yours, with the update of {rs.name})"
        print(f"{new.name}{copy}: version {result.version}, {new.leaves} leaves, {_size(new.size)}")
        print(
            f"fetch only what changed: `mediator download {_quoted(new.name)} FOLDER`, "
            "FOLDER being where you downloaded the set before",
            file=sys.stderr,
        )

    return _emit(args, result, human)


def _sets_decline(args: argparse.Namespace) -> int:
    with _client(args) as m:
        rs = m.find_set(args.set)
        track = m.dismiss(rs.id)

    def human() -> None:
        summary = f" ({track.drift.summary})" if track.drift is not None else ""
        print(f"{rs.name}: declined the archive update{summary}; the set stays at version {rs.head}")

    return _emit(args, track, human)


# -- clinical tables and cohorts -----------------------------------------------------------------
def _grid(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ", width: int = 30) -> None:
    """Rows under a header, in aligned columns (values longer than ``width`` are cut)."""

    def cut(text: str) -> str:
        text = " ".join(text.split())  # no tabs or line breaks inside a cell
        return text if len(text) <= width else text[: width - 1] + "…"

    cells = [[cut(c) for c in header], *([cut(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) if i < len(row) else 0 for row in cells) for i in range(len(header))]
    for row in cells:
        print((indent + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False))).rstrip())


def _range(column: Any) -> str:
    if column.low is None and column.high is None:
        return "-"
    if column.low == column.high:
        return str(column.low)
    return f"{column.low} .. {column.high}"


def _print_columns(columns: Sequence[Any], key: str | None = None) -> None:
    _grid(
        ("column", "kind", "blanks", "distinct", "range"),
        [
            (
                c.name + (" (key)" if c.name == key else ""),
                c.kind,
                str(c.blanks),
                str(c.distinct),
                _range(c),
            )
            for c in columns
        ],
    )


def _table_line(t: Any) -> str:
    """``trial v2: 40 rows, key column PatientID, from trial.csv``."""
    source = f", from {t.filename}" if t.filename else ""
    return f"{t.name} v{t.number}: {t.rows:,} rows, key column {t.key_column}{source}"


def _tables_add(args: argparse.Namespace) -> int:
    path = Path(args.file).expanduser().absolute()
    with _client(args) as m:
        before = {t.name: t.table_id for t in m.tables()}
        table = m.add_table(path, name=args.name, key_column=args.key)
        columns = m.table_columns(table.name)
        head = m.table_rows(table.name, limit=args.head) if args.head else None
    unchanged = before.get(table.name) == table.table_id

    def human() -> None:
        said = " (unchanged: the same content as before)" if unchanged else ""
        print(_table_line(table) + said)
        _print_columns(columns, table.key_column)
        if head is not None and head.rows:
            print(f"first {len(head.rows)} rows:")
            _grid(head.columns, head.rows)
        name = _quoted(table.name)
        print(
            f"find patients with `mediator tables select {name} 'COLUMN>=VALUE'`; hold them in a set "
            f"with `mediator sets create NAME --cohort {name} --where COND --in ARCHIVE`",
            file=sys.stderr,
        )

    return _emit(args, {"table": table, "new": not unchanged, "columns": columns}, human)


def _tables_preview(args: argparse.Namespace) -> int:
    path = Path(args.file).expanduser().absolute()
    with _client(args) as m:
        preview = m.preview_table(path, key_column=args.key)

    def human() -> None:
        if preview.key_guess is None:
            key = "no key column found (name one with --key COLUMN)"
        elif args.key:
            key = f"key column {preview.key_guess}"
        else:
            key = f"key column {preview.key_guess} (guessed; another with --key COLUMN)"
        print(f"{preview.filename}: {preview.rows:,} rows, {key}")
        for problem in preview.problems:
            print(f"  problem: {problem}")
        _print_columns(preview.columns, preview.key_guess)
        if preview.head:
            print(f"first {len(preview.head)} rows:")
            _grid([c.name for c in preview.columns], preview.head)
        if not preview.problems and preview.key_guess is not None:
            print(f"add it with `mediator tables add {_quoted(str(path))}`", file=sys.stderr)

    return _emit(args, preview, human)


def _tables_list(args: argparse.Namespace) -> int:
    with _client(args) as m:
        tables = m.tables()
        users = {u.key_id: u.display_name for u in m.users()} if tables else {}

    def human() -> None:
        if not tables:
            print("no clinical tables yet: add one with `mediator tables add FILE.csv`", file=sys.stderr)
        for t in tables:
            who = t.author_name or users.get(t.author, t.author[:8])
            print(
                f"{t.name}	v{t.number}	{t.rows:,} rows	key {t.key_column}	{len(t.columns)} columns	"
                f"{_when(t.time)}	{who}"
            )

    return _emit(args, tables, human)


def _tables_show(args: argparse.Namespace) -> int:
    with _client(args) as m:
        table = m.table(args.name)
        columns = m.table_columns(args.name)

    def human() -> None:
        latest = table.table
        print(_table_line(latest))
        _print_columns(columns, latest.key_column)
        print("versions:")
        for v in table.history:
            print(
                f"  v{v.number}	{_when(v.time)}	{v.author_name or v.author[:8]}	{v.rows:,} rows	{v.filename}"
            )

    return _emit(args, {"table": table, "columns": columns}, human)


def _tables_values(args: argparse.Namespace) -> int:
    with _client(args) as m:
        values = m.table_values(args.name, args.column, limit=args.limit)

    def human() -> None:
        for v in values:
            print(f"{v.value}	{v.count}")
        if len(values) == args.limit:
            print(f"(the first {args.limit} values; more with --limit)", file=sys.stderr)

    return _emit(args, values, human)


def _tables_select(args: argparse.Namespace) -> int:
    with _client(args) as m:
        patients = m.select_patients(args.name, *args.conditions)

    def human() -> None:
        if args.count:
            print(len(patients))
            return
        for patient in patients:
            print(patient)
        print(f"({len(patients)} patients)", file=sys.stderr)

    return _emit(args, {"patients": patients, "count": len(patients)}, human)


def _tables_rows(args: argparse.Namespace) -> int:
    with _client(args) as m:
        rows = m.table_rows(args.name, keys=args.keys or None, limit=args.limit)

    def human() -> None:
        _grid(rows.columns, rows.rows, indent="", width=60)
        print(f"({len(rows.rows)} rows)", file=sys.stderr)

    return _emit(args, rows, human)


def _tables_join(args: argparse.Namespace) -> int:
    with _client(args) as m:
        preview = m.preview_join(args.name, *args.conditions, into=args.into)

    def human() -> None:
        where = f" where {', '.join(args.conditions)}" if args.conditions else ""
        print(f"{args.name}: {len(preview.patients)} patients{where}")
        for target in preview.targets:
            line = f"{target.target}: {target.found} of {target.patients} patients found"
            if target.missing:
                shown = ", ".join(target.missing[:8])
                more = f" (+{len(target.missing) - 8} more)" if len(target.missing) > 8 else ""
                line += f"; missing: {shown}{more}"
            print(line)
        print(f"pointer: {preview.pointer}")
        print(
            f"hold it in a set: `mediator sets create NAME --add {_quoted(preview.pointer)}`, or "
            "`mediator sets add SET` with the same --cohort, --where and --in",
            file=sys.stderr,
        )

    return _emit(args, preview, human)


CONDITIONS_HELP = """conditions (quote them for the shell; all must hold):
  'age>=60'  'age<=70'  'age>60'  'age<60'   compare numbers and dates
  age=60..70                                 a range, both ends included
  stage=II,IIA,IIB                           any of these values
  'smoking=*'                                has a value;  'smoking=!'  has none
"""


def _cohort_options(parser: argparse.ArgumentParser, example: str, match_example: str) -> None:
    """``--cohort TABLE --where COND --in TARGET``: a cohort join, added as one pointer; ``--match
    POINTER --in TARGET [--every]``: an archive's patients joined to others, one rule a pointer."""
    group = parser.add_argument_group(
        "a cohort (the patients of a clinical table, or of an archive, in other archives; see "
        "`mediator tables` and `mediator match`)"
    )
    group.add_argument("--cohort", metavar="TABLE", help="a clinical table (see `mediator tables list`)")
    group.add_argument(
        "--where", action="append", metavar="COND", help="a condition on a column, e.g. 'age>=60' (repeat)"
    )
    group.add_argument(
        "--match",
        action="append",
        metavar="POINTER",
        help="the patients of this pointer into an archive, e.g. idc/tcga_luad?Modality=CT (repeat)",
    )
    group.add_argument(
        "--in",
        dest="into",
        action="append",
        metavar="TARGET",
        help="where to find the patients: an archive or part of it, e.g. idc/nlst?Modality=CT or "
        "'gdc?experimental_strategy=RNA-Seq' (repeat)",
    )
    group.add_argument(
        "--kind",
        action="append",
        metavar="ARCHIVE=KIND[,KIND]",
        help="with --match: only these kinds of data of an archive of --in, as `mediator match` names "
        "them, e.g. gdc=RNA-Seq,WXS (repeat)",
    )
    group.add_argument(
        "--every",
        action="store_true",
        help="with --match: keep only the patients that have data in every archive of --in",
    )
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        f"{CONDITIONS_HELP}examples:\n  {example}\n  {match_example}\n"
        "What an archive lacks comes as a warning: 31 of 40 patients of clinical/trial have data in ..."
    )


# -- matching data in other archives -------------------------------------------------------------
#: Patients named in a line before "(+N more)".
SHOWN = 8

#: The order categories of data are listed in (``core.source.CATEGORIES``).
CATEGORY_ORDER = ("radiology", "pathology", "genomics", "clinical", "other")


def _patients(n: int) -> str:
    """``1 patient``, ``3 patients``."""
    return f"{n:,} patient{'' if n == 1 else 's'}"


def _some(names: Sequence[str], shown: int = SHOWN) -> str:
    """``P1, P2, P3 (+5 more)``."""
    more = f" (+{len(names) - shown:,} more)" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _print_archive_match(archive: Any, total: int) -> None:
    """One archive of a match: its patients found, the kinds of data by category, the missing."""
    where = f"{archive.target} ({archive.title})" if archive.title else archive.target
    if archive.error:
        print(f"{where}: could not be searched: {archive.error}")
        return
    print(f"{where}: {len(archive.found):,} of {_patients(total)}")
    by_category: dict[str, list[Any]] = {}
    for kind in archive.kinds:
        by_category.setdefault(kind.category, []).append(kind)
    order = {name: i for i, name in enumerate(CATEGORY_ORDER)}
    for category in sorted(by_category, key=lambda c: (order.get(c, len(order)), c)):
        kinds = ", ".join(f"{k.label} {len(k.patients):,}" for k in by_category[category])
        print(f"  {category}: {kinds}")
    if archive.missing and archive.found:
        print(f"  none for {_some(archive.missing)}")


def _kind_example(archive: Any) -> str:
    """``gdc=WXS,RNA-Seq``: a ``--kind`` of ``archive``, its genomic kinds first (radiogenomics)."""
    genomic = [k.label for k in archive.kinds if k.category == "genomics"]
    labels = genomic[:2] or [archive.kinds[0].label]
    return f"{archive.source}={','.join(labels)}"


def _match_command(args: argparse.Namespace) -> int:
    if not args.pointers and not args.patient:
        raise errors.ValidationError(
            "say whose data to find: POINTER... (a collection, some patients, a filter, e.g. "
            "idc/tcga_luad?Modality=CT) or --patient ID"
        )
    with _client(args) as m:
        found = m.match(args.pointers, patients=args.patient or (), into=args.into or ())
    searched = [a for a in found.archives if not a.error]

    def human() -> None:
        named = f" and {len(args.patient):,} named" if args.pointers and args.patient else ""
        origin = f" of {', '.join(found.origin)}{named}" if found.origin else " named"
        print(f"{_patients(len(found.patients))}{origin}")
        for archive in found.archives:
            _print_archive_match(archive, len(found.patients))
        if not found.archives:
            print("no other archive with patients to search: add one with `mediator sources add`")
        if len(searched) > 1:
            common = found.common({a.source: None for a in searched})
            print(
                f"with data in every archive ({', '.join(a.source for a in searched)}): "
                f"{len(common):,} of {_patients(len(found.patients))}"
            )
        holding = [a for a in searched if a.found]
        if found.origin and holding:
            origins = " ".join(f"--match {_quoted(o)}" for o in found.origin)
            targets = " ".join(f"--in {_quoted(a.target)}" for a in holding)
            print(
                f"hold them in a set: `mediator sets create NAME {origins} {targets} --every`",
                file=sys.stderr,
            )
            several = next((a for a in holding if len(a.kinds) > 1), None)
            if several is not None:
                print(f"  (some kinds only: --kind {_quoted(_kind_example(several))})", file=sys.stderr)

    _emit(args, found, human)
    return errors.SourceError.exit_code if len(searched) < len(found.archives) else EXIT_OK


# -- manifest files -------------------------------------------------------------------------------
def _sets_export(args: argparse.Namespace) -> int:
    from mediator_desktop.core import exports

    with _client(args) as m:
        rs = m.find_set(args.set)
        number = args.version or rs.head  # without a version, the node says so
        if args.format in exports.FOLDERS:
            data = m.export_set(rs.id, args.format, number, files=args.files)
            return _export_folder(args, rs.id, rs.name, number, data)
        text = m.export_set(rs.id, format=args.format, version=number, files=args.files)
    what = {
        "gdc": "a GDC manifest",
        "s5cmd": "an s5cmd manifest",
        "tcia": "a .tcia manifest",
        "csv": "a CSV of the leaves",
    }.get(args.format, "a set export")
    lines = text.splitlines()
    if args.format == "mediator":
        items = f"{len(json.loads(text).get('selection', [])):,} rules"
    elif args.format == "tcia":
        items = f"{len(lines) - lines.index('ListOfSeriesToDownload=') - 1:,} series"
    elif args.format == "s5cmd":
        items = f"{sum(1 for line in lines if line.startswith('cp ')):,} series"
    else:
        items = f"{max(len(lines) - 1, 0):,} {'files' if args.format == 'gdc' else 'leaves'}"
    to_stdout = args.output in (None, "-")
    if not to_stdout:
        path = Path(args.output).expanduser()
        with exports.atomic_file(path) as out:
            out.write(text)
    data = {
        "set_id": rs.id,
        "version": number,
        "format": args.format,
        "file": None if to_stdout else str(path.absolute()),
        "text": text if to_stdout else None,
    }

    def human() -> None:
        if to_stdout:
            sys.stdout.write(text)
        else:
            print(f"wrote {what} of {rs.name} v{number} ({items}) to {path}")

    return _emit(args, data, human)


def _export_folder(args: argparse.Namespace, set_id: str, name: str, number: int | None, data: bytes) -> int:
    """An RO-Crate or a bag (a zip from the node): unpacked into a folder, or kept as ``-o X.zip``."""
    import io
    import zipfile

    from mediator_desktop.core import exports

    suffix = exports.FOLDERS[args.format]
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        top = archive.namelist()[0].split("/", 1)[0]
        target = Path.cwd() / top if args.output in (None, "-") else Path(args.output).expanduser()
        if target.suffix == ".zip":
            exports.atomic_bytes(target, data)
        else:
            with exports.atomic_folder(target) as folder:
                for member in archive.infolist():
                    inner = member.filename.split("/", 1)[1] if "/" in member.filename else ""
                    dest = (folder / inner).resolve()
                    if not inner or member.is_dir():
                        continue
                    if folder.resolve() not in dest.parents:  # never write outside the folder
                        raise errors.ValidationError(f"the node sent an unsafe name: {member.filename!r}")
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(archive.read(member))
    what = "an RO-Crate" if args.format == "rocrate" else "a BDBag"
    result = {"set_id": set_id, "version": number, "format": args.format, "file": str(target.absolute())}

    def human() -> None:
        print(f"wrote {what} of {name} v{number} to {target}" + ("" if target.suffix else f" ({suffix})"))

    return _emit(args, result, human)


def _sets_import(args: argparse.Namespace) -> int:
    path = Path(args.file).expanduser().absolute()
    with _client(args) as m:
        result = m.import_manifest(path, visibility=args.visibility)
    if result.missing:
        many = len(result.missing)
        print(
            f"warning: {path.name}: {many:,} item{'s' if many != 1 else ''} not in any archive configured "
            f"here (add the archive {'they come' if many != 1 else 'it comes'} from with `mediator sources "
            f"add`): {_some(result.missing)}",
            file=sys.stderr,
        )

    def human() -> None:
        _print_set(result.set)
        print(f"  imported from {path.name}: {result.count:,} items found")

    return _emit(args, result, human)


# -- publishing with a DOI -----------------------------------------------------------------------
def _creator(text: str) -> dict[str, str]:
    """``--creator 'Doe, Jane[;ORCID[;AFFILIATION]]'`` as a creator (an organisation has no comma)."""
    name, _, rest = text.partition(";")
    orcid, _, affiliation = rest.partition(";")
    family, comma, given = name.partition(",")
    person = {"name": name.strip(), "orcid": orcid.strip(), "affiliation": affiliation.strip()}
    if comma:
        person |= {"family": family.strip(), "given": given.strip()}
    return person


def _publish_metadata(args: argparse.Namespace, m: Mediator, set_id: str) -> dict[str, Any]:
    """The suggested metadata of the version, with what the options say instead."""
    data = m.suggest_publication(set_id, args.version).model_dump(mode="json")
    if args.creator:
        data["creators"] = [_creator(text) for text in args.creator]
    for option, name in (("orcid", "orcid"), ("affiliation", "affiliation")):
        given = getattr(args, option) or []
        if len(given) > len(data["creators"]):
            raise errors.ValidationError(
                f"{len(given)} --{option} for {len(data['creators'])} creator(s): give one --{option} per "
                f"--creator, in the same order (or --creator 'Doe, Jane;ORCID;AFFILIATION')"
            )
        for creator, value in zip(data["creators"], given, strict=False):
            creator[name] = value
    for option, name in (
        ("title", "title"),
        ("publisher", "publisher"),
        ("year", "year"),
        ("description", "description"),
        ("license", "license"),
    ):
        if getattr(args, option) is not None:
            data[name] = getattr(args, option)
    if args.keyword:
        data["subjects"] = list(args.keyword)
    return data


def _option_of(field: str, creators: Sequence[Any]) -> str:
    """The option that sets a metadata field, to name it next to its problem."""
    parts = field.split(".")
    if parts[0] == "creators" and len(parts) == 3 and parts[1].isdigit():
        i = int(parts[1])
        who = f" {creators[i]['name']!r}" if i < len(creators) and creators[i].get("name") else ""
        option = "--creator" if parts[2] == "name" else f"--{parts[2]}"
        return f"{option} (creator {i + 1}{who})"
    options = {"creators": "--creator", "landing_url": "--landing-url", "subjects": "--keyword"}
    return options.get(parts[0], f"--{parts[0]}" if len(parts) == 1 else field)


def _publication_line(name: str, record: Any) -> str:
    where = f"{name} v{record.version}"
    if record.doi_state == "findable":
        return f"{where}: DOI {record.doi} (https://doi.org/{record.doi})"
    if record.doi_state == "queued":
        retrying = f" (retrying: {record.error})" if record.error else ""
        return f"{where}: published; publishing… the DOI will follow{retrying}"
    if record.doi_state == "failed":
        return f"{where}: published, but its DOI failed: {record.error}"
    return f"{where}: published (no DOI)"


def _retry_hint(name: str, record: Any) -> None:
    if record.doi_state == "failed":
        print(
            f"  fix it (e.g. `mediator publishing secret {record.service or 'zenodo'}`), then "
            f"`mediator sets publish {_quoted(name)} --version {record.version} --retry`",
            file=sys.stderr,
        )


def _sets_publish(args: argparse.Namespace) -> int:
    from mediator_desktop.sdk import MetadataProblems

    with _client(args) as m:
        rs = m.find_set(args.set)
        if args.retry:
            record = m.retry_publication(rs.id, args.version, wait=args.wait, timeout=args.timeout)
        else:
            metadata = _publish_metadata(args, m, rs.id)
            service = None if args.service is None else ("" if args.service == "none" else args.service)
            try:
                record = m.publish(
                    rs.id,
                    args.version,
                    metadata,
                    landing_url=args.landing_url,
                    service=service,
                    wait=args.wait,
                    timeout=args.timeout,
                )
            except MetadataProblems as exc:
                return _metadata_problems(args, exc, metadata["creators"])

    def human() -> None:
        print(_publication_line(rs.name, record))
        _retry_hint(rs.name, record)

    _emit(args, record, human)
    return EXIT_USER_ERROR if args.wait and record.doi_state == "failed" else EXIT_OK


def _metadata_problems(args: argparse.Namespace, exc: Any, creators: Sequence[Any]) -> int:
    if args.json:
        body = {"error": "ValidationError", "code": exc.code, "message": str(exc), "exit": exc.exit_code}
        print(json.dumps({**body, "problems": exc.problems}))
    print("mediator: the publication metadata is not complete; nothing was published:", file=sys.stderr)
    for field, text in exc.problems.items():
        print(f"  {_option_of(field, creators)}: {text}", file=sys.stderr)
    return int(exc.exit_code)


def _sets_publication(args: argparse.Namespace) -> int:
    with _client(args) as m:
        rs = m.find_set(args.set)
        record = m.publication(rs.id, args.version)

    def human() -> None:
        print(_publication_line(rs.name, record))
        if record.metadata is not None:
            names = "; ".join(c.name for c in record.metadata.creators)
            print(f"  {record.metadata.title} ({record.metadata.year}), by {names}")
        if record.service:
            print(f"  service: {record.service}; tries that failed: {record.attempts}")
        if record.landing_url:
            print(f"  landing page: {record.landing_url}")
        _retry_hint(rs.name, record)

    return _emit(args, record, human)


def _sets_citation(args: argparse.Namespace) -> int:
    with _client(args) as m:
        rs = m.find_set(args.set)
        citation = m.citation(rs.id, args.version)
    text = citation.bibtex if args.bibtex else citation.availability if args.availability else citation.text
    return _emit(args, citation, lambda: print(text))


def _publishing_secret(args: argparse.Namespace) -> int:
    what = "DataCite repository password" if args.service == "datacite" else "Zenodo token"
    secret = _read_secret(what)
    if not secret:
        raise errors.ValidationError(f"no {what} was given (on standard input)")
    with _client(args) as m:
        m.set_publishing_secret(args.service, secret)
    return _emit(
        args,
        {"service": args.service, "stored": True},
        lambda: print(f"stored the {what} in the OS keyring; DOIs are minted with it from now on"),
    )


# -- downloads -----------------------------------------------------------------------------------
def _download(args: argparse.Namespace) -> int:
    from mediator_desktop.sdk import DownloadHandle

    with _client(args) as m:
        rs = m.find_set(args.set)
        destination = Path(args.destination).expanduser().absolute()
        try:
            handle = m.start_download(
                rs.id,
                destination,
                version=args.version,
                layout=args.layout,
                workers=args.workers,
                prune=args.prune,
                verify=args.verify,
            )
        except KeyboardInterrupt:  # the node may have started it before it answered
            for job in m.downloads():
                if job.set_id == rs.id and job.destination == str(destination) and job.state == "running":
                    started = DownloadHandle(m, job)
                    started.cancel()
                    started.wait()
            print("cancelled; run the same command again to resume", file=sys.stderr)
            return EXIT_INTERRUPTED
        bar = None
        try:  # from here on Ctrl-C cancels the job, which runs in the node, not here
            bar = _progress_bar(args, rs.name)
            if bar is None:  # nobody watches: one answer when the job ends, none per change
                handle.wait()
            while handle.job.state not in ("done", "failed", "cancelled"):
                job = handle.refresh(wait=1.0)
                if bar is not None and job.progress is not None:
                    bar.total = job.progress.bytes_total
                    bar.n = job.progress.bytes_done
                    failed = f", {job.progress.failed} failed" if job.progress.failed else ""
                    bar.set_postfix_str(
                        f"{job.progress.items_done}/{job.progress.items_total} items{failed}", refresh=False
                    )
                    bar.refresh()
        except KeyboardInterrupt:
            handle.cancel()
            job = handle.wait()
            if bar is not None:
                bar.close()
            print(f"cancelled: {job.summary}; run the same command again to resume", file=sys.stderr)
            return EXIT_INTERRUPTED
        if bar is not None:
            bar.close()
        job = handle.job
    if job.state == "failed" and job.report is None:  # stopped before any leaf: no space, busy folder...
        raise errors.by_name(job.error_type or "")(job.error or "the download failed")

    def human() -> None:
        print(f"{rs.name} v{job.version} -> {job.destination}: {job.summary}")
        report = job.report
        for reason in report.unreachable.values() if report is not None else ():
            print(f"  {reason}", file=sys.stderr)
        unreachable = set(report.unreachable.values()) if report is not None else set()
        _print_failures(
            [f for f in (report.failed if report is not None else []) if f.reason not in unreachable]
        )
        _print_checks(report)
        _print_reproduction(job.reproduction)
        if job.state == "failed":
            print(
                "run the same command again to retry what failed (finished leaves are kept)", file=sys.stderr
            )

    _emit(args, job, human)
    return EXIT_OK if job.state == "done" else EXIT_DOWNLOAD_INCOMPLETE


def _progress_bar(args: argparse.Namespace, name: str) -> Any:
    """The download's progress bar on a terminal; None with ``--json`` or when stderr is no
    terminal (tqdm would draw nothing: it is not even imported then)."""
    if args.json or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=0, unit="B", unit_scale=True, unit_divisor=1000, desc=name[:30])


def _print_checks(report: Any, shown: int = 10) -> None:
    """Leaves fetched again because they were damaged, and those checked by count and size only."""
    if report is None:
        return
    for name, what in (
        ("refetched", "fetched again: files changed or deleted since download"),
        ("size_only", "verified by count and size only (the archive gave no MD5), not by checksum"),
    ):
        leaves = getattr(report, name, None) or []
        if leaves:
            print(f"  {len(leaves)} {'leaf' if len(leaves) == 1 else 'leaves'} {what}:")
            for leaf in leaves[:shown]:
                print(f"    {leaf}")
            if len(leaves) > shown:
                print(f"    ... and {len(leaves) - shown} more (--json lists them all)")


def _print_reproduction(reproduction: Any, shown: int = 20) -> None:
    """A published version against its archives now: one line, then each changed leaf."""
    if reproduction is None:
        return
    print(f"published version: {reproduction.summary}")
    for change in reproduction.changes[:shown]:
        print(f"  {change.line}")
    if len(reproduction.changes) > shown:
        print(f"  ... and {len(reproduction.changes) - shown} more (--json lists them all)")
    for note in reproduction.notes:
        print(f"  {note}")


def _print_failures(failures: Sequence[Any], shown: int = 10) -> None:
    """Each failure once; many leaves that failed for the same reason (an archive that cannot be
    reached) as one line."""
    by_reason: dict[str, list[Any]] = {}
    for failure in failures:
        by_reason.setdefault(failure.reason, []).append(failure)
    for reason, same in by_reason.items():
        if len(same) > 3:
            print(f"  {len(same)} leaves failed: {reason}", file=sys.stderr)
            continue
        for failure in same[:shown]:
            print(f"  failed {failure.key}: {reason}", file=sys.stderr)


# -- cluster -------------------------------------------------------------------------------------
def _status(args: argparse.Namespace) -> int:
    with _client(args) as m:
        node, cluster = m.node(), m.cluster()

    def human() -> None:
        print(f"{node.display_name} ({node.key_id[:8]}), mediator {node.version}, data in {node.data_dir}")
        print(
            f"cluster: {len(cluster.members)} members, leader {cluster.leader or 'none'}, "
            f"quorum: {cluster.has_quorum}"
        )
        for member in cluster.members:
            marks = [x for x, on in (("this node", member.is_self), ("leader", member.is_leader)) if on]
            state = "up" if member.connected or member.is_self else "unreachable"
            print(f"  {member.address}\t{state}\t{', '.join(marks)}")

    return _emit(args, {"node": node, "cluster": cluster}, human)


def _peers(args: argparse.Namespace) -> int:
    with _client(args) as m:
        peers = m.peers()

    def human() -> None:
        if not peers:
            print("no other MEDIator machines seen on this network", file=sys.stderr)
        for p in peers:
            print(f"{p.name}\t{p.raft_address}\t{p.status}\tmediator {p.version}")

    return _emit(args, peers, human)


def _join_code(args: argparse.Namespace) -> int:
    with _client(args) as m:
        code = m.join_code(args.ttl)

    def human() -> None:
        print(code)
        print(
            f"on the other machine, run `mediator join {code}` within {args.ttl / 60:.0f} minutes; "
            "the code works once",
            file=sys.stderr,
        )

    return _emit(args, {"code": code}, human)


def _join(args: argparse.Namespace) -> int:
    with _client(args) as m:
        cluster = m.join(args.code)
    return _emit(
        args, cluster, lambda: print(f"joined: {len(cluster.members)} members, leader {cluster.leader}")
    )


def _leave(args: argparse.Namespace) -> int:
    with _client(args) as m:
        cluster = m.leave()
    return _emit(args, cluster, lambda: print("left the cluster; this node goes on alone"))


# -- settings ------------------------------------------------------------------------------------
def _setting_value(name: str, text: str, current: Any) -> Any:
    """``text`` as a value of the setting ``name``, read as its current value's type."""
    if isinstance(current, bool):
        words = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False}
        if text.lower() not in words:
            raise errors.ValidationError(f"{name} is true or false (on/off, yes/no), not {text!r}")
        return words[text.lower()]
    if isinstance(current, int):
        try:
            return int(text)
        except ValueError:
            raise errors.ValidationError(f"{name} is a whole number, not {text!r}") from None
    if isinstance(current, list):
        if text.lstrip().startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError as exc:
                raise errors.ValidationError(f"{name}: {text!r} is not a JSON list ({exc})") from None
        return [item.strip() for item in text.split(",") if item.strip()]
    if name.endswith("_dir"):  # a folder named from here; the node may run in another folder
        return str(Path(text).expanduser().absolute())
    return text


def _settings(args: argparse.Namespace) -> int:
    with _client(args) as m:
        current = m.settings()
        values = current.values.model_dump(mode="json")
        if not args.set:

            def human() -> None:
                for f in current.fields:
                    later = "" if f.live else "  (applies when the node starts next)"
                    print(f"{f.name} = {json.dumps(values.get(f.name))}\t{f.title}{later}")

            return _emit(args, current, human)
        changes: dict[str, Any] = {}
        for item in args.set:
            name, eq, text = item.partition("=")
            if not eq or not name:
                raise errors.ValidationError(
                    f"--set {item!r} must be NAME=VALUE, e.g. --set display_name=Ada"
                )
            if name not in values:
                known = ", ".join(sorted(values))
                raise errors.ValidationError(f"no such setting: {name} (known: {known})")
            changes[name] = _setting_value(name, text, values[name])
        change = m.change_settings(**changes)

    def said() -> None:
        if not change.changed:
            print("nothing changed")
            return
        print(f"changed: {', '.join(change.changed)}")
        if change.restart:
            print(f"restart the node to apply: {', '.join(change.restart)}", file=sys.stderr)

    return _emit(args, change, said)


# -- the parser ----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )
    parser = argparse.ArgumentParser(
        prog="mediator",
        description="MEDIator Desktop from the terminal: replica sets of imaging-archive data.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"mediator {__version__}")
    parser.add_argument("--home", help=f"folder for settings and data (default: ${HOME_ENV} or the user's)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        group: Any, name: str, run: Callable[[argparse.Namespace], int], help: str
    ) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = group.add_parser(name, help=help, description=help, parents=[common])
        sub.set_defaults(run=run)
        return sub

    command(commands, "info", _info, "show version and settings")

    manifest = commands.add_parser("manifest", help="work with manifest files")
    manifest_commands = manifest.add_subparsers(dest="manifest_command", required=True, metavar="COMMAND")
    diff = command(manifest_commands, "diff", _manifest_diff, "what changed between two manifest files")
    diff.add_argument("old", help="the older manifest (canonical encoding)")
    diff.add_argument("new", help="the newer manifest")

    node = commands.add_parser("node", help="run this machine's node")
    node_commands = node.add_subparsers(dest="node_command", required=True, metavar="COMMAND")
    run = command(
        node_commands, "run", _node_run, "run a headless cluster member (for an always-on lab server)"
    )
    run.add_argument("--data-dir", help="where the node keeps its data (remembered in the settings)")
    run.add_argument("--listen", metavar="HOST:PORT", help="cluster address (default: the one remembered)")
    run.add_argument("--peer", action="append", metavar="HOST:PORT", help="a member to start with (repeat)")
    run.add_argument("--join", metavar="CODE", help="join the cluster of the member that made CODE")
    run.add_argument("--secret-file", help="a file holding the cluster secret (all members share it)")
    run.add_argument("--log-file", help="default: DATA/logs/node.log")
    run.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    sources = commands.add_parser(
        "sources", help="the archives: list, add, remove, test, rescan, browse, search"
    )
    src = sources.add_subparsers(dest="sources_command", required=True, metavar="COMMAND")
    command(src, "list", _sources_list, "the configured archives")
    command(src, "kinds", _sources_kinds, "the kinds of archive that can be added, with their options")
    add_source = command(
        src, "add", _sources_add, "add an archive, live: e.g. `sources add tcia --base-url URL`"
    )
    add_source.add_argument("kind", help="idc, tcia, dicomweb, local... (see `mediator sources kinds`)")
    add_source.add_argument("--id", help="its id, which starts its pointers (default: the kind)")
    add_source.add_argument(
        "--base-url", dest="base_url", metavar="URL", help="tcia, dicomweb: the API's URL"
    )
    add_source.add_argument("--folder", metavar="PATH", help="local: the folder of DICOM files")
    add_source.add_argument("--username", help="dicomweb: the user for Basic auth")
    add_source.add_argument(
        "--endpoint-url", dest="endpoint_url", metavar="URL", help="idc: another S3 endpoint"
    )
    add_source.add_argument("--index", metavar="PATH", help="idc: another index (Parquet)")
    add_source.add_argument(
        "--option", action="append", metavar="NAME=VALUE", help="any other option (repeat)"
    )
    secret = add_source.add_mutually_exclusive_group()
    for what in ("token", "password", "access key"):  # the secrets kinds of archive take
        secret.add_argument(
            f"--{what.replace(' ', '-')}-from-stdin",
            dest="secret",
            action="store_const",
            const=what,
            help=f"read a {what} from standard input (kept in the OS keyring, never in the settings)",
        )
    add_source.add_argument(
        "--no-test", action="store_true", help="add it without checking first that it answers"
    )
    rm_source = command(src, "remove", _sources_remove, "remove an archive (sets keep their pointers)")
    rm_source.add_argument("source", help="its id")
    test_source = command(src, "test", _sources_test, "check that an archive answers")
    test_source.add_argument("source", help="its id")
    rescan = command(src, "rescan", _sources_rescan, "index a local folder again now (changed files only)")
    rescan.add_argument("source", help="its id")
    secret_cmd = command(
        src, "secret", _sources_secret, "store an archive's password or token (read from standard input)"
    )
    secret_cmd.add_argument("source", help="its id")
    browse = command(src, "browse", _sources_browse, "children of a path: collections, patients, studies...")
    browse.add_argument("source", help="a source id (see `mediator sources list`)")
    browse.add_argument("path", nargs="*", help="keys from the first level down")
    browse.add_argument("--filter", action="append", metavar="NAME=VALUE", help="e.g. Modality=CT (repeat)")
    browse.add_argument("--offset", type=int, default=0, help="skip this many children (paging; default 0)")
    browse.add_argument("--limit", type=int, default=100, help="children per page (default 100)")
    search = command(src, "search", _sources_search, "children of a path whose key or label contains TEXT")
    search.add_argument("source", help="a source id")
    search.add_argument("text", help="text to find in keys and labels (any case)")
    search.add_argument("path", nargs="*", help="where to look (default: the first level)")
    search.add_argument("--filter", action="append", metavar="NAME=VALUE", help="e.g. Modality=CT (repeat)")
    search.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")

    identity = commands.add_parser("identity", help="who you are in the cluster")
    ident = identity.add_subparsers(dest="identity_command", required=True, metavar="COMMAND")
    command(ident, "show", _identity, "your display name and key id")
    set_name = command(ident, "set-name", _identity, "how other members see you (and name you in commands)")
    set_name.add_argument("name", help='e.g. "Ada Lovelace (lab-ws-3)"')

    sets = commands.add_parser(
        "sets",
        help="replica sets: list, create, show, add, remove, diff, share, check for updates, export, "
        "import...",
    )
    st = sets.add_subparsers(dest="sets_command", required=True, metavar="COMMAND")
    lst = command(st, "list", _sets_list, "sets you may see")
    lst.add_argument(
        "--scope",
        default="all",
        choices=("all", "mine", "shared", "cluster", "public", "published", "following"),
    )
    create = command(st, "create", _sets_create, "a new set, with a first version when --add is given")
    create.add_argument("name")
    create.add_argument(
        "--add", action="append", metavar="POINTER", help="e.g. idc/nlst?Modality=CT (repeat)"
    )
    create.add_argument("--description", default="")
    create.add_argument("--visibility", default="private", choices=("private", "cluster", "public"))
    create.add_argument("-m", "--message", default="")
    create.add_argument("--strict", action="store_true", help="refuse pointers that select nothing")
    _cohort_options(
        create,
        "mediator sets create 'Stage III CT' --cohort trial --where 'age>=60' --where stage=III,IIIA \\\n"
        "      --in 'idc/nlst?Modality=CT' --in lab",
        "mediator sets create 'LUAD radiogenomics' --match 'idc/tcga_luad?Modality=CT' \\\n"
        "      --in gdc --in pathology --kind gdc=RNA-Seq,WXS --every",
    )
    show = command(st, "show", _sets_show, "a set and the selection of a version")
    show.add_argument("set", help="a set id or name")
    show.add_argument("--version", type=int)
    show.add_argument("--leaves", action="store_true", help="also list every leaf")
    for name, run_update, what in (
        ("add", _sets_add, "add pointers (or a cohort)"),
        ("remove", _sets_remove, "remove (or exclude) pointers"),
    ):
        sub = command(st, name, run_update, f"{what} in a new version")
        sub.add_argument("set")
        sub.add_argument("pointers", nargs="*" if name == "add" else "+", metavar="POINTER")
        sub.add_argument("-m", "--message", default="")
        sub.add_argument("--strict", action="store_true", help="refuse pointers that select nothing")
        if name == "add":
            _cohort_options(
                sub,
                "mediator sets add 'Lung CT' --cohort trial --where 'smoking=*' --in idc/nlst",
                "mediator sets add 'LUAD' --match idc/tcga_luad/TCGA-05-4244 --in gdc --in pathology",
            )
    sdiff = command(st, "diff", _sets_diff, "what changed between two versions (or two sets)")
    sdiff.add_argument("set")
    sdiff.add_argument("old", type=int)
    sdiff.add_argument("new", type=int, nargs="?", help="default: the head")
    sdiff.add_argument("--other", metavar="SET", help="compare with version NEW of this set")
    sdiff.add_argument("--limit", type=int, default=50, help="leaves listed per kind")
    dup = command(st, "duplicate", _sets_duplicate, "fork a set into a new one of yours")
    dup.add_argument("set")
    dup.add_argument("--version", type=int)
    dup.add_argument("--name", default="")
    share = command(st, "share", _sets_share, "change visibility and editors")
    share.add_argument("set")
    share.add_argument("--visibility", choices=("private", "cluster", "public"))
    share.add_argument("--editor", action="append", metavar="USER", help="a user's name or key id (repeat)")
    share.add_argument("--revoke", action="append", metavar="USER")
    follow = command(st, "follow", _sets_follow, "be told of new versions of a set")
    follow.add_argument("set")
    follow.add_argument("--stop", action="store_true", help="stop following")
    rename = command(st, "rename", _sets_rename, "give a set a new name (owner and editors may)")
    rename.add_argument("set", help="a set id or name")
    rename.add_argument("new_name", metavar="NEW_NAME")
    rename.add_argument("--description", help="also a new description (default: unchanged)")
    delete = command(st, "delete", _sets_delete, "delete a set of yours")
    delete.add_argument("set")
    delete.add_argument("--yes", action="store_true", help="really delete")
    history = command(st, "history", _sets_history, "the versions of a set")
    history.add_argument("set")
    check = command(
        st,
        "check",
        _sets_check,
        "ask the archives now whether the data behind sets changed (new, revised or removed series)",
    )
    check.add_argument(
        "sets", nargs="*", metavar="SET", help="sets to check (default: every set you follow or own)"
    )
    check.add_argument(
        "--full",
        action="store_true",
        help="list the sets' data again in full instead of asking what changed (slower; finds series "
        "TCIA deleted)",
    )
    drift = command(
        st, "drift", _sets_drift, "what changed in the archives since the set's version: the update waiting"
    )
    drift.add_argument("set")
    drift.add_argument("--limit", type=int, default=50, help="series (leaves) listed per kind")
    accept = command(
        st,
        "accept",
        _sets_accept,
        "take the archive update as the set's next version; then `download` fetches only what changed",
    )
    accept.add_argument("set")
    accept.add_argument(
        "--fork", action="store_true", help="put it in a new set of yours instead (for a set you only read)"
    )
    accept.add_argument(
        "--name", help="with --fork: the new set's name (default: the set's, marked as a fork)"
    )
    decline = command(
        st, "decline", _sets_decline, "keep the set's version and stop being told about this archive update"
    )
    decline.add_argument("set")
    export = command(
        st,
        "export",
        _sets_export,
        "a set version as a file: a set export, an RO-Crate, a BDBag, or a manifest an archive's tool reads",
    )
    export.add_argument("set")
    export.add_argument("--version", type=int, help="default: the head")
    export.add_argument(
        "--format",
        required=True,
        choices=("rocrate", "bdbag", "s5cmd", "tcia", "gdc", "csv", "mediator"),
        help="rocrate: a detached RO-Crate folder (NAME.crate); bdbag: a BagIt bag of pointers (NAME.bag); "
        "s5cmd: IDC's series for `s5cmd run`; tcia: the NBIA Data Retriever's .tcia; gdc: its GDC files, "
        "as `gdc-client download -m` reads; csv: one row per leaf; mediator: the set's selection as JSON",
    )
    export.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help="write to PATH (default: standard output; for rocrate and bdbag, a folder named after the set "
        "here, or a zip when PATH ends in .zip)",
    )
    export.add_argument(
        "--files",
        action="store_true",
        help="bdbag only: ask the archives for each leaf's files and list every file with an MD5 and an "
        "http(s) URL in fetch.txt, so `bdbag --resolve-fetch all` fetches and verifies it (needs the "
        "archives online); the other leaves stay pointers",
    )
    imp = command(
        st,
        "import",
        _sets_import,
        "a new set from a manifest file: TCIA .tcia, IDC .s5cmd, GDC manifest (TSV), or a set export",
    )
    imp.add_argument("file", metavar="FILE", help="the manifest file; its name names the set")
    imp.add_argument("--visibility", default="private", choices=("private", "cluster", "public"))
    pub = command(
        st,
        "publish",
        _sets_publish,
        "publish a version for good, with a DOI (DataCite or Zenodo); what you leave out is suggested "
        "(the set's name, you, the publisher setting, this year, the source collections' DOIs)",
    )
    pub.add_argument("set", help="a set id or name")
    pub.add_argument("--version", type=int, help="default: the head (--retry: the latest published)")
    pub.add_argument("--title")
    pub.add_argument(
        "--creator",
        action="append",
        metavar="NAME",
        help="'Family, Given' or an organisation; optionally 'Doe, Jane;ORCID;AFFILIATION' (repeat)",
    )
    pub.add_argument("--orcid", action="append", help="the ORCID iD of each --creator, in order (repeat)")
    pub.add_argument("--affiliation", action="append", help="the affiliation of each --creator, in order")
    pub.add_argument("--publisher", help="default: the publisher setting")
    pub.add_argument("--year", type=int, help="the publication year (default: this year)")
    pub.add_argument("--description")
    pub.add_argument("--keyword", action="append", help="a subject keyword (repeat)")
    pub.add_argument("--license", help="an SPDX licence id, e.g. CC-BY-4.0")
    pub.add_argument(
        "--landing-url",
        help="the https:// page the DOI resolves to (DataCite needs one; Zenodo makes its own)",
    )
    pub.add_argument(
        "--service", choices=("datacite", "zenodo", "none"), help="who mints the DOI (default: doi_service)"
    )
    pub.add_argument("--wait", action="store_true", help="wait until the DOI is minted (or minting failed)")
    pub.add_argument("--timeout", type=float, default=120.0, help="seconds --wait waits (default 120)")
    pub.add_argument(
        "--retry", action="store_true", help="mint the DOI of a published version again now (after a failure)"
    )
    publication = command(
        st, "publication", _sets_publication, "a published version: its DOI, or how far it got"
    )
    publication.add_argument("set", help="a set id or name")
    publication.add_argument("--version", type=int, help="default: the latest published")
    citation = command(st, "citation", _sets_citation, "how a paper cites a published version")
    citation.add_argument("set", help="a set id or name")
    citation.add_argument("--version", type=int, help="default: the latest published")
    cite_as = citation.add_mutually_exclusive_group()
    cite_as.add_argument("--bibtex", action="store_true", help="as a BibTeX entry")
    cite_as.add_argument(
        "--availability",
        action="store_true",
        help="a data availability statement, naming the source collections with their DOIs and licences",
    )

    tables = commands.add_parser(
        "tables",
        help="clinical tables: add a CSV, look at its columns, select patients, join them to archives",
        description="Clinical tables live in the cluster's store: every member joins them to the archives "
        "without the file. A cohort (patients meeting conditions, in some archives) is one pointer a set "
        "holds: `mediator sets create NAME --cohort TABLE --where COND --in ARCHIVE`.",
    )
    tb = tables.add_subparsers(dest="tables_command", required=True, metavar="COMMAND")

    def table_command(name: str, run: Callable[[argparse.Namespace], int], help: str, example: str) -> Any:
        sub = command(tb, name, run, help)
        sub.formatter_class = argparse.RawDescriptionHelpFormatter
        sub.epilog = f"example:\n  {example}\n"
        return sub

    add_table = table_command(
        "add",
        _tables_add,
        "add a table file (CSV, TSV, Excel) to the cluster's store, or a new version of a table",
        "mediator tables add ~/trial/clinical.csv --name trial --key PatientID",
    )
    add_table.add_argument("file", metavar="FILE", help="the table file, on this machine")
    add_table.add_argument("--name", help="the table's name (default: from the file's name)")
    add_table.add_argument(
        "--key", metavar="COLUMN", help="the column of patient keys (default: guessed; see `tables preview`)"
    )
    add_table.add_argument("--head", type=int, default=5, help="first rows shown (default 5)")
    preview = table_command(
        "preview",
        _tables_preview,
        "what adding a table file would read: columns, kinds, the key column, first rows; nothing is stored",
        "mediator tables preview ~/trial/clinical.csv",
    )
    preview.add_argument("file", metavar="FILE")
    preview.add_argument("--key", metavar="COLUMN", help="the column of patient keys (default: guessed)")
    table_command("list", _tables_list, "the cluster's clinical tables", "mediator tables list")
    show_table = table_command(
        "show",
        _tables_show,
        "a table's columns (kind, blanks, distinct values, range) and versions",
        "mediator tables show trial",
    )
    show_table.add_argument("name", metavar="NAME")
    values = table_command(
        "values",
        _tables_values,
        "the values of a column, with their row counts",
        "mediator tables values trial stage",
    )
    values.add_argument("name", metavar="NAME")
    values.add_argument("column", metavar="COLUMN")
    values.add_argument("--limit", type=int, default=500, help="at most this many values (default 500)")
    select = table_command(
        "select",
        _tables_select,
        "the patients whose rows meet every condition",
        "mediator tables select trial 'age>=60' stage=III,IIIA 'smoking=*'",
    )
    select.epilog = CONDITIONS_HELP + select.epilog
    select.add_argument("name", metavar="NAME")
    select.add_argument("conditions", nargs="*", metavar="COND", help="none: every patient")
    select.add_argument("--count", action="store_true", help="print only how many")
    rows = table_command(
        "rows",
        _tables_rows,
        "rows of a table: all, or those of some patients",
        "mediator tables rows trial P1 P7",
    )
    rows.add_argument("name", metavar="NAME")
    rows.add_argument("keys", nargs="*", metavar="KEY", help="patients (default: every row)")
    rows.add_argument("--limit", type=int, help="at most this many rows")
    join_table = table_command(
        "join",
        _tables_join,
        "what a cohort finds in archives before a set holds it: patients found and missing per archive, "
        "and the cohort's pointer",
        "mediator tables join trial 'age>=60' --in 'idc/nlst?Modality=CT' --in lab",
    )
    join_table.epilog = CONDITIONS_HELP + join_table.epilog
    join_table.add_argument("name", metavar="TABLE")
    join_table.add_argument("conditions", nargs="*", metavar="COND", help="none: every patient")
    join_table.add_argument(
        "--in",
        dest="into",
        action="append",
        required=True,
        metavar="TARGET",
        help="an archive or part of it, e.g. idc/nlst?Modality=CT (repeat)",
    )

    match = command(
        commands,
        "match",
        _match_command,
        "find a cohort's patients in the other archives: per archive the patients found and the kinds "
        "of data they have there (CT, slides, RNA-Seq...)",
    )
    match.formatter_class = argparse.RawDescriptionHelpFormatter
    match.epilog = (
        "examples:\n"
        "  mediator match 'idc/tcga_luad?Modality=CT'\n"
        "  mediator match idc/tcga_luad --in gdc --in pathology\n"
        "  mediator match --patient TCGA-05-4244 --patient TCGA-05-4249 --in gdc\n"
        "then hold them in a set, joined (a new matching file later is an update of the set):\n"
        "  mediator sets create NAME --match 'idc/tcga_luad?Modality=CT' \\\n"
        "      --in gdc --in pathology --kind gdc=RNA-Seq,WXS --every\n"
    )
    match.add_argument(
        "pointers", nargs="*", metavar="POINTER", help="pointers into one archive (or clinical table)"
    )
    match.add_argument("--patient", action="append", metavar="ID", help="a patient to find, too (repeat)")
    match.add_argument(
        "--in",
        dest="into",
        action="append",
        metavar="TARGET",
        help="an archive (or part of it) to search (repeat; default: every other archive with patients)",
    )

    dl = command(commands, "download", _download, "bring a folder up to a set version (only what changed)")
    dl.add_argument("set")
    dl.add_argument("destination")
    dl.add_argument("--version", type=int, help="default: the head")
    dl.add_argument(
        "--layout",
        help="folder layout from leaf metadata (default: the node's download_layout setting, "
        f"which is {DEFAULT_LAYOUT} unless changed with `mediator settings`)",
    )
    dl.add_argument(
        "--workers",
        type=int,
        default=8,
        help="leaves fetched at once (default 8; connections per archive are capped)",
    )
    dl.add_argument("--prune", action="store_true", help="delete files of leaves no longer in the set")
    dl.add_argument(
        "--verify",
        action="store_true",
        help="re-hash every file already downloaded against its MD5 and fetch again what differs "
        "(without it, files are compared by size and modification time only)",
    )

    stg = command(commands, "settings", _settings, "show the node's settings, or change them with --set")
    stg.add_argument(
        "--set",
        action="append",
        metavar="NAME=VALUE",
        help="change a setting, e.g. --set download_layout={patient}/{series} (repeat); lists: a,b or JSON",
    )

    publishing = commands.add_parser("publishing", help="DOI services: their credentials")
    pb = publishing.add_subparsers(dest="publishing_command", required=True, metavar="COMMAND")
    pub_secret = command(
        pb,
        "secret",
        _publishing_secret,
        "store the DataCite repository password or the Zenodo token (read from standard input)",
    )
    pub_secret.add_argument("service", choices=("datacite", "zenodo"))
    command(commands, "status", _status, "this node and its cluster")
    command(commands, "peers", _peers, "MEDIator machines seen on this network")
    jc = command(commands, "join-code", _join_code, "a one-time code for another machine to join")
    jc.add_argument("--ttl", type=float, default=600.0, help="seconds the code is valid (default 600)")
    join = command(commands, "join", _join, "join the cluster of the member that made CODE")
    join.add_argument("code")
    command(commands, "leave", _leave, "leave the cluster and go on alone")
    return parser


def _quiet_logging() -> None:
    """A node this command starts logs to its data folder, not over the command's output."""
    import logging.handlers

    try:
        log_file = Settings.load().data_dir / "logs" / "cli.log"
        private_dir(log_file.parent)
        handler: logging.Handler = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=5_000_000, backupCount=1
        )
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    except (errors.MediatorError, OSError):
        handler = logging.NullHandler()
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.json = getattr(args, "json", False)
    if argv is None and args.run is not _node_run:
        _short_lived()
    if args.home:
        os.environ[HOME_ENV] = str(Path(args.home).expanduser().absolute())
    if args.run is not _node_run:
        _quiet_logging()
    import warnings

    from mediator_desktop.sdk import MediatorWarning

    warnings.filterwarnings("ignore", category=MediatorWarning)  # printed by the commands themselves
    try:
        code: int = args.run(args)
    except errors.MediatorError as exc:
        return _fail(args, exc, exc.exit_code)
    except OSError as exc:
        return _fail(args, exc, EXIT_USER_ERROR)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return code


def _short_lived() -> None:
    """This process runs one command and exits: collect cyclic garbage rarely (the command's
    imports and its node make long-lived objects, not garbage: collections every 700 allocations
    cost its imports about 30 ms of CPU) and skip the collection at exit (which visits every
    object: about 0.1 s). Measured in issue 22's whole-command benchmark."""
    gc.set_threshold(100_000, 50, 100)
    atexit.register(gc.freeze)  # the interpreter's last collection then has nothing to visit


def _fail(args: argparse.Namespace, exc: Exception, code: int) -> int:
    if args.json:
        body: dict[str, Any] = {"error": type(exc).__name__, "message": str(exc), "exit": code}
        if isinstance(exc, errors.MediatorError):
            body["code"] = exc.code
        print(json.dumps(body))
    print(f"mediator: {exc}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())

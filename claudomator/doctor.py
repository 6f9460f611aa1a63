"""`claudomator doctor`: one look at whether this machine can run tasks.

Each check gathers its facts here (the claude binary and its `--version`, the credentials claude
would use, the data dir's modes, the config's problems, the database's schema version, the API
port, the dispatcher lock, the git checkouts) and `diagnosis` turns them into a `Check`. `serve`
runs the same checks at start and logs what is not ok. Looking makes nothing: no data dir,
database or lock file. It stays quick: `claude --version` has `VERSION_TIMEOUT_S`, a PostgreSQL
connection a few seconds, git a few local calls per source.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import signal
import socket
import stat
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from claudomator.billing import credentials
from claudomator.config import Config, GitSource
from claudomator.config_values import is_postgresql_url, mask_url
from claudomator.diagnosis import (
    VERSION_TIMEOUT_S,
    Answer,
    Check,
    Checkout,
    Entry,
    Stored,
    claude_verdict,
    config_verdict,
    credentials_verdict,
    data_dir_verdict,
    database_verdict,
    healthy,
    port_verdict,
    serve_verdict,
    source_verdict,
)
from claudomator.lock import DispatcherLock
from claudomator.records import Node
from claudomator.sources.gitcmd import Git, real_path
from claudomator.store.reader import Reader, source_key
from claudomator.store.rows import iso
from claudomator.store.sql import SCHEMA_VERSION

CONNECT_TIMEOUT_S = 5  # a PostgreSQL server that does not answer
GIT_TIMEOUT_S = 10.0  # all of one source's git calls
_URL_SAID = re.compile(r"^postgresql\S*://\S*: ")  # the read path's errors begin with it


def checks(
    config: Config,
    *,
    env: Mapping[str, str] | None = None,
    problems: Sequence[str] = (),
    api: bool = True,
    serving: bool = False,
) -> list[Check]:
    """Every check, in order, for `config` (`problems`: what loading it found wrong; `env`:
    claude's environment, else ours; `api`: whether the API port matters; `serving`: this
    process is the data dir's serve, holding its lock: no serve check, and the port is not its
    yet). Not from a running event loop: the git checks run one of their own."""
    env = os.environ if env is None else env
    holder = None if serving else _lock(config).holder()
    reader = Reader(_bounded(config.database))
    try:
        database = look_at_database(config, reader)
        node = _this_node(config, reader) if not database.error else None
        last_errors = _source_errors(config, reader) if not database.error else {}
    finally:
        reader.close()
    found = [
        claude_check(config, env),
        credentials_verdict(config.billing, credentials(env)),
        data_dir_verdict(str(config.data_dir.root), look_at_data_dir(config), os.getuid()),
        *config_verdict(
            str(config.data_dir.config_file),
            config.data_dir.config_file.is_file(),
            problems,
            config.origins,
        ),
        database_verdict(_shown(config.database), database, SCHEMA_VERSION),
    ]
    if api:
        error, in_use = bind_error(config.server_host, config.server_port)
        found.append(port_verdict(config.server_host, config.server_port, error, in_use, holder))
    if not serving:
        since = _since(config, holder, node)
        found.append(serve_verdict(holder, since, node, socket.gethostname()))
    looked = asyncio.run(look_at_checkouts(config.sources)) if config.sources else []
    for source, checkout in zip(config.sources, looked, strict=True):
        found.append(
            source_verdict(
                source.name,
                source.path,
                source.branch,
                source.remote,
                checkout,
                last_errors.get(source.name, ""),
            )
        )
    return found


# -- the facts ---------------------------------------------------------------------------------


def claude_check(config: Config, env: Mapping[str, str]) -> Check:
    path = config.resolve_claude()
    answer = ask_version(path, env) if path is not None else None
    return claude_verdict(config.claude_binary, path, answer)


def ask_version(path: str, env: Mapping[str, str], timeout_s: float = VERSION_TIMEOUT_S) -> Answer:
    """`path --version`, in a session of its own so that all it started ends at the timeout."""
    try:
        proc = subprocess.Popen(
            [path, "--version"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            start_new_session=True,
            text=True,
            errors="replace",
        )
    except OSError as e:
        return Answer(126, "", e.strerror or str(e))
    with proc:
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.communicate(timeout=1)  # a child that left the session keeps the pipes
            return Answer(None)
    return Answer(proc.returncode, out, err)


def look_at_data_dir(config: Config) -> list[Entry] | None:
    """The data dir (links followed) and what is directly in it (links left out); None when
    there is no data dir."""
    root = config.data_dir.root
    try:
        top = root.stat()
    except FileNotFoundError:
        return None
    entries = [Entry("", stat.S_ISDIR(top.st_mode), stat.S_IMODE(top.st_mode), top.st_uid)]
    if not stat.S_ISDIR(top.st_mode):
        return entries
    with contextlib.suppress(OSError), os.scandir(root) as found:
        for item in sorted(found, key=lambda d: d.name):
            with contextlib.suppress(OSError):
                if item.is_symlink():
                    continue
                info = item.stat(follow_symlinks=False)
                mode = stat.S_IMODE(info.st_mode)
                entries.append(Entry(item.name, stat.S_ISDIR(info.st_mode), mode, info.st_uid))
    return entries


def look_at_database(config: Config, reader: Reader) -> Stored:
    """The schema version the database says it has; a SQLite file is never made by looking."""
    location = config.database
    if not is_postgresql_url(location) and not Path(location).exists():
        return Stored(found=False)
    try:
        return Stored(found=True, version=reader.schema_version())
    except Exception as e:  # whatever the driver raises, the check reports it
        said = " ".join(line.strip() for line in str(e).splitlines()) or repr(e)
        return Stored(found=True, error=_URL_SAID.sub("", said))  # the check shows the URL


def bind_error(host: str, port: int) -> tuple[str, bool]:
    """Why the API could not listen on host:port ("" when it could), and whether because it is
    in use: bound and listened on for an instant, as the API does it (SO_REUSEADDR)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and host.strip("[]") == "::":
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind(address)
            sock.listen(1)
    except OSError as e:
        return e.strerror or str(e), e.errno == errno.EADDRINUSE
    return "", False


async def look_at_checkouts(sources: Sequence[GitSource]) -> list[Checkout]:
    return list(await asyncio.gather(*(_look_at_checkout(s) for s in sources)))


async def _look_at_checkout(source: GitSource) -> Checkout:
    root = real_path(source.path)
    if not root.is_dir():
        return Checkout(exists=False)
    git = Git(root)

    async def tip() -> str | None:
        await git.open()
        return await git.rev(f"refs/heads/{source.branch}")

    try:
        return Checkout(exists=True, tip=await asyncio.wait_for(tip(), GIT_TIMEOUT_S))
    except TimeoutError:
        return Checkout(exists=True, error=f"git took longer than {GIT_TIMEOUT_S:g}s in {root}")
    except Exception as e:  # GitError, or no git at all (OSError)
        return Checkout(exists=True, error=str(e) or repr(e))


def _lock(config: Config) -> DispatcherLock:
    return DispatcherLock(config.data_dir.root / "dispatcher.lock")


def _this_node(config: Config, reader: Reader) -> Node | None:
    """This data dir's row in the nodes table (its serve's), if any."""
    node_id = config.node_id or config.data_dir.node_id()
    if not node_id:
        return None
    with contextlib.suppress(Exception):  # the database check says what is wrong with it
        return next((n for n in reader.nodes() if n["id"] == node_id), None)
    return None


def _since(config: Config, holder: str | None, node: Node | None) -> str | None:
    """When the running serve started: its node's start, else when it took the lock."""
    if holder is None:
        return None
    if node is not None and node["state"] == "up" and node["started_at"]:
        return node["started_at"]
    with contextlib.suppress(OSError):
        return iso(_lock(config).path.stat().st_mtime)
    return None


def _source_errors(config: Config, reader: Reader) -> dict[str, str]:
    """What each source's last pass said was wrong (this node's row, else one from before
    nodes existed), as `claudomator sources` shows it."""
    if not config.sources:
        return {}
    node = config.node_id or config.data_dir.node_id()
    try:
        stored = {row["name"]: row for row in reader.sources()}
    except Exception:  # the database check says what is wrong with it
        return {}
    errors = {}
    for source in config.sources:
        row = stored.get(source_key(source.name, node)) or stored.get(source.name)
        if row and row["error"]:
            errors[source.name] = str(row["error"])
    return errors


def _bounded(location: Path | str) -> Path | str:
    """A PostgreSQL URL that gives up connecting after `CONNECT_TIMEOUT_S`."""
    if not is_postgresql_url(location) or "connect_timeout=" in str(location):
        return location
    return f"{location}{'&' if '?' in str(location) else '?'}connect_timeout={CONNECT_TIMEOUT_S}"


def _shown(location: Path | str) -> str:
    return mask_url(location) if isinstance(location, str) else str(location)


__all__ = ["Check", "bind_error", "checks", "healthy"]

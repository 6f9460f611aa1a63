"""The git source: each committed version of a task file in a watched checkout runs once.

Only committed content counts, read by commit, never from the working tree or the index, so a
person's own `git commit` is never raced. The parts, one noun each:

- `gitcmd`: git itself, as asyncio subprocesses in a safe environment;
- `gitfetch`: with `remote`, fetch the branch and fast-forward it (never reset);
- `gitpass`: one pass over the branch's new commits (trust, plan, carry out);
- `gitplan`: the pure decisions; `gitapply`: the actions carried out on the spool and the store;
- `gitreport`: the source's row (last commit, error); `links`: what a source is wired to;
- here: `GitWatcher`, which runs one source (fetch when due, a pass, then wait), and
  `GitSources`, every git source in the config.

The checkout's git folders (HEAD, the branch's ref folder, packed-refs) are watched, so a local
commit or pull is seen within the watcher's debounce; a poll every few seconds backs it up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog

from claudomator.config import Config, GitSource
from claudomator.sources.gitapply import Applier
from claudomator.sources.gitcmd import Git, real_path
from claudomator.sources.gitfetch import fetch_branch
from claudomator.sources.gitpass import GitPass
from claudomator.sources.gitplan import GitError
from claudomator.sources.gitreport import Report
from claudomator.sources.links import Links
from claudomator.sources.watch import Watching, changes

log = structlog.get_logger("claudomator.sources.git")

POLL_S = 5.0  # look at the branch this often, whatever the watcher says


class GitWatcher:
    """One `[[sources]]` checkout: fetched (with a remote), watched, its new commits ingested."""

    def __init__(
        self, source: GitSource, config: Config, links: Links, *, poll_s: float = POLL_S
    ) -> None:
        self.source = source
        self.key = "@" + source.name
        self.root = real_path(source.path)
        links.base_dirs[self.key] = self.root  # the intake's crash repair needs it at start
        self.git = Git(self.root)
        self.poll_s = poll_s
        self.watching = Watching.of(config.debounce_s, config.step_s, config.intake_poll)
        self.report = Report(links.store, source.name, source.kind)
        max_bytes = config.max_file_bytes
        applier = Applier(source.name, self.root, links, max_bytes)
        self.passes = GitPass(source, self.git, links.store, self.report, applier, max_bytes)

    @property
    def git_dirs(self) -> tuple[Path, Path] | None:
        """The checkout's git dir and common dir, once found."""
        return self.git.dirs

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch when due, ingest, then wait for the watcher, the poll or the next fetch; until
        `stop`, which cancels a pass in progress (done again at the next start)."""
        wake = asyncio.Event()
        stopped = asyncio.create_task(stop.wait(), name=f"{self.key}:stop")
        watching: tuple[str, ...] = ()
        tasks: dict[str, asyncio.Task[None]] = {}
        next_fetch = 0.0
        try:
            while not stop.is_set():
                wake.clear()
                fetch = bool(self.source.remote) and time.monotonic() >= next_fetch
                if fetch:
                    next_fetch = time.monotonic() + self.source.fetch_interval_s
                tasks["cycle"] = asyncio.create_task(self.cycle(fetch), name=f"{self.key}:cycle")
                await asyncio.wait({tasks["cycle"], stopped}, return_when=asyncio.FIRST_COMPLETED)
                if stop.is_set():
                    break
                if error := tasks["cycle"].exception():  # e.g. the database: try again later
                    log.error("source.cycle_failed", source=self.source.name, error=repr(error))
                paths = tuple(str(p) for p in self.watch_paths())
                watch = tasks.get("watch")
                if paths != watching or watch is None or watch.done():
                    await _cancel(tasks.pop("watch", None))
                    watching = paths
                    tasks["watch"] = asyncio.create_task(
                        self._watch(paths, wake, stop), name=f"{self.key}:watch"
                    )
                timeout = self.poll_s
                if self.source.remote:
                    timeout = min(timeout, max(0.0, next_fetch - time.monotonic()))
                woken = asyncio.create_task(wake.wait())
                await asyncio.wait(
                    {woken, stopped}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                woken.cancel()
        finally:
            stopped.cancel()
            for task in tasks.values():
                await _cancel(task)

    async def cycle(self, fetch: bool = False) -> None:
        """One round: fetch and fast-forward (when asked), then ingest what the branch gained.
        What goes wrong is reported in the source's `error`, never raised."""
        report = self.report
        if fetch:
            report.fetch_problem = await self._reporting(self._fetch, "fetch")
        problem = await self._reporting(self.passes.run, "check")
        if problem and problem != report.problem:
            log.warning("source.error", source=self.source.name, error=problem)
        report.problem = problem
        report.write()

    async def _fetch(self) -> str:
        return await fetch_branch(self.git, self.source)

    async def _reporting(self, step: Callable[[], Awaitable[str]], name: str) -> str:
        try:
            return str(await step())
        except GitError as e:
            return e.message
        except Exception as e:
            log.exception(f"source.{name}_crashed", source=self.source.name)
            return f"{name} failed: {e!r}"

    def watch_paths(self) -> list[Path]:
        """Folders whose changes may move the branch: the git dir (HEAD), the common dir
        (packed-refs), the branch's ref folder and a reftable; those that exist."""
        if self.git.dirs is None:
            return []
        git_dir, common = self.git.dirs
        ref_folder = (common / "refs" / "heads" / self.source.branch).parent
        found = [git_dir, common, ref_folder, common / "reftable"]
        return [p for p in dict.fromkeys(found) if p.is_dir()]

    async def _watch(
        self, paths: tuple[str, ...], wake: asyncio.Event, stop: asyncio.Event
    ) -> None:
        while paths and not stop.is_set():
            try:
                async for _ in changes(paths, self.watching, stop, recursive=False):
                    wake.set()
            except Exception as e:  # a folder went away, a watch limit: the poll carries on
                log.warning("source.watch_error", source=self.source.name, error=repr(e))
                wake.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.poll_s)


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class GitSources:
    """Every git source in the config, each run by its own `GitWatcher`. Build it before
    recovery: it tells the intake each checkout's root."""

    def __init__(self, watchers: list[GitWatcher]) -> None:
        self.watchers = watchers

    @classmethod
    def wired(cls, config: Config, links: Links, *, poll_s: float = POLL_S) -> GitSources:
        """Every git source in `config`, wired to `links`."""
        return cls(watchers(config, links, poll_s=poll_s))

    async def run(self, stop: asyncio.Event) -> None:
        """Run every source until `stop` is set; returns promptly after."""
        tasks = [
            asyncio.create_task(w.run(stop), name=f"source:{w.source.name}") for w in self.watchers
        ]
        try:
            await stop.wait()
            if tasks:
                await asyncio.wait(tasks, timeout=5.0)  # each returns at once: passes are cancelled
        finally:
            for task in tasks:
                await _cancel(task)
            for task in tasks:
                if not task.cancelled() and task.exception() is not None:
                    log.error("source.crashed", error=repr(task.exception()))


def watchers(config: Config, links: Links, *, poll_s: float = POLL_S) -> list[GitWatcher]:
    """A watcher for each git source in `config`."""
    return [GitWatcher(s, config, links, poll_s=poll_s) for s in config.sources if s.kind == "git"]


__all__ = ["GitSources", "GitWatcher", "watchers"]

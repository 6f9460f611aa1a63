"""The git source: each committed version of a task file in a watched checkout runs once.

Only committed content counts, read by commit, never from the working tree or the index, so a
person's own `git commit` is never raced (git runs with GIT_OPTIONAL_LOCKS=0, and nothing here
refreshes the index). One pass over a source (`GitWatcher.check`):

1. the tip is `git rev-parse refs/heads/<branch>`; the new commits are
   `git rev-list --first-parent --reverse <tip> ^<last ingested>` (a merge counts as its diff
   against its first parent);
2. their objects (`git cat-file --batch`) give author, commit time and signature; their changes
   below `subdir` come from `git diff-tree --stdin -r -z -M` (renames detected); file contents
   are read by blob id, again with `git cat-file --batch`;
3. commit by commit, `gitplan.plan` turns changes into actions, carried out here: a new version
   is offered to the intake (`Intake.offer_bytes`: each version runs at most once, ever), a
   deleted or changed file withdraws its not-started tasks, a pure rename moves them. The
   source's `last_commit` advances once the whole pass is carried out, so a pass interrupted by a
   crash or a stop is done again, harmlessly (a version is offered at most once, ever) and with
   the same outcome (what counts as "from before this pass" is decided by commit).

The first sight of a source (or of its branch) is a baseline: nothing runs, unless
`ingest_existing`. Trust (`allowed_authors`, `require_signed`) is checked per commit; a commit
that fails it changes nothing, and its files go to `rejected/@<name>/` with the reason.

With `remote`, every `fetch_interval`: `git fetch <remote> +refs/heads/B:refs/remotes/<remote>/B`,
then B is fast-forwarded, never reset: with `git merge --ff-only` when B is checked out in the
checkout, and only while no tracked file has uncommitted changes there; with a compare-and-swap
`git update-ref` when B is checked out nowhere. History that does not fast-forward is refused and
reported in the source's `error`.

The checkout's git folders (HEAD, the branch's ref folder, packed-refs) are watched, so a local
commit or pull is seen within the watcher's debounce; a poll every few seconds backs it up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from watchfiles import awatch

from claudomator.config import GitSource
from claudomator.sources.gitapply import Applier, IntakeLike, ServiceLike
from claudomator.sources.gitplan import (
    Action,
    Commit,
    GitError,
    Offer,
    Reject,
    author_verdict,
    parse_commit,
    parse_diff_tree,
    parse_tree,
    plan,
    refuse,
    signature_verdict,
)

log = structlog.get_logger("claudomator.sources.git")

POLL_S = 5.0  # look at the branch this often, whatever the watcher says
CHUNK = 256  # commits read per round of cat-file and diff-tree
DIFF = ("diff-tree", "--stdin", "-r", "-z", "-M", "--raw", "--no-abbrev", "--root")
NO_MAINTENANCE = ("-c", "maintenance.auto=false", "-c", "gc.auto=0")
# What a calling git (a hook) may have set that would point git at another repository.
_REPOSITORY_ENV = frozenset(
    {
        *("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_PREFIX"),
        *("GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR", "GIT_NAMESPACE", "GIT_GRAFT_FILE"),
        *("GIT_SHALLOW_FILE", "GIT_IMPLICIT_WORK_TREE", "GIT_REPLACE_REF_BASE"),
        *("GIT_QUARANTINE_PATH", "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT"),
    }
)


# -- running git -----------------------------------------------------------------------------------


def git_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment less anything pointing at another repository; optional locks off
    (never the index lock), no prompts, literal pathspecs, no replace refs (what a commit says
    is what it holds)."""
    env = {
        k: v
        for k, v in (os.environ if base is None else base).items()
        if k not in _REPOSITORY_ENV and not k.startswith(("GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_"))
    }
    env.update(
        GIT_OPTIONAL_LOCKS="0",
        GIT_TERMINAL_PROMPT="0",
        GIT_LITERAL_PATHSPECS="1",
        GIT_NO_REPLACE_OBJECTS="1",
        GIT_EDITOR=":",
        GIT_MERGE_AUTOEDIT="no",
        LC_ALL="C",
    )
    return env


@dataclass(frozen=True)
class Result:
    """What a git call said: exit code, stdout, stderr."""

    code: int
    out: bytes
    err: str

    @property
    def text(self) -> str:
        return self.out.decode("utf-8", "replace").strip()


class Git:
    """git in one checkout, as asyncio subprocesses; a cancelled call kills its git."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = git_env()

    async def run(
        self,
        *args: str,
        input: bytes | None = None,
        ok: Iterable[int] = (0,),
        timeout_s: float = 120,
    ) -> Result:
        proc = await self._spawn(args, stdin=input is not None)
        try:
            out, err = await asyncio.wait_for(proc.communicate(input), timeout_s)
        except TimeoutError:
            raise GitError(f"git {_command(args)} took longer than {timeout_s:.0f}s") from None
        finally:
            await _reap(proc)
        result = Result(proc.returncode or 0, out, err.decode("utf-8", "replace").strip())
        if result.code not in ok:
            detail = result.err.splitlines()[-1] if result.err else f"exit {result.code}"
            raise GitError(f"git {_command(args)} in {self.root}: {detail}")
        return result

    async def objects(self, names: Sequence[str], limit: int) -> dict[str, tuple[int, bytes]]:
        """Each object's size and first `limit` bytes, from one `git cat-file --batch` that is
        fed while it is read."""
        proc = await self._spawn(("cat-file", "--batch"), stdin=True)
        assert proc.stdin is not None and proc.stdout is not None
        stdin, stdout = proc.stdin, proc.stdout

        async def feed() -> None:
            with contextlib.suppress(ConnectionError):  # git ended early: the reader says why
                for i in range(0, len(names), 512):
                    stdin.write("".join(n + "\n" for n in names[i : i + 512]).encode())
                    await stdin.drain()
                stdin.close()

        feeder = asyncio.create_task(feed())
        out: dict[str, tuple[int, bytes]] = {}
        try:
            for name in names:
                header = (await stdout.readline()).split()
                if len(header) != 3:
                    raise GitError(f"git cat-file in {self.root}: object {name} not found")
                size = int(header[2])
                data = await stdout.readexactly(min(size, limit))
                rest = size - len(data)
                while rest > 0:
                    rest -= len(await stdout.readexactly(min(rest, 1 << 20)))
                await stdout.readexactly(1)
                out[name] = (size, data)
            await feeder
        except (asyncio.IncompleteReadError, ConnectionError) as e:
            raise GitError(f"git cat-file in {self.root} ended early: {e!r}") from e
        finally:
            feeder.cancel()
            await _reap(proc)
        return out

    async def _spawn(self, args: Sequence[str], stdin: bool) -> asyncio.subprocess.Process:
        try:
            return await asyncio.create_subprocess_exec(
                "git", "-C", str(self.root), *args,
                stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=self.env,
                start_new_session=True,
            )  # fmt: skip
        except OSError as e:
            raise GitError(f"cannot run git: {e}") from e


async def _reap(proc: asyncio.subprocess.Process) -> None:
    """Kill what is left of a git call: git and its helpers (ssh, credential helpers) share its
    process group."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        await asyncio.shield(proc.wait())


def _command(args: Sequence[str]) -> str:
    """The git command in `args` (past `-c name=value` options)."""
    rest = list(args)
    while len(rest) > 1 and rest[0] == "-c":
        rest = rest[2:]
    return rest[0] if rest else "?"


def _real(path: str | Path) -> Path:
    return Path(os.path.realpath(path))


# -- one source ------------------------------------------------------------------------------------


class GitWatcher:
    """One `[[sources]]` checkout: fetched (with a remote), watched, its new commits ingested."""

    def __init__(
        self, source: GitSource, service: ServiceLike, intake: IntakeLike, *, poll_s: float = POLL_S
    ) -> None:
        self.source, self.service, self.intake = source, service, intake
        self.store = service.store
        self.key = "@" + source.name
        self.root = _real(source.path)
        intake.base_dirs[self.key] = self.root  # the intake's crash repair needs it at start
        self.git = Git(self.root)
        self.poll_s = poll_s
        self.max_bytes = service.config.max_file_bytes
        self.applier = Applier(source.name, self.root, service, intake, self.max_bytes)
        self.git_dirs: tuple[Path, Path] | None = None  # git dir and common dir, once found
        # The source's `error` joins the last fetch's problem (with the fast-forward), the last
        # pass's (cleared by one that works), and the notice of the last pass that found new
        # commits (rejected commits: kept, across restarts too, until new commits arrive).
        self.fetch_problem = self.problem = ""
        self.notice = str((self.store.source_state(source.name) or {}).get("error") or "")

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
        if fetch:
            self.fetch_problem = await self._reporting(self.fetch, "fetch")
        problem = await self._reporting(self.check, "check")
        if problem and problem != self.problem:
            log.warning("source.error", source=self.source.name, error=problem)
        self.problem = problem
        self._report()

    async def _reporting(self, step: Callable[[], Awaitable[str]], name: str) -> str:
        try:
            return str(await step())
        except GitError as e:
            return e.message
        except Exception as e:
            log.exception(f"source.{name}_crashed", source=self.source.name)
            return f"{name} failed: {e!r}"

    def _report(self, last_commit: str | None = None) -> None:
        """Write the source's row: the last commit ingested and what is wrong, if anything."""
        parts = [p for p in (self.fetch_problem, self.problem) if p and p not in self.notice]
        error = "; ".join([*parts, self.notice] if self.notice else parts)
        state = self.store.source_state(self.source.name)
        values: dict[str, Any] = {}
        if state is None or state["error"] != error:
            values["error"] = error
        if last_commit is not None and (state is None or state["last_commit"] != last_commit):
            values["last_commit"] = last_commit
        if values or state is None:
            self.store.set_source_state(self.source.name, self.source.kind, **values)

    # -- ingesting -------------------------------------------------------------------------------

    async def check(self) -> str:
        """Ingest every commit the branch gained since the last pass; returns what stops that
        ("" when nothing does)."""
        await self._open()
        last = str((self.store.source_state(self.source.name) or {}).get("last_commit") or "")
        tip = await self._rev(f"refs/heads/{self.source.branch}")
        if tip is None:
            return f"branch {self.source.branch} not found" + (" (it was there)" if last else "")
        if not last:
            await self._baseline(tip)
        elif tip != last and await self._rev(last) is None:
            self.notice = (
                f"the last ingested commit {last[:12]} is gone from the checkout: "
                f"{tip[:12]} is the new baseline, nothing in between ran"
            )
            log.warning("source.rebased", source=self.source.name, last=last, tip=tip)
            self._report(last_commit=tip)
        elif tip != last:
            listed = await self.git.run("rev-list", "--first-parent", "--reverse", tip, "^" + last)
            commits = listed.text.split()
            # files from before this pass: a changed file withdraws only those (told apart by
            # commit, so that a pass redone after a crash decides as the first attempt did)
            walked = set(commits)
            earlier = {
                row["id"]
                for row in self.store.files(["queued", "running"])
                if row["source"] == self.key
                and json.loads(row["provenance_json"] or "{}").get("commit") not in walked
            }
            self.notice = ""
            rejected: list[str] = []
            for i in range(0, len(commits), CHUNK):
                rejected += await self._ingest(commits[i : i + CHUNK], earlier)
                self.notice = "; ".join(rejected[-3:])
                if len(rejected) > 3:
                    self.notice = f"{len(rejected)} commits rejected, the last: {self.notice}"
            self._report(last_commit=tip)
            log.info("source.ingested", source=self.source.name, commits=len(commits), tip=tip)
        return ""

    async def _ingest(self, shas: list[str], earlier: set[str]) -> list[str]:
        """Carry out commits in order; returns why commits were rejected."""
        objects = await self.git.objects(shas, 1 << 20)
        commits = [parse_commit(sha, objects[sha][1]) for sha in shas]
        lines = "".join(f"{c.sha} {c.parents[0]}\n" if c.parents else f"{c.sha}\n" for c in commits)
        pathspec = ("--", self.source.subdir) if self.source.subdir else ()
        diffs = parse_diff_tree((await self.git.run(*DIFF, *pathspec, input=lines.encode())).out)
        plans = [(c, plan(diffs.get(c.sha, []), self.source.subdir, c.sha)) for c in commits]
        contents = await self._contents(a for _, p in plans for a in p)
        rejected = []
        for commit, actions in plans:
            if actions:
                reason = await self.trust(commit)
                if reason:
                    rejected.append(reason)
                    actions = refuse(actions, reason)
                await self.applier.apply(commit, actions, contents, earlier)
                await asyncio.sleep(0)  # let the pool and the API run between commits
        return rejected

    async def _baseline(self, tip: str) -> None:
        """First sight of the branch: its files are the baseline (they run with ingest_existing)."""
        offered = 0
        if self.source.ingest_existing:
            pathspec = ("--", self.source.subdir) if self.source.subdir else ()
            tree = await self.git.run("ls-tree", "-r", "-z", "--full-tree", tip, *pathspec)
            actions = plan(parse_tree(tree.out), self.source.subdir, tip)
            if actions:
                commit = parse_commit(tip, (await self.git.objects([tip], 1 << 20))[tip][1])
                reason = await self.trust(commit)
                if reason:
                    self.notice, actions = reason, refuse(actions, reason)
                offered = await self.applier.apply(
                    commit, actions, await self._contents(actions), set()
                )
        self._report(last_commit=tip)
        log.info("source.baseline", source=self.source.name, commit=tip, offered=offered)

    async def _contents(self, actions: Iterable[Action]) -> dict[str, tuple[int, bytes]]:
        blobs = sorted({a.blob for a in actions if isinstance(a, Offer | Reject)})
        return await self.git.objects(blobs, self.max_bytes + 1) if blobs else {}

    async def trust(self, commit: Commit) -> str:
        """Why `commit` may not ask for runs ("" when it may): allowed_authors, then, with
        require_signed, `git verify-commit` against allowed_signers and allowed_keys."""
        source = self.source
        reason = author_verdict(commit.author, source.allowed_authors)
        if not reason and source.require_signed:
            if not commit.signed:
                reason = "not signed, and require_signed is on"
            else:
                signers = f"gpg.ssh.allowedSignersFile={source.allowed_signers or os.devnull}"
                verified = await self.git.run(
                    "-c", signers, "verify-commit", "--raw", commit.sha, ok=range(256)
                )
                reason = signature_verdict(verified.code, verified.err, source.allowed_keys)
        if not reason:
            return ""
        reason = f"commit {commit.sha[:12]} by {commit.author or '?'}: {reason}"
        log.warning("source.commit_rejected", source=source.name, reason=reason)
        return reason

    # -- fetching --------------------------------------------------------------------------------

    async def fetch(self) -> str:
        """Fetch the branch and fast-forward it; returns what went wrong ("" when nothing did)."""
        await self._open()
        branch, remote = self.source.branch, self.source.remote
        tracking = f"refs/remotes/{remote}/{branch}"
        refspec = f"+refs/heads/{branch}:{tracking}"
        await self.git.run(
            *NO_MAINTENANCE, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", remote,
            refspec, timeout_s=max(60.0, self.source.fetch_interval_s),
        )  # fmt: skip
        theirs = await self._rev(tracking)
        ours = await self._rev(f"refs/heads/{branch}")
        if theirs is None or theirs == ours:
            return ""
        if ours is not None and not await self._is_ancestor(ours, theirs):
            if await self._is_ancestor(theirs, ours):
                return ""  # local commits not pushed yet: nothing to take
            log.warning("source.refused", source=self.source.name, ours=ours, theirs=theirs)
            return (
                f"refused: {remote}/{branch} ({theirs[:12]}) does not fast-forward from "
                f"{branch} ({ours[:12]}): history was rewritten (an amend and a force-push?) or "
                "has diverged; claudomator never resets, reconcile the checkout by hand"
            )
        where = await self._checked_out(branch)
        if where is None:
            message = f"claudomator: fast-forward from {remote}"
            await self.git.run(
                "update-ref", "-m", message, f"refs/heads/{branch}", theirs, ours or ""
            )
        elif where != self.root:
            return f"not fast-forwarded: {branch} is checked out in another worktree, {where}"
        elif (await self.git.run("status", "--porcelain", "--untracked-files=no")).out.strip():
            return f"not fast-forwarded to {theirs[:12]}: uncommitted changes in {self.root}"
        else:
            await self.git.run("merge", "--ff-only", "--quiet", "--no-stat", theirs)
        log.info("source.fast_forwarded", source=self.source.name, commit=theirs)
        return ""

    async def _checked_out(self, branch: str) -> Path | None:
        """The worktree that has `branch` checked out, if any."""
        listed = await self.git.run("worktree", "list", "--porcelain")
        path: Path | None = None
        for line in listed.out.decode("utf-8", "replace").splitlines():
            key, _, value = line.partition(" ")
            if key == "worktree":
                path = _real(value)
            elif key == "branch" and value == f"refs/heads/{branch}":
                return path
        return None

    # -- the checkout's metadata -------------------------------------------------------------------

    async def _open(self) -> None:
        """Check that the path is the top of a checkout (or a bare repository); find its git
        folders for the watcher."""
        if self.git_dirs is not None:
            return
        if not self.root.is_dir():
            raise GitError(f"{self.root}: no such folder")
        found = await self.git.run(
            "rev-parse", "--path-format=absolute", "--git-dir", "--git-common-dir",
            "--is-bare-repository",
        )  # fmt: skip
        git_dir, common, bare = found.text.splitlines()
        if bare != "true":
            top = (await self.git.run("rev-parse", "--show-toplevel")).text
            if _real(top) != self.root:
                raise GitError(f"{self.root} is inside the checkout {top}, not its top folder")
        self.git_dirs = (Path(git_dir), Path(common))

    def watch_paths(self) -> list[Path]:
        """Folders whose changes may move the branch: the git dir (HEAD), the common dir
        (packed-refs), the branch's ref folder and a reftable; those that exist."""
        if self.git_dirs is None:
            return []
        git_dir, common = self.git_dirs
        ref_folder = (common / "refs" / "heads" / self.source.branch).parent
        found = [git_dir, common, ref_folder, common / "reftable"]
        return [p for p in dict.fromkeys(found) if p.is_dir()]

    async def _watch(
        self, paths: tuple[str, ...], wake: asyncio.Event, stop: asyncio.Event
    ) -> None:
        config = self.service.config
        step_ms = max(1, round(config.step_s * 1000))
        while paths and not stop.is_set():
            try:
                async for _ in awatch(
                    *paths,
                    watch_filter=None,
                    debounce=max(1, round(config.debounce_s * 1000)),
                    step=step_ms,
                    stop_event=stop,
                    force_polling=config.intake_poll,
                    poll_delay_ms=max(step_ms, 100),
                    rust_timeout=1000,
                    recursive=False,
                ):
                    wake.set()
            except Exception as e:  # a folder went away, a watch limit: the poll carries on
                log.warning("source.watch_error", source=self.source.name, error=repr(e))
                wake.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.poll_s)

    async def _rev(self, ref: str) -> str | None:
        found = await self.git.run("rev-parse", "-q", "--verify", ref + "^{commit}", ok=(0, 1, 128))
        return found.text if found.code == 0 and found.text else None

    async def _is_ancestor(self, old: str, new: str) -> bool:
        return (await self.git.run("merge-base", "--is-ancestor", old, new, ok=(0, 1))).code == 0


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class GitSources:
    """Every git source in the config, each run by its own `GitWatcher`. Build it before
    recovery: it tells the intake each checkout's root."""

    def __init__(self, service: ServiceLike, intake: IntakeLike, *, poll_s: float = POLL_S) -> None:
        self.watchers = [
            GitWatcher(source, service, intake, poll_s=poll_s)
            for source in service.config.sources
            if source.kind == "git"
        ]

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


__all__ = ["GitError", "GitSources", "GitWatcher", "git_env"]

"""git, the command, in one checkout: asyncio subprocesses in an environment that points at no
other repository, takes no optional lock (never the index lock, so a person's own `git commit` is
never raced), prompts for nothing and honours no replace refs. A cancelled or timed-out call
kills its git and whatever git started (ssh, credential helpers). The only place that runs git."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from claudomator.sources.gitplan import GitError

# What a calling git (a hook) may have set that would point git at another repository.
_REPOSITORY_ENV = frozenset(
    {
        *("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_PREFIX"),
        *("GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR", "GIT_NAMESPACE", "GIT_GRAFT_FILE"),
        *("GIT_SHALLOW_FILE", "GIT_IMPLICIT_WORK_TREE", "GIT_REPLACE_REF_BASE"),
        *("GIT_QUARANTINE_PATH", "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT"),
    }
)


def repository_free(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment less anything pointing git at another repository: what a
    program that may run git of its own in a checkout (a worktree's setup) is given."""
    return {
        k: v
        for k, v in (os.environ if base is None else base).items()
        if k not in _REPOSITORY_ENV and not k.startswith(("GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_"))
    }


def git_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment less anything pointing at another repository; optional locks off
    (never the index lock), no prompts, literal pathspecs, no replace refs (what a commit says
    is what it holds)."""
    env = repository_free(base)
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


def real_path(path: str | Path) -> Path:
    return Path(os.path.realpath(path))


@dataclass(frozen=True)
class Result:
    """What a git call said: exit code, stdout, stderr."""

    code: int
    out: bytes
    err: str

    @property
    def text(self) -> str:
        return self.out.decode("utf-8", "replace").strip()


# Per event loop and repository top folder: see `Git.worktree_lock`.
_WORKTREE_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Path, asyncio.Lock]]
_WORKTREE_LOCKS = weakref.WeakKeyDictionary()


class Git:
    """git in one checkout, as asyncio subprocesses; a cancelled call kills its git."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = git_env()
        self.dirs: tuple[Path, Path] | None = None  # git dir and common dir, once opened

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

    async def open(self) -> None:
        """Check that the root is the top of a checkout (or a bare repository) and find its git
        folders (`dirs`, for the watcher); once."""
        if self.dirs is not None:
            return
        if not self.root.is_dir():
            raise GitError(f"{self.root}: no such folder")
        found = await self.run(
            "rev-parse", "--path-format=absolute", "--git-dir", "--git-common-dir",
            "--is-bare-repository",
        )  # fmt: skip
        git_dir, common, bare = found.text.splitlines()
        if bare != "true":
            top = (await self.run("rev-parse", "--show-toplevel")).text
            if real_path(top) != self.root:
                raise GitError(f"{self.root} is inside the checkout {top}, not its top folder")
        self.dirs = (Path(git_dir), Path(common))

    async def rev(self, ref: str) -> str | None:
        """The commit `ref` names, None when it names none."""
        found = await self.run("rev-parse", "-q", "--verify", ref + "^{commit}", ok=(0, 1, 128))
        return found.text if found.code == 0 and found.text else None

    async def toplevel(self) -> Path | None:
        """The top folder (links resolved) of the checkout the root is in; None when the root
        is in none (or is no folder). A repository git refuses to read is an error."""
        found = await self.run("rev-parse", "--show-toplevel", ok=(0, 128))
        if found.code == 0 and found.text:
            return real_path(found.text)
        if "not a git repository" in found.err or "cannot change to" in found.err:
            return None
        if "must be run in a work tree" in found.err:
            return None  # inside a git folder or a bare repository: no checkout
        detail = (found.err.splitlines() or [f"exit {found.code}"])[-1]
        raise GitError(f"git rev-parse in {self.root}: {detail}")

    def worktree_lock(self) -> asyncio.Lock:
        """This process's lock on the worktree records of the repository whose top folder is
        the root: git reads every worktree's record when it adds, lists or removes one, and
        fails on one half written (`failed to read .git/worktrees/<name>/commondir`)."""
        locks = _WORKTREE_LOCKS.setdefault(asyncio.get_running_loop(), {})
        return locks.setdefault(real_path(self.root), asyncio.Lock())

    async def is_ancestor(self, old: str, new: str) -> bool:
        return (await self.run("merge-base", "--is-ancestor", old, new, ok=(0, 1))).code == 0

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


__all__ = ["Git", "Result", "git_env", "real_path", "repository_free"]

"""What git says, parsed, and what a commit asks for: pure functions over git's output, tested
with tables. `gitcmd` runs git, `gitpass` reads a branch's new commits, `gitapply` carries the
actions out. Which file names are task files is the caller's rule (the spool's), passed in."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from claudomator.errors import ClaudomatorError

REGULAR_MODES = ("100644", "100755")
LINK_MODE = "120000"
LINK_REASON = "a symbolic link in the commit is never read"


class GitError(ClaudomatorError):
    """A git command failed, or said something that cannot be read."""


@dataclass(frozen=True)
class Commit:
    sha: str
    parents: tuple[str, ...]
    author: str  # e-mail as written in the commit (no mailmap: a committed file could remap it)
    committed_at: str  # ISO 8601 with the committer's offset
    signed: bool

    def provenance(self, source: str, path: str, blob: str) -> dict[str, str]:
        """Where a task came from, as `status ID`, the API and the result file show it."""
        return {
            "source": source,
            "commit": self.sha,
            "author": self.author,
            "committed_at": self.committed_at,
            "path": path,
            "blob": blob,
        }


@dataclass(frozen=True)
class Change:
    """One entry of `git diff-tree --raw` (or of `git ls-tree`, as an addition)."""

    status: str  # A, D, M, R, T (C, U, X are not asked for)
    old_path: str
    new_path: str
    old_blob: str
    new_blob: str
    old_mode: str
    new_mode: str


@dataclass(frozen=True)
class Offer:
    """A version to run: `rel` (below subdir) at `path` (in the repository) with `blob`."""

    rel: str
    path: str
    blob: str


@dataclass(frozen=True)
class Reject:
    """A version that never runs, with the reason."""

    rel: str
    path: str
    blob: str
    reason: str


@dataclass(frozen=True)
class Withdraw:
    """A task file deleted or replaced: its not-started tasks are cancelled. `earlier_only`: only
    files from before this pass (a change does not cancel versions that arrived with it), and
    never a file of version `keep` (the content the path has now)."""

    rel: str
    reason: str
    earlier_only: bool
    keep: str = ""


@dataclass(frozen=True)
class Follow:
    """A pure rename: the not-started tasks move to the new path, nothing runs again."""

    old_rel: str
    new_rel: str


Action = Offer | Reject | Withdraw | Follow

_IDENT = re.compile(r"(.*)<([^<>\n]*)> (-?\d+) ([+-]\d{4})")


def parse_commit(sha: str, raw: bytes) -> Commit:
    """A commit object's header: parents, author e-mail, commit time, signature present."""
    header = raw.split(b"\n\n", 1)[0].decode("utf-8", "replace")
    parents: list[str] = []
    author, committed_at, signed = "", "", False
    for line in header.split("\n"):
        key, _, value = line.partition(" ")
        if key == "parent":
            parents.append(value.strip())
        elif key == "author" and (match := _IDENT.fullmatch(value)):
            author = match.group(2).strip()
        elif key == "committer" and (match := _IDENT.fullmatch(value)):
            committed_at = _iso(int(match.group(3)), match.group(4))
        elif key in ("gpgsig", "gpgsig-sha256"):
            signed = True
    return Commit(sha, tuple(parents), author, committed_at, signed)


def _iso(epoch: int, offset: str) -> str:
    sign = -1 if offset.startswith("-") else 1
    tz = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])))
    return datetime.fromtimestamp(epoch, UTC).astimezone(tz).isoformat()


def parse_diff_tree(data: bytes) -> dict[str, list[Change]]:
    """`git diff-tree --stdin -r -z --raw` output: a commit id, then its changes. Fields are
    NUL-separated and paths read by position, so no file name can pass for anything else."""
    tokens = data.split(b"\0")
    out: dict[str, list[Change]] = {}
    current: list[Change] | None = None
    i = 0
    try:
        while i < len(tokens):
            token = tokens[i].strip(b"\n")
            i += 1
            if not token:
                continue
            if not token.startswith(b":"):
                current = out.setdefault(token.decode("ascii"), [])
                continue
            old_mode, new_mode, old_blob, new_blob, status = token[1:].decode("ascii").split(" ")
            count = 2 if status[0] in "RC" else 1
            paths, i = tokens[i : i + count], i + count
            if current is None or len(paths) != count:
                raise ValueError("a change outside a commit")
            try:
                names = [p.decode("utf-8") for p in paths]
            except UnicodeDecodeError:
                continue  # not a name claudomator can show or store: never a task file
            current.append(
                Change(status[0], names[0], names[-1], old_blob, new_blob, old_mode, new_mode)
            )
    except (ValueError, UnicodeDecodeError) as e:
        raise GitError(f"cannot read git diff-tree output: {e}") from e
    return out


def parse_tree(data: bytes) -> list[Change]:
    """`git ls-tree -r -z` output, as additions (what `ingest_existing` runs)."""
    out = []
    for entry in data.split(b"\0"):
        meta, _, raw = entry.partition(b"\t")
        fields = meta.decode("ascii", "replace").split(" ")
        if len(fields) != 3 or fields[1] != "blob":
            continue
        try:
            path = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        mode, _, blob = fields
        out.append(Change("A", "", path, "0" * len(blob), blob, "000000", mode))
    return out


def task_rel(path: str, subdir: str, watched: Callable[[str], bool]) -> str | None:
    """The spool path of a repository path: below `subdir`, and one that `watched` takes (the
    spool's `is_watched_path`: a task-file name, no hidden folder); None for every other path."""
    if subdir:
        if not path.startswith(subdir + "/"):
            return None
        path = path[len(subdir) + 1 :]
    return path if watched(path) else None


def plan(
    changes: Sequence[Change], subdir: str, commit: str, watched: Callable[[str], bool]
) -> list[Action]:
    """What one commit's changes ask for, for the paths `task_rel` takes. Withdrawals and renames
    come first, so that a version added by the same commit at a path just vacated is never
    caught by them."""
    first: list[Action] = []
    then: list[Action] = []
    readable = (*REGULAR_MODES, LINK_MODE)
    for c in changes:
        old = task_rel(c.old_path, subdir, watched) if c.status in "DMRT" else None
        new = task_rel(c.new_path, subdir, watched) if c.status in "AMRT" else None
        if old and old == new and c.old_blob == c.new_blob:
            continue  # a mode change: not a new version
        pure = c.status == "R" and c.old_blob == c.new_blob
        if old and new and pure and c.old_mode in REGULAR_MODES and c.new_mode in REGULAR_MODES:
            first.append(Follow(old, new))
            continue
        if old and c.old_mode in readable:
            if new and c.new_mode in readable:
                how = "renamed with changes" if c.status == "R" else "changed"
                keep = c.new_blob if new == old else ""
                first.append(Withdraw(old, f"task file {how} in commit {commit[:12]}", True, keep))
            else:
                first.append(Withdraw(old, f"task file deleted in commit {commit[:12]}", False))
        if new and c.new_mode in REGULAR_MODES:
            then.append(Offer(new, c.new_path, c.new_blob))
        elif new and c.new_mode == LINK_MODE:
            then.append(Reject(new, c.new_path, c.new_blob, LINK_REASON))
    return first + then


def refuse(actions: Sequence[Action], reason: str) -> list[Action]:
    """An untrusted commit changes nothing: its versions are rejected with `reason`, and it
    withdraws and moves nothing."""
    return [
        Reject(a.rel, a.path, a.blob, reason if isinstance(a, Offer) else a.reason)
        for a in actions
        if isinstance(a, Offer | Reject)
    ]


def author_verdict(author: str, allowed: Sequence[str]) -> str:
    """Why `author` may not ask for runs ("" when it may); no list allows everyone."""
    if not allowed or author.lower() in allowed:
        return ""
    return f"author {author or '(none)'} is not in allowed_authors"


def signature_verdict(code: int, raw: str, allowed_keys: Sequence[str]) -> str:
    """Why `git verify-commit --raw` output is not a good signature from an allowed key ("" when
    it is). git checks SSH signatures against allowed_signers itself (a good one names its
    principal); an OpenPGP one must also come from a fingerprint in `allowed_keys`."""
    lines = [line.strip() for line in raw.strip().splitlines() if line.strip()]
    if any(line.startswith("[GNUPG:]") for line in lines):
        valid = [line.split()[2:] for line in lines if line.startswith("[GNUPG:] VALIDSIG ")]
        if code != 0 or not valid:
            status = [line.split()[1] for line in lines if line.startswith("[GNUPG:] ")]
            return f"no good OpenPGP signature ({', '.join(status[-3:]) or 'no status'})"
        fields = valid[0]  # fingerprint, dates, ..., and the primary key's fingerprint last
        fingerprints = {fields[0].upper(), fields[-1].upper()}
        if not fingerprints & set(allowed_keys):
            return f"signed by OpenPGP key {fields[0]}, which is not in allowed_keys"
        return ""
    if code == 0 and lines and lines[0].startswith('Good "git" signature for '):
        return ""
    detail = lines[-1] if lines else "no usable signature"
    return f"no good signature from a key in allowed_signers ({detail})"


__all__ = [
    "Action",
    "Change",
    "Commit",
    "Follow",
    "GitError",
    "Offer",
    "Reject",
    "Withdraw",
    "author_verdict",
    "parse_commit",
    "parse_diff_tree",
    "parse_tree",
    "plan",
    "refuse",
    "signature_verdict",
    "task_rel",
]

"""The git source's decisions, as tables: what a commit's changes ask for, how git's output is
read, when a signature or an author is good; and its `[[sources]]` config and `sources` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from claudomator.config import GitSource, config_template, load_config
from claudomator.errors import ConfigError
from claudomator.sources.gitplan import (
    Change,
    Follow,
    GitError,
    Offer,
    Reject,
    Withdraw,
    author_verdict,
    parse_commit,
    parse_diff_tree,
    parse_tree,
    plan,
    refuse,
    signature_verdict,
    task_rel,
)
from claudomator.spool import is_watched_path

Z = "0" * 40
B1, B2 = "1" * 40, "2" * 40
C = "c" * 40
F = "100644"


def change(
    status: str, old: str, new: str, b_old: str = B1, b_new: str = B2, **modes: str
) -> Change:
    return Change(
        status, old, new, b_old, b_new, modes.get("old_mode", F), modes.get("new_mode", F)
    )


@pytest.mark.parametrize(
    ("path", "subdir", "rel"),
    [
        ("tasks/a.yaml", "tasks", "a.yaml"),
        ("tasks/x/b.yml", "tasks", "x/b.yml"),
        ("tasksx/a.yaml", "tasks", None),
        ("a.yaml", "", "a.yaml"),
        ("tasks/a.txt", "tasks", None),
        ("tasks/.hidden/a.yaml", "tasks", None),
        ("tasks/.a.yaml", "tasks", None),
        ("tasks/a.yaml.swp", "tasks", None),
        ("tasks/@x/a.yaml", "tasks", None),
        ("deep/er/a.yaml", "deep/er", "a.yaml"),
    ],
)
def test_task_rel(path: str, subdir: str, rel: str | None) -> None:
    assert task_rel(path, subdir, is_watched_path) == rel


WD = "task file {} in commit cccccccccccc"


@pytest.mark.parametrize(
    ("changes", "actions"),
    [
        ([change("A", "", "t/a.yaml", Z, B1)], [Offer("a.yaml", "t/a.yaml", B1)]),
        (
            [change("M", "t/a.yaml", "t/a.yaml")],
            [Withdraw("a.yaml", WD.format("changed"), True, B2), Offer("a.yaml", "t/a.yaml", B2)],
        ),
        (
            [change("D", "t/a.yaml", "t/a.yaml", B1, Z, new_mode="000000")],
            [Withdraw("a.yaml", WD.format("deleted"), False)],
        ),
        ([change("R", "t/a.yaml", "t/b.yaml", B1, B1)], [Follow("a.yaml", "b.yaml")]),
        (
            [change("R", "t/a.yaml", "t/b.yaml")],
            [
                Withdraw("a.yaml", WD.format("renamed with changes"), True),
                Offer("b.yaml", "t/b.yaml", B2),
            ],
        ),
        (  # renamed out of subdir, or to a name that is not a task file: deleted
            [change("R", "t/a.yaml", "t/a.yaml.bak", B1, B1)],
            [Withdraw("a.yaml", WD.format("deleted"), False)],
        ),
        ([change("R", "notes.txt", "t/a.yaml", B1, B1)], [Offer("a.yaml", "t/a.yaml", B1)]),
        ([change("M", "t/a.yaml", "t/a.yaml", B1, B1, new_mode="100755")], []),  # mode only
        (
            [change("A", "", "t/l.yaml", Z, B1, new_mode="120000")],
            [Reject("l.yaml", "t/l.yaml", B1, "a symbolic link in the commit is never read")],
        ),
        ([change("A", "", "t/sub.yaml", Z, B1, new_mode="160000")], []),  # a submodule
        ([change("A", "", "elsewhere/a.yaml", Z, B1)], []),
        (  # withdrawals and renames before offers: a new file at a vacated path is not caught
            [change("A", "", "t/a.yaml", Z, B2), change("R", "t/a.yaml", "t/b.yaml", B1, B1)],
            [Follow("a.yaml", "b.yaml"), Offer("a.yaml", "t/a.yaml", B2)],
        ),
    ],
)
def test_plan(changes: list[Change], actions: list[object]) -> None:
    assert plan(changes, "t", C, is_watched_path) == actions


def test_an_untrusted_commit_changes_nothing() -> None:
    actions = plan(
        [
            change("A", "", "a.yaml", Z, B1),
            change("D", "b.yaml", "b.yaml", B1, Z, new_mode="000000"),
            change("A", "", "l.yaml", Z, B2, new_mode="120000"),
        ],
        "",
        C,
        is_watched_path,
    )
    assert refuse(actions, "unsigned") == [
        Reject("a.yaml", "a.yaml", B1, "unsigned"),
        Reject("l.yaml", "l.yaml", B2, "a symbolic link in the commit is never read"),
    ]


def test_parse_diff_tree_reads_paths_by_position() -> None:
    raw = (
        f"{C}\0:000000 100644 {Z} {B1} A\0t/a.yaml\0"
        f":100644 100644 {B1} {B1} R100\0t/:100644 x\0t/new name.yaml\0"
        f"{B2}\0:100644 000000 {B1} {Z} D\0t/\xff.yaml\0"
    ).encode("latin-1")
    assert parse_diff_tree(raw) == {
        C: [
            Change("A", "t/a.yaml", "t/a.yaml", Z, B1, "000000", F),
            Change("R", "t/:100644 x", "t/new name.yaml", B1, B1, F, F),
        ],
        B2: [],  # a name that is not UTF-8 is never a task file
    }
    with pytest.raises(GitError):
        parse_diff_tree(f":000000 100644 {Z} {B1} A\0a.yaml\0".encode())


def test_parse_tree_lists_blobs_as_additions() -> None:
    raw = f"100644 blob {B1}\tt/a.yaml\x00160000 commit {B2}\tsub\x00120000 blob {B2}\tl.yaml\x00"
    assert parse_tree(raw.encode()) == [
        Change("A", "", "t/a.yaml", Z, B1, "000000", F),
        Change("A", "", "l.yaml", Z, B2, "000000", "120000"),
    ]


def test_parse_commit() -> None:
    raw = (
        b"tree " + B1.encode() + b"\nparent " + B2.encode() + b"\nparent " + C.encode() + b"\n"
        b"author A <b> C <alice@example.com> 1700000000 +0130\n"
        b"committer C <c@example.com> 1700000000 -0500\n"
        b"gpgsig -----BEGIN SSH SIGNATURE-----\n abc\n -----END SSH SIGNATURE-----\n\n"
        b"message\nauthor fake <evil@example.com> 1 +0000\n"
    )
    commit = parse_commit(C, raw)
    assert commit.parents == (B2, C) and commit.signed
    assert commit.author == "alice@example.com"
    assert commit.committed_at == "2023-11-14T17:13:20-05:00"
    assert not parse_commit(C, b"tree x\nauthor broken\n\n").author


SSH_GOOD = 'Good "git" signature for dev@example.com with ED25519 key SHA256:abc'
SSH_UNKNOWN = 'Good "git" signature with ED25519 key SHA256:abc\nNo principal matched.'
FPR, OTHER = "A" * 40, "B" * 40
GPG_GOOD = (
    f"[GNUPG:] NEWSIG\n[GNUPG:] GOODSIG 1234 Alice <a@x>\n"
    f"[GNUPG:] VALIDSIG {'C' * 40} 2026-01-01 1 0 4 0 22 8 00 {FPR}\n"
)


@pytest.mark.parametrize(
    ("code", "raw", "allowed", "verdict"),
    [
        (0, SSH_GOOD, [], ""),
        (1, SSH_UNKNOWN, [], "no good signature from a key in allowed_signers (No principal matched.)"),
        (1, "", [], "no good signature from a key in allowed_signers (no usable signature)"),
        (0, GPG_GOOD, [FPR], ""),  # the primary key's fingerprint counts
        (0, GPG_GOOD, ["C" * 40], ""),  # and so does the signing subkey's
        (0, GPG_GOOD, [OTHER], f"signed by OpenPGP key {'C' * 40}, which is not in allowed_keys"),
        (1, "[GNUPG:] NEWSIG\n[GNUPG:] BADSIG 1234 x\n", [FPR], "no good OpenPGP signature (NEWSIG, BADSIG)"),
        (1, "[GNUPG:] ERRSIG 1234 22 8 00 1 9\n[GNUPG:] NO_PUBKEY 1234\n", [FPR], "no good OpenPGP signature (ERRSIG, NO_PUBKEY)"),
    ],
)  # fmt: skip
def test_signature_verdict(code: int, raw: str, allowed: list[str], verdict: str) -> None:
    assert signature_verdict(code, raw, allowed) == verdict


@pytest.mark.parametrize(
    ("author", "allowed", "ok"),
    [("a@x", [], True), ("A@X", ["a@x"], True), ("b@x", ["a@x"], False), ("", ["a@x"], False)],
)
def test_author_verdict(author: str, allowed: list[str], ok: bool) -> None:
    assert (author_verdict(author, allowed) == "") is ok


# -- config --------------------------------------------------------------------------------------


def write(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(text)


def test_sources_config(tmp_path: Path) -> None:
    write(
        tmp_path,
        """
[[sources]]
name = "team"
kind = "git"
path = "/srv/team"
subdir = "/tasks/"
branch = "refs/heads/release/1"
remote = "origin"
fetch_interval = "30s"
require_signed = true
allowed_signers = "/etc/signers"
allowed_keys = ["0123 4567 89ab cdef 0123 4567 89AB CDEF 0123 4567"]
allowed_authors = ["Alice@Example.com"]

[[sources]]
name = "ops.2"
kind = "git"
path = "~/ops"
""",
    )
    config = load_config(home=tmp_path, env={"HOME": "/home/me"})
    team, ops = config.sources
    assert team == GitSource(
        name="team", path="/srv/team", subdir="tasks", branch="release/1", remote="origin",
        fetch_interval_s=30.0, require_signed=True, allowed_signers="/etc/signers",
        allowed_keys=("0123456789ABCDEF0123456789ABCDEF01234567",),
        allowed_authors=("alice@example.com",),
    )  # fmt: skip
    assert (ops.branch, ops.subdir, ops.remote, ops.ingest_existing) == ("main", "", "", False)
    assert ops.path.endswith("/ops") and ops.path.startswith("/")
    rows = {k: (v, o) for k, v, o in config.effective()}
    assert rows["sources[0]"][1] == "config.toml"
    assert rows["sources[0]"][0].startswith("team: git /srv/team, branch release/1")


BASE = '[[sources]]\nname = "a"\nkind = "git"\npath = "/x"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sources = 1\n", "sources: write each source as a [[sources]] table"),
        (BASE + "branchh = 'x'\n", "sources[0].branchh: unknown key (did you mean 'branch'?)"),
        ('[[sources]]\nkind = "git"\npath = "/x"\n', "sources[0].name: required"),
        (BASE.replace('"a"', '"a/b"'), "sources[0].name: 'a/b': use 1-64 letters"),
        (BASE.replace('"a"', '"@a"'), "sources[0].name: '@a'"),
        (BASE.replace('"git"', '"svn"'), "sources[0].kind: 'svn' is not a source kind"),
        (BASE.replace('kind = "git"\n', ""), "sources[0].kind: required"),
        (BASE.replace('"/x"', '"rel"'), "sources[0].path: 'rel' is not an absolute path"),
        (BASE + "subdir = '../up'\n", "sources[0].subdir: '../up' is not a folder inside"),
        (BASE + "branch = 'a..b'\n", "sources[0].branch: 'a..b' is not a branch name"),
        (BASE + "remote = '-x'\n", "sources[0].remote: '-x' is not the name of a remote"),
        (BASE + "fetch_interval = 'soon'\n", "sources[0].fetch_interval: 'soon' is not a duration"),
        (BASE + "require_signed = true\n", "sources[0].require_signed: needs allowed_signers"),
        (BASE + "allowed_keys = ['xyz']\n", "sources[0].allowed_keys: 'XYZ' is not an OpenPGP"),
        (BASE + "allowed_authors = ['bob']\n", "sources[0].allowed_authors: 'bob' is not an e-mail"),
        (BASE + "ingest_existing = 'maybe'\n", "sources[0].ingest_existing: 'maybe' is not true"),
        (BASE + BASE, "sources[1].name: 'a' is used by another source"),
    ],
)  # fmt: skip
def test_sources_config_errors_name_the_file_and_field(
    tmp_path: Path, text: str, message: str
) -> None:
    write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(home=tmp_path, env={})
    assert info.value.message.startswith(str(tmp_path / "config.toml") + ": ")
    assert message in info.value.message


def test_the_template_shows_a_sources_table_commented_out() -> None:
    text = config_template()
    block = [line[4:] for line in text.splitlines() if line.startswith("#   ")]
    start = block.index("[[sources]]")
    import tomllib

    parsed = tomllib.loads("\n".join(block[start:]))
    assert set(parsed["sources"][0]) == {
        "name", "kind", "path", "subdir", "branch", "remote", "fetch_interval", "ingest_existing",
        "require_signed", "allowed_signers", "allowed_keys", "allowed_authors", "workspace",
    }  # fmt: skip
    example = (Path(__file__).resolve().parent.parent / "deploy/config.example.toml").read_text()
    assert example.strip() == text.strip()  # deploy/ is the template, regenerated


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "claudomator.cli", *args],
        capture_output=True, text=True, timeout=30, env={"CLAUDOMATOR_HOME": str(home), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip


def test_the_sources_command(tmp_path: Path) -> None:
    home = tmp_path / "home"
    out = cli(home, "sources")
    assert out.returncode == 0 and out.stdout.startswith("no sources: add [[sources]] tables")
    write(home, BASE + "branch = 'dev'\n" + BASE.replace('"a"', '"b"'))
    out = cli(home, "sources")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].split() == [
        "NAME", "KIND", "BRANCH", "LAST", "COMMIT", "SPOOL", "PATH",
    ]  # fmt: skip
    assert out.stdout.splitlines()[1].split() == ["a", "git", "dev", "-", "@a/", "/x"]
    assert not (home / "claudomator.db").exists()  # reading never creates the database
    from claudomator.store.db import Store

    store = Store(home / "claudomator.db")
    store.set_source_state("a", "git", last_commit=C, error="refused: history was rewritten")
    store.close()
    out = cli(home, "sources")
    assert "cccccccccccc" in out.stdout
    assert "a: refused: history was rewritten" in out.stdout
    (row, _) = json.loads(cli(home, "sources", "--json").stdout)
    assert (row["name"], row["last_commit"], row["branch"]) == ("a", C, "dev")


def test_every_sources_key_is_in_the_readme() -> None:
    from claudomator.config_sources import SOURCE_FIELDS as _SOURCE_FIELDS

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("## Git sources") : readme.index("## Task files")]
    for key in _SOURCE_FIELDS:
        assert f"`{key}`" in section, key

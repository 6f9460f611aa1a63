"""Trust: `require_signed` (SSH signatures against an allowed-signers file, OpenPGP ones against
fingerprints) and `allowed_authors`. Keys are made in tmp_path with ssh-keygen and gpg."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.needs import needs
from tests.test_git import DEV, Repo, World, _git_isolated, repo, source_toml, task

__all__ = ["_git_isolated", "repo"]  # fixtures, in force here too

needs_ssh_keygen = needs(shutil.which("ssh-keygen"), "ssh-keygen (OpenSSH) is not installed")
needs_gpg = needs(shutil.which("gpg"), "gpg is not installed")


def ssh_key(folder: Path, name: str) -> Path:
    key = folder / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)],
        check=True, timeout=30,
    )  # fmt: skip
    return key


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "keys"
    folder.mkdir()
    alice, mallory = ssh_key(folder, "alice"), ssh_key(folder, "mallory")
    kind, public = Path(f"{alice}.pub").read_text().split()[:2]
    signers = folder / "allowed_signers"
    signers.write_text(f'{DEV} namespaces="git" {kind} {public}\n')
    return {"alice": alice, "mallory": mallory, "signers": signers}


@pytest.fixture
def signed_world(home: Path, repo: Repo, keys: dict[str, Path]) -> Iterator[World]:
    config = source_toml(
        repo.path, subdir="tasks", require_signed=True, allowed_signers=str(keys["signers"])
    )
    world = World(home, config)
    world.cycle()
    yield world
    world.close()


@needs_ssh_keygen
def test_require_signed_runs_only_good_signatures_from_allowed_keys(
    signed_world: World, repo: Repo, keys: dict[str, Path]
) -> None:
    world = signed_world
    repo.write("tasks/a.yaml", task("a")).commit("by alice", key=str(keys["alice"]))
    repo.write("tasks/b.yaml", task("b")).commit("by mallory", key=str(keys["mallory"]))
    unsigned = repo.write("tasks/c.yaml", task("c")).commit("unsigned")
    repo.write("README", "no task files: no signature needed\n").commit("docs")
    world.cycle()
    assert world.states() == [("a", "QUEUED")]
    assert world.files("rejected") == [
        "@team/b.yaml", "@team/b.yaml.error", "@team/c.yaml", "@team/c.yaml.error",
    ]  # fmt: skip
    b_error = (world.home / "rejected/@team/b.yaml.error").read_text()
    assert "no good signature from a key in allowed_signers" in b_error
    c_error = (world.home / "rejected/@team/c.yaml.error").read_text()
    assert (
        c_error
        == f"@team/c.yaml: commit {unsigned[:12]} by {DEV}: not signed, and require_signed is on\n"
    )
    error = world.source()["error"]
    assert "not signed" in error and "no good signature" in error
    assert world.source()["last_commit"] == repo.head()  # rejected commits are passed, not stuck on
    # an unsigned commit changes nothing: it cannot cancel what a trusted one asked for
    repo.remove("tasks/a.yaml").commit("unsigned delete")
    world.cycle()
    assert world.states() == [("a", "QUEUED")]
    # a signed commit that changes the rejected file runs it
    repo.write("tasks/c.yaml", task("c2")).commit("signed fix", key=str(keys["alice"]))
    world.cycle()
    assert world.states() == [("a", "QUEUED"), ("c2", "QUEUED")]
    assert world.source()["error"] == ""


@needs_ssh_keygen
def test_signed_commits_with_ingest_existing(
    home: Path, tmp_path: Path, keys: dict[str, Path]
) -> None:
    checkout = Repo.init(tmp_path / "signed")
    checkout.write("tasks/a.yaml", task("a")).commit("start", key=str(keys["mallory"]))
    config = source_toml(
        checkout.path, subdir="tasks", ingest_existing=True, require_signed=True,
        allowed_signers=str(keys["signers"]),
    )  # fmt: skip
    world = World(home, config)
    world.cycle()
    assert world.tasks() == [] and world.files("rejected") == ["@team/a.yaml", "@team/a.yaml.error"]
    assert "no good signature" in world.source()["error"]
    world.close()


def test_allowed_authors_filters_by_author_email(home: Path, repo: Repo) -> None:
    world = World(home, source_toml(repo.path, subdir="tasks", allowed_authors=["Dev@Example.com"]))
    world.cycle()
    repo.write("tasks/a.yaml", task("a")).commit()
    repo.write("tasks/b.yaml", task("b")).commit(email="intruder@example.org")
    world.cycle()
    assert world.states() == [("a", "QUEUED")]
    error = (world.home / "rejected/@team/b.yaml.error").read_text()
    assert "author intruder@example.org is not in allowed_authors" in error
    world.close()


@pytest.fixture
def gnupg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Two OpenPGP keys in a private GNUPGHOME (short path: gpg-agent's socket lives there)."""
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"gpg-{os.getpid()}-{tmp_path.name[-8:]}"
    folder.mkdir(mode=0o700)
    monkeypatch.setenv("GNUPGHOME", str(folder))
    fingerprints = {}
    for name in ("alice", "mallory"):
        subprocess.run(
            ["gpg", "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", "",
             "--quick-gen-key", f"{name} <{name}@example.com>", "ed25519", "sign", "never"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        listed = subprocess.run(
            ["gpg", "--batch", "--with-colons", "--list-keys", f"{name}@example.com"],
            check=True, capture_output=True, text=True, timeout=30,
        ).stdout  # fmt: skip
        fingerprints[name] = next(
            line.split(":")[9] for line in listed.splitlines() if line.startswith("fpr:")
        )
    yield fingerprints
    subprocess.run(["gpgconf", "--kill", "all"], capture_output=True, timeout=30, check=False)
    shutil.rmtree(folder, ignore_errors=True)


@needs_gpg
def test_openpgp_signatures_only_from_allowed_keys(
    home: Path, repo: Repo, gnupg: dict[str, str]
) -> None:
    config = source_toml(
        repo.path, subdir="tasks", require_signed=True, allowed_keys=[gnupg["alice"]]
    )
    world = World(home, config)
    world.cycle()
    repo.write("tasks/a.yaml", task("a")).commit(key=gnupg["alice"], fmt="openpgp")
    repo.write("tasks/b.yaml", task("b")).commit(key=gnupg["mallory"], fmt="openpgp")
    world.cycle()
    assert world.states() == [("a", "QUEUED")]
    error = (world.home / "rejected/@team/b.yaml.error").read_text()
    assert f"signed by OpenPGP key {gnupg['mallory']}, which is not in allowed_keys" in error
    world.close()

"""A randomized crash campaign ("chaos") of any length: rounds of real `claudomator serve
--no-api` processes killed (SIGKILL; a third of the kills a power loss that also kills every
claude process of the data dir) at random moments while task files land in the inbox — plain,
retried, failing, batches with a dependency, invalid, some while serve is down — then one final
serve left to settle everything and stopped with SIGTERM. With `--nodes K` (K > 1) the K nodes
share a fresh PostgreSQL schema (dropped afterwards) and each round SIGKILLs one node, or stops it
(SIGSTOP) past its lease, while the others run. See tests/chaos/ for the invariants checked.

Prints what the campaign did (files, tasks, executions, claude invocations, kills and the last
event each serve logged before its kill) and each invariant's count of violations, with the first
few; exits 1 when any invariant is violated. The seed replays a campaign's choices (the timing of
processes is the machine's).

    python bench/chaos.py [--rounds 40] [--seed S] [--nodes 1] [--settle-s 120] [--keep]
    python bench/chaos.py --nodes 3 --rounds 10      # PostgreSQL: CLAUDOMATOR_TEST_POSTGRESQL

`--quick` (CI) shrinks the defaults to 3 rounds and a settle of at most 30 s (about 10 s).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.chaos import INVARIANTS, campaign, check

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


@contextlib.contextmanager
def fresh_schema(url: str) -> Iterator[str]:
    """A new schema for the nodes, as their `database_url`; dropped afterwards."""
    import psycopg

    schema = "claudomator_chaos_" + secrets.token_hex(6)
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        sa_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
        yield f"{sa_url}{'&' if '?' in sa_url else '?'}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as admin:
            admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--seed", type=int, default=None, help="default: random")
    parser.add_argument("--nodes", type=int, default=1, help="> 1: PostgreSQL")
    parser.add_argument("--settle-s", type=float, default=120.0, help="the final settle, at most")
    parser.add_argument("--keep", action="store_true", help="keep the data dirs and serve logs")
    parser.add_argument("--quick", action="store_true", help="a few rounds (CI)")
    parser.add_argument("--limit", type=int, default=5, help="violations shown per invariant")
    args = parser.parse_args()
    if args.quick:  # new defaults; flags given still win
        parser.set_defaults(rounds=3, settle_s=30.0)
        args = parser.parse_args()
    rounds = args.rounds
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    url = os.environ.get("CLAUDOMATOR_TEST_POSTGRESQL", DEFAULT_URL)
    root = Path(tempfile.mkdtemp(prefix="bench-chaos-"))
    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(fresh_schema(url)) if args.nodes > 1 else ""
        c = stack.enter_context(
            campaign(
                root / "campaign",
                seed,
                rounds,
                nodes=args.nodes,
                database_url=database_url,
                settle_s=args.settle_s,
            )
        )
        t0 = time.monotonic()
        try:
            c.run()
            violations = check(c)
        except BaseException:
            print(f"chaos seed {seed} broke off; data dirs and serve logs kept in {root}")
            raise
        wall = time.monotonic() - t0
        figures = c.figures()
    print(f"chaos: seed {seed}, {rounds} rounds, {args.nodes} node(s), {wall:.1f} s")
    for name, value in figures.items():
        if name not in ("seed", "rounds", "nodes"):
            print(f"  {name}: {value}")
    print("invariants (violations):")
    for name, found in violations.items():
        print(f"  {len(found):4d}  {name}: {INVARIANTS[name]}")
        for text in found[: args.limit]:
            print(f"          {text}")
        if len(found) > args.limit:
            print(f"          … and {len(found) - args.limit} more")
    bad = sum(len(found) for found in violations.values())
    if bad:
        print(f"FAILED: {bad} violation(s); replay with --seed {seed}; data dirs and serve logs "
              f"kept in {root}")  # fmt: skip
    elif args.keep:
        print(f"data dirs and serve logs in {root}")
    if not bad and not args.keep:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

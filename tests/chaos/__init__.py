"""A randomized crash campaign ("chaos") against real `claudomator serve` processes.

Each round starts `python -m claudomator.cli serve --no-api` (the fake claude of
`tests.fakes.make_fake_claude`, recording every invocation in one folder), drops 0-4 task files
(plain, retried, failing, batches with a dependency, invalid; some while serve is down) and
SIGKILLs serve at a random moment; a third of the kills are a power loss, which also kills every
claude process of the data dir. With several nodes (PostgreSQL), the nodes share one schema and
a round SIGKILLs one node, or stops it (SIGSTOP) for longer than its lease, while the others run.
After the last round every node runs until nothing changes, then stops with SIGTERM, and
`check(campaign)` reads the folders, the database and the processes for the invariants of
`INVARIANTS`. Every wait has a deadline; the seed replays a campaign's choices (not the timing).

Modules, each on the ones before it: `drops` (the task files), `processes` (a data dir's
processes, the fake claude's records), `database` (reading the store), `node` (one data dir and
its serve processes), `facts` (what the checks read), `campaign` (rounds, kills, settle),
`checks` (the invariants).
"""

from tests.chaos.campaign import Campaign, campaign
from tests.chaos.checks import INVARIANTS, check, event_path_problem, summary
from tests.chaos.drops import Drop, make_drop

__all__ = [
    "INVARIANTS",
    "Campaign",
    "Drop",
    "campaign",
    "check",
    "event_path_problem",
    "make_drop",
    "summary",
]

"""The invariants a campaign must keep, how each is checked once it is over, and the report of
what violates them."""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from claudomator.state import valid_transition
from tests.chaos.campaign import Campaign
from tests.chaos.drops import PlannedTask
from tests.chaos.facts import FINAL, Facts, implied_folder

INVARIANTS = {
    "a_one_folder": "every file dropped is in exactly one folder, the one its tasks imply",
    "b_result_files": "a true .result.json beside every file in done/, and nowhere else",
    "c_tasks_final": "every task is final",
    "d_recorded_once": "each dropped file and each of its tasks is recorded once",
    "e_attempts": "no task has more executions than its retry policy allows",
    "f_executions_end": "executions cut by a kill end FAILED interrupted; all end final",
    "g_no_leftover_claude": "no claude process of an earlier serve stays alive",
    "h_integrity": "the SQLite file passes PRAGMA integrity_check",
    "i_event_paths": "each task's events walk the transition table",
    "j_spawned_once": "claude ran once per execution that got as far as spawning",
    "k_serve_exits": "serve exits only when told, and 0 on SIGTERM",
}
CUT_REASONS = ("interrupted", "node lost")  # how a RUNNING execution ends when its owner dies
_NUMBERED = re.compile(r"^(?P<head>.*)\.(?P<n>\d+)(?P<ext>\.ya?ml)$")


def check(c: Campaign) -> dict[str, list[str]]:
    """Every invariant of INVARIANTS, with what violates it (empty when it holds): the problems
    the campaign saw while running, then what the facts left show."""
    out: dict[str, list[str]] = {name: list(c.problems.get(name, [])) for name in INVARIANTS}
    facts = Facts.read(c.db, c.node_list)
    for name, checker in CHECKS.items():
        out[name] += checker(c, facts)
    return out


def summary(c: Campaign, violations: dict[str, list[str]], limit: int = 5) -> str:
    """The seed, each invariant's count of violations (with the first few), the logs."""
    lines = [
        f"chaos seed {c.seed} ({c.rounds} rounds, {c.nodes} node(s)); replay with "
        f"CLAUDOMATOR_CHAOS_SEED={c.seed}"
    ]
    for name, found in violations.items():
        lines.append(f"  {name}: {len(found)} violation(s)  [{INVARIANTS[name]}]")
        lines += [f"      {text}" for text in found[:limit]]
        if len(found) > limit:
            lines.append(f"      … and {len(found) - limit} more")
    logs = [p.name for n in c.node_list for p in n.logs]
    lines.append(f"  serve logs ({len(logs)}) in {c.logs_dir}:")
    lines += [f"    {' '.join(logs[i : i + 8])}" for i in range(0, len(logs), 8)]
    return "\n".join(lines)


def _copies(c: Campaign, facts: Facts) -> dict[int, list[tuple[str, str]]]:
    """Drop number -> every (folder, name) holding a copy of it; unknown files under -1."""
    by_rel = {(d.node, d.rel): i for i, d in enumerate(c.drops)}
    out: dict[int, list[tuple[str, str]]] = {}
    for node, listing in facts.listings.items():
        for folder, names in listing.items():
            for name in names:
                if name.endswith((".result.json", ".error")) and folder != ".staging":
                    continue
                base = name
                if folder == ".staging":
                    base = name.split("-", 1)[-1]  # <file id>-<name>: the path is not kept
                    hits = [
                        i for (n, rel), i in by_rel.items() if n == node and Path(rel).name == base
                    ]
                    index = hits[0] if len(hits) == 1 else -1
                    out.setdefault(index, []).append((f"{node}:{folder}", name))
                    continue
                if (node, base) not in by_rel and (m := _NUMBERED.match(name)):
                    base = m["head"] + m["ext"]  # a copy under a number: a name was taken
                index = by_rel.get((node, base), -1)
                out.setdefault(index, []).append((f"{node}:{folder}", name))
    return out


def check_folders(c: Campaign, facts: Facts) -> list[str]:
    found = []
    copies = _copies(c, facts)
    for folder, name in copies.get(-1, []):
        found.append(f"{folder}/{name}: a file nobody dropped")
    for i, drop in enumerate(c.drops):
        where = copies.get(i, [])
        label = f"{drop.rel} (node{drop.node}, {drop.kind}, round {drop.round})"
        if len(where) != 1:
            found.append(f"{label}: {len(where)} copies: {where}")
            continue
        spot, name = where[0]
        folder = spot.split(":", 1)[-1]
        rows = facts.rows_of(drop)
        if drop.valid:
            expected = implied_folder(facts.tasks_of(r["id"] for r in rows))
        else:
            expected = "rejected"
        if folder != expected:
            found.append(f"{label}: in {folder}/ as {name}, its tasks put it in {expected}/")
            continue
        path = c.node_list[drop.node].home / folder / name
        if path.read_bytes() != drop.data:
            found.append(f"{label}: {folder}/{name} differs from what was dropped")
        error = path.parent / (path.name + ".error")
        if not drop.valid and not (error.exists() and error.read_text().strip()):
            found.append(f"{label}: no .error beside rejected/{name}")
        if len(rows) == 1 and (rows[0]["folder"], rows[0]["name"]) != (folder, name):
            found.append(
                f"{label}: the store has it in {rows[0]['folder']}/ as {rows[0]['name']}, "
                f"it is in {folder}/ as {name}"
            )
    for node, listing in facts.listings.items():
        for folder, names in listing.items():
            for name in names:
                if name.endswith(".error") and (
                    folder != "rejected" or name.removesuffix(".error") not in names
                ):
                    found.append(f"node{node}:{folder}/{name}: an .error beside no rejected file")
    return found


def check_results(c: Campaign, facts: Facts) -> list[str]:
    found = []
    for node, listing in facts.listings.items():
        node_id = facts.node_ids[node]
        home = c.node_list[node].home
        for folder, names in listing.items():
            present = set(names)
            for name in names:
                if name.endswith(".result.json"):
                    base = name.removesuffix(".result.json")
                    if folder != "done" or base not in present:
                        found.append(f"node{node}:{folder}/{name}: a result beside no done file")
                    continue
                if folder != "done" or name.endswith(".error"):
                    continue
                result = home / "done" / (name + ".result.json")
                if not result.exists():
                    found.append(f"node{node}:done/{name}: no .result.json beside it")
                    continue
                rows = [
                    f
                    for f in facts.files
                    if f["node"] == node_id and f["folder"] == "done" and f["name"] == name
                ]
                if len(rows) != 1:
                    found.append(
                        f"node{node}:done/{name}: {len(rows)} rows in files say it is here"
                    )
                    continue
                try:
                    data = json.loads(result.read_text())
                except ValueError as e:
                    found.append(f"node{node}:done/{name}.result.json is no JSON: {e}")
                    continue
                said = sorted(
                    (t["id"], t["state"], tuple(t["execution_ids"])) for t in data["tasks"]
                )
                store = sorted(
                    (t["id"], t["state"], tuple(e["id"] for e in facts.executions_of(t["id"])))
                    for t in facts.tasks_of([rows[0]["id"]])
                )
                if said != store or data["file"] != rows[0]["rel_path"]:
                    found.append(
                        f"node{node}:done/{name}.result.json says {said}, the store {store}"
                    )
    return found


def check_final(c: Campaign, facts: Facts) -> list[str]:
    return [
        f"task {t['name']} ({t['id']}) is {t['state']} {t['reason']!r}"
        for t in facts.tasks.values()
        if t["state"] not in FINAL
    ]


def check_recorded_once(c: Campaign, facts: Facts) -> list[str]:
    found = []
    drops = {(facts.node_ids[d.node], d.rel): d for d in c.drops}
    for drop in c.drops:
        rows = facts.rows_of(drop)
        label = f"{drop.rel} (node{drop.node}, {drop.kind}, round {drop.round})"
        if len(rows) != 1:
            found.append(f"{label}: {len(rows)} rows in files: {[r['folder'] for r in rows]}")
        names = Counter(t["name"] for t in facts.tasks_of(r["id"] for r in rows))
        expected = Counter(t.name for t in drop.tasks)
        if names != expected:
            found.append(f"{label}: tasks recorded {dict(names)}, expected {dict(expected)}")
    for row in facts.files:
        if row["source"] != "inbox" or (row["node"], row["rel_path"]) not in drops:
            found.append(f"a files row for {row['rel_path']!r} nobody dropped: {row}")
    file_ids = {f["id"] for f in facts.files}
    for t in facts.tasks.values():
        if t["file_id"] not in file_ids:
            found.append(f"task {t['name']} ({t['id']}) belongs to no file row")
    expected_total = sum(len(d.tasks) for d in c.drops)
    if len(facts.tasks) != expected_total:
        found.append(f"{len(facts.tasks)} tasks recorded, {expected_total} dropped")
    return found


def check_attempts(c: Campaign, facts: Facts) -> list[str]:
    found = []
    planned = {}
    for drop in c.drops:
        for row in facts.rows_of(drop):
            for plan in drop.tasks:
                planned[(row["id"], plan.name)] = plan
    for t in facts.tasks.values():
        executions = facts.executions_of(t["id"])
        firsts = [e for e in executions if e["round"] == 0]  # an attempt's first execution
        counted = [e for e in firsts if "rate limit" not in e["reason"]]
        plan = planned.get((t["file_id"], t["name"]), PlannedTask(t["name"], 1))
        label = f"task {t['name']} ({t['id']})"
        if len(counted) > plan.max_attempts:
            states = [(e["state"], e["reason"]) for e in executions]
            found.append(f"{label}: {len(counted)} attempts of {plan.max_attempts}: {states}")
        if t["attempts"] != len(firsts) - t["requeues"]:
            found.append(
                f"{label}: attempts {t['attempts']}, but {len(firsts)} first executions and "
                f"{t['requeues']} requeues"
            )
        if [e["attempt"] for e in firsts] != list(range(1, len(firsts) + 1)):
            found.append(f"{label}: attempts numbered {[e['attempt'] for e in firsts]}")
        for before, e in itertools.pairwise(executions):
            if e["round"] and (e["round"], e["attempt"], e["resumed_from"]) != (
                before["round"] + 1,
                before["attempt"],
                before["id"],
            ):
                found.append(f"{label}: round {e['round']} does not follow its round before")
        if any(e["round"] > plan.rounds for e in executions):
            found.append(f"{label}: rounds {[e['round'] for e in executions]} of {plan.rounds}")
    return found


def check_executions(c: Campaign, facts: Facts) -> list[str]:
    found = []
    for e in facts.executions.values():
        label = f"execution {e['id']} of {facts.tasks.get(e['task_id'], {}).get('name')}"
        if e["state"] not in FINAL:
            found.append(f"{label} is {e['state']}")
        if e["id"] in c.cut and (e["state"], e["reason"]) not in [
            ("FAILED", r) for r in CUT_REASONS
        ]:
            found.append(f"{label}, cut by {c.cut[e['id']]}, ended {e['state']} {e['reason']!r}")
        if e["reason"] in CUT_REASONS and e["id"] not in c.cut and e["id"] not in c.stalled:
            found.append(
                f"{label} ended {e['reason']!r}, but its serve was neither killed nor stalled"
            )
    return found


def check_integrity(c: Campaign, facts: Facts) -> list[str]:
    if c.nodes > 1:
        return []
    rows = c.db.rows("PRAGMA integrity_check")
    return [] if rows == [("ok",)] else [f"PRAGMA integrity_check: {rows}"]


def event_path_problem(events: list[tuple[str, str, str]], state: str) -> str:
    """What is wrong with a task's events (type, state, execution id), "" when nothing: created
    first (PENDING, or QUEUED with its task.queued), each next state a valid transition announced
    by its own event type, the last one the task's state."""
    if not events or events[0][0] != "task.created" or events[0][1] not in ("PENDING", "QUEUED"):
        return f"does not start with task.created PENDING or QUEUED: {events[:2]}"
    rest = events[1:]
    if events[0][1] == "QUEUED":
        if not rest or rest[0][:2] != ("task.queued", "QUEUED"):
            return f"created QUEUED without its task.queued: {events[:2]}"
        rest = rest[1:]
    current = events[0][1]
    for type_, to, _ in rest:
        expected = {"QUEUED": "task.queued", "RUNNING": "task.started"}.get(to, "task.finished")
        if type_ != expected or not valid_transition(current, to):
            return f"{current} -> {to} by {type_} in {[e[:2] for e in events]}"
        current = to
    if current != state:
        return f"events end {current}, the task is {state}"
    return ""


def check_events(c: Campaign, facts: Facts) -> list[str]:
    found = []
    for t in facts.tasks.values():
        events = facts.events.get(t["id"], [])
        states = [e for e in events if e[0].startswith("task.")]
        if problem := event_path_problem(states, t["state"]):
            found.append(f"task {t['name']} ({t['id']}): {problem}")
        # an attempt's first execution is announced by task.started, a verify round's by
        # execution.round
        for type_, round0 in (("task.started", True), ("execution.round", False)):
            named = sorted(e for kind, _, e in events if kind == type_)
            executions = [
                e["id"] for e in facts.executions_of(t["id"]) if (e["round"] == 0) is round0
            ]
            if named != executions:
                found.append(
                    f"task {t['name']} ({t['id']}): {type_} events {named} do not name its "
                    f"executions {executions} one each"
                )
    return found


def check_spawns(c: Campaign, facts: Facts) -> list[str]:
    """Spawned = a claude process ran with the execution's id: it wrote its record, or it was
    killed in a power loss before it could (the campaign saw it). Each execution was spawned at
    most once, only executions the store knows were, and one that never was must have been
    RUNNING when its serve was killed or stalled (claimed, then cut before the spawn)."""
    found = []
    recorded = [e for _, e in c.records.scan().values() if e]  # "": a resume claude refused
    spawned = Counter(recorded + c.unrecorded)
    for execution_id, n in spawned.items():
        if n > 1:
            found.append(f"execution {execution_id}: claude started {n} times")
        if execution_id not in facts.executions:
            found.append(
                f"claude ran for execution {execution_id!r}, which the store does not know"
            )
    for e in facts.executions.values():
        if e["id"] not in spawned and e["id"] not in c.cut and e["id"] not in c.stalled:
            found.append(
                f"execution {e['id']} ({e['state']} {e['reason']!r}) never started claude, and "
                "its serve was neither killed nor stalled while it ran"
            )
    return found


CHECKS: dict[str, Callable[[Campaign, Facts], list[str]]] = {
    "a_one_folder": check_folders,
    "b_result_files": check_results,
    "c_tasks_final": check_final,
    "d_recorded_once": check_recorded_once,
    "e_attempts": check_attempts,
    "f_executions_end": check_executions,
    "h_integrity": check_integrity,
    "i_event_paths": check_events,
    "j_spawned_once": check_spawns,
}

"""The light read path's figures: money spent (today, per day and tag, by a tag since a time, by
a batch) and the counts `/metrics` exports. Plain SQL over the reader's one connection, both
databases."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from claudomator.records import BatchBudget, Costs, TagBudget
from claudomator.store.sql import tagged


class Figures:
    """The part of `Reader` that sums and counts; `Reader` gives it `_rows`."""

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        raise NotImplementedError

    def _batch(self, task_id: str) -> BatchBudget | None:
        """The budget of the task's batch, with what the batch spent; None without one."""
        rows = self._rows(
            "SELECT t.batch_id AS id, t.batch_budget_usd AS budget, (SELECT COALESCE(SUM("
            "e.cost_usd), 0) FROM executions e JOIN tasks b ON b.id = e.task_id WHERE "
            "b.batch_id = t.batch_id) AS spent FROM tasks t WHERE t.id = ? AND t.batch_id != ''",
            [task_id],
        )
        if not rows:
            return None
        row = rows[0]
        return {"id": row["id"], "budget_usd": row["budget"], "spent_usd": round(row["spent"], 10)}

    def tag_spend(self, caps: Sequence[tuple[str, float]], since: float) -> list[TagBudget]:
        """Each capped tag's spend since `since` (the executions started since), with its cap."""
        found: list[TagBudget] = []
        for tag, cap in caps:
            rows = self._rows(
                "SELECT COALESCE(SUM(e.cost_usd), 0) AS spent FROM executions e JOIN tasks t "
                "ON t.id = e.task_id WHERE e.started_at >= ? AND t.tags_json LIKE ? ESCAPE '\\'",
                [since, tagged(tag)],
            )
            spent = float(rows[0]["spent"]) if rows else 0.0
            found.append({"tag": tag, "budget_usd": cap, "spent_usd": round(spent, 10)})
        return found

    def costs(self, since: float) -> Costs:
        """Spend since `since` per local day (by when each execution started) and per tag (a
        task's executions count for each of its tags; untagged ones under "(no tag)")."""
        import json
        from datetime import datetime

        by_day: dict[str, float] = {}
        by_tag: dict[str, float] = {}
        for r in self._rows(
            "SELECT e.started_at, e.cost_usd, t.tags_json FROM executions e "
            "JOIN tasks t ON t.id = e.task_id WHERE e.started_at >= ? AND e.cost_usd > 0",
            [since],
        ):
            day = datetime.fromtimestamp(r["started_at"]).date().isoformat()
            by_day[day] = by_day.get(day, 0.0) + r["cost_usd"]
            for tag in json.loads(r["tags_json"]) or ["(no tag)"]:
                by_tag[tag] = by_tag.get(tag, 0.0) + r["cost_usd"]
        return {
            "days": [{"day": d, "cost_usd": round(c, 10)} for d, c in sorted(by_day.items())],
            "tags": [
                {"tag": t, "cost_usd": round(c, 10)}
                for t, c in sorted(by_tag.items(), key=lambda kv: -kv[1])
            ],
        }

    def cost_since(self, since: float) -> float:
        rows = self._rows(
            "SELECT COALESCE(SUM(cost_usd), 0) AS spent FROM executions WHERE started_at >= ?",
            [since],
        )
        return float(rows[0]["spent"]) if rows else 0.0

    def _tuples(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows as tuples; every column needs its own name (psycopg's rows are dicts)."""
        return [tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in self._rows(sql)]

    def execution_totals(self) -> list[tuple[Any, ...]]:
        """For `/metrics`, per execution state: (state, count, cost, input, output, cache read and
        cache creation tokens)."""
        return self._tuples(
            "SELECT state, COUNT(*) AS n, COALESCE(SUM(cost_usd), 0) AS cost, "
            "COALESCE(SUM(input_tokens), 0) AS input, COALESCE(SUM(output_tokens), 0) AS output, "
            "COALESCE(SUM(cache_read_tokens), 0) AS cache_read, "
            "COALESCE(SUM(cache_creation_tokens), 0) AS cache_creation "
            "FROM executions GROUP BY state"
        )

    def durations(self, buckets_s: Sequence[float]) -> tuple[Any, ...]:
        """For `/metrics`, over finished executions: (count, total seconds, then how many took
        at most each of `buckets_s`)."""
        counts = ", ".join(
            f"COALESCE(SUM(CASE WHEN d <= {float(b)!r} THEN 1 ELSE 0 END), 0) AS le{i}"
            for i, b in enumerate(buckets_s)
        )
        rows = self._tuples(
            f"SELECT COUNT(*) AS n, COALESCE(SUM(d), 0) AS total, {counts} FROM "
            "(SELECT finished_at - started_at AS d FROM executions "
            "WHERE finished_at IS NOT NULL) AS finished"
        )
        return rows[0] if rows else (0, 0.0, *([0] * len(buckets_s)))

    def queue(self) -> tuple[int, float | None]:
        """For `/metrics`: how many tasks are QUEUED, and since when the oldest has waited."""
        rows = self._tuples(
            "SELECT COUNT(*) AS n, MIN(updated_at) AS oldest FROM tasks WHERE state = 'QUEUED'"
        )
        return (int(rows[0][0]), rows[0][1]) if rows else (0, None)

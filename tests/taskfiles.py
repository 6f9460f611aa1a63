"""Task files for tests and benches, written the way people write them (block style, `|` for
text of many lines), from the fields they hold. Tests of odd YAML write their text by hand."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml


def scenario(name: str, **params: object) -> str:
    """Instructions that ask the fake claude (tests/fakes) to play scenario `name`, with `params`
    as its `fake-<param>: value` lines."""
    lines = [f"fake-scenario: {name}"] + [f"fake-{k}: {v}" for k, v in params.items()]
    return "\n".join(lines) + "\n"


def task_data(name: str, instructions: str = "do it", **fields: Any) -> dict[str, Any]:
    """One task as a task file holds it: `fields` are its other fields, and `claude` (a mapping)
    adds to the instructions the rest of claude's."""
    claude = {"instructions": instructions, **fields.pop("claude", {})}
    return {"name": name, **fields, "claude": claude}


CHECKED = ["true", "test -f FIXED"]  # the verify commands of `checked_task`


def checked_task(name: str, sessions: object, **fields: Any) -> dict[str, Any]:
    """A task (fields as for `task_data`) whose verify fails in round 0 and passes in round 1:
    the fake claude, resumed in its session (kept in the folder `sessions`), writes the file
    checked for. In the default permission mode its Bash write is denied in each round. So both
    executions have a `verify` and `permission_denials`, the second `round` 1 and `resumed_from`
    the first. Give each run its own `claude.working_dir`: FIXED stays there."""
    claude = dict(fields.pop("claude", {}))
    env = {"FAKE_CLAUDE_RESUME_EDIT": "FIXED=ok", "CLAUDE_CONFIG_DIR": str(sessions)}
    claude["env"] = {**claude.get("env", {}), **env}
    return task_data(name, "do it", claude=claude, verify={"commands": CHECKED}, **fields)


def task_yaml(name: str, instructions: str = "do it", **fields: Any) -> str:
    """A task file asking for one task (fields as for `task_data`)."""
    return dump(task_data(name, instructions, **fields))


def batch_yaml(*tasks: Mapping[str, Any], **fields: Any) -> str:
    """A batch file of `tasks` (each one a `task_data`); `fields` are its others (`defaults`)."""
    return dump({**fields, "tasks": [dict(t) for t in tasks]})


class _Dumper(yaml.SafeDumper):
    """Text of many lines as a `|` block, not as a quoted string with escapes."""

    def represent_str(self, data: str) -> yaml.ScalarNode:
        return self.represent_scalar(
            "tag:yaml.org,2002:str", data, style="|" if "\n" in data else None
        )


_Dumper.add_representer(str, _Dumper.represent_str)


def dump(data: Mapping[str, Any]) -> str:
    """`data` as YAML: block mappings, leaf lists and mappings in flow style (`tags: [a, b]`)."""
    return yaml.dump(
        dict(data), Dumper=_Dumper, sort_keys=False, default_flow_style=None, allow_unicode=True
    )

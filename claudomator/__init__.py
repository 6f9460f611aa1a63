"""claudomator: a GitOps-style, file-watching directory runner for Claude Code.

Where things are (imports go down: entry → orchestration → adapters → pure):

- entry: `cli/` (click commands, one call each), `api/` (Litestar routes over the service),
  `serve.py` (the composition root of `claudomator serve`), `run.py` (`claudomator run`);
  `cli/terminal.py` (tables that fit the terminal, colours).
- orchestration: `service.py` (the façade: submit, validate, release, cancel, retry,
  pause/resume/drain, views), `lifecycle.py` (an execution from start to its recorded end),
  `rounds.py` (an attempt's executions: claude, its verify checks in `checks.py`, claude resumed),
  `progress.py` (an execution's progress events, in batches), `workspaces.py`, `recovery.py`
  (what start-up repairs, in order), `node.py` (the cluster: leases, relay),
  `publisher.py` (events to the hub, the mirror, the pool), `dependents.py`, `gate.py`,
  `faults.py`, `intake.py` (claims), `ingest.py` (the one path from a task file to recorded
  tasks and its place), `pool.py`, `demo.py` (`claudomator demo`: a scratch data dir whose
  claude is `claude_standin.py`, a stand-in program that speaks claude's stream-json).
- adapters: `store/` (one module per table over `store/database.py`; `store/reader.py` is the
  light stdlib read path), `spool.py` (the folders), `mirror.py` (files follow their tasks),
  `runner.py` + `proctree.py` + `logfiles.py` (claude as a subprocess), `shell.py` (the user's
  shell commands: setup, verify), `worktree.py`, `sources/` (inbox and git), `notify.py`,
  `metrics.py`, `events.py`, `lock.py`, `log.py`.
- pure: `records.py` (every record shown: task, execution, node, status, event, result file),
  `stored.py` (the rows as read back, an execution's start and end), `task.py`, `taskfile.py`
  + `taskdoc.py` + `taskbuild.py`, `state.py`, `schedule.py`, `stream.py` + `outcome.py` +
  `transcript.py`, `watchdog.py` (a hung claude), `verification.py` (what checks said, and the
  prompt), `resume.py` (whether a retry resumes), `command.py`, `workdir.py`, `workspace.py`,
  `config*.py`, `datadir.py`, `errors.py`.

One word per concept:

- task: one unit of work from a task file or the API; an execution: one run of `claude -p`
  (and of its verify checks); an attempt: the executions one start runs, its verify rounds.
- round: an execution of an attempt after the first, claude resumed with the check that failed;
  resume: an execution that continues an earlier one's claude session (`--resume`).
- claim: the atomic rename that takes a file out of the inbox (nothing else is a claim).
- ingest: a claimed file (or a body, or a committed blob) to recorded tasks (`ingest.py`);
  a file that never runs is rejected: `rejected/` with its `.error`, by `Ingest.place` only.
- start: the QUEUED → RUNNING compare-and-set that gives a task a slot.
- mirror: moving spool files to where their tasks' committed states say, result files kept
  true; recovery: what start-up repairs after a crash, in one ordered procedure.
- release: a task held PENDING (created without `run`) becomes runnable.
- source: where task files come from (the inbox, a git checkout); node: a process that
  executes tasks and holds a lease; data dir: `~/.claudomator` or `$CLAUDOMATOR_HOME`.
"""

__version__ = "0.1.0"

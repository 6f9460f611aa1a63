"""A fake ``claude`` (Claude Code CLI 2.1.197) in print mode, for tests. Stdlib only.

``make_fake_claude`` writes a script that runs ``python -I -S tests/fakes/claude/__main__.py``,
which imports the package under the name ``claude``: nothing of ``tests`` and no site-packages is
loaded. The fake is started thousands of times, so its start-up is kept short: the stdlib modules
it needs, and ``typing`` only for the type checker (``TYPE_CHECKING = False``: it costs ~5 ms).

It parses the command line like the real CLI (commander.js: every print-mode option of 2.1.197,
hidden ones included; ``--opt value`` and ``--opt=value``; variadic options that swallow the
following non-dash arguments; ``-pv``-style short-flag groups; unknown options with the same
"(Did you mean ...?)" hint), fails on bad input with the real messages and exit codes, reads the
prompt from stdin and/or the positional argument, and writes the real stream-json schema, one
flushed line per message. Facts it copies: shared/claude-cli/README.md, help.txt,
sample-stream.jsonl, and runs of the real 2.1.197 against tests/fakes/mock_api.py.

It emulates what the runner uses and what the differential tests compare, not the whole CLI.
Without ``-p``/``--print`` the real CLI starts its interactive UI; the fake exits 2 instead, and
so it does for what it does not emulate: ``-h``/``--help``, ``--input-format stream-json``,
``--include-partial-messages``, ``--continue``, ``--fork-session``,
``--no-session-persistence``. Other options are parsed and checked, then ignored.

Choosing what happens
---------------------
The scenario is ``$FAKE_CLAUDE_SCENARIO``, else a prompt line ``fake-scenario: NAME``, else
``success``. Each parameter ``P`` is read the same way: ``$FAKE_CLAUDE_<P upper-case>``, else a
prompt line ``fake-<p>: value`` (``-`` and ``_`` are the same in the name), else its default::

    fake-scenario: tools
    fake-turns: 5
    fake-cost: 0.25
    fake-edit: notes.txt=a line      (appended to that file of the working folder first)
    fake-resume-edit: fix.txt=ok     (the same, but only in a run with --resume=<id>)

Scenarios (exit code 0 when the result has ``is_error: false``, else 1, as the real CLI):

success                 The run of sample-stream.jsonl: text, Bash ``ls``, Bash ``printf ... >
                        NOTES.md``, final text; 3 API calls. With ``--model sonnet`` it costs the
                        sample's 0.0600318, title-generation call included (as the real CLI,
                        none for a one-word prompt or with CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC
                        set: 0.0586878).
                        The write is denied (``permission_denials``, an error tool_result, still
                        a success) unless the permission mode is acceptEdits, auto or
                        bypassPermissions, or ``--allowedTools`` has a bare ``Bash`` rule, as the
                        real CLI does. ``--max-turns`` and ``--max-budget-usd`` are enforced.
tools                   ``turns`` Bash tool turns (``echo step N``), then ``text``.
error_max_turns         Bash tool turns until ``--max-turns`` (else 1) is reached.
error_max_budget_usd    Tool calls of ``cost`` each until ``--max-budget-usd`` (else 0.01) is
                        reached: ``errors: ["Reached maximum budget ($X)"]``.
error_during_execution  Text, then an ``error_during_execution`` result with ``errors:
                        [message]`` and ``terminal_reason: model_error`` (constructed), exit 1.
api_error               A synthetic assistant line with ``error`` and a result ``success`` with
                        ``is_error: true`` and ``api_error_status`` = ``status`` (401, 402, 429,
                        500, 529 or ``null``); ``retries`` api_retry lines first.
not_logged_in           No credentials: the assistant line's ``error`` authentication_failed, then
                        the result ``Not logged in · Please run /login`` (``is_error``, no status).
rate_limit              A ``rate_limit_event`` (status ``rejected``, ``resetsAt``), then the 429
                        api_error result. (Constructed: the real CLI emits it for subscribers.)
huge_line               A Bash turn whose user tool_result line is about ``mb`` MiB.
garbage                 The success run with non-JSON lines, unknown message types and unknown
                        system subtypes mixed in; the result is still the last line.
no_result               init and one assistant line, then ``message`` on stderr and exit ``exit``.
usage_error             ``message`` on stderr, exit ``exit``, nothing on stdout.
sleep                   init and a text line, then ``sleep_s`` seconds waiting "on the API", then
                        a success. SIGINT: the ``[Request interrupted by user]`` line and an
                        ``error_during_execution`` result (``terminal_reason: aborted_streaming``,
                        the cost so far = ``cost``, default 0), exit 0. SIGTERM: exit 143, no
                        result. SIGHUP: exit 129.
ignore_sigterm          Like sleep, but SIGINT and SIGTERM are ignored.
stall                   A hung CLI: init and one text line (``text``), then no more output while
                        it runs on for ``sleep_s`` seconds; then exit ``exit`` (1) with no result:
                        it never writes one by itself. Signals as in sleep (SIGINT: the
                        interrupted line and the ``aborted_streaming`` result, exit 0; SIGTERM:
                        143; SIGHUP: 129).
no_init                 A CLI stuck in its start-up: ``message`` on stderr (default a constructed
                        "Failed to fetch remote settings: ..." note), nothing on stdout, alive for
                        ``sleep_s`` seconds, then exit ``exit`` (1). SIGINT ends it at once with
                        130, SIGTERM 143, SIGHUP 129, still with nothing on stdout.
grandchild              A Bash tool_use, then a detached grandchild ``sleep 300`` in its own
                        session (setsid); its pid goes to the file ``pidfile``; then waits
                        ``sleep_s`` "in the tool". SIGINT: the real ``aborted_tools`` ending, exit
                        1. SIGINT/SIGTERM kill the grandchild first unless ``kill_children: 0``;
                        ``keep_stdout: 1`` lets it inherit the fake's stdout.
stream                  About ``mb`` MiB of Bash tool_use/tool_result lines of ``line_kb`` KiB, as
                        fast as possible, then a success result (for throughput benchmarks).
echo_env                One text answer: JSON ``{"cwd": ..., "env": {NAME: value-or-null}}`` for
                        the comma-separated ``vars`` (default: the whole environment).

Parameters (defaults in brackets): text [scenario's own], cost [from token usage], turns [3],
status [529], retries [0], resets_at [now + 1 h], mb [2 for huge_line, 10 for stream], line_kb
[4], sleep_s [30], pidfile [grandchild.pid], keep_stdout [0], kill_children [1], vars [all],
message [scenario's own], exit [1], api_key_source [the init line's ``apiKeySource``:
``ANTHROPIC_API_KEY`` when that variable is set, else ``none``], startup_s [0: pause before init], linger_s [0: after the
last line, close stdout and keep running this long, as a CLI stuck after its output; a signal
then ends it at once], edit [none: ``path=text``, ``text`` and a newline appended to that file of
the working folder before the run], resume_edit [none: the same as edit, but only in a run
invoked with ``--resume=<id>`` whose session was found: "a success that leaves a check failing,
and fixes it when resumed". With --resume the prompt on stdin is the new prompt, so this one
normally comes from ``$FAKE_CLAUDE_RESUME_EDIT``].

``cost`` is the run's ``total_cost_usd`` (for error_max_budget_usd the cost of each API call,
default 1.62 x budget; for sleep-like scenarios the cost so far). Token counts are scaled to
match it; ``modelUsage[model].costUSD`` always equals ``total_cost_usd``. Prices are the real
CLI's: Sonnet 5 $3/$15 per M input/output tokens, $0.30 cache read, $3.75 cache write; Opus 4.8
5/25/0.5/6.25; Fable 5 10/50/1/12.5; Haiku 4.5 1/5/0.1/1.25. Model aliases resolve as in
2.1.197 (no ``--model``: ``claude-opus-4-8[1m]``; ``sonnet``: ``claude-sonnet-5``).

Other behaviour
---------------
- ``--output-format text`` prints only the result text, ``json`` the result object (a JSON
  array of every message with ``--verbose``).
- With ``CLAUDE_CONFIG_DIR`` set (never otherwise, so tests cannot write to a real ~/.claude),
  the transcript goes to ``$CLAUDE_CONFIG_DIR/projects/<cwd, non-alphanumerics as
  ->/<session_id>.jsonl``, so a reused ``--session-id`` fails ("is already in use") and
  ``--resume=<id>`` works: the resumed run keeps that session_id (init and result lines) and
  appends to the same transcript. A ``--resume=<id>`` with no such transcript fails as the real
  CLI, before the prompt and --verbose checks: stderr ``No conversation found with session ID:
  <id>``, exit 1, no init line; stdout is empty, but with ``--output-format stream-json``
  (--verbose or not) it has one ``error_during_execution`` result (``num_turns: 0``, ``errors:
  [that message]``, ``session_id: <id>``), as 2.1.197 writes. So does every ``--resume=<id>``
  without ``CLAUDE_CONFIG_DIR``: no session was ever kept. A ``--resume`` value that is not a
  UUID gets the real "is not a UUID and does not match any session title" error (the fake
  keeps no titles); ``--session-id`` with ``--resume`` or ``--continue`` the real "can only be
  used ... if --fork-session is also specified".
- If ``$FAKE_CLAUDE_RECORD`` names a directory, ``<session-id>.json`` is written there (again at
  exit, with ``exit_code``): ``argv`` (as invoked, argv[0] included), ``args``, ``cwd``,
  ``stdin``, ``prompt``, ``env``, ``scenario``, ``params``, ``session_id``, ``pid``, ``began`` (false for a run its checks refused, such as a ``--resume`` of
  no session).

Modules: ``options`` (the command line), ``prompt`` (stdin and parameters), ``sessions``
(transcripts for ``--resume``), ``record`` (``$FAKE_CLAUDE_RECORD``), ``signals`` (signals,
waits, grandchildren), ``console`` (stdout, stderr, exit), ``values`` (ids and JavaScript
numbers), ``models`` (models, prices, usage), ``tools`` (the tool list and permission texts),
``stream`` (the stream-json lines), ``run`` (accounting and result lines), ``agent`` (tool turns
under the limits), ``scenarios``, ``main``.
"""

VERSION = "2.1.197"

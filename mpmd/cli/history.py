"""`mpmd query`, `mpmd stats` and `mpmd reindex`: the history commands, over the search
index (mpmd.history.index; the query language is mpmd.history.query, docs/query.md)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import click

from mpmd import config
from mpmd.control import client
from mpmd.control.protocol import (
    Answer,
    Done,
    Failed,
    Progress,
    ReindexRequest,
    ReplayRequest,
    Started,
)


def _session_lines(settings: config.Settings, session: str,
                   progress: Callable[[int, int], object] | None = None) -> list[bytes]:
    from mpmd.history import index

    conn = _open_index(settings)
    try:
        return index.session_lines(conn, session, progress)
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        conn.close()


@click.command()
def reindex() -> None:
    """Rebuild the search index from the journal."""
    settings = config.load()
    try:
        answers = client.answers(settings, ReindexRequest())
        first = next(answers)
    except client.NotRunning:
        _reindex_here(settings)
        return
    _started, done = _follow_progress(first, answers, "indexing")
    click.echo(f"search index rebuilt by the daemon: {done.last_seq or 0} events")


def _follow_progress(first: Answer, answers: Iterator[Answer],
                     label: str) -> tuple[Started, Done]:
    """Show a daemon's streamed progress (Started, then Progress, then Done or Failed) as
    a progress bar on stderr; returns the Started and the Done answers."""
    if isinstance(first, Failed):
        raise click.ClickException(first.error)
    if not isinstance(first, Started):
        raise click.ClickException(f"the daemon answered {first!r} where it starts")
    with click.progressbar(length=first.total, label=label, file=sys.stderr) as bar:
        shown = 0
        for answer in answers:
            if isinstance(answer, Failed):
                raise click.ClickException(answer.error)
            if isinstance(answer, Done):
                return first, answer
            if isinstance(answer, Progress):
                bar.update(answer.done - shown)
                shown = answer.done
    raise click.ClickException("the daemon stopped answering before it was done")


def _reindex_here(settings: config.Settings) -> None:
    """No daemon: rebuild in this process (unless a hung one still holds the folders)."""
    from mpmd.history.index import rebuild
    from mpmd.storage.journal import Journal

    if client.lock_holder(settings):
        raise click.ClickException("a daemon holds these folders but does not answer: "
                                   "stop it first (mpmd stop)")
    journal = Journal(settings.journal_dir, read_only=True)
    try:
        total = max(0, journal.last_seq - (journal.first_seq or 1) + 1)
        with click.progressbar(length=total, label="indexing", show_pos=True) as bar:
            index = rebuild(settings.index_path, journal.read_from(0), progress=bar.update)
        click.echo(f"search index rebuilt: {index.last_seq} events")
        index.close()
    finally:
        journal.close()


# `mpmd query -tool:Bash` must reach the query, not click's option parser.
@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("text", nargs=-1, type=click.UNPROCESSED)
@click.option("--limit", type=int, default=50, show_default=True, help="Events to show.")
@click.option("--before", type=int, help="Only events before this seq (the next page).")
@click.option("--json", "as_json", is_flag=True, help="One JSON array of events.")
@click.option("--jsonl", "as_jsonl", is_flag=True, help="The journal's JSON lines.")
def query(text: tuple[str, ...], limit: int, before: int | None, as_json: bool,
          as_jsonl: bool) -> None:
    """Search every indexed event, newest first (the language: docs/query.md).

    \b
    mpmd query npm test
    mpmd query 'tool:Bash risk:high since:2d'
    mpmd query 'type:PostToolUseFailure OR type:StopFailure' --jsonl
    mpmd query @failures         (a saved search: mpmd searches)
    """
    from mpmd.cli.lines import format_line
    from mpmd.history import index, searches
    from mpmd.history import query as language

    settings = config.load()
    wanted = searches.expand(" ".join(text), settings.config_dir)
    where, params = language.compile(wanted, int(time.time() * 1000))
    conn = _open_index(settings)
    try:
        lines = index.search(conn, where, params, limit=limit, before=before)
    finally:
        conn.close()
    if as_json:
        events: list[Any] = [json.loads(line) for line in lines]
        click.echo(json.dumps(events))
        return
    for line in lines:
        out = line.decode("utf-8", "replace") if as_jsonl else format_line(line, with_date=True)
        if out is not None:
            click.echo(out)


def _open_index(settings: config.Settings) -> Any:
    from mpmd.history import index

    if not settings.index_path.exists():
        raise click.ClickException("no search index yet: start the daemon, or run mpmd reindex")
    return index.connect_read_only(settings.index_path)


@click.command()
@click.option("--since", default="7d", show_default=True,
              help="A duration back from now (2h, 7d) or a date (2026-11-20).")
@click.option("--until", help="The end of the range (exclusive), same forms; default now.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def stats(since: str, until: str | None, as_json: bool) -> None:
    """Analytics across sessions: activity, tools, failures, projects, tokens and cost."""
    from mpmd.history import query as language
    from mpmd.history import stats as analytics

    settings = config.load()
    now = int(time.time() * 1000)
    since_ms = language.time_bound("since", since, now)
    until_ms = language.time_bound("until", until, now) if until else now + 1
    conn = _open_index(settings)
    try:
        result = analytics.compute(conn, since_ms, until_ms)
    finally:
        conn.close()
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"{result['events']} events in {result['sessions']} sessions")
    if result["tools"]:
        click.echo("\ntool                             calls  failed  success  median")
        for t in result["tools"][:20]:
            median = "-" if t["median_ms"] is None else f"{t['median_ms']:.0f} ms"
            click.echo(f"{t['tool'][:32]:32} {t['calls']:6} {t['failures']:7} "
                       f"{t['success_rate']:8.0%} {median:>7}")
    if result["error_patterns"]:
        click.echo("\nfailures                                      count")
        for p in result["error_patterns"][:10]:
            click.echo(f"{(p['source'] + ': ' + p['pattern'])[:45]:45} {p['count']:6}")
    if result["projects"]:
        click.echo("\nproject                                    sessions  events")
        for p in result["projects"][:10]:
            click.echo(f"{p['cwd'][-42:]:42} {p['sessions']:8} {p['events']:7}")
    _echo_cost(result)


def _usd(value: float | None) -> str:
    return "no price" if value is None else f"${value:.4f}"


def _all_tokens(figures: dict[str, Any]) -> int:
    return int(figures["input_tokens"] + figures["output_tokens"]
               + figures["cache_read_tokens"] + figures["cache_write_tokens"])


def _echo_cost(result: dict[str, Any]) -> None:
    """`mpmd stats`' tokens and cost (mpmd.history.stats.cost)."""
    c = result["cost"]
    if not c["responses"]:
        return
    click.echo(f"\ncost {_usd(c['cost_usd'])} in {c['sessions']} sessions, "
               f"{c['responses']} responses (mpmd's price of them: {_usd(c['mpmd_usd'])})")
    click.echo(f"tokens {c['input_tokens']:,} in, {c['output_tokens']:,} out, "
               f"{c['cache_read_tokens']:,} cache read, {c['cache_write_tokens']:,} cache write")
    if c["unpriced_responses"]:
        click.echo(f"{c['unpriced_responses']} responses of a model with no price: "
                   "their tokens count, their cost does not")
    click.echo("\nmodel                            responses         tokens       cost")
    for m in result["cost_by_model"][:10]:
        click.echo(f"{m['model'][:32]:32} {m['responses']:9} {_all_tokens(m):14,} "
                   f"{_usd(m['cost_usd']):>10}")
    click.echo("\ncostliest sessions                                  tokens       cost")
    for s in result["costliest_sessions"][:10]:
        name = f"{s['project'] or '-'} {s['session_id'][:8]} {s['first_prompt'] or ''}"
        click.echo(f"{' '.join(name.split())[:44]:44} {_all_tokens(s):14,} "
                   f"{_usd(s['cost_usd']):>10}")


@click.group(invoke_without_command=True)
@click.pass_context
def searches(ctx: click.Context) -> None:
    """Saved searches (mpmd query @name): list them, save or delete your own."""
    if ctx.invoked_subcommand is None:
        from mpmd.history import searches as saved

        settings = config.load()
        mine = saved.own(settings.config_dir)
        for name, text in sorted({**saved.PRESETS, **mine}.items()):
            origin = "saved " if name in mine else "preset"
            click.echo(f"@{name:24} {origin}  {text}")


@searches.command("save", context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("text", nargs=-1, required=True, type=click.UNPROCESSED)
def save_search(name: str, text: tuple[str, ...]) -> None:
    """Save QUERY as @NAME (replacing a saved one of that name)."""
    from mpmd.history import searches as saved

    saved.save(config.load().config_dir, name, " ".join(text))
    click.echo(f"saved @{name}")


@searches.command("delete")
@click.argument("name")
def delete_search(name: str) -> None:
    """Delete your saved search NAME (presets stay)."""
    from mpmd.history import searches as saved

    if not saved.delete(config.load().config_dir, name):
        raise click.ClickException(f"you have no saved search {name!r}")
    click.echo(f"deleted @{name}")


@click.command()
@click.argument("session")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "json", "md", "html"]),
              default="md", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True),
              help="Write here instead of to standard output.")
def export(session: str, fmt: str, output: str | None) -> None:
    """Export one session (its id or first characters) as JSON Lines, JSON, or a readable
    Markdown or self-contained HTML report."""
    from mpmd.history import export as exporter

    settings = config.load()
    with click.progressbar(length=1, label="reading", file=sys.stderr) as bar:

        def progress(done: int, total: int) -> None:
            bar.length = total  # known once the session is found
            bar.update(done - bar.pos)

        lines = _session_lines(settings, session, progress)
    data = exporter.render(lines, fmt)
    if output is None:
        click.echo(data.decode(), nl=False)
    else:
        with open(output, "wb") as f:
            f.write(data)
        click.echo(f"{len(lines)} events written to {output}", err=True)


@click.command()
@click.argument("session")
@click.option("--speed", type=float, default=1.0, show_default=True,
              help="Time scale: 10 plays ten times faster.")
@click.option("--stdout", "to_stdout", is_flag=True,
              help="Print the events (JSON lines) with their timing instead of sending them "
                   "to the connected viewers.")
def replay(session: str, speed: float, to_stdout: bool) -> None:
    """Replay a session (its id or first characters) with its original timing, scaled:
    to the viewers, marked as a replay, or to standard output. Quiet stretches are cut to
    10 s."""
    if not speed > 0:
        raise click.ClickException("--speed must be above 0")
    settings = config.load()
    if to_stdout:
        _replay_here(settings, session, speed)
        return
    try:
        answers = client.answers(settings, ReplayRequest(session=session, speed=speed))
        first = next(answers)
    except client.NotRunning:
        raise click.ClickException("mpmd is not running (replay to the viewers needs it; "
                                   "--stdout does not)") from None
    started, _done = _follow_progress(first, answers, "replaying")
    click.echo(f"replayed {started.total} events of {started.session_id}", err=True)


def _replay_here(settings: config.Settings, session: str, speed: float) -> None:
    from mpmd.serve import replay as replaying

    lines = _session_lines(settings, session)
    for wait, line in replaying.schedule(lines, speed):
        if wait:
            time.sleep(wait)  # the replay's own timing
        click.echo(line.decode("utf-8", "replace"))
        sys.stdout.flush()

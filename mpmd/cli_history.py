"""`mpmd query` and `mpmd reindex`: the history commands, over the search index
(mpmd.index; the query language is mpmd.query, docs/query.md)."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from mpmd import config, control


def _settings() -> config.Settings:
    try:
        return config.load()
    except config.ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.command()
def reindex() -> None:
    """Rebuild the search index from the journal."""
    settings = _settings()
    try:
        lines = control.stream(settings, {"cmd": "reindex"})
        first = json.loads(next(lines))
    except control.NotRunning:
        _reindex_here(settings)
        return
    if "error" in first:
        raise click.ClickException(first["error"])
    with click.progressbar(length=first["total"], label="indexing", show_pos=True) as bar:
        for line in lines:
            answer = json.loads(line)
            if "error" in answer:
                raise click.ClickException(answer["error"])
            if answer.get("done"):
                break
            bar.update(answer["indexed"])
    click.echo(f"search index rebuilt by the daemon: {answer.get('last_seq', 0)} events")


def _reindex_here(settings: config.Settings) -> None:
    """No daemon: rebuild in this process (unless a hung one still holds the folders)."""
    from mpmd.index import rebuild
    from mpmd.journal import Journal

    if control.lock_holder(settings):
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


@click.command()
@click.argument("text", nargs=-1)
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
    """
    from mpmd import index
    from mpmd import query as language
    from mpmd.cli import format_line

    settings = _settings()
    try:
        where, params = language.compile(" ".join(text), int(time.time() * 1000))
    except language.QueryError as exc:
        raise click.ClickException(f"bad query: {exc}") from None
    if not settings.index_path.exists():
        raise click.ClickException("no search index yet: start the daemon, or run mpmd reindex")
    conn = index.connect_read_only(settings.index_path)
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

"""`mpmd policy ...`: check, test, init and path of the policy (docs/policy.md)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from mpmd import config
from mpmd.ops import policy as mpmd_policy


@click.group()
def policy() -> None:
    """Allow, deny or ask for Claude Code's tool calls (docs/policy.md)."""


@policy.command()
def check() -> None:
    """Validate policy.toml and compile it for the hook (exit 1 when it is invalid)."""
    settings = config.load()
    try:
        checked = mpmd_policy.check(settings)
    except OSError as exc:
        raise click.ClickException(f"cannot compile the policy: {exc}") from None
    if checked.state == "none":
        click.echo(f"no policy at {checked.source}: mpmd only observes "
                   "(`mpmd policy init` writes an example)")
        return
    if checked.state == "invalid":
        click.echo(f"{checked.source}: {checked.error}", err=True)
        click.echo("the hooks only observe until it is fixed", err=True)
        sys.exit(1)
    for warning in checked.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"{checked.source}: {checked.rules} rule{'s' if checked.rules != 1 else ''}, "
               f"valid; compiled to {checked.compiled}")


@policy.command("test")
@click.argument("event_file", type=click.File("rb"))
@click.option("--project", help="The project folder (default: $CLAUDE_PROJECT_DIR, else the "
                                "event's cwd).")
@click.option("--policy", "policy_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Test this policy file instead of policy.toml.")
@click.option("-v", "--verbose", is_flag=True, help="Say why each rule before it did not match.")
def test_event(event_file: Any, project: str | None, policy_file: Path | None,
               verbose: bool) -> None:
    """Show which rule decides EVENT_FILE (a hook payload as JSON, or a line of `mpmd tail
    --json`; - for stdin) and exactly what the hook would print."""
    settings = config.load()
    try:
        record = mpmd_policy.compile_for_test(settings, policy_file)
    except FileNotFoundError:
        where = policy_file or mpmd_policy.source_path(settings)
        raise click.ClickException(f"no policy at {where}: mpmd only observes, it decides "
                                   "nothing") from None
    except mpmd_policy.PolicyError as exc:
        raise click.ClickException(f"invalid policy: {exc}") from None
    try:
        payload = json.loads(event_file.read())
    except (ValueError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"the event is not JSON: {exc}") from None
    if isinstance(payload, dict) and "hook_event_name" not in payload and isinstance(
            payload.get("payload"), dict):
        payload = payload["payload"]  # a stored event, as `mpmd tail --json` prints it
    verdict = mpmd_policy.evaluate(record, payload, project or os.environ.get(
        "CLAUDE_PROJECT_DIR"), os.environ.get("HOME"))
    event = verdict.event
    if event is None:
        name = payload.get("hook_event_name") if isinstance(payload, dict) else None
        click.echo(f"not decided: {name or 'this payload'} is not a PreToolUse or "
                   "PermissionRequest event; the hook prints nothing")
        return
    what = event.command if event.command is not None else _input_summary(event.input)
    click.echo(f"event: {event.name} {event.tool or '-'} {what}")
    click.echo(f"  cwd {event.cwd or '-'}, project {event.project or '-'}")
    if verbose:
        for index, label, action, failed in verdict.trail:
            if failed is not None:
                click.echo(f"  rule {index} {_name(label)}({action}): its `{failed}` does not "
                           "match")
    decision = verdict.decision
    if decision is None:
        click.echo("no rule matches: mpmd observes only, Claude Code decides as without a "
                   "policy")
    else:
        click.echo(f"rule {decision.index} {_name(decision.rule)}decides: {decision.action}")
        click.echo(f"  reason: {decision.reason}")
        if decision.action == "remote":
            click.echo(f"  the hook waits up to {decision.timeout_s:g} s for an answer from "
                       "the viewer; without one it prints nothing and Claude Code asks as "
                       "usual")
        elif verdict.printed is None:
            click.echo("  a PermissionRequest has no \"ask\": the hook prints nothing and "
                       "Claude Code asks as usual")
    click.echo("the hook prints:" if verdict.printed else "the hook prints nothing")
    if verdict.printed:
        click.echo(verdict.printed.decode().rstrip("\n"))


def _name(label: str) -> str:
    return "" if label.startswith("#") else f"{label} "


def _input_summary(tool_input: dict[str, Any]) -> str:
    for key in ("file_path", "path", "notebook_path", "pattern", "url"):
        value = tool_input.get(key)
        if isinstance(value, str):
            return value
    return json.dumps(tool_input)[:200]


@policy.command()
def init() -> None:
    """Write the example policy to policy.toml (never overwrites) and compile it."""
    settings = config.load()
    try:
        path = mpmd_policy.init(settings)
    except FileExistsError:
        raise click.ClickException(f"{mpmd_policy.source_path(settings)} exists already: "
                                   "nothing written") from None
    except FileNotFoundError:
        raise click.ClickException(f"the example policy is not installed "
                                   f"({mpmd_policy.EXAMPLE_PATH}): nothing written") from None
    checked = mpmd_policy.check(settings)
    click.echo(f"wrote {path} ({checked.rules} rules, active now); edit it, then run "
               "`mpmd policy check`")


@policy.command("path")
@click.option("--compiled", is_flag=True, help="The compiled form the hook reads instead.")
def path_(compiled: bool) -> None:
    """Print where policy.toml is (whether it exists or not)."""
    settings = config.load()
    click.echo(mpmd_policy.compiled_path(settings) if compiled
               else mpmd_policy.source_path(settings))

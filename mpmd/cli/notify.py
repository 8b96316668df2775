"""``mpmd notify init`` writes notification rules with sensible defaults into config.toml;
``mpmd notify test`` sends one notification to every target and says what happened
(docs/notify.md)."""

from __future__ import annotations

import sys
import time
import tomllib

import click

from mpmd import config
from mpmd.durable import write_atomic
from mpmd.notify import rules as R

_INIT = '''
# Notifications to people (docs/notify.md): which condition, for which sessions, to which
# targets (apprise URLs: ntfy://, slack://, mailto://, tgram://, dbus:// ...).
# `mpmd notify test` sends one to every target; restart mpmd to apply a change.
[[notify]]
name = "needs-you"
on = ["needs-you", "turn-failed"]
targets = [{targets}]
# after_s = 0              # send a wait only once it lasted this long
# quiet_hours = "22:00-07:00"
# projects = ["my-app"]    # globs on the project folder's name, or the whole cwd

[[notify]]
name = "finished"
on = ["ended", "idle"]
idle_minutes = 15
targets = [{targets}]
follow_up = false
'''


def default_target() -> str:
    """The desktop of this machine."""
    return "macosx://" if sys.platform == "darwin" else "dbus://"


@click.group()
def notify() -> None:
    """Notifications to people: rules in config.toml (docs/notify.md)."""


@notify.command()
@click.option("--target", "targets", multiple=True, metavar="URL",
              help="An apprise URL to notify (repeatable); default: this desktop.")
def init(targets: tuple[str, ...]) -> None:
    """Add default notification rules to config.toml."""
    settings = config.load()
    path = settings.config_path
    text = path.read_text() if path.exists() else ""
    if settings.notify_tables:
        raise click.ClickException(f"{path} has [[notify]] rules already: edit them there")
    chosen = list(targets) or [default_target()]
    block = _INIT.format(targets=", ".join(f'"{_toml_escape(t)}"' for t in chosen))
    new = text + ("\n" if text and not text.endswith("\n") else "") + block
    _good, bad = R.parse(tomllib.loads(new).get("notify", []))
    if bad:
        raise click.ClickException("; ".join(b.error for b in bad))
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(path, new.encode())  # owner-only: target URLs hold secrets
    click.echo(f"added 2 rules to {path}: needs-you (needs-you, turn-failed) and finished "
               f"(ended, idle 15 min), to {', '.join(R.safe_target(t) for t in chosen)}\n"
               "next: `mpmd notify test`, then restart mpmd (mpmd stop && mpmd start)")


def _toml_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


@notify.command()
@click.option("--rule", "only", default=None, help="Only this rule's targets.")
def test(only: str | None) -> None:
    """Send a test notification to every target, and say what happened."""
    from mpmd.notify.deliver import send
    from mpmd.notify.message import Message

    settings = config.load()
    good, bad = R.from_settings(settings)
    for item in bad:
        click.echo(f"rule {item.name}: not used: {item.error}")
    chosen = [r for r in good if only is None or r.name == only]
    if not chosen:
        raise click.ClickException("no rule to test: add one with `mpmd notify init`"
                                   if only is None else f"no usable rule named {only!r}")
    failed = 0
    for rule in chosen:
        for name, url in zip(R.target_names(rule), rule.targets, strict=True):
            message = Message(id=f"test-{time.time_ns()}", rule=rule.name,
                              title="mpmd: test notification",
                              body=f"This is rule {rule.name!r} of mpmd. It will tell you: "
                                   f"{', '.join(rule.on)}.")
            error = send(url, message)
            failed += error is not None
            click.echo(f"{name} {R.safe_target(url)}: " + ("sent" if error is None
                                                           else f"FAILED: {error}"))
    if failed or bad:
        sys.exit(1)

"""The `mpmd` command. Each command turns its flags into Settings and calls one function."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click
import msgspec

from mpmd import config
from mpmd.cli import doctor, history, notify, policy, service
from mpmd.cli.lines import format_line, matches
from mpmd.control import client
from mpmd.counters import Count
from mpmd.errors import MpmdError, QueryError
from mpmd.ops import hooks_settings
from mpmd.ops.hook_install import DEFAULT_SETTINGS_FILE, hook_command, install_hook_copy
from mpmd.status import Status


class _Commands(click.Group):
    """mpmd's commands. Here and nowhere else, an MpmdError from any of them (mpmd.errors)
    becomes its message and exit status 1, as click prints its own usage errors."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except QueryError as exc:
            raise click.ClickException(f"bad query: {exc}") from None
        except MpmdError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mpmd")
def main() -> None:
    """mpmd: keeps every Claude Code hook event in a journal you own."""


# ---- daemon lifecycle ---------------------------------------------------------------------
@main.command()
@click.option("--foreground", is_flag=True, help="Run in this process (for service managers).")
@click.option("--ring-bytes", type=int, help="Ring buffer size (default 64 MiB).")
@click.option("--log-file", is_flag=True, hidden=True)
def start(foreground: bool, ring_bytes: int | None, log_file: bool) -> None:
    """Start the daemon; returns once it accepts events."""
    settings = config.load(ring_bytes=ring_bytes)
    own_folders(settings)
    if client.lock_holder(settings):
        pid = client.read_pid(settings.pid_path)
        click.echo(f"mpmd is already running (pid {pid}), socket {settings.socket_path}")
        return
    install_hook_copy(settings)
    note = config.runtime_dir_note()
    if foreground:
        import logging

        from mpmd.daemon import wiring

        try:
            wiring.configure_logging(settings, to_file=log_file)
            if note:
                logging.getLogger("mpmd").info("%s", note)
            ready = os.environ.pop("MPMD_READY_FD", None)
            wiring.run(settings, int(ready) if ready else None)
        except wiring.AlreadyRunning as exc:
            click.echo(f"mpmd is already running ({exc})")
        return
    if note:
        click.echo(note, err=True)
    if _activate_through_socket_unit(settings):
        pid = client.read_pid(settings.pid_path)
        click.echo(f"mpmd started by its socket unit (pid {pid}), socket {settings.socket_path}"
                   " (mpmd service status)")
        return
    extra = ["--ring-bytes", str(ring_bytes)] if ring_bytes else []
    pid = client.start_background(settings, extra)
    click.echo(f"mpmd started (pid {pid}), socket {settings.socket_path}")


def own_folders(settings: config.Settings) -> None:
    """Refuse (config.FolderRefused) before anything is written when a folder mpmd keeps its
    files in is a symlink, a file or another user's; the runtime and state folders are
    created or tightened to 0700, the folders inside only checked (doctor flags their modes,
    install-hooks repairs them)."""
    config.owner_only_dir(settings.runtime_dir)
    config.owner_only_dir(settings.state_dir)
    for folder in (settings.journal_dir, settings.spool_dir, settings.log_dir,
                   settings.rejected_dir, settings.hook_copy_dir):
        config.owner_only_dir(folder, create=False, tighten=False)


def _activate_through_socket_unit(settings: config.Settings, wait_s: float = 30.0) -> bool:
    """True when a service manager already listens on the hook socket (mpmd.socket) and
    started the daemon because we connected: a daemon started by hand instead would put its
    own socket file in place of the unit's, and hooks would spool once it stopped."""
    import socket as socket_module
    import time

    if not settings.socket_path.exists():
        return False
    with socket_module.socket(socket_module.AF_UNIX, socket_module.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect(str(settings.socket_path))  # systemd starts mpmd.service for it
        except OSError:
            return False  # a stale file: nobody listens
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if client.lock_holder(settings) and client.read_pid(settings.pid_path):
            return True
        time.sleep(0.05)  # the service manager starts it; nothing here to wait on
    raise click.ClickException("the socket unit accepted a connection but no daemon started "
                               "(see `mpmd service status` and its log)")


@main.command()
def stop() -> None:
    """Stop the daemon: drains the ring to the journal, returns once it has exited."""
    settings = config.load()
    stopped = client.stop(settings)
    click.echo("mpmd stopped" if stopped else "mpmd is not running")


def gather_status(settings: config.Settings) -> Status:
    """The daemon's status, or what can be told without it."""
    from mpmd.ingest import spool

    try:
        return client.status(settings)
    except (client.NotRunning, OSError, ValueError):
        pass
    return Status(running=False, hung=client.lock_holder(settings),
                  socket=str(settings.socket_path), journal_dir=str(settings.journal_dir),
                  spool_dir=str(settings.spool_dir),
                  spool_pending=spool.pending(settings.spool_dir))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def status(as_json: bool) -> None:
    """Is the daemon running, and how much has it seen."""
    settings = config.load()
    info = gather_status(settings)
    if as_json:
        click.echo(msgspec.json.encode(info).decode())
        return
    if info.running:
        click.echo(
            f"mpmd running, pid {info.pid}, up {_duration(info.uptime_s)}\n"
            f"  events stored since start  {info.events_total}  (journal at seq "
            f"{info.journal_last_seq})\n"
            f"  ring used                  {_size(info.ring_used_bytes)} of "
            f"{_size(info.ring_capacity_bytes or 0)}\n"
            f"  spool pending              {info.spool_pending}\n"
            f"  hook to ring               {_latency_line(info)}\n"
            f"  socket                     {info.socket}\n"
            f"  http hooks                 {_http_line(info)}\n"
            f"  journal                    {info.journal_dir}\n"
            f"  search index               {_index_line(info)}\n"
            f"  policy                     {_policy_line(info)}\n"
            f"  forwarders                 {_forward_line(info)}\n"
            f"  notifications              {_notify_line(info)}\n"
            f"  viewer                     {_viewer_line(info)}"
            + _tasks_line(info)
        )
    else:
        state = "not responding (hung?)" if info.hung else "not running"
        click.echo(f"mpmd is {state}\n  spool pending {info.spool_pending} "
                   f"(taken in at the next start)\n  journal {info.journal_dir}")


def _tasks_line(info: Status) -> str:
    """Only when a background task failed (and was started again): it is a bug to report."""
    return "".join(f"\n  task {task:<21}  failed {f.failures} times, started again "
                   f"(last: {f.last_error}; see the log)"
                   for task, f in sorted(info.task_failures.items()))


def _latency_line(info: Status) -> str:
    ms = info.hook_to_ring_ms
    if ms.get("p50") is None:
        return "no events yet" if not info.events_total else "over 5 s (see the log)"
    p99 = f"≤ {ms['p99']:g} ms" if ms.get("p99") is not None else "over 5 s"
    return f"p50 ≤ {ms['p50']:g} ms, p99 {p99}  (full histogram: /metrics)"


def _forward_line(info: Status) -> str:
    if not info.forward:
        return "none (docs/scaling.md)"
    return ", ".join(
        f"{name} {f.state}" + (f", {f.backlog} behind" if f.backlog else "")
        for name, f in sorted(info.forward.items()))


def _notify_line(info: Status) -> str:
    n = info.notify
    if n is None:
        return "none (mpmd notify init; docs/notify.md)"
    failing = [f"{name} {t.state}: {t.last_error}" for name, t in sorted(n.targets.items())
               if t.state != "ok"]
    invalid = [name for name, r in sorted(n.rules.items()) if r.state != "ok"]
    sent = sum(t.sent for t in n.targets.values())
    parts = [f"{len(n.rules) - len(invalid)} rules, {len(n.targets)} targets, {sent} sent"]
    if invalid:
        parts.append(f"in error: {', '.join(invalid)}")
    return "; ".join(parts + failing)


def _policy_line(info: Status) -> str:
    policy = info.policy
    if policy is not None and policy.state == "active":
        return f"{policy.rules} rules ({policy.file})"
    if policy is not None and policy.state == "invalid":
        return f"INVALID, the hooks only observe: {policy.error}  (mpmd policy check)"
    return "none: mpmd only observes (mpmd policy init writes an example)"


def _index_line(info: Status) -> str:
    behind = max(0, (info.journal_last_seq or 0) - (info.index_last_seq or 0))
    where = "up to date" if not behind else f"{behind} events behind the journal"
    if info.index_worker_pid is None:
        restarts = info.counters.get(Count.INDEX_WORKER_RESTARTS, 0)
        return f"{where}; its worker is not running (restarted {restarts} times; see the log)"
    return f"{where} (worker pid {info.index_worker_pid})"


def _http_line(info: Status) -> str:
    """The endpoint Claude Code's http hooks post to (docs/protocol.md), and what it
    refused (the reasons: mpmd status --json, docs/security.md)."""
    if not info.http_url:
        return f"not available: {info.http_error or 'not started'}"
    refused = sum(info.http_refused.values())
    return info.http_url + (f"  ({refused} requests refused: mpmd status --json)" if refused
                            else "")


def _viewer_line(info: Status) -> str:
    if not info.viewer_url:
        return f"not available ({info.viewer_error or 'not started'})"
    # The token stays out of the terminal (and of screenshots of it): `mpmd open` has it.
    return f"{info.viewer_url.split('#', 1)[0]}  (mpmd open)"


@main.command("open")
@click.option("--print", "print_only", is_flag=True,
              help="Print the viewer's URL (token included) instead of opening a browser.")
def open_viewer(print_only: bool) -> None:
    """Open the live viewer in your browser."""
    settings = config.load()
    info = gather_status(settings)
    if not info.running:
        raise click.ClickException("mpmd is not running: start it with `mpmd start`")
    url = info.viewer_url
    if not url:
        raise click.ClickException(f"the viewer is not available: {info.viewer_error}")
    if print_only:
        click.echo(url)
        return
    import webbrowser

    if not webbrowser.open(url):
        click.echo(f"No browser found; open this URL yourself:\n{url}")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


# ---- reading the journal -------------------------------------------------------------------
@main.command()
@click.option("-n", "lines", type=int, default=20, show_default=True, help="Events to show.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new events.")
@click.option("--session", help="Only this session (id or prefix).")
@click.option("--type", "types", multiple=True, help="Only this event type (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the journal's JSON lines.")
def tail(lines: int, follow: bool, session: str | None, types: tuple[str, ...],
         as_json: bool) -> None:
    """Show the latest events, one readable line each."""
    from mpmd.storage.journal import Journal, line_seq

    settings = config.load()

    def emit(line: bytes) -> None:
        if matches(line, session, types):
            text = line.decode("utf-8", "replace") if as_json else format_line(line)
            if text is not None:
                click.echo(text)
                if follow:
                    sys.stdout.flush()  # `tail -f | jq` must see each event as it comes

    journal = Journal(settings.journal_dir, read_only=True)  # safe while the daemon writes
    try:
        if session or types:
            matching = [ln for ln in journal.read_from(0) if matches(ln, session, types)]
            recent = matching[-lines:] if lines else []
        else:
            recent = journal.read_last(lines) if lines else []
        for line in recent:
            emit(line)
        last_seq = journal.last_seq
    finally:
        journal.close()
    if not follow:
        return
    try:
        for line in client.follow(settings, last_seq):
            if line.startswith(b'{"lagged"'):
                raise click.ClickException("fell behind the live stream; run tail again")
            if line_seq(line) > last_seq:
                emit(line)
    except client.NotRunning:
        raise click.ClickException("mpmd is not running: `mpmd start` first") from None
    except KeyboardInterrupt:
        pass


# ---- hooks -------------------------------------------------------------------------------
@main.command("install-hooks")
@click.option("--settings", "settings_file", type=click.Path(dir_okay=False, path_type=Path),
              default=DEFAULT_SETTINGS_FILE, show_default=True,
              help="Claude Code settings file to add the hooks to.")
@click.option("--transport", type=click.Choice(hooks_settings.TRANSPORTS), default="auto",
              show_default=True,
              help="http: Claude Code posts events to the daemon (SessionStart and Setup stay "
                   "command hooks); command: a hook process per event, which spools while "
                   "the daemon is down; auto: http when the installed Claude Code takes it "
                   "and the daemon's endpoint answers, else command.")
def install_hooks(settings_file: Path, transport: str) -> None:
    """Register mpmd's hook for every event type in a Claude Code settings file."""
    settings = config.load()
    path = settings_file.expanduser()
    from mpmd.ops.doctor import repair_modes, tilde  # what `mpmd doctor` flags, this repairs

    copy_changes: list[str] = []
    command = hook_command(settings, install_hook_copy(settings, copy_changes))
    home = os.path.expanduser("~")
    for change in [tilde(c, home) for c in copy_changes] + repair_modes(settings):
        click.echo(f"owner-only again: {change}")
    choice = choose_transport(settings, transport, path, home)
    if choice.error:
        raise click.ClickException(f"not installing http hooks: {choice.error} (--transport "
                                   "command works with every Claude Code)")
    http = None
    if choice.transport == hooks_settings.HTTP:
        from mpmd.durable import load_or_create_token

        assert choice.port is not None and choice.endpoint is not None
        # The running daemon's token (choose_transport made sure there is one); with none
        # running, the one it will load at its start, made now if there is none yet (it
        # keeps a token it finds, and replaces one others could read, as this does).
        token = choice.endpoint.token if choice.endpoint.running \
            else load_or_create_token(settings.http_token_path)
        assert token is not None
        http = hooks_settings.HttpHook(choice.port, token)
    changes = hooks_settings.apply(path, lambda s: hooks_settings.install(s, command,
                                                                          http=http))
    shown = tilde(path, home)
    if transport == "auto":
        click.echo(f"transport: {choice.transport} (auto), because {choice.why}")
    else:
        click.echo(f"transport: {choice.transport}, as asked (--transport {transport})")
    if http is not None:
        plain = [e for e in hooks_settings.INSTALLED_EVENTS
                 if e in hooks_settings.COMMAND_ONLY_EVENTS]
        n = len(hooks_settings.INSTALLED_EVENTS) - len(plain)
        click.echo(f"  {n} events post to {http.url}; {' and '.join(plain)} stay command "
                   "hooks (Claude Code runs only command hooks for them), and the "
                   f"{hooks_settings.STARTING_EVENT} one starts mpmd when it finds none "
                   "running")
        click.echo("  the token is written in the file (Authorization header); "
                   "it must stay yours alone (docs/security.md)")
    for note in choice.notes:
        click.echo(f"  note: {note}")
    if changes.made_private is not None:
        now = changes.made_private & ~0o077
        click.echo(f"{shown}: made {now:04o} (it was {changes.made_private:04o}): it holds "
                   "the http hooks' token")
    if not changes.changed:
        click.echo(f"{path}: hooks already installed, nothing changed")
        return
    click.echo(f"{path}: added {len(changes.added)}, updated {len(changes.updated)}, "
               f"removed {len(changes.removed)} event hooks")
    if changes.backup:
        click.echo(f"  backup of the previous file: {changes.backup}")
    click.echo(f"  command: {command}")


def choose_transport(settings: config.Settings, requested: str, path: Path,
                     home: str) -> hooks_settings.Choice:
    """What install-hooks writes into ``path``: asks the daemon and the installed Claude
    Code (only when they matter), then hooks_settings.choose_transport decides."""
    from mpmd.ops.doctor import tilde

    if requested == hooks_settings.COMMAND:
        return hooks_settings.choose_transport(requested, hooks_settings.ClaudeCode(),
                                               hooks_settings.Endpoint(settings.http_port))
    try:
        status: Status | None = client.status(settings)
    except (client.NotRunning, OSError, ValueError):
        status = None
    endpoint = hooks_settings.read_endpoint(settings, status)
    shared = tilde(path, home) if hooks_settings.shared_project_file(path, home) else None
    return hooks_settings.choose_transport(requested, hooks_settings.find_claude(home=home),
                                           endpoint, shared_file=shared, home=home)


@main.command("uninstall-hooks")
@click.option("--settings", "settings_file", type=click.Path(dir_okay=False, path_type=Path),
              default=DEFAULT_SETTINGS_FILE, show_default=True)
def uninstall_hooks(settings_file: Path) -> None:
    """Remove exactly mpmd's entries from a Claude Code settings file."""
    path = settings_file.expanduser()
    changes = hooks_settings.apply(path, hooks_settings.uninstall)
    if changes.changed:
        click.echo(f"{path}: removed mpmd's hooks from {len(changes.removed)} events")
    else:
        click.echo(f"{path}: no mpmd hooks found, nothing changed")


if __name__ == "__main__":  # pragma: no cover
    main()


main.add_command(history.reindex)
main.add_command(history.query)
main.add_command(history.stats)
main.add_command(history.searches)
main.add_command(history.export)
main.add_command(history.replay)
main.add_command(service.service)
main.add_command(policy.policy)
main.add_command(doctor.doctor)
main.add_command(notify.notify)

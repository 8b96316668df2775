"""`mpmd service install|uninstall|status`: mpmd as a per-user service (systemd user units
on Linux, a LaunchAgent on macOS). What is written, and why, is in the module mpmd.service
and docs/service.md; this one runs the steps and says what it did. mpmd.service is imported
inside the functions: every `mpmd` command imports this module, only these need that one."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mpmd import config
from mpmd.control import client

if TYPE_CHECKING:
    from mpmd.ops.service import UnitFile

MANAGERS = ("auto", "systemd", "launchd")



def _manager(choice: str) -> str:
    if choice != "auto":
        return choice
    if sys.platform == "darwin":
        return "launchd"
    if sys.platform.startswith("linux"):
        return "systemd"
    raise click.ClickException(f"no service manager mpmd knows on {sys.platform}: run "
                               "`mpmd start` from your session's start-up instead")


def _files(manager: str, settings: config.Settings) -> list[UnitFile]:
    from mpmd.ops import service as svc

    layout = svc.current_layout(settings)
    if manager == "launchd":
        return svc.launchd_files(layout, svc.launch_agents_dir(Path.home()))
    return svc.systemd_files(layout, svc.systemd_unit_dir(os.environ, Path.home()))


def _run_all(commands: list[list[str]]) -> None:
    from mpmd.ops import service as svc

    for argv in commands:
        ran = svc.run(argv)
        if not ran.ok:
            raise click.ClickException(f"`{svc.shell_line(argv)}` failed (exit status "
                                       f"{ran.returncode}): {ran.output}")
        click.echo(f"ran {svc.shell_line(argv)}")


def _running_pid(settings: config.Settings) -> int | None:
    """The pid of a daemon running for these folders (0 if it has not written it yet), or
    None when none runs."""
    if not client.lock_holder(settings):
        return None
    return client.read_pid(settings.pid_path) or 0


def _stop_hand_started(settings: config.Settings, service_running: bool) -> bool:
    """A daemon started by hand (`mpmd start`) would hold the lock the service's daemon
    needs, and serve a socket file the service manager replaces: stop it (it drains
    everything into the journal first) so the service takes over. A daemon running while
    the service manager says its own runs is that one. True if one was stopped."""
    pid = _running_pid(settings)
    if pid is None or service_running:
        return False
    try:
        client.stop(settings)
    except RuntimeError as exc:
        raise click.ClickException(f"could not stop the running mpmd (pid {pid}) for the "
                                   f"service to take over: {exc}") from None
    click.echo(f"stopped the mpmd started by hand (pid {pid}); the service takes over")
    return True


@click.group("service")
def service() -> None:
    """Run mpmd as a per-user service: systemd user units (socket-activated) on Linux, a
    LaunchAgent on macOS. See docs/service.md."""


_manager_option = click.option(
    "--manager", type=click.Choice(MANAGERS), default="auto", hidden=True,
    help="Service manager (default: systemd on Linux, launchd on macOS).")


@service.command()
@click.option("--dry-run", is_flag=True, help="Print what would be written and run.")
@_manager_option
def install(dry_run: bool, manager: str) -> None:
    """Write the service files for this user and enable them."""
    settings = config.load()
    manager = _manager(manager)
    files = _files(manager, settings)
    if manager == "launchd":
        _install_launchd(settings, files, dry_run)
    else:
        _install_systemd(settings, files, dry_run)


def _show(files: list[UnitFile], commands: list[list[str]]) -> None:
    from mpmd.ops import service as svc

    for unit in files:
        click.echo(f"would write {unit.path}:")
        click.echo(textwrap.indent(unit.content.decode(), "    "), nl=False)
    for argv in commands:
        click.echo(f"would run {svc.shell_line(argv)}")


def _write_all(files: list[UnitFile]) -> bool:
    from mpmd.ops import service as svc

    changed = False
    for unit in files:
        if svc.write(unit):
            changed = True
            click.echo(f"wrote {unit.path}")
        else:
            click.echo(f"{unit.path} is up to date")
    return changed


def _install_systemd(settings: config.Settings, files: list[UnitFile],
                     dry_run: bool) -> None:
    from mpmd.ops import service as svc

    http = any(unit.path.name == svc.HTTP_SOCKET_UNIT for unit in files)
    if dry_run:
        _show(files, svc.systemd_install_commands(restart=False, http=http))
        return
    usable, why = svc.systemctl_usable()
    was_active = usable and svc.run(svc.systemctl("is-active", svc.SOCKET_UNIT)).ok
    if usable:
        _stop_hand_started(settings, svc.run(svc.systemctl("is-active", svc.SERVICE_UNIT)).ok)
    changed = _write_all(files)
    if not usable:
        click.echo(f"systemctl --user is not usable here ({why}); to load and enable the "
                   "units, run this as the same user in a login session:")
        for argv in svc.systemd_install_commands(restart=False, http=http):
            click.echo(f"  {svc.shell_line(argv)}")
        return
    *setup, start = svc.systemd_install_commands(restart=changed and was_active, http=http)
    _run_all(setup)
    # Started now rather than at the first hook event: it says at once whether the sandbox
    # works here, and the viewer is up. From the next login on, the socket starts it.
    ran = svc.run(start)
    if not ran.ok:
        raise click.ClickException(
            f"{svc.SERVICE_UNIT} did not start ({svc.systemd_failure()}). Exit statuses 217, "
            "218 and 226 mean the sandbox could not be set up here: see \"If the service "
            "does not start\" in docs/service.md. Hooks spool their events meanwhile; "
            "nothing is lost. Logs: journalctl --user -u mpmd")
    click.echo(f"ran {svc.shell_line(start)}")
    held = (f" and {svc.HTTP_SOCKET_UNIT} on 127.0.0.1:{settings.http_port}" if http else
            " (http_port is not a fixed port: nothing holds the http endpoint's)")
    click.echo(f"{svc.SOCKET_UNIT} listens on {settings.socket_path}{held}; from the next "
               f"login on, the first hook event starts {svc.SERVICE_UNIT} (logs: journalctl "
               "--user -u mpmd)")


def _install_launchd(settings: config.Settings, files: list[UnitFile],
                     dry_run: bool) -> None:
    from mpmd.ops import service as svc

    uid = os.getuid()
    plist = files[0].path
    if dry_run:
        _show(files, [])
        bootout = [svc.LAUNCHCTL, "bootout", svc.launchd_target(uid)]
        click.echo(f"would run {svc.shell_line(bootout)}  (if it is loaded)")
        for argv in svc.launchd_install_commands(uid, plist, loaded=False):
            click.echo(f"would run {svc.shell_line(argv)}")
        return
    agent = svc.launchd_state(uid)
    _stop_hand_started(settings, agent.pid is not None)
    config.owner_only_dir(settings.log_dir)  # launchd opens its log file there
    _write_all(files)
    _run_all(svc.launchd_install_commands(uid, plist, agent.loaded))
    click.echo(f"{svc.LAUNCHD_LABEL} is loaded: launchd starts mpmd at login and again if it "
               f"fails (log: {settings.log_path})")


@service.command()
@click.option("--dry-run", is_flag=True, help="Print what would be removed and run.")
@_manager_option
def uninstall(dry_run: bool, manager: str) -> None:
    """Disable the service and remove its files."""
    from mpmd.ops import service as svc

    settings = config.load()
    manager = _manager(manager)
    files = _files(manager, settings)
    if manager == "launchd":
        uid = os.getuid()
        loaded = svc.launchd_state(uid).loaded if not dry_run else True
        commands = svc.launchd_uninstall_commands(uid, loaded)
        if dry_run:
            _show_removal(files, commands)
            return
        _run_all(commands)
        _remove_all(files)
    else:
        _uninstall_systemd(files, dry_run)
    if not dry_run and _running_pid(settings) is None:
        click.echo("mpmd is not running now: hooks spool their events until `mpmd start`")


def _show_removal(files: list[UnitFile], commands: list[list[str]]) -> None:
    from mpmd.ops import service as svc

    for argv in commands:
        click.echo(f"would run {svc.shell_line(argv)}")
    for unit in files:
        click.echo(f"would remove {unit.path}")


def _remove_all(files: list[UnitFile]) -> None:
    from mpmd.ops import service as svc

    for unit in files:
        if svc.remove(unit.path):
            click.echo(f"removed {unit.path}")
        else:
            click.echo(f"{unit.path} was not there")


def _uninstall_systemd(files: list[UnitFile], dry_run: bool) -> None:
    from mpmd.ops import service as svc

    unit_dir = files[0].path.parent
    if dry_run:
        _show_removal(files, [*svc.systemd_uninstall_commands(),
                              svc.systemctl("daemon-reload")])
        return
    usable, why = svc.systemctl_usable()
    installed = any(unit.path.exists() for unit in files)
    if usable and installed:
        _run_all(svc.systemd_uninstall_commands())  # stops the daemon: it drains first
    for link in svc.enablement_links(unit_dir):  # what disable did not (or could not) do
        svc.remove(link)
        click.echo(f"removed {link}")
    _remove_all(files)
    if usable:
        _run_all([svc.systemctl("daemon-reload")])
        svc.run(svc.systemctl("reset-failed", svc.SERVICE_UNIT, svc.SOCKET_UNIT,
                              svc.HTTP_SOCKET_UNIT))
    else:
        click.echo(f"systemctl --user is not usable here ({why}); if a user service manager "
                   "runs these units in another session, run there:")
        for argv in [*svc.systemd_uninstall_commands(), svc.systemctl("daemon-reload")]:
            click.echo(f"  {svc.shell_line(argv)}")


@service.command()
@_manager_option
def status(manager: str) -> None:
    """What is installed, and whether the service manager runs it."""
    from mpmd.ops import service as svc

    settings = config.load()
    manager = _manager(manager)
    files = _files(manager, settings)
    for unit in files:
        current = svc.current_content(unit.path)
        if current is None:
            state = "not installed"
        elif current == unit.content:
            state = "installed, up to date"
        else:
            state = "installed, differs from what `mpmd service install` writes now"
        click.echo(f"{unit.path}: {state}")
    if manager == "launchd":
        agent = svc.launchd_state(os.getuid())
        pid = f" (pid {agent.pid})" if agent.pid else ""
        click.echo(f"launchd: {svc.LAUNCHD_LABEL} "
                   f"{agent.state + pid if agent.loaded else 'is not loaded'}")
    else:
        usable, why = svc.systemctl_usable()
        if usable:
            states = svc.systemd_states()
            for name, (enabled, active) in states.items():
                if name == svc.SERVICE_UNIT and states[svc.SOCKET_UNIT][0] == "enabled":
                    enabled += f" (started by {svc.SOCKET_UNIT})"
                click.echo(f"systemd: {name} {enabled}, {active}")
        else:
            click.echo(f"systemd: systemctl --user is not usable here ({why})")
    running = _running_pid(settings)
    click.echo("daemon: not running" if running is None else f"daemon: running (pid {running})")

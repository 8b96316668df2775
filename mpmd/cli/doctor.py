"""`mpmd doctor`: one line per check (OK, WARN, FAIL or SKIP, and the fix), or --json.

The checks themselves are in mpmd.ops.doctor; this is the command around them.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from mpmd import config
from mpmd.ops import doctor as dr
from mpmd.ops.hook_install import DEFAULT_SETTINGS_FILE, hook_command


@click.command("doctor")
@click.option("--project", "project_dir", default=".", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Project folder whose .claude/settings.json and settings.local.json "
                   "to check as well.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def doctor(project_dir: Path, as_json: bool) -> None:
    """Check the daemon, permissions, hook entries, spool, ring, disk, index and viewer.

    Exits 1 when a check fails (WARN and SKIP do not); each problem comes with its fix.
    """
    config_error = None
    try:
        settings = config.load()
    except config.ConfigError as exc:
        config_error = str(exc)
        settings = dr.default_settings()
    script = settings.hook_copy_dir / "mpm_hook" / "__main__.py"  # as install_hook_copy()
    facts = dr.gather(settings, user_file=DEFAULT_SETTINGS_FILE.expanduser(),
                      project_dir=project_dir, hook_command=hook_command(settings, script),
                      config_error=config_error)
    checks = dr.run_checks(facts)
    failed = any(c.level == dr.FAIL for c in checks)
    if as_json:
        click.echo(json.dumps({"ok": not failed, "summary": dr.summary(checks),
                               "checks": [c.as_dict() for c in checks]}))
    else:
        for check in checks:
            click.echo(check.line())
        click.echo(dr.summary(checks))
    if failed:
        raise SystemExit(1)

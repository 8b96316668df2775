"""Notifications end to end: a real daemon, real hook processes, its notifier process and
apprise sending to real receivers on loopback (tests/receivers.py): ntfy's publish API, a
Slack-style incoming webhook, a D-Bus session bus with dunst."""

from __future__ import annotations

import json
import os
import signal
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.receivers import DesktopBus, NtfyServer, SlackWebhook, require_desktop
from tests.utils import Daemon, mpmd_cli, run_hook, status, wait_until

pytestmark = pytest.mark.integration

SID = "5e0c1d2a-0000-4000-8000-00000000abcd"
CWD = "/home/dev/shop"


def hook(home: Path, event: str, **fields: object) -> None:
    payload = {"session_id": SID, "cwd": CWD, "hook_event_name": event, **fields}
    out = run_hook(home, json.dumps(payload).encode())
    assert out.returncode == 0, out.stderr


def permission(home: Path, command: str, use_id: str = "toolu_1") -> None:
    tool = {"tool_name": "Bash", "tool_input": {"command": command}}
    hook(home, "PreToolUse", tool_use_id=use_id, **tool)
    hook(home, "PermissionRequest", **tool)


def write_rules(home: Path, *rules: str, top: str = "") -> None:
    path = home / "config.toml"
    path.write_text(top + "\n".join(rules))
    path.chmod(0o600)  # it holds the targets' secrets (mpmd doctor says so otherwise)


def rule(name: str, targets: list[str], on: str = '["needs-you"]', extra: str = "") -> str:
    return (f'[[notify]]\nname = "{name}"\non = {on}\n'
            f"targets = {json.dumps(targets)}\n{extra}\n")


@pytest.fixture
def ntfy() -> Iterator[NtfyServer]:
    with NtfyServer() as server:
        yield server


def notify_status(home: Path) -> dict:
    return status(home)["notify"]


def target(home: Path, name: str) -> dict:
    """A target's status; empty until the notifier's first report."""
    return notify_status(home)["targets"].get(name, {})


def test_a_wait_is_one_notification_and_its_end_one_follow_up(tmp_path: Path,
                                                              ntfy: NtfyServer) -> None:
    write_rules(tmp_path, rule("phone", [ntfy.url("mpmd")]))
    with Daemon(tmp_path, MPMD_VIEWER_PORT="0"):
        permission(tmp_path, "npm test")
        (first,) = ntfy.wait_for(1)
        assert first.topic == "mpmd"
        assert first.title == "shop: needs you"
        assert "needs you" in first.message and "Bash: npm test" in first.message
        viewer = status(tmp_path)["viewer_url"].split("#")[0]
        assert first.click == f"{viewer}#session={SID}"
        assert first.priority == 4  # ntfy's "high"
        # Claude Code's own notification of the same prompt, seconds later: no repeat.
        hook(tmp_path, "Notification", notification_type="permission_prompt",
             message="Claude needs your permission to use Bash")
        hook(tmp_path, "PostToolUse", tool_name="Bash", tool_use_id="toolu_1",
             tool_input={"command": "npm test"}, tool_response={"stdout": "ok"})
        first, follow = ntfy.wait_for(2)
        assert follow.title.startswith("✓ shop")
        assert "approved: the tool ran" in follow.message
        wait_until(lambda: target(tmp_path, "phone#1").get("sent") == 2,
                   "the status to count both")
        st = notify_status(tmp_path)
        assert st["backlog"] == 0 and st["rules"]["phone"]["state"] == "ok"
        # the topic is a secret: not shown
        assert st["targets"]["phone#1"]["url"] == f"ntfy://127.0.0.1:{ntfy.port}/…"
    assert len(ntfy.received) == 2
    # Its state (sessions, commands waiting, outboxes) is the user's only.
    assert (tmp_path / "notify.json").stat().st_mode & 0o077 == 0


def test_a_failing_target_is_retried_and_holds_back_no_other(tmp_path: Path,
                                                              ntfy: NtfyServer) -> None:
    with SlackWebhook() as slack:
        write_rules(tmp_path, rule("both", [ntfy.url("t"), slack.url("hooktoken")],
                                   on='["turn-failed"]'))
        ntfy.fail_next(2, status=503)
        with Daemon(tmp_path, MPMD_VIEWER_PORT="0"):
            hook(tmp_path, "StopFailure", error="overloaded_error")
            (posted,) = slack.wait_for(1)
            assert "the turn failed: overloaded_error" in posted.text
            (published,) = ntfy.wait_for(1, timeout=30)  # after two refusals, with backoff
            assert "overloaded_error" in published.message
            wait_until(lambda: target(tmp_path, "both#1").get("sent") == 1,
                       "ntfy's delivery counted")
            failed = target(tmp_path, "both#1")
            assert failed["failures"] == 2 and failed["state"] == "ok"
            metrics = _metrics(tmp_path)
            assert 'mpmd_notify_failures_total{target="both#1"} 2.0' in metrics
            assert 'mpmd_notify_sent_total{target="both#2"} 1.0' in metrics
        assert len(ntfy.rejected) == 2


def test_a_target_down_shows_in_status_and_doctor(tmp_path: Path, ntfy: NtfyServer) -> None:
    write_rules(tmp_path, rule("down", [ntfy.url("t")], on='["ended"]'))
    ntfy.fail_next(1000, status=500)
    with Daemon(tmp_path, MPMD_VIEWER_PORT="0"):
        hook(tmp_path, "SessionEnd", reason="logout")
        wait_until(lambda: target(tmp_path, "down#1").get("failures", 0) >= 1,
                   "a failed attempt")
        down = target(tmp_path, "down#1")
        assert down["state"] == "retrying" and down["queued"] == 1
        assert down["last_error"]
        doctor = mpmd_cli(tmp_path, "doctor", "--json")
        check = next(c for c in json.loads(doctor.stdout)["checks"]
                     if c["name"] == "notifications")
        assert check["level"] == "WARN" and "down#1" in check["message"]


def test_nothing_is_lost_or_repeated_when_the_notifier_is_killed(tmp_path: Path,
                                                                 ntfy: NtfyServer) -> None:
    write_rules(tmp_path, rule("phone", [ntfy.url("t")], on='["needs-you", "ended"]'))
    with Daemon(tmp_path, MPMD_VIEWER_PORT="0"):
        permission(tmp_path, "make deploy")
        ntfy.wait_for(1)
        wait_until(lambda: target(tmp_path, "phone#1").get("sent") == 1,
                   "the first one counted")
        pid = notify_status(tmp_path)["worker_pid"]
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: notify_status(tmp_path).get("worker_pid") not in (None, pid),
                   "a new notifier")
        hook(tmp_path, "SessionEnd", reason="logout")  # ends the wait too: a follow-up
        received = ntfy.wait_for(2)
        # Found in one pass, told in one message.
        assert [m.title for m in received] == ["shop: needs you",
                                               "mpmd: 1 resolved, 1 sessions ended"]
        assert "no longer needs you: the session ended" in received[1].message
    # And a daemon restart repeats nothing either.
    with Daemon(tmp_path, MPMD_VIEWER_PORT="0"):
        wait_until(lambda: notify_status(tmp_path)["backlog"] == 0, "the notifier caught up")
    assert len(ntfy.received) == 2


def test_a_bad_rule_is_shown_and_the_good_ones_work(tmp_path: Path, ntfy: NtfyServer) -> None:
    write_rules(tmp_path, rule("good", [ntfy.url("t")], on='["ended"]'),
                '[[notify]]\nname = "bad"\non = ["sometimes"]\ntargets = ["ntfy://x/y"]\n')
    with Daemon(tmp_path, MPMD_VIEWER_PORT="0"):
        hook(tmp_path, "SessionEnd", reason="logout")
        ntfy.wait_for(1)
        rules = notify_status(tmp_path)["rules"]
        assert rules["good"]["state"] == "ok"
        assert rules["bad"]["state"] == "error" and "sometimes" in rules["bad"]["error"]
        text = mpmd_cli(tmp_path, "status").stdout
        assert "notifications" in text and "in error: bad" in text


def test_doctor_fails_while_others_can_read_the_targets(tmp_path: Path) -> None:
    write_rules(tmp_path, rule("phone", ["ntfy://ntfy.sh/secret-topic"]),
                '[[notify]]\nname = "odd"\ntargets = ["nosuchscheme://x"]\n')
    (tmp_path / "config.toml").chmod(0o644)
    doctor = mpmd_cli(tmp_path, "doctor", "--json")
    check = next(c for c in json.loads(doctor.stdout)["checks"]
                 if c["name"] == "notifications")
    assert check["level"] == "FAIL"
    assert "others can read it: chmod 600 it" in check["message"]
    assert "odd#1: apprise does not understand nosuchscheme://x/…" in check["message"]
    assert "secret-topic" not in doctor.stdout


def test_no_rules_no_notifier(tmp_path: Path) -> None:
    with Daemon(tmp_path, MPMD_VIEWER_PORT="0"):
        assert status(tmp_path)["notify"] is None
        assert "mpmd notify init" in mpmd_cli(tmp_path, "status").stdout


def test_notify_init_writes_rules_that_work_and_test_reports_each_target(
        tmp_path: Path, ntfy: NtfyServer) -> None:
    with SlackWebhook() as slack:
        out = mpmd_cli(tmp_path, "notify", "init", "--target", ntfy.url("t"),
                       "--target", slack.url("tok"))
        assert out.returncode == 0, out.stderr
        config = tmp_path / "config.toml"
        assert config.stat().st_mode & 0o077 == 0  # target URLs are secrets
        assert "needs-you" in config.read_text()
        again = mpmd_cli(tmp_path, "notify", "init")
        assert again.returncode != 0 and "already" in again.stderr
        slack.fail_next(10, status=404)
        out = mpmd_cli(tmp_path, "notify", "test", "--rule", "finished")
        assert out.returncode == 1
        lines = out.stdout.splitlines()
        assert lines[0] == f"finished#1 ntfy://127.0.0.1:{ntfy.port}/…: sent"
        assert lines[1].startswith("finished#2 mmost://127.0.0.1") and "FAILED" in lines[1]
        (test,) = ntfy.wait_for(1)
        assert test.title == "mpmd: test notification" and "finished" in test.message


def test_a_desktop_notification_reaches_the_session_bus(tmp_path: Path) -> None:
    require_desktop()
    with DesktopBus() as desktop:
        write_rules(tmp_path, rule("desk", ["dbus://"], on='["needs-you"]'))
        with Daemon(tmp_path, MPMD_VIEWER_PORT="0", **desktop.env):
            permission(tmp_path, "rm -rf build")
            (shown,) = desktop.wait_for(1)
            assert shown["summary"] == "shop: needs you"
            assert "Bash: rm -rf build" in shown["body"]


def _metrics(home: Path) -> str:
    st = status(home)
    base = st["viewer_url"].split("#")[0]
    token = st["viewer_url"].split("#token=")[1]
    request = urllib.request.Request(base + "metrics",
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.read().decode()
    except urllib.error.HTTPError as exc:  # pragma: no cover - shown on failure
        raise AssertionError(exc.read()) from exc


def test_a_damaged_state_file_starts_at_the_journals_end(tmp_path: Path,
                                                         ntfy: NtfyServer) -> None:
    write_rules(tmp_path, rule("phone", [ntfy.url("t")], on='["ended"]'))
    with Daemon(tmp_path, MPMD_VIEWER_PORT="0"):
        hook(tmp_path, "SessionEnd", reason="first")
        ntfy.wait_for(1)
        wait_until(lambda: notify_status(tmp_path)["backlog"] == 0, "the notifier caught up")
    (tmp_path / "notify.json").write_bytes(b'{"cursor": "torn')
    with Daemon(tmp_path, MPMD_VIEWER_PORT="0"):
        hook(tmp_path, "SessionEnd", reason="second")
        first, second = ntfy.wait_for(2)
        assert "(first)" in first.message and "(second)" in second.message
    assert len(ntfy.received) == 2  # the first not sent again

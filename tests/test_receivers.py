"""apprise reaches the loopback receivers of tests/receivers.py, and they record what it sent:
ntfy (title, body, click, tags, priority, action buttons; failures, stalls), a Slack-style
incoming webhook (through apprise's Mattermost plugin), and dunst on a private D-Bus
session bus. The parser of ntfy's action format is checked on its own."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import apprise
import pytest

from tests.receivers import (
    MAX_BODY,
    ActionsInvalid,
    DesktopBus,
    NtfyServer,
    SlackWebhook,
    parse_actions,
    require_desktop,
)

# A signed action link's token as mpmd.serve.links makes them: base64url, a dot, base64url.
TOKEN = "AQAAAAAAAAAqx-_Z9m3Kd2LpQ0sT1uVwYb4e8fJhNcRiGkOaXyEzWq.Tn7-Ym_p2Lx9QrVs4aBcDe"
APPROVE = f"https://mpmd.example/act/{TOKEN}"
DENY = f"https://mpmd.example/act/{TOKEN[::-1]}"
CLICK = "https://mpmd.example/s/3f2a?from=ntfy&seq=42#event-42"


def notify(url: str, body: str, title: str = "") -> bool:
    """One notification through a fresh Apprise: apprise waits 5.5 s between two requests
    of one ntfy plugin instance (its request_rate_per_sec)."""
    sender = apprise.Apprise()
    assert sender.add(url), f"apprise refused {url}"
    return bool(sender.notify(title=title, body=body))


@pytest.mark.integration
def test_ntfy_receives_title_body_click_tags_priority_and_actions() -> None:
    actions = (f"http, Approve, {APPROVE}, method=POST, clear=true; "
               f"http, Deny, {DENY}, method=POST, clear=true")
    with NtfyServer() as ntfy:
        # url() encodes each value so that its &, ; and # reach apprise (see its docstring).
        url = ntfy.url("mpmd-needs-you", click=CLICK, actions=actions, tags="warning,robot",
                       priority="high")
        assert notify(url, "Bash: rm -rf build", title="Claude needs you")
        [got] = ntfy.wait_for(1)
    assert got.topic == "mpmd-needs-you"
    assert got.title == "Claude needs you"
    assert got.message == "Bash: rm -rf build"
    assert got.click == CLICK
    assert got.tags == ["robot", "warning"]  # apprise sorts (and dedupes) the tags
    assert got.priority == 4
    assert got.actions == [
        {"action": "http", "label": "Approve", "url": APPROVE, "method": "POST", "clear": "true"},
        {"action": "http", "label": "Deny", "url": DENY, "method": "POST", "clear": "true"},
    ]
    # apprise's form: the JSON message to /, everything else in headers.
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-priority"] == "high"
    assert ntfy.rejected == []


@pytest.mark.integration
def test_ntfy_failure_then_success() -> None:
    with NtfyServer() as ntfy:
        ntfy.fail_next(1, status=503)
        assert not notify(ntfy.url("mpmd"), "first")
        assert [(r.status, r.reason) for r in ntfy.rejected] == [(503, "injected failure")]
        assert ntfy.received == []
        assert notify(ntfy.url("mpmd"), "second")
        assert [p.message for p in ntfy.wait_for(1)] == ["second"]


@pytest.mark.integration
def test_ntfy_answering_500_fails_apprise_cleanly_and_serves_on() -> None:
    with NtfyServer() as ntfy:
        ntfy.fail_next(1, status=500)
        assert not notify(ntfy.url("mpmd"), "lost")
        assert [r.status for r in ntfy.rejected] == [500]
        assert notify(ntfy.url("mpmd"), "kept")
        assert [p.message for p in ntfy.wait_for(1)] == ["kept"]


@pytest.mark.integration
def test_ntfy_that_never_answers_times_apprise_out() -> None:
    with NtfyServer() as ntfy:
        ntfy.stall_next(1)
        assert not notify(ntfy.url("mpmd") + "?rto=0.5", "unanswered")  # read timeout 0.5 s
        assert [(r.status, r.reason) for r in ntfy.rejected] == [(0, "stalled")]
        assert ntfy.received == []


@pytest.mark.integration
def test_ntfy_too_long_a_message_arrives_as_a_file() -> None:
    """apprise posts a message whose JSON exceeds 8000 bytes as a file to /<topic>."""
    body = "x" * 9000
    with NtfyServer() as ntfy:
        assert notify(ntfy.url("mpmd"), body, title="Long")
        [got] = ntfy.wait_for(1)
    assert got.topic == "mpmd"
    assert got.attachment == f"Long\n{body}".encode()
    assert got.filename and got.message == f"You received a file: {got.filename}"


@pytest.mark.integration
def test_ntfy_plain_publish_with_headers() -> None:
    with NtfyServer() as ntfy:
        request = urllib.request.Request(
            f"http://127.0.0.1:{ntfy.port}/alerts", data="disk full – 100 %".encode(),
            method="PUT", headers={
                "Title": "Backup", "Tags": "warning, floppy_disk", "Priority": "5",
                "Actions": 'view, "Open, now", https://x.example/a; '
                           'http, Retry, https://x.example/r, headers.Authorization=Bearer t',
                "X-Markdown": "yes"})
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.load(response)
        [got] = ntfy.wait_for(1)
    assert (answer["event"], answer["topic"], answer["id"]) == ("message", "alerts", got.id)
    assert (got.title, got.message, got.tags, got.priority, got.markdown) == (
        "Backup", "disk full – 100 %", ["warning", "floppy_disk"], 5, True)
    assert got.actions == [
        {"action": "view", "label": "Open, now", "url": "https://x.example/a"},
        {"action": "http", "label": "Retry", "url": "https://x.example/r",
         "headers": {"Authorization": "Bearer t"}},
    ]


@pytest.mark.integration
def test_ntfy_refuses_what_ntfy_refuses() -> None:
    def publish(path: str, body: bytes, **headers: str) -> int:
        request = urllib.request.Request(f"http://127.0.0.1:{ntfy.port}{path}", data=body,
                                         headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as e:
            return e.code

    with NtfyServer() as ntfy:
        assert publish("/", b"not json") == 400
        assert publish("/", json.dumps({"topic": "no/slash", "message": "m"}).encode()) == 400
        assert publish("/t", b"m", Priority="7") == 400
        assert publish("/t", b"m", Actions="view, Open") == 400  # no url
        assert ntfy.received == []
        assert len(ntfy.rejected) == 4


@pytest.mark.integration
def test_a_body_over_the_cap_is_refused_unread() -> None:
    with NtfyServer() as ntfy, socket.create_connection(("127.0.0.1", ntfy.port), 10) as sock:
        sock.sendall(f"POST /t HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY + 1}\r\n"
                     f"\r\n".encode())
        assert sock.recv(4096).startswith(b"HTTP/1.0 413 ")
    assert [r.status for r in ntfy.rejected] == [413]


@pytest.mark.integration
def test_slack_style_webhook_receives_the_text() -> None:
    with SlackWebhook() as hook:
        assert notify(hook.url("T0-abc_DEF"), "Bash: rm -rf build", title="Claude needs you")
        [got] = hook.wait_for(1)
    assert got.token == "T0-abc_DEF"
    # Mattermost takes no title: apprise puts it on the text's first line.
    assert got.text == "Claude needs you\r\nBash: rm -rf build"
    assert got.payload["text"] == got.text
    assert got.payload["username"] == "Apprise"
    assert got.headers["content-type"] == "application/json"


@pytest.mark.integration
def test_slack_style_webhook_failure_then_success() -> None:
    with SlackWebhook() as hook:
        hook.fail_next(1, status=500)
        assert not notify(hook.url("tok"), "first")
        assert notify(hook.url("tok"), "second")
        assert [p.text for p in hook.wait_for(1)] == ["second"]
        assert [r.status for r in hook.rejected] == [500]


@pytest.mark.integration
def test_desktop_notification_reaches_dunst() -> None:
    require_desktop()
    # apprise runs in a process of its own: dbus-python keeps the first session bus it
    # connects to for the life of the process, so a second test's bus would be out of reach.
    send = ("import apprise, sys\n"
            "a = apprise.Apprise(); a.add('dbus://')\n"
            "sys.exit(0 if a.notify(title=sys.argv[1], body=sys.argv[2]) else 1)\n")
    with DesktopBus() as bus:
        env = {**os.environ, **bus.env}
        for title, body in (("Claude needs you", "Bash: rm -rf build"), ("Done", "mpmd")):
            sent = subprocess.run([sys.executable, "-c", send, title, body], env=env,
                                  capture_output=True, text=True, timeout=60)
            assert sent.returncode == 0, sent.stderr
        got = bus.wait_for(2)
    assert [(n["summary"], n["body"], n["appname"]) for n in got] == [
        ("Claude needs you", "Bash: rm -rf build", "Apprise"), ("Done", "mpmd", "Apprise")]


# ---- ntfy's action format, parsed as ntfy does (pure)

def test_parse_actions_simple_format() -> None:
    assert parse_actions(f"http, Approve, {APPROVE}, method=POST, clear=true; "
                         "view, Open, https://x/") == [
        {"action": "http", "label": "Approve", "url": APPROVE, "method": "POST",
         "clear": "true"},
        {"action": "view", "label": "Open", "url": "https://x/"},
    ]


def test_parse_actions_quotes_keys_and_json() -> None:
    assert parse_actions('broadcast, "Say \\"hi\\"; ok", extras.cmd=go, clear = yes') == [
        {"action": "broadcast", "label": 'Say "hi"; ok', "extras": {"cmd": "go"},
         "clear": "yes"}]
    assert parse_actions('action=view, url=https://x/?a=b, label=\'a, b\'') == [
        {"action": "view", "url": "https://x/?a=b", "label": "a, b"}]
    assert parse_actions('[{"action": "HTTP", "label": "Go", "url": "https://x/", '
                         '"method": "put"}]') == [
        {"action": "http", "label": "Go", "url": "https://x/", "method": "PUT"}]


@pytest.mark.parametrize("text", [
    "view, A, https://x/; view, B, https://x/; view, C, https://x/; view, D, https://x/",
    "view, Open",
    "http, A, https://x/, colour=red",
    "http, A, https://x/, clear=maybe",
    'view, "unterminated, https://x/',
    "http, A, https://x/, method=GET, body=b",
    "call, A, https://x/",
    "[{]",
])
def test_parse_actions_refuses_what_ntfy_refuses(text: str) -> None:
    with pytest.raises(ActionsInvalid):
        parse_actions(text)

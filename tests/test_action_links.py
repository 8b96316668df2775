"""The Approve and Deny links of a notification (mpmd.serve.links) and the viewer's /act/
route that takes them (docs/viewer.md, "Answering from a phone"): the tokens alone, then a
real daemon holding a real hook's permission request, answered, or not, by plain HTTP
requests written byte for byte (the Host and Origin are the test's to choose)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import struct
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.sync.client import connect

from mpmd.serve import access, links
from mpmd.serve.approvals import Approvals, Waiting
from tests.remote import PERMISSION, decision_of, hook_output, start_hook, write_policy
from tests.utils import (
    Daemon,
    examples,
    journal_events,
    run_hook,
    status,
    wait_until,
)

KEY = bytes(range(32))
EVENT_ID = bytes(range(100, 116))
LATER = 4_000_000_000  # 2096: a link that has not expired
PUBLIC_URL = "https://phone.example.ts.net"
PUBLIC_HOST = "phone.example.ts.net"
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

actions = st.builds(links.Action, seq=st.integers(0, 2**64 - 1),
                    event_id=st.binary(min_size=16, max_size=16),
                    answer=st.sampled_from(links.ANSWERS),
                    expires_at=st.integers(1, 2**40))


# ---- the tokens (pure) ----------------------------------------------------------------------

@given(actions)
@settings(max_examples=examples(300))
def test_a_token_verifies_as_the_action_it_was_signed_for(action: links.Action) -> None:
    token = links.sign(KEY, action)
    assert len(token) <= links.MAX_TOKEN_CHARS
    assert set(token) <= set(B64URL + ".")  # fits in a URL's path as it is
    assert links.verify(KEY, token, action.expires_at - 1) == action
    assert links.verify(KEY, token, action.expires_at - 1) == action


@given(actions, st.data())
@settings(max_examples=examples(500))
def test_a_token_changed_anywhere_is_refused(action: links.Action, data: st.DataObject) -> None:
    token = links.sign(KEY, action)
    i = data.draw(st.integers(0, len(token) - 1), label="position")
    char = data.draw(st.sampled_from(B64URL + ".=+/!~ %").filter(lambda c: c != token[i]),
                     label="character")
    changed = token[:i] + char + token[i + 1:]
    # links.verify decodes base64 leniently: a change it lets through can only be another
    # spelling of the very same bytes, never another action...
    try:
        assert links.verify(KEY, changed, 0) == action
    except links.LinkRefused as exc:
        assert exc.reason == "invalid"
    # ...and the viewer takes none of them: a link is exactly as it was signed.
    with pytest.raises(links.LinkRefused) as refused:
        links.verify(KEY, changed, 0)
    assert refused.value.reason == "invalid"


def test_the_lenient_spellings_the_viewer_refuses() -> None:
    """Where lenient base64 lets a change through: the spare bits of each part's last
    character, and ``+/`` read as ``-_``. links.verify (decoding leniently) may take them for
    the link they resemble, never for another; the viewer refuses them."""
    action = links.Action(7, EVENT_ID, "allow", LATER)
    token = links.sign(KEY, action)
    body, mac = token.split(".")
    spare = B64URL[B64URL.index(body[-1]) ^ 1]  # flips one of the bits that encode nothing
    lenient = [f"{body[:-1]}{spare}.{mac}", f"{body}.{mac[:-1]}{B64URL[B64URL.index(mac[-1]) ^ 1]}"]
    lenient += [token.replace(a, b, 1) for a, b in (("-", "+"), ("_", "/")) if a in token]
    for changed in lenient:
        assert changed != token
        with contextlib.suppress(links.LinkRefused):
            assert links.verify(KEY, changed, 0) == action
        with pytest.raises(links.LinkRefused, match="not an mpmd action link"):
            links.verify(KEY, changed, 0)
    assert links.verify(KEY, token, 0) == action


@given(actions)
@settings(max_examples=examples(100))
def test_a_token_of_another_key_is_refused(action: links.Action) -> None:
    token = links.sign(os.urandom(32), action)
    with pytest.raises(links.LinkRefused) as refused:
        links.verify(KEY, token, 0)
    assert refused.value.reason == "invalid"


def test_a_token_expires_at_its_own_time() -> None:
    token = links.sign(KEY, links.Action(1, EVENT_ID, "deny", 1000))
    assert links.verify(KEY, token, 999.9).answer == "deny"
    for now in (1000, 1000.1, time.time()):
        with pytest.raises(links.LinkRefused) as refused:
            links.verify(KEY, token, now)
        assert refused.value.reason == "expired"


def _b64(data: bytes) -> str:
    return links._b64(data)


def _signed(body: bytes) -> str:
    """Any body, with a good MAC: what only the key's holder can make."""
    return f"{_b64(body)}.{_b64(links._mac(KEY, body))}"


def test_well_signed_bodies_of_the_wrong_shape_are_refused() -> None:
    good = struct.pack(">BQ16sBQ", links.VERSION, 5, EVENT_ID, 0, LATER)
    assert links.verify(KEY, _signed(good), 0).seq == 5
    for body in (good[:-1], good + b"\0", b"", good[:17],
                 struct.pack(">BQ16sBQ", links.VERSION + 1, 5, EVENT_ID, 0, LATER),
                 struct.pack(">BQ16sBQ", links.VERSION, 5, EVENT_ID, 2, LATER)):
        with pytest.raises(links.LinkRefused) as refused:
            links.verify(KEY, _signed(body), 0)
        assert refused.value.reason == "invalid", body


def test_sign_refuses_what_is_no_action() -> None:
    with pytest.raises(ValueError, match="answer"):
        links.sign(KEY, links.Action(1, EVENT_ID, "always", LATER))
    with pytest.raises(ValueError, match="16 bytes"):
        links.sign(KEY, links.Action(1, EVENT_ID[:8], "allow", LATER))


@given(st.text(max_size=400))
@settings(max_examples=examples(500))
def test_garbage_is_refused_as_invalid(text: str) -> None:
    with pytest.raises(links.LinkRefused) as refused:
        links.verify(KEY, text, 0)
    assert refused.value.reason == "invalid"


def test_the_used_links_remembered_are_bounded() -> None:
    used = links.Used(kept=3)
    actions = [links.Action(i, EVENT_ID, "allow", LATER) for i in range(5)]
    for a in actions:
        used.add(a)
    assert len(used) == 3
    assert [a in used for a in actions] == [False, False, True, True, True]
    # Either answer of a request counts as its use.
    assert links.Action(4, EVENT_ID, "deny", LATER) in used
    assert links.Action(4, bytes(16), "allow", LATER) not in used


def test_a_token_longer_than_the_bound_is_refused_unread() -> None:
    token = links.sign(KEY, links.Action(2**64 - 1, EVENT_ID, "allow", 2**63))
    assert len(token) <= links.MAX_TOKEN_CHARS
    padded = token + "A" * (links.MAX_TOKEN_CHARS + 1 - len(token))
    with pytest.raises(links.LinkRefused, match="not an mpmd action link"):
        links.verify(KEY, padded, 0)


def test_the_key_is_made_once_owner_only(tmp_path: Path) -> None:
    key = links.load_or_create_key(tmp_path)
    assert len(key) >= 32
    assert (tmp_path / links.KEY_FILE_NAME).stat().st_mode & 0o777 == 0o600
    assert links.load_or_create_key(tmp_path) == key


# ---- who may reach /act/ (pure) ---------------------------------------------------------------

def test_the_public_host_and_its_origins_are_accepted_only_when_given() -> None:
    check = access.check_host_origin
    assert check(7710, PUBLIC_HOST, None) == access.REFUSED_HOST
    assert check(7710, PUBLIC_HOST, None, PUBLIC_HOST) is None
    assert check(7710, "127.0.0.1:7710", None, PUBLIC_HOST) is None
    for origin in (f"https://{PUBLIC_HOST}", f"http://{PUBLIC_HOST}", "http://localhost:7710"):
        assert check(7710, PUBLIC_HOST, origin, PUBLIC_HOST) is None, origin
    for origin in ("https://evil.example", "null", f"https://{PUBLIC_HOST}.evil.example",
                   f"https://{PUBLIC_HOST}:8443"):
        assert check(7710, PUBLIC_HOST, origin, PUBLIC_HOST) == access.REFUSED_ORIGIN, origin
    for host in (f"{PUBLIC_HOST}:443", "evil.example", f"x.{PUBLIC_HOST}", ""):
        assert check(7710, host, None, PUBLIC_HOST) == access.REFUSED_HOST, host


# ---- holding without a viewer (the Approvals, over a real socket pair) ------------------------

def _waiting(sock: socket.socket, seq: int = 1) -> Waiting:
    return Waiting(seq=seq, event_id=EVENT_ID, session_id="s", tool_name="Bash", detail="ls",
                   rule=None, expires_at_ms=0, sock=sock)


@pytest.mark.parametrize("hold_without_viewer", [False, True])
def test_with_no_viewer_a_request_is_held_only_when_asked(hold_without_viewer: bool) -> None:
    journaled: list[tuple[str, str]] = []
    viewers = [1]

    async def main() -> None:
        approvals = Approvals(Counter(), lambda w, b, m, by, who: journaled.append((b, by)),
                              lambda: None, lambda: viewers[0], grace_s=0,
                              hold_without_viewer=hold_without_viewer)
        daemon_end, hook_end = socket.socketpair()
        with hook_end:
            approvals.hold(_waiting(daemon_end, 1), 60)  # a viewer is open: held
            viewers[0] = 0
            approvals.viewers_changed()  # the last one closed; its grace is 0 s
            for _ in range(3):
                await asyncio.sleep(0)  # the loop runs what is due now: nothing is waited
            one, two = socket.socketpair()
            with two:
                approvals.hold(_waiting(one, 2), 60)  # none open
                if hold_without_viewer:
                    assert sorted(approvals.waiting) == [1, 2] and journaled == []
                    assert approvals.answer(2, "deny", "test", answered_by="link") is None
                    assert approvals.answer(2, "deny", "test", answered_by="link") is not None
                    assert journaled == [("deny", "link")]
                    assert two.recv(4096)  # the hook got its answer
                    approvals.close_all()
                else:
                    assert approvals.waiting == {}
                    assert journaled == [("none", "no-viewer")] * 2
            assert hook_end.recv(4096)  # an answer was written to the first hook either way

    asyncio.run(main())


# ---- a real daemon ---------------------------------------------------------------------------

class Act:
    """Raw HTTP/1.1 requests to a daemon's viewer, exactly as written."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = status(home)["viewer_port"]
        self.loopback = f"127.0.0.1:{self.port}"
        wait_until(lambda: (home / links.KEY_FILE_NAME).exists(), "the link key made")
        self.key = links.load_or_create_key(home)

    def send(self, method: str, path: str, host: str | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host or self.loopback}"]
        if method == "POST":
            lines.append("Content-Length: 0")  # what a browser's empty form and ntfy send
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            data = b""
            while chunk := sock.recv(65536):  # the viewer closes after each answer
                data += chunk
        head, sep, body = data.partition(b"\r\n\r\n")
        assert sep, f"no answer to {method} {path}: {data!r}"
        status_line, *fields = head.decode().split("\r\n")
        named = {k.lower(): v.strip() for k, _, v in (f.partition(":") for f in fields)}
        return int(status_line.split(" ")[1]), named, body

    def link(self, seq: int, event_id: bytes, answer: str, expires_at: int = LATER,
             key: bytes | None = None) -> str:
        token = links.sign(key or self.key, links.Action(seq, event_id, answer, expires_at))
        return f"/act/{token}"

    def counters(self) -> dict[str, int]:
        return status(self.home)["counters"]


def held_request(home: Path, n: int = 1) -> tuple[int, bytes]:
    """(seq, event id) of the newest of ``n`` requests held, once the daemon holds them and
    the journal has it."""
    wait_until(lambda: status(home)["remote_waiting"] == n, f"{n} request(s) held")
    asked: list[dict] = []

    def journaled() -> bool:
        asked[:] = [e for e in journal_events(home) if e["event_type"] == "PermissionRequest"]
        return len(asked) >= n

    wait_until(journaled, "the request journaled")
    return asked[-1]["seq"], bytes.fromhex(asked[-1]["id"])


def remote_answers(home: Path) -> list[dict]:
    return [e["payload"] for e in journal_events(home) if e["event_type"] == "RemoteAnswer"]


@contextlib.contextmanager
def viewer_open(home: Path) -> Iterator[None]:
    """A viewer connected for the block, so that requests are held for it (reading nothing:
    its frames queue in the client, unbounded, so the daemon never waits on it)."""
    with connect(status(home)["ws_url"], compression=None, proxy=None, max_size=None,
                 max_queue=None) as ws:
        assert json.loads(ws.recv(timeout=30))["type"] == "hello"  # counted as open
        yield


def still_waiting(home: Path, hook) -> bool:  # noqa: ANN001
    return hook.poll() is None and status(home)["remote_waiting"] == 1


def test_a_link_answers_its_request_once(home: Path) -> None:
    write_policy(home)
    with Daemon(home, MPMD_VIEWER_PUBLIC_URL=PUBLIC_URL), viewer_open(home):
        act = Act(home)
        hook = start_hook(home)
        seq, event_id = held_request(home)
        allow, deny = act.link(seq, event_id, "allow"), act.link(seq, event_id, "deny")

        # GET (a chat app's preview, a person's tap) shows what would be answered: no more.
        code, fields, page = act.send("GET", allow)
        assert code == 200 and fields["content-type"].startswith("text/html")
        text = page.decode()
        for shown in ("Approve this request?", "Bash", "rm -rf node_modules",
                      "bash-from-the-viewer", '<form method="post">',
                      "<button type=\"submit\">Approve</button>"):
            assert shown in text, shown
        assert "<script" not in text
        assert "form-action 'self'" in fields["content-security-policy"]
        assert "script-src 'self'" in fields["content-security-policy"]
        assert fields["referrer-policy"] == "same-origin"
        head_code, head_fields, head_body = act.send("HEAD", deny)
        assert (head_code, head_body) == (200, b"") and int(head_fields["content-length"]) > 0
        assert still_waiting(home, hook)

        # POST answers; the hook prints it, as it would a viewer's answer.
        code, _, page = act.send("POST", allow)
        assert code == 200 and b"Approved: Claude Code goes on" in page
        assert hook_output(hook) == decision_of("allow", "approved with an mpmd link")

        # Used: that link again, and the other answer's, are gone for good.
        for method, path in (("POST", allow), ("POST", deny), ("GET", allow), ("GET", deny)):
            code, _, page = act.send(method, path)
            assert code == 410 and b"used already" in page, (method, path)
        wait_until(lambda: remote_answers(home), "the answer journaled")
        counters = act.counters()
    (answer,) = remote_answers(home)
    assert answer["behavior"] == "allow" and answer["answer_to"] == seq
    assert answer["answered_by"] == "link"
    assert answer["answered_from"] == f"link via {act.loopback}"
    assert counters["link_actions_taken"] == 1 and counters["link_refused_used"] == 4
    assert "Traceback" not in (home / "daemon-test.log").read_text()


def test_links_that_are_not_good_answer_nothing(home: Path) -> None:
    write_policy(home)
    with Daemon(home), viewer_open(home):
        act = Act(home)
        hook = start_hook(home)
        seq, event_id = held_request(home)
        allow = act.link(seq, event_id, "allow")
        token = allow.removeprefix("/act/")
        last = token[-2]  # not the last character: its spare bits may encode nothing
        altered = f"/act/{token[:-2]}{'A' if last != 'A' else 'B'}{token[-1]}"
        refused = {
            "altered": (altered, 403, b"altered"),
            "another key": (act.link(seq, event_id, "allow", key=os.urandom(32)), 403,
                            b"altered, or is not for this mpmd"),
            "garbage": ("/act/not-a-link", 403, b"not an mpmd action link"),
            "expired": (act.link(seq, event_id, "allow", expires_at=int(time.time()) - 1),
                        410, b"expired"),
            "another event": (act.link(seq, os.urandom(16), "allow"), 410,
                              b"no longer waiting"),
            "another seq": (act.link(seq + 1000, event_id, "allow"), 410, b"no longer waiting"),
        }
        for what, (path, want, words) in refused.items():
            for method in ("GET", "POST"):
                code, fields, page = act.send(method, path)
                assert code == want and words in page, (what, method, code, page)
                assert fields["content-type"].startswith("text/html")
        assert act.send("GET", "/act/")[0] == 403  # no token at all
        assert still_waiting(home, hook)
        counters = act.counters()
        assert counters["link_refused_invalid"] == 7
        assert counters["link_refused_expired"] == 2 and counters["link_refused_gone"] == 4
        assert "link_actions_taken" not in counters

        # The good one still works, then the request is over for every link of it.
        assert act.send("POST", act.link(seq, event_id, "deny"))[0] == 200
        assert hook_output(hook) == decision_of("deny", "denied with an mpmd link")
        assert act.send("POST", allow)[0] == 410
        wait_until(lambda: remote_answers(home), "the answer journaled")
    assert [a["behavior"] for a in remote_answers(home)] == ["deny"]
    assert "Traceback" not in (home / "daemon-test.log").read_text()


def test_the_public_host_reaches_the_links_and_nothing_else(home: Path) -> None:
    write_policy(home)
    with Daemon(home, MPMD_VIEWER_PUBLIC_URL=PUBLIC_URL), viewer_open(home):
        act = Act(home)
        token = (home / "viewer-token").read_text().strip()
        hook = start_hook(home)
        seq, event_id = held_request(home)
        allow = act.link(seq, event_id, "allow")
        for path in ("/", "/app.js", f"/api/status?token={token}",
                     f"/api/sessions?token={token}", f"/metrics?token={token}",
                     f"/ws?token={token}"):
            assert act.send("GET", path, host=PUBLIC_HOST)[0] == 403, path
        assert act.send("GET", allow, host="other.example.ts.net")[0] == 403
        assert act.send("GET", allow, host=f"{PUBLIC_HOST}:8443")[0] == 403
        # POST, and methods past GET and HEAD, are for /act/ only.
        code, fields, _ = act.send("POST", "/")
        assert code == 405 and fields["allow"] == "GET, HEAD"
        code, fields, _ = act.send("PUT", allow)
        assert code == 405 and fields["allow"] == "GET, HEAD, POST"
        # A foreign page posting a link it got hold of: refused by its Origin.
        for origin in ("https://evil.example", "null", f"http://127.0.0.1:{act.port + 1}"):
            assert act.send("POST", allow, headers={"Origin": origin})[0] == 403, origin
        assert still_waiting(home, hook)

        code, _, page = act.send("GET", allow, host=PUBLIC_HOST)
        assert code == 200 and b"Approve this request?" in page
        code, _, page = act.send("POST", allow, host=PUBLIC_HOST,
                                 headers={"Origin": f"https://{PUBLIC_HOST}"})
        assert code == 200 and b"Approved" in page
        assert hook_output(hook) == decision_of("allow", "approved with an mpmd link")
        wait_until(lambda: remote_answers(home), "the answer journaled")
    assert remote_answers(home)[0]["answered_from"] == f"link via {PUBLIC_HOST}"


NOTIFY_RULE = """
[[notify]]
name = "phone"
on = ["needs-you"]
targets = ["json://127.0.0.1:{port}/"]
"""


def closed_port() -> int:
    """A loopback port nothing listens on: the notifier's target, refused at once (this test
    is about the viewer, not about what the notifier sends)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_with_links_wanted_a_request_waits_without_a_viewer(home: Path) -> None:
    write_policy(home)
    (home / "config.toml").write_text(NOTIFY_RULE.format(port=closed_port()))
    with Daemon(home, MPMD_VIEWER_PUBLIC_URL=PUBLIC_URL):
        act = Act(home)
        assert status(home)["viewer_clients"] == 0
        hook = start_hook(home)
        seq, event_id = held_request(home)  # held, though no viewer is open
        assert still_waiting(home, hook)
        code, _, _ = act.send("POST", act.link(seq, event_id, "allow"), host=PUBLIC_HOST)
        assert code == 200
        assert hook_output(hook) == decision_of("allow", "approved with an mpmd link")
        wait_until(lambda: remote_answers(home), "the answer journaled")
    (answer,) = remote_answers(home)
    assert (answer["behavior"], answer["answered_by"]) == ("allow", "link")


def test_a_person_approves_from_the_page_in_a_browser(home: Path, page) -> None:  # noqa: ANN001
    """The confirm page's form, posted by a real browser: its Content-Security-Policy lets it
    post (the page fixture fails on any violation), and its POST carries an Origin the viewer
    takes (a browser sends ``Origin: null`` from a no-referrer page)."""
    from playwright.sync_api import expect

    write_policy(home)
    with Daemon(home), viewer_open(home):
        act = Act(home)
        hook = start_hook(home)
        seq, event_id = held_request(home)
        page.goto(f"http://{act.loopback}{act.link(seq, event_id, 'allow')}")
        expect(page.locator("h1")).to_have_text("Approve this request?")
        assert still_waiting(home, hook)
        page.get_by_role("button", name="Approve").click()
        expect(page.locator("h1")).to_have_text("Approved: Claude Code goes on")
        assert hook_output(hook) == decision_of("allow", "approved with an mpmd link")
        page.goto(page.url)  # the link again, used
        expect(page.locator("h1")).to_have_text("Link refused")
        expect(page.locator("body")).to_contain_text("used already")


def test_a_link_to_a_session_opens_the_page_on_it(home: Path, page) -> None:  # noqa: ANN001
    """A notification's other link, ``<viewer>/#session=<id>``: the Activity feed shows that
    session (its row selected, the Session filter on it), next to the token or without."""
    from playwright.sync_api import expect

    one, two = "aaaaaaaa-one", "bbbbbbbb-two"
    with Daemon(home):
        for sid in (one, two, one):
            payload = dict(PERMISSION, session_id=sid, hook_event_name="UserPromptSubmit",
                           prompt=f"hello from {sid}")
            assert run_hook(home, json.dumps(payload).encode()).returncode == 0
        wait_until(lambda: len(journal_events(home)) == 3, "the events journaled")
        url = status(home)["viewer_url"]
        for address in (f"{url}&session={two}", url.replace("#token=", f"#session={one}&token=")):
            want = two if two in address else one
            page.goto(address)
            expect(page.locator('[data-testid="filter-session"]')).to_have_value(want)
            row = page.locator(f'[data-testid="session-row"][data-session-id="{want}"]')
            expect(row).to_have_attribute("aria-selected", "true")
            lines = page.locator('[data-testid="feed-line"]')
            expect(lines).to_have_count(2 if want == one else 1)
            assert "#token=" not in page.url  # the token still leaves the address bar
        page.goto(url.split("#")[0] + f"#session={two}")  # the token kept from before
        expect(page.locator('[data-testid="filter-session"]')).to_have_value(two)
        page.evaluate(f"location.hash = 'session={one}'")  # a link followed in this tab
        expect(page.locator('[data-testid="filter-session"]')).to_have_value(one)

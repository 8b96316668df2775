"""The viewer page in a real browser against a real daemon fed by real hook processes.

Chromium (Debian's /usr/bin/chromium) is driven by Playwright; every wait on the page is one
of Playwright's auto-waiting assertions (the only other wait polls the journal, another
process's doing). The page runs under the daemon's Content-Security-Policy, and a page error
or a CSP violation fails the test.

MPMD_SCREENSHOTS=1 makes the screenshot test write docs/screenshots/*.png (otherwise it
writes them to a temporary folder and only checks that every view renders).
"""

from __future__ import annotations

import copy
import json
import re
import socket
from datetime import datetime
from pathlib import Path

from playwright.sync_api import Page, expect

from tests import remote
from tests.browser import (
    feed,
    open_viewer,
    other_session,
    screenshot_folder,
    themed_pages,
    viewer_url,
)
from tests.utils import (
    Daemon,
    fixture_payloads,
    journal_events,
    send_events,
    wait_until,
)

# The fixture payloads by position (tests/fixtures/claude-code-hooks.jsonl).
FIX = [json.loads(p) for p in fixture_payloads()]
SESSION_START, PRE_BASH, PERMISSION, PERMISSION_NOTE, BASH_FAILED = 0, 6, 7, 8, 9
SUBAGENT_STOP, STOP_FAILURE, SESSION_END = 18, 36, 37
SHOP = FIX[0]["session_id"]


# ---------------------------------------------------------------- helpers


def wait_for_journal(home: Path, count: int) -> list[dict]:
    """The journal's events once it holds `count` (a hook's ack means "in the ring"; the
    journal writer follows a moment later)."""
    wait_until(lambda: len(journal_events(home)) >= count, f"{count} events in the journal")
    events = journal_events(home)
    assert [e["seq"] for e in events] == list(range(1, count + 1))
    return events





def summaries(page: Page) -> list[str]:
    return page.locator('[data-testid="feed-line"] .summary').all_inner_texts()


def seqs(page: Page) -> list[int]:
    return [int(s) for s in page.locator('[data-testid="feed-line"]').evaluate_all(
        "els => els.map(e => e.dataset.seq)")]


def matches_search(ev: dict, text: str) -> bool:
    """What the page searches: summary, event type, tool name and the payload's JSON."""
    hay = "\n".join(str(x) for x in (ev.get("summary"), ev.get("event_type"),
                                     ev.get("tool_name")) if x)
    hay += "\n" + json.dumps(ev.get("payload"), ensure_ascii=False, separators=(",", ":"))
    return text.lower() in hay.lower()


# ---------------------------------------------------------------- fixtures







# ---------------------------------------------------------------- tests

def test_token_moves_to_storage_and_out_of_the_address_bar(daemon, home, page, browser):
    url = viewer_url(home)
    token = url.split("#token=", 1)[1]
    open_viewer(page, home)
    assert "#token" not in page.url and token not in page.url
    assert page.evaluate("localStorage.getItem('mpmd-token')") == token
    page.reload()  # no fragment now: the stored token still gets in
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")

    stranger = browser.new_context()
    try:
        bare = stranger.new_page()
        bare.goto(url.split("#", 1)[0])
        expect(bare.locator("#no-token")).to_be_visible()
        expect(bare.locator("#no-token")).to_contain_text("mpmd open")
    finally:
        stranger.close()


def test_feed_shows_backlog_and_live_events_in_human_words(daemon, home, page):
    feed(home, *FIX[:6])  # before the page: the backlog
    open_viewer(page, home)
    lines = page.locator('[data-testid="feed-line"]')
    expect(lines).to_have_count(6)
    feed(home, *FIX[6:SUBAGENT_STOP + 1])  # while it is open: live
    expect(lines).to_have_count(SUBAGENT_STOP + 1)

    stored = wait_for_journal(home, SUBAGENT_STOP + 1)
    expect(page.locator('[data-testid="feed-line"] .summary')).to_have_text(
        [e["summary"] for e in stored])
    assert seqs(page) == [e["seq"] for e in stored]
    read = page.locator('[data-testid="feed-line"][data-seq="5"]')
    expect(read).to_have_attribute("data-event-type", "PreToolUse")
    expect(read.locator(".summary")).to_have_text("Reading src/auth/login.ts")
    expect(page.locator('[data-testid="feed-line"][data-seq="7"] .summary')).to_have_text(
        "Running: npm test -- auth")

    # The subagent's events are grouped under it, named by its type.
    group = page.locator('[data-testid="agent-group"][data-agent-id="agent-abc123"]')
    expect(group).to_have_count(1)
    expect(group).to_contain_text("Explore")
    expect(group.locator('[data-testid="feed-line"]')).to_have_count(2)
    expect(group.locator('[data-testid="feed-line"]').first).to_have_attribute(
        "data-agent-id", "agent-abc123")

    row = page.locator(f'[data-testid="session-row"][data-session-id="{SHOP}"]')
    expect(row.locator(".project")).to_have_text("shop")
    expect(row.locator(".model")).to_have_text("claude-sonnet-5")
    expect(row.locator(".event-count")).to_have_text(str(len(stored)))
    tool_calls = sum(e["event_type"] in ("PostToolUse", "PostToolUseFailure") for e in stored)
    expect(row.locator(".tool-count")).to_have_text(str(tool_calls))
    assert page.evaluate("window.mpmdViewer.lastSeq()") == len(stored)
    assert page.evaluate("window.mpmdViewer.eventCount()") == len(stored)


def test_permission_badge_toast_and_notifications(daemon, home, page):
    # A stand-in Notification API: counts permission requests, and shows each notification
    # as an element the assertions can wait for.
    page.add_init_script("""
      window.__asked = 0;
      window.Notification = class {
        static permission = "default";
        static requestPermission() { window.__asked++; this.permission = "granted";
                                     return Promise.resolve("granted"); }
        constructor(title, opts) {
          const el = document.createElement("output");
          el.className = "test-notification";
          el.dataset.title = title;
          el.textContent = (opts || {}).body || "";
          document.body.append(el);
        }
        close() {}
      };""")
    notes = page.locator("output.test-notification")
    feed(home, FIX[SESSION_START], FIX[PRE_BASH])
    open_viewer(page, home)
    toggle = page.locator('[data-testid="notify-toggle"]')
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "true")
    assert page.evaluate("window.__asked") == 1

    row = page.locator(f'[data-testid="session-row"][data-session-id="{SHOP}"]')
    badge = row.locator('[data-testid="permission-badge"]')
    expect(badge).to_have_count(0)
    feed(home, FIX[PERMISSION], FIX[PERMISSION_NOTE])
    expect(badge).to_contain_text("Bash")
    expect(badge).to_contain_text("rm -rf node_modules")
    expect(row).to_have_attribute("data-health", "needs-you")
    expect(notes).to_have_count(1)  # PermissionRequest and its Notification: one prompt
    expect(notes).to_have_attribute("data-title", "Permission needed · shop")
    expect(notes).to_have_text("Bash rm -rf node_modules")

    # The Bash call fails: the wait is over, and a live failure makes a toast.
    feed(home, FIX[BASH_FAILED])
    expect(badge).to_have_count(0)
    expect(row).to_have_attribute("data-health", "active")
    toast = page.locator('[data-testid="toast"][data-kind="error"]')
    expect(toast).to_have_count(1)
    expect(toast).to_contain_text("Exit code 1")
    expect(toast).to_contain_text("expected 200, got 401")
    expect(toast).to_contain_text("shop")
    expect(notes).to_have_count(2)
    expect(notes.nth(1)).to_have_attribute("data-title", "Bash failed · shop")
    expect(notes.nth(1)).to_contain_text("Exit code 1")
    assert page.evaluate("window.__asked") == 1  # asked once, when turned on


def test_error_toasts_only_for_live_failures(daemon, home, page):
    feed(home, *FIX[:BASH_FAILED + 1])  # a failure in the backlog: no toast for it
    page.clock.install()
    open_viewer(page, home)
    expect(page.locator('[data-testid="feed-line"]')).to_have_count(BASH_FAILED + 1)
    toasts = page.locator('[data-testid="toast"][data-kind="error"]')
    expect(toasts).to_have_count(0)

    failed = copy.deepcopy(FIX[BASH_FAILED])
    failed.update(tool_use_id="toolu_live_1", error="Exit code 137\nKilled (out of memory)")
    feed(home, failed, FIX[STOP_FAILURE])
    expect(toasts).to_have_count(2)
    expect(toasts.nth(0)).to_contain_text("Killed (out of memory)")
    expect(toasts.nth(0)).to_contain_text("shop")
    expect(toasts.nth(1)).to_contain_text("rate_limit")
    expect(toasts.nth(1)).to_contain_text("429 Too Many Requests")
    toasts.nth(0).click()  # click dismisses
    expect(toasts).to_have_count(1)
    page.clock.fast_forward(9_000)  # and they go by themselves after ~8 s
    expect(toasts).to_have_count(0)


def test_health_follows_the_page_clock(daemon, home, page):
    page.clock.install(time=datetime.now())
    feed(home, FIX[SESSION_START], FIX[2])
    open_viewer(page, home)
    row = page.locator(f'[data-testid="session-row"][data-session-id="{SHOP}"]')
    expect(row).to_have_attribute("data-health", "active")
    page.clock.fast_forward("06:00")
    expect(row).to_have_attribute("data-health", "idle")
    expect(row.locator(".duration")).to_have_text(re.compile(r"^6m \d\ds$"))
    page.clock.fast_forward("10:00")
    expect(row).to_have_attribute("data-health", "stale")
    feed(home, FIX[SESSION_END])
    expect(row).to_have_attribute("data-health", "ended")


def test_filters_and_search_narrow_the_feed(daemon, home, page):
    api = "4b2e9a10-7c1d-4f3e-8a6b-2d9c0e1f3a55"
    feed(home, *FIX,
         other_session(FIX[SESSION_START], api, "/home/dev/api", model="claude-opus-5"),
         other_session(FIX[PRE_BASH], api, "/home/dev/api", tool_use_id="toolu_api_1"),
         other_session(FIX[BASH_FAILED], api, "/home/dev/api", tool_use_id="toolu_api_1"))
    stored = wait_for_journal(home, len(FIX) + 3)
    open_viewer(page, home)
    lines = page.locator('[data-testid="feed-line"]')
    expect(lines).to_have_count(len(stored))

    def shown(expected: list[dict]) -> None:
        expect(lines).to_have_count(len(expected))
        assert seqs(page) == [e["seq"] for e in expected]

    page.locator('[data-testid="filter-type"]').select_option("PostToolUse")
    shown([e for e in stored if e["event_type"] == "PostToolUse"])
    page.locator('[data-testid="filter-tool"]').select_option("Bash")
    shown([e for e in stored if e["event_type"] == "PostToolUse" and e.get("tool_name") == "Bash"])
    page.locator('[data-testid="filter-type"]').select_option("")
    shown([e for e in stored if e.get("tool_name") == "Bash"])
    page.locator('[data-testid="filter-tool"]').select_option("")
    shown(stored)

    search = page.locator('[data-testid="search"]')
    search.fill("node_modules")
    shown([e for e in stored if matches_search(e, "node_modules")])
    search.fill("ExpEcted 200")  # case-insensitive, inside the payload only
    shown([e for e in stored if matches_search(e, "expected 200")])
    search.fill("")
    shown(stored)

    # Clicking a session row filters to it; "All sessions" shows everything again.
    page.locator(f'[data-testid="session-row"][data-session-id="{api}"]').click()
    shown([e for e in stored if e["session_id"] == api])
    expect(page.locator('[data-testid="filter-session"]')).to_have_value(api)
    page.locator('[data-testid="session-all"]').click()
    shown(stored)
    page.locator('[data-testid="filter-session"]').select_option(SHOP)
    shown([e for e in stored if e["session_id"] == SHOP])


def test_timeline_spans_zoom_and_tool_stats(daemon, home, page):
    running = {"session_id": SHOP, "cwd": "/home/dev/shop", "hook_event_name": "PreToolUse",
               "tool_name": "Bash", "tool_input": {"command": "npm run dev"},
               "tool_use_id": "toolu_running"}
    feed(home, *FIX[:SESSION_END], running)
    open_viewer(page, home)
    page.locator('[data-testid="tab-timeline"]').click()
    timeline = page.locator('[data-testid="timeline"]')
    spans = timeline.locator('[data-testid="span"]')
    calls = {"toolu_01Read0001", "toolu_01Bash0002", "toolu_01Write0003", "toolu_01Edit0004",
             "toolu_01Bash0005", "toolu_01Mcp0006", "toolu_running"}
    expect(spans).to_have_count(len(calls))
    assert set(spans.evaluate_all("els => els.map(e => e.dataset.toolUseId)")) == calls
    def span(tool_use_id: str):
        return timeline.locator(f'[data-testid="span"][data-tool-use-id="{tool_use_id}"]')

    expect(span("toolu_01Bash0002")).to_have_class(re.compile(r"\bfailed\b"))
    expect(span("toolu_01Read0001")).not_to_have_class(re.compile(r"\bfailed\b"))
    expect(span("toolu_running")).to_have_class(re.compile(r"\bopen\b"))
    expect(timeline.locator(".tick")).not_to_have_count(0)

    # Zoom: buttons and the wheel; reset shows everything again.
    rng = page.locator("#tl-range")
    expect(rng).not_to_contain_text("zoomed")
    page.locator('[data-testid="zoom-in"]').click()
    expect(rng).to_contain_text("zoomed")
    page.locator('[data-testid="zoom-reset"]').click()
    expect(rng).not_to_contain_text("zoomed")
    box = timeline.locator("svg").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + 40)
    page.mouse.wheel(0, -400)
    expect(rng).to_contain_text("zoomed")
    page.locator('[data-testid="zoom-out"]').click()
    page.locator('[data-testid="zoom-reset"]').click()
    expect(rng).not_to_contain_text("zoomed")

    # The filters apply to the timeline too.
    page.locator('[data-testid="filter-tool"]').select_option("Bash")
    expect(spans).to_have_count(3)
    page.locator('[data-testid="filter-tool"]').select_option("")

    page.locator('[data-testid="tab-tools"]').click()
    stats = page.locator('[data-testid="tool-stats"]')
    bash = stats.locator('[data-testid="tool-row"][data-tool="Bash"]')
    expect(bash.locator(".count")).to_have_text("3")  # failed, succeeded, running
    expect(bash.locator(".success-rate")).to_have_text("50%")
    expect(bash.locator(".median")).to_have_text("3.2 s")  # median of 4187 and 2300 ms
    read = stats.locator('[data-testid="tool-row"][data-tool="Read"]')
    expect(read.locator(".count")).to_have_text("1")
    expect(read.locator(".success-rate")).to_have_text("100%")
    expect(read.locator(".median")).to_have_text("3 ms")
    expect(stats.locator('[data-testid="tool-row"][data-tool="mcp__github__create_issue"] .median')
           ).to_have_text("640 ms")
    expect(stats.locator("svg .bar")).not_to_have_count(0)


def test_event_detail_help_and_keyboard(daemon, home, page):
    feed(home, *FIX[:8])
    open_viewer(page, home)
    stored = wait_for_journal(home, 8)
    page.locator('[data-testid="feed-line"][data-seq="7"]').click()
    detail = page.locator('[data-testid="event-detail"]')
    expect(detail).to_be_visible()
    assert json.loads(detail.locator("pre").inner_text()) == stored[6]
    page.keyboard.press("ArrowDown")  # next event
    expect(detail.locator("pre")).to_contain_text('"seq": 8')
    page.keyboard.press("Escape")
    expect(detail).to_be_hidden()

    help_ = page.locator('[data-testid="help"]')
    expect(help_).to_be_hidden()
    page.keyboard.press("?")
    expect(help_).to_be_visible()
    for key in ("Ctrl", "K", "E", "R", "Esc"):
        expect(help_).to_contain_text(key)
    page.keyboard.press("Escape")
    expect(help_).to_be_hidden()

    page.keyboard.press("Control+k")
    expect(page.locator('[data-testid="search"]')).to_be_focused()
    page.keyboard.press("Escape")

    # Ctrl+R clears the view, not the daemon: what comes next still shows, nothing older.
    page.keyboard.press("Control+r")
    expect(page.locator('[data-testid="feed-line"]')).to_have_count(0)
    assert page.evaluate("window.mpmdViewer.eventCount()") == 0
    feed(home, FIX[8])
    expect(page.locator('[data-testid="feed-line"]')).to_have_count(1)
    assert seqs(page) == [9]
    page.locator('[data-testid="clear"]').click()
    expect(page.locator('[data-testid="feed-line"]')).to_have_count(0)
    assert page.evaluate("window.mpmdViewer.lastSeq()") == 9


def test_export_downloads_the_events_in_view(daemon, home, page):
    feed(home, *FIX)
    stored = wait_for_journal(home, len(FIX))
    open_viewer(page, home)
    expect(page.locator('[data-testid="feed-line"]')).to_have_count(len(stored))

    with page.expect_download() as info:
        page.locator('[data-testid="export"]').click()
    download = info.value
    assert re.fullmatch(r"mpmd-export-\d{4}-\d\d-\d\dT[\d-]+\.\d{3}Z\.json",
                        download.suggested_filename), download.suggested_filename
    assert json.loads(Path(download.path()).read_text()) == stored

    page.locator('[data-testid="filter-type"]').select_option("PreToolUse")
    page.locator('[data-testid="search"]').fill("login")
    want = [e for e in stored if e["event_type"] == "PreToolUse" and matches_search(e, "login")]
    expect(page.locator('[data-testid="feed-line"]')).to_have_count(len(want))
    with page.expect_download() as info:
        page.keyboard.press("Control+e")
    assert json.loads(Path(info.value.path()).read_text()) == want


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_reconnects_and_resumes_without_gap_or_duplicate(home, page):
    port = str(free_port())  # the page reconnects to the same address
    first = Daemon(home, MPMD_VIEWER_PORT=port).start()
    try:
        feed(home, *FIX[:5])
        open_viewer(page, home)
        lines = page.locator('[data-testid="feed-line"]')
        expect(lines).to_have_count(5)
    finally:
        first.stop()
    conn = page.locator("#connection")
    expect(conn).to_have_attribute("data-state", re.compile("reconnecting|offline"))
    feed(home, *FIX[5:15])  # the daemon is down: these spool
    with Daemon(home, MPMD_VIEWER_PORT=port):
        expect(conn).to_have_attribute("data-state", "live", timeout=30_000)
        expect(lines).to_have_count(15)
        feed(home, *FIX[15:20])
        expect(lines).to_have_count(20)
        assert seqs(page) == list(range(1, 21))
        assert page.evaluate("window.mpmdViewer.lastSeq()") == 20
        assert page.evaluate("window.mpmdViewer.eventCount()") == 20
        wait_for_journal(home, 20)


def test_a_stalled_page_is_told_it_lagged_and_catches_up(daemon, home, page):
    page.add_init_script("""
      window.__lagShown = 0;
      document.addEventListener("DOMContentLoaded", () => {
        const el = document.querySelector('[data-testid="lag-notice"]');
        new MutationObserver(() => { if (!el.hidden) window.__lagShown++; })
          .observe(el, { attributes: true, attributeFilter: ["hidden"] });
      });""")
    feed(home, FIX[SESSION_START])
    open_viewer(page, home)
    # The page's main thread stalls while ~24 MB of events arrive: more than the socket
    # buffers and the daemon's 2 MiB per-client queue hold, so the daemon drops its queue,
    # says `lagged` and serves the page from the journal once it reads again.
    page.evaluate("setTimeout(() => { const t = Date.now(); while (Date.now() - t < 10000); })")
    big = "x" * 1_000_000
    prompts = [dict(FIX[2], prompt=f"{i} {big}") for i in range(24)]
    feed(home, *prompts)
    lines = page.locator('[data-testid="feed-line"]')
    expect(lines).to_have_count(25, timeout=60_000)
    assert page.evaluate("window.__lagShown") >= 1
    expect(page.locator('[data-testid="lag-notice"]')).to_be_hidden()
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    assert seqs(page) == list(range(1, 26))


# ---------------------------------------------------------------- cost

# The session of tests/fixtures/transcripts/session.jsonl (and its subagent's transcript):
# its responses, as the transcript follower journals them, priced by mpmd ($4 and $20 per
# million input and output tokens of claude-opus-5-5), and Claude Code's two cost-states.
USAGE_SID = "00e5ca8a-84c8-4f59-ab6b-27c11f021403"
USAGE_CWD = "/home/dev/project"
USAGE_TRANSCRIPT = f"/home/dev/.claude/projects/-home-dev-project/{USAGE_SID}.jsonl"
SUBAGENT = "abc5a592f7c7fcd63"


def _usage(message_id: str, at: str, tokens_in: int, *, agent: str | None = None,
           model: str = "claude-opus-5-5", priced: bool = True) -> bytes:
    return json.dumps({
        "hook_event_name": "ModelUsage", "session_id": USAGE_SID,
        "transcript_path": USAGE_TRANSCRIPT, "agent_id": agent, "message_id": message_id,
        "model": model, "input_tokens": tokens_in, "output_tokens": 12,
        "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0,
        "cache_creation_5m_tokens": 0, "cache_creation_1h_tokens": 0,
        "cost_usd": round(tokens_in * 4e-6 + 12 * 20e-6, 9) if priced else None,
        "at": at}).encode()


def _cost_report(total_usd: float, tokens_in: int, tokens_out: int, as_of: str) -> bytes:
    return json.dumps({
        "hook_event_name": "CostReport", "session_id": USAGE_SID,
        "transcript_path": USAGE_TRANSCRIPT, "agent_id": None, "total_cost_usd": total_usd,
        "model_usage": {"claude-opus-5-5": {
            "input_tokens": tokens_in, "output_tokens": tokens_out, "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 0, "cost_usd": total_usd}},
        "lines_added": 0, "lines_removed": 0, "duration_ms": 1318, "api_duration_ms": 243,
        "has_unknown_model_cost": False, "as_of": as_of}).encode()


def test_sessions_show_their_cost_and_tokens_live(daemon, home, page):
    feed(home, other_session(FIX[SESSION_START], USAGE_SID, USAGE_CWD, model="claude-opus-5-5",
                             transcript_path=USAGE_TRANSCRIPT),
         other_session(FIX[2], USAGE_SID, USAGE_CWD, prompt="do things",
                       transcript_path=USAGE_TRANSCRIPT))
    open_viewer(page, home)
    row = page.locator(f'[data-testid="session-row"][data-session-id="{USAGE_SID}"]')
    cost = row.locator('[data-testid="session-cost"]')
    tokens = row.locator('[data-testid="session-tokens"]')
    expect(row.locator(".project")).to_have_text("project")
    expect(cost).to_have_count(0)  # nothing read yet: no "$0.00"
    expect(tokens).to_have_count(0)

    # The first turn's responses, the subagent's among them: mpmd's price, marked as such.
    send_events(home, [
        _usage("msg_301442aa3abb4e6ca066271e", "2026-12-03T17:27:22.982Z", 2563),
        _usage("msg_8a490659dfbf42279f8bb6b5", "2026-12-03T17:27:23.164Z", 2697),
        _usage("msg_aba6dca7e6c34dc792e02c07", "2026-12-03T17:27:23.247Z", 2152, agent=SUBAGENT),
        _usage("msg_bc133c735d8c46bb83c4e2e0", "2026-12-03T17:27:23.371Z", 2658, agent=SUBAGENT),
        _usage("msg_52de80ca98184b0da08e99e0", "2026-12-03T17:27:23.519Z", 2969)])
    expect(cost).to_have_text("≈$0.05")  # 13,039 in and 60 out: $0.053356
    expect(cost).to_have_attribute("data-source", "mpmd")
    expect(cost).to_have_attribute("title", re.compile(r"^\$0\.0534: mpmd's estimate"))
    expect(tokens).to_have_text("13k tok")
    expect(tokens).to_have_attribute("title", re.compile("13,039 input · 60 output"))

    # Claude Code's own figure replaces the estimate; a later response is added to it.
    send_events(home, [_cost_report(0.053356, 13039, 60, "2026-12-03T17:27:23.519Z")])
    expect(cost).to_have_attribute("data-source", "claude-code")
    expect(cost).to_have_text("$0.05")
    send_events(home, [
        _usage("msg_fae6360111144e86b8d0224b", "2026-12-03T17:27:24.313Z", 3006),
        _cost_report(0.06562, 16045, 72, "2026-12-03T17:27:24.313Z"),
        _usage("msg_unpriced_0001", "2026-12-03T17:27:25.001Z", 1200, model="claude-next-1",
               priced=False)])
    expect(cost).to_have_text("$0.07")
    expect(cost).to_have_attribute("title", re.compile(r"^\$0\.0656: Claude Code's own figure"))
    expect(row.locator('[data-testid="session-unpriced"]')).to_have_text("+ 1 unpriced")
    expect(tokens).to_have_text("17k tok")  # 17,245 in and 84 out
    expect(row.locator(".event-count")).to_have_text("2")  # usage is not activity

    # The feed shows the usage lines, dimmed; "All but usage" leaves them out.
    lines = page.locator('[data-testid="feed-line"]')
    expect(lines.and_(page.locator(".k-usage"))).to_have_count(9)
    expect(lines).to_have_count(11)
    types = page.locator('[data-testid="filter-type"]')
    types.select_option(label="All but usage")
    expect(lines).to_have_count(2)
    types.select_option("")
    expect(lines).to_have_count(11)

    # An event of the session opens the detail, with its usage by kind and by model.
    page.locator('[data-testid="feed-line"]').first.click()
    usage = page.locator('[data-testid="detail-usage"]')
    expect(usage).to_be_visible()
    expect(usage.locator("summary")).to_contain_text("$0.07")
    expect(usage.locator(".usage-kinds")).to_contain_text("17,245")
    opus = usage.locator('[data-testid="usage-model"][data-model="claude-opus-5-5"]')
    expect(opus.locator(".responses")).to_have_text("6")
    expect(opus.locator(".tokens")).to_have_text("16,117")
    expect(opus.locator(".cost")).to_have_text("$0.0656")
    unpriced = usage.locator('[data-testid="usage-model"][data-model="claude-next-1"]')
    expect(unpriced.locator(".responses")).to_have_text("1")
    expect(unpriced.locator(".cost")).to_have_text("no price")
    # and by subagent: the subagent's two responses apart from the session's own
    sub = usage.locator(f'[data-testid="usage-agent"][data-agent-id="{SUBAGENT}"]')
    expect(sub.locator(".responses")).to_have_text("2")
    expect(sub.locator(".tokens")).to_have_text(f"{2152 + 2658 + 24:,}")
    expect(usage.locator('[data-testid="usage-agent"][data-agent-id=""]')).to_have_count(1)


# ---------------------------------------------------------------- screenshots

def _base(sid: str, cwd: str, name: str, **fields: object) -> dict:
    return {"session_id": sid, "transcript_path": f"/home/dev/.claude/projects/x/{sid}.jsonl",
            "cwd": cwd, "hook_event_name": name, "permission_mode": "default", **fields}


def _call(sid: str, cwd: str, tid: str, tool: str, tool_input: dict, *, ms: int,
          error: str | None = None, agent: str | None = None, done: bool = True) -> list[dict]:
    extra = {"agent_id": agent, "agent_type": "Explore"} if agent else {}
    out = [_base(sid, cwd, "PreToolUse", tool_name=tool, tool_input=tool_input,
                 tool_use_id=tid, **extra)]
    if done and error is None:
        out.append(_base(sid, cwd, "PostToolUse", tool_name=tool, tool_input=tool_input,
                         tool_use_id=tid, tool_response={"success": True}, duration_ms=ms,
                         **extra))
    elif done:
        out.append(_base(sid, cwd, "PostToolUseFailure", tool_name=tool, tool_input=tool_input,
                         tool_use_id=tid, error=error, duration_ms=ms, **extra))
    return out


def demo_payloads() -> list[dict]:
    """Three sessions at once: the fixture's (ended), one waiting for a permission with a
    subagent, one with a build still running."""
    api, a = "4b2e9a10-7c1d-4f3e-8a6b-2d9c0e1f3a55", "/home/dev/api"
    web, w = "c0ffee12-3456-4789-abcd-ef0123456789", "/home/dev/web"
    agent = "agent-7f3e21"
    api_events = [
        _base(api, a, "SessionStart", source="startup", model="claude-opus-5"),
        _base(api, a, "UserPromptSubmit", prompt="Find why /orders is slow and fix the N+1 query"),
        *_call(api, a, "toolu_a1", "Grep", {"pattern": "Order.objects", "path": "src"}, ms=41),
        _base(api, a, "SubagentStart", agent_id=agent, agent_type="Explore"),
        *_call(api, a, "toolu_a2", "Read", {"file_path": f"{a}/src/orders/views.py"}, ms=4,
               agent=agent),
        *_call(api, a, "toolu_a3", "Glob", {"pattern": "src/**/serializers.py"}, ms=12,
               agent=agent),
        _base(api, a, "SubagentStop", agent_id=agent, agent_type="Explore"),
        *_call(api, a, "toolu_a4", "Edit", {"file_path": f"{a}/src/orders/views.py",
                                            "old_string": "all()", "new_string":
                                            "prefetch_related('items')"}, ms=6),
        *_call(api, a, "toolu_a5", "Bash", {"command": "pytest tests/orders -q"}, ms=8120,
               error="Exit code 1\nFAILED tests/orders/test_views.py::test_list"),
        *_call(api, a, "toolu_a6", "Bash", {"command": "pytest tests/orders -q"}, ms=7340),
        *_call(api, a, "toolu_a7", "Bash", {"command": "git push origin fix/orders"}, ms=0,
               done=False),
        _base(api, a, "PermissionRequest", tool_name="Bash",
              tool_input={"command": "git push origin fix/orders"}),
    ]
    web_events = [
        _base(web, w, "SessionStart", source="resume", model="claude-sonnet-5"),
        _base(web, w, "UserPromptSubmit", prompt="Upgrade vite and fix the build"),
        *_call(web, w, "toolu_w1", "Read", {"file_path": f"{w}/package.json"}, ms=2),
        *_call(web, w, "toolu_w2", "WebFetch", {"url": "https://vitejs.dev/guide/migration"},
               ms=930),
        *_call(web, w, "toolu_w3", "Write", {"file_path": f"{w}/vite.config.ts",
                                             "content": "export default {}"}, ms=9),
        *_call(web, w, "toolu_w4", "Bash", {"command": "npm run build"}, ms=0, done=False),
    ]
    out: list[dict] = []
    lists = [list(FIX), api_events, web_events]
    while any(lists):
        for items in lists:
            if items:
                out.append(items.pop(0))
    return out


def test_screenshots_of_the_main_views(daemon, home, browser, tmp_path):
    folder = screenshot_folder(tmp_path)
    feed(home, *demo_payloads())
    url = viewer_url(home)
    for scheme, pg in themed_pages(browser, url):
        expect(pg.locator('[data-testid="session-row"]')).to_have_count(3)
        expect(pg.locator('[data-testid="feed-line"]')).to_have_count(len(demo_payloads()))
        pg.screenshot(path=folder / f"{scheme}-feed.png", animations="disabled")

        pg.locator('[data-testid="session-row"]').filter(has_text="api").click()
        pg.locator('[data-testid="agent-group"] [data-testid="feed-line"]').nth(1).click()
        expect(pg.locator('[data-testid="event-detail"]')).to_be_visible()
        pg.screenshot(path=folder / f"{scheme}-session-detail.png", animations="disabled")
        pg.keyboard.press("Escape")

        pg.locator('[data-testid="session-all"]').click()
        pg.locator('[data-testid="tab-timeline"]').click()
        expect(pg.locator('[data-testid="span"]')).not_to_have_count(0)
        pg.screenshot(path=folder / f"{scheme}-timeline.png", animations="disabled")

        pg.locator('[data-testid="tab-tools"]').click()
        expect(pg.locator('[data-testid="tool-row"]')).not_to_have_count(0)
        pg.screenshot(path=folder / f"{scheme}-tools.png", animations="disabled")
    assert len(list(folder.glob("*.png"))) >= 8


def test_hostile_text_in_events_is_shown_as_text(daemon, home, page):
    """Payload text is anyone's: a command, a path, a prompt, a tool name. Shown, never
    parsed as markup (the CSP would stop scripts; this checks no element is injected)."""
    evil = '<img src=x id=pwned onerror="window.pwned=1"><b class=injected>x</b>'
    start = other_session(FIX[SESSION_START], "e" * 8 + "-evil", f"/tmp/{evil}",
                          model=evil)
    pre = other_session(FIX[PRE_BASH], "e" * 8 + "-evil", f"/tmp/{evil}",
                        tool_input={"command": evil})
    ask = other_session(FIX[PERMISSION], "e" * 8 + "-evil", f"/tmp/{evil}",
                        tool_name=f"mcp__{evil}", tool_input={"command": evil})
    failed = other_session(FIX[BASH_FAILED], "e" * 8 + "-evil", f"/tmp/{evil}",
                           error=evil)
    open_viewer(page, home)
    feed(home, start, pre, ask, failed)
    expect(page.locator('[data-testid="feed-line"]')).to_have_count(4)
    expect(page.locator('[data-testid="toast"]').first).to_contain_text(evil)
    row = page.locator('[data-testid="session-row"][data-session-id="eeeeeeee-evil"]')
    expect(row.locator(".model")).to_have_text(evil)
    expect(page.locator('[data-testid="feed-line"]').nth(1)).to_contain_text(evil)
    page.locator('[data-testid="feed-line"]').nth(1).click()
    expect(page.locator('[data-testid="event-detail"] pre')).to_contain_text("pwned")
    for tab in ("tab-timeline", "tab-tools", "tab-feed"):
        page.locator(f'[data-testid="{tab}"]').click()
        assert page.locator("#pwned, .injected").count() == 0
    assert page.evaluate("window.pwned === undefined")


def test_approve_a_waiting_permission_request_from_the_page(daemon, home, page):
    """A real hook waits on a `remote` rule; the page shows the request with its buttons;
    a click is the hook's answer."""
    remote.write_policy(home)
    feed(home, FIX[SESSION_START])
    open_viewer(page, home)
    for button, behavior, word in (("approve", "allow", "approved"),
                                   ("deny", "deny", "denied")):
        hook = remote.start_hook(home)
        approval = page.locator('[data-testid="approval"]')
        expect(approval).to_have_count(1)
        expect(approval.locator(".what")).to_contain_text("rm -rf")
        approval.locator(f'[data-testid="{button}"]').click()
        expect(approval).to_have_count(0)  # answered: gone from every viewer
        assert remote.hook_output(hook) == remote.decision_of(
            behavior, f"{word} from the mpmd viewer")
    assert remote.PERMISSION["session_id"] == SHOP


def test_one_page_answers_and_the_request_ends_on_every_page(daemon, home, page, browser):
    """Two viewers show the request; the first answer ends it on both (two answers racing
    are tested on the WebSocket itself: tests/test_remote_approval.py)."""
    remote.write_policy(home)
    feed(home, FIX[SESSION_START])
    other = browser.new_context(viewport={"width": 1400, "height": 860}).new_page()
    try:
        open_viewer(page, home)
        open_viewer(other, home)
        hook = remote.start_hook(home)
        for pg in (page, other):
            expect(pg.locator('[data-testid="approval"]')).to_have_count(1)
        other.locator('[data-testid="deny"]').click()
        for pg in (page, other):
            expect(pg.locator('[data-testid="approval"]')).to_have_count(0)
        assert remote.hook_output(hook) == remote.decision_of(
            "deny", "denied from the mpmd viewer")
    finally:
        other.context.close()


def test_a_request_nobody_answers_leaves_the_page_when_it_ends(daemon, home, page):
    remote.write_policy(home, timeout_s=1)
    feed(home, FIX[SESSION_START])
    open_viewer(page, home)
    hook = remote.start_hook(home)
    approval = page.locator('[data-testid="approval"]')
    expect(approval).to_have_count(1)
    expect(approval).to_have_count(0)  # the time ran out
    assert remote.hook_output(hook) is None  # Claude Code asks in the terminal

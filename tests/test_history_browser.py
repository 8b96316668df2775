"""The page's history mode in a real browser: search over every stored event, past sessions,
analytics. A real daemon fed by real hook processes (or, for bulk and for events dated in
the past, the hook's own frames on its socket), its search index, and Debian's chromium
driven by Playwright.

Every wait on the page is one of Playwright's auto-waiting assertions; the only other waits
poll the journal and `mpmd status` (the indexer's progress), another process's doing. The
page runs under the daemon's Content-Security-Policy, and a page error or a CSP violation
fails the test.

MPMD_SCREENSHOTS=1 makes the screenshot test write docs/screenshots/*-search.png,
*-history.png and *-analytics.png (otherwise a temporary folder, checking only that each
view renders in both themes).

What sessions cost comes from the events the transcript follower makes of the transcripts the
real CLI wrote (tests/fixtures/transcripts, as tests/test_history_cost.py builds them), sent
to the daemon as the hook's frames.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from playwright.sync_api import Page, expect

from tests.browser import (
    feed,
    open_viewer,
    other_session,
    screenshot_folder,
    themed_pages,
    viewer_url,
)
from tests.test_history_cost import (
    AGENT,
    DEARER,
    FIRST_PROMPT,
    SESSION,
    UNPRICED,
    hook_events,
    prompt_id,
    transcript_events,
)
from tests.utils import (
    fixture_payloads,
    journal_events,
    mpmd_cli,
    send_events,
    status,
    wait_until,
)

FIX = [json.loads(p) for p in fixture_payloads()]
SESSION_START, PRE_BASH, BASH_FAILED, SESSION_END = 0, 6, 9, 37
SHOP = FIX[0]["session_id"]
API = "4b2e9a10-7c1d-4f3e-8a6b-2d9c0e1f3a55"
LEGACY = "0dd5e55e-1111-4222-8333-444455556666"
DAY_NS = 86_400 * 10**9
TOOL_ENDS = ("PostToolUse", "PostToolUseFailure")
FAILURES = ("PostToolUseFailure", "StopFailure")


# ---------------------------------------------------------------- helpers


def send_at(home: Path, payloads: list[dict], when_ns: int) -> None:
    """The hook's frames for `payloads` as if it had run at `when_ns` (1 ms apart): events
    dated in the past."""
    send_events(home, [json.dumps(p).encode() for p in payloads], when_ns=when_ns)


def indexed(home: Path, count: int) -> list[dict]:
    """The journal's events once it holds `count` and the search index has them all."""
    wait_until(lambda: len(journal_events(home)) >= count, f"{count} events in the journal")
    wait_until(lambda: status(home)["index_last_seq"] >= count, f"{count} events indexed")
    events = journal_events(home)
    assert [e["seq"] for e in events] == list(range(1, count + 1))
    return events






def api_session() -> list[dict]:
    """A second, live session (no end): a start and a failed Bash call."""
    return [other_session(FIX[SESSION_START], API, "/home/dev/api", model="claude-opus-5"),
            other_session(FIX[PRE_BASH], API, "/home/dev/api", tool_use_id="toolu_api_1"),
            other_session(FIX[BASH_FAILED], API, "/home/dev/api", tool_use_id="toolu_api_1")]


def legacy_session() -> list[dict]:
    """An old session elsewhere: four Bash calls (two fail) and a Read, then its end."""
    cwd = "/home/dev/legacy"

    def base(name: str, **fields: object) -> dict:
        return {"session_id": LEGACY, "cwd": cwd, "hook_event_name": name,
                "transcript_path": f"/home/dev/.claude/projects/x/{LEGACY}.jsonl", **fields}

    out = [base("SessionStart", source="startup", model="claude-sonnet-5"),
           base("UserPromptSubmit", prompt="Port the legacy build to make")]
    for i, error in enumerate([None, "Exit code 2\nmake: *** [all] Error 2", None,
                               "Exit code 2\nmake: *** [test] Error 2"]):
        tool_input = {"command": f"make step{i}"}
        out.append(base("PreToolUse", tool_name="Bash", tool_input=tool_input,
                        tool_use_id=f"toolu_legacy_{i}"))
        if error is None:
            out.append(base("PostToolUse", tool_name="Bash", tool_input=tool_input,
                            tool_use_id=f"toolu_legacy_{i}", tool_response={"stdout": ""},
                            duration_ms=1200 + i))
        else:
            out.append(base("PostToolUseFailure", tool_name="Bash", tool_input=tool_input,
                            tool_use_id=f"toolu_legacy_{i}", error=error, duration_ms=900))
    out += [base("PreToolUse", tool_name="Read", tool_input={"file_path": f"{cwd}/Makefile"},
                 tool_use_id="toolu_legacy_r"),
            base("PostToolUse", tool_name="Read", tool_input={"file_path": f"{cwd}/Makefile"},
                 tool_use_id="toolu_legacy_r", tool_response={}, duration_ms=3),
            base("SessionEnd", reason="logout")]
    return out


def shown_seqs(page: Page, testid: str) -> list[int]:
    return [int(s) for s in page.locator(f'[data-testid="{testid}"]').evaluate_all(
        "els => els.map(e => e.dataset.seq)")]


# The index's text of an event and its tokens (docs/query.md, "Free text"): the oracle for
# free-text queries, written from the documentation, not from mpmd.history.index.
TEXT_FIELDS = ("prompt", "command", "description", "error", "error_details", "message",
               "reason", "pattern", "url", "query", "title", "last_assistant_message",
               "task_subject", "task_description", "compact_summary", "custom_instructions",
               "agent_type", "new_cwd", "directory", "worktree_path", "mcp_server_name")


def tokens(text: str) -> list[str]:
    return re.findall(r"[^\W_]+", text.lower())


def event_tokens(ev: dict) -> list[str]:
    parts = [ev.get("summary"), ev.get("file_path"), ev.get("tool_name"), ev.get("event_type")]
    payload: dict = ev["payload"] if isinstance(ev.get("payload"), dict) else {}
    tool_input: dict = payload["tool_input"] if isinstance(payload.get("tool_input"), dict) else {}
    for source in (payload, tool_input):
        parts += [source.get(k) for k in TEXT_FIELDS]
    parts += [tool_input.get(k) for k in ("file_path", "path", "notebook_path")]
    return tokens(" ".join(p[:4096] for p in parts if isinstance(p, str)))


def has_phrase(ev: dict, phrase: str) -> bool:
    want, have = tokens(phrase), event_tokens(ev)
    return any(have[i:i + len(want)] == want for i in range(len(have) - len(want) + 1))


def error_pattern(ev: dict) -> tuple[str, str]:
    """(source, pattern) of a failure, as docs/viewer.md's analytics describe it."""
    payload = ev.get("payload") or {}
    text = str(payload.get("error") or payload.get("error_details") or "").strip()
    first = text.splitlines()[0] if text else ""
    return (ev.get("tool_name") or ev["event_type"],
            re.sub(r"\s+", " ", re.sub(r"\d+", "N", first))[:120])


def when(ev: dict) -> float:
    return datetime.fromisoformat(ev["timestamp"].replace("Z", "+00:00")).timestamp()


# ---------------------------------------------------------------- fixtures





# ---------------------------------------------------------------- search

def run_search(page: Page, query: str) -> None:
    box = page.locator('[data-testid="history-query"]')
    box.fill(query)
    box.press("Enter")


def test_search_finds_exactly_the_matching_events(daemon, home, page):
    feed(home, *FIX, *api_session())
    stored = indexed(home, len(FIX) + 3)
    newest_first = stored[::-1]
    open_viewer(page, home)
    expect(page.locator('[data-testid="feed-line"]')).to_have_count(len(stored))
    page.keyboard.press("Control+r")  # the live view forgets them: the search reads the index
    expect(page.locator('[data-testid="feed-line"]')).to_have_count(0)
    page.keyboard.press("4")  # the Search tab, from the keyboard
    expect(page.locator('[data-testid="tab-search"]')).to_have_attribute("aria-selected", "true")
    lines = page.locator('[data-testid="history-line"]')
    expect(lines).to_have_count(len(stored))  # the empty query: every event, newest first
    assert shown_seqs(page, "history-line") == [e["seq"] for e in newest_first]

    def shows(query: str, expected: list[dict]) -> None:
        run_search(page, query)
        expect(page.locator('[data-testid="history-status"]')).to_have_text(
            re.compile(rf"^{len(expected)} events?, newest first"))
        expect(lines).to_have_count(len(expected))
        assert shown_seqs(page, "history-line") == [e["seq"] for e in expected]
        # Each line in the feed's human words.
        expect(lines.locator(".summary")).to_have_text([e["summary"] for e in expected])

    shows("tool:Bash -type:PreToolUse",
          [e for e in newest_first if e.get("tool_name") == "Bash"
           and e["event_type"] != "PreToolUse"])
    shows('("npm test" OR login.ts) -type:PreToolUse',
          [e for e in newest_first if (has_phrase(e, "npm test") or has_phrase(e, "login ts"))
           and e["event_type"] != "PreToolUse"])
    shows(f"session:{API[:8]} OR risk:high",
          [e for e in newest_first if e["session_id"] == API or e.get("risk") == "high"])
    shows("type:SessionStart cwd:api", [e for e in newest_first
                                        if e["event_type"] == "SessionStart"
                                        and "api" in e["cwd"]])

    # Keyboard: Ctrl+K is the query box here; a line opens the event's detail with Enter.
    page.keyboard.press("Control+k")
    expect(page.locator('[data-testid="history-query"]')).to_be_focused()
    query = "type:PostToolUseFailure"
    page.keyboard.type(query)
    page.keyboard.press("Enter")
    failures = [e for e in newest_first if e["event_type"] == "PostToolUseFailure"]
    expect(lines).to_have_count(len(failures))
    lines.first.focus()
    page.keyboard.press("Enter")
    detail = page.locator('[data-testid="event-detail"]')
    expect(detail).to_be_visible()
    assert json.loads(detail.locator("pre").inner_text()) == failures[0]
    expect(lines.first).to_have_class(re.compile(r"\bselected\b"))
    page.keyboard.press("ArrowDown")  # the next result
    expect(detail.locator("pre")).to_contain_text(f'"seq": {failures[1]["seq"]}')
    page.keyboard.press("Escape")
    expect(detail).to_be_hidden()

    # The query stays in the address: a reload runs it again.
    assert page.url.endswith("#q=" + quote(query, safe=""))
    page.reload()
    expect(page.locator('[data-testid="history-query"]')).to_have_value(query)
    expect(lines).to_have_count(len(failures))
    assert shown_seqs(page, "history-line") == [e["seq"] for e in failures]


def test_load_more_pages_back_through_every_match(daemon, home, page):
    prompts = [dict(FIX[2], prompt=f"probe {i}") for i in range(230)]
    noise = [dict(FIX[8], message=f"noise {i}") for i in range(40)]
    mixed = [p for pair in zip(prompts, noise + [None] * 190, strict=True) for p in pair if p]
    send_events(home, [json.dumps(p).encode() for p in mixed])
    stored = indexed(home, len(mixed))
    want = [e["seq"] for e in stored[::-1] if e["event_type"] == "UserPromptSubmit"]
    assert len(want) == 230

    open_viewer(page, home)
    page.locator('[data-testid="tab-search"]').click()
    run_search(page, "probe type:UserPromptSubmit")
    lines = page.locator('[data-testid="history-line"]')
    more = page.locator('[data-testid="history-more"]')
    expect(lines).to_have_count(100)
    assert shown_seqs(page, "history-line") == want[:100]
    more.click()
    expect(lines).to_have_count(200)
    more.click()
    expect(lines).to_have_count(230)
    expect(more).to_be_hidden()
    assert shown_seqs(page, "history-line") == want  # in order, none twice, none missing
    expect(page.locator('[data-testid="history-status"]')).to_have_text(
        re.compile(r"^230 events, newest first"))


def test_a_bad_query_shows_the_servers_error_and_its_column(daemon, home, page):
    feed(home, *FIX[:3])
    indexed(home, 3)
    open_viewer(page, home)
    page.locator('[data-testid="tab-search"]').click()
    lines = page.locator('[data-testid="history-line"]')
    expect(lines).to_have_count(3)
    error = page.locator('[data-testid="history-error"]')
    expect(error).to_be_hidden()

    run_search(page, "tool:Bash risk:hgh")
    expect(error).to_be_visible()
    expect(error.locator(".err-text")).to_have_text(
        "bad query: risk: wants low, medium or high, not 'hgh' (column 11)")
    expect(error.locator("mark")).to_have_text("risk:hgh")  # the bad token, marked
    expect(lines).to_have_count(0)
    expect(page.locator('[data-testid="history-query"]')).to_have_value("tool:Bash risk:hgh")

    run_search(page, "(rm OR curl")
    expect(error.locator(".err-text")).to_have_text("bad query: unclosed '(' at column 1")
    expect(error.locator("mark")).to_have_text("(rm")
    run_search(page, "@no-such-search")
    expect(error.locator(".err-text")).to_contain_text("no saved search 'no-such-search'")

    run_search(page, "type:UserPromptSubmit")
    expect(error).to_be_hidden()
    expect(lines).to_have_count(1)


def test_saved_searches_and_presets_run_from_the_list(daemon, home, page):
    saved = mpmd_cli(home, "searches", "save", "my-bash", "tool:Bash -type:PreToolUse")
    assert saved.returncode == 0, saved.stderr
    feed(home, *FIX, *api_session())
    stored = indexed(home, len(FIX) + 3)
    open_viewer(page, home)
    page.locator('[data-testid="tab-search"]').click()
    chooser = page.locator('[data-testid="saved-searches"]')
    expect(chooser.locator('optgroup[label="Presets"] option[value="failures"]')).to_have_count(1)
    expect(chooser.locator('optgroup[label="Yours"] option[value="my-bash"]')).to_contain_text(
        "tool:Bash -type:PreToolUse")
    lines = page.locator('[data-testid="history-line"]')

    chooser.select_option("failures")
    expect(page.locator('[data-testid="history-query"]')).to_have_value("@failures")
    failed = [e["seq"] for e in stored[::-1] if e["event_type"] in FAILURES]
    expect(lines).to_have_count(len(failed))
    assert shown_seqs(page, "history-line") == failed

    chooser.select_option("my-bash")
    expect(page.locator('[data-testid="history-query"]')).to_have_value("@my-bash")
    bash = [e["seq"] for e in stored[::-1]
            if e.get("tool_name") == "Bash" and e["event_type"] != "PreToolUse"]
    expect(lines).to_have_count(len(bash))
    assert shown_seqs(page, "history-line") == bash

    # A result's detail opens its whole session as history.
    newest = stored[bash[0] - 1]
    assert newest["session_id"] == API
    lines.first.click()
    page.locator('[data-testid="detail-open-session"]').click()
    expect(page.locator('[data-testid="history-banner"]')).to_contain_text("api")
    expect(page.locator('[data-testid="tab-feed"]')).to_have_attribute("aria-selected", "true")
    feed_lines = page.locator('[data-testid="feed-line"]')
    expect(feed_lines).to_have_count(3)
    assert shown_seqs(page, "feed-line") == [e["seq"] for e in stored if e["session_id"] == API]


# ---------------------------------------------------------------- past sessions

def test_a_past_session_opens_as_history_and_back_to_live(daemon, home, page):
    feed(home, *FIX, *api_session())
    stored = indexed(home, len(FIX) + 3)
    shop = [e for e in stored if e["session_id"] == SHOP]
    assert shop[-1]["event_type"] == "SessionEnd"
    open_viewer(page, home)
    live_lines = page.locator('[data-testid="feed-line"]')
    expect(live_lines).to_have_count(len(stored))
    # The live view forgets what it holds: what history shows comes from the index.
    page.locator('[data-testid="clear"]').click()
    expect(live_lines).to_have_count(0)

    page.locator('[data-testid="sessions-past"]').click()
    rows = page.locator('[data-testid="past-session-row"]')
    expect(rows).to_have_count(2)
    # Most recently active first: the api session's events came last.
    assert rows.evaluate_all("els => els.map(e => e.dataset.sessionId)") == [API, SHOP]
    row = page.locator(f'[data-testid="past-session-row"][data-session-id="{SHOP}"]')
    expect(row).to_have_attribute("data-ended", "true")
    expect(row.locator(".hbadge")).to_have_text("ended")
    expect(row.locator(".event-count")).to_have_text(str(len(shop)))
    expect(row.locator(".project")).to_have_text("shop")
    expect(row.locator(".l3")).to_have_text(FIX[2]["prompt"])
    expect(page.locator(f'[data-testid="past-session-row"][data-session-id="{API}"]')
           ).to_have_attribute("data-ended", "false")

    row.focus()
    page.keyboard.press("Enter")
    banner = page.locator('[data-testid="history-banner"]')
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("History")
    expect(banner).to_contain_text("shop")
    expect(banner).to_contain_text("ended (prompt_input_exit)")
    expect(page.locator('[data-testid="history-progress"]')).to_have_text(f"{len(shop)} events")
    expect(page.locator(".main")).to_have_attribute("data-mode", "history")
    expect(live_lines).to_have_count(len(shop))
    assert shown_seqs(page, "feed-line") == [e["seq"] for e in shop]  # oldest first
    expect(live_lines.locator(".summary")).to_have_text([e["summary"] for e in shop])

    page.locator('[data-testid="tab-timeline"]').click()
    expect(banner).to_be_visible()
    spans = page.locator('[data-testid="timeline"] [data-testid="span"]')
    calls = {e["tool_use_id"] for e in shop
             if e["event_type"] in ("PreToolUse", *TOOL_ENDS) and e.get("tool_use_id")}
    expect(spans).to_have_count(len(calls))
    assert set(spans.evaluate_all("els => els.map(e => e.dataset.toolUseId)")) == calls
    page.locator('[data-testid="tab-tools"]').click()
    bash = page.locator('[data-testid="tool-row"][data-tool="Bash"]')
    expect(bash.locator(".count")).to_have_text(str(len(
        {e["tool_use_id"] for e in shop if e.get("tool_name") == "Bash"
         and e["event_type"] in ("PreToolUse", *TOOL_ENDS)})))
    page.locator('[data-testid="tab-feed"]').click()

    # Live events keep arriving meanwhile, of this very session too, and stay out of the
    # history view.
    feed(home, dict(FIX[2], prompt="while in history"))
    expect(page.locator("#counts")).to_contain_text(f"seq {len(stored) + 1}")
    expect(live_lines).to_have_count(len(shop))
    assert shown_seqs(page, "feed-line") == [e["seq"] for e in shop]

    page.locator('[data-testid="back-to-live"]').click()
    expect(banner).to_be_hidden()
    expect(page.locator(".main")).to_have_attribute("data-mode", "live")
    expect(page.locator('[data-testid="sessions-live"]')).to_have_attribute("aria-pressed", "true")
    expect(live_lines).to_have_count(1)  # what came in since the view was cleared
    feed(home, other_session(FIX[2], API, "/home/dev/api", prompt="back to live"))
    expect(live_lines).to_have_count(2)
    assert shown_seqs(page, "feed-line") == [len(stored) + 1, len(stored) + 2]
    expect(live_lines.last.locator(".summary")).to_contain_text("back to live")


def test_a_long_past_session_loads_page_by_page(daemon, home, page):
    long_id = "10a91e55-0000-4000-8000-00000000beef"
    start = other_session(FIX[SESSION_START], long_id, "/home/dev/big")
    prompts = [other_session(FIX[2], long_id, "/home/dev/big", prompt=f"step {i}")
               for i in range(1233)]
    send_events(home, [json.dumps(p).encode() for p in [start, *prompts]])
    stored = indexed(home, 1234)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/api/history/session?" in r.url
            else None)
    open_viewer(page, home)
    page.locator('[data-testid="sessions-past"]').click()
    page.locator(f'[data-testid="past-session-row"][data-session-id="{long_id}"]').click()
    progress = page.locator('[data-testid="history-progress"]')
    expect(progress).to_have_text("1,234 events")
    assert page.evaluate("window.mpmdViewer.historyCount()") == 1234
    # Two pages: the first 1000, then the rest after the 1000th event's seq.
    assert len(requests) == 2, requests
    assert "after=" not in requests[0] and f"after={stored[999]['seq']}" in requests[1]
    lines = page.locator('[data-testid="feed-line"]')
    expect(lines).to_have_count(500)  # the feed shows the last 500 of what is loaded
    assert shown_seqs(page, "feed-line") == [e["seq"] for e in stored[-500:]]
    expect(page.locator("#feed-foot")).to_contain_text("500 of 1,234")


# ---------------------------------------------------------------- analytics

def expect_stats(page: Page, events: list[dict]) -> None:
    """The analytics view shows exactly what `events` (those in its range) add up to."""
    calls = Counter(e["tool_name"] for e in events if e["event_type"] in TOOL_ENDS)
    failed = Counter(e["tool_name"] for e in events if e["event_type"] == "PostToolUseFailure")
    expect(page.locator('[data-testid="stat-events"] .stat-value')).to_have_text(str(len(events)))
    expect(page.locator('[data-testid="stat-sessions"] .stat-value')).to_have_text(
        str(len({e["session_id"] for e in events})))
    expect(page.locator('[data-testid="stat-tool-calls"] .stat-value')).to_have_text(
        str(sum(calls.values())))
    rows = page.locator('[data-testid="analytics-tool-row"]')
    expect(rows).to_have_count(len(calls))
    for tool, n in calls.items():
        row = page.locator(f'[data-testid="analytics-tool-row"][data-tool="{tool}"]')
        expect(row.locator(".calls")).to_have_text(str(n))
        expect(row.locator(".failures")).to_have_text(str(failed[tool]))
        expect(row.locator(".success-rate")).to_have_text(
            f"{round((n - failed[tool]) / n * 100)}%")
    usage = page.locator('[data-testid="chart-tools"] [data-testid="bar-row"]')
    assert sorted(usage.evaluate_all("els => els.map(e => e.dataset.key)")) == sorted(calls)
    failing = page.locator('[data-testid="chart-failures"] [data-testid="bar-row"]')
    assert sorted(failing.evaluate_all("els => els.map(e => e.dataset.key)")) == sorted(failed)
    rates = page.locator('[data-testid="chart-success"] [data-testid="bar-row"]')
    assert sorted(rates.evaluate_all("els => els.map(e => e.dataset.key)")) == sorted(calls)

    bars = page.locator('[data-testid="chart-time"] [data-testid="time-bar"]')
    counts = bars.evaluate_all(
        "els => els.map(e => [Number(e.dataset.events), Number(e.dataset.failures)])")
    assert sum(n for n, _ in counts) == len(events)
    assert sum(f for _, f in counts) == sum(e["event_type"] in FAILURES for e in events)

    patterns = Counter(error_pattern(e) for e in events if e["event_type"] in FAILURES)
    shown = page.locator('[data-testid="error-pattern-row"]').evaluate_all(
        "els => els.map(e => [e.querySelector('.source').textContent,"
        " e.querySelector('.pattern').textContent, Number(e.querySelector('.count').textContent)])")
    assert sorted(map(tuple, shown)) == sorted((s, p, n) for (s, p), n in patterns.items())

    projects: dict[str, tuple[set[str], int]] = {}
    for e in events:
        if e.get("cwd"):
            ids, n = projects.get(e["cwd"], (set(), 0))
            projects[e["cwd"]] = (ids | {e["session_id"]}, n + 1)
    shown = page.locator('[data-testid="project-row"]').evaluate_all(
        "els => els.map(e => [e.dataset.cwd, Number(e.querySelector('.sessions').textContent),"
        " Number(e.querySelector('.events').textContent)])")
    assert sorted(map(tuple, shown)) == sorted((c, len(ids), n) for c, (ids, n) in
                                               projects.items())


def test_analytics_match_the_events_and_follow_the_range(daemon, home, page):
    feed(home, *FIX, *api_session())
    old = legacy_session()
    send_at(home, old, time.time_ns() - 3 * DAY_NS)
    stored = indexed(home, len(FIX) + 3 + len(old))
    recent = [e for e in stored if when(e) > time.time() - 86_400]
    assert len(recent) == len(FIX) + 3  # the legacy session is three days old

    open_viewer(page, home)
    page.locator('[data-testid="tab-analytics"]').click()
    view = page.locator('[data-testid="analytics"]')
    page.locator('[data-testid="range-24h"]').click()
    expect(page.locator('[data-testid="range-24h"]')).to_have_attribute("aria-pressed", "true")
    expect(view).to_have_attribute("aria-busy", "false")
    expect(page.locator("#pane-analytics")).to_have_attribute("data-loaded-range", "24h")
    expect(page.locator('[data-testid="analytics-empty"]')).to_be_hidden()
    expect_stats(page, recent)
    bash = page.locator('[data-testid="analytics-tool-row"][data-tool="Bash"]')
    expect(bash.locator(".calls")).to_have_text("3")  # two in shop (one failed), one in api

    page.locator('[data-testid="range-7d"]').click()
    expect(page.locator("#pane-analytics")).to_have_attribute("data-loaded-range", "7d")
    expect(bash.locator(".calls")).to_have_text("7")  # and the legacy session's four
    expect_stats(page, stored)
    expect(page.locator('[data-testid="project-row"][data-cwd="/home/dev/legacy"]')).to_have_count(1)

    page.locator('[data-testid="range-1h"]').click()
    expect(page.locator("#pane-analytics")).to_have_attribute("data-loaded-range", "1h")
    expect(bash.locator(".calls")).to_have_text("3")
    expect_stats(page, recent)

    # A tool's "Search" runs the history search for its calls in that range.
    bash.locator("button").click()
    expect(page.locator('[data-testid="tab-search"]')).to_have_attribute("aria-selected", "true")
    expect(page.locator('[data-testid="history-query"]')).to_have_value("tool:Bash since:1h")
    expect(page.locator('[data-testid="history-line"]')).to_have_count(
        sum(e.get("tool_name") == "Bash" for e in recent))


def test_empty_ranges_say_so(daemon, home, page):
    old = legacy_session()
    send_at(home, old, time.time_ns() - 10 * DAY_NS)
    stored = indexed(home, len(old))
    open_viewer(page, home)

    page.locator('[data-testid="tab-analytics"]').click()
    empty = page.locator('[data-testid="analytics-empty"]')
    for rng in ("24h", "7d"):
        page.locator(f'[data-testid="range-{rng}"]').click()
        expect(page.locator("#pane-analytics")).to_have_attribute("data-loaded-range", rng)
        expect(empty).to_be_visible()
        expect(empty).to_contain_text("No events in this range")
        expect(page.locator('[data-testid="chart-time"]')).to_be_hidden()
    page.locator('[data-testid="range-30d"]').click()
    expect(empty).to_be_hidden()
    expect_stats(page, stored)
    # No transcript was read: the cost section says so rather than showing $0.00.
    expect(page.locator('[data-testid="cost-empty"]')).to_contain_text(
        "No API responses were read in this range")
    expect(page.locator('[data-testid="stat-cost"]')).to_be_hidden()

    # The past sessions list over a range, likewise.
    page.locator('[data-testid="sessions-past"]').click()
    page.locator('[data-testid="sessions-range"]').select_option("30d")
    row = page.locator(f'[data-testid="past-session-row"][data-session-id="{LEGACY}"]')
    expect(row).to_have_count(1)
    expect(row.locator(".event-count")).to_have_text(str(len(old)))
    expect(page.locator('[data-testid="past-empty"]')).to_have_count(0)
    page.locator('[data-testid="sessions-range"]').select_option("24h")
    expect(page.locator('[data-testid="past-empty"]')).to_contain_text("No sessions in this range")
    expect(page.locator('[data-testid="past-session-row"]')).to_have_count(0)


# ---------------------------------------------------------------- cost

COST_OTHER = "7e57c0a7-2b1d-4c3e-9f00-c0571e550002"


def cost_sessions() -> list[dict]:
    """Two sessions of the fixture transcripts, each its hook events then the follower's
    ModelUsage and CostReport events: the fixtures' own in /home/dev/project, which Claude
    Code reported, priced by mpmd above Claude Code's price (a config.toml override); and one
    in /home/dev/api that no report covers, whose subagent's model has no price."""
    first = hook_events() + transcript_events(prices=DEARER)
    second = hook_events(COST_OTHER, "/home/dev/api") + transcript_events(
        COST_OTHER, models={AGENT: UNPRICED}, reports=0)
    return [payload for _at, _agent, payload in first + second]


def tokens_of(u: dict) -> int:
    return (u["input_tokens"] + u["output_tokens"] + u["cache_read_input_tokens"]
            + u["cache_creation_input_tokens"])


def usd(x: float) -> str:
    """An amount as a row shows it (docs/viewer.md, "Cost")."""
    return f"${x:.2f}"


def precise(x: float) -> str:
    """An amount to the hundredth of a cent, as tables and tooltips show it."""
    return f"${x:.4f}"


def expected_cost(payloads: list[dict]) -> dict:
    """What docs/viewer.md's /api/stats says of these events, all in the range: a session's
    cost is Claude Code's last report (plus mpmd's price of any response written after it),
    else mpmd's price of its responses; splits are mpmd's price."""
    usage = [p for p in payloads if p["hook_event_name"] == "ModelUsage"]
    sessions: dict[str, float] = {}
    for sid in dict.fromkeys(p["session_id"] for p in usage):
        mine = [p for p in usage if p["session_id"] == sid]
        reports = [p for p in payloads if p["hook_event_name"] == "CostReport"
                   and p["session_id"] == sid]
        if reports:
            last = reports[-1]
            sessions[sid] = last["total_cost_usd"] + sum(
                p["cost_usd"] or 0 for p in mine if p["at"] > last["as_of"])
        else:
            sessions[sid] = sum(p["cost_usd"] or 0 for p in mine)
    split: dict[str, dict[object, dict]] = {"model": {}, "prompt": {}}
    for key, table in split.items():
        for p in usage:
            k = (p["session_id"], p["prompt_id"]) if key == "prompt" else p["model"]
            row = table.setdefault(k, {"responses": 0, "tokens": 0, "usd": 0.0, "unpriced": 0})
            row["responses"] += 1
            row["tokens"] += tokens_of(p)
            row["usd"] += p["cost_usd"] or 0
            row["unpriced"] += p["cost_usd"] is None
    prompts = {p["prompt_id"]: p["prompt"] for p in payloads
               if p["hook_event_name"] == "UserPromptSubmit"}
    return {"sessions": sessions, "cost": sum(sessions.values()),
            "mpmd": sum(p["cost_usd"] or 0 for p in usage),
            "tokens": sum(tokens_of(p) for p in usage), "responses": len(usage),
            "unpriced": sum(p["cost_usd"] is None for p in usage),
            "models": split["model"], "prompts": split["prompt"], "texts": prompts}


def test_analytics_and_past_sessions_show_what_the_responses_cost(daemon, home, page):
    payloads = cost_sessions()
    send_events(home, [json.dumps(p).encode() for p in payloads])
    indexed(home, len(payloads))
    want = expected_cost(payloads)
    assert want["cost"] != want["mpmd"]  # the report and mpmd's price tell apart

    open_viewer(page, home)
    page.locator('[data-testid="tab-analytics"]').click()
    page.locator('[data-testid="range-24h"]').click()
    expect(page.locator("#pane-analytics")).to_have_attribute("data-loaded-range", "24h")
    expect(page.locator('[data-testid="cost-empty"]')).to_be_hidden()
    cost = page.locator('[data-testid="stat-cost"]')
    expect(cost.locator(".stat-value")).to_have_text(usd(want["cost"]))
    expect(cost).to_have_attribute("title", re.compile(
        rf"^{re.escape(precise(want['cost']))} over 2 sessions"))
    # Two sessions, both listed: the part that is Claude Code's own figure is known.
    expect(cost.locator(".stat-note")).to_have_text(
        f"{usd(want['sessions'][SESSION])} of it Claude Code's own figure (1 of 2 sessions)")
    mpmd = page.locator('[data-testid="stat-mpmd-price"]')
    expect(mpmd.locator(".stat-value")).to_have_text(usd(want["mpmd"]))
    expect(mpmd.locator(".stat-note")).to_have_text(f"+ {want['unpriced']} unpriced responses")
    expect(page.locator('[data-testid="stat-responses"] .stat-value')).to_have_text(
        str(want["responses"]))
    expect(page.locator('[data-testid="stat-tokens"]')).to_have_attribute(
        "title", re.compile(rf"^{want['tokens']:,} tokens: "))

    # Cost over time: the buckets add up to mpmd's price of every response.
    bars = page.locator('[data-testid="chart-cost"] [data-testid="cost-bar"]')
    expect(bars).not_to_have_count(0)
    shown = bars.evaluate_all("els => els.map(e => [Number(e.dataset.cost),"
                              " Number(e.dataset.responses)])")
    assert sum(n for _, n in shown) == want["responses"]
    assert abs(sum(c for c, _ in shown) - want["mpmd"]) < 1e-6

    models = page.locator('[data-testid="cost-model-row"]')
    expect(models).to_have_count(len(want["models"]))
    for model, figures in want["models"].items():
        row = page.locator(f'[data-testid="cost-model-row"][data-model="{model}"]')
        expect(row.locator(".responses")).to_have_text(str(figures["responses"]))
        expect(row.locator(".tokens")).to_have_text(f"{figures['tokens']:,}")
        expect(row.locator(".cost")).to_have_text(
            "no price" if figures["unpriced"] == figures["responses"] else precise(figures["usd"]))
    assert models.first.get_attribute("data-model") == "claude-opus-5-5"  # the costliest

    for cwd, sid in (("/home/dev/project", SESSION), ("/home/dev/api", COST_OTHER)):
        row = page.locator(f'[data-testid="cost-project-row"][data-cwd="{cwd}"]')
        expect(row.locator(".cost")).to_have_text(precise(want["sessions"][sid]))
        expect(row.locator(".sessions")).to_have_text("1")

    prompts = page.locator('[data-testid="costliest-prompt"]')
    ranked = sorted(want["prompts"].items(), key=lambda kv: -kv[1]["usd"])
    ranked = [(key, f) for key, f in ranked if key[1] is not None]  # a subagent's: no prompt
    expect(prompts).to_have_count(len(ranked))
    assert prompts.evaluate_all("els => els.map(e => e.dataset.promptId)") == [
        pid for (_sid, pid), _f in ranked]
    (sid, pid), figures = ranked[0]
    assert (sid, pid) == (SESSION, FIRST_PROMPT)
    top = prompts.first
    expect(top.locator(".prompt")).to_have_text(want["texts"][pid])
    expect(top).to_have_attribute("data-open-session", SESSION)
    expect(top.locator(".session")).to_have_text(f"project {SESSION[:8]}")
    expect(top.locator(".responses")).to_have_text(str(figures["responses"]))
    expect(top.locator(".tokens")).to_have_text(f"{figures['tokens']:,}")
    expect(top.locator(".cost")).to_have_text(precise(figures["usd"]))
    other = page.locator('[data-testid="costliest-prompt"]'
                         f'[data-prompt-id="{prompt_id(FIRST_PROMPT, COST_OTHER)}"]')
    expect(other.locator(".session")).to_have_text(f"api {COST_OTHER[:8]}")

    sessions = page.locator('[data-testid="costliest-session"]')
    expect(sessions).to_have_count(2)
    reported = sessions.nth(0).locator(".cost")
    expect(reported).to_have_text(usd(want["sessions"][SESSION]))
    expect(reported).to_have_attribute("data-source", "claude-code")
    estimated = sessions.nth(1).locator(".cost")
    expect(estimated).to_have_text("≈" + usd(want["sessions"][COST_OTHER]))
    expect(estimated).to_have_attribute("data-source", "mpmd")
    expect(sessions.nth(1).locator(".project")).to_have_text("api")

    # The past sessions list: each row's cost and tokens, as a live row says them.
    page.locator('[data-testid="sessions-past"]').click()
    row = page.locator(f'[data-testid="past-session-row"][data-session-id="{SESSION}"]')
    expect(row.locator('[data-testid="session-cost"]')).to_have_text(
        usd(want["sessions"][SESSION]))
    expect(row.locator('[data-testid="session-cost"]')).to_have_attribute(
        "data-source", "claude-code")
    mine = [p for p in payloads if p["hook_event_name"] == "ModelUsage"
            and p["session_id"] == SESSION]
    expect(row.locator('[data-testid="session-tokens"]')).to_have_attribute(
        "title", re.compile(rf"^{sum(map(tokens_of, mine)):,} tokens: "))
    other_row = page.locator(
        f'[data-testid="past-session-row"][data-session-id="{COST_OTHER}"]')
    expect(other_row.locator('[data-testid="session-cost"]')).to_have_text(
        "≈" + usd(want["sessions"][COST_OTHER]))
    expect(other_row.locator('[data-testid="session-unpriced"]')).to_have_text("+ 2 unpriced")

    # A past session: its usage by model, subagent and prompt under the History bar.
    row.click()
    expect(page.locator('[data-testid="history-progress"]')).to_have_text(
        f"{sum(p['session_id'] == SESSION for p in payloads)} events")
    panel = page.locator('[data-testid="history-usage"]')
    expect(panel).to_be_visible()
    expect(panel.locator('[data-testid="history-usage-total"]')).to_contain_text(
        usd(want["sessions"][SESSION]))
    panel.locator("summary").click()
    opus = panel.locator('[data-testid="usage-model"][data-model="claude-opus-5-5"]')
    expect(opus.locator(".responses")).to_have_text(str(len(mine)))
    expect(opus.locator(".tokens")).to_have_text(f"{sum(map(tokens_of, mine)):,}")
    expect(opus.locator(".cost")).to_have_text(precise(sum(p["cost_usd"] for p in mine)))
    agents = panel.locator('[data-testid="usage-agent"]')
    expect(agents).to_have_count(2)
    sub = panel.locator(f'[data-testid="usage-agent"][data-agent-id="{AGENT}"]')
    expect(sub.locator(".split-label")).to_have_text(f"general-purpose {AGENT[:8]}")
    expect(sub.locator(".responses")).to_have_text(
        str(sum(p["agent_id"] == AGENT for p in mine)))
    first = panel.locator(f'[data-testid="usage-prompt"][data-prompt-id="{FIRST_PROMPT}"]')
    expect(first.locator(".split-label")).to_have_text(want["texts"][FIRST_PROMPT])
    expect(first.locator(".cost")).to_have_text(
        precise(want["prompts"][(SESSION, FIRST_PROMPT)]["usd"]))
    # An event of it opens the detail with the same usage, as a live session's does.
    page.locator('[data-testid="feed-line"]').first.click()
    detail = page.locator('[data-testid="event-detail"] [data-testid="detail-usage"]')
    expect(detail).to_be_visible()
    expect(detail.locator('[data-testid="usage-model"][data-model="claude-opus-5-5"] .responses')
           ).to_have_text(str(len(mine)))

    page.locator('[data-testid="back-to-live"]').click()
    expect(panel).to_be_hidden()

    # A costliest prompt opens its session as history.
    page.locator('[data-testid="tab-analytics"]').click()
    page.locator('[data-testid="costliest-prompt"]'
                 f'[data-prompt-id="{prompt_id(FIRST_PROMPT, COST_OTHER)}"]').click()
    expect(page.locator('[data-testid="history-banner"]')).to_contain_text("api")


# ---------------------------------------------------------------- screenshots

def test_screenshots_of_search_history_and_analytics(daemon, home, browser, tmp_path):
    folder = screenshot_folder(tmp_path)
    old = legacy_session()
    send_at(home, old, time.time_ns() - 2 * DAY_NS)
    send_at(home, old[:6], time.time_ns() - 5 * DAY_NS)
    feed(home, *FIX, *api_session())
    indexed(home, len(old) + 6 + len(FIX) + 3)
    url = viewer_url(home)
    for scheme, pg in themed_pages(browser, url):
        pg.locator('[data-testid="tab-search"]').click()
        run_search(pg, "tool:Bash OR risk:high")
        expect(pg.locator('[data-testid="history-line"]')).not_to_have_count(0)
        pg.locator('[data-testid="history-line"]').nth(1).click()
        expect(pg.locator('[data-testid="event-detail"]')).to_be_visible()
        pg.screenshot(path=folder / f"{scheme}-search.png", animations="disabled")
        pg.keyboard.press("Escape")

        pg.locator('[data-testid="sessions-past"]').click()
        pg.locator(f'[data-testid="past-session-row"][data-session-id="{SHOP}"]').click()
        expect(pg.locator('[data-testid="history-progress"]')).to_have_text(
            f"{len(FIX)} events")
        pg.screenshot(path=folder / f"{scheme}-history.png", animations="disabled")
        pg.locator('[data-testid="back-to-live"]').click()

        pg.locator('[data-testid="tab-analytics"]').click()
        pg.locator('[data-testid="range-7d"]').click()
        expect(pg.locator('[data-testid="time-bar"]')).not_to_have_count(0)
        expect(pg.locator('[data-testid="chart-tools"] [data-testid="bar-row"]')
               ).not_to_have_count(0)
        pg.screenshot(path=folder / f"{scheme}-analytics.png", animations="disabled")
    assert len(list(folder.glob("*-search.png"))) == 2
    assert len(list(folder.glob("*-analytics.png"))) == 2

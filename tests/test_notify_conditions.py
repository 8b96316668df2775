"""Which notifications the journal calls for (mpmd.notify.conditions), what they say
(mpmd.notify.message) and the rules that decide (mpmd.notify.rules): pure, on journal
lines built the way the daemon builds them (mpmd.model.record)."""

from __future__ import annotations

import itertools
import time
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec
import pytest

from mpmd.model import record
from mpmd.model.events import EventFrame
from mpmd.notify import conditions as C
from mpmd.notify import rules as R
from mpmd.notify.message import MAX_BODY, MAX_TITLE, for_target, render
from mpmd.serve import links

pytestmark = pytest.mark.unit

SID = "9f1c2b7e-4d3a-4e59-9b1a-6c0f2d8e5a71"
CWD = "/home/dev/shop"
T0 = 1_800_000_000.0  # the tests' "now" starts here
KEY = b"k" * 64
_seq = itertools.count(1)


def line(event: str, at: float = T0, decision: dict | None = None, session: str = SID,
         cwd: str = CWD, **fields: object) -> bytes:
    payload = {"session_id": session, "cwd": cwd, "hook_event_name": event, **fields}
    data = msgspec.json.encode(payload)
    ts = int(at * 1e9)
    frame = EventFrame(version=1, id=next(_seq).to_bytes(16, "big"), ts_ns=ts, payload=data,
                       original_size=len(data), decision=decision)
    return record.build(next(_seq), frame, ts)


def rule(**over: object) -> R.Rule:
    table: dict[str, object] = {"name": "phone", "targets": ["ntfy://127.0.0.1/t"],
                                "on": list(R.CONDITIONS), "budget_usd": 1.0}
    table.update(over)
    return R.parse_one(table)


def feed(watch: C.Watch, *lines: bytes, now: float = T0) -> list[tuple[R.Rule, list]]:
    for one in lines:
        watch.feed(one, now)
    return watch.due(now, minute_of_day=12 * 60)


def bash_call(command: str, use_id: str = "toolu_1", at: float = T0) -> list[bytes]:
    tool = {"tool_name": "Bash", "tool_input": {"command": command}}
    return [line("PreToolUse", at, tool_use_id=use_id, **tool),
            line("PermissionRequest", at, **tool)]


def test_a_permission_prompt_is_one_notification_then_one_follow_up():
    watch = C.Watch([rule()])
    out = feed(watch, *bash_call("npm test"))
    assert len(out) == 1 and len(out[0][1]) == 1
    notice = out[0][1][0]
    assert (notice.condition, notice.phase, notice.tool_name, notice.detail) == \
        (R.NEEDS_YOU, "open", "Bash", "npm test")
    # Claude Code's own permission_prompt Notification joins the same wait: no repeat.
    again = feed(watch, line("Notification", notification_type="permission_prompt",
                             message="Claude needs your permission to use Bash"),
                 now=T0 + 30)
    assert again == []
    assert feed(watch, now=T0 + 60) == []
    done = feed(watch, line("PostToolUse", T0 + 61, tool_name="Bash", tool_use_id="toolu_1",
                            tool_input={"command": "npm test"}), now=T0 + 61)
    assert [(n.phase, n.resolution) for n in done[0][1]] == \
        [("resolved", "approved: the tool ran")]
    assert feed(watch, now=T0 + 120) == []


def test_the_message_names_project_session_command_wait_and_link():
    watch = C.Watch([rule()])
    feed(watch, *bash_call("npm test"), now=T0)
    watch.state.sent.clear()  # send it again, 3 minutes on
    (r, notices), = watch.due(T0 + 180, minute_of_day=600)
    m = render(r, notices, T0 + 180, "http://127.0.0.1:7710/", KEY)
    assert m.title == "shop: needs you"
    assert "shop (9f1c2b7e) needs you, waiting 3 min: Bash: npm test" in m.body
    assert m.click == f"http://127.0.0.1:7710/#session={SID}"
    assert m.actions == []  # not a held request: nothing to answer from here


def test_a_held_request_carries_approve_and_deny_links_for_it_alone():
    watch = C.Watch([rule()])
    held = bash_call("git push")
    held[1] = line("PermissionRequest", decision={"action": "remote", "timeout_s": 120,
                                                  "rule": "ask-me"},
                   tool_name="Bash", tool_input={"command": "git push"})
    (r, notices), = feed(watch, *held)
    m = render(r, notices, T0, "http://127.0.0.1:7710/", KEY, "https://box.example.ts.net")
    stored = msgspec.json.decode(held[1])
    assert [label for label, _ in m.actions] == ["Approve", "Deny"]
    for (_label, url), answer in zip(m.actions, ("allow", "deny"), strict=True):
        assert url.startswith("https://box.example.ts.net/act/")
        action = links.verify(KEY, url.rsplit("/", 1)[1], T0)
        assert action == links.Action(stored["seq"], bytes.fromhex(stored["id"]), answer,
                                      int(T0 + 120))
    # ntfy: buttons that POST; anything else: the links in the text.
    ntfy_url, body = for_target(m, "ntfy://127.0.0.1:9/topic")
    query = {k: unquote(v[0]) for k, v in parse_qs(urlsplit(ntfy_url).query).items()}
    assert ";" not in urlsplit(ntfy_url).query  # apprise would split the actions there
    assert query["actions"].count("method=POST") == 2
    # The whole viewer answers its loopback Host only: the session link points there.
    assert query["click"] == f"http://127.0.0.1:7710/#session={SID}"
    assert "Approve:" not in body
    _url, body = for_target(m, "mmost://127.0.0.1:9/hook")
    assert f"Approve: {m.actions[0][1]}" in body and f"Deny: {m.actions[1][1]}" in body
    # Answered from the link: the follow-up says so.
    answered = line("RemoteAnswer", T0 + 5, answer_to=stored["seq"], behavior="allow",
                    answered_by="link", tool_name="Bash")
    (_r, follow), = feed(watch, answered, now=T0 + 5)
    assert [n.resolution for n in follow] == ["approved from a notification"]
    assert watch.state.held == {}


def test_links_stop_at_the_request_expiry_and_an_expired_one_has_none():
    watch = C.Watch([rule()])
    held = [line("PermissionRequest", decision={"action": "remote", "timeout_s": 60},
                 tool_name="Bash", tool_input={"command": "ls"})]
    (r, notices), = feed(watch, *held)
    late = render(r, notices, T0 + 61, "http://127.0.0.1:7710/", KEY)
    assert late.actions == []


def test_secrets_are_redacted_in_what_is_sent():
    watch = C.Watch([rule()])
    token = "ghp_" + "a1B2" * 9
    (r, notices), = feed(watch, *bash_call(f"curl -H 'Authorization: token {token}' x"))
    m = render(r, notices, T0, "http://127.0.0.1:7710/", KEY)
    assert token not in m.body and token not in m.title


def test_failures_found_together_are_one_grouped_message():
    watch = C.Watch([rule(on=["tool-failed"])])
    fails = [line("PostToolUseFailure", T0, tool_name="Bash", tool_use_id=f"t{i}",
                  error=f"exit {i}") for i in range(3)]
    (r, notices), = feed(watch, *fails)
    assert len(notices) == 3
    m = render(r, notices, T0, "http://127.0.0.1:7710/", None)
    assert m.title == "mpmd: 3 tool calls failed"
    assert m.body.count("• ") == 3 and "exit 2" in m.body
    assert m.kind == "failure"


def test_an_interrupt_is_not_a_failure_and_an_old_event_is_not_news():
    watch = C.Watch([rule(on=["tool-failed", "ended"])])
    out = feed(watch, line("PostToolUseFailure", tool_name="Bash", error="x",
                           is_interrupt=True),
               line("SessionEnd", T0 - C.MAX_EVENT_AGE_S - 1, reason="clear"))
    assert out == []
    assert watch.state.counts == {"stale": 1}


def test_quiet_hours_drop_events_and_hold_a_lasting_wait_until_they_end():
    watch = C.Watch([rule(quiet_hours="22:00-07:00")])
    for one in (*bash_call("make deploy"),
                line("PostToolUseFailure", tool_name="Read", tool_use_id="r1", error="x")):
        watch.feed(one, T0)
    assert watch.due(T0, minute_of_day=23 * 60) == []
    assert watch.due(T0 + 60, minute_of_day=6 * 60 + 59) == []
    (_r, notices), = watch.due(T0 + 120, minute_of_day=7 * 60)
    assert [(n.condition, n.detail) for n in notices] == [(R.NEEDS_YOU, "make deploy")]
    assert watch.state.counts == {"quiet": 1}


def test_after_s_sends_only_a_wait_that_lasts():
    watch = C.Watch([rule(after_s=30)])
    assert feed(watch, *bash_call("npm test")) == []
    # Answered within the 30 s: never sent, nothing to follow up.
    assert feed(watch, line("PostToolUse", T0 + 10, tool_name="Bash", tool_use_id="toolu_1"),
                now=T0 + 10) == []
    assert feed(watch, now=T0 + 60) == []
    feed(watch, *bash_call("npm run e2e", "toolu_2", T0 + 100), now=T0 + 100)
    (_r, notices), = feed(watch, now=T0 + 131)
    assert notices[0].detail == "npm run e2e"


def test_a_rule_sends_at_most_max_per_hour_and_the_rest_waits_grouped():
    watch = C.Watch([rule(on=["turn-failed"], max_per_hour=1)])
    assert len(feed(watch, line("StopFailure", error="a"))) == 1
    assert feed(watch, line("StopFailure", error="b"), line("StopFailure", error="c"),
                now=T0 + 10) == []
    (_r, notices), = feed(watch, now=T0 + 3601)
    assert [n.detail for n in notices] == ["b", "c"]


def test_a_rules_backlog_is_bounded_and_what_passes_it_is_counted():
    watch = C.Watch([rule(on=["turn-failed"], max_per_hour=1)])
    feed(watch, line("StopFailure", error="first"))
    extra = 7
    for i in range(C.MAX_BACKLOG + extra):
        watch.feed(line("StopFailure", T0 + 1, error=f"e{i}"), T0 + 1)
        watch.due(T0 + 1, minute_of_day=600)
    assert len(watch.state.backlog["phone"]) == C.MAX_BACKLOG
    assert watch.state.counts["dropped"] == extra


def test_idle_is_told_once_per_idle_spell():
    watch = C.Watch([rule(on=["idle"], idle_minutes=10)])
    feed(watch, line("Stop", T0))
    assert feed(watch, now=T0 + 599) == []
    (_r, notices), = feed(watch, now=T0 + 600)
    assert notices[0].condition == R.IDLE
    assert feed(watch, now=T0 + 1200) == []
    feed(watch, line("UserPromptSubmit", T0 + 1300, prompt="go on"), line("Stop", T0 + 1301),
         now=T0 + 1301)
    assert len(feed(watch, now=T0 + 1301 + 600)) == 1


def test_cost_passing_the_budget_is_told_once():
    watch = C.Watch([rule(on=["cost"], budget_usd=2.5)])
    assert feed(watch, line("SessionStart", source="startup"),
                line("CostReport", total_cost_usd=1.0, as_of="x")) == []
    (_r, notices), = feed(watch, line("CostReport", total_cost_usd=2.6, as_of="y"))
    m = render(_r, notices, T0, "http://127.0.0.1:7710/", None)
    assert "has cost $2.60" in m.body
    assert feed(watch, line("CostReport", total_cost_usd=9.0, as_of="z")) == []


def test_projects_and_sessions_choose_what_a_rule_watches():
    watch = C.Watch([rule(name="work", projects=["work-*"]),
                     rule(name="one", sessions=["abc"])])
    out = feed(watch, *bash_call("npm test"))
    assert out == []
    out = feed(watch, line("PermissionRequest", cwd="/src/work-api", session="abc-1",
                           tool_name="Bash", tool_input={"command": "ls"}))
    assert sorted(r.name for r, _ in out) == ["one", "work"]


def test_the_state_survives_a_restart_without_repeats_or_losses():
    watch = C.Watch([rule()])
    feed(watch, *bash_call("npm test"))
    saved = msgspec.json.encode(watch.dump())
    again = C.Watch([rule()], msgspec.json.decode(saved, type=C.State))
    assert feed(again, now=T0 + 5) == []  # sent before the restart: not again
    (_r, notices), = feed(again, line("PostToolUse", T0 + 6, tool_name="Bash",
                                      tool_use_id="toolu_1"), now=T0 + 6)
    assert notices[0].phase == "resolved"


def test_a_wait_of_a_session_long_gone_is_not_sent():
    watch = C.Watch([rule()])
    old = T0 - C.MAX_LASTING_AGE_S - 10
    assert feed(watch, *bash_call("npm test", at=old)) == []


@pytest.mark.parametrize("table, error", [
    ({"targets": ["ntfy://x/t"]}, "name: required"),
    ({"name": "a b", "targets": ["ntfy://x/t"]}, "name: required"),
    ({"name": "a"}, "targets: required"),
    ({"name": "a", "targets": []}, "targets: must be a list of 1 to 20"),
    ({"name": "a", "targets": ["x"] * 21}, "targets: must be a list of 1 to 20"),
    ({"name": "a", "targets": ["no-schema"]}, "is not an apprise URL"),
    ({"name": "a", "targets": ["ntfy://" + "x" * R.MAX_URL_CHARS]}, "is not an apprise URL"),
    ({"name": "a", "targets": ["ntfy://x/t"], "on": ["needs_you"]}, "is not a condition"),
    ({"name": "a", "targets": ["ntfy://x/t"], "on": ["cost"]}, "budget_usd: required"),
    ({"name": "a", "targets": ["ntfy://x/t"], "quiet_hours": "22-7"}, "quiet_hours"),
    ({"name": "a", "targets": ["ntfy://x/t"], "idle_minutes": 0}, "idle_minutes: must be"),
    ({"name": "a", "targets": ["ntfy://x/t"], "max_per_hour": 3601}, "max_per_hour"),
    ({"name": "a", "targets": ["ntfy://x/t"], "actions": "yes"}, "actions: must be true"),
    ({"name": "a", "targets": ["ntfy://x/t"], "colour": "red"}, "colour: unknown key"),
])
def test_a_bad_table_is_refused_with_its_key_named(table, error):
    good, bad = R.parse([table, {"name": "fine", "targets": ["ntfy://x/t"]}])
    assert [r.name for r in good] == ["fine"]  # the others go on
    assert len(bad) == 1 and error in bad[0].error


def test_rules_past_the_bound_are_refused_and_names_are_unique():
    tables = [{"name": f"r{i}", "targets": ["ntfy://x/t"]} for i in range(R.MAX_RULES + 2)]
    tables.append({"name": "r0", "targets": ["ntfy://x/t"]})
    good, bad = R.parse(tables)
    assert len(good) == R.MAX_RULES
    assert len(bad) == 3 and "another rule has that name" not in bad[0].error
    assert R.parse({"name": "x"})[1][0].error.startswith("notify must be an array")


def test_a_target_is_shown_without_its_secret():
    assert R.safe_target("ntfy://user:pw@ntfy.sh/secret-topic?x=1") == "ntfy://ntfy.sh/…"
    assert R.safe_target("slack://T000/B000/XXXX") == "slack://T000/…"
    assert R.safe_target("oops") == "(not a URL)"


def test_quiet_hours_across_midnight():
    r = rule(quiet_hours="22:30-07:00")
    assert [r.quiet(m) for m in (22 * 60 + 29, 22 * 60 + 30, 0, 6 * 60 + 59, 7 * 60)] == \
        [False, True, True, True, False]


def test_quiet_hours_go_by_the_local_clock_when_none_is_given():
    local = time.localtime()
    now_minute = local.tm_hour * 60 + local.tm_min
    # Quiet for the whole day but this minute and the next: not quiet now (read off the
    # clock), whatever the time of the run.
    start = (now_minute + 2) % 1440
    quiet = f"{start // 60:02d}:{start % 60:02d}-{now_minute // 60:02d}:{now_minute % 60:02d}"
    watch = C.Watch([rule(on=["turn-failed"], quiet_hours=quiet)])
    watch.feed(line("StopFailure", time.time(), error="x"), time.time())
    assert len(watch.due(time.time())) == 1


def test_held_requests_remembered_are_bounded(monkeypatch):
    monkeypatch.setattr(C, "MAX_HELD", 3)
    watch = C.Watch([rule()])
    held = [line("PermissionRequest", decision={"action": "remote"}, tool_name="Bash",
                 tool_input={"command": f"ls {i}"}) for i in range(5)]
    feed(watch, *held)
    seqs = [msgspec.json.decode(one)["seq"] for one in held]
    assert list(watch.state.held) == seqs[-3:]  # the newest kept


def test_cost_crossings_are_remembered_while_their_session_is_in_the_table():
    watch = C.Watch([rule(on=["cost"], budget_usd=1.0)], max_sessions=2)
    told = 0
    for i in range(4):
        told += len(feed(watch, line("SessionStart", session=f"s{i}", source="startup"),
                         line("CostReport", session=f"s{i}", total_cost_usd=2.0,
                              as_of="x")))
        told += len(feed(watch, now=T0 + 1))  # a later pass: not told again
    assert told == 4  # each session once
    assert list(watch.state.told["phone"]) == ["cost:s2", "cost:s3"]


def test_events_read_past_what_the_rules_keep_are_counted():
    watch = C.Watch([rule(on=["turn-failed"])])
    for i in range(C.MAX_BACKLOG + 4):
        watch.feed(line("StopFailure", error=f"e{i}"), T0)
    assert len(watch.state.events) == C.MAX_BACKLOG
    assert watch.state.counts == {"dropped": 4}


def test_a_group_lists_ten_and_counts_the_rest_and_a_message_has_a_bound():
    watch = C.Watch([rule(on=["tool-failed"])])
    fails = [line("PostToolUseFailure", tool_name="Bash", tool_use_id=f"t{i}",
                  error="E" * 5000) for i in range(25)]
    (r, notices), = feed(watch, *fails)
    m = render(r, notices, T0, "http://127.0.0.1:7710/", None)
    assert m.body.count("• ") == 10
    assert "… and 15 more" in m.body
    assert all(len(n.detail) <= C.MAX_TEXT for n in notices)
    assert len(m.body) <= MAX_BODY and len(m.title) <= MAX_TITLE


def test_claude_codes_idle_prompt_is_not_a_wait_for_an_answer():
    watch = C.Watch([rule(on=["needs-you"])])
    assert feed(watch, line("Stop"), line("Notification", T0 + 60,
                                          notification_type="idle_prompt",
                                          message="Claude is waiting for your input"),
                now=T0 + 60) == []
    (_r, notices), = feed(watch, line("Notification", T0 + 61,
                                      notification_type="elicitation_dialog",
                                      message="Claude Code needs your input"), now=T0 + 61)
    assert notices[0].detail == "Claude Code needs your input"

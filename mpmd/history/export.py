"""Pure: one session's events -> a file to keep or share (`mpmd export`).

jsonl and json are the journal lines as they are. md and html are a readable report: the
session's header (project, model, times, counts, tokens and cost, from the same fold the
viewer uses), its prompts, its failures with their errors, per-tool and per-model figures,
and every event in order. The html is one self-contained file (inline style, no script),
every text escaped.
"""

from __future__ import annotations

import html
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

import msgspec

from mpmd.model.sessions import EventView, ModelTotals, Session, Sessions

FORMATS = ("jsonl", "json", "md", "html")
_view_decoder = msgspec.json.Decoder(EventView)
_any_decoder = msgspec.json.Decoder(dict[str, Any])


class Report(msgspec.Struct):
    session: Session
    events: list[dict[str, Any]]
    prompts: list[tuple[str, str]]  # (time, text)
    failures: list[tuple[str, str, str]]  # (time, what, error)
    tools: list[tuple[str, int, int, float | None]]  # (tool, calls, failures, median ms)


def report(lines: Iterable[bytes]) -> Report:
    table = Sessions()
    events: list[dict[str, Any]] = []
    session: Session | None = None
    for line in lines:
        folded = table.apply(_view_decoder.decode(line))
        session = folded or session
        events.append(_any_decoder.decode(line))
    if session is None:
        raise ValueError("no events with a session")
    prompts, failures = [], []
    calls: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    durations: dict[str, list[int]] = defaultdict(list)
    for ev in events:
        raw = ev.get("payload")
        payload: dict[str, Any] = raw if isinstance(raw, dict) else {}
        kind = ev["event_type"]
        if kind == "UserPromptSubmit" and isinstance(payload.get("prompt"), str):
            prompts.append((ev["timestamp"], payload["prompt"]))
        if kind in ("PostToolUseFailure", "StopFailure"):
            error = payload.get("error") or payload.get("error_details") or ""
            failures.append((ev["timestamp"], ev.get("summary", kind), str(error)))
        if kind in ("PostToolUse", "PostToolUseFailure"):
            tool = ev.get("tool_name") or "?"
            calls[tool] += 1
            failed[tool] += kind == "PostToolUseFailure"
            if isinstance(payload.get("duration_ms"), int):
                durations[tool].append(payload["duration_ms"])
    tools = [(tool, n, failed[tool],
              statistics.median(durations[tool]) if durations[tool] else None)
             for tool, n in calls.most_common()]
    return Report(session, events, prompts, failures, tools)


def _usd(value: float | None) -> str:
    return "no price" if value is None else f"${value:.4f}"


_SOURCES = {"claude-code": "Claude Code's own report", "mpmd": "mpmd's price"}


def cost_line(s: Session) -> str | None:
    """The session's tokens and cost in a line; None when it has no responses."""
    responses = sum(m.responses for m in s.models.values())
    if not responses and s.cost_usd is None:
        return None
    line = (f"{s.input_tokens:,} in, {s.output_tokens:,} out, {s.cache_read_tokens:,} cache "
            f"read, {s.cache_write_tokens:,} cache write tokens in {responses} responses; cost "
            f"{_usd(s.cost_usd)}")
    if s.cost_source in _SOURCES:
        line += f" ({_SOURCES[s.cost_source]})"
    if s.unpriced_responses:
        line += f", {s.unpriced_responses} responses of a model with no price not in it"
    return line


def _model_rows(s: Session) -> list[tuple[str, ModelTotals]]:
    return sorted(s.models.items(), key=lambda item: -(item[1].cost_usd or 0.0))


def _hms(stamp: str) -> str:
    return stamp[11:19] if len(stamp) >= 19 else stamp


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def markdown(r: Report) -> str:
    s = r.session
    out = [
        f"# Session {s.project or s.session_id}",
        "",
        f"- session: `{s.session_id}`",
        f"- folder: `{s.cwd or '-'}`",
        f"- model: {s.model or '-'}",
        f"- started: {s.started_at}",
        f"- last event: {s.last_event_at}" + (f" (ended: {s.end_reason})" if s.ended_at else ""),
        f"- events: {s.event_count}, tool calls: {s.tool_count}, failures: {s.failure_count}",
    ]
    cost = cost_line(s)
    out += [f"- tokens and cost: {cost}", ""] if cost else [""]
    if r.prompts:
        out += ["## Prompts", ""]
        out += [f"- {_hms(t)} {_md_cell(text)}" for t, text in r.prompts] + [""]
    if r.failures:
        out += ["## Failures", ""]
        out += [f"- {_hms(t)} {_md_cell(what)}: `{_md_cell(err)[:300]}`"
                for t, what, err in r.failures] + [""]
    if r.tools:
        out += ["## Tools", "", "| tool | calls | failed | median |", "|---|---|---|---|"]
        out += [f"| {_md_cell(tool)} | {n} | {bad} | "
                f"{'-' if med is None else f'{med:.0f} ms'} |" for tool, n, bad, med in r.tools]
        out.append("")
    if s.models:
        out += ["## Models", "",
                "| model | responses | input | output | cache read | cache write | cost |",
                "|---|---|---|---|---|---|---|"]
        out += [f"| {_md_cell(name)} | {m.responses} | {m.input_tokens:,} | "
                f"{m.output_tokens:,} | {m.cache_read_tokens:,} | {m.cache_write_tokens:,} | "
                f"{_usd(m.cost_usd)} |" for name, m in _model_rows(s)]
        out.append("")
    out += ["## Events", "", "| time | event | what |", "|---|---|---|"]
    out += [f"| {_hms(ev['timestamp'])} | {ev['event_type']} | {_md_cell(ev.get('summary', ''))} |"
            for ev in r.events]
    return "\n".join(out) + "\n"


_STYLE = (
    "body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:70rem;padding:0 1rem}"
    "table{border-collapse:collapse;width:100%}"
    "td,th{border-bottom:1px solid #8884;padding:.2rem .5rem;text-align:left;vertical-align:top}"
    "code,td.t{font-family:ui-monospace,monospace}.fail{color:#c33}"
    "@media(prefers-color-scheme:dark){body{background:#111;color:#ddd}}"
)


def html_report(r: Report) -> str:
    e = html.escape
    s = r.session
    rows = "".join(
        f"<tr{' class=fail' if ev['event_type'] in ('PostToolUseFailure', 'StopFailure') else ''}>"
        f"<td class=t>{e(_hms(ev['timestamp']))}</td><td>{e(ev['event_type'])}</td>"
        f"<td>{e(ev.get('summary', ''))}</td></tr>" for ev in r.events)
    parts = [
        "<!doctype html><meta charset=utf-8>",
        f"<title>Session {e(s.project or s.session_id)}</title><style>{_STYLE}</style>",
        f"<h1>Session {e(s.project or s.session_id)}</h1><ul>",
        f"<li>session <code>{e(s.session_id)}</code><li>folder <code>{e(s.cwd or '-')}</code>",
        f"<li>model {e(s.model or '-')}<li>started {e(s.started_at)}",
        f"<li>last event {e(s.last_event_at)}"
        + (f" (ended: {e(s.end_reason or '')})" if s.ended_at else ""),
        f"<li>events {s.event_count}, tool calls {s.tool_count}, failures {s.failure_count}",
    ]
    cost = cost_line(s)
    parts.append((f"<li>tokens and cost: {e(cost)}" if cost else "") + "</ul>")
    if r.prompts:
        parts.append("<h2>Prompts</h2><ul>" + "".join(
            f"<li><code>{e(_hms(t))}</code> {e(text)}" for t, text in r.prompts) + "</ul>")
    if r.failures:
        parts.append("<h2>Failures</h2><ul>" + "".join(
            f"<li class=fail><code>{e(_hms(t))}</code> {e(what)}: <code>{e(err[:300])}</code>"
            for t, what, err in r.failures) + "</ul>")
    if r.tools:
        parts.append("<h2>Tools</h2><table><tr><th>tool<th>calls<th>failed<th>median</tr>"
                     + "".join(f"<tr><td>{e(tool)}<td>{n}<td>{bad}<td>"
                               f"{'-' if med is None else f'{med:.0f} ms'}</tr>"
                               for tool, n, bad, med in r.tools) + "</table>")
    if s.models:
        parts.append(
            "<h2>Models</h2><table><tr><th>model<th>responses<th>input<th>output"
            "<th>cache read<th>cache write<th>cost</tr>" + "".join(
                f"<tr><td>{e(name)}<td>{m.responses}<td>{m.input_tokens:,}"
                f"<td>{m.output_tokens:,}<td>{m.cache_read_tokens:,}"
                f"<td>{m.cache_write_tokens:,}<td>{e(_usd(m.cost_usd))}</tr>"
                for name, m in _model_rows(s)) + "</table>")
    parts.append(f"<h2>Events</h2><table><tr><th>time<th>event<th>what</tr>{rows}</table>")
    return "\n".join(parts) + "\n"


def render(lines: list[bytes], fmt: str) -> bytes:
    if fmt == "jsonl":
        return b"".join(line + b"\n" for line in lines)
    if fmt == "json":
        return b"[" + b",".join(lines) + b"]\n"
    r = report(lines)
    return (markdown(r) if fmt == "md" else html_report(r)).encode()

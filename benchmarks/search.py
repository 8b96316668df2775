"""The search index at 1,000,000 events: indexing rate, size and query latency.

A journal of ``--events`` (default 1,000,000) synthetic but realistic stored events is
generated from the fixture payloads' shapes: a few thousand sessions of 50-1000 events,
each in a project of its own (cwd, transcript path, language: TypeScript, Python, Go or
Rust paths and commands), spread over 30 days in working hours, concurrent sessions
interleaved; prompts, commands, paths, commit messages, errors and file contents drawn
from vocabularies with a long tail (Zipf), tool calls as PreToolUse/PostToolUse pairs with
the same tool_use_id, failures at ~4% of tool calls, permission prompts, subagents,
compaction. Every line is made by ``mpmd.model.record.build`` (exactly what the daemon stores)
and written with ``mpmd.storage.journal.Journal`` (64 MiB segments, rotated at UTC midnight of the
events' own clock; closed segments gzipped as the daemon's maintenance does). The journal
is cached under /tmp between runs (``--fresh`` makes it anew); generation time is shown but
is no target.

Then, against the targets of the issue:

    reindex       mpmd.history.index.rebuild over the whole journal (what ``mpmd reindex`` does),
                  and the real ``mpmd reindex`` command end to end (no daemon: it rebuilds
                  in its own process)                              target <= 60 s at 1 M
    incremental   Index.add in batches of 256, 2,000 and 4,096 lines on top of the index
                  holding the 1 M; the target is for 2,000, the index worker's batch when
                  it has a backlog (a smaller one means it is keeping up)
                                                                   target >= 20,000 events/s
    size          index file (+ -wal) / the journal's uncompressed bytes     target <= 1.5
    queries       typical queries compiled by mpmd.history.query.compile, through
                  mpmd.history.index.search on a read-only connection, ``--runs`` values each
                  (words picked by how many events hold them, per fts5vocab; phrases,
                  sessions, days and seqs drawn from the data) after a warm-up
                                                                   target p95 <= 200 ms
    daemon        a real daemon (fresh MPMD_HOME) offered ``--daemon-rate`` events/s for
                  ``--daemon-seconds``: how fast its index worker followed the journal
                  meanwhile, and whether it caught up once the load stopped

Where the time goes is printed too: the reindex split into reading the journal, row_of
(Python: decode, text) and the rest (zlib blocks, SQLite); ``--plans`` prints EXPLAIN QUERY
PLAN of each query type's slowest run; ``--profile`` runs ``mpmd reindex`` under py-spy.

    .venv/bin/python benchmarks/search.py [--events 1000000 | --quick] [--runs 30] [--fresh]
        [--plans] [--profile] [--daemon-seconds 10] [--skip-cli] [--generate-only] [--keep]

At 1 M events: ~3.5 min once the journal is cached (generating it takes ~3 min more,
once). It needs ~2.5 GB free in /tmp: the journal, and the index twice while `mpmd reindex`
rebuilds it beside the old one. The last stdout line is one JSON object with all the
figures.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import itertools
import json
import math
import os
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _common as C
import msgspec

from mpmd.history import index as mindex
from mpmd.history.index_worker import BATCH as WORKER_BATCH
from mpmd.model import record
from mpmd.model.events import EventFrame
from mpmd.storage.journal import Journal

# Bump when the generator changes: cached journals of another version are not reused.
GEN_VERSION = "g2"
CACHE_ROOT = Path("/tmp/mpmd-bench-search")
DAY_NS = 86_400 * 10**9
SPAN_DAYS = 30
MS = 1_000_000  # ns
S = 1_000_000_000  # ns

TARGET_REINDEX_S = 60.0  # for 1 M events
TARGET_INCREMENTAL = 20_000  # events/s
TARGET_SIZE_RATIO = 1.5
TARGET_P95_MS = 200.0

_encode = msgspec.json.Encoder().encode

# ---- vocabularies ------------------------------------------------------------------------
PROJECTS = (
    "shop", "api-gateway", "billing-service", "mobile-app", "infra", "docs-site",
    "data-pipeline", "auth-service", "web-frontend", "ml-models", "cli-tools", "payments",
    "search", "analytics", "notifications", "admin-dashboard", "design-system", "etl-jobs",
    "k8s-config", "game-engine", "chat-server", "crm", "inventory", "recommender",
    "scheduler", "blog", "invoice-generator", "feature-flags", "media-transcoder",
    "geo-service", "ledger", "support-bot", "status-page", "observability", "sdk-python",
    "sdk-js", "terraform-modules", "warehouse", "booking", "compiler-playground",
)
USERS = ("dev", "alice", "bob", "sam", "priya", "chen")
LANGS = ("ts", "py", "go", "rs")
LANG_WEIGHTS = (45, 35, 12, 8)
MODELS = ("claude-sonnet-5", "claude-opus-5", "claude-haiku-5")
MODES = ("default", "acceptEdits", "plan", "bypassPermissions")
MODE_WEIGHTS = (70, 20, 6, 4)

DIRS = (
    "auth", "api", "billing", "components", "hooks", "utils", "models", "services", "db",
    "config", "routes", "middleware", "handlers", "store", "pages", "lib", "core", "jobs",
    "workers", "cache", "events", "metrics", "search", "payments", "users", "orders", "cart",
    "checkout", "admin", "email", "notifications", "reports", "sessions", "storage", "queue",
    "webhooks", "graphql", "migrations", "schemas", "i18n", "analytics", "export", "import",
    "scheduler", "pricing", "inventory", "shipping", "tax", "audit", "features",
)
STEMS = (
    "user", "order", "invoice", "payment", "cart", "client", "server", "router", "schema",
    "token", "session", "login", "permission", "validator", "parser", "formatter", "logger",
    "retry", "queue", "webhook", "export", "report", "setting", "theme", "button", "modal",
    "table", "form", "header", "sidebar", "account", "profile", "price", "discount",
    "coupon", "refund", "subscription", "plan", "quota", "limit", "rate", "cache", "index",
    "search", "filter", "sort", "page", "cursor", "batch", "job", "worker", "task", "event",
    "message", "channel", "topic", "stream", "upload", "download", "image", "thumbnail",
    "email", "template", "notification", "audit", "metric", "trace", "span", "config",
    "feature", "flag", "tenant", "team", "member", "role", "policy", "secret", "key",
    "certificate", "address", "shipment", "carrier", "tax", "currency", "ledger", "entry",
    "balance", "transfer", "payout", "dispute", "review", "rating", "comment", "thread",
)
SUFFIXES = (
    "", "Service", "Store", "Client", "Handler", "Controller", "Repository", "Manager",
    "Factory", "Builder", "Provider", "Resolver", "Validator", "Serializer", "Mapper",
    "Adapter", "Queue", "Worker", "Cache", "Utils", "Helpers", "Types", "View", "List",
    "Form", "Modal", "Card", "Table", "Page", "Hook", "Context", "Reducer", "Selector",
    "Middleware", "Policy", "Schema", "Migration", "Job", "Scheduler", "Events",
)
WORDS = (
    "add", "fix", "update", "remove", "refactor", "test", "tests", "the", "a", "for", "in",
    "to", "and", "of", "with", "when", "why", "does", "not", "is", "it", "this", "that",
    "should", "make", "sure", "please", "can", "you", "check", "run", "build", "deploy",
    "error", "bug", "crash", "slow", "fast", "flaky", "broken", "failing", "pass", "passes",
    "endpoint", "route", "handler", "function", "method", "class", "module", "package",
    "component", "hook", "state", "props", "query", "mutation", "database", "table",
    "column", "index", "migration", "schema", "cache", "redis", "postgres", "sqlite",
    "queue", "worker", "job", "cron", "timeout", "retry", "backoff", "rate", "limit",
    "token", "refresh", "expired", "session", "cookie", "header", "auth", "login",
    "logout", "signup", "password", "reset", "email", "notification", "webhook", "event",
    "payload", "json", "yaml", "config", "env", "docker", "kubernetes", "helm", "terraform",
    "ci", "pipeline", "lint", "types", "typescript", "python", "golang", "rust", "async",
    "await", "promise", "callback", "stream", "buffer", "memory", "leak", "cpu", "latency",
    "p99", "metrics", "logging", "tracing", "dashboard", "chart", "page", "modal",
    "button", "form", "validation", "input", "output", "file", "upload", "download",
    "image", "resize", "thumbnail", "pdf", "csv", "export", "import", "report", "invoice",
    "payment", "refund", "stripe", "checkout", "cart", "order", "shipping", "tax",
    "currency", "discount", "coupon", "pricing", "plan", "subscription", "billing",
    "customer", "account", "user", "admin", "role", "permission", "policy", "tenant",
    "team", "member", "invite", "search", "filter", "sort", "pagination", "cursor",
    "offset", "api", "rest", "graphql", "grpc", "client", "server", "sdk", "version",
    "release", "changelog", "readme", "docs", "comment", "typo", "rename", "move",
    "split", "merge", "conflict", "rebase", "branch", "commit", "review", "pr", "issue",
    "feature", "flag", "rollout", "experiment", "analytics", "dark", "mode", "theme",
    "mobile", "responsive", "layout", "css", "tailwind", "accessibility", "i18n",
    "translation", "locale", "date", "time", "timezone", "utc", "parse", "format",
    "serialize", "encode", "decode", "hash", "encrypt", "secret", "key", "certificate",
    "tls", "dns", "proxy", "load", "balancer", "health", "check", "probe", "readiness",
    "graceful", "shutdown", "signal", "thread", "lock", "race", "condition", "deadlock",
    "concurrency", "parallel", "batch", "bulk", "insert", "upsert", "delete", "soft",
    "archive", "restore", "backup", "snapshot", "audit", "log", "trail", "compliance",
    "gdpr", "pii", "mask", "redact", "benchmark", "profile", "optimize", "n+1", "join",
    "orm", "prisma", "sqlalchemy", "django", "fastapi", "flask", "express", "nestjs",
    "react", "nextjs", "vue", "svelte", "vite", "webpack", "jest", "vitest", "pytest",
    "playwright", "cypress", "snapshot", "fixture", "mock", "stub", "coverage", "e2e",
    "integration", "unit", "regression", "edge", "case", "null", "undefined", "empty",
    "unicode", "emoji", "overflow", "underflow", "precision", "rounding", "decimal",
)
ADJS = ("new", "old", "empty", "invalid", "expired", "missing", "duplicate", "large",
        "negative", "null", "stale", "concurrent", "partial", "unicode", "zero")
VERBS = ("Fix", "Add", "Update", "Refactor", "Remove", "Rename", "Handle", "Support",
         "Improve", "Speed up", "Clean up", "Document", "Test", "Validate", "Cache")
PROMPTS = (
    "Add tests for {path} and make them pass",
    "Fix the {w1} bug in {path}",
    "Why does {ident} fail when the {w1} is {adj}?",
    "Refactor {ident} to use {w1} {w2}",
    "Explain how {w1} {w2} works in this repo",
    "Run the tests and fix the failures",
    "Update the README to describe the {w1} {w2}",
    "Rename {ident} to {ident2} everywhere",
    "The {w1} page is slow, can you profile it and make it faster",
    "Implement {w1} {w2} for {ident}: {w3} {w4} {w5} {w6}",
    "{w1} {w2} {w3} {w4} in {path} {w5} {w6} {w7}",
    "Review the diff and suggest improvements to {ident}",
    "Add {w1} handling to {path} so {adj} {w2} values do not crash",
    "Write a migration that adds {w1}_{w2} to the {w3} table",
    "Look at the CI logs: {w1} {w2} fails with {err}",
    "commit this",
    "yes",
    "continue",
    "Can you also cover the {adj} {w1} case?",
    "Use {ident2} instead of {ident} in {path}",
)
SLASH = (("review", ""), ("deploy", "prod"), ("deploy", "staging"), ("test", ""),
         ("commit", ""), ("pr", ""), ("compact", ""), ("init", ""))
STOP_ERRORS = (("rate_limit", "429 Too Many Requests", "API Error: Rate limit reached"),
               ("overloaded", "529 Overloaded", "API Error: Overloaded"),
               ("api_error", "500 Internal Server Error", "API Error: 500"))
URLS = ("https://docs.python.org/3/library/{w}.html", "https://developer.mozilla.org/en-US/docs/Web/API/{W}",
        "https://github.com/{u}/{p}/issues/{n}", "https://pkg.go.dev/{w}", "https://docs.rs/{w}/latest",
        "https://stackoverflow.com/questions/{n}/{w}-{w2}")
CODE = {
    "ts": ("import {{ {i} }} from './{s}';", "export async function {i}({s}: {I}) {{",
           "  const {s} = await {i}({s2});", "  if (!{s}) throw new Error('{w} {w2}');",
           "  return {{ ...{s}, {s2} }};", "}}", "test('{w} {w2}', async () => {{",
           "  expect(await {i}('{s}')).toBe({b});", "}});", "type {I} = {{ {s}: string }};",
           "  // TODO: {w} {w2} {w3}", "  {s}.{i}({s2}, {n});", "export default {i};"),
    "py": ("from .{s} import {i}", "def {i}({s}: {I}) -> {I}:", "    {s} = {i}({s2})",
           "    if not {s}:", "        raise ValueError('{w} {w2}')", "    return {s}",
           "class {I}:", "    def __init__(self, {s}):", "        self.{s} = {s}",
           "def test_{s}_{s2}():", "    assert {i}({n}) == {n}", "    # TODO: {w} {w2} {w3}",
           "@pytest.fixture"),
    "go": ("func {I}({s} {I}) ({I}, error) {{", "\tif err != nil {{", "\t\treturn nil, err",
           "\t}}", "\t{s} := {i}({s2})", "}}", "type {I} struct {{", "\t{I} string",
           "func Test{I}(t *testing.T) {{", "\t// TODO: {w} {w2} {w3}", "import \"{s}\""),
    "rs": ("fn {i}({s}: &{I}) -> Result<{I}> {{", "    let {s} = {i}(&{s2})?;",
           "    Ok({s})", "}}", "pub struct {I} {{", "    {s}: String,", "#[test]",
           "fn test_{s}() {{", "    assert_eq!({i}({n}), {n});", "    // TODO: {w} {w2} {w3}",
           "use crate::{s}::{I};"),
}
LANG_FILES = {
    "ts": ("src/{d}/{f}.ts", "src/{d}/{f}.tsx", "src/{d}/{f}.test.ts", "src/{d}/index.ts"),
    "py": ("src/{pkg}/{d}/{s}.py", "tests/{d}/test_{s}.py", "src/{pkg}/{d}/__init__.py"),
    "go": ("internal/{d}/{s}.go", "internal/{d}/{s}_test.go", "cmd/{pkg}/main.go"),
    "rs": ("src/{d}/{s}.rs", "src/{d}/mod.rs", "tests/{s}.rs"),
}
COMMON_FILES = ("README.md", "CLAUDE.md", ".env.example", "Makefile", "docs/{d}.md",
                ".github/workflows/ci.yml", "Dockerfile", "docker-compose.yml")
LANG_MANIFEST = {"ts": ("package.json", "tsconfig.json"), "py": ("pyproject.toml", "uv.lock"),
                 "go": ("go.mod", "go.sum"), "rs": ("Cargo.toml", "Cargo.lock")}
COMMANDS = {
    "ts": ("npm test -- {f}", "npm test", "npm run build", "npm run lint", "pnpm install",
           "npx tsc --noEmit", "npx eslint src/{d}", "npx vitest run src/{d}",
           "npx prettier --write src/{d}", "node scripts/{s}.js"),
    "py": ("pytest tests/{d}/test_{s}.py -x", "pytest -k {s}", "python -m pytest -q",
           "ruff check src", "mypy src/{pkg}", "uv sync", "pip install -e .",
           "python -m {pkg}.{d}.{s}", "pytest tests/{d} -x -q --no-header"),
    "go": ("go test ./internal/{d}/...", "go test ./...", "go build ./...", "go vet ./...",
           "golangci-lint run", "go run ./cmd/{pkg}"),
    "rs": ("cargo test {s}", "cargo build --release", "cargo clippy -- -D warnings",
           "cargo fmt", "cargo test -p {pkg}"),
    "any": ("git status", "git diff", "git diff --stat", "git add -A",
            "git commit -m \"{msg}\"", "git log --oneline -10", "git checkout -b {branch}",
            "git push -u origin {branch}", "ls {d}", "ls -la", "cat {manifest}",
            "rg \"{ident}\" {top}", "grep -rn \"{ident}\" {top}", "docker compose up -d",
            "curl -s localhost:8080/api/{d}", "make build", "make test", "find . -name '*{s}*'",
            "gh pr create --fill", "gh run view --log-failed", "wc -l {path}"),
}
# Commands mpmd rates medium or high risk (mpmd.model.enrich.command_risk): ~3% of Bash calls.
RISKY_COMMANDS = (
    "rm -rf node_modules", "rm -rf dist", "git reset --hard HEAD~{n}", "git clean -fdx",
    "cat .env", "git push --force origin {branch}", "sudo apt-get install -y {s}",
    "curl -fsSL https://get.{s}.dev/install.sh | sh", "chmod -R 777 {d}", "rm -rf ~/.cache/{s}",
    "scp build.tgz deploy@prod:/srv/{pkg}",
)
BASH_FAILURES = (
    "Exit code 1\nFAIL {path}\n  expected {n}, got {n2}",
    "Exit code 1\n{path}:{n}:5: error: {w} {w2} is not assignable to {ident}",
    "Exit code 2\n{n} failed, {n2} passed in 3.{n}s",
    "Command timed out after 2m 0.0s",
    "Exit code 127\nbash: {s}: command not found",
    "Exit code 1\nerror: pathspec '{branch}' did not match any file(s) known to git",
    "Exit code 1\nTraceback (most recent call last):\n  File \"{path}\", line {n}\nKeyError: '{s}'",
)
OTHER_FAILURES = {
    "Read": ("File does not exist.", "File content ({n}KB) exceeds maximum allowed size"),
    "Edit": ("String to replace not found in file.\nString: {code}",
             "Found {n} matches of the string to replace, but replace_all is false"),
    "Write": ("File has not been read yet. Read it first before writing to it.",),
    "Grep": ("Path does not exist: {path}",),
    "WebFetch": ("Request failed with status code 404", "timeout of 30000ms exceeded"),
}
TOOLS = ("Read", "Bash", "Edit", "Grep", "Glob", "Write", "TodoWrite", "WebFetch",
         "WebSearch", "Task", "MultiEdit", "mcp__github__create_issue",
         "mcp__github__get_pull_request", "mcp__linear__list_issues", "LS", "BashOutput")
TOOL_WEIGHTS = (300, 240, 140, 80, 50, 45, 30, 15, 8, 15, 8, 3, 6, 4, 6, 4)
FAIL_RATE = {"Bash": 0.11, "Edit": 0.04, "Read": 0.015, "Write": 0.02, "Grep": 0.01,
             "WebFetch": 0.08, "MultiEdit": 0.04}


def _zipf_cum(n: int, s: float = 1.05) -> list[float]:
    return list(itertools.accumulate(1.0 / (k + 1) ** s for k in range(n)))


class Vocab:
    """Vocabularies with Zipf weights, shuffled once so that the frequent words are not the
    first ones written above."""

    def __init__(self, rng: random.Random) -> None:
        def shuffled(seq: tuple[str, ...]) -> list[str]:
            out = list(seq)
            rng.shuffle(out)
            return out

        self.words = shuffled(WORDS)
        self.words_cum = _zipf_cum(len(self.words), 0.9)
        self.dirs = shuffled(DIRS)
        self.dirs_cum = _zipf_cum(len(self.dirs))
        self.stems = shuffled(STEMS)
        self.stems_cum = _zipf_cum(len(self.stems))
        # Identifiers: stem + Suffix (camelCase: one token each, the long tail).
        idents = [s + x for s in STEMS for x in SUFFIXES]
        rng.shuffle(idents)
        self.idents = idents
        self.idents_cum = _zipf_cum(len(idents), 1.1)
        self.branches = [f"{p}/{a}-{b}" for p in ("fix", "feat", "chore", "refactor")
                         for a in STEMS[:40] for b in ("v2", "cleanup", "tests", "perf", "bug")]
        rng.shuffle(self.branches)
        self.branches_cum = _zipf_cum(len(self.branches))
        self.project_cum = _zipf_cum(len(PROJECTS), 0.8)
        self.code_pool: dict[str, list[str]] = {}


class SessionGen:
    """The events of one Claude Code session, lazily: (ts_ns, order, payload bytes)."""

    def __init__(self, vocab: Vocab, seed: int, index: int, start_ns: int, n_events: int
                 ) -> None:
        self.v = vocab
        self.rng = random.Random(seed)
        self.index = index
        self.start_ns = start_ns
        self.n_events = n_events
        r = self.rng
        self.session_id = str(uuid.UUID(int=r.getrandbits(128), version=4))
        self.project = r.choices(PROJECTS, cum_weights=vocab.project_cum)[0]
        self.lang = r.choices(LANGS, weights=LANG_WEIGHTS)[0]
        # A project keeps its owner and language across sessions (seeded by its name).
        prng = random.Random(self.project)
        self.user = prng.choice(USERS)
        self.lang = prng.choices(LANGS, weights=LANG_WEIGHTS)[0]
        self.pkg = self.project.replace("-", "_")
        home = f"/Users/{self.user}/code" if prng.random() < 0.3 else f"/home/{self.user}"
        self.cwd = f"{home}/{self.project}"
        slug = self.cwd.replace("/", "-")
        root = home.rsplit("/code", 1)[0]
        self.transcript = f"{root}/.claude/projects/{slug}/{self.session_id}.jsonl"
        self.mode = r.choices(MODES, weights=MODE_WEIGHTS)[0]
        self.model = r.choice(MODELS)
        self.agent: tuple[str, str] | None = None
        self.tool_seq = 0

    # -- vocabulary draws
    def word(self) -> str:
        return self.rng.choices(self.v.words, cum_weights=self.v.words_cum)[0]

    def ident(self) -> str:
        return self.rng.choices(self.v.idents, cum_weights=self.v.idents_cum)[0]

    def stem(self) -> str:
        return self.rng.choices(self.v.stems, cum_weights=self.v.stems_cum)[0]

    def dir(self) -> str:
        return self.rng.choices(self.v.dirs, cum_weights=self.v.dirs_cum)[0]

    def branch(self) -> str:
        return self.rng.choices(self.v.branches, cum_weights=self.v.branches_cum)[0]

    def rel_path(self) -> str:
        r = self.rng
        if r.random() < 0.06:
            t = r.choice(COMMON_FILES if r.random() < 0.6 else LANG_MANIFEST[self.lang])
        else:
            t = r.choice(LANG_FILES[self.lang])
        return t.format(d=self.dir(), f=self.ident(), s=self.stem(), pkg=self.pkg)

    def abs_path(self) -> str:
        return f"{self.cwd}/{self.rel_path()}"

    def fill(self, template: str) -> str:
        """A template with its fields drawn (only those it uses are drawn)."""
        r = self.rng
        fields: dict[str, Any] = {}
        for name in ("w", "w1", "w2", "w3", "w4", "w5", "w6", "w7"):
            if "{" + name + "}" in template:
                fields[name] = self.word()
        for name, make in (("path", self.rel_path), ("ident", self.ident),
                           ("ident2", self.ident), ("s", self.stem), ("d", self.dir),
                           ("branch", self.branch), ("f", self.ident),
                           ("msg", self.commit_message), ("code", self.code_line)):
            if "{" + name + "}" in template:
                fields[name] = make()
        if "{adj}" in template:
            fields["adj"] = r.choice(ADJS)
        if "{err}" in template:
            fields["err"] = self.fill(r.choice(BASH_FAILURES)).split("\n")[-1]
        if "{manifest}" in template:
            fields["manifest"] = LANG_MANIFEST[self.lang][0]
        if "{top}" in template:
            fields["top"] = {"ts": "src", "py": "src", "go": "internal", "rs": "src"}[self.lang]
        fields.setdefault("pkg", self.pkg)
        fields.setdefault("n", r.randint(1, 500))
        fields.setdefault("n2", r.randint(1, 500))
        return template.format(**fields)

    def commit_message(self) -> str:
        return f"{self.rng.choice(VERBS)} {self.word()} {self.word()} in {self.ident()}"

    def code_line(self) -> str:
        r = self.rng
        ident = self.ident()
        return r.choice(CODE[self.lang]).format(
            i=ident[0].lower() + ident[1:], I=ident[0].upper() + ident[1:], s=self.stem(),
            s2=self.stem(), w=self.word(), w2=self.word(), w3=self.word(),
            n=r.randint(0, 99), b=r.choice(("true", "false")))

    def code(self, lo: int, hi: int) -> str:
        """A few lines of code, from the language's pool (drawing each anew is slow)."""
        lines = max(1, int(math.exp(self.rng.uniform(math.log(lo), math.log(hi)))))
        pool = self.v.code_pool.get(self.lang)
        if pool is None:
            pool = self.v.code_pool[self.lang] = [self.code_line() for _ in range(4000)]
        return "\n".join(self.rng.choices(pool, k=lines))

    def tool_use_id(self) -> str:
        self.tool_seq += 1
        tail = "".join(self.rng.choices("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
                                        "0123456789", k=22))
        return f"toolu_01{tail}"

    # -- payloads
    def base(self, event: str, mode: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {"session_id": self.session_id,
                             "transcript_path": self.transcript, "cwd": self.cwd,
                             "hook_event_name": event}
        if mode:
            d["permission_mode"] = self.mode
        if self.agent is not None:
            d["agent_id"], d["agent_type"] = self.agent
        return d

    def tool_input(self, tool: str) -> dict[str, Any]:
        r = self.rng
        if tool == "Read":
            inp: dict[str, Any] = {"file_path": self.abs_path()}
            if r.random() < 0.15:
                inp["offset"], inp["limit"] = r.randint(1, 400), r.choice((50, 100, 200))
            return inp
        if tool == "Bash":
            key = self.lang if r.random() < 0.5 else "any"
            command = self.fill(r.choice(COMMANDS[key] if r.random() >= 0.03
                                         else RISKY_COMMANDS))
            if r.random() < 0.002:  # a secret now and then: the redaction path
                command = ("export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCY"
                           f"{r.randint(10**9, 10**10)} && ./deploy.sh")
            inp = {"command": command}
            if r.random() < 0.7:
                inp["description"] = f"{r.choice(VERBS)} {self.word()} {self.word()}"
            if r.random() < 0.3:
                inp["timeout"] = r.choice((60000, 120000, 300000))
            return inp
        if tool == "Edit":
            return {"file_path": self.abs_path(), "old_string": self.code(1, 8),
                    "new_string": self.code(1, 12), "replace_all": r.random() < 0.05}
        if tool == "MultiEdit":
            return {"file_path": self.abs_path(), "edits": [
                {"old_string": self.code(1, 4), "new_string": self.code(1, 5)}
                for _ in range(r.randint(2, 4))]}
        if tool == "Write":
            return {"file_path": self.abs_path(), "content": self.code(3, 80)}
        if tool == "Grep":
            inp = {"pattern": self.ident() if r.random() < 0.7 else f"{self.word()}\\(",
                   "path": f"{self.cwd}/{r.choice(('src', 'tests', 'internal', 'lib'))}"}
            if r.random() < 0.5:
                inp["output_mode"] = r.choice(("content", "files_with_matches", "count"))
            return inp
        if tool == "Glob":
            ext = {"ts": "ts", "py": "py", "go": "go", "rs": "rs"}[self.lang]
            return {"pattern": f"**/*{self.stem()}*.{ext}"}
        if tool == "LS":
            return {"path": f"{self.cwd}/{self.rel_path().rsplit('/', 1)[0]}"}
        if tool == "TodoWrite":
            return {"todos": [{"content": f"{r.choice(VERBS)} {self.word()} {self.word()}",
                               "status": r.choice(("pending", "in_progress", "completed")),
                               "activeForm": f"{self.word()} {self.word()}"}
                              for _ in range(r.randint(2, 6))]}
        if tool == "WebFetch":
            url = r.choice(URLS).format(w=self.word(), W=self.ident(), u=self.user,
                                        p=self.project, n=r.randint(1, 90000), w2=self.word())
            return {"url": url, "prompt": f"How does {self.word()} {self.word()} work?"}
        if tool == "WebSearch":
            return {"query": f"{self.word()} {self.word()} {self.word()} {self.lang}"}
        if tool == "Task":
            return {"description": f"{r.choice(VERBS)} {self.word()} {self.word()}",
                    "prompt": self.fill(r.choice(PROMPTS)),
                    "subagent_type": r.choice(("Explore", "general-purpose", "Plan"))}
        if tool == "BashOutput":
            return {"bash_id": f"bash_{r.randint(1, 9)}"}
        if tool.startswith("mcp__github"):
            return {"owner": self.user, "repo": self.project,
                    "title": f"{r.choice(VERBS)} {self.word()} {self.word()}"}
        return {"team": self.project, "query": f"{self.word()} {self.word()}"}

    def tool_response(self, tool: str, inp: dict[str, Any]) -> Any:
        r = self.rng
        if tool == "Read":
            content = self.code(5, 60)
            return {"type": "text", "file": {"filePath": inp["file_path"], "content": content,
                                             "numLines": content.count("\n") + 1,
                                             "startLine": inp.get("offset", 1),
                                             "totalLines": r.randint(20, 900)}}
        if tool == "Bash":
            out = self.code(1, 30) if r.random() < 0.6 else ""
            return {"stdout": out, "stderr": "", "interrupted": False, "isImage": False}
        if tool in ("Edit", "MultiEdit", "Write"):
            resp: dict[str, Any] = {"filePath": inp["file_path"], "success": True}
            if tool == "Write":
                resp["type"] = "create" if r.random() < 0.4 else "update"
            return resp
        if tool == "Grep":
            return {"mode": inp.get("output_mode", "files_with_matches"),
                    "numFiles": r.randint(0, 30),
                    "filenames": [self.rel_path() for _ in range(r.randint(0, 6))]}
        if tool == "Glob":
            return {"filenames": [self.abs_path() for _ in range(r.randint(0, 8))],
                    "durationMs": r.randint(1, 80), "numFiles": r.randint(0, 8),
                    "truncated": False}
        if tool.startswith("mcp__"):
            return [{"type": "text", "text": json.dumps({"number": r.randint(1, 5000)})}]
        if tool == "WebFetch":
            return {"bytes": r.randint(1000, 90000), "code": 200,
                    "result": f"The {self.word()} {self.word()} {self.word()} ..."}
        return {"result": "ok"}

    def duration_ms(self, tool: str) -> int:
        r = self.rng
        if tool == "Bash":
            return int(min(300_000, math.exp(r.gauss(6.5, 1.6))))
        if tool in ("WebFetch", "WebSearch", "Task") or tool.startswith("mcp__"):
            return int(math.exp(r.gauss(7, 1)))
        return max(1, int(math.exp(r.gauss(1.5, 1))))

    def events(self) -> Iterator[tuple[int, int, bytes]]:
        """(ts_ns, session index, payload) for exactly n_events events, ts increasing."""
        ts = self.start_ns
        left = self.n_events
        idx = self.index
        for gap, payload in self._stream():
            ts += max(MS, gap)
            yield ts, idx, _encode(payload)
            left -= 1
            if left == 1:
                break
        end = self.base("SessionEnd")
        end["reason"] = self.rng.choice(("prompt_input_exit", "clear", "logout", "other"))
        yield ts + int(self.rng.expovariate(1 / 30) * S) + MS, idx, _encode(end)

    def _stream(self) -> Iterator[tuple[int, dict[str, Any]]]:
        r = self.rng
        start = self.base("SessionStart", mode=False)
        start["source"] = r.choice(("startup", "startup", "resume", "clear"))
        start["model"] = self.model
        yield 0, start
        if r.random() < 0.05:
            setup = self.base("Setup", mode=False)
            setup["trigger"] = "init"
            yield 50 * MS, setup
        loaded = self.base("InstructionsLoaded")
        loaded.update(file_path=f"{self.cwd}/CLAUDE.md", memory_type="Project",
                      load_reason="session_start")
        yield 20 * MS, loaded
        while True:
            yield from self._turn()

    def _turn(self) -> Iterator[tuple[int, dict[str, Any]]]:
        r = self.rng
        think = int(math.exp(r.gauss(3.5, 1.3)) * S)  # the user types, or comes back
        if r.random() < 0.04:
            cmd, args = r.choice(SLASH)
            ex = self.base("UserPromptExpansion")
            ex.update(expansion_type="slash_command", command_name=cmd, command_args=args,
                      command_source=r.choice(("plugin", "project", "user")),
                      prompt=f"/{cmd} {args}".strip())
            yield think, ex
            think = 5 * MS
        prompt = self.base("UserPromptSubmit")
        prompt["prompt"] = self.fill(r.choice(PROMPTS))
        prompt["prompt_id"] = str(uuid.UUID(int=r.getrandbits(128), version=4))
        yield think, prompt
        if r.random() < 0.01:
            yield from self._rare()
        calls = min(60, int(r.expovariate(1 / 7)) + 1)
        subagent_at = r.randrange(calls) if r.random() < 0.06 else -1
        batch: list[dict[str, Any]] = []
        for k in range(calls):
            if k == subagent_at:
                yield from self._subagent()
            for item in self._tool_call():
                if item[1]["hook_event_name"] == "PostToolUse":
                    batch.append(item[1])
                yield item
            if r.random() < 0.25:
                md = self.base("MessageDisplay")
                md.update(turn_id=f"{r.getrandbits(32):08x}", message_id=f"{r.getrandbits(32):08x}",
                          index=0, final=r.random() < 0.5,
                          delta=f"{r.choice(VERBS)} the {self.word()} {self.word()} next.\n")
                yield int(r.uniform(0.3, 4) * S), md
        if batch and r.random() < 0.15:
            pb = self.base("PostToolBatch")
            pb["tool_calls"] = [{k: e[k] for k in ("tool_name", "tool_input", "tool_use_id")}
                                for e in batch[-3:]]
            yield 10 * MS, pb
        if r.random() < 0.02:
            code, details, message = r.choice(STOP_ERRORS)
            stop = self.base("StopFailure")
            stop.update(error=code, error_details=details, last_assistant_message=message)
        else:
            stop = self.base("Stop")
            stop.update(stop_hook_active=False,
                        last_assistant_message=f"Done. {r.choice(VERBS)} {self.word()} "
                                               f"{self.word()} in {self.ident()}.",
                        background_tasks=[], session_crons=[])
        yield int(r.uniform(1, 15) * S), stop
        if r.random() < 0.3:
            idle = self.base("Notification")
            idle.update(message="Claude is waiting for your input", notification_type="idle_prompt")
            yield 60 * S, idle
        if r.random() < 0.02:
            pre = self.base("PreCompact")
            pre.update(trigger=r.choice(("auto", "manual")),
                       custom_instructions=f"keep the {self.word()} details")
            yield 2 * S, pre
            post = self.base("PostCompact")
            post.update(trigger=pre["trigger"],
                        compact_summary=f"Worked on {self.word()} {self.word()}; {self.ident()} "
                                        f"now {self.word()}s {self.word()}.")
            yield int(r.uniform(10, 60) * S), post

    def _tool_call(self) -> Iterator[tuple[int, dict[str, Any]]]:
        r = self.rng
        tool = r.choices(TOOLS, weights=TOOL_WEIGHTS)[0]
        inp = self.tool_input(tool)
        tid = self.tool_use_id()
        pre = self.base("PreToolUse")
        pre.update(tool_name=tool, tool_input=inp, tool_use_id=tid)
        yield int(math.exp(r.gauss(1.2, 1.0)) * S), pre  # the model thinks
        if tool == "Bash" and self.mode == "default" and r.random() < 0.12:
            req = self.base("PermissionRequest")
            req.update(tool_name=tool, tool_input=inp, permission_suggestions=[
                {"type": "addRules", "rules": [{"toolName": "Bash",
                                                "ruleContent": inp["command"][:60]}],
                 "behavior": "allow", "destination": "localSettings"}])
            yield 5 * MS, req
            note = self.base("Notification")
            note.update(message=f"Claude needs your permission to use {tool}",
                        title="Permission needed", notification_type="permission_prompt")
            yield 3 * MS, note
            if r.random() < 0.1:
                denied = self.base("PermissionDenied")
                denied.update(tool_name=tool, tool_input=inp, tool_use_id=tid,
                              reason=r.choice(("Blocked by classifier", "User denied")))
                yield int(r.uniform(2, 30) * S), denied
                return
            answer = int(r.uniform(2, 30) * S)  # the user answers the prompt
        else:
            answer = 0
        duration = self.duration_ms(tool)
        if r.random() < FAIL_RATE.get(tool, 0.005):
            post = self.base("PostToolUseFailure")
            template = (r.choice(BASH_FAILURES) if tool == "Bash"
                        else r.choice(OTHER_FAILURES.get(tool, ("Tool failed: {w1} {w2}",))))
            post.update(tool_name=tool, tool_input=inp, tool_use_id=tid,
                        error=self.fill(template), is_interrupt=r.random() < 0.05,
                        duration_ms=duration)
        else:
            post = self.base("PostToolUse")
            post.update(tool_name=tool, tool_input=inp,
                        tool_response=self.tool_response(tool, inp), tool_use_id=tid,
                        duration_ms=duration)
        yield answer + duration * MS, post

    def _subagent(self) -> Iterator[tuple[int, dict[str, Any]]]:
        r = self.rng
        agent_id = f"agent-{r.getrandbits(24):06x}"
        agent_type = r.choice(("Explore", "general-purpose", "Plan", "code-reviewer"))
        start = self.base("SubagentStart")
        start.update(agent_id=agent_id, agent_type=agent_type)
        yield 1 * S, start
        self.agent = (agent_id, agent_type)
        try:
            for _ in range(r.randint(2, 15)):
                yield from self._tool_call()
        finally:
            self.agent = None
        stop = self.base("SubagentStop")
        stop.update(stop_hook_active=False, agent_id=agent_id, agent_type=agent_type,
                    agent_transcript_path=self.transcript[:-6] + f"/subagents/{agent_id}.jsonl",
                    last_assistant_message=f"Found {r.randint(1, 9)} call sites of "
                                           f"{self.ident()}()",
                    background_tasks=[], session_crons=[])
        yield 2 * S, stop

    def _rare(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """The event types a session sees now and then."""
        r = self.rng
        kind = r.randrange(9)
        if kind == 0:
            t = r.choice(("TaskCreated", "TaskCompleted"))
            e = self.base(t)
            e.update(task_id=f"task-{r.randint(1, 999):03d}",
                     task_subject=f"{r.choice(VERBS)} {self.word()}",
                     task_description=f"Wire {self.ident()} into {self.word()}",
                     teammate_name=r.choice(("implementer", "researcher", "tester")),
                     team_name=f"session-{self.session_id[:4]}")
        elif kind == 1:
            e = self.base("TeammateIdle")
            e.update(teammate_name="researcher", team_name=f"session-{self.session_id[:4]}")
        elif kind == 2:
            e = self.base("ConfigChange")
            e.update(source="project_settings", file_path=f"{self.cwd}/.claude/settings.json")
        elif kind == 3:
            e = self.base("CwdChanged")
            e.update(old_cwd=self.cwd, new_cwd=f"{self.cwd}/{self.dir()}")
        elif kind == 4:
            e = self.base("DirectoryAdded")
            e.update(directory=f"/home/{self.user}/{r.choice(PROJECTS)}", source="slash_command")
        elif kind == 5:
            e = self.base("FileChanged")
            e.update(file_path=f"{self.cwd}/{r.choice(('.envrc', '.env', 'package.json'))}",
                     event="change")
        elif kind == 6:
            name = f"{self.word()}-{self.stem()}-{r.getrandbits(16):04x}"
            e = self.base("WorktreeCreate")
            e["name"] = name
            yield 1 * S, e
            e = self.base("WorktreeRemove")
            e["worktree_path"] = f"{self.cwd}/.claude/worktrees/{name}"
        elif kind == 7:
            e = self.base("Elicitation")
            e.update(mcp_server_name="vault", message="Provide credentials", mode="form",
                     requested_schema={"type": "object",
                                       "properties": {"username": {"type": "string"}}})
            yield 1 * S, e
            e = self.base("ElicitationResult")
            e.update(mcp_server_name="vault", action=r.choice(("accept", "decline")),
                     content={"username": self.user}, mode="form",
                     elicitation_id=f"elicit-{r.randint(1, 999)}")
        else:
            e = self.base("Notification")
            e.update(message=f"Claude needs your permission to use {r.choice(TOOLS[:6])}",
                     title="Permission needed", notification_type="permission_prompt")
        yield int(r.uniform(1, 20) * S), e


# ---- the journal ---------------------------------------------------------------------------
def _session_plan(rng: random.Random, n_events: int, start_ns: int, end_ns: int
                  ) -> list[tuple[int, int, int]]:
    """(start ns, events, seed) per session: log-uniform 50..1000 events (the last one
    whatever is left), starting on a random day at a working hour."""
    plan = []
    left = n_events
    days = max(1, (end_ns - start_ns) // DAY_NS)
    hours = list(range(24))
    hour_weights = [1, 1, 0.5, 0.3, 0.3, 0.3, 0.5, 2, 5, 9, 10, 10, 7, 9, 10, 10, 9, 7, 5,
                    4, 4, 3, 2, 1.5]
    while left > 0:
        size = int(math.exp(rng.uniform(math.log(50), math.log(1000))))
        size = left if left - size < 50 else size  # no tiny last session
        day = rng.randrange(days)
        hour = rng.choices(hours, weights=hour_weights)[0]
        at = start_ns + day * DAY_NS + hour * 3600 * S + rng.randrange(3600 * S)
        plan.append((min(at, end_ns - DAY_NS // 2), size, rng.getrandbits(64)))
        left -= size
    plan.sort()
    return plan


def generate_events(n_events: int, seed: int, start_ns: int, end_ns: int
                    ) -> Iterator[tuple[int, bytes]]:
    """(hook ts_ns, payload) of ``n_events`` events, sessions interleaved in time order."""
    rng = random.Random(seed)
    vocab = Vocab(random.Random(seed ^ 0x5EED))
    plan = _session_plan(rng, n_events, start_ns, end_ns)
    gens = [SessionGen(vocab, s_seed, i, at, size).events()
            for i, (at, size, s_seed) in enumerate(plan)]
    for ts, _i, payload in heapq.merge(*gens):
        yield ts, payload


def stored_lines(events: Iterator[tuple[int, bytes]], first_seq: int, seed: int
                 ) -> Iterator[tuple[int, int, bytes]]:
    """(seq, received_ns, journal line) for each event, built as the daemon builds it."""
    rng = random.Random(seed)
    seq = first_seq
    for ts, payload in events:
        received = ts + rng.randrange(200_000, 4 * MS)  # the hook's process and socket
        frame = EventFrame(version=1, id=rng.getrandbits(128).to_bytes(16, "big"), ts_ns=ts,
                           payload=payload, original_size=len(payload))
        yield seq, received, record.build(seq, frame, received)
        seq += 1


def write_journal(directory: Path, n_events: int, seed: int, end_ns: int) -> dict[str, Any]:
    """The journal of ``n_events`` events ending near ``end_ns``; its figures."""
    clock_now = [end_ns / 1e9]
    journal = Journal(directory, retention_days=None, retention_max_bytes=None,
                      clock=lambda: clock_now[0])
    start_ns = end_ns - SPAN_DAYS * DAY_NS
    t0 = time.perf_counter()
    line_bytes = 0
    lines = 0
    last_ts = 0
    pending: list[tuple[int, bytes]] = []
    try:
        for seq, received, line in stored_lines(
                generate_events(n_events, seed, start_ns, end_ns), 1, seed + 1):
            pending.append((seq, line))
            line_bytes += len(line) + 1
            lines += 1
            last_ts = received
            if len(pending) >= 4096:
                clock_now[0] = received / 1e9
                journal.append(pending)
                pending = []
            if lines % 100_000 == 0:
                print(f"    {lines:,} events ({time.perf_counter() - t0:.0f} s)", flush=True)
        if pending:
            journal.append(pending)
        build_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        gzipped = journal.compress_closed()
        gzip_s = time.perf_counter() - t1
    finally:
        journal.close()
    return {"events": lines, "line_bytes": line_bytes, "last_ts_ns": last_ts,
            "generate_s": build_s, "gzip_s": gzip_s, "segments_gzipped": gzipped}


def extra_lines(n: int, first_seq: int, after_ns: int, seed: int) -> list[bytes]:
    """``n`` more events after the journal's last (the incremental run's input)."""
    events = generate_events(n, seed, after_ns, after_ns + 3 * DAY_NS)
    return [line for _s, _r, line in stored_lines(events, first_seq, seed + 1)]


def cached_journal(n_events: int, fresh: bool) -> tuple[Path, dict[str, Any]]:
    """The cache folder (journal/, extra.jsonl, meta.json) for ``n_events``: made unless a
    complete one of this generator version is there."""
    folder = CACHE_ROOT / f"{GEN_VERSION}-{n_events}"
    meta_path = folder / "meta.json"
    if not fresh and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        meta["cached"] = True
        return folder, meta
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    # Ends at the start of this hour (UTC): queries take "now" from the data, so a cached
    # journal answers `since:` the same way however old it is.
    end_ns = time.time_ns() // (3600 * S) * 3600 * S
    print(f"  generating {n_events:,} events into {folder} (cached for the next runs) ...",
          flush=True)
    meta = write_journal(folder / "journal", n_events, seed=20261121, end_ns=end_ns)
    t0 = time.perf_counter()
    extra = extra_lines(max(20_000, n_events // 10), meta["events"] + 1,
                        meta["last_ts_ns"] + 60 * S, seed=777)
    (folder / "extra.jsonl").write_bytes(b"\n".join(extra) + b"\n")
    meta["extra_events"] = len(extra)
    meta["extra_generate_s"] = time.perf_counter() - t0
    meta["gen_version"] = GEN_VERSION
    meta_path.write_text(json.dumps(meta))
    meta["cached"] = False
    return folder, meta


# ---- measuring -----------------------------------------------------------------------------
def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())


class OtherLoad:
    """CPU the rest of the machine used while a step ran (all CPUs' busy time from
    /proc/stat minus this process tree's), in cores."""

    def __init__(self) -> None:
        self.busy0 = C.machine_busy_s()
        self.own0 = C.own_tree_cpu_s()
        self.t0 = time.monotonic()

    def cores(self) -> float | None:
        busy1 = C.machine_busy_s()
        if self.busy0 is None or busy1 is None:
            return None
        wall = time.monotonic() - self.t0
        own = C.own_tree_cpu_s() - self.own0
        return max(0.0, busy1 - self.busy0 - own) / max(wall, 1e-9)


def file_bytes(path: Path) -> dict[str, int]:
    out = {}
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            out[suffix or "db"] = os.path.getsize(f"{path}{suffix}")
    return out


def journal_disk_bytes(directory: Path) -> tuple[int, int, int]:
    """(segments, bytes on disk, of which gzipped bytes)."""
    n = total = gz = 0
    for p in directory.iterdir():
        if ".jsonl" in p.name:
            n += 1
            size = p.stat().st_size
            total += size
            gz += size if p.name.endswith(".gz") else 0
    return n, total, gz


def size_split(path: Path) -> dict[str, int]:
    """Bytes per table / index / FTS shadow table (dbstat), plus the line blocks' bytes."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        try:
            rows = conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall()
        except sqlite3.OperationalError:  # no dbstat compiled in
            rows = []
        split = {name: int(size) for name, size in rows}
        split["(compressed line blocks, inside blocks)"] = int(
            conn.execute("SELECT SUM(LENGTH(data)) FROM blocks").fetchone()[0] or 0)
        split["(other columns, inside events)"] = int(conn.execute(
            "SELECT SUM(8 + LENGTH(session_id) + LENGTH(event_type) + IFNULL(LENGTH(tool_name),"
            " 0) + LENGTH(risk) + LENGTH(status) + LENGTH(operation) + IFNULL(LENGTH(file_path),"
            " 0) + IFNULL(LENGTH(cwd), 0) + IFNULL(LENGTH(agent_id), 0) + "
            "IFNULL(LENGTH(tool_use_id), 0) + 4 + LENGTH(summary)) FROM events").fetchone()[0]
            or 0)
        return split
    finally:
        conn.close()


def term_frequencies(path: Path) -> tuple[int, list[tuple[str, int]]]:
    """(events, [(term, events holding it)]) from the FTS index itself (fts5vocab)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        total = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        conn.execute("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, events_fts, row)")
        terms = conn.execute("SELECT term, doc FROM temp.vocab").fetchall()
        return total, terms
    finally:
        conn.close()


def pick_terms(total: int, terms: list[tuple[str, int]], lo: float, hi: float,
               rng: random.Random, k: int) -> list[str]:
    """Up to ``k`` words held by between lo and hi of the events (letters only: a word, not
    a number or a hex id)."""
    found = [t for t, n in terms if lo * total <= n <= hi * total and t.isalpha()
             and len(t) > 2]
    rng.shuffle(found)
    return found[:k]


def _cycle(rng: random.Random, items: list[Any], n: int) -> list[Any]:
    """``n`` values from ``items``, each used about as often, in random order."""
    items = list(items)
    rng.shuffle(items)
    return [items[i % len(items)] for i in range(n)] if items else []


_TOKEN = re.compile(r"[^\W_]+")


def sample_values(path: Path, n_runs: int, rng: random.Random) -> dict[str, list[Any]]:
    """Query values drawn from the data: words by how many events hold them, phrases from
    prompts and commands, sessions, seqs to page from."""
    t0 = time.perf_counter()
    total, terms = term_frequencies(path)
    vocab_s = time.perf_counter() - t0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        last = conn.execute("SELECT MAX(seq) FROM events").fetchone()[0]
        seqs = rng.sample(range(1, last + 1), min(last, 4000))
        marks = ",".join("?" * len(seqs))
        rows = conn.execute(f"SELECT seq, session_id, event_type FROM events WHERE seq "
                            f"IN ({marks}) ORDER BY seq", seqs).fetchall()
        lines = mindex.fetch_lines(conn, [r[0] for r in rows])
    finally:
        conn.close()
    sessions = sorted({r[1] for r in rows if r[1]})
    types = sorted({r[2] for r in rows})
    phrases = []
    for (_seq, _sid, event_type), line in zip(rows, lines, strict=True):
        if event_type not in ("UserPromptSubmit", "PreToolUse"):
            continue
        payload = json.loads(line).get("payload") or {}
        text = payload.get("prompt") or (payload.get("tool_input") or {}).get("command")
        words = _TOKEN.findall(text or "")
        if len(words) >= 3:
            k = rng.randint(2, 3)
            at = rng.randrange(len(words) - k + 1)
            phrases.append('"' + " ".join(words[at:at + k]) + '"')
    values = {
        "common": pick_terms(total, terms, 0.10, 0.30, rng, n_runs),
        "medium": pick_terms(total, terms, 0.005, 0.02, rng, n_runs),
        "rare": pick_terms(total, terms, 0.00005, 0.00020, rng, n_runs),
        "phrases": phrases,
        "sessions": sessions,
        "types": types,
        "seqs": [s for s in seqs if s > last // 20],
        "last_seq": [last],
        "vocab_s": [vocab_s],
        "terms": [len(terms)],
    }
    df = dict(terms)
    values["df"] = [{w: df[w] / total for k in ("common", "medium", "rare")
                     for w in values[k]}]
    return values


class Case:
    def __init__(self, name: str, what: str, make, limit: int = 50) -> None:  # noqa: ANN001
        self.name, self.what, self.make, self.limit = name, what, make, limit


def query_cases(v: dict[str, list[Any]], runs: int, rng: random.Random, now_ms: int
                ) -> list[Case]:
    """The typical queries; ``make(i)`` -> (query text, before) for run i (run -1: the
    warm-up)."""
    def vals(key: str) -> list[Any]:
        return _cycle(rng, v[key], runs + 1)

    common, medium, rare, phrases = vals("common"), vals("medium"), vals("rare"), vals("phrases")
    sessions, types, seqs = vals("sessions"), vals("types"), vals("seqs")
    common2 = common[1:] + common[:1]  # another word, never the same
    tools = _cycle(rng, [f"tool:{t} since:{d}" for t in ("Bash", "Read", "Edit", "Grep", "Write")
                         for d in ("1d", "2d", "7d")], runs + 1)
    # Whole UTC days 2 to 28 days back: a time range in the past.
    today = now_ms // 86_400_000
    def day(k: int) -> str:
        return time.strftime("%Y-%m-%d", time.gmtime((today - k) * 86_400))

    days = [day(k) for k in range(2, 29)]
    days_after = {day(k): day(k - 1) for k in range(2, 29)}
    day_tools = _cycle(rng, [(t, d) for t in ("Bash", "Read", "Edit", "Write") for d in days],
                       runs + 1)
    day_list = _cycle(rng, days, runs + 1)
    return [
        Case("word_common", "a word in 10-30% of events", lambda i: (common[i], None)),
        Case("word_1pct", "a word in 0.5-2% of events", lambda i: (medium[i], None)),
        Case("word_rare", "a word in 0.005-0.02% of events", lambda i: (rare[i], None)),
        Case("phrase", "a 2-3 word phrase from a prompt or command",
             lambda i: (phrases[i], None)),
        Case("two_common_words", "two words of 10-30% each",
             lambda i: (f"{common[i]} {common2[i]}", None)),
        Case("tool_since", "tool:Bash|Read|Edit|Grep|Write since:1d|2d|7d",
             lambda i: (tools[i], None)),
        Case("tool_day", "tool:Bash|Read|Edit|Write since:<a day 2-28 days back> until:<the next>",
             lambda i: (f"tool:{day_tools[i][0]} since:{day_tools[i][1]} "
                        f"until:{days_after[day_tools[i][1]]}", None)),
        Case("until_day", "until:<a day 2-28 days back> (newest first: the page before it)",
             lambda i: (f"until:{day_list[i]}", None)),
        Case("since_1h", "since:1h", lambda i: ("since:1h", None)),
        Case("session", "session:<full id>, the timeline (limit 1000)",
             lambda i: (f"session:{sessions[i]}", None), limit=1000),
        Case("session_prefix", "session:<first 8 characters>",
             lambda i: (f"session:{sessions[i][:8]}", None)),
        Case("type_failure", "type:PostToolUseFailure",
             lambda i: ("type:PostToolUseFailure", None)),
        Case("type_any", "type:<a type drawn from the data>",
             lambda i: (f"type:{types[i]}", None)),
        Case("not_word", "tool:Bash NOT <common word>",
             lambda i: (f"tool:Bash NOT {common[i]}", None)),
        Case("not_field", "<1% word> -tool:Read",
             lambda i: (f"{medium[i]} -tool:Read", None)),
        Case("or_words", "<rare word> OR <rare word>",
             lambda i: (f"{rare[i]} OR {rare[-1 - i]}", None)),
        Case("or_fields", "type:PostToolUseFailure OR type:StopFailure OR risk:high",
             lambda i: ("type:PostToolUseFailure OR type:StopFailure OR risk:high", None)),
        Case("word_and_filters", "<common word> tool:Read since:7d",
             lambda i: (f"{common[i]} tool:Read since:7d", None)),
        Case("word_and_type", "<1% word> type:PostToolUse",
             lambda i: (f"{medium[i]} type:PostToolUse", None)),
        Case("page_common", "<common word>, before=<a seq drawn from the data>",
             lambda i: (common[i], seqs[i])),
        Case("page_tool", "tool:Bash, before=<a seq drawn from the data>",
             lambda i: ("tool:Bash", seqs[i])),
    ]


def time_queries(path: Path, cases: list[Case], runs: int, now_ms: int,
                 plans: bool) -> dict[str, dict[str, Any]]:
    from mpmd.history import query as language

    conn = mindex.connect_read_only(path)
    out: dict[str, dict[str, Any]] = {}
    try:
        for case in cases:
            samples: list[int] = []
            hits: list[int] = []
            slowest = ("", 0)
            for i in range(-1, runs):
                text, before = case.make(i)
                t0 = time.perf_counter_ns()
                where, params = language.compile(text, now_ms)
                lines = mindex.search(conn, where, params, limit=case.limit, before=before)
                elapsed = time.perf_counter_ns() - t0
                if i < 0:
                    continue  # the warm-up
                samples.append(elapsed)
                hits.append(len(lines))
                if elapsed > slowest[1]:
                    slowest = (text + (f" before={before}" if before else ""), elapsed)
            ms = [x / 1e6 for x in samples]
            result: dict[str, Any] = {
                "p50": statistics.median(ms), "p95": C.percentile(ms, 95), "max": max(ms),
                "hits_median": statistics.median(hits), "slowest": slowest[0]}
            if plans:
                where, params = language.compile(slowest[0].split(" before=")[0], now_ms)
                result["plan"] = [r[-1] for r in conn.execute(
                    f"EXPLAIN QUERY PLAN SELECT seq FROM events WHERE ({where}) "
                    "ORDER BY seq DESC LIMIT 50", params)]
            out[case.name] = result
            print(f"    {case.name:17} p50 {result['p50']:7.1f}  p95 {result['p95']:7.1f}  "
                  f"max {result['max']:7.1f} ms  ({result['hits_median']:.0f} events a page; "
                  f"{case.what})", flush=True)
    finally:
        conn.close()
    return out


def incremental(path: Path, lines: list[bytes], sizes: tuple[int, ...]
                ) -> tuple[float, dict[int, dict[str, float]]]:
    """(seconds open_index took, {batch size: figures}) for Index.add on top of the index."""
    t0 = time.perf_counter()
    index = mindex.open_index(path)  # what the daemon's indexer does at start (quick_check)
    open_s = time.perf_counter() - t0
    out: dict[int, dict[str, float]] = {}
    per = len(lines) // len(sizes)
    try:
        for k, size in enumerate(sizes):
            chunk = lines[k * per:(k + 1) * per]
            lat: list[float] = []
            for i in range(0, len(chunk), size):
                t = time.perf_counter()
                index.add(chunk[i:i + size])
                lat.append(time.perf_counter() - t)
            total = sum(lat)
            out[size] = {"events": len(chunk), "seconds": total,
                         "events_per_s": len(chunk) / total,
                         "batch_p50_ms": 1000 * statistics.median(lat),
                         "batch_p95_ms": 1000 * C.percentile(lat, 95),
                         "batch_max_ms": 1000 * max(lat)}
    finally:
        index.close()
    return open_s, out


def daemon_status(home: Path) -> dict[str, Any]:
    out = C.mpmd_cli(home, "status", "--json", timeout=60)
    return json.loads(out.stdout)


def daemon_keeps_up(rate: float, seconds: float, idle_s: float = 10.0) -> dict[str, Any]:
    """A real daemon (fresh MPMD_HOME, index on) fed ``rate`` events/s for ``seconds``
    (fixture payloads, batches of 256 frames on one connection, as ingest.py's pipelined
    mode but paced); then how far its index worker was behind the journal, and how long
    it took to catch up once the load stopped (None if it stopped advancing for
    ``idle_s`` before it caught up)."""
    import socket

    import ingest as I  # benchmarks/ingest.py: the pipelined batches

    from mpm_hook import wire

    home = C.short_tempdir("mpmsd-")
    daemon = C.Daemon(home, log_name="daemon-bench.log")
    try:
        daemon.start(timeout=60)
        payloads = C.fixture_payloads()
        size = 256
        batches = [I.Batch(payloads, size, start=i * size) for i in range(4)]
        acks = bytearray(size * wire.ACK_FRAME_BYTES)
        view = memoryview(acks)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(home / "mpmd.sock"))
        worker = daemon_status(home)["index_worker_pid"]
        cpu0, worker_cpu0 = I.cpu_seconds(daemon.pid), I.cpu_seconds(worker)
        start = time.monotonic()
        sent = stored = k = 0
        while time.monotonic() - start < seconds:
            due = start + sent / rate
            if due > time.monotonic():
                time.sleep(due - time.monotonic())
            batch = batches[k % len(batches)]
            k += 1
            batch.fresh()
            sock.sendall(batch.blob)
            sent += size
            C.recv_exactly(sock, view)
            stored += acks[24::wire.ACK_FRAME_BYTES].count(wire.STORED)
        wall = time.monotonic() - start
        cpu = sum(I.cpu_seconds(daemon.pid)) - sum(cpu0)
        worker_cpu = sum(I.cpu_seconds(worker)) - sum(worker_cpu0)
        sock.close()
        st = daemon_status(home)
        at_end = st["index_last_seq"]
        journal_last = st["journal_last_seq"]
        t0 = last_move = time.monotonic()
        indexed = at_end
        caught_up_s = None
        while True:
            if indexed >= journal_last:
                caught_up_s = time.monotonic() - t0
                break
            if time.monotonic() - last_move > idle_s:
                break
            time.sleep(0.5)
            now_indexed = daemon_status(home)["index_last_seq"]
            if now_indexed != indexed:
                indexed, last_move = now_indexed, time.monotonic()
        return {"offered_per_s": rate, "seconds": wall, "stored_per_s": stored / wall,
                "daemon_cores": cpu / wall, "index_worker_cores": worker_cpu / wall,
                "journal_last_seq": journal_last,
                "index_at_end": at_end, "index_per_s_during_load": at_end / wall,
                "behind_at_end": journal_last - at_end, "caught_up_s": caught_up_s,
                "stalled_behind": None if caught_up_s is not None else journal_last - indexed,
                "worker_restarts": st["counters"].get("index_worker_restarts", 0),
                "index_errors": st["counters"].get("index_errors", 0)}
    finally:
        daemon.kill9()
        C.remove_home(home)


def profile_hot_spots(raw: Path) -> list[str]:
    from ingest import hot_spots  # benchmarks/ingest.py: the same py-spy summary

    if not raw.exists():
        return ["py-spy wrote no profile"]
    return hot_spots(raw.read_text(), top=12)


def fmt_bytes(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000, help="journal size (1,000,000)")
    ap.add_argument("--quick", action="store_true", help="--events 100000")
    ap.add_argument("--runs", type=int, default=30, help="timed runs per query (30)")
    ap.add_argument("--fresh", action="store_true", help="generate the journal anew")
    ap.add_argument("--skip-cli", action="store_true", help="do not time `mpmd reindex`")
    ap.add_argument("--plans", action="store_true",
                    help="print EXPLAIN QUERY PLAN of each query type's slowest run")
    ap.add_argument("--profile", action="store_true",
                    help="run `mpmd reindex` under py-spy and print its hot spots")
    ap.add_argument("--daemon-seconds", type=float, default=10,
                    help="seconds of paced load through a real daemon (0: skip that step)")
    ap.add_argument("--daemon-rate", type=float, default=TARGET_INCREMENTAL,
                    help=f"events/s offered to it ({TARGET_INCREMENTAL:,})")
    ap.add_argument("--keep", action="store_true", help="keep the temporary MPMD_HOME")
    ap.add_argument("--generate-only", action="store_true",
                    help="make (or find) the cached journal and stop")
    args = ap.parse_args()
    if args.quick:
        args.events = 100_000
    n = args.events
    rng = random.Random(4)
    figures: dict[str, Any] = {}
    print(f"search: {n:,} events; machine: {os.cpu_count()} CPUs, load average "
          f"{load_average()}, SQLite {sqlite3.sqlite_version}")

    # ---- 1. the journal
    cache, meta = cached_journal(n, args.fresh)
    segs, disk, gz = journal_disk_bytes(cache / "journal")
    journal_bytes = meta["line_bytes"]
    now_ms = meta["last_ts_ns"] // MS + 60_000
    if meta["cached"]:
        print(f"  journal: cached in {cache} (generated in {meta['generate_s']:.0f} s + gzip "
              f"{meta['gzip_s']:.0f} s when it was made; --fresh to make it anew)")
    else:
        print(f"  journal: generated in {meta['generate_s']:.1f} s "
              f"({meta['events'] / meta['generate_s']:,.0f} events/s) + gzip of closed "
              f"segments {meta['gzip_s']:.1f} s; {meta['extra_events']:,} more events for the "
              f"incremental run in {meta['extra_generate_s']:.1f} s")
    print(f"  journal: {meta['events']:,} events, {fmt_bytes(journal_bytes)} uncompressed "
          f"({journal_bytes / meta['events']:.0f} bytes a line), {segs} segments, "
          f"{fmt_bytes(disk)} on disk ({fmt_bytes(gz)} of it gzipped)")
    figures["generate_s"] = round(meta["generate_s"], 1)
    if args.generate_only:
        return 0

    home = C.short_tempdir("mpms-")
    (home / "journal").symlink_to(cache / "journal")
    index_path = home / "index.sqlite3"
    try:
        # ---- 2. reindex, in-process
        journal = Journal(home / "journal", read_only=True)
        try:
            t = time.perf_counter()
            read = sum(1 for _ in journal.read_from(0))
            read_s = time.perf_counter() - t
            sample = list(itertools.islice(journal.read_from(0), 50_000))
            t = time.perf_counter()
            for line in sample:
                mindex.row_of(line)
            row_us = 1e6 * (time.perf_counter() - t) / len(sample)
            del sample
            load = OtherLoad()
            cpu0 = time.process_time()
            t = time.perf_counter()
            mindex.rebuild(index_path, journal.read_from(0)).close()
            rebuild_s = time.perf_counter() - t
            rebuild_cpu = time.process_time() - cpu0
            other = load.cores()
        finally:
            journal.close()
        size = file_bytes(index_path)
        index_bytes = size.get("db", 0) + size.get("-wal", 0)
        figures.update(reindex_s=rebuild_s, reindex_events_per_s=read / rebuild_s,
                       reindex_cpu_s=rebuild_cpu, journal_read_s=read_s,
                       row_of_us=row_us)
        print(f"  reindex (mpmd.history.index.rebuild): {rebuild_s:.1f} s = "
              f"{read / rebuild_s:,.0f} "
              f"events/s (CPU {rebuild_cpu:.1f} s; other processes used {other or 0:.2f} "
              "cores meanwhile)")
        sqlite_s = rebuild_s - read_s - row_us * read / 1e6
        print(f"    where it goes: reading the journal {read_s:.1f} s (gunzip + split), "
              f"row_of {row_us:.1f} us an event = {row_us * read / 1e6:.1f} s, compressing "
              f"line blocks and SQLite (inserts, FTS, commits) the rest: {sqlite_s:.1f} s")
        figures["reindex_sqlite_s"] = sqlite_s

        # ---- 3. size
        t = time.perf_counter()
        split = size_split(index_path)
        print(f"  size: index {fmt_bytes(index_bytes)} (wal {size.get('-wal', 0)} bytes) = "
              f"{index_bytes / journal_bytes:.2f} x the journal's uncompressed "
              f"{fmt_bytes(journal_bytes)}  ({time.perf_counter() - t:.1f} s to measure)")
        for name, b in sorted(split.items(), key=lambda kv: -kv[1]):
            print(f"    {name:32} {fmt_bytes(b):>13}  {b / journal_bytes:5.2f} x journal  "
                  f"{b / max(1, read):6.0f} bytes an event")
        figures.update(index_bytes=index_bytes, journal_bytes=journal_bytes,
                       size_ratio=index_bytes / journal_bytes, size_split=split)

        # ---- 4. `mpmd reindex`, the command
        if not args.skip_cli:
            exe = Path(sys.executable).with_name("mpmd")
            argv = [str(exe), "reindex"]
            raw = home / "reindex-profile.txt"
            if args.profile:
                spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
                argv = [spy, "record", "--rate", "50", "--format", "raw", "--nolineno",
                        "--output", str(raw), "--", *argv]
            load = OtherLoad()
            c0 = os.times()
            t = time.perf_counter()
            proc = subprocess.run(argv, env=C.env_for(home), capture_output=True, text=True,
                                  timeout=1800)
            cli_s = time.perf_counter() - t
            c1 = os.times()
            other = load.cores()
            if proc.returncode != 0:
                raise RuntimeError(f"mpmd reindex failed ({proc.returncode}): "
                                   f"{proc.stderr[-2000:]}")
            last_line = (proc.stdout.strip().splitlines() or [""])[-1]
            cli_cpu = (c1.children_user - c0.children_user) + (c1.children_system
                                                               - c0.children_system)
            figures.update(cli_reindex_s=cli_s, cli_reindex_events_per_s=read / cli_s)
            print(f"  `mpmd reindex` (no daemon: rebuilds in its process): {cli_s:.1f} s = "
                  f"{read / cli_s:,.0f} events/s, CPU {cli_cpu:.1f} s, other processes "
                  f"{other or 0:.2f} cores; it said: {last_line!r}")
            if args.profile:
                print("    py-spy, `mpmd reindex`:")
                for ln in profile_hot_spots(raw):
                    print("      " + ln)

        # ---- 5. queries
        t = time.perf_counter()
        values = sample_values(index_path, args.runs, rng)
        print(f"  query values drawn from the data in {time.perf_counter() - t:.1f} s "
              f"(fts5vocab over {values['terms'][0]:,} terms: {values['vocab_s'][0]:.1f} s); "
              f"'now' = the journal's last event + 1 min")
        df = values["df"][0]
        for key in ("common", "medium", "rare"):
            shown = ", ".join(f"{w} {100 * df[w]:.3g}%" for w in values[key][:6])
            print(f"    {key} words ({len(values[key])}): {shown}")
        cases = query_cases(values, args.runs, rng, now_ms)
        load = OtherLoad()
        print(f"  queries: {args.runs} runs each after one warm-up, compile + search "
              "(read-only connection, limit 50; ms)")
        queries = time_queries(index_path, cases, args.runs, now_ms, args.plans)
        other = load.cores()
        print(f"    (other processes used {other or 0:.2f} cores meanwhile)")
        if args.plans:
            for name, q in queries.items():
                print(f"    plan {name}: {q['slowest']}")
                for ln in q["plan"]:
                    print(f"        {ln}")
        figures["queries"] = queries

        # ---- 6. incremental: Index.add on top of the full index. The rebuilds write with
        # synchronous=OFF: their dirty pages would otherwise land in the first checkpoint's
        # fsync here (a daemon that has run for a while has none pending).
        os.sync()
        extra = (cache / "extra.jsonl").read_bytes().splitlines()
        load = OtherLoad()
        open_s, inc = incremental(index_path, extra, (256, WORKER_BATCH, 4096))
        other = load.cores()
        print(f"  incremental Index.add on top of {read:,} events (open_index with its "
              f"quick_check: {open_s:.1f} s; other processes {other or 0:.2f} cores):")
        for batch_size, f in inc.items():
            print(f"    batches of {batch_size:5}: {f['events_per_s']:8,.0f} events/s over "
                  f"{f['events']:,}; a batch p50 {f['batch_p50_ms']:.0f} ms, p95 "
                  f"{f['batch_p95_ms']:.0f} ms, max {f['batch_max_ms']:.0f} ms")
        figures.update(open_index_s=open_s, incremental=inc)
        after = file_bytes(index_path)
        print(f"    index after: {fmt_bytes(after.get('db', 0))} + wal "
              f"{fmt_bytes(after.get('-wal', 0))}")

        # ---- 7. the daemon under load: does its index worker keep up?
        dm: dict[str, Any] | None = None
        if args.daemon_seconds > 0:
            load = OtherLoad()
            dm = daemon_keeps_up(args.daemon_rate, args.daemon_seconds)
            other = load.cores()
            caught = (f"caught up {dm['caught_up_s']:.1f} s after the load stopped"
                      if dm["caught_up_s"] is not None else
                      f"STALLED {dm['stalled_behind']:,} events behind the journal (no progress"
                      " for 10 s with the daemon idle)")
            print(f"  daemon (fresh, index on) offered {dm['offered_per_s']:,.0f} events/s for "
                  f"{dm['seconds']:.0f} s (pipelined, batches of 256): stored "
                  f"{dm['stored_per_s']:,.0f}/s, daemon CPU {dm['daemon_cores']:.2f} cores, "
                  f"index worker {dm['index_worker_cores']:.2f}; other processes "
                  f"{other or 0:.2f} cores")
            print(f"    its index during the load: {dm['index_per_s_during_load']:,.0f} events/s,"
                  f" {dm['behind_at_end']:,} behind at the end; {caught}")
            figures["daemon"] = dm

        # ---- 8. targets
        scale = n / 1_000_000
        reindex_target = TARGET_REINDEX_S * scale
        inc_rate = inc[WORKER_BATCH]["events_per_s"]
        rows = [
            ("reindex (rebuild)", f"{rebuild_s:.1f} s", f"<= {reindex_target:.0f} s",
             rebuild_s <= reindex_target),
        ]
        if "cli_reindex_s" in figures:
            rows.append(("`mpmd reindex`", f"{figures['cli_reindex_s']:.1f} s",
                         f"<= {reindex_target:.0f} s",
                         figures["cli_reindex_s"] <= reindex_target))
        rows += [
            (f"incremental (batches of {WORKER_BATCH:,})", f"{inc_rate:,.0f}/s",
             f">= {TARGET_INCREMENTAL:,}/s", inc_rate >= TARGET_INCREMENTAL),
        ]
        if dm is not None:
            rows.append((f"daemon index at {dm['offered_per_s']:,.0f}/s offered",
                         f"{dm['index_per_s_during_load']:,.0f}/s", f">= {TARGET_INCREMENTAL:,}/s",
                         dm["index_per_s_during_load"] >= TARGET_INCREMENTAL))
        rows += [
            ("index / journal size", f"{index_bytes / journal_bytes:.2f}",
             f"<= {TARGET_SIZE_RATIO}", index_bytes / journal_bytes <= TARGET_SIZE_RATIO),
        ]
        rows += [(f"query {name} p95", f"{q['p95']:.1f} ms", f"<= {TARGET_P95_MS:.0f} ms",
                  q["p95"] <= TARGET_P95_MS) for name, q in queries.items()]
        print(f"\n  targets ({n:,} events{'; reindex target scaled' if scale != 1 else ''}):")
        for what, value, target, ok in rows:
            print(f"    {what:34} {value:>12}  {target:>12}  {'met' if ok else 'NOT MET'}")
        missed = [what for what, _v, _t, ok in rows if not ok]

        result = {
            "bench": "search",
            "events": meta["events"],
            "journal_mib": round(journal_bytes / 2**20, 1),
            "journal_bytes_per_event": round(journal_bytes / meta["events"]),
            "generate_s": figures["generate_s"],
            "reindex_s": round(rebuild_s, 1),
            "reindex_events_per_s": round(read / rebuild_s),
            "reindex_journal_read_s": round(read_s, 1),
            "reindex_row_of_us": round(row_us, 1),
            "reindex_sqlite_s": round(sqlite_s, 1),
            "cli_reindex_s": round(figures["cli_reindex_s"], 1) if "cli_reindex_s" in figures
            else None,
            "open_index_s": round(open_s, 2),
            **{f"incremental_{k}_events_per_s": round(f["events_per_s"]) for k, f in inc.items()},
            **{f"incremental_{k}_batch_p95_ms": round(f["batch_p95_ms"], 1)
               for k, f in inc.items()},
            **({f"daemon_{k}": (round(v, 2) if isinstance(v, float) else v)
                for k, v in dm.items()} if dm is not None else {}),
            "index_mib": round(index_bytes / 2**20, 1),
            "size_ratio": round(index_bytes / journal_bytes, 3),
            **{f"size_{k.strip('()').split(',')[0].replace(' ', '_')}_mib": round(b / 2**20, 1)
               for k, b in split.items()},
            **{f"q_{name}_p50_ms": round(q["p50"], 1) for name, q in queries.items()},
            **{f"q_{name}_p95_ms": round(q["p95"], 1) for name, q in queries.items()},
            "query_runs": args.runs,
            "targets_missed": missed,
            "cpus": os.cpu_count(),
        }
        C.emit_json(result)
        return 0
    finally:
        if args.keep:
            print(f"kept {home}", file=sys.stderr)
        else:
            C.remove_home(home)


if __name__ == "__main__":
    sys.exit(main())

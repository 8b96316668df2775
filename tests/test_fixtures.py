"""The repository's copy of the shared hook fixtures stays the same as the shared file."""

from __future__ import annotations

import json

import pytest

from mpmd.model import events
from tests.utils import FIXTURES, ROOT, fixture_payloads

SHARED = ROOT.parent / "shared" / "fixtures" / FIXTURES.name


@pytest.mark.skipif(not SHARED.exists(), reason="no shared fixtures next to this clone")
def test_copy_matches_the_shared_fixtures() -> None:
    assert FIXTURES.read_bytes() == SHARED.read_bytes()


def test_every_fixture_event_type_is_in_the_catalogue() -> None:
    names = {json.loads(p)["hook_event_name"] for p in fixture_payloads()}
    assert names <= events.CLAUDE_EVENT_TYPES, names - events.CLAUDE_EVENT_TYPES


def test_fixtures_cover_the_catalogue_but_the_model_switch() -> None:
    """The shared file predates PreModelSwitch and PostModelSwitch (tests/test_catalogue.py
    holds the payloads Claude Code 2.1.328 sent for them); every other type is there."""
    names = {json.loads(p)["hook_event_name"] for p in fixture_payloads()}
    assert events.CLAUDE_EVENT_TYPES - names <= {"PreModelSwitch", "PostModelSwitch"}

"""The repository's copy of the shared hook fixtures stays the same as the shared file."""

from __future__ import annotations

import json

import pytest

from mpmd import events
from tests.utils import FIXTURES, ROOT, fixture_payloads

SHARED = ROOT.parent / "shared" / "fixtures" / FIXTURES.name


@pytest.mark.skipif(not SHARED.exists(), reason="no shared fixtures next to this clone")
def test_copy_matches_the_shared_fixtures() -> None:
    assert FIXTURES.read_bytes() == SHARED.read_bytes()


def test_fixtures_cover_every_known_event_type() -> None:
    names = {json.loads(p)["hook_event_name"] for p in fixture_payloads()}
    assert names == set(events.CLAUDE_EVENT_TYPES)

"""Settings resolution and validation (mpmd.config): a bad value is a clear error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mpmd import config


@pytest.fixture
def env(home: Path, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("MPMD_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MPMD_HOME", str(home))
    return monkeypatch


@pytest.mark.parametrize("value, port", [("0", 0), ("7710", 7710), ("65535", 65535)])
def test_viewer_port_takes_ports_and_zero(env: pytest.MonkeyPatch, value: str,
                                          port: int) -> None:
    env.setenv("MPMD_VIEWER_PORT", value)
    assert config.load().viewer_port == port


@pytest.mark.parametrize("value", ["-1", "65536", "http", "1.5"])
def test_a_bad_viewer_port_is_a_clear_error(env: pytest.MonkeyPatch, value: str) -> None:
    env.setenv("MPMD_VIEWER_PORT", value)
    with pytest.raises(config.ConfigError, match=r"viewer_port = .* \(from MPMD_VIEWER_PORT\)"):
        config.load()


@pytest.mark.parametrize("name", ["MPMD_VIEWER_QUEUE_BYTES", "MPMD_VIEWER_SEND_TIMEOUT_S",
                                  "MPMD_IDLE_TIMEOUT_S"])
def test_other_numbers_must_be_positive(env: pytest.MonkeyPatch, name: str) -> None:
    env.setenv(name, "0")
    with pytest.raises(config.ConfigError, match="must be positive"):
        config.load()


def test_flag_beats_environment_beats_file(env: pytest.MonkeyPatch, home: Path) -> None:
    (home / "config.toml").write_text("viewer_port = 7000\nviewer_queue_bytes = 1000\n")
    env.setenv("MPMD_VIEWER_PORT", "7001")
    settings = config.load(viewer_port=7002)
    assert settings.viewer_port == 7002 and settings.sources["viewer_port"] == "flag"
    assert settings.viewer_queue_bytes == 1000
    assert settings.sources["viewer_queue_bytes"].endswith("config.toml")


@pytest.mark.parametrize("value", ["-1", "86401", "soon"])
def test_the_backfill_wait_is_bounded(env: pytest.MonkeyPatch, value: str) -> None:
    env.setenv("MPMD_TRANSCRIPT_BACKFILL_AFTER_S", value)
    with pytest.raises(config.ConfigError, match="transcript_backfill_after_s"):
        config.load()


def test_transcript_roots_and_prices_come_from_config_toml(env: pytest.MonkeyPatch,
                                                           home: Path) -> None:
    (home / "config.toml").write_text(
        'transcript_roots = "/a:/b"\n[prices."claude-opus-5-5"]\ninput = 4.0\noutput = 20.0\n')
    settings = config.load()
    assert settings.transcript_roots == "/a:/b"
    assert settings.price_tables == {"claude-opus-5-5": {"input": 4.0, "output": 20.0}}
    env.setenv("MPMD_PRICE_TABLES", "x")  # a table, not a tunable: no variable sets it
    assert config.load().price_tables == settings.price_tables

"""mpmd.durable.write_atomic, the one way mpmd writes a file whole, and the token files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mpmd import durable


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_file_is_written_whole_with_its_mode_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "unit.service"
    old = os.umask(0o077)
    try:
        durable.write_atomic(path, b"[Unit]\n", mode=0o644)
    finally:
        os.umask(old)
    assert path.read_bytes() == b"[Unit]\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    durable.write_atomic(path, b"x")  # replaced, and the default mode is owner-only
    assert path.read_bytes() == b"x" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert names(tmp_path) == ["unit.service"]


def test_short_writes_go_on_until_every_byte_is_written(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = os.write
    calls = []

    def one_byte(fd: int, data: bytes) -> int:
        calls.append(1)
        return real_write(fd, bytes(data[:1]))

    monkeypatch.setattr(os, "write", one_byte)
    durable.write_atomic(tmp_path / "f", b"seven b")
    monkeypatch.undo()
    assert (tmp_path / "f").read_bytes() == b"seven b" and len(calls) == 7


@pytest.mark.parametrize("fails", ["write", "fsync", "replace"])
def test_a_failure_leaves_the_old_file_and_no_temporary_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fails: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_bytes(b"old")

    def broken(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, fails, broken)
    with pytest.raises(OSError, match="No space"):
        durable.write_atomic(path, b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old" and names(tmp_path) == ["policy.toml"]


def test_without_replace_an_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    durable.write_atomic(path, b"first", replace=False)
    with pytest.raises(FileExistsError):
        durable.write_atomic(path, b"second", replace=False)
    assert path.read_bytes() == b"first" and names(tmp_path) == ["policy.toml"]


def test_the_folder_is_synced_after_the_rename(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[tuple[Path, bool]] = []
    path = tmp_path / "cursor"
    monkeypatch.setattr(durable, "fsync_dir", lambda d: synced.append((d, path.exists())))
    durable.write_atomic(path, b"1\n")
    assert synced == [(tmp_path, True)]


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_the_owner_asked_for_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    durable.write_atomic(path, b"{}", owner=(65534, 65534))
    st = path.stat()
    assert (st.st_uid, st.st_gid) == (65534, 65534)


def test_a_token_is_made_once_and_a_readable_one_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "http.token"
    token = durable.load_or_create_token(path)
    assert len(token) == 64 and int(token, 16) >= 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert durable.load_or_create_token(path) == token
    path.chmod(0o644)  # others could have read it: it protects nothing any more
    fresh = durable.load_or_create_token(path)
    assert fresh != token and stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("not a token\n", encoding="utf-8")
    path.chmod(0o600)
    assert durable.load_or_create_token(path) not in (fresh, "not a token")

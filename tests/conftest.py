import shutil
from pathlib import Path

import pytest

from tests.utils import short_tempdir


@pytest.fixture
def home() -> Path:
    """A short, private MPMD_HOME (Unix socket paths must stay under ~104 bytes)."""
    path = short_tempdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)

"""Shared pytest set-up. Fixtures live in ``tests/fixtures/*.py``, one module per stand-in or
resource, and are loaded here as plugins so every test module can use them."""

import os
from pathlib import Path

# The offline models carry their weights; no library may try the hub at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytest_plugins = sorted(
    f"tests.fixtures.{p.stem}" for p in (Path(__file__).parent / "fixtures").glob("*.py") if p.stem != "__init__"
)

"""The reliability suite carries the ``reliability`` marker: ``make test`` runs it with everything
else; ``pytest -m "not reliability"`` leaves it out while iterating on something unrelated."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.reliability)

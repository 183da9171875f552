"""Contract servers started per test: each test sees an empty vendor and no armed fault."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.contracts.pagerduty import PagerDutyServer
from tests.support.contracts.servicenow import ServiceNowServer


@pytest.fixture
def pagerduty() -> Iterator[PagerDutyServer]:
    with PagerDutyServer() as server:
        yield server


@pytest.fixture
def servicenow() -> Iterator[ServiceNowServer]:
    with ServiceNowServer() as server:
        yield server

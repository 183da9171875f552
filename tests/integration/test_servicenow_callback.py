"""The ServiceNow instance's callback (POST /servicenow) on the local control plane.

The controller's read-back poll is set to an hour, so only the callback can explain a
change made in the contract server showing on the Incident within seconds. The
callback is signed as a business rule would sign it, with the shared key from the
Secret the chart lets the controller read; unsigned or wrongly signed ones change
nothing.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from changegate.adapters.notify.webhook import SIGNATURE_HEADER, signature
from tests.integration.conftest import Governed
from tests.integration.test_pagerduty import restart_controller
from tests.integration.test_servicenow import changed_in_servicenow
from tests.support.contracts.servicenow import ServiceNowServer
from tests.support.localcluster import LocalCluster
from tests.support.operator import NAMESPACE, Installation, trust_store
from tests.support.polling import wait_for
from tests.support.scenario import get

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("incidents_resolved")]

SECRET_NAME = "changegate-servicenow-callback"  # the chart's default
KEY = secrets.token_hex(16)


@pytest.fixture(scope="module")
def servicenow(cluster: LocalCluster, installation: Installation) -> Iterator[ServiceNowServer]:
    cluster.kubectl(
        "-n", NAMESPACE, "create", "secret", "generic", SECRET_NAME,
        f"--from-literal=secret={KEY}",
    )  # fmt: skip
    with ServiceNowServer() as server:
        restart_controller(installation, cluster, CHANGEGATE_SERVICENOW_POLL_SECONDS="3600")
        yield server
    restart_controller(installation, cluster)


def call(installation: Installation, body: bytes, header: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers[SIGNATURE_HEADER] = header
    url = f"https://127.0.0.1:{installation.intake_port}/servicenow"
    with httpx.Client(verify=trust_store(installation.cert), timeout=10) as client:
        return client.post(url, content=body, headers=headers)


def spec_of(cluster: LocalCluster, ns: str) -> dict[str, Any]:
    spec: dict[str, Any] = get(cluster, ns, "incident/inc-cb")["spec"]
    return spec


def test_a_signed_callback_reads_the_ticket_back_at_once_and_an_unsigned_one_nothing(
    cluster: LocalCluster,
    governed: Governed,
    installation: Installation,
    servicenow: ServiceNowServer,
) -> None:
    ns = governed.namespace
    uid, sys_id = changed_in_servicenow(cluster, ns, servicenow, "inc-cb")
    body = json.dumps({"table": "incident", "sys_id": sys_id, "correlation_id": uid}).encode()

    refused = [
        call(installation, body, None),
        call(installation, body, signature(body, "not-the-key")),
        call(installation, b'{"table": "incident"}', signature(b'{"table": "incident"}', KEY)),
    ]
    assert [r.status_code for r in refused] == [401, 401, 400]
    spec = spec_of(cluster, ns)
    assert (spec.get("acknowledgements"), spec.get("notes")) == (None, None)

    started = time.monotonic()
    # The controller's indexes may not hold the recorded create yet: then "no object".
    answer = wait_for(
        lambda: (r := call(installation, body, signature(body, KEY))).json()["message"]
        == "read back" and r,
        timeout=5, message="the callback to read the ticket back",
    )  # fmt: skip
    assert answer.status_code == 200
    spec = wait_for(
        lambda: (s := spec_of(cluster, ns)).get("assignee") and s.get("notes") and s,
        timeout=5, message="ServiceNow's acts on the Incident",
    )  # fmt: skip
    assert time.monotonic() - started < 6  # the poll (an hour) cannot explain it
    [ack] = spec["acknowledgements"]
    assert (ack["via"], ack["externalUser"]) == ("ServiceNow", "product-dev-2")
    assert (spec["assignee"], spec["assignedVia"]) == ("product-dev-2", "ServiceNow")
    [note] = spec["notes"]
    assert (note["text"], note["via"]) == ("failing over the database", "ServiceNow")

    again = call(installation, body, signature(body, KEY))  # a repeated callback
    assert again.status_code == 200
    assert len(spec_of(cluster, ns)["notes"]) == 1

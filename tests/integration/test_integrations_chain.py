"""Issue 12 end to end: one alert, one Incident, one PagerDuty incident, one ServiceNow ticket.

Real Prometheus fires a rule, real Alertmanager posts to the intake, the Incident
opens; the controller triggers PagerDuty (contract server) under dedup_key = uid and
opens a ServiceNow incident (contract server) under correlation_id = uid. A responder
acknowledges in PagerDuty (a signed v3 webhook to the intake): the Incident is
acknowledged via PagerDuty and the ServiceNow ticket goes In Progress. The endpoint
recovers: Alertmanager's resolved post closes the Incident, PagerDuty and ServiceNow.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.integration.test_incident_chain import (
    CHAIN_TIMEOUT,
    Service,
    intake_config,
    rules,
    service_on_call,
    status_of,
    the_incident,
    wait_for_intake_to_route,
)
from tests.integration.test_intake import Intake
from tests.integration.test_pagerduty import ROUTING_KEY, pagerduty, pagerduty_of
from tests.integration.test_pagerduty_inbound import ALICE, signing_secret
from tests.integration.test_servicenow import integration, ticket, wait_ticket
from tests.support.contracts.pagerduty import PagerDutyServer
from tests.support.contracts.servicenow import ServiceNowServer
from tests.support.localcluster import LocalCluster
from tests.support.operator import Installation, trust_store
from tests.support.polling import wait_for
from tests.support.prometheus import (
    MetricsEndpoint,
    alertmanager,
    prometheus,
    prometheus_config,
)
from tests.support.receivers import receiving

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("incidents_resolved")]

# Module fixtures: the controller restarted towards the PagerDuty server; the signing Secret.
__all__ = ["pagerduty", "signing_secret"]


@pytest.fixture(scope="module")
def servicenow() -> Iterator[ServiceNowServer]:
    # Its URL is in each ServiceOnCall, so the controller needs no restart for it.
    with ServiceNowServer() as server:
        yield server


def integrated_service(
    cluster: LocalCluster, service: Service, servicenow: ServiceNowServer
) -> None:
    """The chain's ServiceOnCall paged through PagerDuty and mirrored in ServiceNow only;
    its on-call person is ALICE in PagerDuty."""
    ns, name = service.namespace, service.name
    cluster.kubectl(
        "-n", ns, "create", "secret", "generic", f"pd-{name}",
        f"--from-literal=routing-key={ROUTING_KEY}",
    )  # fmt: skip
    cluster.kubectl(
        "-n", ns, "create", "secret", "generic", "servicenow",
        f"--from-literal=username={servicenow.username}",
        f"--from-literal=password={servicenow.password}",
    )  # fmt: skip
    soc = service_on_call(name, ns)
    soc["spec"]["team"]["members"][0]["contacts"] = [{"type": "PagerDuty", "value": ALICE}]
    soc["spec"]["integrations"] = {
        **pagerduty_of(name),
        "serviceNow": integration(servicenow, "payments-oncall"),
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(soc), user="platform-admin-1")


def pd_events(pagerduty: PagerDutyServer, uid: str, action: str) -> list[dict[str, Any]]:
    return [
        e for e in pagerduty.events if e.get("dedup_key") == uid and e["event_action"] == action
    ]


def test_an_alert_opens_pages_tickets_acks_from_pagerduty_and_resolves_all_three(
    cluster: LocalCluster,
    installation: Installation,
    api: client.ApiClient,
    namespace: str,
    pagerduty: PagerDutyServer,
    servicenow: ServiceNowServer,
    signing_secret: str,
    tmp_path: Path,
) -> None:
    intake = Intake(installation)
    with (
        receiving() as unused,  # Service's receiver: this service pages no webhook
        MetricsEndpoint() as endpoint,
        alertmanager(tmp_path / "alertmanager", intake_config(installation)) as am,
    ):
        service = Service(f"chain-{uuid.uuid4().hex[:8]}", namespace, unused)
        integrated_service(cluster, service, servicenow)
        wait_for_intake_to_route(intake, service.name)
        config = prometheus_config([endpoint.target], [am], "rules.yml")
        with prometheus(tmp_path / "prometheus", config, rules(service)):
            wait_for(lambda: endpoint.scrapes > 0, timeout=CHAIN_TIMEOUT, message="a scrape")
            endpoint.healthy = False
            incident = wait_for(
                lambda: the_incident(api, service), timeout=CHAIN_TIMEOUT, message="an Incident"
            )
            uid = incident["metadata"]["uid"]
            assert incident["spec"]["origin"] == "Alert"

            # Opened: one trigger under the uid, one ServiceNow incident under the uid.
            wait_for(
                lambda: pagerduty.incident(ROUTING_KEY, uid), timeout=30, message="PD triggered"
            )
            opened = wait_ticket(servicenow, "incident", uid, state="1")
            assert len(pd_events(pagerduty, uid, "trigger")) == 1
            assert len(pagerduty.incidents(ROUTING_KEY, uid)) == 1
            assert opened["correlation_id"] == uid
            assert opened["assignment_group"] == "payments-oncall"

            # Acknowledged in PagerDuty: the signed webhook reaches the intake.
            pagerduty.subscribe(
                f"https://127.0.0.1:{installation.intake_port}/pagerduty",
                [signing_secret], verify=trust_store(installation.cert),
            )  # fmt: skip
            pagerduty.act(ROUTING_KEY, uid, "incident.acknowledged", agent_id=ALICE)
            answer = pagerduty.webhooks.responses[-1]  # type: ignore[union-attr]
            assert answer.status_code == 200, answer.text
            assert answer.json()["message"] == "acknowledged by oncall-1 via PagerDuty"
            wait_for(
                lambda: status_of(api, service).get("phase") == "Acknowledged",
                timeout=30, message="the Incident Acknowledged",
            )  # fmt: skip
            [ack] = the_incident(api, service)["spec"]["acknowledgements"]  # type: ignore[index]
            assert (ack["via"], ack["externalUser"]) == ("PagerDuty", "oncall-1")
            wait_ticket(servicenow, "incident", uid, state="2")  # In Progress

            # Resolved: the endpoint recovers, Alertmanager posts resolved.
            endpoint.healthy = True
            wait_for(
                lambda: status_of(api, service).get("phase") == "Resolved",
                timeout=CHAIN_TIMEOUT, message="the Incident Resolved by the resolved alert",
            )  # fmt: skip
            wait_for(lambda: pd_events(pagerduty, uid, "resolve"), timeout=30, message="PD resolve")
            closed = wait_ticket(servicenow, "incident", uid, state="6")  # Resolved

    assert the_incident(api, service)["spec"]["resolution"]["code"] == "AutoResolved"  # type: ignore[index]
    [paged] = pagerduty.incidents(ROUTING_KEY, uid)
    # Our acknowledge is never echoed back to PagerDuty: its own act, then our resolve.
    assert paged.actions == ["trigger", "acknowledge", "resolve"]
    assert len(pd_events(pagerduty, uid, "trigger")) == 1
    assert ticket(servicenow, "incident", uid) == closed  # still one record
    assert pagerduty.rejected == []

"""Reading at scale: the paged reader and msgspec decoder give the slim structs the
one-object path gives (optional fields missing included), and the streamed JSON is
byte for byte what json.dumps(plain(report), indent=2) wrote before."""

from __future__ import annotations

import copy
import io
import json
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import msgspec
import pytest

from changegate.adapters.kube import ObjectPages
from changegate.cli import report_text
from changegate.cli.meter import Meter
from changegate.cli.report import Reader, read_evidence
from changegate.cli.report_text import ReportFormat, json_chunks, plain, render
from changegate.core.report.compliance import compliance_report
from changegate.core.report.dora import dora_report
from changegate.core.report.evidence import (
    Change,
    Evidence,
    Incident,
    Period,
    Record,
    Scope,
    share_strings,
)
from tests.unit.report.builders import WEEK, at, change, record

MANAGED = [
    {"manager": "changegate", "operation": "Update", "apiVersion": "changegate.io/v1alpha1",
     "time": "2025-03-03T00:00:00Z", "fieldsType": "FieldsV1",
     "fieldsV1": {"f:spec": {"f:service": {}, "f:images": {}}}}
]  # fmt: skip


def metadata(name: str, namespace: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "name": name, "uid": f"uid-{name}", "resourceVersion": "17", "generation": 1,
        "creationTimestamp": "2025-03-03T08:00:00Z", "managedFields": MANAGED,
        "labels": {"changegate.io/service": "payments-api"},
    }  # fmt: skip
    return found | ({"namespace": namespace} if namespace else {})


FULL_RECORD = {
    "apiVersion": "changegate.io/v1alpha1", "kind": "DeploymentRecord",
    "metadata": metadata("rec-1"),
    "spec": {
        "service": "payments-api", "environment": "production", "namespace": "payments-prod",
        "production": True, "workload": {"kind": "Deployment", "name": "api"}, "revision": 4,
        "images": [{"container": "api", "image": "registry.example.com/api:1.4.0",
                    "digest": "sha256:" + "a" * 64}],
        "admission": "Change", "changeRequest": {"name": "chg-1", "namespace": "payments-prod"},
        "changeType": "Normal", "requester": "product-dev-1", "approvers": ["change-manager-1"],
        "deployer": "product-dev-1",
        "source": {"repository": "https://git.example.com/payments/api", "commit": "abc123",
                   "commitTime": "2025-03-03T05:00:00Z", "pullRequest": "42",
                   "pipelineRun": "run-9"},
        "startTime": "2025-03-03T07:55:00Z", "finishTime": "2025-03-03T08:00:00.250000Z",
        "result": "Succeeded", "leadTimeSeconds": 10800,
        "previous": {"name": "rec-0", "sha256": "b" * 64},
    },
    "status": {"sync": []},
}  # fmt: skip
BARE_RECORD = {  # a rollback: no change, source, digest, lead time, approvers or production
    "apiVersion": "changegate.io/v1alpha1", "kind": "DeploymentRecord",
    "metadata": metadata("rec-2"),
    "spec": {
        "service": "payments-api", "environment": "staging", "namespace": "payments-stg",
        "workload": {"kind": "Deployment", "name": "api"},
        "images": [{"container": "api", "image": "registry.example.com/api:1.3.0"}],
        "admission": "Rollback", "startTime": "2025-03-03T09:00:00Z",
        "finishTime": "2025-03-03T09:01:00Z", "result": "Failed",
    },
}  # fmt: skip
CHANGE = {
    "apiVersion": "changegate.io/v1alpha1", "kind": "ChangeRequest",
    "metadata": metadata("chg-1", "payments-prod"),
    "spec": {
        "service": "payments-api", "type": "Emergency", "summary": "Roll out api 1.4.0",
        "targets": [{"kind": "Deployment", "name": "api"}], "requester": "product-dev-1",
        "approvals": [{"approver": "change-manager-1", "decision": "Approved",
                       "time": "2025-03-03T07:00:00Z"}],
        "emergencyReason": "payments failing",
    },
}  # fmt: skip
INCIDENT = {
    "apiVersion": "changegate.io/v1alpha1", "kind": "Incident",
    "metadata": metadata("inc-1", "payments-prod"),
    "spec": {"service": "payments-api", "severity": "SEV2", "causedBy": "rec-1"},
    "status": {"triggeredTime": "2025-03-03T08:30:00Z"},
}  # fmt: skip


def page(items: list[dict[str, Any]], token: str | None, remaining: int | None) -> bytes:
    meta: dict[str, Any] = {"resourceVersion": "17"}
    if token:
        meta |= {"continue": token, "remainingItemCount": remaining}
    return json.dumps({"apiVersion": "v1", "kind": "List", "metadata": meta, "items": items})


def chosen(item: dict[str, Any], field_selector: str | None) -> bool:
    """Whether an object matches a field selector of equalities, as the API server says."""
    for term in filter(None, (field_selector or "").split(",")):
        path, value = term.split("=")
        found: Any = item
        for key in path.split("."):
            found = found.get(key, {})
        if found != value:
            return False
    return True


class Served:
    """An API server in memory: each kind's pages, chained by continue tokens."""

    def __init__(self, kinds: dict[str, list[list[dict[str, Any]]]]) -> None:
        self.kinds = kinds
        self.asked: list[tuple[str, str | None]] = []
        self.selectors: list[tuple[str, str | None]] = []

    def fetch(self, plural: str, ns: Any, sel: str | None, token: str | None) -> bytes:
        self.asked.append((plural, token))
        self.selectors.append((plural, sel))
        pages = [[i for i in p if chosen(i, sel)] for p in self.kinds.get(plural, [[]])]
        index = int(token or 0)
        more = index + 1 < len(pages)
        left = sum(len(p) for p in pages[index + 1 :])
        return page(pages[index], str(index + 1) if more else None, left)


def served(kinds: dict[str, list[list[dict[str, Any]]]]) -> Served:
    return Served(copy.deepcopy(kinds))


def test_pages_decode_to_the_structs_the_one_object_path_gives() -> None:
    server = served({"deploymentrecords": [[FULL_RECORD], [BARE_RECORD]]})
    progress: list[tuple[int, int | None]] = []
    meter = mock.Mock(spec=Meter)
    meter.update.side_effect = lambda _, read, remaining: progress.append((read, remaining))
    with mock.patch.object(ObjectPages, "_fetch", server.fetch):
        found = Reader(mock.MagicMock(), meter).read("deploymentrecords", Record, [None])
    assert found == [Record.model_validate(FULL_RECORD), Record.model_validate(BARE_RECORD)]
    assert server.asked == [("deploymentrecords", None), ("deploymentrecords", "1")]
    assert progress == [(1, 1), (2, None)]


def test_the_decoded_record_holds_every_field_the_reports_read() -> None:
    with mock.patch.object(ObjectPages, "_fetch", served({"x": [[FULL_RECORD]]}).fetch):
        (full,) = next(ObjectPages(mock.MagicMock()).pages("x", Record)).items
    spec = full.spec
    assert (full.name, full.metadata.creation_timestamp) == (
        "rec-1",
        datetime(2025, 3, 3, 8, tzinfo=UTC),
    )
    assert (spec.service, spec.environment, spec.namespace, spec.production) == (
        "payments-api", "production", "payments-prod", True,
    )  # fmt: skip
    assert [i.text() for i in spec.images] == [
        "api=registry.example.com/api:1.4.0@sha256:" + "a" * 64
    ]
    assert spec.change_request is not None
    assert spec.change_request.name == "chg-1"
    assert spec.approvers == ("change-manager-1",)
    assert spec.source is not None
    assert spec.source.pull_request == "42"
    assert spec.source.commit_time == datetime(2025, 3, 3, 5, tzinfo=UTC)
    assert spec.finish_time == datetime(2025, 3, 3, 8, 0, 0, 250000, tzinfo=UTC)
    assert spec.lead_time_seconds == 10800


def test_missing_optional_fields_take_their_defaults() -> None:
    with mock.patch.object(ObjectPages, "_fetch", served({"x": [[BARE_RECORD]]}).fetch):
        (bare,) = next(ObjectPages(mock.MagicMock()).pages("x", Record)).items
    spec = bare.spec
    assert spec.production is False
    assert (spec.change_request, spec.change_type, spec.source, spec.lead_time_seconds) == (
        None, None, None, None,
    )  # fmt: skip
    assert (spec.approvers, spec.requester, spec.deployer) == ((), None, None)
    assert spec.images[0].digest is None
    assert spec.images[0].text() == "api=registry.example.com/api:1.3.0"


def test_changes_and_incidents_read_alike_with_their_status_optional() -> None:
    kinds = {"changerequests": [[CHANGE]], "deploymentrecords": [[FULL_RECORD, BARE_RECORD]],
             "incidents": [[INCIDENT]]}  # fmt: skip
    with mock.patch.object(ObjectPages, "_fetch", served(kinds).fetch):
        evidence = read_evidence(mock.MagicMock(), Scope(), True, Meter(shown=False))
    assert evidence.changes == (Change.model_validate(CHANGE),)
    assert evidence.incidents == (Incident.model_validate(INCIDENT),)
    (chg,) = evidence.changes
    assert chg.status.rollouts == ()
    assert chg.status.phase is None
    assert chg.spec.approvals[0].time == datetime(2025, 3, 3, 7, tzinfo=UTC)
    assert evidence.incidents[0].started == datetime(2025, 3, 3, 8, 30, tzinfo=UTC)


def test_snake_case_keys_and_datetimes_build_the_same_struct() -> None:
    spec = Record.model_validate(FULL_RECORD).spec
    again = type(spec).model_validate(spec.model_dump())
    assert again == spec


@pytest.mark.parametrize("batch", [1, 2, 500])
def test_streamed_json_is_what_json_dumps_wrote(batch: int, monkeypatch: Any) -> None:
    monkeypatch.setattr(report_text, "BATCH", batch)
    odd = record("café-rollout", 3, change="chg-ü", lead_hours=0.00000001)
    records = (
        record("a", 1, change="c1", lead_hours=3), odd, record("b", 5, result="Failed"),
        record("c", 6, lead_hours=2), record("d", 7, lead_hours=1),
    )  # fmt: skip
    changes = (change("c1", 0, approvals=[{"approver": "cm", "decision": "Approved",
                                           "time": at(0.5).isoformat()}]),
               change("emg", 2, type_="Emergency"))  # fmt: skip
    evidence = Evidence(records, changes)
    for report in (compliance_report(evidence, WEEK), dora_report(evidence, WEEK)):
        expected = json.dumps(plain(report), indent=2)
        assert "".join(json_chunks(report)) == expected
        assert render(report, ReportFormat.JSON) == expected


def test_kinds_read_at_once_share_the_meter_line() -> None:
    out = io.StringIO()
    meter = Meter(out, shown=True)
    meter.update("changerequests", 2000, 2000)
    meter.update("deploymentrecords", 1000, 3000)
    last = out.getvalue().split("\r")[-1]
    assert "changerequests 2000/4000, deploymentrecords 1000/4000" in last
    assert "[" + "#" * 11 + " " in last  # 3,000 of 8,000


def test_repeated_strings_are_shared_and_the_structs_unchanged() -> None:
    first, second = (msgspec.json.decode(json.dumps(FULL_RECORD), type=Record) for _ in "ab")
    before = Record.model_validate(FULL_RECORD)
    chg = msgspec.json.decode(json.dumps(CHANGE), type=Change)
    assert first.spec.service is not second.spec.service  # as decoded: a copy each
    for item in (first, second, chg):
        share_strings(item)
    assert first == second == before
    assert first.spec.service is second.spec.service is chg.spec.service
    assert first.spec.approvers[0] is chg.spec.approvals[0].approver
    assert first.spec.workload.name is second.spec.workload.name
    assert first.spec.images[0].container is second.spec.images[0].container


def test_dora_reads_emergency_changes_and_those_unplanned_records_name() -> None:
    normal = copy.deepcopy(CHANGE)
    normal["metadata"]["name"] = "chg-normal"
    normal["spec"] |= {"type": "Normal", "incidentRef": {"name": "inc-1"}}
    rollback = copy.deepcopy(BARE_RECORD)
    rollback["spec"] |= {"environment": "production", "production": True,
                         "namespace": "payments-prod",
                         "changeRequest": {"name": "chg-normal", "namespace": "payments-prod"}}  # fmt: skip
    other = copy.deepcopy(normal)
    other["metadata"]["name"] = "chg-unused"
    kinds = {"changerequests": [[CHANGE, other], [normal]],
             "deploymentrecords": [[FULL_RECORD, rollback]]}  # fmt: skip
    server = served(kinds)
    with mock.patch.object(ObjectPages, "_fetch", server.fetch):
        slim = read_evidence(mock.MagicMock(), Scope(), True, Meter(shown=False), False)
    with mock.patch.object(ObjectPages, "_fetch", served(kinds).fetch):
        full = read_evidence(mock.MagicMock(), Scope(), True, Meter(shown=False))
    assert [c.metadata.name for c in slim.changes] == ["chg-1", "chg-normal"]
    assert ("changerequests", "spec.type=Emergency") in server.selectors
    assert ("changerequests", "metadata.name=chg-normal") in server.selectors
    period = Period(datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 8, tzinfo=UTC))
    report = dora_report(slim, period)
    assert report == dora_report(full, period)
    assert report.overall.rework == 1  # the rollback: its change names an incident (none open)

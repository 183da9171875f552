"""The ServiceNow contract server: Table API, Change Management API, auth, people acting."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.contracts.servicenow import ServiceNowServer

INCIDENTS = "/api/now/table/incident"
CHANGES = "/api/now/table/change_request"


def client(server: ServiceNowServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, auth=(server.username, server.password))


def new_incident(server: ServiceNowServer, **fields: Any) -> dict[str, Any]:
    body = {
        "short_description": "checkout down",
        "impact": 1,
        "urgency": 2,
        "correlation_id": "uid-1",
        **fields,
    }
    with client(server) as http:
        answer = http.post(INCIDENTS, json=body)
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()["result"]
    return result


def test_creating_an_incident_answers_201_with_sys_id_number_and_derived_priority(
    servicenow: ServiceNowServer,
) -> None:
    created = new_incident(servicenow, assignment_group="payments")

    assert created["number"] == "INC0010001"
    assert (created["state"], created["impact"], created["priority"]) == ("1", "1", "2")
    assert created["assignment_group"]["value"] == "payments"  # a reference, with its link
    assert servicenow.record("incident", created["sys_id"])["correlation_id"] == "uid-1"


def test_a_correlation_query_finds_the_ticket_a_retry_must_not_duplicate(
    servicenow: ServiceNowServer,
) -> None:
    created = new_incident(servicenow)
    new_incident(servicenow, correlation_id="uid-2")

    with client(servicenow) as http:
        found = http.get(
            INCIDENTS,
            params={
                "sysparm_query": "correlation_id=uid-1",
                "sysparm_exclude_reference_link": "true",
            },
        )
        none = http.get(INCIDENTS, params={"sysparm_query": "correlation_id=uid-9"})

    assert [row["sys_id"] for row in found.json()["result"]] == [created["sys_id"]]
    assert none.json() == {"result": []}


def test_patch_and_put_update_by_sys_id_and_work_notes_become_journal_entries(
    servicenow: ServiceNowServer,
) -> None:
    sys_id = new_incident(servicenow)["sys_id"]

    with client(servicenow) as http:
        patched = http.patch(
            f"{INCIDENTS}/{sys_id}", json={"state": "2", "work_notes": "acknowledged by alice"}
        )
        put = http.put(f"{INCIDENTS}/{sys_id}", json={"work_notes": "rolled back"})
        notes = http.get(
            "/api/now/table/sys_journal_field",
            params={
                "sysparm_query": f"element_id={sys_id}^element=work_notes^ORDERBYsys_created_on"
            },
        )

    assert patched.status_code == put.status_code == 200
    assert patched.json()["result"]["state"] == "2"
    assert (
        patched.json()["result"]["work_notes"] == ""
    )  # journal fields read back empty, as on an instance
    assert servicenow.journal(sys_id) == ["acknowledged by alice", "rolled back"]
    assert [row["value"] for row in notes.json()["result"]] == [
        "acknowledged by alice",
        "rolled back",
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"short_description": "x", "severity": "1"}, "Invalid field(s): severity"),
        ({"state": "5"}, "Invalid state value '5' for incident"),
        ({"impact": 4}, "Invalid impact value '4'"),
        ({"urgency": "0"}, "Invalid urgency value '0'"),
        ({"priority": "1"}, "Read-only field(s): priority"),
        ({"sys_id": "abc"}, "Read-only field(s): sys_id"),
        ({"short_description": ["a"]}, "Invalid value"),
    ],
)
def test_unknown_fields_and_invalid_codes_are_refused_in_servicenows_error_shape(
    servicenow: ServiceNowServer, body: dict[str, Any], message: str
) -> None:
    with client(servicenow) as http:
        answer = http.post(INCIDENTS, json=body)

    assert answer.status_code == 400
    assert answer.json()["status"] == "failure"
    assert answer.json()["error"]["message"].startswith(message)
    assert servicenow.records("incident") == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"state": "1"}, "Invalid state value '1' for change_request"),
        ({"type": "urgent"}, "Invalid type value 'urgent'"),
        ({"close_code": "fine"}, "Invalid close_code value 'fine'"),
        ({"start_date": "2026-03-01T10:00:00Z"}, "Invalid date-time for start_date"),
        ({"approval": "approved"}, "Read-only field(s): approval"),
        ({"major_incident_state": "accepted"}, "Invalid field(s): major_incident_state"),
    ],
)
def test_change_request_rules(
    servicenow: ServiceNowServer, body: dict[str, Any], message: str
) -> None:
    with client(servicenow) as http:
        answer = http.post(CHANGES, json=body)

    assert answer.status_code == 400
    assert answer.json()["error"]["message"].startswith(message)


def test_change_states_and_close_codes_from_reference_are_accepted(
    servicenow: ServiceNowServer,
) -> None:
    with client(servicenow) as http:
        created = http.post(
            CHANGES, json={"short_description": "deploy", "start_date": "2026-03-01 10:00:00"}
        ).json()["result"]
        closed = http.patch(
            f"{CHANGES}/{created['sys_id']}",
            json={"state": 3, "close_code": "successful", "close_notes": "done"},
        )

    assert (created["number"], created["state"], created["type"]) == ("CHG0030001", "-5", "normal")
    assert closed.json()["result"]["state"] == "3"


def test_unknown_records_tables_and_query_terms(servicenow: ServiceNowServer) -> None:
    with client(servicenow) as http:
        missing = http.patch(f"{INCIDENTS}/nope", json={"state": 2})
        table = http.get("/api/now/table/cmdb_ci")
        query = http.get(INCIDENTS, params={"sysparm_query": "correlationid=uid-1"})

    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "No Record found"
    assert table.status_code == query.status_code == 400


def test_basic_auth_is_checked(servicenow: ServiceNowServer) -> None:
    wrong = httpx.post(f"{servicenow.url}{INCIDENTS}", json={}, auth=("changegate", "guess"))
    none = httpx.get(f"{servicenow.url}{INCIDENTS}")

    assert wrong.status_code == none.status_code == 401
    assert wrong.json() == {
        "error": {
            "message": "User Not Authenticated",
            "detail": "Required to provide Auth information",
        },
        "status": "failure",
    }


def test_oauth_client_credentials_give_a_bearer_token_until_it_expires(
    servicenow: ServiceNowServer,
) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": servicenow.client_id,
        "client_secret": servicenow.client_secret,
    }
    token = httpx.post(f"{servicenow.url}/oauth_token.do", data=form).json()
    bad = httpx.post(f"{servicenow.url}/oauth_token.do", data={**form, "client_secret": "guess"})
    headers = {"Authorization": f"Bearer {token['access_token']}"}

    assert token["token_type"] == "Bearer"
    assert bad.status_code == 401
    assert httpx.get(f"{servicenow.url}{INCIDENTS}", headers=headers).status_code == 200
    servicenow.expire_tokens()
    assert httpx.get(f"{servicenow.url}{INCIDENTS}", headers=headers).status_code == 401


def test_a_person_acting_in_servicenow_is_seen_by_the_next_poll(
    servicenow: ServiceNowServer,
) -> None:
    sys_id = new_incident(servicenow)["sys_id"]

    servicenow.update_as("bob", "incident", sys_id, state=2, assigned_to="bob", work_notes="on it")

    with client(servicenow) as http:
        row = http.get(
            f"{INCIDENTS}/{sys_id}", params={"sysparm_exclude_reference_link": "true"}
        ).json()["result"]
    assert (row["state"], row["assigned_to"], row["sys_updated_by"]) == ("2", "bob", "bob")
    assert servicenow.journal(sys_id) == ["on it"]
    with pytest.raises(Exception, match="Invalid state"):
        servicenow.update_as("bob", "incident", sys_id, state=4)


def test_change_api_creates_each_model_and_answers_value_pairs(
    servicenow: ServiceNowServer,
) -> None:
    template = servicenow.add_standard_template("Image bump for checkout", cmdb_ci="checkout")

    with client(servicenow) as http:
        normal = http.post("/api/sn_chg_rest/change/normal", json={"short_description": "deploy"})
        emergency = http.post(
            "/api/sn_chg_rest/change/emergency", json={"short_description": "hotfix"}
        )
        standard = http.post(
            f"/api/sn_chg_rest/change/standard/{template}", json={"correlation_id": "cr-1"}
        )
        unknown = http.post("/api/sn_chg_rest/change/standard/nope", json={})
        mismatch = http.post("/api/sn_chg_rest/change/normal", json={"type": "emergency"})

    assert normal.json()["result"]["type"] == {"value": "normal", "display_value": "normal"}
    assert normal.json()["result"]["state"] == {"value": "-5", "display_value": "New"}
    assert emergency.json()["result"]["type"]["value"] == "emergency"
    result = standard.json()["result"]
    assert (result["type"]["value"], result["approval"]["value"], result["cmdb_ci"]["value"]) == (
        "standard",
        "approved",
        "checkout",
    )
    assert result["std_change_producer_version"]["value"] == template
    assert unknown.status_code == 404
    assert mismatch.status_code == 400


def test_change_api_reads_and_patches_by_sys_id(servicenow: ServiceNowServer) -> None:
    with client(servicenow) as http:
        sys_id = http.post("/api/sn_chg_rest/change/normal", json={}).json()["result"]["sys_id"][
            "value"
        ]
        patched = http.patch(f"/api/sn_chg_rest/change/normal/{sys_id}", json={"state": "-1"})
        read = http.get(f"/api/sn_chg_rest/change/{sys_id}")
        wrong_model = http.get(f"/api/sn_chg_rest/change/standard/{sys_id}")
        bad = http.patch(f"/api/sn_chg_rest/change/{sys_id}", json={"state": "7"})

    assert patched.json()["result"]["state"] == {"value": "-1", "display_value": "Implement"}
    assert read.json()["result"]["state"]["value"] == "-1"
    assert wrong_model.status_code == 404
    assert bad.status_code == 400


@pytest.mark.parametrize(
    ("decisions", "approval"),
    [
        ([], "requested"),
        ([("alice", "approved")], "requested"),
        ([("alice", "approved"), ("carol", "approved")], "approved"),
        ([("alice", "approved"), ("carol", "rejected")], "rejected"),
    ],
)
def test_approval_follows_every_approvers_decision(
    servicenow: ServiceNowServer, decisions: list[tuple[str, str]], approval: str
) -> None:
    with client(servicenow) as http:
        sys_id = http.post(CHANGES, json={"short_description": "deploy"}).json()["result"]["sys_id"]
    servicenow.request_approval(sys_id, ["alice", "carol"])

    for approver, decision in decisions:
        (servicenow.approve if decision == "approved" else servicenow.reject)(sys_id, approver)

    assert servicenow.record("change_request", sys_id)["approval"] == approval
    with client(servicenow) as http:
        rows = http.get(
            "/api/now/table/sysapproval_approver",
            params={"sysparm_query": f"sysapproval={sys_id}^state=approved"},
        ).json()["result"]
    assert sorted(row["approver"] for row in rows) == sorted(
        a for a, d in decisions if d == "approved"
    )


def test_faults_use_servicenows_error_shape(servicenow: ServiceNowServer) -> None:
    servicenow.faults.rate_limit(1, retry_after=3, path=INCIDENTS)

    with client(servicenow) as http:
        limited = http.get(INCIDENTS)
        served = http.get(INCIDENTS)

    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "3"
    assert limited.json()["status"] == "failure"
    assert served.status_code == 200
    assert servicenow.requests.count(INCIDENTS, "GET") == 2

"""ServiceNow as a local contract server: Table API, Change Management API, OAuth.

Integration tests point changegate's ServiceNow adapter at `ServiceNowServer.url`.
It serves `incident` and `change_request` (plus the read-only journal and
approval tables a poller reads back), checks fields and state codes against
REFERENCE.md, and answers in ServiceNow's shapes. Tests act "in ServiceNow" as a
person would with `update_as`, `approve` and `reject`.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
import secrets
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.support.contracts.server import ContractServer

SYSTEM_FIELDS = frozenset(
    {
        "sys_id",
        "number",
        "sys_created_on",
        "sys_updated_on",
        "sys_created_by",
        "sys_updated_by",
        "sys_mod_count",
        "sys_class_name",
    }
)
TASK_FIELDS = frozenset(
    {
        "short_description",
        "description",
        "state",
        "assignment_group",
        "assigned_to",
        "cmdb_ci",
        "correlation_id",
        "correlation_display",
        "work_notes",
        "comments",
        "close_code",
        "close_notes",
        "impact",
        "urgency",
        "priority",
    }
)
INCIDENT_FIELDS = TASK_FIELDS | {
    "caller_id",
    "category",
    "subcategory",
    "contact_type",
    "resolved_at",
    "closed_at",
}
# The Major Incident Management plugin's fields; an instance may use others (`extra_fields`).
MAJOR_INCIDENT_FIELDS = frozenset(
    {"major_incident_state", "proposed_by", "proposed_on", "promoted_by", "promoted_on"}
)
CHANGE_FIELDS = TASK_FIELDS | {
    "type",
    "start_date",
    "end_date",
    "approval",
    "std_change_producer_version",
    "requested_by",
    "risk",
    "justification",
    "implementation_plan",
    "backout_plan",
    "test_plan",
    "chg_model",
}
INCIDENT_STATES = {
    "1": "New",
    "2": "In Progress",
    "3": "On Hold",
    "6": "Resolved",
    "7": "Closed",
    "8": "Canceled",
}
CHANGE_STATES = {
    "-5": "New",
    "-4": "Assess",
    "-3": "Authorize",
    "-2": "Scheduled",
    "-1": "Implement",
    "0": "Review",
    "3": "Closed",
    "4": "Canceled",
}
CHANGE_TYPES = ("normal", "standard", "emergency")
CHANGE_CLOSE_CODES = (
    "successful",
    "successful_issues",
    "unsuccessful",
    "Successful",
    "Successful with issues",
    "Unsuccessful",
)
APPROVALS = ("not requested", "requested", "approved", "rejected")
IMPACT_URGENCY = ("1", "2", "3")
REFERENCE_FIELDS = frozenset(
    {
        "assignment_group",
        "assigned_to",
        "cmdb_ci",
        "caller_id",
        "requested_by",
        "std_change_producer_version",
    }
)
JOURNAL_FIELDS = ("work_notes", "comments")
READ_ONLY = {
    "incident": frozenset({"priority", "closed_at"}),
    "change_request": frozenset({"approval"}),
}
GLIDE_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
NUMBER_PREFIX = {"incident": ("INC", 10001), "change_request": ("CHG", 30001)}
TOKEN_SECONDS = 1799

Clock = Callable[[], datetime.datetime]


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _glide(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def priority(impact: str, urgency: str) -> str:
    """ServiceNow's default priority lookup: 1 Critical .. 5 Planning, from impact and urgency."""
    return str(int(impact) + int(urgency) - 1)


class ServiceNowError(Exception):
    """A refusal in ServiceNow's shape: {"error": {"message", "detail"}, "status": "failure"}."""

    def __init__(self, status: int, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail

    def response(self) -> web.Response:
        body = {"error": {"message": self.message, "detail": self.detail}, "status": "failure"}
        return web.json_response(body, status=self.status)


class ServiceNowServer(ContractServer):
    """The documented subset of a ServiceNow instance, strict about fields and codes."""

    name = "servicenow"

    def __init__(
        self,
        *,
        tls: bool = False,
        workdir: Path | None = None,
        username: str = "changegate",
        password: str = "changegate-password",
        client_id: str = "changegate-client",
        client_secret: str = "changegate-client-secret",
        extra_fields: Mapping[str, Iterable[str]] | None = None,
        clock: Clock = _utcnow,
    ) -> None:
        super().__init__(tls=tls, workdir=workdir)
        self.username, self.password = username, password
        self.client_id, self.client_secret = client_id, client_secret
        self.clock = clock
        extra = extra_fields or {}
        self.fields = {
            "incident": INCIDENT_FIELDS
            | MAJOR_INCIDENT_FIELDS
            | frozenset(extra.get("incident", ())),
            "change_request": CHANGE_FIELDS | frozenset(extra.get("change_request", ())),
        }
        self._lock = threading.RLock()
        self._tables: dict[str, dict[str, dict[str, str]]] = {
            "incident": {},
            "change_request": {},
            "sys_journal_field": {},
            "sysapproval_approver": {},
        }
        self._counters = {table: start for table, (_, start) in NUMBER_PREFIX.items()}
        self._tokens: set[str] = set()
        self.templates: dict[str, dict[str, str]] = {}

    def error_body(self, status: int, message: str) -> Mapping[str, Any]:
        return {"error": {"message": message, "detail": ""}, "status": "failure"}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/oauth_token.do", self._token)
        table = "/api/now/table/{table}"
        app.router.add_get(table, self._list)
        app.router.add_post(table, self._create)
        app.router.add_get(table + "/{sys_id}", self._read)
        app.router.add_patch(table + "/{sys_id}", self._update)
        app.router.add_put(table + "/{sys_id}", self._update)
        change = "/api/sn_chg_rest/change"
        app.router.add_post(change + "/{model:normal|emergency}", self._create_change)
        app.router.add_post(change + "/standard/{template}", self._create_standard_change)
        app.router.add_get(change + "/{sys_id}", self._read_change)
        app.router.add_patch(change + "/{sys_id}", self._update_change)
        app.router.add_get(
            change + "/{model:normal|emergency|standard}/{sys_id}", self._read_change
        )
        app.router.add_patch(
            change + "/{model:normal|emergency|standard}/{sys_id}", self._update_change
        )

    # ---- What a test reads ----

    def records(self, table: str, **match: str) -> list[dict[str, str]]:
        """Copies of the records of `table` whose fields equal `match`."""
        with self._lock:
            rows = [dict(row) for row in self._tables[table].values()]
        return [row for row in rows if all(row.get(k) == str(v) for k, v in match.items())]

    def record(self, table: str, sys_id: str) -> dict[str, str]:
        with self._lock:
            return dict(self._tables[table][sys_id])

    def journal(self, sys_id: str, element: str = "work_notes") -> list[str]:
        """The journal entries of a record's field, oldest first."""
        rows = self.records("sys_journal_field", element_id=sys_id, element=element)
        return [row["value"] for row in sorted(rows, key=lambda row: int(row["sys_mod_count"]))]

    def add_standard_template(self, name: str, **fields: str) -> str:
        """Publish a standard change template; returns the sys_id to POST to /change/standard/{it}."""
        sys_id = uuid.uuid4().hex
        with self._lock:
            self.templates[sys_id] = {"short_description": name, **fields}
        return sys_id

    def expire_tokens(self) -> None:
        """Every OAuth token issued so far now answers 401, as after its expiry."""
        with self._lock:
            self._tokens.clear()

    # ---- What a person does in ServiceNow ----

    def update_as(self, person: str, table: str, sys_id: str, **fields: Any) -> dict[str, str]:
        """Change a record as `person` would in the form (state, assigned_to, work_notes, ...)."""
        with self._lock:
            return self._write(
                table, sys_id, self._checked(table, fields, person_edit=True), person
            )

    def request_approval(self, sys_id: str, approvers: Iterable[str]) -> None:
        with self._lock:
            for approver in approvers:
                self._insert_row(
                    "sysapproval_approver",
                    {
                        "sysapproval": sys_id,
                        "approver": approver,
                        "state": "requested",
                        "comments": "",
                    },
                    "system",
                )
            self._derive_approval(sys_id)

    def approve(self, sys_id: str, approver: str, comments: str = "") -> dict[str, str]:
        return self._decide(sys_id, approver, "approved", comments)

    def reject(self, sys_id: str, approver: str, comments: str = "") -> dict[str, str]:
        return self._decide(sys_id, approver, "rejected", comments)

    def _decide(self, sys_id: str, approver: str, state: str, comments: str) -> dict[str, str]:
        with self._lock:
            rows = [
                row
                for row in self._tables["sysapproval_approver"].values()
                if row["sysapproval"] == sys_id and row["approver"] == approver
            ]
            if not rows:
                raise LookupError(f"{approver} was not asked to approve {sys_id}")
            rows[0].update(
                {
                    "state": state,
                    "comments": comments,
                    "sys_updated_on": _glide(self.clock()),
                    "sys_updated_by": approver,
                }
            )
            return self._derive_approval(sys_id)

    def _derive_approval(self, sys_id: str) -> dict[str, str]:
        # REFERENCE.md: Approved only when all approved, Rejected if any rejected, otherwise Requested.
        states = [
            row["state"]
            for row in self._tables["sysapproval_approver"].values()
            if row["sysapproval"] == sys_id
        ]
        if "rejected" in states:
            approval = "rejected"
        elif states and all(state == "approved" for state in states):
            approval = "approved"
        else:
            approval = "requested"
        return self._write("change_request", sys_id, {"approval": approval}, "system")

    # ---- Handlers: authentication ----

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        grant = form.get("grant_type")
        client_ok = (
            form.get("client_id") == self.client_id
            and form.get("client_secret") == self.client_secret
        )
        user_ok = grant != "password" or (
            form.get("username") == self.username and form.get("password") == self.password
        )
        if grant not in ("client_credentials", "password") or not (client_ok and user_ok):
            return web.json_response(
                {"error_description": "access_denied", "error": "server_error"}, status=401
            )
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens.add(token)
        return web.json_response(
            {
                "access_token": token,
                "scope": "useraccount",
                "token_type": "Bearer",
                "expires_in": TOKEN_SECONDS,
            }
        )

    def _authenticate(self, request: web.Request) -> str:
        """The user a request acts as; refuses it like ServiceNow when its credentials are wrong."""
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(credentials).decode().partition(":")
            except ValueError:
                user, password = "", ""
            if user == self.username and password == self.password:
                return user
        if scheme.lower() == "bearer":
            with self._lock:
                if credentials in self._tokens:
                    return self.username
        raise ServiceNowError(401, "User Not Authenticated", "Required to provide Auth information")

    async def _body(self, request: web.Request) -> object:
        if request.content_type != "application/json":
            raise ServiceNowError(415, "Unsupported Media Type", "Send application/json")
        try:
            return json.loads(await request.read())
        except ValueError as error:
            raise ServiceNowError(
                400, "Exception while reading request", "The payload is not valid JSON."
            ) from error

    # ---- Handlers: Table API ----

    async def _list(self, request: web.Request) -> web.Response:
        return await self._answer(request, self._list_records)

    async def _create(self, request: web.Request) -> web.Response:
        return await self._answer(request, self._create_record)

    async def _read(self, request: web.Request) -> web.Response:
        return await self._answer(request, self._read_record)

    async def _update(self, request: web.Request) -> web.Response:
        return await self._answer(request, self._update_record)

    async def _answer(
        self, request: web.Request, serve: Callable[[web.Request, str], Any]
    ) -> web.Response:
        try:
            user = self._authenticate(request)
            return await serve(request, user)  # type: ignore[no-any-return]
        except ServiceNowError as error:
            return error.response()

    async def _list_records(self, request: web.Request, user: str) -> web.Response:
        table = self._readable(request.match_info["table"])
        rows = self.records(table)
        rows = _filter(rows, request.query.get("sysparm_query", ""), self._queryable(table))
        offset = int(request.query.get("sysparm_offset", "0"))
        limit = int(request.query.get("sysparm_limit", "10000"))
        shown = [self._shown(request, table, row) for row in rows[offset : offset + limit]]
        return web.json_response({"result": shown}, headers={"X-Total-Count": str(len(rows))})

    async def _create_record(self, request: web.Request, user: str) -> web.Response:
        table = request.match_info["table"]
        fields = self._checked(table, await self._body(request))
        row = self._insert(table, fields, user)
        location = f"{self.url}/api/now/table/{table}/{row['sys_id']}"
        return web.json_response(
            {"result": self._shown(request, table, row)}, status=201, headers={"Location": location}
        )

    async def _read_record(self, request: web.Request, user: str) -> web.Response:
        table = self._readable(request.match_info["table"])
        row = self._existing(table, request.match_info["sys_id"])
        return web.json_response({"result": self._shown(request, table, row)})

    async def _update_record(self, request: web.Request, user: str) -> web.Response:
        table = request.match_info["table"]
        fields = self._checked(table, await self._body(request))
        with self._lock:
            row = self._write(table, request.match_info["sys_id"], fields, user)
        return web.json_response({"result": self._shown(request, table, row)})

    def _readable(self, table: str) -> str:
        if table not in self._tables:
            raise ServiceNowError(400, f"Invalid table {table}", "")
        return table

    def _queryable(self, table: str) -> frozenset[str]:
        if table in self.fields:
            return self.fields[table] | SYSTEM_FIELDS
        return (
            frozenset(key for row in self._tables[table].values() for key in row)
            | SYSTEM_FIELDS
            | {"element_id", "element", "sysapproval", "approver", "state"}
        )

    def _existing(self, table: str, sys_id: str) -> dict[str, str]:
        with self._lock:
            row = self._tables[table].get(sys_id)
            if row is None:
                raise ServiceNowError(
                    404,
                    "No Record found",
                    "Record doesn't exist or ACL restricts the record retrieval",
                )
            return dict(row)

    def _shown(self, request: web.Request, table: str, row: Mapping[str, str]) -> dict[str, Any]:
        """A record as the Table API returns it: journal fields empty, references as links."""
        wanted = [name for name in request.query.get("sysparm_fields", "").split(",") if name]
        links = request.query.get("sysparm_exclude_reference_link", "false") != "true"
        shown: dict[str, Any] = {}
        for name in wanted or [*self.fields.get(table, ()), *row]:
            value = "" if name in JOURNAL_FIELDS else row.get(name, "")
            if links and name in REFERENCE_FIELDS and value:
                shown[name] = {"link": f"{self.url}/api/now/table/{name}/{value}", "value": value}
            else:
                shown[name] = value
        return shown

    # ---- Handlers: Change Management API ----

    async def _create_change(self, request: web.Request) -> web.Response:
        model = request.match_info["model"]
        return await self._answer(request, lambda req, user: self._new_change(req, user, model, {}))

    async def _create_standard_change(self, request: web.Request) -> web.Response:
        template = self.templates.get(request.match_info["template"])
        if template is None:
            return ServiceNowError(
                404, "No Record found", "Standard change template not found or not published"
            ).response()
        preset = {
            **template,
            "std_change_producer_version": request.match_info["template"],
            "approval": "approved",
        }
        return await self._answer(
            request, lambda req, user: self._new_change(req, user, "standard", preset)
        )

    async def _new_change(
        self, request: web.Request, user: str, model: str, preset: Mapping[str, str]
    ) -> web.Response:
        body = await self._body(request) if request.body_exists else {}
        fields = self._checked("change_request", body)
        if fields.get("type", model) != model:
            raise ServiceNowError(
                400, f"type '{fields['type']}' does not match the {model} change endpoint", ""
            )
        row = self._insert("change_request", {**preset, **fields, "type": model}, user)
        return web.json_response({"result": _value_pairs(row)})

    async def _read_change(self, request: web.Request) -> web.Response:
        async def serve(req: web.Request, user: str) -> web.Response:
            row = self._change(req)
            return web.json_response({"result": _value_pairs(row)})

        return await self._answer(request, serve)

    async def _update_change(self, request: web.Request) -> web.Response:
        async def serve(req: web.Request, user: str) -> web.Response:
            row = self._change(req)
            fields = self._checked("change_request", await self._body(req))
            with self._lock:
                updated = self._write("change_request", row["sys_id"], fields, user)
            return web.json_response({"result": _value_pairs(updated)})

        return await self._answer(request, serve)

    def _change(self, request: web.Request) -> dict[str, str]:
        row = self._existing("change_request", request.match_info["sys_id"])
        model = request.match_info.get("model")
        if model is not None and row.get("type") != model:
            raise ServiceNowError(404, "No Record found", f"Not a {model} change")
        return row

    # ---- Storage ----

    def _insert(self, table: str, fields: Mapping[str, str], user: str) -> dict[str, str]:
        defaults = {
            "incident": {"state": "1", "impact": "3", "urgency": "3"},
            "change_request": {"state": "-5", "type": "normal", "approval": "not requested"},
        }[table]
        prefix, _ = NUMBER_PREFIX[table]
        with self._lock:
            number = f"{prefix}{self._counters[table]:07d}"
            self._counters[table] += 1
            row = self._insert_row(table, {**defaults, "number": number}, user)
            return self._write(table, row["sys_id"], fields, user, count=False)

    def _insert_row(self, table: str, fields: Mapping[str, str], user: str) -> dict[str, str]:
        now = _glide(self.clock())
        row = {
            "sys_id": uuid.uuid4().hex,
            "sys_created_on": now,
            "sys_updated_on": now,
            "sys_created_by": user,
            "sys_updated_by": user,
            "sys_mod_count": "0",
            "sys_class_name": table,
            **fields,
        }
        self._tables[table][row["sys_id"]] = row
        return row

    def _write(
        self, table: str, sys_id: str, fields: Mapping[str, str], user: str, *, count: bool = True
    ) -> dict[str, str]:
        row = self._tables[table].get(sys_id)
        if row is None:
            raise ServiceNowError(
                404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval"
            )
        for name, value in fields.items():
            if name in JOURNAL_FIELDS:
                if value:
                    entries = sum(
                        1
                        for r in self._tables["sys_journal_field"].values()
                        if r["element_id"] == sys_id
                    )
                    self._insert_row(
                        "sys_journal_field",
                        {
                            "element_id": sys_id,
                            "element": name,
                            "name": table,
                            "value": value,
                            "sys_mod_count": str(entries),
                        },
                        user,
                    )
                continue
            row[name] = value
        if table == "incident":
            row["priority"] = priority(row["impact"], row["urgency"])
        row["sys_updated_on"] = _glide(self.clock())
        row["sys_updated_by"] = user
        if count:
            row["sys_mod_count"] = str(int(row["sys_mod_count"]) + 1)
        return dict(row)

    # ---- Field rules ----

    def _checked(self, table: str, body: object, *, person_edit: bool = False) -> dict[str, str]:
        if table not in self.fields:
            raise ServiceNowError(
                400, f"Invalid table {table}", "Only incident and change_request are writable here"
            )
        if not isinstance(body, dict):
            raise ServiceNowError(
                400, "Exception while reading request", "The payload is not a JSON object"
            )
        values = {name: _text(value) for name, value in body.items()}
        for rule in (_known_fields, _read_only, _codes, _dates):
            rule(self, table, values, person_edit)
        return values


def _text(value: object) -> str:
    # ServiceNow stores and returns every value as a string.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise ServiceNowError(
        400, "Invalid value", f"Expected a string or number, got {type(value).__name__}"
    )


def _known_fields(
    server: ServiceNowServer, table: str, values: Mapping[str, str], person_edit: bool
) -> None:
    unknown = sorted(set(values) - server.fields[table] - SYSTEM_FIELDS)
    if unknown:
        raise ServiceNowError(
            400,
            f"Invalid field(s): {', '.join(unknown)}",
            f"The {table} table has no such field(s)",
        )


def _read_only(
    server: ServiceNowServer, table: str, values: Mapping[str, str], person_edit: bool
) -> None:
    locked = sorted(
        set(values) & (SYSTEM_FIELDS | (frozenset() if person_edit else READ_ONLY[table]))
    )
    if locked:
        raise ServiceNowError(
            400,
            f"Read-only field(s): {', '.join(locked)}",
            "Derived or system fields cannot be written",
        )


def _codes(
    server: ServiceNowServer, table: str, values: Mapping[str, str], person_edit: bool
) -> None:
    allowed: dict[str, Iterable[str]] = {"impact": IMPACT_URGENCY, "urgency": IMPACT_URGENCY}
    if table == "incident":
        allowed["state"] = INCIDENT_STATES
    else:
        allowed.update(
            state=CHANGE_STATES,
            type=CHANGE_TYPES,
            approval=APPROVALS,
            close_code=CHANGE_CLOSE_CODES,
        )
    for name, choices in allowed.items():
        if name in values and values[name] not in choices:
            raise ServiceNowError(
                400,
                f"Invalid {name} value '{values[name]}' for {table}",
                f"Allowed: {', '.join(choices)}",
            )


def _dates(
    server: ServiceNowServer, table: str, values: Mapping[str, str], person_edit: bool
) -> None:
    for name in ("start_date", "end_date"):
        if values.get(name) and not GLIDE_DATE_TIME.match(values[name]):
            raise ServiceNowError(
                400,
                f"Invalid date-time for {name}: '{values[name]}'",
                "Expected yyyy-MM-dd HH:mm:ss (UTC)",
            )


def _by(name: str) -> Callable[[Mapping[str, str]], str]:
    return lambda row: row.get(name, "")


def _filter(rows: list[dict[str, str]], query: str, known: frozenset[str]) -> list[dict[str, str]]:
    """Apply an encoded query of `field=value`, `field!=value`, ORDERBY and ORDERBYDESC terms."""
    for term in (term for term in query.split("^") if term):
        if term.startswith("ORDERBYDESC") or term.startswith("ORDERBY"):
            descending = term.startswith("ORDERBYDESC")
            field = term.removeprefix("ORDERBYDESC" if descending else "ORDERBY")
            rows = sorted(rows, key=_by(field), reverse=descending)
            continue
        match = re.fullmatch(r"([a-z_][a-z0-9_.]*)(!=|=)(.*)", term)
        if match is None or match.group(1) not in known:
            # A real instance may ignore a bad term and return every row; refusing is safer here.
            raise ServiceNowError(
                400, f"Invalid query term: {term}", "Use field=value, field!=value, ORDERBY<field>"
            )
        name, operator, value = match.groups()
        rows = [row for row in rows if (row.get(name, "") == value) == (operator == "=")]
    return rows


def _value_pairs(row: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """The Change Management API's record shape: each field as {value, display_value}."""
    labels = {"state": CHANGE_STATES}
    return {
        name: {"value": value, "display_value": labels.get(name, {}).get(value, value)}
        for name, value in row.items()
    }

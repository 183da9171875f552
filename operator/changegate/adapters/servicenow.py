"""ServiceNow over HTTP: the Table API for incidents and journals, the Change Management API.

The controller's ServiceNow system (handlers/controller/servicenow.py) calls
this client with plain field maps that the core planned. Every create first
looks the record up by `correlation_id` (our object's UID), so a repeated call
finds the ticket instead of making a second; every work note carries a marker
that is looked for in the record's journal before it is added. One request per
call: a failure is a `ServiceNowFailure` that says whether it is worth another
try (timeouts, resets, 408, 429 with its Retry-After, 5xx) and never carries a
credential; the sync runner owns the backoff.
"""

from __future__ import annotations

import base64
import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from changegate.adapters.notify.delivery import BODY_EXCERPT, new_client, retry_after, scrub
from changegate.api.v1alpha1.serviceoncall import ServiceNowIntegration
from changegate.core.ports import SecretValue

TABLE = "/api/now/table"
CHANGE = "/api/sn_chg_rest/change"
TOKEN_PATH = "/oauth_token.do"
# A token is renewed this long before ServiceNow says it expires.
TOKEN_MARGIN_SECONDS = 60.0
# Fields read back from an incident; `assigned_to.user_name` is the dot-walked login name.
INCIDENT_READ = (
    "sys_id,number,state,assigned_to,assigned_to.user_name,sys_updated_by,"
    "close_code,close_notes,correlation_id"
)
CHANGE_READ = "sys_id,number,state,approval,type,correlation_id"
APPROVER_READ = "sys_id,approver,approver.user_name,state,comments,sys_updated_by"
JOURNAL_READ = "sys_id,element_id,element,value,sys_created_by,sys_created_on"


class ServiceNowFailure(Exception):
    """A call ServiceNow did not accept; `retryable` says whether to try again later."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status


@dataclass(frozen=True, slots=True)
class Credentials:
    """How to authenticate, from the Secret a ServiceOnCall names (values never printed).

    Keys: `username` and `password` (basic auth); or `clientId` and `clientSecret`
    (OAuth client credentials); or `token` (a bearer token made elsewhere).
    """

    secret: SecretValue

    @property
    def kind(self) -> str:
        if self.secret.get("clientId") and self.secret.get("clientSecret"):
            return "oauth"
        if self.secret.get("username") and self.secret.get("password"):
            return "basic"
        if self.secret.get("token"):
            return "token"
        return "none"

    def hidden(self) -> tuple[str, ...]:
        return self.secret.values()


SECRET_KEYS = ("username", "password", "clientId", "clientSecret", "token")


@dataclass(frozen=True, slots=True)
class Ticket:
    """A ServiceNow record as far as changegate needs it: which, what number, where, what state."""

    table: str
    sys_id: str
    number: str
    state: str
    url: str
    fields: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One work note: who wrote it, when, what."""

    sys_id: str
    author: str
    created: str
    text: str


@dataclass(frozen=True, slots=True)
class ApproverDecision:
    """One approver's row of a change's approval (sysapproval_approver)."""

    approver: str
    state: str
    comments: str


def _value(field: object) -> str:
    """A field as text: reference fields come as {link, value}, the Change API as {value, ...}."""
    if isinstance(field, Mapping):
        return str(field.get("value", ""))
    return "" if field is None else str(field)


def _flat(record: Mapping[str, Any]) -> dict[str, str]:
    return {name: _value(value) for name, value in record.items()}


def record_url(instance: str, table: str, sys_id: str) -> str:
    """The record's form in the instance's UI, for people."""
    return f"{instance.rstrip('/')}/nav_to.do?uri={table}.do?sys_id={sys_id}"


def login_of(fields: Mapping[str, str], name: str) -> str:
    """A user reference as a login name: the dot-walked user_name when the instance gives it."""
    return fields.get(f"{name}.user_name") or fields.get(name, "")


@dataclass
class _Token:
    value: str
    expires: float


class TokenCache:
    """OAuth tokens by instance and client, shared by every call, renewed before expiry."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._tokens: dict[tuple[str, str], _Token] = {}
        self._monotonic = monotonic

    def get(self, key: tuple[str, str]) -> str | None:
        token = self._tokens.get(key)
        if token is None or token.expires <= self._monotonic():
            return None
        return token.value

    def put(self, key: tuple[str, str], value: str, seconds: float) -> None:
        expires = self._monotonic() + max(0.0, seconds - TOKEN_MARGIN_SECONDS)
        self._tokens[key] = _Token(value, expires)

    def drop(self, key: tuple[str, str]) -> None:
        self._tokens.pop(key, None)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ServiceNowClient:
    """Calls to one ServiceNow instance with one set of credentials, over a shared client."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        instance: str,
        credentials: Credentials,
        tokens: TokenCache,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self.http = http
        self.instance = instance.rstrip("/")
        self.credentials = credentials
        self.tokens = tokens
        self.clock = clock

    # ---- Incidents and changes by correlation_id ----

    async def find(self, table: str, correlation_id: str, fields: str) -> Ticket | None:
        """The record of `table` that carries our key, if one exists."""
        params = {
            "sysparm_query": f"correlation_id={correlation_id}^ORDERBYsys_created_on",
            "sysparm_fields": fields,
            "sysparm_limit": "1",
            "sysparm_exclude_reference_link": "true",
        }
        rows = await self._request("GET", f"{TABLE}/{table}", params=params)
        found = rows.get("result") or []
        return self._ticket(table, found[0]) if found else None

    async def create_incident(self, correlation_id: str, fields: Mapping[str, str]) -> Ticket:
        """The incident for our key: found if a previous call made it, else created."""
        found = await self.find("incident", correlation_id, INCIDENT_READ)
        if found is not None:
            return found
        body = {**fields, "correlation_id": correlation_id}
        answer = await self._request(
            "POST",
            f"{TABLE}/incident",
            json=body,
            params={"sysparm_exclude_reference_link": "true"},
        )
        return self._ticket("incident", answer["result"])

    async def create_change(
        self,
        correlation_id: str,
        model: str,
        fields: Mapping[str, str],
        template: str | None = None,
    ) -> Ticket:
        """The change record for our key, found or created through the Change Management API."""
        found = await self.find("change_request", correlation_id, CHANGE_READ)
        if found is not None:
            return found
        path = f"{CHANGE}/standard/{template}" if model == "standard" else f"{CHANGE}/{model}"
        body = {**fields, "correlation_id": correlation_id}
        answer = await self._request("POST", path, json=body)
        return self._ticket("change_request", answer["result"])

    async def update(self, ticket: Ticket, fields: Mapping[str, str]) -> Ticket:
        """Set fields of a record (Table API for incidents, Change Management API for changes)."""
        if ticket.table == "change_request":
            answer = await self._request("PATCH", f"{CHANGE}/{ticket.sys_id}", json=dict(fields))
        else:
            answer = await self._request(
                "PATCH",
                f"{TABLE}/{ticket.table}/{ticket.sys_id}",
                json=dict(fields),
                params={"sysparm_exclude_reference_link": "true"},
            )
        return self._ticket(ticket.table, answer["result"])

    async def read(self, table: str, sys_id: str, fields: str) -> Ticket:
        params = {"sysparm_fields": fields, "sysparm_exclude_reference_link": "true"}
        answer = await self._request("GET", f"{TABLE}/{table}/{sys_id}", params=params)
        return self._ticket(table, answer["result"])

    # ---- Journals and approvals ----

    async def work_notes(self, sys_id: str) -> list[JournalEntry]:
        """The record's work notes, oldest first."""
        params = {
            "sysparm_query": f"element_id={sys_id}^element=work_notes^ORDERBYsys_created_on",
            "sysparm_fields": JOURNAL_READ,
        }
        answer = await self._request("GET", f"{TABLE}/sys_journal_field", params=params)
        return [
            JournalEntry(row["sys_id"], row["sys_created_by"], row["sys_created_on"], row["value"])
            for row in map(_flat, answer.get("result") or [])
        ]

    async def add_work_note(self, ticket: Ticket, marker: str, text: str) -> bool:
        """Add `text` under `marker` unless the journal already holds that marker; True if added."""
        if any(marker in entry.text for entry in await self.work_notes(ticket.sys_id)):
            return False
        await self.update(ticket, {"work_notes": f"{marker} {text}"})
        return True

    async def approvers(self, sys_id: str) -> list[ApproverDecision]:
        """Each approver's decision on a change, as ServiceNow's approval engine recorded it."""
        params = {
            "sysparm_query": f"sysapproval={sys_id}^ORDERBYsys_created_on",
            "sysparm_fields": APPROVER_READ,
            "sysparm_exclude_reference_link": "true",
        }
        answer = await self._request("GET", f"{TABLE}/sysapproval_approver", params=params)
        return [
            ApproverDecision(
                login_of(row, "approver"), row.get("state", ""), row.get("comments", "")
            )
            for row in map(_flat, answer.get("result") or [])
        ]

    # ---- One request ----

    def _ticket(self, table: str, record: Mapping[str, Any]) -> Ticket:
        fields = _flat(record)
        sys_id = fields.get("sys_id", "")
        return Ticket(
            table,
            sys_id,
            fields.get("number", ""),
            fields.get("state", ""),
            record_url(self.instance, table, sys_id),
            fields,
        )

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One call; an expired OAuth token is renewed once. Failures say if a retry may help."""
        response = await self._send(method, path, params, json)
        if response.status_code == httpx.codes.UNAUTHORIZED and self.credentials.kind == "oauth":
            self.tokens.drop(self._token_key())
            response = await self._send(method, path, params, json)
        if response.is_success:
            try:
                answer = response.json()
            except ValueError as error:
                raise self._failure("answered with a body that is not JSON", True) from error
            return answer if isinstance(answer, dict) else {}
        raise self._refused(response)

    async def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        json: Mapping[str, Any] | None,
    ) -> httpx.Response:
        headers = {"Accept": "application/json", **await self._authorization()}
        try:
            return await self.http.request(
                method, self.instance + path, params=params, json=json, headers=headers
            )
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as error:
            raise self._failure("the instance URL is not a valid http(s) URL", False) from error
        except httpx.TimeoutException as error:
            raise self._failure(f"timed out ({type(error).__name__})", True) from error
        except httpx.TransportError as error:
            raise self._failure(f"could not connect ({type(error).__name__})", True) from error

    def _refused(self, response: httpx.Response) -> ServiceNowFailure:
        status = response.status_code
        reason = f"HTTP {status}: {response.text[:BODY_EXCERPT].strip()}".rstrip(": ")
        retryable = status in (408, 429) or status >= 500
        wait = retry_after(response.headers.get("Retry-After"), self.clock())
        return self._failure(reason, retryable, wait if status == 429 else None, status)

    def _failure(
        self,
        reason: str,
        retryable: bool,
        wait: float | None = None,
        status: int | None = None,
    ) -> ServiceNowFailure:
        text = scrub(f"ServiceNow {reason}", self.credentials.hidden())
        return ServiceNowFailure(text, retryable=retryable, retry_after=wait, status=status)

    # ---- Authentication ----

    def _token_key(self) -> tuple[str, str]:
        return (self.instance, self.credentials.secret.get("clientId") or "")

    async def _authorization(self) -> dict[str, str]:
        secret = self.credentials.secret
        kind = self.credentials.kind
        if kind == "basic":
            pair = f"{secret.get('username')}:{secret.get('password')}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
        if kind == "token":
            return {"Authorization": f"Bearer {secret.get('token')}"}
        if kind == "oauth":
            return {"Authorization": f"Bearer {await self._oauth_token()}"}
        raise self._failure(
            "credentials missing: the Secret needs username and password, clientId and"
            " clientSecret, or token",
            False,
        )

    async def _oauth_token(self) -> str:
        """A client-credentials token from the instance's OAuth endpoint, cached until expiry."""
        key = self._token_key()
        cached = self.tokens.get(key)
        if cached is not None:
            return cached
        form = {
            "grant_type": "client_credentials",
            "client_id": self.credentials.secret.get("clientId") or "",
            "client_secret": self.credentials.secret.get("clientSecret") or "",
        }
        try:
            response = await self.http.post(self.instance + TOKEN_PATH, data=form)
        except httpx.TimeoutException as error:
            raise self._failure(
                f"token request timed out ({type(error).__name__})", True
            ) from error
        except httpx.TransportError as error:
            raise self._failure(f"could not connect ({type(error).__name__})", True) from error
        if not response.is_success:
            raise self._refused(response)
        answer = response.json()
        self.tokens.put(key, str(answer["access_token"]), float(answer.get("expires_in", 1800)))
        return str(answer["access_token"])


class Connection:
    """The controller's one HTTP client and OAuth token cache for every ServiceNow instance."""

    def __init__(self, http: httpx.AsyncClient | None = None) -> None:
        self._http = http
        self.tokens = TokenCache()

    def client(self, integration: ServiceNowIntegration, secret: SecretValue) -> ServiceNowClient:
        if self._http is None:
            self._http = new_client()
        return ServiceNowClient(
            self._http, integration.instance_url, Credentials(secret), self.tokens
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()

"""The CLI's way to the API server: the caller's kubeconfig identity, ChangeRequests only.

Loads the kubeconfig the way kubectl does (--kubeconfig, then KUBECONFIG, then
~/.kube/config; --context), reads and writes ChangeRequests through the
official client's CustomObjectsApi, parses every object into the API model
as it arrives, and turns the API server's refusals into CommandErrors.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import Any, cast

import urllib3
from kubernetes import client, config, watch
from pydantic import BaseModel, ValidationError

from changegate.api.v1alpha1 import GROUP, VERSION, Approval, ChangeRequest
from changegate.cli.draft import manifest
from changegate.cli.errors import CommandError

PLURAL = ChangeRequest.plural
JSON_PATCH = "application/json-patch+json"
FIELD_MANAGER = "changegate-cli"
HTTP_GONE = 410
# A Warning header value: `299 - "text"`, possibly several joined by commas.
_WARNING = re.compile(r'\d{3} \S+ "((?:[^"\\]|\\.)*)"')


class ApiStatus(BaseModel):
    """The metav1.Status the API server sends with a refusal."""

    message: str = ""
    reason: str = ""


def refusal_message(error: client.ApiException) -> str:
    """What the API server (or the admission webhook behind it) said, in its words."""
    try:
        status = ApiStatus.model_validate(json.loads(error.body or ""))
    except (ValueError, ValidationError):
        status = ApiStatus()
    return status.message or f"{error.status} {error.reason}".strip()


@contextmanager
def api_errors() -> Iterator[None]:
    """Turn the client's failures into CommandErrors with the server's own message."""
    try:
        yield
    except client.ApiException as error:
        raise CommandError(refusal_message(error)) from None
    except urllib3.exceptions.HTTPError as error:
        raise CommandError(f"cannot reach the API server: {error}") from None


def print_warnings(headers: Any) -> None:
    """Print the API server's warnings (for example the webhook's) as kubectl does."""
    if not headers:
        return
    for value in [v for k, v in headers.items() if k.lower() == "warning"]:
        for text in _WARNING.findall(value) or [value]:
            print(f"Warning: {text}", file=sys.stderr)


def parse_change(body: Any) -> ChangeRequest:
    """A ChangeRequest from the wire; a body that does not fit the API is an error."""
    try:
        return ChangeRequest.model_validate(body)
    except ValidationError as error:
        raise CommandError(
            f"the API server returned an unexpected ChangeRequest: {error}"
        ) from None


def namespace_of(change: ChangeRequest) -> str:
    return change.metadata.namespace or ""


def name_of(change: ChangeRequest) -> str:
    return change.metadata.name or ""


class Connection:
    """The kubeconfig's client and namespace, loaded on first use (a dry run needs neither)."""

    def __init__(self, kubeconfig: str | None, context: str | None) -> None:
        self.kubeconfig = kubeconfig
        self.context = context

    @cached_property
    def api(self) -> client.ApiClient:
        with kubeconfig_errors():
            api = config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=self.kubeconfig, context=self.context
            )
        return cast(client.ApiClient, api)

    @cached_property
    def namespace(self) -> str:
        """The namespace the kubeconfig context names, or `default`."""
        with kubeconfig_errors():
            contexts, current = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
                config_file=self.kubeconfig
            )
        return context_namespace(contexts, current, self.context)


@contextmanager
def kubeconfig_errors() -> Iterator[None]:
    try:
        yield
    except (config.ConfigException, OSError) as error:
        raise CommandError(f"cannot load the kubeconfig: {error}") from None


def context_namespace(contexts: list[Any], current: Any, chosen: str | None) -> str:
    """The namespace the kubeconfig context names, or `default`."""
    entry = next((c for c in contexts if c.get("name") == chosen), None) if chosen else current
    settings = (entry or {}).get("context") or {}
    return str(settings.get("namespace") or "default")


class ChangeRequests:
    """ChangeRequests in the cluster, read and written as the caller."""

    def __init__(self, api: client.ApiClient) -> None:
        self.custom = client.CustomObjectsApi(api)

    def create(self, change: ChangeRequest) -> ChangeRequest:
        body = manifest(change)
        with api_errors():
            created, _, headers = self.custom.create_namespaced_custom_object_with_http_info(
                GROUP, VERSION, namespace_of(change), PLURAL, body, field_manager=FIELD_MANAGER
            )
        print_warnings(headers)
        return parse_change(created)

    def get(self, namespace: str, name: str) -> ChangeRequest:
        with api_errors():
            body = self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        return parse_change(body)

    def find(self, namespace: str | None) -> list[ChangeRequest]:
        """The ChangeRequests of a namespace, or of every namespace when it is None."""
        with api_errors():
            if namespace is None:
                body = self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
            else:
                body = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
        return [parse_change(item) for item in ChangeList.model_validate(body).items]

    def append_approval(self, change: ChangeRequest, approval: Approval) -> ChangeRequest:
        """Append one decision; the webhook stamps who made it and when."""
        value = approval.to_json()
        patch: list[dict[str, Any]]
        if "approvals" in change.spec.model_fields_set:
            patch = [{"op": "add", "path": "/spec/approvals/-", "value": value}]
        else:
            # Created before the webhook initialised the list: add the whole list. A
            # concurrent approval makes this a replacement, which append-only refuses.
            patch = [{"op": "add", "path": "/spec/approvals", "value": [value]}]
        return self.patch(change, patch)

    def cancel(self, change: ChangeRequest) -> ChangeRequest:
        return self.patch(change, [{"op": "add", "path": "/spec/cancel", "value": True}])

    def patch(self, change: ChangeRequest, operations: list[dict[str, Any]]) -> ChangeRequest:
        with api_errors():
            patched, _, headers = self.custom.patch_namespaced_custom_object_with_http_info(
                GROUP,
                VERSION,
                namespace_of(change),
                PLURAL,
                name_of(change),
                operations,
                field_manager=FIELD_MANAGER,
                _content_type=JSON_PATCH,
            )
        print_warnings(headers)
        return parse_change(patched)

    def watch(
        self, change: ChangeRequest, timeout_seconds: int
    ) -> Generator[ChangeRequest | None, None, None]:
        """The change each time it is written, from its resourceVersion, for up to
        `timeout_seconds`; None when it is deleted. Ends when the server closes the watch."""
        watcher = watch.Watch()  # type: ignore[no-untyped-call]
        try:
            for event in watcher.stream(  # type: ignore[no-untyped-call]
                self.custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace_of(change),
                PLURAL,
                field_selector=f"metadata.name={name_of(change)}",
                resource_version=change.metadata.resource_version,
                timeout_seconds=timeout_seconds,
                _request_timeout=timeout_seconds + 10,
            ):
                yield None if event["type"] == "DELETED" else parse_change(event["raw_object"])
        except client.ApiException as error:
            if error.status == HTTP_GONE:
                return  # the resourceVersion is too old: the caller reads the change again
            raise CommandError(refusal_message(error)) from None
        except urllib3.exceptions.HTTPError as error:
            raise CommandError(f"lost the watch on the API server: {error}") from None


class ChangeList(BaseModel):
    """A list response; its items are parsed one by one so that errors name the object."""

    items: list[Any] = []

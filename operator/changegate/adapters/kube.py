"""The one Kubernetes client of both roles and of the CLI, for what Kopf does not do.

Loads the configuration (the pod's service account, or a kubeconfig found the
way kubectl finds it, with an optional context), makes the ApiClient, and
offers the reads and writes the handlers and the CLI need. Every failure of
the official client leaves this module as a KubeError subclass carrying the
API server's own message, so callers never import the client to catch it.
Blocking calls; async callers run them with asyncio.to_thread.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import enum
import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

import msgspec
import urllib3
from kubernetes import client, config, watch
from pydantic import BaseModel, ValidationError

from changegate.api.v1alpha1 import (
    GROUP,
    VERSION,
    ChangeRequest,
    CustomResource,
    Incident,
    ServiceOnCall,
)

__all__ = [
    "COMPONENT",
    "GROUP",
    "VERSION",
    "ApiError",
    "ChangeRequests",
    "ConfigError",
    "Conflict",
    "Forbidden",
    "Gone",
    "Incidents",
    "Invalid",
    "KubeAdapter",
    "KubeError",
    "ListPage",
    "Login",
    "NotFound",
    "ObjectPages",
    "ServiceOnCalls",
    "Source",
    "UnexpectedObject",
    "Unreachable",
    "api_client",
]

log = logging.getLogger(__name__)
COMPONENT = "changegate"
JSON_PATCH = "application/json-patch+json"
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
POOL_SIZE = 32  # connections kept to the API server (see Login.api)
# A Warning header value: `299 - "text"`, possibly several joined by commas.
_WARNING = re.compile(r'\d{3} \S+ "((?:[^"\\]|\\.)*)"')
Typed = TypeVar("Typed", bound=CustomResource)


# -- errors ---------------------------------------------------------------------


class KubeError(Exception):
    """Talking to the API server failed; `message` says why, for people."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ApiError(KubeError):
    """The API server (or an admission webhook behind it) answered with an error."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class Forbidden(ApiError):
    """403: RBAC, an admission webhook, or a namespace being terminated said no."""


class NotFound(ApiError):
    """404: the object (or its namespace) does not exist."""


class Conflict(ApiError):
    """409: the object exists already, or a resourceVersion precondition failed."""


class Gone(ApiError):
    """410: a watch's resourceVersion is too old; read again."""


class Invalid(ApiError):
    """422: the object does not fit the schema or its validation rules."""


class Unreachable(KubeError):
    """No answer: the connection failed or broke off."""


class UnexpectedObject(KubeError):
    """The API server sent a body that does not fit our API model."""


class ConfigError(KubeError):
    """Neither a kubeconfig nor the pod's service account could be loaded."""


_BY_STATUS: dict[int, type[ApiError]] = {
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    422: Invalid,
}


def server_message(body: str | bytes | None) -> str:
    """The `message` of the metav1.Status the API server sends with a refusal, or ''."""
    try:
        status = json.loads(body or "")
    except ValueError:
        return ""
    message = status.get("message") if isinstance(status, dict) else None
    return message if isinstance(message, str) else ""


def kube_error(error: client.ApiException) -> ApiError:
    """The adapter's own exception for a client failure, carrying the server's message."""
    status = int(error.status or 0)
    reason = str(error.reason or "")
    message = server_message(error.body) or f"{status} {reason}".strip()
    return _BY_STATUS.get(status, ApiError)(status, reason, message)


@contextmanager
def translated(lost: str = "cannot reach the API server") -> Iterator[None]:
    """Turn the client's exceptions into the adapter's own."""
    try:
        yield
    except client.ApiException as error:
        raise kube_error(error) from error
    except urllib3.exceptions.HTTPError as error:
        raise Unreachable(f"{lost}: {error}") from error


def warnings_in(headers: Mapping[str, str] | None) -> list[str]:
    """The texts of the API server's Warning headers (for example the webhook's)."""
    texts: list[str] = []
    for key, value in (headers or {}).items():
        if key.lower() == "warning":
            texts.extend(_WARNING.findall(value) or [value])
    return texts


# -- configuration --------------------------------------------------------------


class Source(enum.Enum):
    """Where the credentials come from."""

    SERVICE_ACCOUNT = "the service account's configuration"
    KUBECONFIG = "the kubeconfig"


def choose_source(*, named: bool, kubeconfig_found: bool, in_pod: bool, pod_first: bool) -> Source:
    """A named kubeconfig or context wins; in a pod, the operator takes its service
    account (as Kopf's login does) and the CLI only when no kubeconfig exists (as kubectl)."""
    if named:
        return Source.KUBECONFIG
    if in_pod and (pod_first or not kubeconfig_found):
        return Source.SERVICE_ACCOUNT
    return Source.KUBECONFIG


def context_namespace(contexts: list[Any], current: Any, chosen: str | None) -> str:
    """The namespace the kubeconfig context names, or `default`."""
    entry = next((c for c in contexts if c.get("name") == chosen), None) if chosen else current
    settings = (entry or {}).get("context") or {}
    return str(settings.get("namespace") or "default")


@contextmanager
def config_errors(source: Source) -> Iterator[None]:
    try:
        yield
    except (config.ConfigException, OSError) as error:
        raise ConfigError(f"cannot load {source.value}: {error}") from None


@dataclass
class Login:
    """Who we are to the API server: the pod's service account, or a kubeconfig
    (`kubeconfig`, else KUBECONFIG, else ~/.kube/config) and its `context`.
    The client and the namespace are loaded on first use: a dry run needs neither."""

    kubeconfig: str | None = None
    context: str | None = None
    pod_first: bool = False
    environ: Mapping[str, str] | None = None

    @cached_property
    def source(self) -> Source:
        environ = os.environ if self.environ is None else self.environ
        found = bool(environ.get("KUBECONFIG")) or (Path.home() / ".kube" / "config").exists()
        in_pod = (
            bool(environ.get("KUBERNETES_SERVICE_HOST")) and (SERVICE_ACCOUNT / "token").exists()
        )
        return choose_source(
            named=bool(self.kubeconfig or self.context),
            kubeconfig_found=found,
            in_pod=in_pod,
            pod_first=self.pod_first,
        )

    @cached_property
    def api(self) -> client.ApiClient:
        configuration = client.Configuration()
        with config_errors(self.source):
            if self.source is Source.SERVICE_ACCOUNT:
                config.load_incluster_config(client_configuration=configuration)
            else:
                config.load_kube_config(
                    config_file=self.kubeconfig,
                    context=self.context,
                    client_configuration=configuration,
                )
        # One connection per thread that may call at once (Kopf's handler threads, the
        # intake's, the scheduler's, asyncio.to_thread's): below that, urllib3 discards
        # connections under load and each call after pays a new TLS handshake.
        configuration.connection_pool_maxsize = POOL_SIZE
        return client.ApiClient(configuration)

    @cached_property
    def namespace(self) -> str:
        """The namespace the kubeconfig context names (or the pod's own), else `default`."""
        with config_errors(self.source):
            if self.source is Source.SERVICE_ACCOUNT:
                return (SERVICE_ACCOUNT / "namespace").read_text().strip() or "default"
            contexts, current = config.list_kube_config_contexts(config_file=self.kubeconfig)
        return context_namespace(contexts, current, self.context)


def api_client() -> client.ApiClient:
    """The operator's client: in a pod, the service account; elsewhere, the kubeconfig."""
    return Login(pod_first=True).api


# -- ChangeRequests, typed ------------------------------------------------------


class ObjectList(BaseModel):
    """A list response; its items are parsed one by one so that errors name the object."""

    items: list[Any] = []


def log_warning(text: str) -> None:
    log.warning("API server warning: %s", text)


def parse_object(model: type[Typed], body: Any) -> Typed:
    """An object of our API from the wire; a body that does not fit the model is an error."""
    try:
        return model.model_validate(body)
    except ValidationError as error:
        raise UnexpectedObject(
            f"the API server returned an unexpected {model.__name__}: {error}"
        ) from None


class ObjectReader(Generic[Typed]):
    """Namespaced objects of one kind, read as the client's identity into the API model."""

    model: type[Typed]

    def __init__(
        self,
        api: client.ApiClient,
        field_manager: str = COMPONENT,
        on_warning: Callable[[str], None] = log_warning,
    ) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.field_manager = field_manager
        self.on_warning = on_warning

    def _warn(self, headers: Mapping[str, str] | None) -> None:
        for text in warnings_in(headers):
            self.on_warning(text)

    def get(self, namespace: str, name: str) -> Typed:
        with translated():
            body = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, self.model.plural, name
            )
        return parse_object(self.model, body)

    def find(self, namespace: str | None, field_selector: str | None = None) -> list[Typed]:
        """The objects of a namespace, or of every namespace when it is None."""
        options: dict[str, Any] = {"field_selector": field_selector} if field_selector else {}
        with translated():
            if namespace is None:
                body = self.custom.list_cluster_custom_object(
                    GROUP, VERSION, self.model.plural, **options
                )
            else:
                body = self.custom.list_namespaced_custom_object(
                    GROUP, VERSION, namespace, self.model.plural, **options
                )
        return [parse_object(self.model, item) for item in ObjectList.model_validate(body).items]


class ObjectWriter(ObjectReader[Typed]):
    """Namespaced objects of one kind, also created and JSON-patched by the client's identity."""

    def create(self, body: dict[str, Any]) -> Typed:
        namespace = str(body["metadata"]["namespace"])
        with translated():
            created, _, headers = self.custom.create_namespaced_custom_object_with_http_info(
                GROUP, VERSION, namespace, self.model.plural, body, field_manager=self.field_manager
            )
        self._warn(headers)
        return parse_object(self.model, created)

    def patch(self, current: Typed, operations: list[dict[str, Any]]) -> Typed:
        """Apply a JSON patch (RFC 6902) to the object's spec or metadata."""
        with translated():
            patched, _, headers = self.custom.patch_namespaced_custom_object_with_http_info(
                GROUP,
                VERSION,
                current.metadata.namespace or "",
                self.model.plural,
                current.metadata.name or "",
                operations,
                field_manager=self.field_manager,
                _content_type=JSON_PATCH,
            )
        self._warn(headers)
        return parse_object(self.model, patched)


class ChangeRequests(ObjectWriter[ChangeRequest]):
    """ChangeRequests read and written as the client's identity, parsed into the API model,
    and followed with a watch (`changegate status --wait`)."""

    model = ChangeRequest
    plural = ChangeRequest.plural

    def watch(
        self, change: ChangeRequest, timeout_seconds: int
    ) -> Generator[ChangeRequest | None, None, None]:
        """The change each time it is written, from its resourceVersion, for up to
        `timeout_seconds`; None when it is deleted. Ends when the server closes the
        watch, or when the resourceVersion is too old (the caller reads again)."""
        watcher = watch.Watch()
        try:
            with translated("lost the watch on the API server"):
                for event in watcher.stream(
                    self.custom.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    change.metadata.namespace or "",
                    self.plural,
                    field_selector=f"metadata.name={change.metadata.name or ''}",
                    resource_version=change.metadata.resource_version,
                    timeout_seconds=timeout_seconds,
                    _request_timeout=timeout_seconds + 10,
                ):
                    yield (
                        None
                        if event["type"] == "DELETED"
                        else parse_object(ChangeRequest, event["raw_object"])
                    )
        except Gone:
            return
        finally:
            watcher.stop()


# -- the operator's reads and writes --------------------------------------------


class KubeAdapter:
    """The operator's reads and writes of Events, its own kinds and pods, as dicts."""

    def __init__(self, api: client.ApiClient, instance: str) -> None:
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.instance = instance

    def post_event(
        self,
        involved: dict[str, Any],
        *,
        reason: str,
        message: str,
        type_: str = "Normal",
        action: str = "Admission",
    ) -> bool:
        """Post a core/v1 Event about `involved` (apiVersion, kind, namespace, name, uid).

        Whether it was posted: a caller that records its notices (pages) needs to know.
        """
        now = datetime.datetime.now(datetime.UTC)
        namespace = involved.get("namespace") or "default"
        event = client.CoreV1Event(
            metadata=client.V1ObjectMeta(
                name=f"{involved.get('name', 'object')}.{uuid.uuid4().hex[:12]}",
                namespace=namespace,
            ),
            involved_object=client.V1ObjectReference(
                api_version=involved.get("apiVersion"),
                kind=involved.get("kind"),
                namespace=namespace,
                name=involved.get("name"),
                uid=involved.get("uid") or None,
            ),
            reason=reason,
            message=message[:1024],
            type=type_,
            action=action,
            source=client.V1EventSource(component=COMPONENT),
            reporting_component=f"changegate.io/{COMPONENT}",
            reporting_instance=self.instance,
            first_timestamp=now,
            last_timestamp=now,
            event_time=now.isoformat(timespec="microseconds").replace("+00:00", "Z"),
            count=1,
        )
        try:
            with translated():
                self.core.create_namespaced_event(namespace, event)
        except KubeError as error:  # an Event is a courtesy; the decision stands without it
            log.warning("could not post event %s on %s: %s", reason, involved.get("name"), error)
            return False
        return True

    def list_service_on_calls(self) -> list[dict[str, Any]]:
        return self.list_cluster_objects("serviceoncalls")

    # -- controller writes ------------------------------------------------------

    def read_change_request(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.read_namespaced("changerequests", namespace, name)

    def read_namespaced(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One of our namespaced objects, live; None when it does not exist."""
        try:
            with translated():
                return cast(
                    dict[str, Any],
                    self.custom.get_namespaced_custom_object(
                        GROUP, VERSION, namespace, plural, name
                    ),
                )
        except NotFound:
            return None

    def patch_status(
        self,
        plural: str,
        namespace: str,
        name: str,
        status: dict[str, Any],
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        """Merge-patch the status subresource; with a resourceVersion, only if nothing
        changed since (Conflict otherwise). The object as written."""
        body: dict[str, Any] = {"status": status}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        with translated():
            return cast(
                dict[str, Any],
                self.custom.patch_namespaced_custom_object_status(
                    GROUP, VERSION, namespace, plural, name, body
                ),
            )

    def create_cluster_object(self, plural: str, body: dict[str, Any]) -> bool:
        """Create a cluster-scoped object; False when it already exists (a retry)."""
        try:
            with translated():
                self.custom.create_cluster_custom_object(GROUP, VERSION, plural, body)
        except Conflict:
            return False
        return True

    def create_namespaced_object(self, plural: str, namespace: str, body: dict[str, Any]) -> bool:
        """Create an object; False when it already exists or its namespace is going away."""
        try:
            with translated():
                self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)
        except Conflict:
            return False
        except Forbidden as error:
            if "being terminated" in error.message:
                return False
            raise
        return True

    def list_cluster_objects(
        self, plural: str, field_selector: str | None = None
    ) -> list[dict[str, Any]]:
        options: dict[str, Any] = {"field_selector": field_selector} if field_selector else {}
        with translated():
            result = cast(
                dict[str, Any],
                self.custom.list_cluster_custom_object(GROUP, VERSION, plural, **options),
            )
        return list(result.get("items", []))

    def delete_cluster_object(self, plural: str, name: str) -> None:
        """Delete a cluster-scoped object; one already gone is no error."""
        try:
            with translated():
                self.custom.delete_cluster_custom_object(GROUP, VERSION, plural, name)
        except NotFound:
            pass

    def image_digests(
        self, namespace: str, selector: dict[str, str], template_hash: str | None
    ) -> dict[str, str]:
        """Digests of the running images (pods' imageID), by container, where the runtime reports them."""
        labels = dict(selector)
        if template_hash:
            labels["pod-template-hash"] = template_hash
        label_selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        with translated():
            pods = self.core.list_namespaced_pod(namespace, label_selector=label_selector).items
        digests: dict[str, str] = {}
        for pod in pods:
            statuses = (
                [
                    *(pod.status.init_container_statuses or []),
                    *(pod.status.container_statuses or []),
                ]
                if pod.status
                else []
            )
            for container in statuses:
                image_id = container.image_id or ""
                if "@sha256:" in image_id:
                    digests[container.name] = image_id.split("@", 1)[1]
        return digests

    def replica_sets(self, namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]:
        """The ReplicaSets a Deployment's selector matches, as dicts (metadata is enough)."""
        apps = client.AppsV1Api(self.core.api_client)
        label_selector = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        with translated():
            found = apps.list_namespaced_replica_set(namespace, label_selector=label_selector)
        return [
            {"metadata": self.core.api_client.sanitize_for_serialization(rs.metadata)}
            for rs in found.items
        ]

    def changes_labelled(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        """ChangeRequests of a namespace by label, read live: what an index may not hold yet."""
        with translated():
            result = cast(
                dict[str, Any],
                self.custom.list_namespaced_custom_object(
                    GROUP, VERSION, namespace, "changerequests", label_selector=label_selector
                ),
            )
        return list(result.get("items", []))

    def create_generated(
        self, plural: str, namespace: str, body: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Create an object named by generateName; the created body, None if the namespace is
        going away."""
        try:
            with translated():
                return cast(
                    dict[str, Any],
                    self.custom.create_namespaced_custom_object(
                        GROUP, VERSION, namespace, plural, body
                    ),
                )
        except Forbidden as error:
            if "being terminated" in error.message:
                return None
            raise

    def may(
        self,
        username: str,
        groups: Iterable[str],
        attributes: Mapping[str, str],
    ) -> bool:
        """Whether the API server's authorizer lets that user do this (a SubjectAccessReview).

        `attributes` are a resourceAttributes of the review (verb, group, resource,
        namespace). Raises KubeError when the review cannot be made.
        """
        review = client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user=username,
                groups=sorted(groups),
                resource_attributes=client.V1ResourceAttributes(**attributes),
            )
        )
        with translated():
            answered = client.AuthorizationV1Api(self.core.api_client).create_subject_access_review(
                review
            )
        return bool(answered.status and answered.status.allowed)

    # -- the alert intake: Incidents and its token ----------------------------------

    def list_incidents(self, label_selector: str) -> list[dict[str, Any]]:
        """Incidents of every namespace matching a label selector, read live (not a cache)."""
        with translated():
            result = cast(
                dict[str, Any],
                self.custom.list_cluster_custom_object(
                    GROUP, VERSION, "incidents", label_selector=label_selector
                ),
            )
        return list(result.get("items", []))

    def get_incident(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.read_namespaced("incidents", namespace, name)

    def create_incident(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """Create an Incident; None when one of that name exists already (a retry's dedup)."""
        try:
            with translated():
                return cast(
                    dict[str, Any],
                    self.custom.create_namespaced_custom_object(
                        GROUP, VERSION, namespace, "incidents", body
                    ),
                )
        except Conflict:
            return None

    def patch_incident(
        self, namespace: str, name: str, body: dict[str, Any], resource_version: str
    ) -> dict[str, Any]:
        """Merge-patch an Incident (spec, metadata) if nothing changed since (Conflict otherwise)."""
        body = {
            **body,
            "metadata": {**body.get("metadata", {}), "resourceVersion": resource_version},
        }
        with translated():
            return cast(
                dict[str, Any],
                self.custom.patch_namespaced_custom_object(
                    GROUP, VERSION, namespace, "incidents", name, body
                ),
            )

    def patch_incident_status(
        self, namespace: str, name: str, status: dict[str, Any], resource_version: str
    ) -> dict[str, Any]:
        """Merge-patch an Incident's status if nothing changed since (Conflict otherwise)."""
        body = {"metadata": {"resourceVersion": resource_version}, "status": status}
        with translated():
            return cast(
                dict[str, Any],
                self.custom.patch_namespaced_custom_object_status(
                    GROUP, VERSION, namespace, "incidents", name, body
                ),
            )

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        """The text under one key of a Secret; None when the Secret or key is missing.

        Errors name the Secret, never its contents.
        """
        try:
            with translated():
                secret = self.core.read_namespaced_secret(name, namespace)
        except NotFound:
            return None
        encoded = (secret.data or {}).get(key)
        if encoded is None:
            return None
        try:
            return base64.b64decode(encoded, validate=True).decode("utf-8").rstrip("\r\n")
        except (binascii.Error, UnicodeDecodeError):
            return None


# -- Incidents and ServiceOnCalls, typed, for the CLI ---------------------------------


class Incidents(ObjectWriter[Incident]):
    """Incidents as people write them: declared by hand, acknowledged, noted, resolved."""

    model = Incident


class ServiceOnCalls(ObjectReader[ServiceOnCall]):
    """ServiceOnCalls, read only: who runs a service, and its on-call schedule."""

    model = ServiceOnCall

    def of_service(self, service: str, namespace: str | None = None) -> list[ServiceOnCall]:
        """The ServiceOnCalls naming this service, in one namespace or every one (where one
        exists, once claimed)."""
        return self.find(namespace, f"spec.service.name={service}")


# -- reading at scale -------------------------------------------------------------

Item = TypeVar("Item")


class ListMeta(msgspec.Struct, frozen=True, rename="camel"):
    """A list's metadata: where the next page starts, and how many items remain after it."""

    continue_: str | None = msgspec.field(default=None, name="continue")
    remaining_item_count: int | None = None


class ListPage(msgspec.Struct, Generic[Item], frozen=True):
    """One page of a list, its items decoded straight from the response's bytes."""

    metadata: ListMeta = ListMeta()
    items: list[Item] = msgspec.field(default_factory=list)


class _MetaOnly(msgspec.Struct, frozen=True):
    metadata: ListMeta = ListMeta()


# Reads only a page's continue token: msgspec skips the items without building them.
_META_ONLY = msgspec.json.Decoder(_MetaOnly)


class ObjectPages:
    """Lists of our kinds read a page at a time (limit and continue), each page decoded
    from the wire once into the caller's item type: a msgspec Struct of the few fields it
    keeps (or a plain dict). msgspec, not pydantic: it decodes a page of 2,000 objects
    about 25 times faster and its structs take a third of the memory, which is what lets
    a report read 200,000 objects in seconds. While the caller decodes one page, a thread
    already fetches the next, so the API server's work and ours overlap."""

    def __init__(self, api: client.ApiClient, page_size: int = 500) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.page_size = page_size

    def pages(
        self,
        plural: str,
        item: type[Item],
        namespace: str | None = None,
        field_selector: str | None = None,
    ) -> Iterator[ListPage[Item]]:
        """The pages of the list of every namespace (or one), in the API server's order."""
        decoder = msgspec.json.Decoder(ListPage[item])  # type: ignore[valid-type]
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pages") as fetcher:
            pending: Future[bytes] | None = fetcher.submit(
                self._fetch, plural, namespace, field_selector, None
            )
            while pending is not None:
                body = pending.result()
                token = _META_ONLY.decode(body).metadata.continue_
                pending = (
                    fetcher.submit(self._fetch, plural, namespace, field_selector, token)
                    if token
                    else None
                )
                try:
                    page: ListPage[Item] = decoder.decode(body)
                except msgspec.ValidationError as error:
                    raise UnexpectedObject(
                        f"the API server returned an unexpected {plural} list: {error}"
                    ) from None
                del body  # the bytes go before the next page's arrive
                yield page

    def _fetch(
        self, plural: str, namespace: str | None, field_selector: str | None, token: str | None
    ) -> bytes:
        options: dict[str, Any] = {"limit": self.page_size, "_preload_content": False}
        if token:
            options["_continue"] = token
        if field_selector:
            options["field_selector"] = field_selector
        with translated():
            response = (
                self.custom.list_cluster_custom_object(GROUP, VERSION, plural, **options)
                if namespace is None
                else self.custom.list_namespaced_custom_object(
                    GROUP, VERSION, namespace, plural, **options
                )
            )
            return cast(bytes, cast(Any, response).data)

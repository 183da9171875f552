"""The operator's own Kubernetes client, for what Kopf does not do for us.

Posting Events from admission handlers (kopf.event cannot be called there) and
the one live read the webhook may make on an index miss. Blocking calls of the
official client; async callers run them with asyncio.to_thread.
"""

from __future__ import annotations

import datetime
import json
import logging
import uuid
from typing import Any, cast

from kubernetes import client, config

log = logging.getLogger(__name__)
COMPONENT = "changegate"
GROUP, VERSION = "changegate.io", "v1alpha1"


class KubeError(Exception):
    """The API server refused or failed a request; `message` is its own words."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


class NotFound(KubeError):
    """404: the object (or its namespace) does not exist."""


class Conflict(KubeError):
    """409: the object exists already, or a resourceVersion precondition failed."""


class Forbidden(KubeError):
    """403: RBAC, an admission webhook, or a namespace being terminated said no."""


class Invalid(KubeError):
    """422: the object does not fit the schema or its validation rules."""


class Gone(KubeError):
    """410: a watch's resourceVersion is too old; list again."""


_BY_STATUS: dict[int, type[KubeError]] = {
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


def kube_error(error: client.ApiException) -> KubeError:
    """The adapter's own exception for a client failure, carrying the server's message."""
    status = int(error.status or 0)
    reason = str(error.reason or "")
    message = server_message(error.body) or f"{status} {reason}".strip()
    return _BY_STATUS.get(status, KubeError)(status, reason, message)


def api_client() -> client.ApiClient:
    """In a pod, the service account; elsewhere, the kubeconfig (KUBECONFIG)."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


class KubeAdapter:
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
    ) -> None:
        """Post a core/v1 Event about `involved` (apiVersion, kind, namespace, name, uid)."""
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
            self.core.create_namespaced_event(namespace, event)
        except client.ApiException as error:
            log.warning(
                "could not post event %s on %s: %s", reason, involved.get("name"), error.reason
            )

    def list_service_on_calls(self) -> list[dict[str, Any]]:
        result = cast(
            dict[str, Any],
            self.custom.list_cluster_custom_object(GROUP, VERSION, "serviceoncalls"),
        )
        return list(result.get("items", []))

    # -- controller writes ------------------------------------------------------

    def read_change_request(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return cast(
                dict[str, Any],
                self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, "changerequests", name
                ),
            )
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise kube_error(error) from error

    def patch_status(
        self,
        plural: str,
        namespace: str,
        name: str,
        status: dict[str, Any],
        resource_version: str | None = None,
    ) -> None:
        """Merge-patch the status subresource; with a resourceVersion, only if nothing changed since."""
        body: dict[str, Any] = {"status": status}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        try:
            self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, plural, name, body
            )
        except client.ApiException as error:
            raise kube_error(error) from error

    def create_cluster_object(self, plural: str, body: dict[str, Any]) -> bool:
        """Create a cluster-scoped object; False when it already exists (a retry)."""
        try:
            self.custom.create_cluster_custom_object(GROUP, VERSION, plural, body)
        except client.ApiException as error:
            if error.status == 409:
                return False
            raise
        return True

    def create_namespaced_object(self, plural: str, namespace: str, body: dict[str, Any]) -> bool:
        """Create an object; False when it already exists or its namespace is going away."""
        try:
            self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)
        except client.ApiException as error:
            if error.status == 409 or (
                error.status == 403 and "being terminated" in str(error.body)
            ):
                return False
            raise
        return True

    def list_cluster_objects(self, plural: str) -> list[dict[str, Any]]:
        result = cast(
            dict[str, Any], self.custom.list_cluster_custom_object(GROUP, VERSION, plural)
        )
        return list(result.get("items", []))

    def delete_cluster_object(self, plural: str, name: str) -> None:
        try:
            self.custom.delete_cluster_custom_object(GROUP, VERSION, plural, name)
        except client.ApiException as error:
            if error.status != 404:
                raise

    def image_digests(
        self, namespace: str, selector: dict[str, str], template_hash: str | None
    ) -> dict[str, str]:
        """Digests of the running images (pods' imageID), by container, where the runtime reports them."""
        labels = dict(selector)
        if template_hash:
            labels["pod-template-hash"] = template_hash
        label_selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        pods = self.core.list_namespaced_pod(namespace, label_selector=label_selector).items
        digests: dict[str, str] = {}
        for pod in pods:
            for container in (pod.status.container_statuses or []) if pod.status else []:
                image_id = container.image_id or ""
                if "@sha256:" in image_id:
                    digests[container.name] = image_id.split("@", 1)[1]
        return digests

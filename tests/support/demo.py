"""`make demo`: a local control plane, changegate installed by its chart, and changes going through.

Starts the control plane from the cached binaries, installs the chart with its
webhook pointed at this machine, runs the webhook and the controller under the
chart's service accounts, and walks a service through: a standard change
approved at once, a normal change refused, approved by a change manager and
closed, and the evidence. Then an incident: an Alertmanager-shaped alert posted
to the intake pages the on-call developer in Slack (a local receiver), who
acknowledges and notes it, declares it major (the incident manager is paged),
and the alert's resolution closes it with its times. Then it keeps the operator
running, with its logs, until Ctrl-C, which stops everything.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.localcluster import PERSONAS, REPO, LocalCluster, ensure_binaries
from tests.support.operator import (
    CONTROLLER_SA,
    INTAKE_TOKEN,
    PAGE_SECRETS_ROLE,
    Installation,
    trust_store,
)
from tests.support.operator import NAMESPACE as OPERATOR_NAMESPACE
from tests.support.polling import wait_for
from tests.support.receivers import Post, Receiver, receiving
from tests.support.scenario import change_template

NS = "payments-prod"
IMAGE = "registry.example.com/payments/payments-api"


def banner(text: str) -> None:
    print(f"\n\033[1;36m==> {text}\033[0m", flush=True)


def say(text: str) -> None:
    print(f"    {text}", flush=True)


def shell(
    cluster: LocalCluster, command: str, user: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a command as a persona would type it, and show it with its output."""
    kubeconfig = cluster.kubeconfig if user is None else cluster.persona_kubeconfig(user)
    env = dict(os.environ, KUBECONFIG=str(kubeconfig))
    env["PATH"] = (
        f"{cluster.bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    )
    print(f"\033[2m[{user or 'admin'}]$\033[0m {command}", flush=True)
    result = subprocess.run(command, shell=True, env=env, capture_output=True, text=True, cwd=REPO)
    for line in (result.stdout + result.stderr).rstrip().splitlines():
        print(f"    {line}")
    if check and result.returncode != 0:
        raise SystemExit(f"demo step failed: {command}")
    return result


def apply_crds(cluster: LocalCluster) -> None:
    files = sorted((REPO / "crds").glob("*.yaml"))
    for path in files:
        cluster.kubectl("apply", "--server-side", "-f", str(path))
    for path in files:
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(path))
    say(f"{len(files)} CRDs established")


def phase(cluster: LocalCluster, name: str) -> str:
    out = cluster.kubectl(
        "-n", NS, "get", "changerequest", name, "-o", "jsonpath={.status.phase}", check=False
    )
    return out.stdout


def walk_through(cluster: LocalCluster) -> None:
    banner("A product team's service: payments-api in namespace payments-prod")
    cluster.kubectl("create", "namespace", NS)
    for group in ("team-payments",):
        cluster.kubectl(
            "-n",
            NS,
            "create",
            "rolebinding",
            f"edit-{group}",
            "--clusterrole=edit",
            f"--group={group}",
        )
    shell(
        cluster,
        f"kubectl -n {NS} create deployment payments-api --image={IMAGE}:1.41.0 --replicas=2",
        "product-dev-1",
    )
    shell(
        cluster,
        f"kubectl -n {NS} rollout status deployment/payments-api --timeout=60s",
        "product-dev-1",
    )
    soc = json.loads(
        cluster.kubectl(
            "create", "--dry-run=client", "-o", "json", "-f", "samples/serviceoncall.yaml"
        ).stdout
    )
    soc["metadata"]["namespace"] = NS
    soc["spec"]["environments"] = [{"name": "production", "namespace": NS, "production": True}]
    soc["spec"]["changePolicy"]["freezes"] = []
    # The demo pages through Slack (a local receiver); PagerDuty and ServiceNow are not
    # reachable from it (the tests drive them against contract servers), so it keeps only Slack.
    soc["spec"]["integrations"] = {"slack": soc["spec"]["integrations"]["slack"]}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(soc), user="platform-admin-1")
    say("ServiceOnCall payments-api declared by the platform team (approvers: change-managers)")
    shell(cluster, f"kubectl label namespace {NS} changegate.io/governed=true")
    wait_for(
        lambda: (
            "denied"
            in shell(
                cluster,
                f"kubectl -n {NS} set image deployment/payments-api payments-api={IMAGE}:9.9.9 --dry-run=server",
                "product-dev-1",
                check=False,
            ).stderr
        ),
        message="the webhook to govern the namespace",
        timeout=30,
    )

    banner("A standard change: a template activated by a change manager")
    template = change_template(NS, name="image-update")
    cluster.kubectl("apply", "-f", "-", input=json.dumps(template), user="product-dev-1")
    say("ChangeTemplate image-update created by the product team (inactive)")
    shell(
        cluster,
        f'kubectl -n {NS} patch changetemplate image-update --type=merge -p \'{{"spec":{{"active":true}}}}\'',
        "change-manager-1",
    )
    shell(
        cluster,
        f"changegate request -n {NS} --name std-1-42-0 --service payments-api --type Standard --template image-update "
        f"--target deployment/payments-api --image payments-api={IMAGE}:1.42.0 "
        "--repository https://git.example.com/payments/api --commit 4f2c9a1e0b7d --commit-time 2026-11-21T08:00:00Z "
        "--wait --until Approved --timeout 60",
        "product-dev-1",
    )
    shell(
        cluster,
        f"kubectl -n {NS} set image deployment/payments-api payments-api={IMAGE}:1.42.0",
        "product-dev-1",
    )
    shell(
        cluster,
        f"changegate status -n {NS} std-1-42-0 --wait --timeout 60",
        "product-dev-1",
        check=False,
    )

    banner("A normal change: refused at admission until a change manager approves")
    shell(
        cluster,
        f"kubectl -n {NS} set image deployment/payments-api payments-api={IMAGE}:2.0.0",
        "product-dev-1",
        check=False,
    )
    shell(
        cluster,
        f"changegate request -n {NS} --name api-2-0-0 --service payments-api --target deployment/payments-api "
        f"--image payments-api={IMAGE}:2.0.0 --summary 'Payments API 2.0: new card vault' "
        "--repository https://git.example.com/payments/api --commit 9b1d2e3f4a5c --commit-time 2026-11-21T07:30:00Z",
        "product-dev-1",
    )
    shell(cluster, f"changegate approve -n {NS} api-2-0-0", "product-dev-1", check=False)
    shell(
        cluster,
        f"changegate approve -n {NS} api-2-0-0 --comment 'CAB: go for 2.0' --wait --until Approved --timeout 60",
        "change-manager-1",
    )
    shell(
        cluster,
        f"kubectl -n {NS} set image deployment/payments-api payments-api={IMAGE}:2.0.0",
        "product-dev-1",
    )
    shell(
        cluster,
        f"changegate status -n {NS} api-2-0-0 --wait --timeout 60",
        "auditor-1",
        check=False,
    )

    banner("What an auditor sees")
    shell(cluster, "kubectl get changegate -A", "auditor-1")
    shell(cluster, "kubectl get deploymentrecords", "auditor-1")


# -- an incident -------------------------------------------------------------------

ALERT_GROUP = '{}:{alertname="PaymentsHighErrorRate"}'


def alert_payload(status: str, started: dt.datetime) -> dict[str, Any]:
    """What Alertmanager's webhook_config posts (version 4) for the service's alert."""
    at = started.isoformat(timespec="seconds").replace("+00:00", "Z")
    ended = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    labels = {
        "alertname": "PaymentsHighErrorRate",
        "service": "payments-api",
        "namespace": NS,
        "severity": "critical",
    }
    return {
        "version": "4",
        "groupKey": ALERT_GROUP,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "changegate",
        "groupLabels": {"alertname": "PaymentsHighErrorRate"},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [
            {
                "status": status,
                "labels": labels,
                "annotations": {
                    "summary": "Card authorisations fail: 5xx above 5% for 5 minutes",
                    "runbook_url": "https://wiki.example.com/payments/runbook#5xx",
                },
                "startsAt": at,
                "endsAt": ended if status == "resolved" else "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.example:9090/graph?g0.expr=payments_5xx_ratio",
                "fingerprint": "7d3c1a9e2b4f6a80",
            }
        ],
    }


def post_alert(installation: Installation, payload: dict[str, Any]) -> dict[str, Any]:
    """POST /alerts over HTTPS with the bearer token, as Alertmanager's http_config sends it."""
    url = f"https://127.0.0.1:{installation.intake_port}/alerts"
    say(f"Alertmanager -> POST {url} ({payload['status']})")
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {INTAKE_TOKEN}"},
        method="POST",
    )
    context: ssl.SSLContext = trust_store(installation.cert)
    with urllib.request.urlopen(request, context=context, timeout=60) as answer:
        body: dict[str, Any] = json.loads(answer.read())
    say(f"intake answered {answer.status}: {json.dumps(body['incidents'])}")
    return body


def show_page(post: Post) -> None:
    """A Slack message as the channel would show it: its blocks' text, line by line."""
    print("\033[1;35m    +-- Slack #team-payments --------------------------------\033[0m")
    for block in post.json().get("blocks", []):
        texts = [block["text"]["text"]] if "text" in block else []
        texts += [field["text"] for field in block.get("fields", [])]
        for text in texts:
            for line in text.splitlines():
                print(f"\033[35m    |\033[0m {line}")
    print("\033[1;35m    +--------------------------------------------------------\033[0m")


def incident_status(cluster: LocalCluster, name: str) -> dict[str, Any]:
    out = cluster.kubectl("-n", NS, "get", "incident", name, "-o", "json", check=False)
    status: dict[str, Any] = json.loads(out.stdout).get("status", {}) if out.stdout else {}
    return status


def wait_for_page(slack: Receiver, seen: int, message: str) -> list[Post]:
    pages = wait_for(lambda: slack.posts[seen:], timeout=60, message=message)
    for page in pages:
        show_page(page)
    return pages


def on_call_now(cluster: LocalCluster) -> str:
    user = wait_for(
        lambda: cluster.kubectl(
            "-n", NS, "get", "serviceoncall", "payments-api",
            "-o", "jsonpath={.status.onCall.user}", check=False,
        ).stdout,
        timeout=60,
        message="the ServiceOnCall's status to name who is on call",
    )  # fmt: skip
    return str(user)


def incident_walk_through(
    cluster: LocalCluster, installation: Installation, slack: Receiver
) -> None:
    banner("An incident: payments-api's error rate alert fires")
    cluster.kubectl(
        "-n", NS, "create", "secret", "generic", "payments-slack",
        f"--from-literal=webhook-url={slack.url}/services/T000/B000/demo",
    )  # fmt: skip
    say("Secret payments-slack: the team's Slack incoming webhook (a local receiver here)")
    shell(
        cluster,
        f"kubectl -n {NS} create rolebinding {PAGE_SECRETS_ROLE} --clusterrole={PAGE_SECRETS_ROLE} "
        f"--serviceaccount={OPERATOR_NAMESPACE}:{CONTROLLER_SA}",
    )
    say("the platform team lets the controller read the team's paging Secrets, here only")
    on_call = on_call_now(cluster)
    shell(cluster, f"changegate oncall payments-api -n {NS}", "product-dev-1")
    started = dt.datetime.now(dt.UTC).replace(microsecond=0)
    answer = post_alert(installation, alert_payload("firing", started))
    name = answer["incidents"][0]["incident"]
    wait_for_page(slack, 0, f"{on_call} paged in Slack")
    seen = len(slack.posts)

    banner(f"The on-call developer ({on_call}) acknowledges and keeps notes")
    shell(cluster, f"changegate incident ack {name} -n {NS} --comment 'looking at it'", on_call)
    wait_for(
        lambda: incident_status(cluster, name).get("phase") == "Acknowledged",
        message="the incident acknowledged",
    )
    shell(
        cluster,
        f"changegate incident note {name} -n {NS} 'card vault 2.0 times out under load; suspect the new pool size'",
        on_call,
    )

    banner("Customers are hit: the incident is declared major, the incident manager paged")
    shell(cluster, f"changegate incident major {name} -n {NS}", on_call)
    wait_for(
        lambda: any(
            entry["action"] == "MajorIncidentPaged"
            for entry in incident_status(cluster, name).get("timeline", [])
        ),
        message="the incident manager and every on-call paged",
    )
    wait_for_page(slack, seen, "the incident manager paged")
    seen = len(slack.posts)

    banner("The fix is out; Alertmanager sends resolved and the incident closes")
    post_alert(installation, alert_payload("resolved", started))
    wait_for(
        lambda: incident_status(cluster, name).get("phase") == "Resolved",
        message="the incident resolved",
    )
    shell(cluster, f"changegate incident show {name} -n {NS}", "auditor-1")
    status = incident_status(cluster, name)
    say(
        f"time to acknowledge {status.get('timeToAcknowledgeSeconds')}s, "
        f"time to resolve {status.get('timeToResolveSeconds')}s, "
        f"{len(status.get('pages', []))} pages recorded"
    )
    shell(cluster, f"kubectl -n {NS} get incidents", "auditor-1")


def run(cluster: LocalCluster) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="changegate-demo-"))
    banner("Installing changegate with its Helm chart; webhook and controller run here")
    installation = Installation.install(cluster, workdir)
    say(f"webhook on https://127.0.0.1:{installation.webhook_port}, logs in {workdir}")
    try:
        walk_through(cluster)
        with receiving("slack") as slack:
            incident_walk_through(cluster, installation, slack)
        banner("Talk to it from another terminal")
        say(f"export KUBECONFIG={cluster.kubeconfig}")
        say(f"export PATH={cluster.bin_dir}:{Path(sys.executable).parent}:$PATH")
        say("kubectl get changegate -A")
        say(f"personas ({', '.join(PERSONAS)}) have kubeconfigs beside it, e.g.")
        say(f"kubectl --kubeconfig {cluster.persona_kubeconfig('auditor-1')} changegate list -A")
        banner(
            "The operator keeps running; its logs follow (Ctrl-C stops it and the control plane)"
        )
        logs = subprocess.Popen(
            [
                "tail",
                "-n",
                "20",
                "-F",
                str(installation.controller.log_path),
                str(installation.webhook.log_path),
            ]
        )
        try:
            installation.controller.process.wait()  # type: ignore[union-attr]
        finally:
            logs.terminate()
    finally:
        installation.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    # A SIGTERM (a closed terminal, a CI timeout) cleans up like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    banner(
        "Starting a local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)"
    )
    cluster = LocalCluster("demo", ensure_binaries())
    try:
        cluster.start()
        say(f"up in {cluster.started_seconds:.1f}s at {cluster.server}")
        banner("Applying changegate's CRDs")
        apply_crds(cluster)
        run(cluster)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        banner("Stopping the operator and the control plane")
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())

"""Webhook processes that are always stopped, and what their metrics say.

`tests.support.operator.start_webhook` starts one for the session; the HA test
and the admission benchmark start more, and must stop each even when its
start-up fails half-way, so the process is stopped by the with-block that
started it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

from tests.support.localcluster import LocalCluster
from tests.support.operator import WEBHOOK_SA, RoleProcess, role_env, token_kubeconfig
from tests.support.polling import wait_for
from tests.support.tls import ServingCertificate

DECISION = re.compile(r"^changegate_admission_decisions_total\{[^}]*\} (\S+)$", re.MULTILINE)


@contextlib.contextmanager
def webhook_process(
    cluster: LocalCluster,
    workdir: Path,
    cert: ServingCertificate,
    port: int,
    name: str,
    ready_timeout: float = 60,
) -> Iterator[RoleProcess]:
    """`python -m changegate webhook` on 127.0.0.1:port under the chart's identity, once ready."""
    kubeconfig = token_kubeconfig(cluster, WEBHOOK_SA, workdir / f"{name}.kubeconfig")
    env = role_env(kubeconfig)
    env.update(
        {
            "CHANGEGATE_WEBHOOK_ADDRESS": "127.0.0.1",
            "CHANGEGATE_WEBHOOK_PORT": str(port),
            "CHANGEGATE_WEBHOOK_CERT_FILE": str(cert.cert_file),
            "CHANGEGATE_WEBHOOK_KEY_FILE": str(cert.key_file),
            "HOSTNAME": name,
        }
    )
    process = RoleProcess("webhook", env, workdir / f"{name}.log")
    try:
        process.start()
        wait_for(process.ready, timeout=ready_timeout, message=f"{name} ready (indexes warm)")
        yield process
    finally:
        process.stop()


def admission_decisions(process: RoleProcess) -> float:
    """How many admission decisions a webhook process has made, from its metrics."""
    return sum(float(value) for value in DECISION.findall(process.metrics()))

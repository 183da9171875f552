"""How both roles authenticate to the API server.

In a pod: the service account token. Outside (development, tests, the demo):
the kubeconfig named by KUBECONFIG. Kopf's piggybacking on client libraries is
not used, so the identity is exactly one of these two.
"""

from __future__ import annotations

from typing import Any

import kopf


def register_login(registry: kopf.OperatorRegistry) -> None:
    @kopf.on.login(registry=registry)
    def login_with_service_account_or_kubeconfig(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

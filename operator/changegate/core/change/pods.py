"""Ways into a running pod: ephemeral containers (`kubectl debug`), exec and attach.

None of them rolls a workload out, yet each runs code or commands beside the
approved ones. The webhook decodes the request into a `PodAccess` and asks
`decide_pod_access`: a chain of named rules like admission's, the first that
decides wins. Debugging is for the service's emergency groups, and recorded;
exec and attach are recorded, or refused when the service's policy says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from changegate.core.change.admission import Decision, Reason
from changegate.core.change.facts import ServicePolicy
from changegate.core.common import User

EPHEMERAL = "ephemeralcontainers"
EXEC = "exec"
ATTACH = "attach"


@dataclass(frozen=True, slots=True)
class PodAccess:
    """One request for a way into a pod, as the API server authenticated it."""

    how: str  # EPHEMERAL, EXEC or ATTACH
    namespace: str
    pod: str
    user: User
    # Ephemeral containers the request adds (name, image); exec's container and command.
    added: tuple[tuple[str, str], ...] = ()
    container: str = ""
    command: tuple[str, ...] = ()
    operator_namespace: str = ""

    @property
    def label(self) -> str:
        return f"pod {self.pod} in {self.namespace}"

    def what(self) -> str:
        """The access in a few words, for messages and Events."""
        if self.how == EPHEMERAL:
            added = ", ".join(f"{name} ({image})" for name, image in self.added)
            return f"ephemeral container {added}"
        command = " ".join(self.command)[:200] or "(no command)"
        return f"{self.how} into container {self.container or '(default)'}: {command}"


AccessRule = Callable[[PodAccess, ServicePolicy | None], Decision | None]


def exempt(access: PodAccess, service: ServicePolicy | None) -> Decision | None:
    """kube-system, the operator's namespace and namespaces no ServiceOnCall governs."""
    own = access.operator_namespace
    if service is None or access.namespace == "kube-system" or (own and access.namespace == own):
        return Decision(True, Reason.UNGOVERNED, f"namespace {access.namespace} is not governed")
    return None


def nothing_added(access: PodAccess, service: ServicePolicy | None) -> Decision | None:
    """An ephemeral-containers write that adds none (a no-op write) runs nothing new."""
    if access.how != EPHEMERAL or access.added:
        return None
    return Decision(True, Reason.NOT_A_ROLLOUT, "no ephemeral container added", service=service)


def debug(access: PodAccess, service: ServicePolicy | None) -> Decision | None:
    """Ephemeral containers: the service's emergency groups only; anyone else is told whom to ask."""
    if access.how != EPHEMERAL or service is None:
        return None
    user = access.user.username
    if service.is_emergency_member(access.user):
        return Decision(
            True,
            Reason.DEBUG,
            f"{access.what()} added to {access.label} by {user}, a member of an emergency"
            f" group of service {service.service}",
            service=service,
        )
    groups = ", ".join(sorted(service.emergency_groups)) or "none"
    return Decision(
        False,
        Reason.DEBUG_REFUSED,
        f"changegate: kubectl debug of {access.label} refused: {user} is not in an emergency"
        f" group of service {service.service} ({groups})",
        fix="ask a member of an emergency group to debug it (it is recorded), or reproduce"
        " the problem in a non-production namespace",
        service=service,
    )


def exec_or_attach(access: PodAccess, service: ServicePolicy | None) -> Decision | None:
    """Exec and attach: recorded, or refused when the policy says `exec: Refuse`."""
    if access.how not in (EXEC, ATTACH) or service is None:
        return None
    user = access.user.username
    if service.refuse_exec:
        return Decision(
            False,
            Reason.EXEC_REFUSED,
            f"changegate: kubectl {access.how} into {access.label} refused: the policy of"
            f" service {service.service} refuses exec and attach (changePolicy.exec: Refuse)",
            fix="ask a member of an emergency group to use kubectl debug (it is recorded),"
            " or a change manager to set changePolicy.exec to Record",
            service=service,
        )
    return Decision(
        True, Reason.EXEC, f"{access.what()} of {access.label} by {user}", service=service
    )


ACCESS_RULES: tuple[AccessRule, ...] = (exempt, nothing_added, debug, exec_or_attach)


def decide_pod_access(access: PodAccess, service: ServicePolicy | None) -> Decision:
    """Allow or refuse a way into a pod, and say why; every access is decided by some rule."""
    for rule in ACCESS_RULES:
        decision = rule(access, service)
        if decision is not None:
            return decision
    return Decision(True, Reason.NOT_A_ROLLOUT, f"{access.how} of {access.label}")

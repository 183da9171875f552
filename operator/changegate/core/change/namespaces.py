"""The governed label of a namespace: taken off only by a platform admin, where it matters.

Removing the label would switch the gate off for every workload in the
namespace, so the webhook refuses it when a ServiceOnCall declares the
namespace production, unless a platform admin does it. RBAC keeps namespaces
out of product teams' hands in the first place (the chart documents how); this
is the second line, for anyone who may patch namespaces but not govern.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from changegate.core.change.admission import Decision, Reason
from changegate.core.change.facts import ServicePolicy
from changegate.core.common import User


@dataclass(frozen=True, slots=True)
class LabelChange:
    """A namespace update, as far as the governed label goes."""

    namespace: str
    label: str  # the chart's governance.governedLabel
    old_labels: Mapping[str, str]
    new_labels: Mapping[str, str]
    user: User

    @property
    def removes_label(self) -> bool:
        return (
            self.old_labels.get(self.label) == "true" and self.new_labels.get(self.label) != "true"
        )


def decide_namespace_update(
    change: LabelChange, service: ServicePolicy | None, platform_admin_groups: frozenset[str]
) -> Decision:
    """Refuse taking the governed label off a production namespace, unless a platform admin does."""
    namespace, user = change.namespace, change.user.username
    if not change.removes_label:
        return Decision(True, Reason.GOVERNED_LABEL_KEPT, f"namespace {namespace} stays as it was")
    if service is None:
        return Decision(
            True,
            Reason.UNGOVERNED,
            f"namespace {namespace} is production for no ServiceOnCall; {change.label} removed",
        )
    if change.user.in_any(platform_admin_groups):
        return Decision(
            True,
            Reason.GOVERNED_LABEL_REMOVED,
            f"{change.label} removed from namespace {namespace}, production of service"
            f" {service.service}, by platform admin {user}",
            service=service,
        )
    return Decision(
        False,
        Reason.GOVERNED_LABEL_KEPT,
        f"changegate: {user} may not remove {change.label} from namespace {namespace}: it is"
        f" production for service {service.service} (ServiceOnCall {service.namespace}/"
        f"{service.name}), and without the label its rollouts would bypass every change",
        fix="ask a platform admin; or take the namespace out of the ServiceOnCall's"
        " production environments first (a change managers' edit)",
        service=service,
    )

"""The governed label of a namespace: taken off only by a platform admin, where it matters.

Removing the label would switch the gate off for every workload in the
namespace, so the webhook refuses it when a ServiceOnCall declares the
namespace production, unless a platform admin does it. The same holds for the
namespace's audit-only mode (the changegate.io/enforcement annotation), which
admits what the gate would refuse: only platform admins set or change it. RBAC
keeps namespaces out of product teams' hands in the first place (the chart
documents how); this is the second line, for anyone who may patch namespaces.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from changegate.core.change.admission import Decision, Reason
from changegate.core.change.facts import ServicePolicy
from changegate.core.common import User

# On a governed namespace: Audit admits what enforcement would refuse; Enforce, or none, refuses.
ENFORCEMENT_ANNOTATION = "changegate.io/enforcement"
ENFORCEMENT_VALUES = ("Enforce", "Audit")


def audit_only(labels: Mapping[str, str], annotations: Mapping[str, str], label: str) -> bool:
    """Whether a namespace is governed in audit-only mode."""
    return labels.get(label) == "true" and annotations.get(ENFORCEMENT_ANNOTATION) == "Audit"


@dataclass(frozen=True, slots=True)
class LabelChange:
    """A namespace update, as far as the governed label goes."""

    namespace: str
    label: str  # the chart's governance.governedLabel
    old_labels: Mapping[str, str]
    new_labels: Mapping[str, str]
    user: User
    old_annotations: Mapping[str, str] = field(default_factory=dict)
    new_annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def removes_label(self) -> bool:
        return (
            self.old_labels.get(self.label) == "true" and self.new_labels.get(self.label) != "true"
        )

    @property
    def enforcement(self) -> str | None:
        """The enforcement annotation the update leaves on a namespace that is governed."""
        if self.new_labels.get(self.label) != "true":
            return None
        return self.new_annotations.get(ENFORCEMENT_ANNOTATION)

    @property
    def changes_enforcement(self) -> bool:
        """Whether the mode in effect moves: annotated, unannotated, or governed with it set."""
        before = (
            self.old_annotations.get(ENFORCEMENT_ANNOTATION)
            if self.old_labels.get(self.label) == "true"
            else None
        )
        return self.new_labels.get(self.label) == "true" and before != self.enforcement


def decide_namespace_update(
    change: LabelChange, service: ServicePolicy | None, platform_admin_groups: frozenset[str]
) -> Decision:
    """Refuse taking the governed label off a production namespace, unless a platform admin does."""
    namespace, user = change.namespace, change.user.username
    if change.changes_enforcement:
        return decide_enforcement(change, service, platform_admin_groups)
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


def decide_enforcement(
    change: LabelChange, service: ServicePolicy | None, platform_admin_groups: frozenset[str]
) -> Decision:
    """Only platform admins put a governed namespace in audit-only mode, or take it out."""
    namespace, user, value = change.namespace, change.user.username, change.enforcement
    if value is not None and value not in ENFORCEMENT_VALUES:
        return Decision(
            False,
            Reason.ENFORCEMENT_KEPT,
            f"changegate: {ENFORCEMENT_ANNOTATION} on namespace {namespace} must be"
            f" {' or '.join(ENFORCEMENT_VALUES)}, not {value!r}",
            service=service,
        )
    mode = value or "Enforce"
    if change.user.in_any(platform_admin_groups):
        return Decision(
            True,
            Reason.ENFORCEMENT_CHANGED,
            f"namespace {namespace} set to {ENFORCEMENT_ANNOTATION}={mode} by platform admin {user}",
            service=service,
        )
    return Decision(
        False,
        Reason.ENFORCEMENT_KEPT,
        f"changegate: {user} may not set {ENFORCEMENT_ANNOTATION}={mode} on governed namespace"
        f" {namespace}: only platform admins ({', '.join(sorted(platform_admin_groups))}) choose"
        " whether its rollouts are refused (Enforce) or only reported (Audit)",
        fix="ask a platform admin",
        service=service,
    )

"""Writes that Kubernetes' own controllers make on behalf of the workloads they manage.

The first admission rule asks this module: a ReplicaSet the deployment controller
writes for its Deployment, or a Pod the ReplicaSet controller writes for its
ReplicaSet, runs code a governed write already admitted, so it passes at once.
Both halves must hold: the authenticated user (which nobody can forge) and a
controller ownerReference to the kind that controller manages (which anyone can
write, and so alone proves nothing).
"""

from __future__ import annotations

from changegate.core.change.workloads import Workload
from changegate.core.common import User

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:kube-system:"
# kube-controller-manager without --use-service-account-credentials acts as itself.
KUBE_CONTROLLER_MANAGER = "system:kube-controller-manager"
# Each controller's service account -> (kind it writes, kind of the owner it writes for).
ACTS_FOR: dict[str, frozenset[tuple[str, str]]] = {
    "deployment-controller": frozenset({("ReplicaSet", "Deployment")}),
    "replicaset-controller": frozenset({("Pod", "ReplicaSet")}),
    "statefulset-controller": frozenset({("Pod", "StatefulSet")}),
    "daemon-set-controller": frozenset({("Pod", "DaemonSet")}),
    "job-controller": frozenset({("Pod", "Job")}),
    "cronjob-controller": frozenset({("Job", "CronJob")}),
}
CONTROLLER_USERS = frozenset(SERVICE_ACCOUNT_PREFIX + name for name in ACTS_FOR)
ANY_CONTROLLER = frozenset().union(*ACTS_FOR.values())


def allowed_pairs(user: User) -> frozenset[tuple[str, str]]:
    """The (kind, owner kind) writes this user makes as a workload controller; none for people."""
    if user.username == KUBE_CONTROLLER_MANAGER:
        return ANY_CONTROLLER
    if not user.username.startswith(SERVICE_ACCOUNT_PREFIX):
        return frozenset()
    return ACTS_FOR.get(user.username.removeprefix(SERVICE_ACCOUNT_PREFIX), frozenset())


def acting_for_owner(user: User, workload: Workload) -> bool:
    """Whether this is a workload controller writing an object for the owner it manages."""
    if workload.controller is None:
        return False
    return (workload.kind, workload.controller[0]) in allowed_pairs(user)

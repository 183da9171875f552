"""The hash chain of each service's DeploymentRecords, as the controller extends it.

`write_linked` (called by rollouts.py when a rollout finishes) creates each new
record linked to its service's latest one (core/change/hashchain.py), under that
service's lock, so two rollouts of one service finishing at once still make one
chain, not a fork. The latest record is read live: the index may lag a record
written a moment ago.
"""

from __future__ import annotations

import threading
from typing import Any

from changegate.api.v1alpha1.deploymentrecord import DeploymentRecord, PreviousRecord
from changegate.core.change.hashchain import chain_tip
from changegate.handlers.controller.state import ControllerState, creation_body


class ServiceLocks:
    """One lock per service: Kopf runs sync handlers of different workloads in threads."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def of(self, service: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(service, threading.Lock())


LOCKS = ServiceLocks()


def _name(body: dict[str, Any]) -> str:
    return str((body.get("metadata") or {}).get("name", ""))


def linked(record: DeploymentRecord, stored: list[dict[str, Any]]) -> DeploymentRecord:
    """The record with its link to the latest of the service's stored records (none: first)."""
    tip = chain_tip(b for b in stored if _name(b) != record.metadata.name)
    if tip is None:
        return record
    previous = PreviousRecord(name=tip.name, sha256=tip.sha256)
    return record.model_copy(update={"spec": record.spec.model_copy(update={"previous": previous})})


def write_linked(state: ControllerState, record: DeploymentRecord) -> bool:
    """Create the record, linked into its service's chain; False when it exists already."""
    service = record.spec.service
    with LOCKS.of(service):
        stored = state.kube.list_cluster_objects(
            "deploymentrecords", field_selector=f"spec.service={service}"
        )
        if any(_name(b) == record.metadata.name for b in stored):
            return False  # written by an earlier attempt
        body = creation_body(linked(record, stored))
        return state.kube.create_cluster_object("deploymentrecords", body)

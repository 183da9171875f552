"""ChangeTemplates: status says whether the template counts, who activated it, how often used,
and which workloads its selectors matched when it was activated (its fixed scope).

Usage is counted from the Standard changes that exist and were approved
(core.change.templates.template_usage), never incremented: the template's
own events and every event of a change naming it refresh it the same way.
"""

from __future__ import annotations

from typing import Any

import kopf

from changegate.api.v1alpha1 import GROUP, VERSION, ChangeTemplate
from changegate.core.change.templates import template_status, template_usage
from changegate.handlers.controller.indexes import Indexes
from changegate.handlers.controller.registry import registry
from changegate.handlers.controller.state import ControllerState, parse, state_of
from changegate.handlers.controller.status import status_patch


def template_patch(
    template: ChangeTemplate, indexes: Indexes, state: ControllerState
) -> dict[str, Any] | None:
    """The status patch the template needs now, or None."""
    namespace, name = template.metadata.namespace or "", template.metadata.name or ""
    usage = template_usage(template, indexes.changes_under(namespace, name))
    workloads = indexes.workload_labels(namespace)
    wanted = template_status(template, state.clock(), usage, workloads).to_json()
    return status_patch(template.status.to_json(), wanted)


@kopf.on.event(GROUP, VERSION, "changetemplates", registry=registry)
def reconcile_template(
    body: kopf.Body, type: str | None, patch: kopf.Patch, memo: kopf.Memo, **kwargs: Any
) -> None:
    """Status says whether the template counts, and who activated it, when."""
    if type == "DELETED":
        return
    template = parse(ChangeTemplate, body)
    if template is None:
        return
    wanted = template_patch(template, Indexes.of(kwargs), state_of(memo))
    if wanted is not None:
        patch.status.update(wanted)


def refresh_usage(state: ControllerState, indexes: Indexes, namespace: str, name: str) -> None:
    """A change naming the template moved: write the template's status if it differs now."""
    template = indexes.template(namespace, name)
    if template is None:
        return
    wanted = template_patch(template, indexes, state)
    if wanted is not None:
        state.kube.patch_status("changetemplates", namespace, name, wanted)

"""A ChangeTemplate's own status: activity, and usage counted from the changes that exist.

Usage is level-based: the same changes give the same count whatever order
events came in, and a deleted change no longer counts.
"""

from __future__ import annotations

from changegate.api.v1alpha1 import ChangeRequest, ConditionStatus, find_condition
from changegate.core.change.lifecycle import reconcile
from changegate.core.change.templates import Fit, Usage, template_status, template_usage
from tests.unit.builders import NOW, at, change_request, policy, standard_template, with_status

FITS = Fit(True, "fits")
TEMPLATE = standard_template().model_copy(
    update={
        "metadata": standard_template().metadata.model_copy(update={"namespace": "payments-prod"})
    }
)


def standard(name: str, hours: float, namespace: str = "payments-prod") -> ChangeRequest:
    """A Standard change under the sample template, approved by it `hours` around NOW."""
    change = change_request(name, type="Standard", namespace=namespace)
    return with_status(change, reconcile(change, policy(), FITS, 3600, at(hours)))


def test_usage_counts_approved_changes_under_the_template_and_names_the_latest() -> None:
    changes = [standard("a", -3), standard("b", -1), standard("c", -2)]
    assert template_usage(TEMPLATE, changes) == Usage(3, at(-1), "b")


def test_usage_ignores_pending_changes_and_other_namespaces() -> None:
    pending = change_request("p", type="Standard")
    elsewhere = standard("x", -1, namespace="orders-prod")
    assert template_usage(TEMPLATE, [pending, elsewhere]) == Usage()


def test_usage_is_the_same_whatever_the_order() -> None:
    changes = [standard("a", -3), standard("b", -1)]
    assert template_usage(TEMPLATE, changes) == template_usage(TEMPLATE, changes[::-1])


def test_template_status_writes_usage_when_given_and_keeps_it_otherwise() -> None:
    counted = template_status(TEMPLATE, NOW, Usage(2, at(-1), "b"))
    assert (counted.used_count, counted.last_change_request) == (2, "b")
    kept = template_status(TEMPLATE.model_copy(update={"status": counted}), NOW)
    assert (kept.used_count, kept.last_used_time) == (2, at(-1))
    active = find_condition(kept.conditions, "Active")
    assert active is not None
    assert active.status is ConditionStatus.TRUE

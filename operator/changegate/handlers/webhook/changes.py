"""Admission of changegate's own kinds: who may write what, stamped with who they are.

ChangeRequests and ChangeTemplates are mutated (requester, approvers and
activation stamped from the authenticated user); ServiceOnCalls and
DeploymentRecords are validated. The rules are the pure
changegate.core.change.governance reviews; this module parses the bodies into
models at the boundary and turns each Verdict into an Answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from changegate.api.v1alpha1.changerequest import ChangeRequest
from changegate.api.v1alpha1.changetemplate import ChangeTemplate
from changegate.api.v1alpha1.serviceoncall import ServiceOnCall
from changegate.core.change.governance import (
    Verdict,
    review_change_request,
    review_change_request_deletion,
    review_change_template,
    review_deployment_record,
    review_service_on_call,
)
from changegate.handlers.webhook.claims import gather_claims
from changegate.handlers.webhook.server import Answer, Handler, Review, Route
from changegate.handlers.webhook.state import Clock, WebhookState, utc_now
from changegate.metrics import ADMISSION_DECISIONS

M = TypeVar("M", bound=BaseModel)
Reviewer = Callable[[Review], Verdict]
AsyncReviewer = Callable[[Review], Awaitable[Verdict]]
GROUP = "changegate.io"
WRITES = frozenset({"CREATE", "UPDATE"})
ALL = frozenset({"CREATE", "UPDATE", "DELETE"})


class Unparsable(Exception):
    """The object is not a valid instance of its kind: refused with 400 in the answer."""


def parse(model: type[M], body: dict[str, Any] | None) -> M | None:
    if body is None:
        return None
    try:
        return model.model_validate(body)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise Unparsable(f"invalid {model.__name__}: {where}: {first['msg']}") from None


def must_parse(model: type[M], body: dict[str, Any] | None) -> M:
    parsed = parse(model, body)
    if parsed is None:
        raise Unparsable(f"the request carries no {model.__name__}")
    return parsed


def answer(verdict: Verdict) -> Answer:
    ADMISSION_DECISIONS.labels("allow" if verdict.allowed else "deny", verdict.reason).inc()
    if not verdict.allowed:
        return Answer(False, 403, verdict.message)
    return Answer(True, patch=verdict.patch, warnings=verdict.warnings)


class ChangeAdmission:
    """The webhook calls for ChangeRequests, ChangeTemplates, ServiceOnCalls, DeploymentRecords."""

    def __init__(self, state: WebhookState, clock: Clock = utc_now) -> None:
        self.state = state
        self.clock = clock

    def routes(self) -> list[Route]:
        def route(
            plural: str,
            kind: str,
            reason: str,
            reviewer: Reviewer | AsyncReviewer,
            ops: frozenset[str],
        ) -> Route:
            kinds = frozenset({(GROUP, kind)})
            return Route(f"/{plural}", reason, kinds, self._answering(reviewer), ops)

        return [
            route("changerequests", "ChangeRequest", "mutating", self.change_request, WRITES),
            Route(
                "/delete-changerequests",
                "validating",
                frozenset({(GROUP, "ChangeRequest")}),
                self._answering(self.change_request_deletion),
                frozenset({"DELETE"}),
            ),
            route("changetemplates", "ChangeTemplate", "mutating", self.change_template, WRITES),
            route("serviceoncalls", "ServiceOnCall", "validating", self.service_on_call, ALL),
            route(
                "deploymentrecords", "DeploymentRecord", "validating", self.deployment_record, ALL
            ),
        ]

    @staticmethod
    def _answering(reviewer: Reviewer | AsyncReviewer) -> Handler:
        async def handle(review: Review) -> Answer:
            if review.sub_resource:
                # Status is the controller's to write; the chart's rules never send it here.
                return Answer(True)
            try:
                verdict = reviewer(review)
                if not isinstance(verdict, Verdict):  # a reviewer that asks the API server
                    verdict = await verdict
            except Unparsable as error:
                return Answer(False, 400, str(error))
            return answer(verdict)

        return handle

    def change_request(self, review: Review) -> Verdict:
        """Stamp the requester and approvers from the authenticated user; keep duties apart."""
        new = must_parse(ChangeRequest, review.object)
        old = parse(ChangeRequest, review.old_object)
        operator = review.user.username in self.state.authorities.operator_users
        may_review = operator or self.state.authorities.is_change_manager(review.user)
        policy = self.state.service_named(new.spec.service)
        return review_change_request(
            review.operation,
            old,
            new,
            review.user,
            policy,
            self.clock(),
            operator=operator,
            may_review=may_review,
        )

    def change_request_deletion(self, review: Review) -> Verdict:
        """A change awaiting review is deleted only by governance."""
        return review_change_request_deletion(
            must_parse(ChangeRequest, review.old_object),
            review.user,
            self.state.authorities,
            namespace_terminating=self.state.terminating(review.namespace),
        )

    def change_template(self, review: Review) -> Verdict:
        """Only change managers activate templates; an edited template is deactivated."""
        new = must_parse(ChangeTemplate, review.object)
        old = parse(ChangeTemplate, review.old_object)
        return review_change_template(
            review.operation, old, new, review.user, self.state.authorities, self.clock()
        )

    async def service_on_call(self, review: Review) -> Verdict:
        """Policy and environments change only by governance; names and namespaces are claimed
        once, and only where the writer may deploy (asked of the API server)."""
        if review.operation == "DELETE":
            deleted = must_parse(ServiceOnCall, review.old_object)
            return review_service_on_call(
                deleted,
                None,
                review.user,
                self.state.authorities,
                namespace_terminating=self.state.terminating(review.namespace),
            )
        new = must_parse(ServiceOnCall, review.object)
        old = parse(ServiceOnCall, review.old_object)
        claims = await gather_claims(self.state, review.user, review.namespace, old, new)
        return review_service_on_call(old, new, review.user, self.state.authorities, claims=claims)

    def deployment_record(self, review: Review) -> Verdict:
        """DeploymentRecords are written only by the operator's own identity."""
        return review_deployment_record(review.user, self.state.authorities)

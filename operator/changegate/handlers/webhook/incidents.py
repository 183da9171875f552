"""Admission of Incidents: who may act on one, stamped with who they are.

The mutating call for Incidents (CREATE, UPDATE). It parses the bodies into
models at the boundary, gathers the service's team from the ServiceOnCall cache
and the incident managers' groups from settings, calls the pure
changegate.core.incident.review, and turns its Verdict into an Answer.
"""

from __future__ import annotations

from changegate.api.v1alpha1.incident import Incident
from changegate.core.incident.review import IncidentWrite, Responders, Verdict, review_incident
from changegate.handlers.webhook.changes import GROUP, WRITES, Unparsable, must_parse, parse
from changegate.handlers.webhook.server import Answer, Review, Route
from changegate.handlers.webhook.state import Clock, WebhookState, utc_now
from changegate.metrics import ADMISSION_DECISIONS


def answer(verdict: Verdict) -> Answer:
    ADMISSION_DECISIONS.labels("allow" if verdict.allowed else "deny", verdict.reason).inc()
    if not verdict.allowed:
        return Answer(False, 403, verdict.message)
    return Answer(True, patch=verdict.patch, warnings=verdict.warnings)


class IncidentAdmission:
    """The webhook call for Incidents."""

    def __init__(self, state: WebhookState, clock: Clock = utc_now) -> None:
        self.state = state
        self.clock = clock

    def routes(self) -> list[Route]:
        kinds = frozenset({(GROUP, "Incident")})
        return [Route("/incidents", "mutating", kinds, self.incident, WRITES)]

    async def incident(self, review: Review) -> Answer:
        """Stamp acknowledgements, notes and the other acts; refuse those who may not act."""
        if review.sub_resource:
            # Status is the controller's to write; the chart's rules never send it here.
            return Answer(True)
        try:
            new = must_parse(Incident, review.object)
            old = parse(Incident, review.old_object)
        except Unparsable as error:
            return Answer(False, 400, str(error))
        write = IncidentWrite(
            old=old,
            new=new,
            user=review.user,
            responders=self.responders((old or new).spec.service),
            now=self.clock(),
            operator=review.user.username in self.state.authorities.operator_users,
        )
        return answer(review_incident(write))

    def responders(self, service: str) -> Responders:
        """The team of the service that owns the incident (before a reassignment)."""
        policy = self.state.service_named(service)
        return Responders(
            service=service,
            team=policy.team_members if policy else None,
            manager_groups=frozenset(self.state.settings.incident_manager_groups),
        )

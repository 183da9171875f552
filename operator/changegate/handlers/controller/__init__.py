"""The controller role: reconciles our kinds and turns finished rollouts into evidence.

Only this role writes. Every handler is level-based: it reads what is (the
indexes), asks the core what should be, and writes the difference, so a
restart at any moment ends in the same state. One module per kind or concern:

    indexes          the Kopf indexes and the questions asked of them
    changerequests   the ChangeRequest lifecycle        changetemplates  template status and usage
    rollouts         Deployments, StatefulSets, DaemonSets: evidence, emergency and promotion
    serviceoncalls   what runs where and who is on call, on the ServiceOnCall's status
    dora             each service's DORA figures of the last 30 days: status.dora, gauges
    incidents        the Incident lifecycle, escalation, reassignment, major incidents
    incident_refs    a service's lastIncident; a change's rollouts on the Incident it answers
    paging           targets made people, pages sent on a service's channels
    sync             the outbox: steps owed to PagerDuty and ServiceNow, delivered and recorded
    servicenow       the ServiceNow systems of the outbox, and the read-back of its tickets
    schedule         the one scheduler of periodic work (expiry, retention)
    intake           the Alertmanager receiver (HTTPS): alerts into Incidents
    pagerduty_inbound  PagerDuty webhooks (v3) on the intake's server: acts made there
    servicenow_inbound  the ServiceNow instance's callback on it: one ticket read back now
"""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from changegate.adapters.kube import KubeAdapter, api_client
from changegate.adapters.notify.secrets import BriefCache, SecretReader
from changegate.handlers.controller import changerequests, changetemplates, intake, rollouts
from changegate.handlers.controller.incidents import IncidentWork, jobs
from changegate.handlers.controller.indexes import Indexes
from changegate.handlers.controller.pagerduty_inbound import PagerDutyInbound
from changegate.handlers.controller.paging import Pager
from changegate.handlers.controller.registry import registry
from changegate.handlers.controller.schedule import JOBS, Wakeup, run_scheduler
from changegate.handlers.controller.servicenow import read_back_jobs, start_servicenow
from changegate.handlers.controller.servicenow_inbound import ServiceNowCallback
from changegate.handlers.controller.state import ControllerState, log
from changegate.handlers.controller.sync import SyncRunner, start_sync
from changegate.metrics import serve_probes_and_metrics
from changegate.settings import Settings

__all__ = ["changerequests", "changetemplates", "registry", "rollouts"]


@kopf.on.startup(registry=registry)
async def start_controller(memo: kopf.Memo, **kwargs: Any) -> None:
    """Probes and metrics, and the scheduler over the (live, still filling) indexes."""
    settings: Settings = memo.settings
    state = ControllerState(
        settings, KubeAdapter(await asyncio.to_thread(api_client), settings.instance)
    )
    memo.state = state
    state.runner = await serve_probes_and_metrics(
        settings.health_address, settings.metrics_port, lambda: True
    )
    secrets = BriefCache(SecretReader(state.kube.core.api_client))  # one read per burst
    pager = Pager(state.kube, secrets, state.clock)
    pager.bind()
    memo.sync = start_sync(state, Indexes.of(kwargs), pager.kick)
    read_back = start_servicenow(memo.sync, state, Indexes.of(kwargs), pager.kick_threadsafe)
    wakeup = Wakeup()
    memo.incidents = IncidentWork(state, Indexes.of(kwargs), pager, wakeup)
    every = (*JOBS, *jobs(memo.incidents), *read_back_jobs(read_back))
    scheduler = run_scheduler(state, Indexes.of(kwargs), every, wakeup)
    state.tasks.append(asyncio.create_task(scheduler))
    inbound = PagerDutyInbound.of(state, Indexes.of(kwargs))
    routes = [*inbound.routes(), *ServiceNowCallback.of(state, read_back.read_one).routes()]
    intake_task = await intake.serve(state, Indexes.of(kwargs), routes, memo.incidents.kick_opened)
    if intake_task is not None:
        state.tasks.append(intake_task)
    log.info("changegate controller started")


@kopf.on.cleanup(registry=registry)
async def stop_controller(memo: kopf.Memo, **_: Any) -> None:
    state: ControllerState | None = getattr(memo, "state", None)
    if state is None:
        return
    for task in state.tasks:
        task.cancel()
    work: IncidentWork | None = getattr(memo, "incidents", None)
    if work is not None:
        await work.pager.close()
    sync: SyncRunner | None = getattr(memo, "sync", None)
    if sync is not None:
        await sync.close()
    if state.runner is not None:
        await state.runner.cleanup()

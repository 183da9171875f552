"""Paging channels behind the core's Notifier port: Kubernetes Events, a generic webhook, Slack.

`channels` picks a service's channels and sends one page on all of them;
`delivery` is the retrying HTTP POST they share; `secrets` reads the Secret
keys they need. PagerDuty and ServiceNow join as further notifiers.
"""

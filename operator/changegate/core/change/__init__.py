"""The change half of the core: admission, governance, lifecycle, rollouts and evidence.

Pure decisions about ChangeRequests, ChangeTemplates and the rollouts they
cover. Nothing here imports the incident or on-call halves.
"""

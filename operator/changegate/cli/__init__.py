"""`changegate`, the command line of people and pipelines; also `kubectl changegate`.

Raises, approves, rejects, cancels, shows and lists ChangeRequests as the
caller's kubeconfig identity, and follows a change with --wait; declares and
acts on Incidents; says who is on call. It sits at the top of the layers,
beside `__main__`: it uses the API models, and the pure on-call core only to
work out who is on call at any instant (`changegate oncall`).
"""

from changegate.cli.commands import main

__all__ = ["main"]

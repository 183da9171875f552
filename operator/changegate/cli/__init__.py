"""`changegate`, the command line of people and pipelines; also `kubectl changegate`.

Raises, approves, rejects, cancels, shows and lists ChangeRequests as the
caller's kubeconfig identity, and follows a change with --wait. It sits at the
top of the layers, beside `__main__`: it uses the API models, never the core.
"""

from changegate.cli.commands import main

__all__ = ["main"]

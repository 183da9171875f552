"""Entry point: `python -m changegate controller|webhook`.

Reads the settings once, picks the role's Kopf registry and runs Kopf with
them, standalone: the webhook because it only reads, the
controller because the chart runs exactly one replica of it.
"""

from __future__ import annotations

import argparse
import logging
import sys

import kopf

from changegate.handlers import operator_settings, registry_for
from changegate.settings import Role, Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="changegate", description=__doc__)
    parser.add_argument("role", type=Role, choices=list(Role), help="which process to run")
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s [%(name)s] %(message)s",
    )
    # Kopf reports every handler run at INFO; keep those for --verbose.
    logging.getLogger("kopf.objects").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    settings = Settings.from_env(args.role)
    kopf.run(
        registry=registry_for(settings.role),
        settings=operator_settings(settings),
        memo=kopf.Memo(settings=settings),
        clusterwide=True,
        # The webhook only reads; the controller runs as one replica (Recreate in the chart).
        standalone=True,
        liveness_endpoint=f"http://{settings.health_address}:{settings.health_port}/healthz",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

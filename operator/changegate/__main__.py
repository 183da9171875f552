"""Entry point: `python -m changegate controller|webhook`.

Reads the settings once, picks the role's Kopf registry and runs Kopf with
them: the webhook role standalone (it only reads), the controller with peering
so that only one replica writes at a time.
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
    settings = Settings.from_env(args.role)
    standalone = settings.role is Role.WEBHOOK
    kopf.run(
        registry=registry_for(settings.role),
        settings=operator_settings(settings),
        memo=kopf.Memo(settings=settings),
        clusterwide=True,
        standalone=standalone,
        peering_name=None if standalone else settings.peering_name,
        liveness_endpoint=f"http://{settings.health_address}:{settings.health_port}/healthz",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

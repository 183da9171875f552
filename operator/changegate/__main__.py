"""Entry point: `python -m changegate controller|webhook`.

Reads the settings once and runs the role: the controller through Kopf,
standalone because the chart runs exactly one replica of it; the webhook as its
own aiohttp admission server (handlers.webhook), which needs no Kopf at all.
"""

from __future__ import annotations

import argparse
import logging
import sys

from changegate.settings import Role, Settings


def run_controller(settings: Settings, verbose: bool) -> None:
    import kopf

    from changegate.handlers import controller_registry, operator_settings

    # Kopf reports every handler run at INFO; keep those for --verbose.
    logging.getLogger("kopf.objects").setLevel(logging.DEBUG if verbose else logging.WARNING)
    kopf.run(
        registry=controller_registry(),
        settings=operator_settings(settings),
        memo=kopf.Memo(settings=settings),
        clusterwide=True,
        # The controller runs as one replica (Recreate in the chart).
        standalone=True,
        liveness_endpoint=f"http://{settings.health_address}:{settings.health_port}/healthz",
    )


def run_webhook(settings: Settings) -> None:
    from changegate.handlers import webhook

    webhook.run(settings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="changegate", description=__doc__)
    parser.add_argument("role", type=Role, choices=list(Role), help="which process to run")
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s [%(name)s] %(message)s",
    )
    logging.getLogger("aiohttp.access").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    settings = Settings.from_env(args.role)
    if settings.role is Role.CONTROLLER:
        run_controller(settings, args.verbose)
    else:
        run_webhook(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m tools.payfip_simulator`: run the simulator with settings from `PAYFIP_SIM_*` variables."""

from __future__ import annotations

import structlog
from aiohttp import web

from .app import create_app
from .logging_setup import StructlogAccessLogger, configure_logging
from .settings import SimulatorSettings


def main() -> None:
    settings = SimulatorSettings()
    configure_logging(settings.log_level)
    structlog.get_logger("payfip_simulator").info(
        "simulator_starting",
        host=settings.host,
        port=settings.port,
        public_url=settings.public_url,
        clients=sorted(settings.clients),
    )
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        access_log_class=StructlogAccessLogger,
        print=None,
    )


if __name__ == "__main__":
    main()

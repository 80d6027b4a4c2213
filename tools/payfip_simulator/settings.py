"""Settings of the PayFiP simulator, read from `PAYFIP_SIM_*` environment variables."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# One libellé line per entry: `recupererDetailClient` answers up to three lines (libelleN1..N3).
ClientLibelles = list[str]

_NUMCLI_PATTERN = re.compile(r"^[0-9]{6}$")
_PURGE_TIME_PATTERN = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


def default_clients() -> dict[str, ClientLibelles]:
    """Client numbers known to the simulator unless `PAYFIP_SIM_CLIENTS` says otherwise."""
    return {
        "001964": ["MAIRIE DE DEMONSTRATION", "REGIE DES FACTURES", "PORTAIL DES FACTURES"],
        "010203": ["MAIRIE DE TESTVILLE", "REGIE PERISCOLAIRE", "CANTINE ET GARDERIE"],
    }


class SimulatorSettings(BaseSettings):
    """Everything the simulator can be told at start-up.

    Lists and mappings are given as JSON in the environment, e.g.
    `PAYFIP_SIM_CLIENTS='{"001964": ["MAIRIE DE DEMONSTRATION"], "123456": "REGIE X"}'`.
    """

    model_config = SettingsConfigDict(env_prefix="PAYFIP_SIM_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8010, ge=0, le=65535)
    # Base of every absolute link the simulator shows (payment page form, control API answers):
    # set it when the simulator sits behind a proxy or in a container. Left empty, it is built from
    # host and port (http://127.0.0.1:8010 with the defaults), so changing only the port keeps links right.
    public_url: str = ""
    # numcli -> libellé lines; a plain string is accepted as a one-line libellé.
    clients: dict[str, ClientLibelles] = Field(default_factory=default_clients)

    # The real service lets an idOp reach its payment page within 15 minutes of its creation.
    payment_window_seconds: int = Field(default=900, gt=0)

    # Notifications (server-to-server call to urlnotif after a result).
    notification_timeout_seconds: float = Field(default=10.0, gt=0)
    notification_field: Literal["idop", "idOp"] = "idop"
    notification_in_query: bool = False

    # How long the "timeout" injected fault waits before answering: longer than a client's ~15 s timeout.
    fault_timeout_seconds: float = Field(default=20.0, ge=0)

    # Optional automatic night purge at this Europe/Paris time of the simulator's clock ("HH:MM");
    # without it the purge only runs through `POST /_control/purge`.
    night_purge_time: str | None = None
    # How often (real seconds) the automatic purge looks at the simulator's clock.
    night_purge_check_seconds: float = Field(default=60.0, gt=0)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("clients", mode="before")
    @classmethod
    def _accept_single_line_libelles(cls, value: object) -> object:
        if isinstance(value, dict):
            return {
                numcli: [libelle] if isinstance(libelle, str) else libelle
                for numcli, libelle in value.items()
            }
        return value

    @field_validator("clients")
    @classmethod
    def _check_clients(cls, value: dict[str, ClientLibelles]) -> dict[str, ClientLibelles]:
        for numcli, libelles in value.items():
            if not _NUMCLI_PATTERN.fullmatch(numcli):
                raise ValueError(f"client number {numcli!r} must be 6 digits (leading zeros kept)")
            if not 1 <= len(libelles) <= 3:
                raise ValueError(f"client {numcli} needs 1 to 3 libellé lines")
        return value

    @field_validator("public_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _default_public_url(self) -> SimulatorSettings:
        if not self.public_url:
            # A wildcard bind address is not somewhere a browser can go.
            host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104
            if ":" in host:
                host = f"[{host}]"
            self.public_url = f"http://{host}:{self.port}"
        return self

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("night_purge_time")
    @classmethod
    def _check_purge_time(cls, value: str | None) -> str | None:
        if value is not None and not _PURGE_TIME_PATTERN.fullmatch(value):
            raise ValueError("night_purge_time must be HH:MM (Europe/Paris)")
        return value

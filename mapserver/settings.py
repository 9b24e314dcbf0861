"""Every setting of the service, read once from the environment (prefix ``MAPSERVER_``).

``DATABASE_URL`` is also accepted without the prefix, as hosting platforms set it.
With no database URL the service runs its own private PostgreSQL cluster under
``state_dir`` (see :mod:`mapserver.cluster`).
"""

from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_DIR = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MAPSERVER_", env_file=".env", extra="ignore")

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "MAPSERVER_DATABASE_URL"),
        description="PostgreSQL URL (postgresql://user:pass@host:port/db). Unset: private cluster.",
    )
    host: str = Field("127.0.0.1", description="Address the web server listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port the web server listens on.")
    public_url: str | None = Field(
        None, description="External base URL (behind a proxy). Default: http://host:port."
    )
    council: str = Field("stockport", description="Council profile: a folder in layers/.")
    catalogue_dir: Path | None = Field(
        None, description="Layer catalogue folder. Default: layers/<council>."
    )
    state_dir: Path = Field(
        PROJECT_DIR / "var", description="Runtime state: private cluster, generated files."
    )
    pygeoapi_config: Path = Field(
        PROJECT_DIR / "config" / "pygeoapi.yml", description="Generated pygeoapi configuration."
    )
    load_samples: bool = Field(
        True, description="Load the catalogue's sample layers into an empty database at start."
    )

    basemap_url: str | None = Field(
        None,
        description="XYZ tile URL template of a base map (OS Maps API, OpenStreetMap…). "
        "Unset or unreachable: a base map drawn from our own layers.",
    )
    basemap_attribution: str = Field("", description="Attribution of that base map.")
    basemap_max_zoom: int = Field(19, ge=1, le=22, description="Deepest zoom of its tiles.")
    rate_limit_ip: int = Field(1200, ge=1, description="Requests a minute from one address.")
    rate_limit_key: int = Field(6000, ge=1, description="Requests a minute with one API key.")
    download_max_mb: int = Field(2048, ge=1, description="Largest source a load downloads.")
    download_timeout_s: float = Field(60, gt=0, description="Time limit of a source download.")

    # Private cluster (only used when no database URL is set).
    pg_port: int = Field(54329, ge=1, le=65535, description="Port of the private cluster.")
    pg_bin_dir: Path | None = Field(
        None, description="PostgreSQL binaries (initdb, pg_ctl). Default: newest found."
    )
    pg_database: str = Field("mapserver", description="Database name in the private cluster.")
    pg_fast: bool = Field(
        False, description="Private cluster without fsync: for throwaway test clusters only."
    )

    # Connection pool: one per process, long-lived (PostGIS pays PROJ set-up per connection).
    pool_size: int = Field(5, ge=1, description="Pooled connections per process.")
    max_overflow: int = Field(10, ge=0, description="Extra connections under load.")
    pool_recycle: int = Field(1800, ge=-1, description="Seconds before a connection is renewed.")

    # Observing and hardening: logs, metrics, backups.
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Least severity written to the log."
    )
    log_format: Literal["json", "text"] = Field(
        "json", description="json: one JSON object a line (for log shippers); text: for people."
    )
    metrics_networks: Annotated[list[IPv4Network | IPv6Network], NoDecode] = Field(
        default_factory=lambda: [ip_network("127.0.0.0/8"), ip_network("::1/128")],
        description="Networks that may read /metrics without signing in, comma-separated CIDRs.",
    )
    photos_dir: Path | None = Field(
        None, description="Local photo store. Default: <state_dir>/photos."
    )

    @field_validator("metrics_networks", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        if isinstance(value, str):
            return [ip_network(part.strip()) for part in value.split(",") if part.strip()]
        return value

    @property
    def catalogue_path(self) -> Path:
        return self.catalogue_dir or PROJECT_DIR / "layers" / self.council

    @property
    def photos_path(self) -> Path:
        return self.photos_dir or self.state_dir / "photos"

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


@lru_cache
def get_settings() -> Settings:
    return Settings()

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
    pool_size: int = Field(
        10, ge=1, description="Pooled connections per process (at least the concurrent requests)."
    )
    max_overflow: int = Field(10, ge=0, description="Extra connections under load.")
    pool_recycle: int = Field(1800, ge=-1, description="Seconds before a connection is renewed.")

    # Vector tiles.
    tile_cache_mb: int = Field(
        128, ge=0, description="Memory for rendered vector tiles, per process (0: no cache)."
    )

    # Fault reports (reports/): photos, and limits on what one resident can send.
    photos_dir: Path | None = Field(
        None, description="Folder of residents' photos. Default: <state_dir>/photos."
    )
    photos_s3_bucket: str | None = Field(
        None, description="S3-compatible bucket for photos instead of photos_dir (boto3)."
    )
    photos_s3_endpoint: str | None = Field(
        None, description="Endpoint URL of the S3-compatible service (MinIO…). Unset: AWS."
    )
    photos_s3_prefix: str = Field("photos", description="Key prefix of photos in the bucket.")
    report_rate_limit: int = Field(
        20, ge=1, description="Reports and updates an hour from one address or one device."
    )

    # Outgoing email (reports' confirmations and news), sent from the outbox by the worker.
    smtp_host: str | None = Field(
        None, description="SMTP server. Unset: emails wait in the outbox."
    )
    smtp_port: int = Field(587, ge=1, le=65535, description="SMTP port.")
    smtp_user: str | None = Field(None, description="SMTP user name, when the server needs one.")
    smtp_password: str | None = Field(None, description="SMTP password.")
    smtp_from: str = Field("noreply@localhost", description="From address of the emails.")
    smtp_starttls: bool = Field(True, description="Upgrade the SMTP connection with STARTTLS.")

    # Defibrillator siting (analysis/siting.py).
    siting_time_limit_s: float = Field(
        60, gt=0, le=3600, description="Solver time limit: then the best sites found and the gap."
    )

    # Analyses (analysis/): how long jobs and their results are kept.
    jobs_retention_days: int = Field(
        30, ge=1, description="Days an analysis job and its results are kept."
    )
    # Scaling out: read replicas, shared rate-limit counters, the proxy in front.
    database_replica_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias=AliasChoices("DATABASE_REPLICA_URLS", "MAPSERVER_DATABASE_REPLICA_URLS"),
        description="Streaming replicas that serve reads, comma-separated URLs.",
    )
    replica_max_lag_s: float = Field(
        5, gt=0, description="A replica further behind the primary than this is skipped."
    )
    replica_check_s: float = Field(1, gt=0, description="How often each replica is checked.")
    redis_url: str | None = Field(
        None, description="Redis URL for rate-limit counters. Unset: PostgreSQL keeps them."
    )
    forwarded_allow_ips: str = Field(
        "127.0.0.1",
        description="Proxies whose X-Forwarded-For/-Proto are trusted (comma-separated, or *).",
    )
    worker_tick_s: float = Field(5, gt=0, description="How often the worker looks for due tasks.")

    @field_validator("database_replica_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        if isinstance(value, str):
            return [url.strip() for url in value.replace("\n", ",").split(",") if url.strip()]
        return value

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

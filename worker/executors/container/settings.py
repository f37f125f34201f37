"""The provider's own limits and defaults for container jobs (`DCM_CONTAINER_*`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ContainerSettings(BaseSettings):
    """What a provider applies when a job does not say, and what it refuses."""

    model_config = SettingsConfigDict(env_prefix="DCM_CONTAINER_", extra="ignore")

    default_cpu_millicores: int = Field(
        default=1000, gt=0, description="CPU for a job that asks none."
    )
    default_memory_bytes: int = Field(default=512 * 2**20, gt=0, description="Memory if not asked.")
    default_storage_bytes: int = Field(
        default=2**30, gt=0, description="Writable area if not asked."
    )
    default_duration_seconds: int = Field(default=3600, gt=0, description="Run time if not asked.")
    max_image_bytes: int = Field(
        default=10 * 2**30, gt=0, description="Largest image pulled or loaded."
    )
    stop_grace_seconds: float = Field(
        default=10.0, ge=0, description="Between SIGTERM and SIGKILL when a container is stopped."
    )
    pids_limit: int = Field(default=1024, gt=0, description="Processes one container may run.")
    publish_ip: str = Field(
        default="127.0.0.1",
        description="Host address exposed ports are published on (0.0.0.0 to serve the world).",
    )
    public_host: str | None = Field(
        default=None, description="Host name reported in endpoints (default: `publish_ip`)."
    )
    user: str = Field(default="65534:65534", description="User of images that name none (nobody).")
    poll_seconds: float = Field(
        default=0.05, gt=0, description="How often a run checks its container."
    )

    @property
    def endpoint_host(self) -> str:
        if self.public_host:
            return self.public_host
        return "127.0.0.1" if self.publish_ip in ("0.0.0.0", "::", "") else self.publish_ip

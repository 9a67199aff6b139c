"""The ``record`` section of a stack config (pydantic only, so configs load without the log libraries)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RecordConfig(BaseModel):
    """Whether and how ``avsim run`` writes the run log ``run.mcap`` (see :mod:`av_stack.logs.topics`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    sensors_every: int = Field(4, ge=1, description="write sensor data on every n-th frame of a route (1: all)")
    jpeg_quality: int = Field(90, ge=1, le=100, description="JPEG quality of RGB camera images")
    compression: str = Field("zstd", pattern="^(zstd|lz4|none)$", description="MCAP chunk compression")

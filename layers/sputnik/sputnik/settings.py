"""Settings read from the environment that template.yaml sets for every function."""

import os
from dataclasses import dataclass, fields
from functools import lru_cache

PREFIX = "SPUTNIK_"
# Where Sentinel-2 L2A scenes lie in an archive bucket (Earth Search's layout, which sputnik's own
# archive keeps too); IAM grants the external archive only this prefix.
ARCHIVE_PREFIX = "sentinel-s2-l2a-cogs"


@dataclass(frozen=True)
class Settings:
    """Names of the resources a function uses, as template.yaml's Globals set them.

    Each is read from `SPUTNIK_<NAME>` (e.g. SPUTNIK_USERS_TABLE). The defaults are the names the
    local stack gives the template's resources, so the CLI works against `make run` with nothing
    set; on AWS, Lambda's environment (or `sputnik --stack`) sets them. A plain dataclass, not
    pydantic-settings: every field is a string, and its import was a tenth of a cold start.
    """

    users_table: str = "sputnik-UsersTable"
    counters_table: str = "sputnik-CountersTable"
    projects_table: str = "sputnik-ProjectsTable"
    project_tiles_table: str = "sputnik-ProjectTilesTable"
    scenes_table: str = "sputnik-ScenesTable"
    meta_table: str = "sputnik-MetaTable"
    products_table: str = "sputnik-ProductsTable"
    archive_bucket: str = "sputnik-archive-123456789012-us-east-1"
    # A public archive in another account whose new items are ingested too (template: ExternalArchiveBucket).
    external_archive_bucket: str = "sentinel-cogs"
    products_bucket: str = "sputnik-productsbucket"
    ingest_function: str = "sputnik-IngestFunction"
    procs_table: str = "sputnik-ProcsTable"
    task_bucket: str = "sputnik-taskbucket"
    s2_load_meta_machine: str = "arn:aws:states:us-east-1:123456789012:stateMachine:sputnik-s2_load_meta"
    s2_load_data_machine: str = "arn:aws:states:us-east-1:123456789012:stateMachine:sputnik-s2_load_data"
    region: str = "us-east-1"
    # Per-user quotas (template parameters MaxRunningProcs, MaxRunsPerDay, MaxProjects), as text.
    max_running_procs: str = "3"
    max_runs_per_day: str = "50"
    max_projects: str = "100"

    @classmethod
    def from_environment(cls) -> "Settings":
        """Read every setting that the environment sets; the rest keep their defaults."""
        names = {f.name: PREFIX + f.name.upper() for f in fields(cls)}
        return cls(**{field: os.environ[name] for field, name in names.items() if name in os.environ})

    @property
    def archive_buckets(self) -> frozenset[str]:
        """Buckets scenes are read from: the stack's own archive and the external one it follows."""
        return frozenset(b for b in (self.archive_bucket, self.external_archive_bucket) if b)


@lru_cache
def get_settings() -> Settings:
    """Return the process-wide settings (read once: Lambda environments do not change)."""
    return Settings.from_environment()

"""Settings read from the environment that template.yaml gives each function."""

import os
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, dataclass, fields
from functools import lru_cache

PREFIX = "SPUTNIK_"
# Where Sentinel-2 L2A scenes lie in an archive bucket (Earth Search's layout, which sputnik's own
# archive keeps too); IAM grants the external archive only this prefix.
ARCHIVE_PREFIX = "sentinel-s2-l2a-cogs"


def variable(field: str) -> str:
    """The environment variable of a setting: `users_table` is read from SPUTNIK_USERS_TABLE."""
    return PREFIX + field.upper()


class MissingSettings(RuntimeError):
    """Variables a function needs that its environment lacks: its init fails with their names."""

    def __init__(self, variables: Iterable[str]) -> None:
        self.variables = tuple(variables)
        super().__init__(
            f"missing environment variables {', '.join(self.variables)}: "
            "template.yaml sets them for every function that reads them"
        )


class InvalidSetting(RuntimeError):
    """A variable whose value the library cannot use: the function's init fails naming it."""

    def __init__(self, name: str, expected: str) -> None:
        self.variable = variable(name)
        super().__init__(f"{self.variable} must be {expected}")


@dataclass(frozen=True)
class Settings:
    """Names of the resources a function uses, each read from `SPUTNIK_<NAME>`.

    None has a default, on Lambda or anywhere else: a name that is not the stack's would send a
    function to tables and buckets that do not exist, so a missing variable fails the reading,
    which every function does at init (importing `sputnik.models` binds the tables). The tools
    (`sputnik_tools.local_settings`) give the CLI, tests and benchmarks the local stack's names.
    The stack-wide ones are template.yaml's Globals, which every function has; the last three only
    the functions that use them get, and those functions `require` them at init.
    A plain dataclass, not pydantic-settings: every field is a string, and its import was a tenth
    of a cold start.
    """

    users_table: str
    counters_table: str
    projects_table: str
    project_tiles_table: str
    scenes_table: str
    meta_table: str
    products_table: str
    procs_table: str
    archive_bucket: str
    # A public archive in another account whose new items are ingested too (template:
    # ExternalArchiveBucket); empty when the stack follows none.
    external_archive_bucket: str
    products_bucket: str
    task_bucket: str
    # Per-user quotas (template parameters MaxRunningProcs, MaxRunsPerDay, MaxProjects), as text.
    max_running_procs: str
    max_runs_per_day: str
    max_projects: str
    # ProjectsFunction: the function that backfills a new project.
    ingest_function: str | None = None
    # TasksFunction: each task's state machine (Task.machine_setting names the field).
    s2_load_meta_machine: str | None = None
    s2_load_data_machine: str | None = None
    s2_index_machine: str | None = None
    s2_composite_machine: str | None = None
    # PlanBlocksFunction: bytes a composite's block worker may hold (CompositeBlockFunction's memory).
    composite_block_bytes: str | None = None
    # RgbFunction: seconds a warm function keeps a date's scene list for its mosaic tiles (0: none).
    mosaic_scenes_ttl: str | None = None

    @classmethod
    def stack_wide(cls) -> tuple[str, ...]:
        """The fields every function has (template.yaml's Globals): those without a default."""
        return tuple(f.name for f in fields(cls) if f.default is MISSING)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Read the settings; MissingSettings names every stack-wide variable the environment lacks."""
        environ = os.environ if environ is None else environ
        missing = [variable(name) for name in cls.stack_wide() if variable(name) not in environ]
        if missing:
            raise MissingSettings(missing)
        return cls(**{f.name: environ[variable(f.name)] for f in fields(cls) if variable(f.name) in environ})

    def require(self, *names: str) -> None:
        """Fail, naming every variable, unless this function was given these settings."""
        missing = [variable(name) for name in names if getattr(self, name) is None]
        if missing:
            raise MissingSettings(missing)

    def value(self, name: str) -> str:
        """One setting that only some functions get, which this function must have."""
        self.require(name)
        return str(getattr(self, name))

    @property
    def archive_buckets(self) -> frozenset[str]:
        """Buckets scenes are read from: the stack's own archive and the external one it follows."""
        return frozenset(b for b in (self.archive_bucket, self.external_archive_bucket) if b)


@lru_cache
def get_settings() -> Settings:
    """Return the process-wide settings (read once: Lambda environments do not change)."""
    return Settings.from_environment()

"""Settings read from the environment that template.yaml sets for every function."""

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Names of the resources a function uses, as template.yaml's Globals set them.

    The defaults are the names the local stack gives the template's resources, so the CLI works
    against `make run` with nothing set; on AWS, Lambda's environment (or `sputnik --stack`) sets them.
    """

    model_config = SettingsConfigDict(env_prefix="SPUTNIK_", extra="ignore")

    users_table: str = "sputnik-UsersTable"
    counters_table: str = "sputnik-CountersTable"
    projects_table: str = "sputnik-ProjectsTable"
    project_tiles_table: str = "sputnik-ProjectTilesTable"
    scenes_table: str = "sputnik-ScenesTable"
    meta_table: str = "sputnik-MetaTable"
    products_table: str = "sputnik-ProductsTable"
    archive_bucket: str = "sputnik-archivebucket"
    # A public archive in another account whose new items are ingested too (template: ExternalArchiveBucket).
    external_archive_bucket: str = ""
    products_bucket: str = "sputnik-productsbucket"
    ingest_function: str = "sputnik-IngestFunction"
    procs_table: str = "sputnik-ProcsTable"
    task_bucket: str = "sputnik-taskbucket"
    s2_load_meta_machine: str = "arn:aws:states:us-east-1:123456789012:stateMachine:sputnik-S2LoadMetaMachine"
    s2_load_data_machine: str = "arn:aws:states:us-east-1:123456789012:stateMachine:sputnik-S2LoadDataMachine"
    region: str = "us-east-1"


@lru_cache
def get_settings() -> Settings:
    """Return the process-wide settings (read once: Lambda environments do not change)."""
    return Settings()

"""The /cog URL policy: which s3:// objects a caller may have GDAL open, decided before anything opens."""

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query

from sputnik.errors import Forbidden, NotFound
from sputnik.projects import check_owner
from sputnik.settings import ARCHIVE_PREFIX, get_settings
from sputnik.tiles.gdal import ALLOWED_EXTENSIONS

MAX_URL_LENGTH = 1024
DATASET_NOT_FOUND = "dataset not found"
URL_REFUSED = (
    "url not allowed: /cog reads only s3:// GeoTIFFs (.tif, .tiff) of the scene archive "
    "or of your own projects' products"
)

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# A whitelist, so that percent-encoding, backslashes, control characters, spaces, '?', '#', ':'
# (hence any scheme, http:// included) and leading dots cannot appear in a key at all.
_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,254}")
_PROJECT_ID = re.compile(r"[1-9][0-9]{0,17}")

ProjectLookup = Callable[[str, int], object]


@dataclass(frozen=True)
class S3Object:
    """A bucket and key that passed the syntax checks of the URL policy."""

    bucket: str
    key: str

    @property
    def url(self) -> str:
        """Return the canonical s3:// URL of the object."""
        return f"s3://{self.bucket}/{self.key}"


def parse_s3_url(url: str) -> S3Object:
    """Split an s3:// URL of a GeoTIFF into bucket and key; raise Forbidden for anything else."""
    # The message never echoes the URL: error bodies must not reflect what was asked for.
    if len(url) > MAX_URL_LENGTH or not url.isascii() or not url.startswith("s3://"):
        raise Forbidden(URL_REFUSED)
    bucket, slash, key = url.removeprefix("s3://").partition("/")
    if not slash or not _BUCKET.fullmatch(bucket):
        raise Forbidden(URL_REFUSED)
    segments = key.split("/")
    if any(not _SEGMENT.fullmatch(part) or part in {".", ".."} for part in segments):
        raise Forbidden(URL_REFUSED)
    if not key.endswith(ALLOWED_EXTENSIONS):
        raise Forbidden(URL_REFUSED)
    return S3Object(bucket, key)


def dataset_url(url: str, login: str, owns_project: ProjectLookup) -> str:
    """Return the URL GDAL may open for this caller, or raise Forbidden/NotFound before anything opens."""
    obj = parse_s3_url(url)
    settings = get_settings()
    # Products first: should both buckets be one, the archive rule must not unlock projects/.
    if obj.bucket == settings.products_bucket and obj.key.startswith("projects/"):
        parts = obj.key.split("/")
        if len(parts) < 3 or not _PROJECT_ID.fullmatch(parts[1]):
            raise Forbidden(URL_REFUSED)
        try:
            owns_project(login, int(parts[1]))
        except NotFound as exc:
            # One body for unknown projects, other users' projects and missing objects alike.
            raise NotFound(DATASET_NOT_FOUND) from exc
        return obj.url
    return _archive_object(obj)


def archive_url(url: str) -> str:
    """Return the URL of an archive object GDAL may open, or raise Forbidden (any other bucket or form)."""
    return _archive_object(parse_s3_url(url))


def _archive_object(obj: S3Object) -> str:
    """The URL of an object of the stack's archive or of the external archive's scenes, else Forbidden."""
    settings = get_settings()
    if obj.bucket == settings.archive_bucket:
        return obj.url
    # The external archive (e.g. the public sentinel-cogs) is read only where its scenes lie.
    if obj.bucket in settings.archive_buckets and obj.key.startswith(f"{ARCHIVE_PREFIX}/"):
        return obj.url
    raise Forbidden(URL_REFUSED)


def project_lookup() -> ProjectLookup:
    """Dependency giving the function that raises NotFound unless a project is the caller's."""
    return check_owner


ProjectCheck = Annotated[ProjectLookup, Depends(project_lookup)]


def policy_dependency(caller: Callable[..., object]) -> Callable[..., str]:
    """Build titiler's path dependency: `url` through the URL policy for whoever `caller` authenticates."""

    def policy_dataset_path(
        url: Annotated[str, Query(description="Dataset URL")],
        login: Annotated[str, Depends(caller)],
        owns_project: ProjectCheck,
    ) -> str:
        """Resolve `url` through the URL policy for the authenticated caller."""
        return dataset_url(url, login, owns_project)

    return policy_dataset_path

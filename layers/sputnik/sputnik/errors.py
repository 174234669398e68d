"""Domain errors of sputnik; `sputnik.api.errors` maps each to one HTTP status."""


class SputnikError(Exception):
    """Base of every error sputnik raises on purpose."""


class InvalidInput(SputnikError):
    """The caller sent something sputnik cannot accept (HTTP 400/422)."""


class NotFound(SputnikError):
    """The thing does not exist or is not the caller's (HTTP 404, never 403)."""


class Unauthorized(SputnikError):
    """Credentials are missing, wrong, or the account is locked (HTTP 401)."""


class Forbidden(SputnikError):
    """The request names something sputnik never serves, such as a hostile URL (HTTP 403)."""


class Unavailable(SputnikError):
    """A service sputnik reads from is failing or throttling even after retries (HTTP 503, retry later)."""


# What a 503 says: nothing was half-done, and the same request may succeed a moment later.
BUSY = "busy: try again shortly"


class InvalidItem(SputnikError):
    """An archive object is not a usable Sentinel-2 STAC item."""


class QuotaExceeded(SputnikError):
    """The caller is at one of their limits (HTTP 429 with Retry-After); nothing was written."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after

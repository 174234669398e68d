"""The errors only tiles raise, and the one translation of rio-tiler's errors into sputnik's.

`sputnik.api.common.error_response` then gives each its HTTP status and body, as for every route.
"""

from rio_tiler import errors as rio_errors

from sputnik.errors import InvalidInput, NotFound, SputnikError

# Where FastAPI's validation errors say a parameter came from (`loc[0]`).
PATH, QUERY, BODY = "path", "query", "body"


class InvalidParameter(InvalidInput):
    """A parameter the tiler cannot serve; `loc` names it as FastAPI's own validation errors do."""

    def __init__(self, location: str, name: str, message: str) -> None:
        super().__init__(message)
        self.loc: tuple[str, ...] = (location, name)


class DatasetUnreadable(InvalidParameter):
    """The dataset behind `url` is damaged, truncated or not a raster sputnik can read."""

    def __init__(self, reason: str, name: str = "url", location: str = QUERY) -> None:
        super().__init__(location, name, f"the dataset cannot be read: {reason}")


class ReadTooLarge(InvalidParameter):
    """Answering would read more pixels of the dataset than one request may."""

    def __init__(self, pixels: int, limit: int, name: str = "url", location: str = QUERY) -> None:
        super().__init__(
            location,
            name,
            f"this request would read {pixels:,} pixels of the dataset, over the limit of {limit:,}: "
            "zoom in, ask for a smaller area or size, or use a COG with overviews",
        )


# rio-tiler's errors that mean "no data here" (404, as titiler answers), and the parameter each
# of the others is about (422).
NOT_FOUND = (rio_errors.TileOutsideBounds, rio_errors.PointOutsideBounds)
RIO_TILER_PARAMETER: dict[type[Exception], tuple[str, str]] = {
    rio_errors.InvalidExpression: (QUERY, "expression"),
    rio_errors.InvalidBufferSize: (QUERY, "buffer"),
    rio_errors.InvalidColorFormat: (QUERY, "colormap"),
    rio_errors.InvalidColorMapName: (QUERY, "colormap_name"),
    rio_errors.InvalidFormat: (QUERY, "format"),
    rio_errors.MissingBands: (QUERY, "bidx"),
    rio_errors.InvalidBandName: (QUERY, "bidx"),
    rio_errors.InvalidBounds: (PATH, "bbox"),
    rio_errors.InvalidGeographicBounds: (PATH, "bbox"),
    rio_errors.InvalidPointDataError: (PATH, "lon"),
    rio_errors.MaxArraySizeError: (QUERY, "max_size"),
}


def from_rio_tiler(exc: rio_errors.RioTilerError) -> SputnikError:
    """Turn a rio-tiler error into sputnik's: outside the data is NotFound, else one naming its parameter."""
    # rio-tiler's messages name tiles, points, bands and expressions, never the dataset's path.
    if isinstance(exc, NOT_FOUND):
        return NotFound(str(exc))
    where, name = next(
        (loc for kind, loc in RIO_TILER_PARAMETER.items() if isinstance(exc, kind)), (QUERY, "")
    )
    return InvalidParameter(where, name, str(exc))

"""A project's products as records: listing them, reading one, and an index's time series of statistics.

Every read is one DynamoDB Query (or GetItem) on the products table, keyed by project: an index's
series is the Query `begins_with(product_id, "index:{name}:")`, whose ids sort by date, so it comes
oldest first whatever the number of dates. DynamoDB answers a Query in pages of at most 1 MB;
PynamoDB follows LastEvaluatedKey, so a series of more than about 2,000 scenes costs one Query call
per MB (the only case where a series takes more than one call).
"""

import csv
import io
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pynamodb.exceptions import DoesNotExist

from sputnik import indices
from sputnik.errors import InvalidInput, NotFound
from sputnik.models import ProductModel

RGB, INDEX, COMPOSITE = "rgb", "index", "composite"
KINDS = (RGB, INDEX, COMPOSITE)
STATS = ("valid_pixels", "clear_fraction", "mean", "std", "min", "p10", "median", "p90", "max")
SERIES_COLUMNS = ("date", "scene_id", *STATS)
# Records one series answer may hold: about 10 years of one tile's scenes at every revisit, many
# times over; a CSV row is ~120 bytes, so the answer stays far below Lambda's 6 MB.
MAX_SERIES_ROWS = 20_000
# The index names of product ids: the named ones, and an expression's (`indices.custom_name`, a hash).
INDEX_PATTERN = "^(" + "|".join(indices.INDICES) + f"|{indices.CUSTOM_PREFIX}[0-9a-f]{{10}})$"
PRODUCT_NOT_FOUND = "product not found"

ProjectLookup = Callable[[str, int], object]


class BadIndex(InvalidInput):
    """An index name that is neither a named index nor an expression's `expr-…` name."""

    def __init__(self, name: str) -> None:
        known = ", ".join(indices.INDICES)
        super().__init__(f"unknown index {name[:40]!r}: use one of {known}, or an expression's expr-… name")
        self.loc = ("query", "index")


def index_name(text: str) -> str:
    """The index a caller named, as product ids spell it, or BadIndex."""
    if re.fullmatch(INDEX_PATTERN, text):
        return text
    raise BadIndex(text)


def list_products(
    login: str, project_id: int, owns_project: ProjectLookup, kind: str | None
) -> list[ProductModel]:
    """The caller's project's products (one Query), of one kind if asked; NotFound for another's project."""
    owns_project(login, project_id)
    condition = ProductModel.kind == kind if kind else None
    return list(ProductModel.query(project_id, filter_condition=condition))


def get_product(login: str, project_id: int, product_id: str, owns_project: ProjectLookup) -> ProductModel:
    """One product of the caller's project, or NotFound (the same for another user's project)."""
    owns_project(login, project_id)
    try:
        return ProductModel.get(project_id, product_id)
    except DoesNotExist as exc:
        raise NotFound(PRODUCT_NOT_FOUND) from exc


@dataclass(frozen=True)
class SeriesRow:
    """One scene's statistics of an index: a date of the series (several scenes of a date, several rows)."""

    date: str
    scene_id: str
    product_id: str
    stats: dict[str, float | int | None]

    def clear_fraction(self) -> float:
        """The share of the border's pixels that were clear (0 when unknown)."""
        value = self.stats.get("clear_fraction")
        return float(value) if isinstance(value, int | float) and math.isfinite(value) else 0.0


def _stats(raw: Any) -> dict[str, float | int | None]:
    """A record's statistics, every column present (None where the record has none)."""
    raw = raw if isinstance(raw, dict) else {}
    return {name: raw.get(name) for name in STATS}


def series(
    login: str,
    project_id: int,
    index: str,
    owns_project: ProjectLookup,
    min_clear: float = 0.0,
) -> list[SeriesRow]:
    """Every scene's statistics of one index over the project, oldest first, in one Query.

    Scenes clearer than `min_clear` (a fraction of the border) are kept; the others are left out.
    """
    owns_project(login, project_id)
    records = ProductModel.query(
        project_id,
        range_key_condition=ProductModel.product_id.startswith(f"{INDEX}:{index}:"),
        limit=MAX_SERIES_ROWS + 1,
    )
    rows = [_row(record) for record in records]
    if len(rows) > MAX_SERIES_ROWS:
        raise InvalidInput(
            f"the series has more than {MAX_SERIES_ROWS:,} scenes; that is more than one answer holds"
        )
    return [row for row in rows if row.clear_fraction() >= min_clear]


def _row(record: ProductModel) -> SeriesRow:
    """A series row of an index product's record (date and scene from the record, else from its id)."""
    _, _, date, scene_id = [*record.product_id.split(":", 3), "", "", ""][:4]
    return SeriesRow(
        date=record.date or date,
        scene_id=record.scene_id or scene_id,
        product_id=record.product_id,
        stats=_stats(record.stats),
    )


def series_csv(rows: Iterable[SeriesRow]) -> str:
    """The series as CSV with a header row; an absent statistic is an empty cell."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(SERIES_COLUMNS)
    for row in rows:
        values = [row.stats[name] for name in STATS]
        writer.writerow([row.date, row.scene_id, *("" if v is None else v for v in values)])
    return out.getvalue()

"""IngestFunction: new STAC items in the archive (S3 or SNS-wrapped S3 events), project backfills."""

from typing import Any

from aws_lambda_powertools import Logger

from sputnik.ingest import handler_event

logger = Logger()


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    """Ingest what the event announces."""
    return handler_event(event)

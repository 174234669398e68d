"""IngestFunction: new STAC items in the archive (S3 or SNS-wrapped S3 events), project backfills."""

from sputnik.coldstart import initialised  # first: init runs without the cyclic GC

# isort: split
from sputnik.ingest import handler_event
from sputnik.observability import observe

handler = observe(lambda event, context: handler_event(event))
initialised()

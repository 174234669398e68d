"""IngestFunction: new STAC items of the archive (S3 events, SNS messages), project backfills."""

from sputnik.coldstart import initialised  # first: init runs without the cyclic GC

# isort: split
from sputnik.ingest import handle
from sputnik.observability import observe

handler = observe(handle)
initialised()

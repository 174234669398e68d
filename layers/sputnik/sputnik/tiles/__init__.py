"""Map tiles of COGs from S3: the /cog tiler (titiler.core) and what /rgb shares with it."""

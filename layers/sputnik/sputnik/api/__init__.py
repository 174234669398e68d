"""The HTTP layer: one small FastAPI app per Lambda function, built from these modules."""

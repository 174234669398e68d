"""The HTTP layer: one small FastAPI app per Lambda function, built from these modules."""

# First, before any app module imports FastAPI: see startup.py.
from sputnik.api import startup as startup

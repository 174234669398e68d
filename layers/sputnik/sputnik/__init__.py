"""sputnik: a serverless backend for Sentinel-2 satellite-imagery projects."""

__version__ = "0.1.0"

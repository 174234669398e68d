"""Benchmarks of sputnik (`make bench`): figures are ratios measured side by side in one run."""

from sputnik_tools.local_settings import use_local_settings

# The library has no default names: every benchmark runs against the local stack's.
use_local_settings()

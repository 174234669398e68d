"""What several test modules share: the stack's users and projects, tiles, OpenAPI, faults, tasks, logs.

Test modules import from here and never from one another (tests/test_harness.py checks it).
"""

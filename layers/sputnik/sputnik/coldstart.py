"""A function's init without the cyclic garbage collector, and what init built kept out of its sight.

Each functions/*/app.py imports this module first and calls `initialised()` last. Init allocates a
few hundred thousand objects that live as long as the process (modules, classes, routes) and
almost no cyclic garbage (about 500 objects for MetaFunction, 2,400 for CogFunction); with the
collector on, Python walks them in some 150 collections during init, an eighth of a cold start
(BENCHMARKS.md, Build). So on Lambda the collector is off from here, and at the end `gc.freeze()`
moves everything init built to the permanent generation: later collections, during requests, skip
it too. The price is that init's few hundred garbage cycles are never freed.
"""

import gc
import os

# Only in a Lambda sandbox (its runtime sets AWS_LAMBDA_RUNTIME_API): a process that loads handlers
# among other work, such as the local stack or a test run, keeps its collector as it is.
IN_LAMBDA = "AWS_LAMBDA_RUNTIME_API" in os.environ
if IN_LAMBDA:
    gc.disable()


def initialised() -> None:
    """End of a function's init: freeze what it built and turn the collector back on."""
    if IN_LAMBDA:
        gc.freeze()
        gc.enable()

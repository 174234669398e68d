"""`make bench`: every benchmark, one after the other, each comparing side by side in one run."""

import logging
import sys

from bench import ingest_bench, load_bench, product_bench, tasks_bench


def main() -> int:
    """Run the benchmarks named on the command line (default: all)."""
    logging.disable(logging.INFO)
    wanted = set(sys.argv[1:]) or {"ingest", "tiles", "tasks", "load", "product", "build"}
    if "ingest" in wanted:
        ingest_bench.main()
    if "tiles" in wanted:
        try:
            from bench import tiles_bench
        except ImportError:
            print("tiles benchmark not available")
        else:
            tiles_bench.main()
    if "tasks" in wanted:
        tasks_bench.main()
    if "load" in wanted:
        load_bench.main()
    if "product" in wanted:
        product_bench.main()
    if "build" in wanted:
        from bench import build_bench

        build_bench.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())

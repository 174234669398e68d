"""`make bench`: every benchmark, one after the other, each comparing side by side in one run."""

import logging
import subprocess
import sys

BENCHMARKS = ("ingest", "tiles", "tasks", "load", "product", "index", "composite", "build")


def run(name: str) -> None:
    """Run one benchmark in this process."""
    if name == "tiles":
        try:
            from bench import tiles_bench
        except ImportError:
            print("tiles benchmark not available")
            return
        tiles_bench.main()
        return
    from importlib import import_module

    import_module(f"bench.{name}_bench").main()


def main() -> int:
    """Run the benchmarks named on the command line (default: all), each in a process of its own."""
    wanted = [name for name in BENCHMARKS if name in (set(sys.argv[1:]) or BENCHMARKS)]
    if unknown := set(sys.argv[1:]) - set(BENCHMARKS):
        print(f"unknown benchmark(s) {', '.join(sorted(unknown))}; choose from {', '.join(BENCHMARKS)}")
        return 2
    if len(wanted) == 1:
        logging.disable(logging.INFO)
        run(wanted[0])
        return 0
    # One process each: memory figures (the load benchmark's resident set) and caches start from
    # nothing, not from what the benchmarks before left in the process.
    failed = [name for name in wanted if subprocess.run([sys.executable, "-m", "bench", name]).returncode]
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

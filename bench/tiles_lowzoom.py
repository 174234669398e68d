"""Low-zoom tiles over the demo scene: sputnik's reader against stock rio-tiler, time and extra peak memory.

Each (reader, zoom) runs in a fresh Python process that imports everything and opens the scene
first, so the figures are the tile's own: its wall time and how far it raised the process's
peak resident memory; then the same tile again with a new reader, as a warm function's next
request would read it. Stock rio-tiler takes ~50 s at z0, so a stock run is stopped at
STOCK_TIMEOUT and reported as such. Both read the real demo TCI (1098 px, UTM 29N, overviews
2 and 4) from the local disk, so no network or S3 emulation is in the figures.
"""

import json
import resource
import subprocess
import sys
import time

import morecantile

from bench.common import FIXTURES, row

SCENE = "sentinel-cogs/sentinel-s2-l2a-cogs/29/R/KH/2020/2/S2A_29RKH_20200219_0_L2A"
TCI = FIXTURES / SCENE / "TCI.tif"
LON, LAT = -11.4, 24.8  # inside the scene
ZOOMS = range(0, 11)
STOCK_TIMEOUT = 15.0
TARGETS = ("sputnik", "rio-tiler")


def worker(target: str, z: int) -> None:
    """Read one tile with one reader and print its seconds and extra peak MB as JSON (in a child)."""
    from rio_tiler.io import Reader

    from sputnik.tiles.reader import TileReader

    tile = morecantile.tms.get("WebMercatorQuad").tile(LON, LAT, z)
    reader = TileReader if target == "sputnik" else Reader
    with reader(str(TCI)) as src:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        src.tile(tile.x, tile.y, z)
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Again with a new reader, as the next request of a warm function would (the same tile).
    with reader(str(TCI)) as src:
        started = time.perf_counter()
        src.tile(tile.x, tile.y, z)
        warm = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "warm": warm, "extra_mb": (after - before) / 1024}))


def measure(target: str, z: int) -> dict[str, float] | None:
    """Run one tile in a fresh process; None if it did not finish in time."""
    command = [sys.executable, "-m", "bench.tiles_lowzoom", target, str(z)]
    timeout = STOCK_TIMEOUT if target == "rio-tiler" else 120
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=True)
    except subprocess.TimeoutExpired:
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> dict[str, float]:
    """Measure every zoom with both readers and print the table."""
    figures: dict[str, float] = {}
    print(f"\ntiles, low zooms: one 256 px WebMercatorQuad tile at ({LON}, {LAT}), demo TCI from disk")
    print(f"  each in a fresh process; stock rio-tiler stopped after {STOCK_TIMEOUT:.0f} s (both reads)")
    print("  s: first tile in the process; warm: the same tile again; +MB: rise of the peak RSS")
    header = ("sputnik s", "warm s", "+MB", "rio-tiler s", "warm s", "+MB", "warm ratio")
    print(row("zoom", *header))
    for z in ZOOMS:
        ours = measure("sputnik", z)
        assert ours is not None
        stock = measure("rio-tiler", z)
        cells = [f"{ours['seconds']:.3f}", f"{ours['warm']:.3f}", f"{ours['extra_mb']:.0f}"]
        if stock is None:
            cells += [f"> {STOCK_TIMEOUT:.0f}", "(stopped)", "", ""]
        else:
            ratio = ours["warm"] / stock["warm"]
            cells += [
                f"{stock['seconds']:.3f}",
                f"{stock['warm']:.3f}",
                f"{stock['extra_mb']:.0f}",
                f"{ratio:.2f}",
            ]
            figures[f"lowzoom_z{z}_stock_s"] = stock["seconds"]
            figures[f"lowzoom_z{z}_stock_mb"] = stock["extra_mb"]
        print(row(f"  z{z}", *cells))
        figures[f"lowzoom_z{z}_s"] = ours["seconds"]
        figures[f"lowzoom_z{z}_warm_s"] = ours["warm"]
        figures[f"lowzoom_z{z}_mb"] = ours["extra_mb"]
    worst_s = max(v for k, v in figures.items() if k.endswith("_s") and "stock" not in k and "warm" not in k)
    worst_mb = max(v for k, v in figures.items() if k.endswith("_mb") and "stock" not in k)
    print(row("  worst sputnik tile, z0-z10", f"{worst_s:.3f} s", f"{worst_mb:.0f} MB"))
    return figures


if __name__ == "__main__":
    if len(sys.argv) == 3:
        worker(sys.argv[1], int(sys.argv[2]))
    else:
        main()

"""Make an installed layer lean and fast to start: `python3.12 slim.py LAYER_PYTHON_DIR [--patchelf PATH]`.

Run by the layers' Makefile on what pip installed, with the runtime's Python (bytecode is per version).
"""

from __future__ import annotations

import argparse
import compileall
import os
import py_compile
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

# Never loaded at run time: tests, build inputs (Cython, C headers, static libraries) and type stubs.
JUNK_DIRS = {"tests", "__pycache__"}
JUNK_SUFFIXES = {".pyi", ".pyx", ".pxd", ".pxi", ".c", ".h", ".hpp", ".cpp", ".a"}
# Parts of packages that no function imports (the smoke run of `make build` imports every handler).
UNUSED = [
    "numpy/f2py",  # Fortran wrapper generator: a build tool
    "numpy/_pyinstaller",
    "numpy/doc",
    "numpy/_core/_simd.*",  # numpy's SIMD test module
    "numpy/_core/_*_tests.*",
    "aws_lambda_powertools/event_handler",  # Powertools' own HTTP router: FastAPI routes here
    "cffi",  # cffi's build-time parser: argon2's bindings are compiled (_cffi_backend stays)
    "pycparser",
    "*.dist-info/RECORD",
    "*.dist-info/sboms",
]
# Stripping numpy's OpenBLAS breaks it (it is already stripped, and patchelf-edited).
NO_STRIP = {"numpy.libs"}
# The library keeps its sources so that tracebacks show code; everything else ships bytecode only.
KEEP_SOURCES = {"sputnik"}
# Scientific libraries made to run under `python -OO`, whose docstrings (40 % of their bytecode) never
# reach a user: compiled without them. The others keep theirs (FastAPI and pydantic publish them).
NO_DOCSTRINGS = {"numpy", "shapely", "pyproj"}
# auditwheel names a bundled library `libname-<8 hex digits>.so...`.
BUNDLED = re.compile(r"^(lib.+?)-[0-9a-f]{8}\.so")


def main() -> int:
    """Slim one layer's python directory in place and print what it weighs."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", type=Path)
    parser.add_argument("--patchelf", help="patchelf binary: merge native libraries bundled twice")
    parser.add_argument("--drop", nargs="*", default=[], help="more unused parts (globs under root)")
    args = parser.parse_args()
    if sys.version_info[:2] != (3, 12):
        sys.exit("slim.py must run on the runtime's Python, 3.12: bytecode is specific to a version")
    root: Path = args.root
    before = size(root)
    drop_junk(root, [*UNUSED, *args.drop])
    strip_native(root)
    if args.patchelf:
        merge_bundled(root, args.patchelf)
        share_proj_data(root, args.patchelf)
    compile_bytecode(root)
    print(f"{root}: {before / 1e6:.1f} MB -> {size(root) / 1e6:.1f} MB")
    return 0


def size(root: Path) -> int:
    """Bytes of every file under root."""
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def drop_junk(root: Path, unused: list[str]) -> None:
    """Remove tests, caches, build inputs, stubs, the scripts directory and the unused parts."""
    shutil.rmtree(root / "bin", ignore_errors=True)
    for pattern in unused:
        for path in root.glob(pattern):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
    for path in sorted(root.rglob("*"), reverse=True):
        if path.is_dir() and path.name in JUNK_DIRS:
            shutil.rmtree(path)
        elif path.is_file() and path.suffix in JUNK_SUFFIXES:
            path.unlink()
    for path in sorted(root.rglob("*"), reverse=True):
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    # A wheel's METADATA ends with its README: importlib.metadata reads only the headers above it.
    for metadata in root.glob("*.dist-info/METADATA"):
        headers = metadata.read_text(encoding="utf-8").split("\n\n", 1)[0]
        metadata.write_text(headers + "\n", encoding="utf-8")


def elf_files(root: Path) -> Iterator[Path]:
    """Shared libraries and extension modules under root."""
    for path in root.rglob("*.so*"):
        if path.is_file() and not path.is_symlink() and path.read_bytes()[:4] == b"\x7fELF":
            yield path


def tool(*args: str | Path) -> str:
    """Run a build tool (strip, nm, patchelf) on files of the layer; its output."""
    # The tools and the files are this build's own: no untrusted input reaches the command line.
    out = subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True)  # noqa: S603
    return out.stdout


def strip_native(root: Path) -> None:
    """Drop symbols that nothing links against (debug info, local symbols)."""
    for path in elf_files(root):
        if NO_STRIP.isdisjoint(path.relative_to(root).parts):
            tool("strip", "--strip-unneeded", path)


def needed(patchelf: str, path: Path) -> list[str]:
    """The libraries an ELF file asks the loader for."""
    return tool(patchelf, "--print-needed", path).split()


def symbols(path: Path, *, defined: bool) -> set[str]:
    """Dynamic symbols an ELF file defines or imports, with their version (`name@VERSION`)."""
    flag = "--defined-only" if defined else "--undefined-only"
    out = tool("nm", "-D", flag, path)
    return {line.split()[-1].replace("@@", "@") for line in out.splitlines() if line.strip()}


def add_rpath(patchelf: str, path: Path, target_dir: Path) -> None:
    """Let an ELF file find libraries in target_dir, relative to itself."""
    rel = os.path.relpath(target_dir, path.parent)
    entry = "$ORIGIN" if rel == "." else f"$ORIGIN/{rel}"
    current = [p for p in tool(patchelf, "--print-rpath", path).strip().split(":") if p]
    if entry not in current:
        tool(patchelf, "--set-rpath", ":".join([*current, entry]), path)


def merge_bundled(root: Path, patchelf: str) -> None:
    """Point wheels at one copy of a library that several bundle, and delete the others.

    rasterio, pyproj and shapely each bundle curl, sqlite, tiff or GEOS: the copy kept must define
    every symbol the others' users need (rasterio's PROJ does not: it renames its symbols).
    """
    changed = True
    while changed:
        changed = False
        libs = [p for p in root.glob("*.libs/*") if BUNDLED.match(p.name)]
        by_stem: dict[str, list[Path]] = {}
        for lib in libs:
            by_stem.setdefault(BUNDLED.match(lib.name).group(1), []).append(lib)  # type: ignore[union-attr]
        elves = list(elf_files(root))
        for copies in by_stem.values():
            if len(copies) < 2:
                continue
            # Keep the copy of the wheel that bundles the most: it is built for the widest use (GDAL's).
            keeper = max(copies, key=lambda p: (len(list(p.parent.iterdir())), p.parent.name))
            provided = symbols(keeper, defined=True)
            for dup in copies:
                if dup == keeper:
                    continue
                users = [e for e in elves if e != dup and dup.name in needed(patchelf, e)]
                used = set().union(*(symbols(u, defined=False) for u in users)) & symbols(dup, defined=True)
                if not used <= provided:
                    continue  # e.g. rasterio's PROJ renames its symbols: pyproj needs its own
                for user in users:
                    tool(patchelf, "--replace-needed", dup.name, keeper.name, user)
                    add_rpath(patchelf, user, keeper.parent)
                dup.unlink()
                changed = True
            if changed:
                break
    for libs_dir in root.glob("*.libs"):
        if not any(libs_dir.iterdir()):
            libs_dir.rmdir()


def proj_db_version(path: Path) -> dict[str, str]:
    """What a PROJ database holds: its layout, PROJ's version and those of EPSG and the other sources."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return dict(db.execute("SELECT key, value FROM metadata").fetchall())


def share_proj_data(root: Path, patchelf: str) -> None:
    """Keep one PROJ database (proj.db, 10 MB), pyproj's, when rasterio's is the same version.

    PROJ also looks in `<its library's folder>/../share/proj`: rasterio's PROJ library moves to
    pyproj/proj_dir/lib, where that is pyproj's data, so it needs neither its own nor PROJ_DATA.
    """
    pyproj_data = root / "pyproj" / "proj_dir" / "share" / "proj"
    rasterio_data = root / "rasterio" / "proj_data"
    gdal_libs = root / "rasterio.libs"
    projs = list(gdal_libs.glob("libproj-*.so*"))
    if not (pyproj_data / "proj.db").exists() or not (rasterio_data / "proj.db").exists() or len(projs) != 1:
        return
    if proj_db_version(pyproj_data / "proj.db") != proj_db_version(rasterio_data / "proj.db"):
        return  # different PROJ or EPSG versions: each keeps its own
    lib_dir = pyproj_data.parent.parent / "lib"
    lib_dir.mkdir(exist_ok=True)
    moved = lib_dir / projs[0].name
    users = [e for e in elf_files(root) if projs[0].name in needed(patchelf, e)]
    projs[0].rename(moved)
    add_rpath(patchelf, moved, gdal_libs)
    for user in users:
        add_rpath(patchelf, user, lib_dir)
    shutil.rmtree(rasterio_data)


def compile_bytecode(root: Path) -> None:
    """Compile every module for this Python, or Lambda compiles them on each cold start (/opt is read-only).

    Third-party sources go (bytecode beside them, as sourceless modules); the library keeps its
    sources, with bytecode that is used without checking them.
    """
    unchecked = py_compile.PycInvalidationMode.UNCHECKED_HASH
    for top in sorted(root.iterdir()):
        if not top.is_dir() or top.name.endswith((".dist-info", ".libs")):
            if top.suffix == ".py":
                compileall.compile_file(top, quiet=2, legacy=True, invalidation_mode=unchecked)
                if top.with_suffix(".pyc").exists():
                    top.unlink()
            continue
        keep = top.name in KEEP_SOURCES
        optimize = 2 if top.name in NO_DOCSTRINGS else 0
        compileall.compile_dir(
            top, quiet=2, legacy=not keep, invalidation_mode=unchecked, workers=0, optimize=optimize
        )
        if keep:
            continue
        for source in top.rglob("*.py"):
            if source.with_suffix(".pyc").exists():
                source.unlink()


if __name__ == "__main__":
    sys.exit(main())

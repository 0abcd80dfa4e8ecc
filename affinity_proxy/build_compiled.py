"""Compile the proxy's per-request modules with mypyc: ``python -m affinity_proxy.build_compiled [--if-stale | --clean]``.

The same ``.py`` sources, compiled to C extensions in ``affinity_proxy/_compiled/`` next to a
stamp of the sources they came from; ``affinity_proxy/__init__.py`` puts that directory first
on the package's path only while the stamp matches, so an edited source runs as Python until
the next build, and without a build (no compiler, no mypy) everything runs as Python. Needs
mypy (``test`` extra; it ships mypyc), a C compiler and the Python headers; ~30 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from affinity_proxy import COMPILED_DIR, COMPILED_MODULES, PACKAGE_DIR, STAMP, compiled_is_current, sources_digest

GROUP = "affinity_proxy.hot"
"""The shared library's module (``hot__mypyc``), in the package, so nothing is added at the top level."""


def build() -> None:
    from mypyc.build import mypycify  # the build needs mypy, the proxy never does
    from setuptools import setup  # type: ignore[import-untyped]  # no stubs; only the build imports it

    root = PACKAGE_DIR.parent
    with tempfile.TemporaryDirectory(prefix="proxy-mypyc-") as scratch:
        paths = [str((PACKAGE_DIR / f"{name}.py").relative_to(root)) for name in COMPILED_MODULES]
        extensions = mypycify(["--no-warn-unused-configs", *paths], opt_level="3", group_name=GROUP, target_dir=str(Path(scratch, "c")))
        build_ext = ["build_ext", "--build-lib", str(Path(scratch, "lib")), "--build-temp", str(Path(scratch, "tmp"))]
        setup(name="affinity-proxy-compiled", ext_modules=extensions, script_args=["--quiet", *build_ext])
        clean()
        COMPILED_DIR.mkdir()
        for built in Path(scratch, "lib", "affinity_proxy").glob("*.so"):
            shutil.move(built, COMPILED_DIR / built.name)
    (COMPILED_DIR / STAMP).write_text(sources_digest() + "\n")


def clean() -> None:
    shutil.rmtree(COMPILED_DIR, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clean", action="store_true", help="remove the compiled modules (everything runs as Python)")
    parser.add_argument("--if-stale", action="store_true", help="build only if no compiled modules match the sources (scripts/setup)")
    args = parser.parse_args()
    if args.clean:
        clean()
        return
    if args.if_stale and compiled_is_current():
        print("build_compiled: the compiled modules match the sources", file=sys.stderr)
        return
    os.chdir(PACKAGE_DIR.parent)  # mypyc names modules by their paths from here
    build()
    print(f"build_compiled: {len(COMPILED_MODULES)} modules compiled into {COMPILED_DIR}", file=sys.stderr)


if __name__ == "__main__":
    main()

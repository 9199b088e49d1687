"""The memory allocator setting every entry point runs with, applied by re-executing the interpreter once.

glibc's malloc serves every block above its (adaptive) mmap threshold with a fresh mmap and returns it with
munmap on free. The classifier and MTCNN allocate and free activation buffers of tens to hundreds of MB on every
call, so each call maps, page-faults and unmaps them again: about half of the CPU time went to the kernel. With
mmap disabled and trimming effectively off, freed buffers stay in the heap and the next call reuses them. The
price is a fixed amount of resident memory (about 10 % more in a CPU training), reached in the first epoch and
flat after it, not a growth over time: docs/development.md gives the measurement.

glibc reads GLIBC_TUNABLES only when a process starts, so an entry script calls `use_steady_allocator(__name__)`
before its heavy imports; without the setting it re-executes itself with it (same PID, same arguments), and every
process it spawns inherits it. The Dockerfile sets the same variable so that nothing is re-executed in the image.
This module imports nothing heavy on purpose: the re-exec must happen before torch is loaded.
"""
from __future__ import annotations

import os
import platform
import sys

TUNABLES = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"
OPT_OUT = "DFDC_DEFAULT_MALLOC"  # =1: keep glibc's defaults (the benchmarks' baseline runs the original's way)


def allocator_needs_setting(environ=os.environ) -> bool:
    """True when this process should be restarted with TUNABLES: on glibc, unless the user chose otherwise."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if environ.get(OPT_OUT) == "1":
        return False
    if any(name in environ.get("LD_PRELOAD", "") for name in ("jemalloc", "tcmalloc", "mimalloc")):
        return False
    return "glibc.malloc.mmap_max" not in environ.get("GLIBC_TUNABLES", "")


def steady_environment(environ=os.environ) -> dict[str, str]:
    """`environ` with TUNABLES added to any GLIBC_TUNABLES already set."""
    env = dict(environ)
    env["GLIBC_TUNABLES"] = ":".join(filter(None, [env.get("GLIBC_TUNABLES"), TUNABLES]))
    return env


def use_steady_allocator(module_name: str) -> None:
    """Re-execute the running script with TUNABLES when `module_name` is "__main__" and they are missing.

    A module imported by another program (tests, a notebook) passes its own name and nothing happens.
    """
    if module_name != "__main__" or not allocator_needs_setting():
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], steady_environment())

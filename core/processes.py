"""Process-level plumbing that must not load torch: worker pools, the torchrun/SLURM world, library threads.

Steps whose workers only decode and write images (extract_crops, generate_diffs, the decoding side of
detect_original_faces) import this instead of core.runtime: importing torch costs every process about 0.8 GB of
resident memory and several seconds of start-up, most of the work of a short step.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence


def world_from_env() -> tuple[int, int]:
    """(world size, rank) from torchrun (WORLD_SIZE/RANK) or a SLURM array, else (1, 0)."""
    if "WORLD_SIZE" in os.environ and "RANK" in os.environ:
        return int(os.environ["WORLD_SIZE"]), int(os.environ["RANK"])
    if "SLURM_ARRAY_TASK_COUNT" in os.environ and "SLURM_ARRAY_TASK_ID" in os.environ:
        first = int(os.environ.get("SLURM_ARRAY_TASK_MIN", "0"))
        return int(os.environ["SLURM_ARRAY_TASK_COUNT"]), int(os.environ["SLURM_ARRAY_TASK_ID"]) - first
    return 1, 0


def limit_library_threads() -> None:
    """One thread per worker process: parallelism comes from the worker pool, not from OpenMP/OpenCV.

    The variables are set before a worker's job imports torch, which then starts with one thread; torch is not
    imported here.
    """
    import cv2

    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    cv2.setNumThreads(0)
    cv2.ocl.setUseOpenCL(False)


def run_parallel(function: Callable, jobs: Sequence, workers: int, desc: str, start_method: str = "spawn") -> Iterator:
    """Map `function` over jobs with a process pool (or inline for one worker), with a tqdm bar; yields results
    in completion order. The pool's processes have exited when this generator finishes or is closed.

    `start_method="fork"` lets workers inherit the parent's imports (torch: ~5 CPU-seconds and ~0.8 GB per
    spawned worker); only for a parent that has imported torch but run no torch operation yet, so that no
    OpenMP thread pool is copied half-way.
    """
    from tqdm import tqdm

    if workers <= 1 or len(jobs) <= 1:
        for job in tqdm(jobs, desc=desc):
            yield function(job)
        return
    import multiprocessing as mp

    pool = mp.get_context(start_method).Pool(min(workers, len(jobs)), initializer=limit_library_threads)
    try:
        yield from tqdm(pool.imap_unordered(function, jobs), total=len(jobs), desc=desc)
        pool.close()
    finally:
        pool.terminate()
        pool.join()


def end_helper_processes() -> None:
    """Last call of an entry script that used worker pools: stop multiprocessing's resource tracker and reap it.

    The pools' workers are joined when a pool closes, but a spawned pool also starts a tracker process that
    only exits after its parent has: the step would end with a process of its group still alive, and where
    PID 1 does not reap (many containers) a zombie stays. Only safe once every pool object is gone (the tracker
    would unlink their semaphores), hence at the very end. `_stop` is private (CPython 3.8-3.13); without it
    the tracker exits on its own as before.
    """
    import gc
    from multiprocessing import resource_tracker

    gc.collect()
    stop = getattr(resource_tracker._resource_tracker, "_stop", None)
    if stop is not None:
        stop()

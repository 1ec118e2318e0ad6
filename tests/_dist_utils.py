"""Run a test body on several CPU processes joined by gloo on loopback, bounded in time.

``run_distributed(fn, world_size, *args)`` spawns ``world_size`` processes, each of which joins a gloo
process group on a free loopback port and calls ``fn(rank, world_size, *args)``. A failure on any rank
fails the test with that rank's traceback; a hang fails it after ``timeout`` seconds (the children are
killed), and gloo's own timeout makes a stuck collective raise inside the children first.
"""

import datetime
import os
import queue
import socket
import time
import traceback

import torch.distributed as dist
import torch.multiprocessing as mp

# A collective that waits longer than this raises in the children (a hang in a test, not in real use).
GLOO_TIMEOUT_S = 30


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(fn, rank, world_size, port, errors, args):
    try:
        dist.init_process_group(
            "gloo",
            init_method=f"tcp://127.0.0.1:{port}",
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(seconds=GLOO_TIMEOUT_S),
        )
        fn(rank, world_size, *args)
        dist.barrier()
        dist.destroy_process_group()
    except BaseException:
        errors.put((rank, traceback.format_exc()))
        errors.close()
        errors.join_thread()
        os._exit(1)
    # Skip the interpreter's teardown: background threads of torch.distributed.checkpoint and gloo can
    # abort the process there ("terminate called without an active exception") after a clean run.
    os._exit(0)


def run_distributed(fn, world_size, *args, timeout=120.0):
    """Run ``fn(rank, world_size, *args)`` on ``world_size`` gloo ranks; raise if any fails or hangs."""
    ctx = mp.get_context("spawn")
    errors = ctx.Queue()
    port = free_port()
    procs = [
        ctx.Process(target=_worker, args=(fn, rank, world_size, port, errors, args), daemon=True)
        for rank in range(world_size)
    ]
    for proc in procs:
        proc.start()
    deadline = time.monotonic() + timeout
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
    hung = [rank for rank, proc in enumerate(procs) if proc.is_alive()]
    for rank in hung:
        procs[rank].kill()
        procs[rank].join()
    failures = []
    while True:
        try:
            failures.append(errors.get(timeout=0.5))
        except queue.Empty:
            break
    messages = [f"--- rank {rank} ---\n{tb}" for rank, tb in sorted(failures)]
    if hung:
        messages.insert(0, f"ranks {hung} did not finish within {timeout:.0f} s (killed)")
    codes = [proc.exitcode for proc in procs]
    if not messages and any(code != 0 for code in codes):
        messages.append(f"exit codes {codes}")
    if messages:
        raise AssertionError("\n".join(messages))

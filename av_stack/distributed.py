"""Run a list of independent, seeded jobs in this process or as tasks on a Ray cluster; results in job order.

>>> run_jobs(drive_job, jobs)                  # in this process, one job after the other (no Ray needed)
>>> run_jobs(drive_job, jobs, ray="local:2")   # a local Ray instance with 2 CPUs, started and stopped here
>>> run_jobs(drive_job, jobs, ray="auto")      # the Ray cluster this machine belongs to (``ray start``)
>>> run_jobs(drive_job, jobs, ray="HOST:6379") # a Ray cluster by address (also ``ray://HOST:10001``)

Each job is one call ``fn(job)``: a module-level function (Ray imports it by name on the worker, so every
node needs the same avsim installed) on a picklable job that carries everything the worker needs, seeds
included. A worker builds its own world from the job; nothing is shared between jobs, so the results are
those of the single-process run with the same seeds. Ray is imported only when ``ray`` is given; if Ray is
already initialised in this process (a test's cluster, a notebook) that cluster is used and left running.
Errors: :class:`DistributedError` with one line when Ray is missing or the cluster cannot be reached; an
exception inside a job is raised again here as the job raised it.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

__all__ = ["RAY_HELP", "DistributedError", "check_ray_option", "run_jobs"]

J = TypeVar("J")
R = TypeVar("R")

RAY_HELP = ("Distribute the work over Ray: 'local' (or 'local:N': start a Ray instance on this machine with N "
            "CPUs), 'auto' (the cluster this machine joined with `ray start`) or a cluster address (HOST:PORT, "
            "ray://HOST:PORT). Needs Ray: avsim's 'distributed' extra, or pip install 'ray>=2.9'. Default: "
            "this process only.")
"""The ``--ray`` option's help, shared by the commands."""

CONNECT_TIMEOUT_S = 5
"""How long :func:`run_jobs` waits for a cluster address to answer before giving up (``ray.init`` itself
retries an unreachable address for minutes)."""

_LOCAL = re.compile(r"local(?::(\d+))?")


class DistributedError(RuntimeError):
    """Ray is not installed, the ``--ray`` value is malformed, or the cluster cannot be reached."""


def check_ray_option(value: str | None) -> str | None:
    """``value`` stripped (``None`` for no Ray); :class:`DistributedError` for a malformed ``local:N`` or when
    Ray is not installed (called before the work is planned, so such a mistake costs no time)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    match = _LOCAL.fullmatch(value)
    if match and match.group(1) is not None and int(match.group(1)) < 1:
        raise DistributedError(f"--ray {value}: a local Ray instance needs at least 1 CPU")
    if value.startswith("local") and not match:
        raise DistributedError(f"--ray {value!r}: expected local, local:N, auto or a cluster address HOST:PORT")
    _import_ray()
    return value


def run_jobs(fn: Callable[[J], R], jobs: Sequence[J], ray: str | None = None,
             on_result: Callable[[int, R], None] | None = None, num_cpus: float = 1.0) -> list[R]:
    """``[fn(job) for job in jobs]``, in this process (``ray`` None) or as Ray tasks of ``num_cpus`` CPUs each
    (``ray``: see the module docstring). ``on_result(index, result)`` is called as each job finishes (in
    completion order under Ray), e.g. to write a manifest or advance a progress bar."""
    ray = check_ray_option(ray)
    jobs = list(jobs)
    if ray is None:
        results = []
        for index, job in enumerate(jobs):
            results.append(fn(job))
            if on_result is not None:
                on_result(index, results[-1])
        return results
    if not jobs:
        return []
    ray_module, started = _connect(ray)
    try:
        return _run_on_ray(ray_module, fn, jobs, on_result, num_cpus)
    finally:
        if started:
            ray_module.shutdown()


def _import_ray():
    try:
        import ray
    except ImportError:
        raise DistributedError("--ray needs Ray, which is not installed: pip install 'ray>=2.9' (avsim's "
                               "'distributed' extra)") from None
    return ray


def _connect(spec: str):
    """(the ray module, whether this call initialised it) after connecting to or starting the cluster."""
    ray = _import_ray()
    if ray.is_initialized():
        return ray, False
    quiet = dict(include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    local = _LOCAL.fullmatch(spec)
    try:
        if local:
            cpus = int(local.group(1)) if local.group(1) else (os.cpu_count() or 1)
            ray.init(num_cpus=cpus, **quiet)
        else:
            _probe(spec, ray)
            ray.init(address=spec, log_to_driver=False, logging_level="WARNING")
    except DistributedError:
        raise
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError or ValueError depending on the failure
        if ray.is_initialized():
            ray.shutdown()
        where = "start a local Ray instance" if local else f"reach the Ray cluster at {spec!r}"
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise DistributedError(f"--ray {spec}: cannot {where}: {reason}") from None
    return ray, True


def _probe(spec: str, ray) -> None:
    """:class:`DistributedError` unless something listens at the cluster's address: ``ray.init`` retries an
    unreachable address for minutes."""
    address = spec
    if spec == "auto":
        try:  # the address of the cluster this machine joined (RAY_ADDRESS, or the last `ray start`)
            from ray._private.services import canonicalize_bootstrap_address

            address = canonicalize_bootstrap_address("auto") or ""
        except Exception:  # a private helper: if it moves, let ray.init find the cluster itself
            return
        if not address:
            raise DistributedError("--ray auto: no running Ray cluster found on this machine (start one with "
                                   "`ray start --head`, or give its address)")
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise DistributedError(f"--ray {spec!r}: expected local, local:N, auto or a cluster address HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise DistributedError(f"--ray {spec}: cannot reach the Ray cluster at {host}:{port} "
                               f"({exc.strerror or exc})") from None


def _call(fn: Callable[[J], R], job: J) -> R:
    """The Ray task: one job on a worker (``fn`` travels by reference, so it must be importable there)."""
    return fn(job)


def _run_on_ray(ray, fn, jobs: list, on_result, num_cpus: float) -> list:
    remote = ray.remote(num_cpus=num_cpus, max_retries=0)(_call)
    refs = [remote.remote(fn, job) for job in jobs]
    index_of = {ref: k for k, ref in enumerate(refs)}
    results: list[Any] = [None] * len(jobs)
    pending = list(refs)
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            k = index_of[ready[0]]
            try:
                results[k] = ray.get(ready[0])
            except ray.exceptions.RayTaskError as exc:  # the job's own exception, as a local run raises it
                cause = getattr(exc, "cause", None)
                if isinstance(cause, BaseException):
                    raise cause from None
                raise
            if on_result is not None:
                on_result(k, results[k])
    except BaseException:
        for ref in pending:  # Ctrl-C or a failed job: stop the rest
            ray.cancel(ref, force=True)
        raise
    return results

"""``--distribute data-parallel``: one run over every device of one machine, or of several processes
(machines), on Keras 3's own distribution API: ``keras.distribution.DataParallel`` over all the job's
devices, the JAX backend's multi-process runtime underneath. No scheduler of ours: each process is
started by whoever starts processes (a shell, Slurm, Kubernetes) with the same command and its own
``--process-id``.

What stays as on one device: --batch-size is the global batch (each step is one global batch split
across the devices, its loss and BatchNorm statistics taken over the whole of it by XLA); the weights,
the augmentation and dropout draw from the same seeds (JAX's random bits do not depend on how a batch
is split); the learning-rate schedule, class weights, distillation targets and label smoothing are the
same per-epoch function or per-face array on every process. What differs from ``--distribute none``:
the faces are shuffled by a permutation seeded by (init seed, epoch), the same on every process and
after a --resume, instead of Keras's; every batch must split evenly over the devices, so the
``n % devices`` faces at the end of each epoch's permutation are left out (other faces each epoch) and
validation scores all but the last ``n_val % devices`` faces.

Only process 0 writes (the run folder, checkpoints, records); the others read it for --resume and
--fine-tune-epochs, so a job on several machines keeps its run folder on a shared filesystem (or a copy).
"""
from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, field

import numpy as np

from device.errors import (EXIT_INTERRUPTED, EnvironmentMissing, FerliteError, RunFailed, UsageError, exit_code_for,
                           message_for)

# Where keras.distribution.initialize reads what its arguments leave unset; the CLI reads the same.
ENV_COORDINATOR = "KERAS_DISTRIBUTION_JOB_ADDRESSES"
ENV_NUM_PROCESSES = "KERAS_DISTRIBUTION_NUM_PROCESSES"
ENV_PROCESS_ID = "KERAS_DISTRIBUTION_PROCESS_ID"
BACKEND = "jax"  # the one backend Keras's DataParallel runs on multi-device and multi-process


class DistributeError(UsageError):
    """--distribute options that cannot work here (backend, batch size, processes)."""


@dataclass
class Job:
    """The devices and processes of one run; ``None`` stands for ``--distribute none`` everywhere."""
    processes: int = 1
    process_id: int = 0
    devices: list = field(default_factory=list)

    @property
    def writer(self) -> bool:
        return self.process_id == 0

    def record(self, batch_size: int) -> dict:
        """config.json's ``distribution``: what ran, not where (no addresses)."""
        return {"mode": "data-parallel", "backend": BACKEND, "processes": self.processes,
                "devices": len(self.devices), "device_names": list(self.devices), "global_batch": batch_size,
                "per_device_batch": batch_size // len(self.devices)}


def start(cfg) -> Job | None:
    """Join the job (several processes) and list its devices; before any JAX computation. None: not distributed."""
    if cfg.distribute == "none":
        return None
    import keras
    backend = keras.config.backend()
    if backend != BACKEND:
        raise DistributeError(
            f"--distribute {cfg.distribute} runs on the JAX backend (Keras's DataParallel), not {backend}: run with "
            f"KERAS_BACKEND=jax (pip install '.[distributed]'; jax[cuda12] on NVIDIA GPUs); on {backend}, "
            f"train without --distribute")
    try:
        import jax
    except ImportError as e:
        raise EnvironmentMissing(f"--distribute needs JAX: pip install '.[distributed]' ({e})") from e
    n = cfg.num_processes or 1
    if n > 1:
        _join(jax, cfg, n)
    devices = keras.distribution.list_devices()
    if cfg.batch_size % len(devices):
        raise DistributeError(f"--batch-size {cfg.batch_size} does not split over the job's {len(devices)} "
                              f"devices: choose a multiple of {len(devices)} (it is the global batch)")
    return Job(processes=n, process_id=cfg.process_id or 0, devices=devices)


def _join(jax, cfg, n: int) -> None:
    """``jax.distributed.initialize``, what ``keras.distribution.initialize`` calls on JAX, with our timeouts:
    Keras passes JAX's defaults (300 s for the others to join, 100 s before a silent process counts as
    dead), and a job missing a process must stop within ``--distribute-timeout`` with one error, not hang.
    Keras's other step, agreeing on a random seed, is not needed: every process seeds with --init-seed."""
    coordinator = cfg.coordinator.split(",")[0]  # Keras's form: every address, the first is process 0's
    t = cfg.distribute_timeout
    msg = (f"process {cfg.process_id} of {n}: the job at {coordinator} did not form within {t} s "
           f"(a process missing or failed; see its output)")
    # JAX ends a process whose job never forms with a C++ abort and its stack; this timer says it in one
    # line a little before (the wait happens in C++, which leaves Python's threads running).
    timer = threading.Timer(t, _leave, (msg, RunFailed.exit_code))
    timer.daemon = True
    timer.start()
    try:
        jax.distributed.initialize(coordinator, n, cfg.process_id, initialization_timeout=t + 10,
                                   heartbeat_timeout_seconds=t, shutdown_timeout_seconds=t)
    except Exception as e:  # noqa: BLE001 - JAX raises several types for the same event
        raise RunFailed(f"{msg}: {' '.join(str(e).split())[:300]}") from e
    finally:
        timer.cancel()


def _leave(msg: str, code: int) -> None:
    """One ``error:`` line, then out at once, without JAX's exit handlers (see fail_fast)."""
    sys.stdout.flush()
    sys.stderr.write("error: " + " ".join(msg.split()) + "\n")
    sys.stderr.flush()
    os._exit(code)


def use(job: Job | None) -> None:
    """Make Keras place every model built or loaded from here on over the job's devices (None: as ever).
    The data is sharded here (GlobalBatches), not by Keras: its auto-sharding takes tf.data only."""
    if job is None:
        return
    import keras
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=job.devices, auto_shard_dataset=False))


def same_start(job: Job | None, epoch: int, out) -> None:
    """Every process must resume at the same epoch, or they would wait on different steps for ever."""
    if job is None or job.processes == 1:
        return
    from jax.experimental import multihost_utils
    epochs = [int(e) for e in np.asarray(multihost_utils.process_allgather(np.int32(epoch))).ravel()]
    if len(set(epochs)) > 1:
        raise RunFailed(f"the processes would start at epochs {epochs} (process 0 first): --resume reads {out} on "
                        f"every process, so it must be the same folder on every machine (shared, or a copy)")


def finish(job: Job | None) -> None:
    """After the last epoch, on every process at once: leave the job, so that process 0 can test and write
    the records alone while the others exit (JAX's exit would otherwise wait for it as for a peer)."""
    if job is None:
        return
    import keras
    keras.distribution.set_distribution(None)
    if job.processes > 1:
        import jax
        jax.distributed.shutdown()


def fail_fast(job: Job | None, e: BaseException) -> None:
    """A process of a multi-process job that fails prints its one ``error:`` line and leaves at once: a normal
    exit would run JAX's shutdown barrier, which waits for the peers (still blocked in the step this process
    left) and then aborts with a C++ trace. Its peers see the connection drop within a step. No-op otherwise."""
    if job is None or job.processes == 1 or os.environ.get("FERLITE_DEBUG"):
        return
    if isinstance(e, KeyboardInterrupt):
        code, msg = EXIT_INTERRUPTED, "interrupted; finished epochs are saved, continue with --resume"
    elif isinstance(e, FerliteError):
        code, msg = exit_code_for(e), message_for(e)
    else:  # mid-run, what breaks is most often a collective whose peer is gone (JAX and Gloo name it variously)
        code, msg = RunFailed.exit_code, (f"process {job.process_id} of {job.processes}: stopped, most likely because "
                                          f"another process of the job failed or stopped (see its output); finished "
                                          f"epochs are saved, continue with --resume ({type(e).__name__}: "
                                          f"{' '.join(str(e).split())[:200]})")
    _leave(msg, code)


def epoch_callbacks(fit_data: dict) -> list:
    """The callback that tells a distributed run's batches which epoch starts (none for other data)."""
    batches = fit_data.get("x")
    if not hasattr(batches, "set_epoch"):
        return []
    import keras
    return [keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs=None: batches.set_epoch(epoch))]


def batches(x, y, w, batch_size: int, job: Job, seed: int | None, first_epoch: int = 0):
    """model.fit's data for a distributed run: this process's share of each global batch."""
    import keras

    class GlobalBatches(keras.utils.PyDataset):
        """Global batch k = faces order[k*B:(k+1)*B] (order: the epoch's seeded permutation, or as given for
        validation, ``seed`` None); process p feeds its p-th contiguous share of it, Keras on JAX puts the
        shares side by side in process order. ``n % devices`` faces are left out so every batch splits evenly."""

        def __init__(self):
            super().__init__()
            self.epoch, self.kept = first_epoch, len(x) - len(x) % len(job.devices)
            self.order = self._order()

        def _order(self):
            idx = np.arange(len(x)) if seed is None else np.random.default_rng([seed, self.epoch]).permutation(len(x))
            return idx[:self.kept]

        def __len__(self):
            return -(-self.kept // batch_size)

        def __getitem__(self, i):
            idx = self.order[i * batch_size:(i + 1) * batch_size]
            share = len(idx) // job.processes
            idx = idx[job.process_id * share:(job.process_id + 1) * share]
            return (x[idx], y[idx]) if w is None else (x[idx], y[idx], w[idx])

        def set_epoch(self, epoch: int):
            """Told by fit's callback (``epoch_callbacks``): this dataset's own epoch hooks also fire when Keras
            peeks at a batch, so counting them would drift."""
            if epoch != self.epoch:
                self.epoch = epoch
                self.order = self._order()

    return GlobalBatches()

"""Framework-free hardware and cluster facts: NVIDIA GPUs, installs, SLURM.

Nothing here imports TensorFlow or JAX, so the CLIs can check the install
and explain a missing GPU before (or without) loading a framework. What a
framework itself sees is asked in `training/backends/{tensorflow,jax}.py`.
"""

import importlib.metadata
import importlib.util
import json
import os
import shutil
from typing import NamedTuple

from dnnlib.util import UserError

NVIDIA_PROC = "/proc/driver/nvidia"

# The one install command per (backend, target), as README "Install" says.
INSTALL = {
    ("tensorflow", "cpu"): 'pip install -e ".[cpu]"',
    ("tensorflow", "gpu"): 'pip install -e ".[cuda]"',
    ("jax", "cpu"): 'pip install -e ".[jax]"',
    ("jax", "gpu"): 'pip install -e ".[jax-cuda]"',
}

# Distributions that each install the `tensorflow` package.
TF_DISTRIBUTIONS = (
    "tensorflow",
    "tensorflow-cpu",
    "tensorflow-gpu",
    "tf-nightly",
    "tf-nightly-cpu",
)

_MODULES = {"tensorflow": ("tensorflow", "TensorFlow"), "jax": ("jax", "JAX")}


def install_command(backend, target):
    """The install line for `backend` ('tensorflow', 'jax') on `target`
    ('cpu', 'gpu')."""
    return INSTALL[(backend, target)]


def nvidia_gpus_present(proc=None, path=None):
    """Whether this machine has NVIDIA GPUs, whatever a framework sees.

    True when the driver is loaded (`/proc/driver/nvidia`) or `nvidia-smi`
    is on PATH. proc, path: where to look instead (tests).
    """
    proc = NVIDIA_PROC if proc is None else proc
    return (
        os.path.isdir(proc) or shutil.which("nvidia-smi", path=path) is not None
    )


def keras_backend(environ=None):
    """The backend Keras will load: $KERAS_BACKEND, keras.json, tensorflow."""
    environ = os.environ if environ is None else environ
    if environ.get("KERAS_BACKEND"):
        return environ["KERAS_BACKEND"]
    home = environ.get("KERAS_HOME") or os.path.join(
        os.path.expanduser("~"), ".keras"
    )
    try:
        with open(os.path.join(home, "keras.json")) as f:
            return json.load(f).get("backend", "tensorflow")
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def installed(module):
    """Whether a top-level module can be imported (without importing it)."""
    return importlib.util.find_spec(module) is not None


def installed_distributions(names):
    """Those of the distributions `names` that are installed."""
    found = []
    for name in names:
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        found.append(name)
    return found


def require_backend(backend):
    """A UserError with the install line when `backend`'s framework is
    missing (checked without importing it), or when two TensorFlow
    distributions share the environment (their files overwrite each
    other's, so which build runs is an accident)."""
    if backend not in _MODULES:
        return  # Keras itself names unknown backends
    if backend == "tensorflow":
        both = installed_distributions(TF_DISTRIBUTIONS)
        if len(both) > 1:
            raise UserError(
                f"{len(both)} TensorFlow distributions are installed "
                f"({', '.join(both)}); keep one: pip uninstall -y "
                f"{' '.join(both)} && {install_command(backend, 'cpu')} "
                f"(or {install_command(backend, 'gpu')} for NVIDIA GPUs)"
            )
    module, label = _MODULES[backend]
    if installed(module):
        return
    other = "jax" if backend == "tensorflow" else "tensorflow"
    if installed(_MODULES[other][0]):
        switch = f", or use --backend={other}"
    else:
        switch = ""
    raise UserError(
        f"the {backend} backend needs {label}, which is not installed: "
        f"{install_command(backend, 'cpu')} (NVIDIA GPUs: "
        f"{install_command(backend, 'gpu')}){switch}"
    )


def check_gpu_count(requested, found, label):
    """A UserError when `--gpus=requested` asks for more than `found`.

    found: the GPUs the framework sees, as names; label: the framework.
    """
    if requested and requested > len(found):
        seen = ", ".join(found) if found else "none"
        raise UserError(
            f"--gpus={requested} but {label} sees {len(found)} GPU(s): {seen}"
        )


def missing_gpu_note(backend, found, label, proc=None, path=None):
    """One line when NVIDIA GPUs exist but the backend sees none, else None.

    The usual cause is a CPU-only install; the line gives the GPU one
    (for TensorFlow, removing the CPU build first: tensorflow-cpu and
    tensorflow must not share an environment).
    """
    if found or not nvidia_gpus_present(proc=proc, path=path):
        return None
    command = install_command(backend, "gpu")
    if backend == "tensorflow":
        command = f"pip uninstall -y tensorflow-cpu && {command}"
    return (
        f"note: this machine has NVIDIA GPUs but {label} sees none (a CPU "
        f"build, or CUDA failed to load); to use them: {command}"
    )


def slurm_num_tasks(environ=None):
    """Tasks of the current SLURM job step (`srun`), 0 outside one.

    A step of several tasks is a multi-worker job; `sbatch`'s batch script
    itself (no step variables) is not.
    """
    environ = os.environ if environ is None else environ
    if "SLURM_PROCID" not in environ:
        return 0
    try:
        return int(environ.get("SLURM_STEP_NUM_TASKS", "0"))
    except ValueError:
        return 0


def multi_worker(environ=None):
    """How this process joins a multi-worker job: 'tf_config' when TF_CONFIG
    is set, 'slurm' in a SLURM step of several tasks, else None."""
    environ = os.environ if environ is None else environ
    if environ.get("TF_CONFIG"):
        return "tf_config"
    if slurm_num_tasks(environ) > 1:
        return "slurm"
    return None


def worker(environ=None, cluster=None):
    """This process's place in a multi-worker job: (index, count, chief).

    index counts the cluster's chief (if any) first, then its workers;
    `chief` is the one process that writes (TF_CONFIG's "chief" task, else
    worker 0; in SLURM task 0; for a JAX `cluster`, process 0). Outside a
    multi-worker job: (0, 1, True).
    """
    if cluster is not None:
        index = cluster.process_id
        return index, cluster.num_processes, index == 0
    environ = os.environ if environ is None else environ
    how = multi_worker(environ)
    if how == "slurm":
        index = int(environ["SLURM_PROCID"])
        return index, slurm_num_tasks(environ), index == 0
    if how is None:
        return 0, 1, True
    try:
        tf_config = json.loads(environ["TF_CONFIG"])
        cluster = tf_config.get("cluster", {})
        chiefs = list(cluster.get("chief", []))
        workers = list(cluster.get("worker", []))
        task = tf_config["task"]
        kind, index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise UserError(f"TF_CONFIG is not valid: {e!r}") from None
    if kind not in ("chief", "worker"):
        raise UserError(
            f"TF_CONFIG task type '{kind}': training runs 'chief' and "
            "'worker' tasks only"
        )
    if kind == "worker":
        index += len(chiefs)
    count = len(chiefs) + len(workers)
    if not 0 <= index < count:
        raise UserError(
            f"TF_CONFIG task {task} is not in its cluster of {count} tasks"
        )
    return index, count, index == 0


class Cluster(NamedTuple):
    """A multi-process JAX job, as `jax.distributed.initialize` takes it.

    coordinator: 'HOST:PORT' of process 0's service, None when `auto`;
    auto: JAX reads the job from SLURM's variables itself.
    """

    coordinator: str | None
    num_processes: int
    process_id: int
    auto: bool = False


def jax_cluster(
    backend, coordinator=None, num_processes=None, process_id=None, environ=None
):
    """The multi-process JAX job this process joins, checked, or None.

    From --coordinator, --num-processes and --process-id (all three), else
    from a SLURM step of several tasks (JAX's own detection: SLURM_PROCID,
    SLURM_NTASKS, the step's first node). None for one process, and for
    the tensorflow backend, whose workers come from TF_CONFIG or SLURM.
    """
    flags = {
        "--coordinator": coordinator,
        "--num-processes": num_processes,
        "--process-id": process_id,
    }
    given = [name for name, value in flags.items() if value is not None]
    if given and backend != "jax":
        raise UserError(
            f"{given[0]} is for --backend=jax; TensorFlow workers take "
            "their cluster from TF_CONFIG or SLURM"
        )
    if backend != "jax":
        return None
    if given:
        missing = [name for name in flags if name not in given]
        if missing:
            raise UserError(
                "--coordinator, --num-processes and --process-id go "
                f"together: {', '.join(missing)} missing"
            )
        host, _, port = coordinator.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise UserError(
                f"--coordinator={coordinator}: expected HOST:PORT, e.g. "
                "host0:12345 (process 0's host)"
            )
        if num_processes < 1:
            raise UserError(f"--num-processes={num_processes}: at least 1")
        if not 0 <= process_id < num_processes:
            raise UserError(
                f"--process-id={process_id}: 0 to {num_processes - 1} for "
                f"--num-processes={num_processes}"
            )
        if num_processes == 1:
            return None
        return Cluster(coordinator, num_processes, process_id)
    how = multi_worker(environ)
    if how == "tf_config":
        raise UserError(
            "TF_CONFIG is set, but --backend=jax takes its processes from "
            "--coordinator, --num-processes and --process-id (or a SLURM "
            "step): unset TF_CONFIG"
        )
    if how == "slurm":
        index, count, _ = worker(environ)
        return Cluster(None, count, index, auto=True)
    return None

"""The one place that picks the backend module from Keras' backend."""

from types import SimpleNamespace

import keras

from dnnlib import hardware


def get():
    """The backend module matching `keras.backend.backend()`."""
    name = keras.backend.backend()
    if name == "tensorflow":
        from training.backends import tensorflow

        return tensorflow
    if name == "jax":
        from training.backends import jax

        return jax
    raise RuntimeError(
        "training supports the tensorflow and jax backends; KERAS_BACKEND "
        f"is '{name}'"
    )


def agree_stop(strategy, requested):
    """The stop request every process of the job acts on at the same step.

    requested: this process's (`interrupt.requested()`: a signal name or
    None). Both backends gather it over the processes (one all-gather per
    step); one process gets it back as is.
    """
    return get().agree_stop(strategy, requested)


def select_devices(gpus=0, required=True, proc=None, path=None):
    """The devices a run uses for `--gpus=gpus` (0 = all visible GPUs).

    Returns a namespace: `gpus` (names of the GPUs used, empty on the CPU),
    `lines` (what to print at start: the devices, and a note when NVIDIA
    GPUs exist but the backend sees none). When `required`, fewer visible
    GPUs than `gpus` is a UserError naming the visible ones; otherwise
    `gpus` is an upper bound (run_metrics' default of 1 runs on a CPU).
    proc, path: where to look for NVIDIA's driver and nvidia-smi instead
    (tests).
    """
    backend = get()
    found = backend.list_gpus()
    if required:
        hardware.check_gpu_count(gpus, found, backend.LABEL)
    used = found[: gpus or len(found)]
    lines = [f"Devices ({backend.LABEL}): {', '.join(used) or 'CPU'}"]
    note = hardware.missing_gpu_note(
        backend.NAME, found, backend.LABEL, proc=proc, path=path
    )
    if note:
        lines.append(note)
    return SimpleNamespace(gpus=used, lines=lines)

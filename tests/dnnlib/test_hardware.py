"""dnnlib.hardware: NVIDIA detection, install lines, SLURM, no framework."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dnnlib import hardware
from dnnlib.util import UserError

ROOT = Path(__file__).resolve().parents[2]


def _fake_nvidia_smi(folder):
    tool = folder / "nvidia-smi"
    tool.write_text("#!/bin/sh\nexit 0\n")
    tool.chmod(0o755)
    return str(folder)


def test_nvidia_found_by_driver_folder_or_nvidia_smi(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    none = str(tmp_path / "no-driver")
    assert not hardware.nvidia_gpus_present(proc=none, path=str(empty))
    proc = tmp_path / "driver"
    proc.mkdir()
    assert hardware.nvidia_gpus_present(proc=str(proc), path=str(empty))
    tools = tmp_path / "bin"
    tools.mkdir()
    path = _fake_nvidia_smi(tools)
    assert hardware.nvidia_gpus_present(proc=none, path=path)


def test_missing_gpu_note_gives_the_gpu_install(tmp_path):
    proc = tmp_path / "driver"
    proc.mkdir()
    empty = str(tmp_path)
    note = hardware.missing_gpu_note(
        "tensorflow", [], "TensorFlow 2.21.0", proc=str(proc), path=empty
    )
    assert len(note.splitlines()) == 1
    assert "TensorFlow 2.21.0 sees none" in note
    assert 'pip uninstall -y tensorflow-cpu && pip install -e ".[cuda]"' in note
    note = hardware.missing_gpu_note("jax", [], "JAX", proc=str(proc))
    assert note.endswith('pip install -e ".[jax-cuda]"')
    # GPUs seen, or no NVIDIA hardware: nothing to say.
    seen = ["GPU:0 NVIDIA H200"]
    assert hardware.missing_gpu_note("jax", seen, "JAX", proc=str(proc)) is None
    none = str(tmp_path / "no-driver")
    assert hardware.missing_gpu_note("jax", [], "JAX", none, empty) is None


def test_too_few_gpus_is_one_line_naming_them():
    found = ["GPU:0 NVIDIA H200", "GPU:1 NVIDIA H200"]
    hardware.check_gpu_count(0, found, "JAX")
    hardware.check_gpu_count(2, found, "JAX")
    with pytest.raises(UserError) as e:
        hardware.check_gpu_count(4, found, "JAX 0.10.2")
    assert str(e.value) == (
        "--gpus=4 but JAX 0.10.2 sees 2 GPU(s): GPU:0 NVIDIA H200, "
        "GPU:1 NVIDIA H200"
    )
    with pytest.raises(UserError, match="sees 0 GPU\\(s\\): none"):
        hardware.check_gpu_count(1, [], "TensorFlow")


def test_keras_backend_from_environment_then_keras_json(tmp_path):
    assert hardware.keras_backend({"KERAS_BACKEND": "jax"}) == "jax"
    home = {"KERAS_HOME": str(tmp_path)}
    assert hardware.keras_backend(home) == "tensorflow"
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "jax"}))
    assert hardware.keras_backend(home) == "jax"
    both = dict(home, KERAS_BACKEND="tensorflow")
    assert hardware.keras_backend(both) == "tensorflow"


def test_missing_framework_is_one_line_with_the_install(monkeypatch):
    hardware.require_backend("tensorflow")  # both are installed here
    hardware.require_backend("jax")
    monkeypatch.setattr(hardware, "installed", lambda m: m != "tensorflow")
    with pytest.raises(UserError) as e:
        hardware.require_backend("tensorflow")
    msg = str(e.value)
    assert len(msg.splitlines()) == 1
    assert 'pip install -e ".[cpu]"' in msg and ".[cuda]" in msg
    assert msg.endswith("or use --backend=jax")
    monkeypatch.setattr(hardware, "installed", lambda m: False)
    with pytest.raises(UserError, match=r'pip install -e "\.\[jax\]"'):
        hardware.require_backend("jax")


def test_multi_worker_from_tf_config_or_a_slurm_step():
    assert hardware.multi_worker({}) is None
    assert hardware.multi_worker({"TF_CONFIG": "{}"}) == "tf_config"
    step = {"SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "4"}
    assert hardware.slurm_num_tasks(step) == 4
    assert hardware.multi_worker(step) == "slurm"
    assert hardware.multi_worker(dict(step, TF_CONFIG="{}")) == "tf_config"
    # One task, or sbatch's batch script outside a step: one process.
    assert hardware.multi_worker(dict(step, SLURM_STEP_NUM_TASKS="1")) is None
    assert hardware.multi_worker({"SLURM_PROCID": "0"}) is None
    assert hardware.slurm_num_tasks({"SLURM_STEP_NUM_TASKS": "4"}) == 0


def test_imports_no_ml_framework():
    code = (
        "import sys, dnnlib.hardware; "
        "bad = {'tensorflow', 'jax', 'keras'} & set(sys.modules); "
        "assert not bad, bad"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_two_tensorflow_distributions_are_refused(monkeypatch):
    assert len(hardware.installed_distributions(hardware.TF_DISTRIBUTIONS)) == 1
    monkeypatch.setattr(
        hardware, "installed_distributions", lambda names: list(names[:2])
    )
    with pytest.raises(UserError) as e:
        hardware.require_backend("tensorflow")
    assert str(e.value).startswith(
        "2 TensorFlow distributions are installed (tensorflow, "
        "tensorflow-cpu); keep one: pip uninstall -y tensorflow "
        'tensorflow-cpu && pip install -e ".[cpu]"'
    )
    hardware.require_backend("jax")


def test_worker_index_count_and_chief():
    assert hardware.worker({}) == (0, 1, True)
    step = {"SLURM_PROCID": "2", "SLURM_STEP_NUM_TASKS": "4"}
    assert hardware.worker(step) == (2, 4, False)
    assert hardware.worker(dict(step, SLURM_PROCID="0")) == (0, 4, True)

    def tf_config(task, **cluster):
        return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": task})}

    two = ["h0:1", "h1:1"]
    w1 = {"type": "worker", "index": 1}
    assert hardware.worker(tf_config(w1, worker=two)) == (1, 2, False)
    w0 = {"type": "worker", "index": 0}
    assert hardware.worker(tf_config(w0, worker=two)) == (0, 2, True)
    # With a chief task, the chief writes and worker 0 does not.
    chief = {"type": "chief", "index": 0}
    c = ["c:1"]
    assert hardware.worker(tf_config(chief, chief=c, worker=two)) == (
        0,
        3,
        True,
    )
    assert hardware.worker(tf_config(w0, chief=c, worker=two)) == (1, 3, False)
    for bad in ({"TF_CONFIG": "{not json"}, tf_config({}, worker=two)):
        with pytest.raises(UserError, match="TF_CONFIG is not valid"):
            hardware.worker(bad)
    with pytest.raises(UserError, match="not in its cluster of 2"):
        hardware.worker(tf_config({"type": "worker", "index": 2}, worker=two))
    with pytest.raises(UserError, match="'ps'"):
        hardware.worker(tf_config({"type": "ps", "index": 0}, worker=two))


def test_jax_cluster_from_flags_or_a_slurm_step():
    assert hardware.jax_cluster("jax", environ={}) is None
    flags = ("h0:1234", 2, 1)
    assert hardware.jax_cluster("jax", *flags, environ={}) == (
        hardware.Cluster("h0:1234", 2, 1)
    )
    assert hardware.worker(cluster=hardware.Cluster("h0:1", 2, 1)) == (
        1,
        2,
        False,
    )
    # One process is no job; flags win over the environment.
    assert hardware.jax_cluster("jax", "h0:1", 1, 0, environ={}) is None
    step = {"SLURM_PROCID": "0", "SLURM_STEP_NUM_TASKS": "8"}
    assert hardware.jax_cluster("jax", environ=step) == (
        hardware.Cluster(None, 8, 0, auto=True)
    )
    assert hardware.jax_cluster("tensorflow", environ=step) is None
    for args, message in [
        (("h0:1", None, None), "--num-processes, --process-id missing"),
        (("h0", 2, 0), "--coordinator=h0: expected HOST:PORT"),
        (("h0:99999", 2, 0), "expected HOST:PORT"),
        (("h0:1", 2, 2), "--process-id=2: 0 to 1 for --num-processes=2"),
    ]:
        with pytest.raises(UserError, match=message):
            hardware.jax_cluster("jax", *args, environ={})
    with pytest.raises(UserError, match="--coordinator is for --backend=jax"):
        hardware.jax_cluster("tensorflow", *flags, environ={})
    with pytest.raises(UserError, match="unset TF_CONFIG"):
        hardware.jax_cluster("jax", environ={"TF_CONFIG": "{}"})

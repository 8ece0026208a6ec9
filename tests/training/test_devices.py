"""Devices per backend (training.backends.select_devices), the --gpus checks
of train.py and run_metrics.py, and the TensorFlow multi-worker cluster."""

import json
import os

import pytest

import run_metrics
import train
from datasets import dataset_tool
from dnnlib.util import UserError, run_cli
from training import backends
from training.backends import tensorflow as tf_backend

SLURM = {
    "SLURM_JOB_ID": "4242",
    "SLURM_PROCID": "3",
    "SLURM_STEP_NUM_TASKS": "4",
    "SLURM_STEP_NODELIST": "gpu[07-08]",
    "SLURM_STEP_TASKS_PER_NODE": "2(x2)",
}


@pytest.fixture
def no_cluster(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    for name in list(os.environ):
        if name.startswith("SLURM_"):
            monkeypatch.delenv(name)


def test_cpu_run_lists_the_cpu_and_notes_unseen_nvidia_gpus(tmp_path):
    # This machine's TensorFlow sees no GPU; a fake NVIDIA driver folder
    # stands for a box with GPUs and the CPU build installed.
    empty = str(tmp_path)
    devices = backends.select_devices(0, proc=empty + "/none", path=empty)
    assert devices.gpus == []
    assert devices.lines == [f"Devices ({tf_backend.LABEL}): CPU"]
    driver = tmp_path / "driver"
    driver.mkdir()
    devices = backends.select_devices(0, proc=str(driver), path=empty)
    assert len(devices.lines) == 2
    assert devices.lines[1].startswith("note: this machine has NVIDIA GPUs")
    assert devices.lines[1].endswith('pip install -e ".[cuda]"')
    # run_metrics' default of one GPU runs on the CPU.
    backends.select_devices(1, required=False, proc=str(driver), path=empty)


def test_too_many_gpus_is_an_error_naming_the_visible_ones():
    with pytest.raises(UserError, match=r"--gpus=2 but TensorFlow .* none"):
        backends.select_devices(2)


def test_jax_lists_its_gpus_and_refuses_multi_worker(monkeypatch, no_cluster):
    from training.backends import jax as jax_backend

    assert jax_backend.list_gpus() == []
    with pytest.raises(UserError, match="JAX .* sees 0 GPU"):
        jax_backend.make_strategy(gpus=1)
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {}}')
    with pytest.raises(UserError, match="jax.distributed is not initialized"):
        jax_backend.make_strategy()


@pytest.fixture(scope="module")
def data16(tmp_path_factory):
    path = tmp_path_factory.mktemp("d") / "syn16"
    dataset_tool.main(
        ["create_synthetic", str(path), "--resolution", "16"]
        + ["--num-images", "4"]
    )
    return str(path)


def test_cli_gpus_errors_are_one_line(tmp_path, capsys, data16):
    argv = ["--config=msg-stylegan-demo", f"--data={data16}", "--gpus=3"]
    with pytest.raises(SystemExit) as e:
        run_cli(train.main, argv + [f"--outdir={tmp_path}"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("--gpus=3 but TensorFlow 2.21.0 sees 0 GPU(s): none")
    assert len(err.splitlines()) == 1 and not os.listdir(tmp_path)
    snap = tmp_path / "network.pkl"
    snap.write_bytes(b"")
    with pytest.raises(SystemExit):
        run_cli(run_metrics.main, [f"--network={snap}", "--gpus=2"])
    err = capsys.readouterr().err.strip()
    assert err.endswith("--gpus=2 but TensorFlow 2.21.0 sees 0 GPU(s): none")


def test_no_cluster_is_one_process(no_cluster):
    assert tf_backend.cluster_resolver(0) is None


def test_tf_config_resolves_to_its_cluster(monkeypatch, no_cluster):
    workers = ["host0:12345", "host1:12345"]
    monkeypatch.setenv(
        "TF_CONFIG",
        json.dumps(
            {
                "cluster": {"worker": workers},
                "task": {"type": "worker", "index": 1},
            }
        ),
    )
    for name, value in SLURM.items():  # TF_CONFIG wins over SLURM
        monkeypatch.setenv(name, value)
    resolver = tf_backend.cluster_resolver(2)
    assert resolver.cluster_spec().as_dict() == {"worker": workers}
    assert (resolver.task_type, resolver.task_id) == ("worker", 1)
    assert resolver.num_accelerators() == {"GPU": 2}


def test_slurm_step_resolves_to_one_worker_per_task(monkeypatch, no_cluster):
    # Four tasks, two on each of gpu07 and gpu08; this is task 3. Ports
    # start at 15000 + job id % 20000 and count up per task on a node.
    for name, value in SLURM.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")
    resolver = tf_backend.cluster_resolver(1)
    port = 15000 + 4242
    assert resolver.cluster_spec().as_dict() == {
        "worker": [
            f"gpu07:{port}",
            f"gpu07:{port + 1}",
            f"gpu08:{port}",
            f"gpu08:{port + 1}",
        ]
    }
    assert (resolver.task_type, resolver.task_id) == ("worker", 3)
    assert resolver.num_accelerators() == {"GPU": 1}
    assert resolver.rpc_layer == "grpc"
    # SLURM's own GPU binding is left alone.
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "5"


def test_broken_slurm_step_is_a_user_error(monkeypatch, no_cluster):
    monkeypatch.setenv("SLURM_PROCID", "0")
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "2")
    with pytest.raises(UserError, match="cannot read the SLURM job step"):
        tf_backend.cluster_resolver(0)

"""Gs exports round trip: SavedModel, .keras and ONNX equal Gs's images."""

import numpy as np
import pytest

import generate
from msg_stylegan import inference
from tests.helpers import make_tiny_snapshot
from training import export

RES = 16
PSI = 0.6


@pytest.fixture(scope="module")
def snapshot_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("snap") / "network-final.pkl"
    make_tiny_snapshot(path, res=RES)
    return str(path)


def reference(G, z):
    """What generate.py computes: truncated ws, const noise, every scale."""
    ws = G.latent_codes(z, truncation_psi=PSI)
    imgs = G.synthesize(ws, noise_mode="const")
    return {f"img{img.shape[1]}": np.asarray(img) for img in imgs}


def latents(G, n=3):
    return np.random.RandomState(5).randn(n, G.z_dim).astype(np.float32)


def check(outputs, ref):
    assert sorted(outputs) == sorted(ref)
    for key, value in ref.items():
        np.testing.assert_allclose(np.asarray(outputs[key]), value, atol=1e-5)


def test_generate_exports_savedmodel_and_keras(snapshot_path, tmp_path):
    import tensorflow as tf

    argv = [
        "--network",
        snapshot_path,
        "--export",
        "savedmodel,keras",
        "--outdir",
        str(tmp_path),
    ]
    assert generate.run_cli(generate.main, argv) == 0
    G, _ = inference.load_network(snapshot_path)
    z = latents(G)
    ref = reference(G, z)
    assert sorted(ref) == ["img16", "img4", "img8"]
    # The SavedModel's serving signature, by name, without this project.
    loaded = tf.saved_model.load(str(tmp_path / "Gs-savedmodel"))
    serve = loaded.signatures["serving_default"]
    check(serve(z=tf.constant(z), truncation_psi=tf.constant(PSI)), ref)
    # The .keras file reloads as the generator (w_avg, noise buffers too).
    G2 = export.load_keras(str(tmp_path / "Gs.keras"))
    check(reference(G2, z), ref)
    # Nothing else was written: --export alone makes no seed images.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "Gs-savedmodel",
        "Gs.keras",
    ]


def test_progan_keras_round_trip(tmp_path):
    path = tmp_path / "progan.pkl"
    make_tiny_snapshot(path, res=RES, architecture="progan", progressive=True)
    G, _ = inference.load_network(str(path))
    z = latents(G)
    G2 = export.load_keras(export.export(G, str(tmp_path), "keras"))
    check(reference(G2, z), reference(G, z))


def test_onnx_round_trip(snapshot_path, tmp_path):
    pytest.importorskip("tf2onnx")
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    G, _ = inference.load_network(snapshot_path)
    path = export.export(G, str(tmp_path), "onnx")
    session = ort.InferenceSession(path)
    z = latents(G)
    feeds = {"z": z, "truncation_psi": np.array(PSI, np.float32)}
    names = [o.name for o in session.get_outputs()]
    outputs = dict(zip(names, session.run(None, feeds)))
    check(outputs, reference(G, z))


def test_unknown_format_lists_valid_ones(snapshot_path, capsys):
    with pytest.raises(SystemExit) as e:
        generate.main(["--network", snapshot_path, "--export", "tflite"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert (
        "unknown export format 'tflite'; valid: savedmodel, keras, onnx" in err
    )

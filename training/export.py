"""Export Gs for others to serve: TF SavedModel, `.keras` file, ONNX.

Every format computes what generate.py computes for latents z: the mapping,
the truncation trick with a run-time psi on the network's cutoff layers,
and the synthesis with the stored noise buffers (`noise_mode="const"`, so
an export is a deterministic function). Outputs are the images at every
scale, `img4` .. `img<R>` in [-1, 1], NHWC (progressive networks have one
full-size image at their stored lod, named by its size).

- `savedmodel`: a folder; signature `serving_default` (and endpoint
  `serve`) takes `z` [N, z_dim] float32 and `truncation_psi` (scalar).
- `keras`: `Gs.keras`, the generator itself; reload with `load_keras`.
- `onnx`: `Gs.onnx` with the same inputs and outputs, through Keras'
  exporter (needs the `onnx` extra: tf2onnx and onnx).
"""

import os

import keras
import numpy as np
from keras import ops

from dnnlib.util import UserError
from training import EXPORT_FORMATS as FORMATS

FILENAMES = {
    "savedmodel": "Gs-savedmodel",
    "keras": "Gs.keras",
    "onnx": "Gs.onnx",
}


def truncate(ws, w_avg, psi, cutoff):
    """w_avg + psi * (ws - w_avg) on layers below `cutoff`, psi a tensor."""
    num_ws = ws.shape[1]
    cutoff = num_ws if cutoff is None else min(cutoff, num_ws)
    mask = np.array([[1.0] if i < cutoff else [0.0] for i in range(num_ws)])
    mask = ops.convert_to_tensor(mask, ws.dtype)  # [num_ws, 1]
    coef = mask * ops.cast(psi, ws.dtype) + (1 - mask)
    w_avg = ops.cast(w_avg, ws.dtype)
    return w_avg + (ws - w_avg) * coef


def gs_images(G, z, truncation_psi):
    """{`img<res>`: images} for latents z at a run-time truncation psi."""
    codes = G.latent_codes(z)  # ws untruncated; z itself for ProGAN
    if G.num_ws:
        codes = truncate(codes, G.w_avg, truncation_psi, G.truncation_cutoff)
    imgs = G.synthesize(codes, noise_mode="const")
    return {f"img{img.shape[1]}": img for img in imgs}


class GsServing(keras.Model):
    """Gs behind the serving call `(z, truncation_psi) -> {img<res>}`.

    Args:
        G: a built generator (any family).
    """

    def __init__(self, G, **kwargs):
        super().__init__(**kwargs)
        self.G = G

    def call(self, z, truncation_psi):
        return gs_images(self.G, z, truncation_psi)


def _signature(G):
    import tensorflow as tf

    return [
        tf.TensorSpec((None, G.z_dim), tf.float32, name="z"),
        tf.TensorSpec((), tf.float32, name="truncation_psi"),
    ]


def export(G, outdir, fmt):
    """Write Gs in format `fmt` into `outdir`; returns the path written."""
    if fmt not in FORMATS:
        raise UserError(
            f"unknown export format '{fmt}'; valid: " + ", ".join(FORMATS)
        )
    if keras.backend.backend() != "tensorflow" and fmt != "keras":
        raise UserError(
            f"--export={fmt} needs the TensorFlow backend "
            "(KERAS_BACKEND=tensorflow)"
        )
    path = os.path.join(outdir, FILENAMES[fmt])
    if fmt == "keras":
        import msg_stylegan.saving  # noqa: F401  (registers the classes)

        G.save(path)
        return path
    if fmt == "onnx":
        try:
            import onnx  # noqa: F401
            import tf2onnx  # noqa: F401
        except ImportError:
            raise UserError(
                "--export=onnx needs tf2onnx and onnx: pip install -e '.[onnx]'"
            )
    serving = GsServing(G, name="Gs_serving")
    serving(*[np.zeros((1, G.z_dim), np.float32), np.float32(1.0)])
    if fmt == "savedmodel":
        serving.export(
            path,
            format="tf_saved_model",
            verbose=False,
            input_signature=_signature(G),
        )
    else:
        serving.export(
            path, format="onnx", verbose=False, input_signature=_signature(G)
        )
    return path


def load_keras(path):
    """A `.keras` Gs written by `export` (only files you trust)."""
    import msg_stylegan.saving  # noqa: F401  (registers the classes)

    return keras.saving.load_model(path)

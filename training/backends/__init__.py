"""The one place that picks the backend module from Keras' backend."""

import keras


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

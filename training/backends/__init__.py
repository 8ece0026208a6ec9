"""The one place that picks the backend module from Keras' backend."""

import keras


def get():
    """The backend module matching `keras.backend.backend()`."""
    name = keras.backend.backend()
    if name == "tensorflow":
        from training.backends import tensorflow

        return tensorflow
    raise RuntimeError(
        f"training supports the tensorflow backend; KERAS_BACKEND is '{name}'"
    )

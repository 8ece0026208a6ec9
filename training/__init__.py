"""Losses, training steps, the training loop and snapshots.

The export formats are named here so that generate.py lists them without
Keras.
"""

EXPORT_FORMATS = ("savedmodel", "keras", "onnx")  # training/export.py

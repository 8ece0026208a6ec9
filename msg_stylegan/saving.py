"""Register the generators' classes with Keras so a `.keras` Gs reloads.

Importing this module is what `keras.saving.load_model("Gs.keras")` needs
(training.export.load_keras does it). Only load `.keras` files you made or
trust: the format's config path has had code-execution advisories even in
safe mode (CVE-2025-1550, CVE-2025-9906); downloaded networks go through
snapshots or convert_tf1 instead.
"""

import keras

from msg_stylegan import generator, layers, progan

PACKAGE = "msg_stylegan"

_CLASSES = (
    layers.EqualizedDense,
    layers.EqualizedConv2D,
    layers.NoiseInput,
    layers.StyleModulation,
    layers.ToRGB,
    layers.FromRGB,
    generator.MappingNetwork,
    generator.SynthesisLayer,
    generator.SynthesisBlock,
    generator.SynthesisNetwork,
    generator.Generator,
    progan.ProGANGeneratorBlock,
    progan.ProGANGenerator,
)

for _cls in _CLASSES:
    keras.saving.register_keras_serializable(package=PACKAGE)(_cls)

"""Layers with weights: equalized-lr dense/conv, noise, styles, RGB heads,
and `make_conv`/`make_dense`, which build a layer of a given convolution kind
(equalized, plain or spectral-normalised)."""

import math

import keras
from keras import ops

from msg_stylegan import ops as msg_ops
from msg_stylegan.initializers import HostRandom
from msg_stylegan.spectral_norm import SpectralNorm

SQRT2 = math.sqrt(2.0)


def _act(x, activation):
    if activation is None or activation == "linear":
        return x
    if activation == "lrelu":
        return msg_ops.lrelu(x)
    raise ValueError(f"unknown activation '{activation}'")


class EqualizedDense(keras.layers.Layer):
    """Dense layer with equalized learning rate.

    Weights are stored as N(0, 1/lr_multiplier) and scaled at run time by
    `gain / sqrt(fan_in) * lr_multiplier`, so every layer learns at the same
    speed under Adam (Karras et al. 2018). The bias is scaled by
    `lr_multiplier` too (the mapping network uses 0.01).

    Args:
        units: int, output features.
        gain: float, the He gain (sqrt(2) before a leaky ReLU, 1 otherwise).
        lr_multiplier: float, learning-rate multiplier for weights and bias.
        use_bias: bool.
        bias_init: float, initial value of the (unscaled) bias.
        activation: None or "lrelu".
    """

    def __init__(
        self,
        units,
        gain=1.0,
        lr_multiplier=1.0,
        use_bias=True,
        bias_init=0.0,
        activation=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = units
        self.gain = gain
        self.lr_multiplier = lr_multiplier
        self.use_bias = use_bias
        self.bias_init = bias_init
        self.activation = activation

    def build(self, input_shape):
        fan_in = input_shape[-1]
        self.weight_scale = self.gain / math.sqrt(fan_in) * self.lr_multiplier
        self.kernel = self.add_weight(
            name="kernel",
            shape=(fan_in, self.units),
            initializer=HostRandom(stddev=1.0 / self.lr_multiplier),
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.units,),
                initializer=keras.initializers.Constant(
                    self.bias_init / self.lr_multiplier
                ),
            )

    def call(self, x):
        x = ops.matmul(x, self.kernel * self.weight_scale)
        if self.use_bias:
            x = x + self.bias * self.lr_multiplier
        return _act(x, self.activation)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "gain": self.gain,
            "lr_multiplier": self.lr_multiplier,
            "use_bias": self.use_bias,
            "bias_init": self.bias_init,
            "activation": self.activation,
        }


class EqualizedConv2D(keras.layers.Layer):
    """2-D convolution with equalized learning rate and optional resampling.

    `up=True` upsamples x2 (nearest) before the conv and then blurs, as the
    StyleGAN synthesis blocks; `down=True` is StyleGAN's conv-then-downscale
    (a 3x3 conv followed by a 2x2 mean, the same as its fused 4x4 stride-2
    kernel). "same" padding throughout.

    Args:
        filters: int, output channels.
        kernel_size: int, square kernel size.
        gain: float, He gain.
        lr_multiplier: float.
        use_bias: bool.
        activation: None or "lrelu".
        up: bool, upsample x2 then conv then blur.
        down: bool, conv then 2x2 average.
    """

    def __init__(
        self,
        filters,
        kernel_size,
        gain=SQRT2,
        lr_multiplier=1.0,
        use_bias=True,
        activation=None,
        up=False,
        down=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.gain = gain
        self.lr_multiplier = lr_multiplier
        self.use_bias = use_bias
        self.activation = activation
        self.up = up
        self.down = down

    def build(self, input_shape):
        k, c = self.kernel_size, input_shape[-1]
        self.weight_scale = self.gain / math.sqrt(k * k * c)
        self.weight_scale *= self.lr_multiplier
        self.kernel = self.add_weight(
            name="kernel",
            shape=(k, k, c, self.filters),
            initializer=HostRandom(stddev=1.0 / self.lr_multiplier),
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=(self.filters,), initializer="zeros"
            )

    def call(self, x):
        # Upsample, convolve, blur (synthesis); or convolve, downscale (D).
        if self.up:
            x = msg_ops.upsample2d(x)
        x = ops.conv(x, self.kernel * self.weight_scale, padding="same")
        if self.up:
            x = msg_ops.blur2d(x)
        if self.down:
            x = msg_ops.downsample2d(x)
        if self.use_bias:
            x = x + self.bias * self.lr_multiplier
        return _act(x, self.activation)

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        f = 2 if self.up else (0.5 if self.down else 1)
        h = None if h is None else int(h * f)
        w = None if w is None else int(w * f)
        return (n, h, w, self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "gain": self.gain,
            "lr_multiplier": self.lr_multiplier,
            "use_bias": self.use_bias,
            "activation": self.activation,
            "up": self.up,
            "down": self.down,
        }


class NoiseInput(keras.layers.Layer):
    """Adds a single-channel noise image times a learned per-channel strength.

    Noise modes: "random" (given by the caller, or drawn from the layer's own
    seed generator), "const" (a fixed buffer saved in snapshots), "none".

    Args:
        res: int, the spatial size of the noise image.
    """

    def __init__(self, res, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.res = res
        self.seed = seed

    def build(self, input_shape):
        # Made here, inside the layer's name scope, so its path is unique.
        self.seed_generator = keras.random.SeedGenerator(
            self.seed, name="seed_generator"
        )
        self.strength = self.add_weight(
            name="strength", shape=(input_shape[-1],), initializer="zeros"
        )
        self.const = self.add_weight(
            name="const",
            shape=(1, self.res, self.res, 1),
            initializer=HostRandom(stddev=1.0),
            trainable=False,
        )

    def call(self, x, noise_mode="random", noise=None):
        # Pick the noise image [N, res, res, 1] for this mode.
        if noise_mode == "none":
            return x
        if noise_mode == "const":
            noise = self.const
        elif noise_mode == "random":
            if noise is None:
                shape = (ops.shape(x)[0], self.res, self.res, 1)
                noise = keras.random.normal(shape, seed=self.seed_generator)
        else:
            raise ValueError(
                f"noise_mode must be random, const or none, got '{noise_mode}'"
            )
        return x + ops.cast(noise, x.dtype) * ops.cast(self.strength, x.dtype)

    def get_config(self):
        return {**super().get_config(), "res": self.res, "seed": self.seed}


class StyleModulation(keras.layers.Layer):
    """AdaIN style: `x * (1 + s) + b` with (s, b) an equalized dense of w.

    Args:
        channels: int, the feature channels modulated.
    """

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.affine = EqualizedDense(
            2 * channels, gain=1.0, name="affine", dtype=self.dtype_policy
        )

    def build(self, x_shape, w_shape):
        self.affine.build(w_shape)

    def call(self, x, w):
        style = self.affine(w)  # [N, 2C]
        s = ops.reshape(style[:, : self.channels], (-1, 1, 1, self.channels))
        b = ops.reshape(style[:, self.channels :], (-1, 1, 1, self.channels))
        return x * (ops.cast(s, x.dtype) + 1) + ops.cast(b, x.dtype)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


class ToRGB(EqualizedConv2D):
    """The MSG output head: linear 1x1 conv to image channels (gain 1, bias)."""

    def __init__(self, img_channels=3, **kwargs):
        kwargs.pop("filters", None)
        kwargs.pop("kernel_size", None)
        kwargs.pop("gain", None)
        super().__init__(img_channels, 1, gain=1.0, **kwargs)
        self.img_channels = img_channels

    def get_config(self):
        config = super().get_config()
        for key in ("filters", "kernel_size", "gain"):
            config.pop(key)
        return {**config, "img_channels": self.img_channels}


class FromRGB(EqualizedConv2D):
    """The discriminator's input head: 1x1 conv + leaky ReLU (gain sqrt 2)."""

    def __init__(self, filters, **kwargs):
        kwargs.pop("kernel_size", None)
        kwargs.pop("activation", None)
        kwargs.pop("gain", None)
        super().__init__(filters, 1, gain=SQRT2, activation="lrelu", **kwargs)

    def get_config(self):
        config = super().get_config()
        for key in ("kernel_size", "activation", "gain"):
            config.pop(key)
        return config


# How a block's weight layers are parameterised; blocks and combine layers
# take one of these as `convolution` instead of coming in twin classes.
CONVOLUTIONS = ("equalized", "plain", "spectral")


def check_convolution(convolution):
    if convolution not in CONVOLUTIONS:
        raise ValueError(
            f"unknown convolution '{convolution}'; valid: "
            + ", ".join(CONVOLUTIONS)
        )


def he_normal(gain):
    """N(0, gain^2 / fan_in): a plain layer's init equal to the run-time
    weights of an equalized layer with that gain (untruncated, as theirs)."""
    return HostRandom("he_normal", gain=gain)


def _keras_activation(activation):
    if activation in (None, "linear"):
        return None
    if activation == "lrelu":
        return "leaky_relu"  # slope 0.2, as msg_ops.lrelu
    raise ValueError(f"unknown activation '{activation}'")


def _keras_layer(convolution, cls, name, dtype, gain, activation, **kwargs):
    """A Keras Conv2D or Dense: plain (He-initialised, named `name`) or
    spectral (glorot-uniform, under a SpectralNorm named `name`)."""
    activation = _keras_activation(activation)
    if convolution == "plain":
        init = he_normal(gain)
        return cls(
            activation=activation,
            kernel_initializer=init,
            name=name,
            dtype=dtype,
            **kwargs,
        )
    inner = "conv" if cls is keras.layers.Conv2D else "dense"
    layer = cls(
        activation=activation,
        kernel_initializer=HostRandom("glorot_uniform"),
        name=inner,
        dtype=dtype,
        **kwargs,
    )
    return SpectralNorm(layer, name=name, dtype=dtype)


def make_conv(
    convolution,
    filters,
    kernel_size,
    name,
    dtype,
    gain=SQRT2,
    activation="lrelu",
    use_bias=True,
    down=False,
):
    """A "same" convolution of one kind, named `name`.

    `equalized`: EqualizedConv2D, N(0, 1) weights scaled at run time by
    `gain / sqrt(fan_in)`. `plain`: a Keras Conv2D initialised
    N(0, gain^2 / fan_in), the same random function as an equalized layer
    with the optimiser seeing unscaled weights. `spectral`: a Keras Conv2D
    (glorot-uniform, named `conv`) under `SpectralNorm`, where the gain has
    no meaning (W / sigma does not depend on W's scale). `down` (conv, then
    2x2 mean, then bias) exists for the equalized kind only.
    """
    check_convolution(convolution)
    if convolution == "equalized":
        return EqualizedConv2D(
            filters,
            kernel_size,
            gain=gain,
            activation=activation,
            use_bias=use_bias,
            down=down,
            name=name,
            dtype=dtype,
        )
    if down:
        raise ValueError(f"{name}: down=True needs an equalized conv")
    return _keras_layer(
        convolution,
        keras.layers.Conv2D,
        name,
        dtype,
        gain,
        activation,
        filters=filters,
        kernel_size=kernel_size,
        padding="same",
        use_bias=use_bias,
    )


def make_dense(
    convolution,
    units,
    name,
    dtype,
    gain=SQRT2,
    activation="lrelu",
    use_bias=True,
):
    """A dense layer of one kind, named `name` (see `make_conv`)."""
    check_convolution(convolution)
    if convolution == "equalized":
        return EqualizedDense(
            units,
            gain=gain,
            activation=activation,
            use_bias=use_bias,
            name=name,
            dtype=dtype,
        )
    return _keras_layer(
        convolution,
        keras.layers.Dense,
        name,
        dtype,
        gain,
        activation,
        units=units,
        use_bias=use_bias,
    )

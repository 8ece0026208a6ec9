"""MSG-ProGAN and ProGAN: the paper's other generator and discriminator.

SPEC section 11. The generator normalises z to the hypersphere, grows it
from a dense 4x4 block by nearest upsampling and pixel-normed 3x3 convs, and
has a toRGB head at every resolution. The discriminator takes the images
coarse to fine (`architecture="msg"`, MSG-ProGAN) or the full-size image
alone (`"progan"`, optionally grown progressively as SPEC section 10), with
minibatch stddev in the 4x4 block only. MSG-GAN v1's switches: the
discriminator's `spectral_norm=True` (spectral normalisation instead of
equalized learning rate) and the generator's `pixel_norm=False` and
`equalized_lr=False`.
"""

import keras
from keras import ops

from msg_stylegan import ops as msg_ops
from msg_stylegan import progressive as prog
from msg_stylegan.discriminator import (
    _make_combine,
    check_images,
    check_spatial,
    get_combine,
)
from msg_stylegan.generator import (
    channels_for,
    check_resolution,
    resolutions_for,
)
from msg_stylegan.layers import (
    SQRT2,
    EqualizedConv2D,
    EqualizedDense,
    FromRGB,
    ToRGB,
)


def _he_normal(gain):
    """N(0, gain^2 / fan_in): a plain layer's init equal to the run-time
    weights of an equalized layer with that gain (untruncated, as theirs)."""
    return keras.initializers.VarianceScaling(
        scale=gain**2, mode="fan_in", distribution="untruncated_normal"
    )


def _g_dense(units, gain, equalized_lr, dtype):
    """The 4x4 block's dense layer (no bias), equalized or plain."""
    if equalized_lr:
        return EqualizedDense(
            units, gain=gain, use_bias=False, name="dense", dtype=dtype
        )
    return keras.layers.Dense(
        units,
        use_bias=False,
        kernel_initializer=_he_normal(gain),
        name="dense",
        dtype=dtype,
    )


def _g_conv(filters, name, equalized_lr, dtype):
    """A generator 3x3 conv + lrelu (gain sqrt 2), equalized or plain."""
    if equalized_lr:
        return EqualizedConv2D(
            filters, 3, activation="lrelu", name=name, dtype=dtype
        )
    return keras.layers.Conv2D(
        filters,
        3,
        padding="same",
        activation="leaky_relu",  # slope 0.2, as msg_ops.lrelu
        kernel_initializer=_he_normal(SQRT2),
        name=name,
        dtype=dtype,
    )


def _g_torgb(img_channels, equalized_lr, dtype, gain=1.0):
    """The linear 1x1 RGB head with bias (gain 1), equalized or plain;
    BMSG-GAN's code scales it with gain sqrt(2) like every other layer."""
    if equalized_lr and gain != 1.0:
        return EqualizedConv2D(
            img_channels, 1, gain=gain, name="torgb", dtype=dtype
        )
    if equalized_lr:
        return ToRGB(img_channels, name="torgb", dtype=dtype)
    return keras.layers.Conv2D(
        img_channels,
        1,
        kernel_initializer=_he_normal(1.0),
        name="torgb",
        dtype=dtype,
    )


class ProGANGeneratorBlock(keras.layers.Layer):
    """One resolution of the ProGAN generator; returns its features.

    4x4: dense z -> 4x4xC, per-channel bias, lrelu, pixel norm (`dense`),
    then 3x3 conv, lrelu, pixel norm (`conv1`). Above: nearest upsample x2,
    then (3x3 conv, lrelu, pixel norm) twice (`conv0`, `conv1`). The RGB head
    `torgb` is called by the generator, only for the levels a call needs.

    The dense layer's gain is sqrt(2) / 4: it stands for ProGAN's 4x4
    transposed conv on a 1x1 input, whose equalized-lr fan-in is
    4 * 4 * z_dim, so its run-time scale sqrt(2) / sqrt(16 * z_dim) is
    sqrt(2) / 4 over the dense layer's own fan-in (NVIDIA's ProGAN writes
    the same gain). BMSG-GAN's code (`bmsg=True`) scales its deconv by
    sqrt(2) / sqrt(z_dim), 4x more (its fan-in is the input channels
    alone), has no pixel norm between the 4x4 layer and its 3x3 conv, and
    gives toRGB gain sqrt(2).

    MSG-GAN v1's generator (BMSG-GAN's first code) had neither pixel norm
    nor equalized lr (it also spectrally normalised its 3x3 convs and put a
    tanh on the RGB outputs; neither is offered here). `pixel_norm=False`
    drops the pixel norm after every conv. `equalized_lr=False` makes
    `dense`, `conv0`, `conv1` and `torgb` plain Keras `Dense`/`Conv2D`
    layers with the same variables (names, shapes, paths and counts),
    initialised N(0, gain^2 / fan_in) with the gain above: the distribution
    of an equalized layer's run-time weights, so the network starts as the
    same random function and only the optimiser's view of the weights
    differs (Adam's fixed-size steps are no longer relative to each layer's
    He scale). Keras' default glorot-uniform (half He's variance for a 3x3
    conv) or PyTorch's default (a sixth; v1 had it, but under spectral
    norm) would, without pixel norm, shrink the signal geometrically with
    depth.

    Args:
        res: int. channels: int, C(res). img_channels: int.
        pixel_norm: bool, pixel norm after every conv (ProGAN).
        equalized_lr: bool, equalized-lr layers (run-time He scale).
        bmsg: bool, BMSG-GAN's code's gains and 4x4 block (above).
    """

    def __init__(
        self,
        res,
        channels,
        img_channels=3,
        pixel_norm=True,
        equalized_lr=True,
        bmsg=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.res = res
        self.channels = channels
        self.img_channels = img_channels
        self.pixel_norm = pixel_norm
        self.equalized_lr = equalized_lr
        self.bmsg = bmsg
        dt, eq = self.dtype_policy, equalized_lr
        if res == 4:
            # The bias is per channel, added after the reshape, as ProGAN.
            gain = SQRT2 if bmsg else SQRT2 / 4
            self.dense = _g_dense(16 * channels, gain, eq, dt)
            self.conv0 = None
        else:
            self.dense = None
            self.conv0 = _g_conv(channels, "conv0", eq, dt)
        self.conv1 = _g_conv(channels, "conv1", eq, dt)
        self.torgb = _g_torgb(img_channels, eq, dt, SQRT2 if bmsg else 1.0)

    def build(self, x_shape):
        # x_shape: [N, z_dim] at 4x4, else [N, res/2, res/2, C(res/2)].
        if self.res == 4:
            self.dense.build(x_shape)
            self.bias = self.add_weight(
                name="bias", shape=(self.channels,), initializer="zeros"
            )
        else:
            up = (x_shape[0], self.res, self.res, x_shape[-1])
            self.conv0.build(up)
        shape = (x_shape[0], self.res, self.res, self.channels)
        self.conv1.build(shape)
        self.torgb.build(shape)

    def _norm(self, x):
        return msg_ops.pixel_norm(x) if self.pixel_norm else x

    def call(self, x):
        if self.res == 4:
            # Dense from the (normalised) z, as a 4x4 map with channel bias.
            x = self.dense(x)
            x = ops.reshape(x, (-1, 4, 4, self.channels))  # [NHWC]
            x = msg_ops.lrelu(x + ops.cast(self.bias, x.dtype))
            if not self.bmsg:  # BMSG-GAN: no pixel norm before the 3x3 conv
                x = self._norm(x)
        else:
            # Nearest upsampling, then the first conv.
            x = self._norm(self.conv0(msg_ops.upsample2d(x)))
        return self._norm(self.conv1(x))

    def get_config(self):
        return {
            **super().get_config(),
            "res": self.res,
            "channels": self.channels,
            "img_channels": self.img_channels,
            "pixel_norm": self.pixel_norm,
            "equalized_lr": self.equalized_lr,
            "bmsg": self.bmsg,
        }


class ProGANGenerator(keras.Model):
    """z -> images: the ProGAN generator with an RGB head at every level.

    No mapping network, styles or noise: the style and noise arguments of
    the shared generator call are accepted and ignored, `num_ws` is 0 and
    `w_avg` None, so the training backends drive every generator family
    the same way.

    `progressive=False` returns the images coarse to fine (4x4 first, full
    size last), as the MSG-StyleGAN generator. `progressive=True` returns a
    list of ONE full-size image at a level of detail: a training step passes
    the current `resolution` (static int) and the fade weight `alpha`
    (runtime scalar, the weight of the coarser level); other calls blend
    every level at the stored non-trainable `lod` weight.

    Args:
        img_resolution: int, power of two in 8..1024.
        img_channels: int.
        z_dim: int, latent size.
        channel_base, channel_max: int, C(res) = min(base / res, max);
            16384 and 512 give ProGAN's (fmap_base 8192) 512..16 channels.
        progressive: bool, one full-size output at a level of detail.
        pixel_norm: bool, ProGAN's normalisations: z onto the hypersphere
            (`z / |z| * sqrt(z_dim)`, the latent's normalisation) and pixel
            norm after every conv. False is MSG-GAN v1, which had neither:
            its code fed z ~ N(0, I) to the first layer as drawn.
        equalized_lr: bool, equalized-lr layers; False is MSG-GAN v1's
            plain layers, He-initialised (see `ProGANGeneratorBlock`).
        bmsg: bool, BMSG-GAN's code's gains and 4x4 block
            (`ProGANGeneratorBlock`).
    """

    num_ws = 0
    truncation_cutoff = None

    def __init__(
        self,
        img_resolution=1024,
        img_channels=3,
        z_dim=512,
        channel_base=16384,
        channel_max=512,
        progressive=False,
        pixel_norm=True,
        equalized_lr=True,
        bmsg=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_resolution(img_resolution)
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.z_dim = z_dim
        self.channel_base = channel_base
        self.channel_max = channel_max
        self.progressive = progressive
        self.pixel_norm = pixel_norm
        self.equalized_lr = equalized_lr
        self.bmsg = bmsg
        self.resolutions = resolutions_for(img_resolution)
        self.blocks = [
            ProGANGeneratorBlock(
                res,
                channels_for(res, channel_base, channel_max),
                img_channels,
                pixel_norm=pixel_norm,
                equalized_lr=equalized_lr,
                bmsg=bmsg,
                name=f"b{res}",
                dtype=self.dtype_policy,
            )
            for res in self.resolutions
        ]

    @property
    def noise_resolutions(self):
        return []

    @property
    def w_avg(self):
        return None

    def latent_codes(self, z, truncation_psi=1.0, truncation_cutoff=None):
        """What `synthesize` takes: z itself (ProGAN has no w space, so
        generate.py interpolates in z; truncation does not apply)."""
        return ops.convert_to_tensor(z)

    def synthesize(self, z, noise_mode="random", noise=None):
        """z -> images as `call` returns them."""
        return self(z)

    def num_ws_used(self, resolution=None):
        return 0

    def build(self, z_shape):
        shape = tuple(z_shape)
        for block in self.blocks:
            block.build(shape)
            shape = (z_shape[0], block.res, block.res, block.channels)
        if self.progressive:
            self.lod = self.add_weight(
                name="lod",
                shape=(),
                initializer="zeros",
                dtype="float32",
                trainable=False,
            )
        self.built = True

    def features(self, z, resolution=None):
        """The features of every block up to `resolution`, coarse to fine."""
        resolution = resolution or self.img_resolution
        if resolution not in self.resolutions:
            raise ValueError(
                f"{self.name}: resolution must be one of {self.resolutions}, "
                f"got {resolution!r}"
            )
        if z.shape[-1] != self.z_dim:
            raise ValueError(
                f"{self.name}: expected z of shape [N, {self.z_dim}], got "
                f"{tuple(z.shape)}"
            )
        # Project z onto the sphere of radius sqrt(z_dim); MSG-GAN v1 used
        # z as drawn.
        x = msg_ops.pixel_norm(z) if self.pixel_norm else z
        xs = []
        for block in self.blocks[: self.resolutions.index(resolution) + 1]:
            x = block(x)
            xs.append(x)
        return xs

    def call(
        self,
        z,
        truncation_psi=1.0,
        truncation_cutoff="default",
        noise_mode="random",
        noise=None,
        resolution=None,
        alpha=None,
        mixing=None,
        return_ws=False,
    ):
        if mixing is not None:
            raise ValueError(
                f"{self.name}: ProGAN has no styles to mix; mixing must be None"
            )
        if not self.progressive:
            # Every level's RGB head, coarse to fine.
            xs = self.features(z)
            imgs = [b.torgb(x) for b, x in zip(self.blocks, xs)]
        elif resolution is None:
            # Inference: every level, blended at the stored lod.
            xs = self.features(z)
            levels = [b.torgb(x) for b, x in zip(self.blocks, xs)]
            imgs = [prog.blend_all_levels(levels, self.lod)]
        else:
            # Training: the blocks up to `resolution`, faded by alpha.
            xs = self.features(z, resolution)
            img = self.blocks[len(xs) - 1].torgb(xs[-1])
            previous = None
            if len(xs) > 1 and alpha is not None:
                previous = self.blocks[len(xs) - 2].torgb(xs[-2])
            imgs = prog.training_output(
                img, previous, alpha, self.img_resolution
            )
        return (imgs, None) if return_ws else imgs

    def summary_rows(self):
        """(layer name, layer or None, output shape) for a network table."""
        rows, n, prev = [], "N", None
        for b in self.blocks:
            r, c, p = b.res, b.channels, f"b{b.res}"
            if r == 4:
                rows.append((f"{p}/dense", b.dense, (n, 4 * 4 * c)))
                rows.append((f"{p}/bias", b.bias, (n, 4, 4, c)))
            else:
                rows.append((f"{p}/upsample", None, (n, r, r, prev)))
                rows.append((f"{p}/conv0", b.conv0, (n, r, r, c)))
            prev = c
            rows.append((f"{p}/conv1", b.conv1, (n, r, r, c)))
            rows.append((f"{p}/torgb", b.torgb, (n, r, r, self.img_channels)))
        return rows

    def get_config(self):
        return {
            "name": self.name,
            "img_resolution": self.img_resolution,
            "img_channels": self.img_channels,
            "z_dim": self.z_dim,
            "channel_base": self.channel_base,
            "channel_max": self.channel_max,
            "progressive": self.progressive,
            "pixel_norm": self.pixel_norm,
            "equalized_lr": self.equalized_lr,
            "bmsg": self.bmsg,
        }


def _l2_normalize(x):
    return x * ops.rsqrt(ops.maximum(ops.sum(ops.square(x)), 1e-12))


class SpectralNorm(keras.layers.SpectralNormalization):
    """Spectral normalisation of a plain Keras Conv2D or Dense, functionally.

    Keras' own wrapper, in training, assigns W / sigma INTO the wrapped
    layer's trainable kernel: on TensorFlow the gradient then skips sigma
    and the stored weights are overwritten, while JAX's `stateless_call`
    drops assignments to trainable variables, so the two backends would
    train different models. This subclass never writes the kernel. Each
    training call runs `power_iterations` steps of power iteration on the
    stored unit vector `vector_u` and assigns only that (non-trainable, so
    `stateless_call` returns it on JAX; synchronised on read, so every
    replica of a distribution strategy updates its own copy, alike, from
    the same W). Every call, training or not, convolves with
    W / sigma, sigma = |W u| from the current u held constant, so the
    gradient passes through sigma (Miyato et al. 2018). With u converged,
    sigma is W's largest singular value; inference calls use the stored u
    without iterating.

    The wrapped layers keep Keras' default glorot-uniform initialisation:
    W / sigma does not depend on W's scale, which only sets how large
    Adam's fixed-size steps are relative to W, and glorot's std of about
    1 / sqrt(fan_in) is that of PyTorch's default conv initialisation used
    by the reference spectral-norm discriminator.

    Args:
        layer: a built or unbuilt `keras.layers.Conv2D` or `Dense`.
        power_iterations: int, power iterations per training call.
    """

    def build(self, input_shape):
        if not isinstance(
            self.layer, (keras.layers.Conv2D, keras.layers.Dense)
        ):
            raise ValueError(
                f"{self.name}: SpectralNorm wraps Conv2D or Dense, got "
                f"{type(self.layer).__name__}"
            )
        keras.layers.Wrapper.build(self, input_shape)
        self.kernel = self.layer.kernel
        self.kernel_shape = tuple(self.kernel.shape)
        # On-read synchronisation: under a tf.distribute strategy each
        # replica assigns its own copy inside the compiled step (no
        # cross-replica sync there); all compute the same u from the same W.
        with keras.name_scope(self.name, caller=self):
            self.vector_u = keras.Variable(
                keras.initializers.TruncatedNormal(stddev=0.02),
                shape=(1, self.kernel_shape[-1]),
                dtype=self.kernel.dtype,
                trainable=False,
                aggregation="mean",
                synchronization="on_read",
                name="vector_u",
            )

    def normalized_kernel(self, training=False):
        """(W / sigma, new u): the kernel to use and the u to store."""
        kernel = self.layer.kernel
        w = ops.reshape(kernel, (-1, self.kernel_shape[-1]))  # [fan_in, out]
        u = _l2_normalize(ops.cast(self.vector_u, w.dtype))  # [1, out]
        if training:
            for _ in range(self.power_iterations):
                v = _l2_normalize(ops.matmul(u, ops.transpose(w)))  # [1, in]
                u = _l2_normalize(ops.matmul(v, w))  # [1, out]
        u = ops.stop_gradient(u)
        sigma = ops.sqrt(ops.sum(ops.square(ops.matmul(w, ops.transpose(u)))))
        return kernel / sigma, u

    def call(self, inputs, training=False):
        kernel, u = self.normalized_kernel(training)
        if training:
            self.vector_u.assign(ops.cast(u, self.vector_u.dtype))
        layer = self.layer
        if isinstance(layer, keras.layers.Dense):
            x = ops.matmul(inputs, kernel)
        else:
            x = layer.convolution_op(inputs, kernel)
        if layer.use_bias:
            x = x + ops.cast(layer.bias, x.dtype)
        return layer.activation(x)


def _conv(
    filters,
    kernel_size,
    spectral_norm,
    name,
    dtype,
    activation="lrelu",
    use_bias=True,
):
    """A conv ("same" padding): equalized lr (gain sqrt 2) or spectral."""
    if not spectral_norm:
        return EqualizedConv2D(
            filters,
            kernel_size,
            gain=SQRT2,
            activation=activation,
            use_bias=use_bias,
            name=name,
            dtype=dtype,
        )
    conv = keras.layers.Conv2D(
        filters,
        kernel_size,
        padding="same",
        activation="leaky_relu" if activation == "lrelu" else None,
        use_bias=use_bias,
        name="conv",
        dtype=dtype,
    )
    return SpectralNorm(conv, name=name, dtype=dtype)


def _dense(units, spectral_norm, name, dtype, gain=SQRT2, activation="lrelu"):
    """A dense layer: equalized lr with `gain`, or spectral."""
    if not spectral_norm:
        return EqualizedDense(
            units, gain=gain, activation=activation, name=name, dtype=dtype
        )
    dense = keras.layers.Dense(
        units,
        activation="leaky_relu" if activation == "lrelu" else None,
        name="dense",
        dtype=dtype,
    )
    return SpectralNorm(dense, name=name, dtype=dtype)


def _fromrgb(channels, spectral_norm, dtype):
    if not spectral_norm:
        return FromRGB(channels, name="fromrgb", dtype=dtype)
    return _conv(channels, 1, True, "fromrgb", dtype)


class SpectralCatLin(keras.layers.Layer):
    """`cat_lin` with a spectrally normalised 1x1 conv (no bias, linear).

    Args:
        channels: int, the features' channel count.
    """

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.conv = _conv(
            channels,
            1,
            True,
            "conv",
            self.dtype_policy,
            activation=None,
            use_bias=False,
        )

    def output_channels(self):
        return self.channels

    def build(self, x_shape, img_shape):
        self.conv.build(tuple(x_shape[:-1]) + (x_shape[-1] + img_shape[-1],))

    def call(self, x, img):
        return self.conv(ops.concatenate([x, ops.cast(img, x.dtype)], -1))

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


class SpectralLinCat(keras.layers.Layer):
    """`lin_cat` with a spectrally normalised fromRGB (1x1 conv + lrelu to
    half the features' width), concatenated with the features.

    Args:
        channels: int, the features' channel count.
    """

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.rgb_channels = max(channels // 2, 1)
        self.fromrgb = _fromrgb(self.rgb_channels, True, self.dtype_policy)

    def output_channels(self):
        return self.channels + self.rgb_channels

    def build(self, x_shape, img_shape):
        self.fromrgb.build(img_shape)

    def call(self, x, img):
        y = self.fromrgb(ops.cast(img, x.dtype))
        return ops.concatenate([x, y], axis=-1)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


SPECTRAL_COMBINES = {"cat_lin": SpectralCatLin, "lin_cat": SpectralLinCat}


def _combine(name, channels, img_channels, spectral_norm, dtype):
    # The registry builds the equalized-lr combines; those with weights
    # have spectral-norm twins here.
    get_combine(name)
    if spectral_norm and name in SPECTRAL_COMBINES:
        return SPECTRAL_COMBINES[name](channels, name="combine", dtype=dtype)
    return _make_combine(name, channels, img_channels, dtype)


class ProGANDiscriminatorBlock(keras.layers.Layer):
    """[fromRGB] -> [combine] -> 3x3 conv -> lrelu -> 3x3 conv -> lrelu ->
    2x2 average pool.

    Args:
        res: int, the block's input resolution.
        channels: int, C(res). out_channels: int, C(res / 2).
        combine: str or None, how this scale's image joins the features.
        fromrgb: bool, the block has a fromRGB head (`fromrgb_layer`).
        img_channels: int.
        spectral_norm: bool, spectral normalisation, not equalized lr.
    """

    def __init__(
        self,
        res,
        channels,
        out_channels,
        combine=None,
        fromrgb=False,
        img_channels=3,
        spectral_norm=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.res = res
        self.channels = channels
        self.out_channels = out_channels
        self.combine = combine
        self.fromrgb = fromrgb
        self.img_channels = img_channels
        self.spectral_norm = spectral_norm
        dt = self.dtype_policy
        self.fromrgb_layer = (
            _fromrgb(channels, spectral_norm, dt) if fromrgb else None
        )
        self.combine_layer = (
            _combine(combine, channels, img_channels, spectral_norm, dt)
            if combine
            else None
        )
        self._make_convs()

    def _make_convs(self):
        sn, dt = self.spectral_norm, self.dtype_policy
        self.conv0 = _conv(self.channels, 3, sn, "conv0", dt)
        self.conv1 = _conv(self.out_channels, 3, sn, "conv1", dt)

    def in_channels(self):
        if self.combine_layer is None:
            return self.channels
        return self.combine_layer.output_channels()

    def _build_heads(self, x_shape, img_shape):
        n, r = x_shape[0], self.res
        if self.fromrgb_layer is not None:
            self.fromrgb_layer.build((n, r, r, self.img_channels))
        if self.combine_layer is not None:
            self.combine_layer.build(x_shape, img_shape)

    def build(self, x_shape, img_shape=None):
        # x_shape: the features [N, res, res, C(res)].
        n, r = x_shape[0], self.res
        self._build_heads(x_shape, img_shape)
        self.conv0.build((n, r, r, self.in_channels()))
        self.conv1.build((n, r, r, self.channels))

    def _enter(self, x, img, from_rgb):
        # fromRGB when entering from an image; then combine this scale's.
        check_spatial(self, x, self.res)
        if from_rgb is None:
            from_rgb = self.fromrgb_layer is not None
        if from_rgb:
            x = self.fromrgb_layer(x)
        if self.combine_layer is not None:
            check_spatial(self, img, self.res)
            x = self.combine_layer(x, img)
        return x

    def call(self, x, img=None, from_rgb=None):
        # x: features [N, res, res, C], or the image when `from_rgb` (by
        # default: when the block has a fromRGB).
        x = self._enter(x, img, from_rgb)
        x = self.conv1(self.conv0(x))
        return msg_ops.downsample2d(x)  # [N, res/2, res/2, C(res/2)]

    def get_config(self):
        return {
            **super().get_config(),
            "res": self.res,
            "channels": self.channels,
            "out_channels": self.out_channels,
            "combine": self.combine,
            "fromrgb": self.fromrgb,
            "img_channels": self.img_channels,
            "spectral_norm": self.spectral_norm,
        }


class ProGANDiscriminatorEpilogue(ProGANDiscriminatorBlock):
    """The 4x4 block: [fromRGB] -> [combine] -> minibatch stddev -> 3x3 conv
    -> lrelu -> 4x4 valid conv -> lrelu -> dense to 1 (gain 1).

    The 4x4 valid conv on a 4x4 input is written as the dense layer it
    equals on the flattened features (`fc`, kernel [4*4*C, C], the conv's
    [4, 4, C, C] reshaped), as ProGAN's own code does.

    Args (besides the block's, without out_channels):
        mbstd_group_size, mbstd_num_features: int.
    """

    def __init__(
        self, channels, mbstd_group_size=4, mbstd_num_features=1, **kwargs
    ):
        kwargs.setdefault("res", 4)
        super().__init__(channels=channels, out_channels=1, **kwargs)
        self.mbstd_group_size = mbstd_group_size
        self.mbstd_num_features = mbstd_num_features

    def _make_convs(self):
        sn, dt = self.spectral_norm, self.dtype_policy
        self.conv = _conv(self.channels, 3, sn, "conv", dt)
        self.fc = _dense(self.channels, sn, "fc", dt)
        self.out = _dense(1, sn, "out", dt, gain=1.0, activation=None)

    def in_channels(self):
        return super().in_channels() + self.mbstd_num_features

    def build(self, x_shape, img_shape=None):
        n = x_shape[0]
        self._build_heads(x_shape, img_shape)
        self.conv.build((n, 4, 4, self.in_channels()))
        self.fc.build((n, 16 * self.channels))
        self.out.build((n, self.channels))

    def call(self, x, img=None, from_rgb=None):
        x = self._enter(x, img, from_rgb)
        x = msg_ops.minibatch_stddev(
            x, self.mbstd_group_size, self.mbstd_num_features
        )
        x = self.conv(x)
        x = ops.reshape(x, (-1, 16 * self.channels))  # [N, 4*4*C]
        return self.out(self.fc(x))  # [N, 1]

    def get_config(self):
        config = super().get_config()
        config.pop("out_channels")
        return {
            **config,
            "mbstd_group_size": self.mbstd_group_size,
            "mbstd_num_features": self.mbstd_num_features,
        }


def _linear_fromrgb(channels, dtype):
    """BMSG-GAN's fromRGB: a linear 1x1 conv with bias, gain sqrt(2)."""
    return EqualizedConv2D(channels, 1, gain=SQRT2, name="fromrgb", dtype=dtype)


def _bmsg_mbstd(x):
    """BMSG-GAN's minibatch stddev: one scalar over the whole batch (every
    feature and pixel), appended as one constant feature map."""
    dtype = x.dtype
    y = ops.cast(x, "float32")
    y = y - ops.mean(y, axis=0, keepdims=True)  # [NHWC] subtract batch mean
    y = ops.sqrt(ops.mean(ops.square(y), axis=0) + 1e-8)  # [HWC] stddev
    y = ops.reshape(ops.mean(y), (1, 1, 1, 1))  # [1111] one scalar
    y = ops.broadcast_to(y, (ops.shape(x)[0], x.shape[1], x.shape[2], 1))
    return ops.concatenate([x, ops.cast(y, dtype)], axis=-1)  # [NHW(C+1)]


class BMSGDiscriminatorBlock(ProGANDiscriminatorBlock):
    """A block of BMSG-GAN's discriminator, as its code builds it.

    Below the top, the scale's image enters through a linear fromRGB to
    C(res) / 2 channels, concatenated in front of the C(res) / 2 features
    from above, so the convs see C(res): 3x3 C(res) -> C(res), 3x3 C(res)
    -> `out_channels` (C(res / 2) / 2), each with lrelu, then 2x2 average
    pooling. The top block reads the full-size image through a linear
    fromRGB to C(res).

    Args:
        res: int. channels: int, C(res). out_channels: int.
        img_channels: int. top: bool, the full-resolution block.
    """

    def __init__(
        self, res, channels, out_channels, img_channels=3, top=False, **kwargs
    ):
        super().__init__(
            res, channels, out_channels, img_channels=img_channels, **kwargs
        )
        self.top = top
        rgb = channels if top else max(channels // 2, 1)
        self.fromrgb_layer = _linear_fromrgb(rgb, self.dtype_policy)

    def _enter(self, x, img, from_rgb):
        check_spatial(self, x, self.res)
        if self.top:
            return self.fromrgb_layer(x)
        check_spatial(self, img, self.res)
        y = self.fromrgb_layer(ops.cast(img, x.dtype))
        return ops.concatenate([y, x], axis=-1)  # image features first

    def get_config(self):
        config = super().get_config()
        config.pop("combine")
        config.pop("fromrgb")
        return {**config, "top": self.top}


class BMSGDiscriminatorEpilogue(ProGANDiscriminatorEpilogue):
    """BMSG-GAN's final block: linear fromRGB to C(4) / 2 concatenated in
    front of the C(4) / 2 features, minibatch stddev over the whole batch,
    3x3 conv -> lrelu -> 4x4 valid conv (`fc`) -> lrelu -> a 1x1 conv to
    one logit with gain sqrt(2), as every layer of that code.

    Args:
        channels: int, C(4). img_channels: int.
    """

    def __init__(self, channels, img_channels=3, **kwargs):
        super().__init__(channels, img_channels=img_channels, **kwargs)
        self.fromrgb_layer = _linear_fromrgb(
            max(channels // 2, 1), self.dtype_policy
        )

    def _make_convs(self):
        dt = self.dtype_policy
        self.conv = _conv(self.channels, 3, False, "conv", dt)
        self.fc = _dense(self.channels, False, "fc", dt)
        self.out = _dense(1, False, "out", dt, gain=SQRT2, activation=None)

    def in_channels(self):
        return self.channels + 1

    _enter = BMSGDiscriminatorBlock._enter
    top = False

    def call(self, x, img=None, from_rgb=None):
        x = _bmsg_mbstd(self._enter(x, img, from_rgb))
        x = self.conv(x)
        x = ops.reshape(x, (-1, 16 * self.channels))  # [N, 4*4*C]
        return self.out(self.fc(x))  # [N, 1]

    def get_config(self):
        config = super().get_config()
        for key in ("combine", "fromrgb", "mbstd_group_size"):
            config.pop(key)
        config.pop("mbstd_num_features")
        return config


class ProGANDiscriminator(keras.Model):
    """Images -> one logit per sample: the MSG-ProGAN or ProGAN critic.

    `architecture="msg"` takes the images coarse to fine (4x4 first): a
    fromRGB reads the full-size image and every lower block first combines
    its features with that scale's image. `"progan"` takes a list holding
    only the full-size image; with `progressive=True` every block has a
    fromRGB and a call enters at the current `resolution` (static), blending
    with the block below by `alpha` during a fade-in (SPEC section 10).
    `num_inputs` says how many images a call expects. Spectral-norm layers
    update their power-iteration vector only in calls with `training=True`
    (passed on to every block explicitly, since `stateless_call` skips the
    call context); on JAX keep the non-trainable variables it returns.

    Args:
        img_resolution, img_channels, channel_base, channel_max: int.
        architecture: "msg" or "progan".
        combine: a registered combine name (`simple`, `lin_cat`, `cat_lin`).
        spectral_norm: bool, MSG-GAN v1's spectral normalisation instead of
            equalized learning rate.
        progressive: bool, progressive growing (architecture "progan").
        mbstd_group_size, mbstd_num_features: int.
    """

    def __init__(
        self,
        img_resolution=1024,
        img_channels=3,
        channel_base=16384,
        channel_max=512,
        architecture="msg",
        combine="simple",
        spectral_norm=False,
        progressive=False,
        mbstd_group_size=4,
        mbstd_num_features=1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_resolution(img_resolution)
        if architecture not in ("msg", "progan", "bmsg"):
            raise ValueError(
                "architecture must be 'msg', 'progan' or 'bmsg', got "
                f"'{architecture}'"
            )
        if progressive and architecture != "progan":
            raise ValueError(
                "progressive growing needs architecture 'progan', got "
                f"'{architecture}'"
            )
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.channel_base = channel_base
        self.channel_max = channel_max
        self.architecture = architecture
        self.combine = combine
        self.spectral_norm = spectral_norm
        self.progressive = progressive
        self.mbstd_group_size = mbstd_group_size
        self.mbstd_num_features = mbstd_num_features
        self.resolutions = resolutions_for(img_resolution)
        msg = architecture == "msg"
        multi = architecture in ("msg", "bmsg")
        self.num_inputs = len(self.resolutions) if multi else 1
        common = dict(
            img_channels=img_channels,
            spectral_norm=spectral_norm,
            dtype=self.dtype_policy,
        )

        def ch(res):
            return channels_for(res, channel_base, channel_max)

        get_combine(combine)  # an unknown name fails for every architecture
        if architecture == "bmsg":
            # BMSG-GAN's code: image and block features share C(res).
            self.blocks = [
                BMSGDiscriminatorBlock(
                    res,
                    ch(res),
                    max(ch(res // 2) // 2, 1),
                    top=res == img_resolution,
                    name=f"b{res}",
                    **common,
                )
                for res in reversed(self.resolutions[1:])
            ]
            self.epilogue = BMSGDiscriminatorEpilogue(
                ch(4), name="b4", **common
            )
            return
        self.blocks = [
            ProGANDiscriminatorBlock(
                res,
                ch(res),
                ch(res // 2),
                combine=combine if msg and res != img_resolution else None,
                fromrgb=progressive or res == img_resolution,
                name=f"b{res}",
                **common,
            )
            for res in reversed(self.resolutions[1:])
        ]
        self.epilogue = ProGANDiscriminatorEpilogue(
            ch(4),
            combine=combine if msg else None,
            fromrgb=progressive,
            mbstd_group_size=mbstd_group_size,
            mbstd_num_features=mbstd_num_features,
            name="b4",
            **common,
        )

    def build(self, imgs_shape):
        shapes = imgs_shape
        if not (shapes and isinstance(shapes[0], (list, tuple))):
            shapes = [shapes]
        n, c = shapes[-1][0], self.img_channels
        for block in self.blocks + [self.epilogue]:
            r = block.res
            block.build((n, r, r, block.channels), (n, r, r, c))
        self.built = True

    def call(self, imgs, resolution=None, alpha=None, training=False):
        imgs = self.check_inputs(imgs)
        if self.progressive:
            chain = self.blocks + [self.epilogue]  # full resolution down to 4
            return prog.discriminate(
                chain, imgs[-1], resolution, alpha, self.name, training=training
            )
        by_res = {img.shape[1]: img for img in imgs}
        # The top block reads the full-size image; lower ones combine theirs.
        x = imgs[-1]
        bmsg = self.architecture == "bmsg"
        for block in self.blocks + [self.epilogue]:
            img = by_res.get(block.res) if block.combine or bmsg else None
            x = block(x, img, training=training)
        return x

    def check_inputs(self, imgs):
        return check_images(self, imgs)

    def summary_rows(self):
        """(layer name, layer or None, output shape) for a network table."""
        rows, n = [], "N"
        for b in self.blocks + [self.epilogue]:
            r, c, p = b.res, b.channels, f"b{b.res}"
            if b.fromrgb_layer is not None:
                f = getattr(b.fromrgb_layer, "filters", c)
                rows.append((f"{p}/fromrgb", b.fromrgb_layer, (n, r, r, f)))
            if b.combine_layer is not None:
                out = (n, r, r, b.combine_layer.output_channels())
                rows.append((f"{p}/combine", b.combine_layer, out))
            if b is self.epilogue:
                rows.append((f"{p}/mbstd", None, (n, 4, 4, b.in_channels())))
                rows.append((f"{p}/conv", b.conv, (n, 4, 4, c)))
                rows.append((f"{p}/fc", b.fc, (n, c)))
                rows.append((f"{p}/out", b.out, (n, 1)))
            else:
                rows.append((f"{p}/conv0", b.conv0, (n, r, r, c)))
                rows.append((f"{p}/conv1", b.conv1, (n, r, r, b.out_channels)))
                out = (n, r // 2, r // 2, b.out_channels)
                rows.append((f"{p}/pool", None, out))
        return rows

    def get_config(self):
        return {
            "name": self.name,
            "img_resolution": self.img_resolution,
            "img_channels": self.img_channels,
            "channel_base": self.channel_base,
            "channel_max": self.channel_max,
            "architecture": self.architecture,
            "combine": self.combine,
            "spectral_norm": self.spectral_norm,
            "progressive": self.progressive,
            "mbstd_group_size": self.mbstd_group_size,
            "mbstd_num_features": self.mbstd_num_features,
        }

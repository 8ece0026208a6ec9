"""MSG-ProGAN and ProGAN: the paper's other generator and discriminator.

SPEC section 11. The generator normalises z to the hypersphere, grows it
from a dense 4x4 block by nearest upsampling and pixel-normed 3x3 convs, and
has a toRGB head at every resolution. The discriminator is
`discriminator.Discriminator` made of ProGAN's blocks: it takes the images
coarse to fine (`architecture="msg"`, MSG-ProGAN) or the full-size image
alone (`"progan"`, optionally grown progressively as SPEC section 10), with
minibatch stddev in the 4x4 block only. MSG-GAN v1's switches pass a
convolution kind to the blocks (`layers.make_conv`): the discriminator's
`spectral_norm=True` (spectral normalisation instead of equalized learning
rate) and the generator's `equalized_lr=False` (plain layers), besides its
`pixel_norm=False`.
"""

import keras
from keras import ops

from msg_stylegan import ops as msg_ops
from msg_stylegan.discriminator import (
    Discriminator,
    DiscriminatorBlock,
    DiscriminatorEpilogue,
    check_spatial,
)
from msg_stylegan.generator import BaseGenerator, channels_for
from msg_stylegan.layers import (
    SQRT2,
    check_convolution,
    make_conv,
    make_dense,
)


class ProGANGeneratorBlock(keras.layers.Layer):
    """One resolution of the ProGAN generator; returns its features.

    4x4: dense z -> 4x4xC, per-channel bias, lrelu, pixel norm (`dense`),
    then 3x3 conv, lrelu, pixel norm (`conv1`). Above: nearest upsample x2,
    then (3x3 conv, lrelu, pixel norm) twice (`conv0`, `conv1`). The RGB head
    `torgb` is called by the generator.

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
    drops the pixel norm after every conv. `convolution="plain"` makes
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
        convolution: str, "equalized" (run-time He scale) or "plain".
        bmsg: bool, BMSG-GAN's code's gains and 4x4 block (above).
    """

    def __init__(
        self,
        res,
        channels,
        img_channels=3,
        pixel_norm=True,
        convolution="equalized",
        bmsg=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_convolution(convolution)
        self.res = res
        self.channels = channels
        self.img_channels = img_channels
        self.pixel_norm = pixel_norm
        self.convolution = convolution
        self.bmsg = bmsg
        cv, dt = convolution, self.dtype_policy
        if res == 4:
            # The bias is per channel, added after the reshape, as ProGAN.
            gain = SQRT2 if bmsg else SQRT2 / 4
            self.dense = make_dense(
                cv, 16 * channels, "dense", dt, gain, None, use_bias=False
            )
            self.conv0 = None
        else:
            self.dense = None
            self.conv0 = make_conv(cv, channels, 3, "conv0", dt)
        self.conv1 = make_conv(cv, channels, 3, "conv1", dt)
        gain = SQRT2 if bmsg else 1.0
        self.torgb = make_conv(cv, img_channels, 1, "torgb", dt, gain, None)

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
            "convolution": self.convolution,
            "bmsg": self.bmsg,
        }


class ProGANGenerator(BaseGenerator):
    """z -> images: the ProGAN generator with an RGB head at every level.

    No mapping network, styles or noise: the style and noise arguments of
    the shared generator call (`BaseGenerator`) are accepted and ignored,
    `num_ws` is 0 and `w_avg` None, so the training backends drive every
    generator family the same way.

    Args (by keyword after img_resolution):
        img_resolution, img_channels, z_dim, progressive: `BaseGenerator`'s.
        channel_base, channel_max: int, C(res) = min(base / res, max);
            16384 and 512 give ProGAN's (fmap_base 8192) 512..16 channels.
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
        pixel_norm=True,
        equalized_lr=True,
        bmsg=False,
        **kwargs,
    ):
        super().__init__(img_resolution, **kwargs)
        self.pixel_norm = pixel_norm
        self.equalized_lr = equalized_lr
        self.bmsg = bmsg
        convolution = "equalized" if equalized_lr else "plain"
        self.blocks = [
            ProGANGeneratorBlock(
                res,
                channels_for(res, self.channel_base, self.channel_max),
                self.img_channels,
                pixel_norm=pixel_norm,
                convolution=convolution,
                bmsg=bmsg,
                name=f"b{res}",
                dtype=self.dtype_policy,
            )
            for res in self.resolutions
        ]

    def get_config(self):
        return {
            **super().get_config(),
            "pixel_norm": self.pixel_norm,
            "equalized_lr": self.equalized_lr,
            "bmsg": self.bmsg,
        }

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
        self.build_lod()
        self.built = True

    def map_latents(self, z, truncation_psi, truncation_cutoff, mixing):
        """(no ws, z): ProGAN's blocks read z itself."""
        if mixing is not None:
            raise ValueError(
                f"{self.name}: ProGAN has no styles to mix; mixing must be None"
            )
        return None, z

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

    def levels(self, z, resolution=None, noise_mode=None, noise=None):
        """Every block's RGB image up to `resolution`, coarse to fine."""
        xs = self.features(z, resolution)
        return [block.torgb(x) for block, x in zip(self.blocks, xs)]

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


class BMSGInput:
    """BMSG-GAN's way into a block (mixed into its block and epilogue).

    Below the top, the scale's image enters through a linear fromRGB (1x1
    conv with bias, gain sqrt(2)) to C(res) / 2 channels, concatenated in
    front of the C(res) / 2 features from above; the top block reads the
    full-size image through a linear fromRGB to C(res).
    """

    top = False
    reads_image = True

    def make_fromrgb(self, channels):
        self.fromrgb_layer = make_conv(
            "equalized",
            channels,
            1,
            "fromrgb",
            self.dtype_policy,
            activation=None,
        )

    def read_inputs(self, x, img, from_rgb):
        check_spatial(self, x, self.res)
        if self.top:
            return self.fromrgb_layer(x)
        check_spatial(self, img, self.res)
        y = self.fromrgb_layer(ops.cast(img, x.dtype))
        return ops.concatenate([y, x], axis=-1)  # image features first


class BMSGDiscriminatorBlock(BMSGInput, DiscriminatorBlock):
    """A block of BMSG-GAN's discriminator, as its code builds it: the
    image joins as `BMSGInput` says, so the convs see C(res): 3x3 C(res)
    -> C(res), 3x3 C(res) -> `out_channels` (C(res / 2) / 2), each with
    lrelu, then 2x2 average pooling.

    Args:
        res: int. channels: int, C(res). out_channels: int.
        top: bool, the full-resolution block.
        img_channels: int. convolution: str, the 3x3 convs' kind.
    """

    def __init__(self, res, channels, out_channels, top=False, **kwargs):
        super().__init__(
            res, channels, out_channels, mbstd=False, pool=True, **kwargs
        )
        self.top = top
        self.make_fromrgb(channels if top else max(channels // 2, 1))

    def get_config(self):
        config = super().get_config()
        for key in ("combine", "fromrgb", "mbstd", "pool"):
            config.pop(key)
        return {**config, "top": self.top}


class BMSGDiscriminatorEpilogue(BMSGInput, DiscriminatorEpilogue):
    """BMSG-GAN's final block: its input as `BMSGInput` says, minibatch
    stddev over the whole batch, 3x3 conv -> lrelu -> 4x4 valid conv
    (`fc`) -> lrelu -> a 1x1 conv to one logit with gain sqrt(2), as every
    layer of that code.

    Args:
        channels: int, C(4). img_channels: int.
    """

    def __init__(self, channels, **kwargs):
        super().__init__(channels, channels, out_gain=SQRT2, **kwargs)
        self.make_fromrgb(max(channels // 2, 1))

    def minibatch_stddev(self, x):
        return _bmsg_mbstd(x)

    def in_channels(self):
        return self.channels + 1

    def get_config(self):
        config = super().get_config()
        for key in ("combine", "fromrgb", "fc_channels", "out_gain"):
            config.pop(key)
        for key in ("mbstd", "mbstd_group_size", "mbstd_num_features"):
            config.pop(key)
        return config


class ProGANDiscriminator(Discriminator):
    """Images -> one logit per sample: the MSG-ProGAN or ProGAN critic.

    `Discriminator` with ProGAN's blocks (3x3 conv, 3x3 conv, average
    pooling; minibatch stddev in the 4x4 block only; a C(4)-wide `fc`).
    `architecture="msg"` takes the images coarse to fine (4x4 first): a
    fromRGB reads the full-size image and every lower block first combines
    its features with that scale's image. `"progan"` takes a list holding
    only the full-size image; with `progressive=True` every block has a
    fromRGB and a call enters at the current `resolution` (static), blending
    with the block below by `alpha` during a fade-in (SPEC section 10).
    `"bmsg"` is BMSG-GAN's code (`BMSGInput`). Spectral-norm layers update
    their power-iteration vector only in calls with `training=True`; on JAX
    keep the non-trainable variables `stateless_call` returns.

    Args (by keyword after img_resolution; see `Discriminator`):
        img_resolution, img_channels, channel_base, channel_max: int.
        architecture: "msg", "progan" or "bmsg".
        combine: a registered combine name (`simple`, `lin_cat`, `cat_lin`).
        spectral_norm: bool, MSG-GAN v1's spectral normalisation instead of
            equalized learning rate.
        progressive: bool, progressive growing (architecture "progan").
        mbstd_group_size, mbstd_num_features: int.
    """

    architectures = ("msg", "progan", "bmsg")
    multi_scale = ("msg", "bmsg")
    progressive_architecture = "progan"

    def __init__(
        self,
        img_resolution=1024,
        combine="simple",
        spectral_norm=False,
        **kwargs,
    ):
        # Set before Discriminator.__init__, whose make_blocks reads it.
        self.spectral_norm = spectral_norm
        super().__init__(img_resolution, combine=combine, **kwargs)

    def make_blocks(self):
        convolution = "spectral" if self.spectral_norm else "equalized"
        if self.architecture != "bmsg":
            return self.stack(
                mbstd=self.blocks_take_mbstd(False),
                pool=True,
                fc_channels=self.channels_at(4),
                convolution=convolution,
            )
        # BMSG-GAN's code: image and block features share C(res).
        ch, dt = self.channels_at, self.dtype_policy
        common = dict(img_channels=self.img_channels, dtype=dt)
        blocks = [
            BMSGDiscriminatorBlock(
                res,
                ch(res),
                max(ch(res // 2) // 2, 1),
                top=res == self.img_resolution,
                convolution=convolution,
                name=f"b{res}",
                **common,
            )
            for res in reversed(self.resolutions[1:])
        ]
        return blocks, BMSGDiscriminatorEpilogue(ch(4), name="b4", **common)

    def get_config(self):
        return {**super().get_config(), "spectral_norm": self.spectral_norm}

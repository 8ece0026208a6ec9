"""The discriminator's blocks and combine layers, and the multi-scale D of
MSG-StyleGAN and the StyleGAN baseline D.

SPEC section 2: a fromRGB head at full resolution; at every lower scale the
block first combines its features with that scale's image (`cat_lin`,
`lin_cat` or `simple`); minibatch stddev opens every block (MSG) or only the
4x4 block (`architecture="stylegan"`, single full-resolution input). The
progressive StyleGAN D (SPEC section 10) has a fromRGB in every block and
enters at the current resolution, fading in from the block below. The
blocks and combine layers take their convolution kind as a parameter, so
the ProGAN family's D (progan.py) is made of the same parts.
"""

import keras
from keras import ops

import config
from msg_stylegan import ops as msg_ops
from msg_stylegan import progressive as prog
from msg_stylegan.generator import (
    channels_for,
    check_resolution,
    resolutions_for,
)
from msg_stylegan.layers import check_convolution, make_conv, make_dense

COMBINES = {}


def register_combine(name):
    # The names are listed once, in config.COMBINES, where the CLIs read them.
    if name not in config.COMBINES:
        raise ValueError(f"combine '{name}' is not listed in config.COMBINES")

    def wrap(cls):
        COMBINES[name] = cls
        return cls

    return wrap


def combine_names():
    return sorted(COMBINES)


def get_combine(name):
    if name not in COMBINES:
        raise ValueError(
            f"unknown combine '{name}'; valid combines: "
            + ", ".join(combine_names())
        )
    return COMBINES[name]


def make_combine(name, channels, img_channels, convolution, dtype):
    """The registered combine `name` as a block's `combine` layer."""
    return get_combine(name)(
        channels,
        img_channels=img_channels,
        convolution=convolution,
        name="combine",
        dtype=dtype,
    )


class Combine(keras.layers.Layer):
    """How one scale's image joins a block's features (the registered
    combine layers derive from this).

    Args:
        channels: int, the features' channel count.
        img_channels: int.
        convolution: str, the kind of its weight layer (`equalized`,
            `plain` or `spectral`, see `layers.make_conv`).
    """

    def __init__(
        self, channels, img_channels=3, convolution="equalized", **kwargs
    ):
        super().__init__(**kwargs)
        check_convolution(convolution)
        self.channels = channels
        self.img_channels = img_channels
        self.convolution = convolution

    def get_config(self):
        return {
            **super().get_config(),
            "channels": self.channels,
            "img_channels": self.img_channels,
            "convolution": self.convolution,
        }


@register_combine("cat_lin")
class CatLin(Combine):
    """concat([features, rgb]) then a linear 1x1 conv back to the features'
    width (gain sqrt 2, no bias): MSG-StyleGAN's default."""

    def __init__(self, channels, **kwargs):
        super().__init__(channels, **kwargs)
        self.conv = make_conv(
            self.convolution,
            channels,
            1,
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
        y = ops.concatenate([x, ops.cast(img, x.dtype)], axis=-1)
        return self.conv(y)


@register_combine("lin_cat")
class LinCat(Combine):
    """A fromRGB-like 1x1 conv + lrelu on the image to half the features'
    width, concatenated with the features (the MSG-ProGAN style); the block's
    next conv takes the wider input."""

    def __init__(self, channels, **kwargs):
        super().__init__(channels, **kwargs)
        self.rgb_channels = max(channels // 2, 1)
        self.fromrgb = make_conv(
            self.convolution, self.rgb_channels, 1, "fromrgb", self.dtype_policy
        )

    def output_channels(self):
        return self.channels + self.rgb_channels

    def build(self, x_shape, img_shape):
        self.fromrgb.build(img_shape)

    def call(self, x, img):
        y = self.fromrgb(ops.cast(img, x.dtype))
        return ops.concatenate([x, y], axis=-1)


@register_combine("simple")
class Simple(Combine):
    """concat([features, rgb]) with no weights."""

    def output_channels(self):
        return self.channels + self.img_channels

    def build(self, x_shape, img_shape):
        pass

    def call(self, x, img):
        return ops.concatenate([x, ops.cast(img, x.dtype)], axis=-1)


class DiscriminatorStage(keras.layers.Layer):
    """What every discriminator block shares: how it is entered.

    A stage reads the image through its fromRGB head (when `fromrgb`, or
    always when a call says `from_rgb=True`), joins this scale's image
    through its combine layer, and may open with minibatch stddev.
    `DiscriminatorBlock` and `DiscriminatorEpilogue` add their own layers.

    Args:
        res: int, the stage's input resolution.
        channels: int, C(res).
        combine: str or None, how this scale's image joins the features.
        fromrgb: bool, the stage has a fromRGB head (`fromrgb_layer`).
        mbstd: bool, minibatch stddev after the inputs are joined.
        img_channels, mbstd_group_size, mbstd_num_features: int.
        convolution: str, the kind of every weight layer (`equalized`,
            `plain` or `spectral`, see `layers.make_conv`).
    """

    def __init__(
        self,
        res,
        channels,
        combine=None,
        fromrgb=False,
        mbstd=True,
        img_channels=3,
        mbstd_group_size=4,
        mbstd_num_features=1,
        convolution="equalized",
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_convolution(convolution)
        self.res = res
        self.channels = channels
        self.combine = combine
        self.fromrgb = fromrgb
        self.mbstd = mbstd
        self.img_channels = img_channels
        self.mbstd_group_size = mbstd_group_size
        self.mbstd_num_features = mbstd_num_features
        self.convolution = convolution
        dt = self.dtype_policy
        self.fromrgb_layer = (
            make_conv(convolution, channels, 1, "fromrgb", dt)
            if fromrgb
            else None
        )
        self.combine_layer = (
            make_combine(combine, channels, img_channels, convolution, dt)
            if combine
            else None
        )

    @property
    def reads_image(self):
        """Whether a call takes this scale's image as `img`."""
        return self.combine_layer is not None

    def in_channels(self):
        """The channels of the first conv's input."""
        c = self.channels
        if self.combine_layer is not None:
            c = self.combine_layer.output_channels()
        return c + (self.mbstd_num_features if self.mbstd else 0)

    def build_inputs(self, x_shape, img_shape):
        n, r = x_shape[0], self.res
        if self.fromrgb_layer is not None:
            self.fromrgb_layer.build((n, r, r, self.img_channels))
        if self.combine_layer is not None:
            self.combine_layer.build(x_shape, img_shape)

    def read_inputs(self, x, img, from_rgb):
        """fromRGB when entering from an image; then combine this scale's."""
        check_spatial(self, x, self.res)
        if from_rgb is None:
            from_rgb = self.fromrgb_layer is not None
        if from_rgb:
            x = self.fromrgb_layer(x)
        if self.combine_layer is not None:
            check_spatial(self, img, self.res)
            x = self.combine_layer(x, img)
        return x

    def minibatch_stddev(self, x):
        return msg_ops.minibatch_stddev(
            x, self.mbstd_group_size, self.mbstd_num_features
        )

    def enter(self, x, img, from_rgb):
        # x: features [N, res, res, C(res)], or the image when `from_rgb`
        # (by default: when the stage has a fromRGB).
        x = self.read_inputs(x, img, from_rgb)
        return self.minibatch_stddev(x) if self.mbstd else x

    def summary_rows(self, n="N"):
        """(layer name, layer or None, output shape) for a network table."""
        rows, r, p = [], self.res, f"b{self.res}"
        if self.fromrgb_layer is not None:
            f = getattr(self.fromrgb_layer, "filters", self.channels)
            rows.append((f"{p}/fromrgb", self.fromrgb_layer, (n, r, r, f)))
        if self.combine_layer is not None:
            out = (n, r, r, self.combine_layer.output_channels())
            rows.append((f"{p}/combine", self.combine_layer, out))
        if self.mbstd:
            rows.append((f"{p}/mbstd", None, (n, r, r, self.in_channels())))
        return rows

    def get_config(self):
        return {
            **super().get_config(),
            "res": self.res,
            "channels": self.channels,
            "combine": self.combine,
            "fromrgb": self.fromrgb,
            "mbstd": self.mbstd,
            "img_channels": self.img_channels,
            "mbstd_group_size": self.mbstd_group_size,
            "mbstd_num_features": self.mbstd_num_features,
            "convolution": self.convolution,
        }


class DiscriminatorBlock(DiscriminatorStage):
    """[fromRGB] -> [combine] -> [mbstd] -> two 3x3 convs, halving the size.

    `pool=False` is StyleGAN's order: conv0 -> blur -> conv1 that
    downsamples before its bias (the fused 4x4 stride-2 conv; equalized
    only). `pool=True` is ProGAN's: conv0 -> conv1 at full size, then 2x2
    average pooling after its activation.

    Args (besides DiscriminatorStage's):
        out_channels: int, C(res / 2).
        pool: bool, ProGAN's average pooling after the second conv.
    """

    def __init__(self, res, channels, out_channels, pool=False, **kwargs):
        super().__init__(res, channels, **kwargs)
        self.out_channels = out_channels
        self.pool = pool
        cv, dt = self.convolution, self.dtype_policy
        self.conv0 = make_conv(cv, channels, 3, "conv0", dt)
        self.conv1 = make_conv(cv, out_channels, 3, "conv1", dt, down=not pool)

    def build(self, x_shape, img_shape=None):
        # x_shape: the features [N, res, res, C(res)].
        n, r = x_shape[0], self.res
        self.build_inputs(x_shape, img_shape)
        self.conv0.build((n, r, r, self.in_channels()))
        self.conv1.build((n, r, r, self.channels))

    def call(self, x, img=None, from_rgb=None):
        x = self.conv0(self.enter(x, img, from_rgb))
        if self.pool:
            return msg_ops.downsample2d(self.conv1(x))
        return self.conv1(msg_ops.blur2d(x))  # [N, res/2, res/2, C(res/2)]

    def summary_rows(self, n="N"):
        rows, r, p = super().summary_rows(n), self.res, f"b{self.res}"
        rows.append((f"{p}/conv0", self.conv0, (n, r, r, self.channels)))
        half = (n, r // 2, r // 2, self.out_channels)
        if self.pool:
            out = (n, r, r, self.out_channels)
            rows.append((f"{p}/conv1", self.conv1, out))
            return rows + [(f"{p}/pool", None, half)]
        return rows + [(f"{p}/conv1", self.conv1, half)]

    def get_config(self):
        return {
            **super().get_config(),
            "out_channels": self.out_channels,
            "pool": self.pool,
        }


class DiscriminatorEpilogue(DiscriminatorStage):
    """The 4x4 block: [fromRGB] -> [combine] -> mbstd -> 3x3 conv -> dense
    -> dense to 1.

    The hidden dense layer (`fc`) reads the flattened 4x4 features, as
    StyleGAN; in ProGAN it stands for the 4x4 valid conv it equals (kernel
    [4*4*C, C], the conv's [4, 4, C, C] reshaped), as ProGAN's code writes.

    Args (besides DiscriminatorStage's):
        fc_channels: int, the width of `fc` (StyleGAN C(2), ProGAN C(4)).
        out_gain: float, the gain of the output layer.
    """

    def __init__(self, channels, fc_channels, out_gain=1.0, **kwargs):
        kwargs.setdefault("res", 4)
        super().__init__(channels=channels, **kwargs)
        self.fc_channels = fc_channels
        self.out_gain = out_gain
        cv, dt = self.convolution, self.dtype_policy
        self.conv = make_conv(cv, channels, 3, "conv", dt)
        self.fc = make_dense(cv, fc_channels, "fc", dt)
        self.out = make_dense(cv, 1, "out", dt, gain=out_gain, activation=None)

    def build(self, x_shape, img_shape=None):
        n = x_shape[0]
        self.build_inputs(x_shape, img_shape)
        self.conv.build((n, 4, 4, self.in_channels()))
        self.fc.build((n, 16 * self.channels))
        self.out.build((n, self.fc_channels))

    def call(self, x, img=None, from_rgb=None):
        x = self.conv(self.enter(x, img, from_rgb))
        x = ops.reshape(x, (-1, 16 * self.channels))  # [N, 4*4*C]
        return self.out(self.fc(x))  # [N, 1]

    def summary_rows(self, n="N"):
        return super().summary_rows(n) + [
            ("b4/conv", self.conv, (n, 4, 4, self.channels)),
            ("b4/fc", self.fc, (n, self.fc_channels)),
            ("b4/out", self.out, (n, 1)),
        ]

    def get_config(self):
        return {
            **super().get_config(),
            "fc_channels": self.fc_channels,
            "out_gain": self.out_gain,
        }


def check_spatial(layer, x, res):
    if x is None or tuple(x.shape[1:3]) != (res, res):
        shape = None if x is None else tuple(x.shape)
        raise ValueError(
            f"{layer.name}: expected a {res}x{res} input, got shape {shape}"
        )


class Discriminator(keras.Model):
    """Images -> one logit per sample.

    `architecture="msg"` takes the list of images coarse to fine (4x4
    first), combining each scale into the block at that resolution, with
    minibatch stddev in every block. `architecture="stylegan"` takes a list
    holding only the full-resolution image, with minibatch stddev at 4x4.
    `num_inputs` says how many images a call expects. `progressive=True`
    (stylegan only) gives every block a fromRGB; a call then takes the
    current `resolution` (static, default full) and fade weight `alpha`.
    The ProGAN family's D (progan.py) derives from this class and changes
    only `make_blocks`.

    Args:
        img_resolution, img_channels, channel_base, channel_max: int.
        architecture: "msg" or "stylegan".
        combine: a registered combine name (`cat_lin`, `lin_cat`, `simple`).
        mbstd: where minibatch stddev goes: "auto" (the architecture's
            place), "every" block or the "4x4" block only; an ablation switch.
        mbstd_group_size, mbstd_num_features: int.
        progressive: bool, progressive growing (architecture "stylegan").
    """

    architectures = ("msg", "stylegan")
    multi_scale = ("msg",)  # those taking every scale's image
    progressive_architecture = "stylegan"

    def __init__(
        self,
        img_resolution=1024,
        img_channels=3,
        channel_base=16384,
        channel_max=512,
        architecture="msg",
        combine="cat_lin",
        mbstd_group_size=4,
        mbstd_num_features=1,
        mbstd="auto",
        progressive=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_resolution(img_resolution)
        if mbstd not in config.MBSTD_PLACEMENTS:
            raise ValueError(
                "mbstd must be one of "
                f"{', '.join(config.MBSTD_PLACEMENTS)}, got '{mbstd}'"
            )
        names = [f"'{a}'" for a in self.architectures]
        if architecture not in self.architectures:
            raise ValueError(
                f"architecture must be {', '.join(names[:-1])} or "
                f"{names[-1]}, got '{architecture}'"
            )
        get_combine(combine)
        grows = self.progressive_architecture
        if progressive and architecture != grows:
            raise ValueError(
                f"progressive growing needs architecture '{grows}', got "
                f"'{architecture}'"
            )
        self.progressive = progressive
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.channel_base = channel_base
        self.channel_max = channel_max
        self.architecture = architecture
        self.combine = combine
        self.mbstd_group_size = mbstd_group_size
        self.mbstd_num_features = mbstd_num_features
        self.mbstd = mbstd
        self.resolutions = resolutions_for(img_resolution)
        multi = architecture in self.multi_scale
        self.num_inputs = len(self.resolutions) if multi else 1
        self.blocks, self.epilogue = self.make_blocks()

    def channels_at(self, res):
        return channels_for(res, self.channel_base, self.channel_max)

    def make_blocks(self):
        """StyleGAN's blocks: blur and a downsampling conv, minibatch
        stddev in every MSG block, a C(2)-wide hidden dense layer."""
        return self.stack(
            mbstd=self.blocks_take_mbstd(self.architecture == "msg"),
            pool=False,
            fc_channels=self.channels_at(2),
            convolution="equalized",
        )

    def blocks_take_mbstd(self, default):
        """Whether the blocks above 4x4 open with minibatch stddev: the
        architecture's `default` unless `mbstd` places it ("every" block, or
        the "4x4" epilogue only, which always has it)."""
        return default if self.mbstd == "auto" else self.mbstd == "every"

    def stack(self, mbstd, pool, fc_channels, convolution):
        """The blocks from full resolution down to 8x8, and the epilogue.

        The top block reads the full-size image through its fromRGB (every
        block does when progressive); in "msg" every lower one combines its
        scale's image.
        """
        msg, ch = self.architecture == "msg", self.channels_at
        common = dict(
            img_channels=self.img_channels,
            mbstd_group_size=self.mbstd_group_size,
            mbstd_num_features=self.mbstd_num_features,
            convolution=convolution,
            dtype=self.dtype_policy,
        )
        top = self.img_resolution
        blocks = [
            DiscriminatorBlock(
                res,
                ch(res),
                ch(res // 2),
                combine=self.combine if msg and res != top else None,
                fromrgb=self.progressive or res == top,
                mbstd=mbstd,
                pool=pool,
                name=f"b{res}",
                **common,
            )
            for res in reversed(self.resolutions[1:])
        ]
        epilogue = DiscriminatorEpilogue(
            ch(4),
            fc_channels,
            combine=self.combine if msg else None,
            fromrgb=self.progressive,
            name="b4",
            **common,
        )
        return blocks, epilogue

    def build(self, imgs_shape):
        shapes = _shape_list(imgs_shape)
        n, c = shapes[-1][0], self.img_channels
        for block in self.blocks + [self.epilogue]:
            r = block.res
            block.build((n, r, r, block.channels), (n, r, r, c))
        self.built = True

    def call(self, imgs, resolution=None, alpha=None, training=False):
        # `training` goes to every block explicitly: spectral norm's power
        # iteration reads it, and `stateless_call` skips the call context.
        imgs = self.check_inputs(imgs)
        chain = self.blocks + [self.epilogue]  # full resolution down to 4
        if self.progressive:
            return prog.discriminate(
                chain, imgs[-1], resolution, alpha, self.name, training=training
            )
        by_res = {img.shape[1]: img for img in imgs}
        # The top block reads the full-res image; lower ones combine theirs.
        x = imgs[-1]
        for block in chain:
            img = by_res.get(block.res) if block.reads_image else None
            x = block(x, img, training=training)
        return x

    def summary_rows(self):
        """(layer name, layer or None, output shape) for a network table."""
        rows = []
        for block in self.blocks + [self.epilogue]:
            rows += block.summary_rows()
        return rows

    def check_inputs(self, imgs):
        return check_images(self, imgs)

    def get_config(self):
        return {
            "name": self.name,
            "img_resolution": self.img_resolution,
            "img_channels": self.img_channels,
            "channel_base": self.channel_base,
            "channel_max": self.channel_max,
            "architecture": self.architecture,
            "combine": self.combine,
            "mbstd_group_size": self.mbstd_group_size,
            "mbstd_num_features": self.mbstd_num_features,
            "mbstd": self.mbstd,
            "progressive": self.progressive,
        }


def check_images(d, imgs):
    """D's input as a list, coarse to fine, or a ValueError naming the
    shapes it expects (shared by every discriminator)."""
    imgs = list(imgs) if isinstance(imgs, (list, tuple)) else [imgs]
    if len(imgs) != d.num_inputs:
        raise ValueError(
            f"discriminator ({d.architecture}) expects "
            f"{d.num_inputs} images, coarse to fine, got {len(imgs)}"
        )
    expected = d.resolutions[-d.num_inputs :]
    got = [tuple(img.shape[1:]) for img in imgs]
    want = [(r, r, d.img_channels) for r in expected]
    if got != want:
        raise ValueError(
            f"discriminator expects image shapes {want} (HWC, coarse to "
            f"fine), got {got}"
        )
    return imgs


def _shape_list(shape):
    """One shape or a list of shapes -> a list of shapes."""
    if shape and isinstance(shape[0], (list, tuple)):
        return list(shape)
    return [shape]

"""The multi-scale discriminator of MSG-StyleGAN and the StyleGAN baseline D.

SPEC section 2: a fromRGB head at full resolution; at every lower scale the
block first combines its features with that scale's image (`cat_lin`,
`lin_cat` or `simple`); minibatch stddev opens every block (MSG) or only the
4x4 block (`architecture="stylegan"`, single full-resolution input). The
progressive StyleGAN D (SPEC section 10) has a fromRGB in every block and
enters at the current resolution, fading in from the block below.
"""

import keras
from keras import ops

from msg_stylegan import ops as msg_ops
from msg_stylegan import progressive as prog
from msg_stylegan.generator import (
    channels_for,
    check_resolution,
    resolutions_for,
)
from msg_stylegan.layers import SQRT2, EqualizedConv2D, EqualizedDense, FromRGB

COMBINES = {}


def register_combine(name):
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


@register_combine("cat_lin")
class CatLin(keras.layers.Layer):
    """concat([features, rgb]) then a linear 1x1 conv back to the features'
    width (equalized lr, gain sqrt 2, no bias): MSG-StyleGAN's default.

    Args:
        channels: int, the features' channel count.
    """

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.conv = EqualizedConv2D(
            channels,
            1,
            gain=SQRT2,
            use_bias=False,
            name="conv",
            dtype=self.dtype_policy,
        )

    def output_channels(self):
        return self.channels

    def build(self, x_shape, img_shape):
        self.conv.build(tuple(x_shape[:-1]) + (x_shape[-1] + img_shape[-1],))

    def call(self, x, img):
        y = ops.concatenate([x, ops.cast(img, x.dtype)], axis=-1)
        return self.conv(y)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


@register_combine("lin_cat")
class LinCat(keras.layers.Layer):
    """A fromRGB-like 1x1 conv + lrelu on the image to half the features'
    width, concatenated with the features (the MSG-ProGAN style); the block's
    next conv takes the wider input.

    Args:
        channels: int, the features' channel count.
    """

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.rgb_channels = max(channels // 2, 1)
        self.fromrgb = FromRGB(
            self.rgb_channels, name="fromrgb", dtype=self.dtype_policy
        )

    def output_channels(self):
        return self.channels + self.rgb_channels

    def build(self, x_shape, img_shape):
        self.fromrgb.build(img_shape)

    def call(self, x, img):
        y = self.fromrgb(ops.cast(img, x.dtype))
        return ops.concatenate([x, y], axis=-1)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


@register_combine("simple")
class Simple(keras.layers.Layer):
    """concat([features, rgb]) with no weights.

    Args:
        channels: int, the features' channel count.
    """

    def __init__(self, channels, img_channels=3, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.img_channels = img_channels

    def output_channels(self):
        return self.channels + self.img_channels

    def build(self, x_shape, img_shape):
        pass

    def call(self, x, img):
        return ops.concatenate([x, ops.cast(img, x.dtype)], axis=-1)

    def get_config(self):
        return {
            **super().get_config(),
            "channels": self.channels,
            "img_channels": self.img_channels,
        }


def _make_combine(name, channels, img_channels, dtype):
    cls = get_combine(name)
    kwargs = dict(name="combine", dtype=dtype)
    if cls is Simple:
        kwargs["img_channels"] = img_channels
    return cls(channels, **kwargs)


class DiscriminatorBlock(keras.layers.Layer):
    """[combine] -> [mbstd] -> 3x3 conv -> blur -> 3x3 conv down x2.

    Args:
        res: int, the block's input resolution.
        channels: int, C(res). out_channels: int, C(res / 2).
        combine: str or None, how this scale's image joins the features.
        mbstd: bool, minibatch stddev at the start of the block.
        img_channels, mbstd_group_size, mbstd_num_features: int.
    """

    def __init__(
        self,
        res,
        channels,
        out_channels,
        combine=None,
        fromrgb=False,
        mbstd=True,
        img_channels=3,
        mbstd_group_size=4,
        mbstd_num_features=1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.res = res
        self.channels = channels
        self.out_channels = out_channels
        self.combine = combine
        self.fromrgb = fromrgb
        self.mbstd = mbstd
        self.img_channels = img_channels
        self.mbstd_group_size = mbstd_group_size
        self.mbstd_num_features = mbstd_num_features
        dt = self.dtype_policy
        self.combine_layer = (
            _make_combine(combine, channels, img_channels, dt)
            if combine
            else None
        )
        self.fromrgb_layer = (
            FromRGB(channels, name="fromrgb", dtype=dt) if fromrgb else None
        )
        self.conv0 = EqualizedConv2D(
            channels, 3, activation="lrelu", name="conv0", dtype=dt
        )
        self.conv1 = EqualizedConv2D(
            out_channels,
            3,
            activation="lrelu",
            down=True,
            name="conv1",
            dtype=dt,
        )

    def in_channels(self):
        c = self.channels
        if self.combine_layer is not None:
            c = self.combine_layer.output_channels()
        return c + (self.mbstd_num_features if self.mbstd else 0)

    def build(self, x_shape, img_shape=None):
        n, r = x_shape[0], self.res
        if self.fromrgb_layer is not None:
            self.fromrgb_layer.build(x_shape)
            x_shape = (n, r, r, self.channels)
        if self.combine_layer is not None:
            self.combine_layer.build(x_shape, img_shape)
        self.conv0.build((n, r, r, self.in_channels()))
        self.conv1.build((n, r, r, self.channels))

    def call(self, x, img=None, from_rgb=None):
        # x: features [N, res, res, C(res)], or the image when `from_rgb`
        # (by default: when the block has a fromRGB).
        check_spatial(self, x, self.res)
        if from_rgb is None:
            from_rgb = self.fromrgb_layer is not None
        if from_rgb:
            x = self.fromrgb_layer(x)
        if self.combine_layer is not None:
            check_spatial(self, img, self.res)
            x = self.combine_layer(x, img)
        if self.mbstd:
            x = msg_ops.minibatch_stddev(
                x, self.mbstd_group_size, self.mbstd_num_features
            )
        x = self.conv0(x)
        return self.conv1(msg_ops.blur2d(x))

    def get_config(self):
        return {
            **super().get_config(),
            "res": self.res,
            "channels": self.channels,
            "out_channels": self.out_channels,
            "combine": self.combine,
            "fromrgb": self.fromrgb,
            "mbstd": self.mbstd,
            "img_channels": self.img_channels,
            "mbstd_group_size": self.mbstd_group_size,
            "mbstd_num_features": self.mbstd_num_features,
        }


class DiscriminatorEpilogue(DiscriminatorBlock):
    """The 4x4 block: [combine] -> mbstd -> 3x3 conv -> dense -> dense to 1.

    Args (besides DiscriminatorBlock's):
        fc_channels: int, width of the hidden dense layer (C(2), as StyleGAN).
    """

    def __init__(self, channels, fc_channels, **kwargs):
        kwargs.setdefault("res", 4)
        kwargs["out_channels"] = fc_channels
        super().__init__(channels=channels, **kwargs)
        self.fc_channels = fc_channels
        dt = self.dtype_policy
        self.conv1 = EqualizedConv2D(
            channels, 3, activation="lrelu", name="conv", dtype=dt
        )
        self.conv0 = None
        self.fc = EqualizedDense(
            fc_channels, gain=SQRT2, activation="lrelu", name="fc", dtype=dt
        )
        self.out = EqualizedDense(1, gain=1.0, name="out", dtype=dt)

    def build(self, x_shape, img_shape=None):
        n = x_shape[0]
        if self.fromrgb_layer is not None:
            self.fromrgb_layer.build((n, 4, 4, self.img_channels))
            x_shape = (n, 4, 4, self.channels)
        if self.combine_layer is not None:
            self.combine_layer.build(x_shape, img_shape)
        self.conv1.build((n, 4, 4, self.in_channels()))
        self.fc.build((n, 16 * self.channels))
        self.out.build((n, self.fc_channels))

    def call(self, x, img=None, from_rgb=None):
        check_spatial(self, x, 4)
        if from_rgb is None:
            from_rgb = self.fromrgb_layer is not None
        if from_rgb:
            x = self.fromrgb_layer(x)
        if self.combine_layer is not None:
            check_spatial(self, img, 4)
            x = self.combine_layer(x, img)
        x = msg_ops.minibatch_stddev(
            x, self.mbstd_group_size, self.mbstd_num_features
        )
        x = self.conv1(x)
        x = ops.reshape(x, (-1, 16 * self.channels))  # [N, 4*4*C]
        return self.out(self.fc(x))

    def get_config(self):
        config = super().get_config()
        config.pop("out_channels")
        config["fc_channels"] = self.fc_channels
        return config


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

    Args:
        img_resolution, img_channels, channel_base, channel_max: int.
        architecture: "msg" or "stylegan".
        combine: a registered combine name (`cat_lin`, `lin_cat`, `simple`).
        mbstd_group_size, mbstd_num_features: int.
        progressive: bool, progressive growing (architecture "stylegan").
    """

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
        progressive=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_resolution(img_resolution)
        if architecture not in ("msg", "stylegan"):
            raise ValueError(
                "architecture must be 'msg' or 'stylegan', got "
                f"'{architecture}'"
            )
        get_combine(combine)
        if progressive and architecture != "stylegan":
            raise ValueError(
                "progressive growing needs architecture 'stylegan', got "
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
        self.resolutions = resolutions_for(img_resolution)
        msg = architecture == "msg"
        self.num_inputs = len(self.resolutions) if msg else 1
        dt = self.dtype_policy

        def ch(res):
            return channels_for(res, channel_base, channel_max)

        common = dict(
            img_channels=img_channels,
            mbstd_group_size=mbstd_group_size,
            mbstd_num_features=mbstd_num_features,
            dtype=dt,
        )
        self.blocks = [
            DiscriminatorBlock(
                res,
                ch(res),
                ch(res // 2),
                combine=combine if msg and res != img_resolution else None,
                fromrgb=progressive or res == img_resolution,
                mbstd=msg,
                name=f"b{res}",
                **common,
            )
            for res in reversed(self.resolutions[1:])
        ]
        self.epilogue = DiscriminatorEpilogue(
            ch(4),
            ch(2),
            combine=combine if msg else None,
            fromrgb=progressive,
            name="b4",
            **common,
        )

    def build(self, imgs_shape):
        shapes = _shape_list(imgs_shape)
        n, c = shapes[-1][0], self.img_channels
        for block in self.blocks:
            r = block.res
            x_shape = (n, r, r, c if block.fromrgb else block.channels)
            block.build(x_shape, (n, r, r, c))
        self.epilogue.build((n, 4, 4, self.epilogue.channels), (n, 4, 4, c))
        self.built = True

    def call(self, imgs, resolution=None, alpha=None, training=False):
        # `training` is part of the shared D call (spectral norm uses it).
        imgs = self.check_inputs(imgs)
        if self.progressive:
            chain = self.blocks + [self.epilogue]  # full resolution down to 4
            return prog.discriminate(
                chain, imgs[-1], resolution, alpha, self.name
            )
        by_res = {img.shape[1]: img for img in imgs}
        # The top block reads the full-res image; lower ones combine theirs.
        x = imgs[-1]
        for block in self.blocks:
            x = block(x, by_res.get(block.res) if block.combine else None)
        img4 = by_res.get(4) if self.epilogue.combine else None
        return self.epilogue(x, img4)

    def summary_rows(self):
        """(layer name, layer or None, output shape) for a network table."""
        rows, n = [], "N"
        for block in self.blocks:
            r, c = block.res, block.channels
            if block.fromrgb_layer is not None:
                rows.append(
                    (f"b{r}/fromrgb", block.fromrgb_layer, (n, r, r, c))
                )
            if block.combine_layer is not None:
                out = (n, r, r, block.combine_layer.output_channels())
                rows.append((f"b{r}/combine", block.combine_layer, out))
            if block.mbstd:
                rows.append(
                    (f"b{r}/mbstd", None, (n, r, r, block.in_channels()))
                )
            rows.append((f"b{r}/conv0", block.conv0, (n, r, r, c)))
            out = (n, r // 2, r // 2, block.out_channels)
            rows.append((f"b{r}/conv1", block.conv1, out))
        e = self.epilogue
        if e.fromrgb_layer is not None:
            rows.append(("b4/fromrgb", e.fromrgb_layer, (n, 4, 4, e.channels)))
        if e.combine_layer is not None:
            out = (n, 4, 4, e.combine_layer.output_channels())
            rows.append(("b4/combine", e.combine_layer, out))
        rows.append(("b4/mbstd", None, (n, 4, 4, e.in_channels())))
        rows.append(("b4/conv", e.conv1, (n, 4, 4, e.channels)))
        rows.append(("b4/fc", e.fc, (n, e.fc_channels)))
        rows.append(("b4/out", e.out, (n, 1)))
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

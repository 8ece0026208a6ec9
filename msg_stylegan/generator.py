"""The StyleGAN generator with an RGB head at every resolution (MSG-StyleGAN).

SPEC section 1: mapping network (z -> w, w_avg, truncation) and synthesis
network (learned constant, per-layer noise, AdaIN styles) that returns the
list of images coarse to fine, 4x4 first.
"""

import math

import keras
from keras import ops

from msg_stylegan import ops as msg_ops
from msg_stylegan import progressive as prog
from msg_stylegan.layers import (
    SQRT2,
    EqualizedConv2D,
    EqualizedDense,
    NoiseInput,
    StyleModulation,
    ToRGB,
)


def channels_for(res, channel_base, channel_max):
    """C(res) = min(channel_base / res, channel_max), shared by G and D."""
    return min(channel_base // res, channel_max)


def num_ws_for(img_resolution):
    """Layers that take a style: two per block from 4x4 up."""
    return 2 * int(math.log2(img_resolution)) - 2


def resolutions_for(img_resolution):
    """Block resolutions 4, 8, ..., img_resolution."""
    return [2**k for k in range(2, int(math.log2(img_resolution)) + 1)]


class MappingNetwork(keras.layers.Layer):
    """z -> w: pixel norm then `mapping_layers` equalized dense + lrelu.

    Keeps `w_avg`, the moving average of w that the truncation trick pulls
    towards; the training step updates it (the layer never assigns state
    inside `call`, so the same code is stateless on every backend).

    Args:
        z_dim: int. w_dim: int. num_ws: int, copies of w broadcast.
        mapping_layers: int. lr_multiplier: float (0.01 in StyleGAN).
        w_avg_beta: float, the moving-average decay of w_avg.
    """

    def __init__(
        self,
        z_dim=512,
        w_dim=512,
        num_ws=18,
        mapping_layers=8,
        lr_multiplier=0.01,
        w_avg_beta=0.995,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.z_dim = z_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.mapping_layers = mapping_layers
        self.lr_multiplier = lr_multiplier
        self.w_avg_beta = w_avg_beta
        self.fcs = [
            EqualizedDense(
                w_dim,
                gain=SQRT2,
                lr_multiplier=lr_multiplier,
                activation="lrelu",
                name=f"fc{i}",
                dtype=self.dtype_policy,
            )
            for i in range(mapping_layers)
        ]

    def build(self, z_shape):
        shape = tuple(z_shape)
        for i, fc in enumerate(self.fcs):
            fc.build(shape)
            shape = shape[:-1] + (self.w_dim,)
        self.w_avg = self.add_weight(
            name="w_avg",
            shape=(self.w_dim,),
            initializer="zeros",
            trainable=False,
        )

    def call(self, z, truncation_psi=1.0, truncation_cutoff=None):
        # Normalise z, run the dense stack, broadcast w to every layer.
        x = msg_ops.pixel_norm(z)
        for fc in self.fcs:
            x = fc(x)
        ws = ops.repeat(ops.expand_dims(x, 1), self.num_ws, axis=1)
        return truncate(ws, self.w_avg, truncation_psi, truncation_cutoff)

    def compute_output_shape(self, z_shape):
        return (z_shape[0], self.num_ws, self.w_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "z_dim": self.z_dim,
            "w_dim": self.w_dim,
            "num_ws": self.num_ws,
            "mapping_layers": self.mapping_layers,
            "lr_multiplier": self.lr_multiplier,
            "w_avg_beta": self.w_avg_beta,
        }


def truncate(ws, w_avg, psi=1.0, cutoff=None):
    """w' = w_avg + psi * (w - w_avg) on the first `cutoff` layers."""
    if psi == 1:
        return ws
    num_ws = ws.shape[1]
    cutoff = num_ws if cutoff is None else min(cutoff, num_ws)
    mask = ops.convert_to_tensor(
        [[1.0] if i < cutoff else [0.0] for i in range(num_ws)], ws.dtype
    )  # [num_ws, 1]
    w_avg = ops.cast(w_avg, ws.dtype)
    truncated = w_avg + psi * (ws - w_avg)
    return mask * truncated + (1 - mask) * ws


class SynthesisLayer(keras.layers.Layer):
    """One styled layer: [conv] -> noise -> bias -> lrelu -> IN -> style.

    Args:
        channels: int, output channels. res: int, output resolution.
        conv: bool, False for the 4x4 constant's own layer.
        up: bool, upsample x2 + 3x3 conv + blur.
    """

    def __init__(self, channels, res, conv=True, up=False, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.res = res
        self.conv = conv
        self.up = up
        dt = self.dtype_policy
        self.conv_layer = (
            EqualizedConv2D(
                channels, 3, use_bias=False, up=up, name="conv", dtype=dt
            )
            if conv
            else None
        )
        self.noise = NoiseInput(res, name="noise", dtype=dt)
        self.style = StyleModulation(channels, name="style", dtype=dt)

    def build(self, x_shape, w_shape):
        shape = tuple(x_shape)
        if self.conv_layer is not None:
            self.conv_layer.build(shape)
            shape = (shape[0], self.res, self.res, self.channels)
        self.noise.build(shape)
        self.bias = self.add_weight(
            name="bias", shape=(self.channels,), initializer="zeros"
        )
        self.style.build(shape, w_shape)

    def call(self, x, w, noise_mode="random", noise=None):
        if self.conv_layer is not None:
            x = self.conv_layer(x)
        x = self.noise(x, noise_mode=noise_mode, noise=noise)
        x = msg_ops.lrelu(x + ops.cast(self.bias, x.dtype))
        x = msg_ops.instance_norm(x)
        return self.style(x, w)

    def get_config(self):
        return {
            **super().get_config(),
            "channels": self.channels,
            "res": self.res,
            "conv": self.conv,
            "up": self.up,
        }


class SynthesisBlock(keras.layers.Layer):
    """The two styled layers at one resolution and its RGB head.

    At 4x4 the first layer styles the learned constant; above, the first
    layer upsamples. Returns (features, rgb).

    Args:
        res: int. channels: int. img_channels: int.
    """

    def __init__(self, res, channels, img_channels=3, **kwargs):
        super().__init__(**kwargs)
        self.res = res
        self.channels = channels
        self.img_channels = img_channels
        dt = self.dtype_policy
        first = res == 4
        self.conv0 = SynthesisLayer(
            channels, res, conv=not first, up=not first, name="conv0", dtype=dt
        )
        self.conv1 = SynthesisLayer(channels, res, name="conv1", dtype=dt)
        self.torgb = ToRGB(img_channels, name="torgb", dtype=dt)

    def build(self, ws_shape, x_shape=None):
        w_shape = (ws_shape[0], ws_shape[-1])
        if self.res == 4:
            self.const = self.add_weight(
                name="const",
                shape=(1, 4, 4, self.channels),
                initializer="ones",
            )
            x_shape = (None, 4, 4, self.channels)
        self.conv0.build(x_shape, w_shape)
        shape = (x_shape[0], self.res, self.res, self.channels)
        self.conv1.build(shape, w_shape)
        self.torgb.build(shape)

    def call(self, ws, x=None, noise_mode="random", noise=(None, None)):
        # ws: [N, 2, w_dim]; x: [N, res/2, res/2, C'] (None at 4x4).
        if self.res == 4:
            n = ops.shape(ws)[0]
            x = ops.cast(self.const, ws.dtype)
            x = ops.broadcast_to(x, (n, 4, 4, self.channels))
        x = self.conv0(x, ws[:, 0], noise_mode=noise_mode, noise=noise[0])
        x = self.conv1(x, ws[:, 1], noise_mode=noise_mode, noise=noise[1])
        return x, self.torgb(x)

    def get_config(self):
        return {
            **super().get_config(),
            "res": self.res,
            "channels": self.channels,
            "img_channels": self.img_channels,
        }


class SynthesisNetwork(keras.layers.Layer):
    """ws -> the list of images, one per block resolution, coarse to fine.

    The RGB heads are independent: no head is upsampled into the next.

    Args:
        img_resolution: int, power of two in 8..1024.
        img_channels: int. channel_base, channel_max: int, see `channels_for`.
        w_dim: int.
    """

    def __init__(
        self,
        img_resolution,
        img_channels=3,
        channel_base=16384,
        channel_max=512,
        w_dim=512,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_resolution(img_resolution)
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.channel_base = channel_base
        self.channel_max = channel_max
        self.w_dim = w_dim
        self.resolutions = resolutions_for(img_resolution)
        self.num_ws = num_ws_for(img_resolution)
        self.blocks = [
            SynthesisBlock(
                res,
                channels_for(res, channel_base, channel_max),
                img_channels,
                name=f"b{res}",
                dtype=self.dtype_policy,
            )
            for res in self.resolutions
        ]

    @property
    def noise_resolutions(self):
        """The noise image size of every styled layer, in call order."""
        return [res for res in self.resolutions for _ in range(2)]

    def build(self, ws_shape):
        shape = None
        for block in self.blocks:
            block.build((ws_shape[0], 2, ws_shape[-1]), shape)
            shape = (ws_shape[0], block.res, block.res, block.channels)

    def call(self, ws, noise_mode="random", noise=None, resolution=None):
        # `resolution` (static) stops after that block (progressive growing).
        if ws.shape[1] != self.num_ws:
            raise ValueError(
                f"synthesis expects ws with {self.num_ws} layers, got shape "
                f"{tuple(ws.shape)}"
            )
        noise = noise or [None] * self.num_ws
        resolution = resolution or self.img_resolution
        if resolution not in self.resolutions:
            raise ValueError(
                f"synthesis: resolution must be one of {self.resolutions}, "
                f"got {resolution!r}"
            )
        x, imgs = None, []
        blocks = self.blocks[: self.resolutions.index(resolution) + 1]
        for i, block in enumerate(blocks):
            x, img = block(
                ws[:, 2 * i : 2 * i + 2],
                x,
                noise_mode=noise_mode,
                noise=noise[2 * i : 2 * i + 2],
            )
            imgs.append(img)
        return imgs

    def get_config(self):
        return {
            **super().get_config(),
            "img_resolution": self.img_resolution,
            "img_channels": self.img_channels,
            "channel_base": self.channel_base,
            "channel_max": self.channel_max,
            "w_dim": self.w_dim,
        }


class BaseGenerator(keras.Model):
    """What every generator family shares: z -> an RGB image per level.

    Every family offers the same call, so the training backends never look
    inside: `call(z, ..., resolution, alpha, mixing, return_ws)` where
    `mixing=(z2, cutoff)` takes layers from `cutoff` on from z2's w
    (style-mixing regularisation) and `return_ws` also returns the unmixed
    ws (for the w_avg update); `noise_resolutions` and `w_avg` say what the
    step must draw and track. A family supplies `map_latents` (z -> ws and
    what its blocks take) and `levels` (the RGB images of its blocks up to
    a resolution, coarse to fine).

    `progressive=False` returns the images coarse to fine (4x4 first, full
    size last). `progressive=True` (SPEC section 10) returns a list of ONE
    full-size image at a level of detail: a training step passes the
    current `resolution` (static) and the fade weight `alpha` (runtime, the
    weight of the coarser level); other calls blend every level at the
    stored non-trainable `lod` weight, which the training loop keeps
    current and snapshots carry.

    Args:
        img_resolution: int, power of two in 8..1024.
        img_channels: int. z_dim: int, the latent size.
        channel_base, channel_max: int, see `channels_for`.
        progressive: bool, one full-size output at a level of detail.
    """

    def __init__(
        self,
        img_resolution=1024,
        img_channels=3,
        z_dim=512,
        channel_base=16384,
        channel_max=512,
        progressive=False,
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
        self.resolutions = resolutions_for(img_resolution)

    def build_lod(self):
        """The stored level of detail of a progressive generator."""
        if self.progressive:
            self.lod = self.add_weight(
                name="lod",
                shape=(),
                initializer="zeros",
                dtype="float32",
                trainable=False,
            )

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
        ws, x = self.map_latents(z, truncation_psi, truncation_cutoff, mixing)
        imgs = self.images(x, resolution, alpha, noise_mode, noise)
        return (imgs, ws) if return_ws else imgs

    def images(
        self, x, resolution=None, alpha=None, noise_mode="random", noise=None
    ):
        """What `call` returns for `x`, the input of `levels`."""
        noise = dict(noise_mode=noise_mode, noise=noise)
        if not self.progressive:
            return self.levels(x, **noise)
        if resolution is None:
            # Every level, blended at the stored lod.
            return [prog.blend_all_levels(self.levels(x, **noise), self.lod)]
        # Training: the blocks up to `resolution`, faded by alpha.
        imgs = self.levels(x, resolution, **noise)
        previous = imgs[-2] if len(imgs) > 1 else None
        return prog.training_output(
            imgs[-1], previous, alpha, self.img_resolution
        )

    def get_config(self):
        return {
            "name": self.name,
            "img_resolution": self.img_resolution,
            "img_channels": self.img_channels,
            "z_dim": self.z_dim,
            "channel_base": self.channel_base,
            "channel_max": self.channel_max,
            "progressive": self.progressive,
        }


class Generator(BaseGenerator):
    """Mapping + synthesis: z -> list of images, 4x4 first, full size last
    (or one image at a level of detail when progressive, the published
    StyleGAN baseline; see `BaseGenerator`).

    Args:
        img_resolution, img_channels, channel_base, channel_max: as the
            synthesis network. z_dim, w_dim, mapping_layers,
            mapping_lr_multiplier, w_avg_beta: as the mapping network.
        truncation_cutoff: int, layers the truncation trick applies to.
        progressive: bool, one full-size output at a level of detail.
    """

    def __init__(
        self,
        img_resolution=1024,
        img_channels=3,
        z_dim=512,
        w_dim=512,
        mapping_layers=8,
        mapping_lr_multiplier=0.01,
        channel_base=16384,
        channel_max=512,
        w_avg_beta=0.995,
        truncation_cutoff=8,
        progressive=False,
        **kwargs,
    ):
        super().__init__(
            img_resolution,
            img_channels,
            z_dim,
            channel_base,
            channel_max,
            progressive,
            **kwargs,
        )
        self.w_dim = w_dim
        self.mapping_layers = mapping_layers
        self.mapping_lr_multiplier = mapping_lr_multiplier
        self.w_avg_beta = w_avg_beta
        self.truncation_cutoff = truncation_cutoff
        self.num_ws = num_ws_for(img_resolution)
        dt = self.dtype_policy
        self.mapping = MappingNetwork(
            z_dim,
            w_dim,
            self.num_ws,
            mapping_layers,
            mapping_lr_multiplier,
            w_avg_beta,
            name="mapping",
            dtype=dt,
        )
        self.synthesis = SynthesisNetwork(
            img_resolution,
            img_channels,
            channel_base,
            channel_max,
            w_dim,
            name="synthesis",
            dtype=dt,
        )

    @property
    def noise_resolutions(self):
        return self.synthesis.noise_resolutions

    @property
    def w_avg(self):
        return self.mapping.w_avg

    def latent_codes(self, z, truncation_psi=1.0, truncation_cutoff=None):
        """What `synthesize` takes: ws after truncation (generate.py
        interpolates and mixes styles on these)."""
        return self.mapping(
            z,
            truncation_psi=truncation_psi,
            truncation_cutoff=truncation_cutoff,
        )

    def synthesize(self, ws, noise_mode="random", noise=None):
        """ws -> images as `call` returns them (at the stored lod when
        progressive)."""
        return self.images(ws, noise_mode=noise_mode, noise=noise)

    def num_ws_used(self, resolution=None):
        """Styled layers that run up to `resolution` (style mixing range)."""
        return num_ws_for(resolution or self.img_resolution)

    def build(self, z_shape):
        self.mapping.build(z_shape)
        self.synthesis.build((z_shape[0], self.num_ws, self.w_dim))
        self.build_lod()
        self.built = True

    def map_latents(self, z, truncation_psi, truncation_cutoff, mixing):
        """(ws, the styles the synthesis takes)."""
        if truncation_cutoff == "default":
            truncation_cutoff = self.truncation_cutoff
        trunc = dict(
            truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff
        )
        ws = self.mapping(z, **trunc)
        if mixing is None:
            return ws, ws
        # Style mixing: layers from the cutoff on take z2's w.
        z2, cutoff = mixing
        return ws, prog.mix_styles(ws, self.mapping(z2, **trunc), cutoff)

    def levels(self, ws, resolution=None, noise_mode="random", noise=None):
        return self.synthesis(
            ws, noise_mode=noise_mode, noise=noise, resolution=resolution
        )

    def summary_rows(self):
        """(layer name, layer or None, output shape) for a network table."""
        rows, n = [], "N"
        for i, fc in enumerate(self.mapping.fcs):
            rows.append((f"mapping/fc{i}", fc, (n, self.w_dim)))
        rows.append(("mapping/broadcast", None, (n, self.num_ws, self.w_dim)))
        for block in self.synthesis.blocks:
            r, c = block.res, block.channels
            p = f"synthesis/b{r}"
            if r == 4:
                rows.append((f"{p}/const", block.const, (1, 4, 4, c)))
            rows.append((f"{p}/conv0", block.conv0, (n, r, r, c)))
            rows.append((f"{p}/conv1", block.conv1, (n, r, r, c)))
            rgb = (n, r, r, self.img_channels)
            rows.append((f"{p}/torgb", block.torgb, rgb))
        return rows

    def get_config(self):
        return {
            **super().get_config(),
            "w_dim": self.w_dim,
            "mapping_layers": self.mapping_layers,
            "mapping_lr_multiplier": self.mapping_lr_multiplier,
            "w_avg_beta": self.w_avg_beta,
            "truncation_cutoff": self.truncation_cutoff,
        }


def check_resolution(res):
    if not isinstance(res, int) or res < 8 or res > 1024 or res & (res - 1):
        raise ValueError(
            f"img_resolution must be a power of two in 8..1024, got {res!r}"
        )

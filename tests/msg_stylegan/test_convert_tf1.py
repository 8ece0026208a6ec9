"""TF1 network pickles: read safely, convert, and match a NumPy reference.

No published TF1 pickle can be downloaded here, so the tests write pickles
with the TF1 state layout (stub classes pickled under the names
`dnnlib.tflib.network.Network` and `tfutil.Network`, the variable names
and shapes the TF1 codes create at 16x16) and check the converted networks
against a forward pass written here in NumPy, in TF1's NCHW terms, from the
same arrays: mapping, every synthesis layer with noise and styles, the
fused (transposed-conv) upscale, the multi-scale D, ProGAN's G.
"""

import contextlib
import math
import os
import pickle
import sys
import types

import numpy as np
import pytest

import convert_tf1 as convert_cli
import generate
from dnnlib.util import UserError
from msg_stylegan import (
    convert_tf1,
    inference,
    networks,
    snapshot,
    tf1_pickle,
)

RES = 16  # scales 4, 8, 16
SQRT2 = math.sqrt(2.0)

# Small TF1 settings: nf(stage) = min(fmap_base / 2**stage, fmap_max).
STYLE_KW = dict(
    resolution=RES,
    num_channels=3,
    label_size=0,
    fmap_base=32,  # nf: 16 (4x4), 8 (8x8), 4 (16x16); D's Dense0 16
    fmap_max=16,
    latent_size=8,
    dlatent_size=8,
    mapping_fmaps=8,
    mapping_layers=2,
    fused_scale=True,  # every Conv0_up fused, as StyleGAN's 128 and up
)
PROGAN_KW = dict(
    resolution=RES,
    num_channels=3,
    label_size=0,
    fmap_base=64,  # nf: 16, 16, 8; latent_size nf(0) = 16
    fmap_max=16,
)


# ---------------------------------------------------------------------------
# TF1-shaped pickles.


def _nf(kw, stage):
    return min(int(kw["fmap_base"] / 2.0**stage), kw["fmap_max"])


class _Vars:
    """Random TF1 variables: weights N(0, std), biases small, by name."""

    def __init__(self, seed):
        self.rnd = np.random.RandomState(seed)
        self.v = {}

    def add(self, name, shape, std=1.0):
        self.v[name] = (self.rnd.randn(*shape) * std).astype(np.float32)

    def epilogue(self, scope, c, w_dim):
        self.add(f"{scope}/Noise/weight", [c], 0.5)
        self.add(f"{scope}/bias", [c], 0.2)
        self.add(f"{scope}/StyleMod/weight", [w_dim, 2 * c])
        self.add(f"{scope}/StyleMod/bias", [2 * c], 0.2)


def stylegan_g_vars(kw, seed, lod):
    """(own, mapping, synthesis) variables of G_style at kw['resolution']."""
    log2 = int(math.log2(kw["resolution"]))
    w_dim, nf = kw["dlatent_size"], lambda s: _nf(kw, s)
    own, mapping, syn = _Vars(seed), _Vars(seed + 1), _Vars(seed + 2)
    own.add("dlatent_avg", [w_dim], 0.5)
    fan = kw["latent_size"]
    for i in range(kw["mapping_layers"]):
        mapping.add(f"Dense{i}/weight", [fan, w_dim], 100.0)  # 1 / lrmul
        mapping.add(f"Dense{i}/bias", [w_dim], 10.0)
        fan = w_dim
    if lod:
        syn.v["lod"] = np.float32(0.0)
    for i in range(2 * log2 - 2):
        r = 2 ** (i // 2 + 2)
        syn.add(f"noise{i}", [1, 1, r, r])
    syn.add("4x4/Const/const", [1, nf(1), 4, 4])
    syn.epilogue("4x4/Const", nf(1), w_dim)
    syn.add("4x4/Conv/weight", [3, 3, nf(1), nf(1)])
    syn.epilogue("4x4/Conv", nf(1), w_dim)
    for res in range(3, log2 + 1):
        s = f"{2**res}x{2**res}"
        syn.add(f"{s}/Conv0_up/weight", [3, 3, nf(res - 2), nf(res - 1)])
        syn.epilogue(f"{s}/Conv0_up", nf(res - 1), w_dim)
        syn.add(f"{s}/Conv1/weight", [3, 3, nf(res - 1), nf(res - 1)])
        syn.epilogue(f"{s}/Conv1", nf(res - 1), w_dim)
    for res in range(2, log2 + 1):
        syn.add(f"ToRGB_lod{log2 - res}/weight", [1, 1, nf(res - 1), 3])
        syn.add(f"ToRGB_lod{log2 - res}/bias", [3], 0.2)
    return own.v, mapping.v, syn.v


def d_vars(kw, seed, msg):
    """D_basic's variables: msg-stylegan-tf's (msg) or NVlabs'/ProGAN's."""
    log2 = int(math.log2(kw["resolution"]))
    nf = lambda s: _nf(kw, s)  # noqa: E731
    d = _Vars(seed)
    if not msg:
        d.v["lod"] = np.float32(0.0)
    for res in range(log2, 1, -1) if not msg else [log2]:
        d.add(f"FromRGB_lod{log2 - res}/weight", [1, 1, 3, nf(res - 1)])
        d.add(f"FromRGB_lod{log2 - res}/bias", [nf(res - 1)], 0.2)
    mbstd = 1 if msg else 0  # MSG: minibatch stddev in every block
    for res in range(log2, 1, -1):
        s, c = f"{2**res}x{2**res}", nf(res - 1)
        if msg and res < log2:
            d.add(f"{s}/combine/weight", [1, 1, c + 3, c])
        if res > 2:
            d.add(f"{s}/Conv0/weight", [3, 3, c + mbstd, c])
            d.add(f"{s}/Conv0/bias", [c], 0.2)
            d.add(f"{s}/Conv1_down/weight", [3, 3, c, nf(res - 2)])
            d.add(f"{s}/Conv1_down/bias", [nf(res - 2)], 0.2)
    d.add("4x4/Conv/weight", [3, 3, nf(1) + 1, nf(1)])
    d.add("4x4/Conv/bias", [nf(1)], 0.2)
    d.add("4x4/Dense0/weight", [nf(1) * 16, nf(0)])
    d.add("4x4/Dense0/bias", [nf(0)], 0.2)
    d.add("4x4/Dense1/weight", [nf(0), 1])
    d.add("4x4/Dense1/bias", [1], 0.2)
    return d.v


def progan_g_vars(kw, seed, layout="out,in"):
    """G_paper's variables; Conv0_up as ProGAN's code ([k,k,out,in]) or as
    NVlabs' port ([k,k,in,out])."""
    log2 = int(math.log2(kw["resolution"]))
    nf = lambda s: _nf(kw, s)  # noqa: E731
    g = _Vars(seed)
    g.v["lod"] = np.float32(0.0)
    g.add("4x4/Dense/weight", [nf(0), nf(1) * 16])
    g.add("4x4/Dense/bias", [nf(1)], 0.2)
    g.add("4x4/Conv/weight", [3, 3, nf(1), nf(1)])
    g.add("4x4/Conv/bias", [nf(1)], 0.2)
    for res in range(3, log2 + 1):
        s, cin, cout = f"{2**res}x{2**res}", nf(res - 2), nf(res - 1)
        g.add(f"{s}/Conv0_up/weight", [3, 3, cout, cin])
        if layout == "in,out":
            w = g.v[f"{s}/Conv0_up/weight"]
            g.v[f"{s}/Conv0_up/weight"] = np.ascontiguousarray(
                w.transpose(0, 1, 3, 2)
            )
        g.add(f"{s}/Conv0_up/bias", [cout], 0.2)
        g.add(f"{s}/Conv1/weight", [3, 3, cout, cout])
        g.add(f"{s}/Conv1/bias", [cout], 0.2)
    for res in range(2, log2 + 1):
        g.add(f"ToRGB_lod{log2 - res}/weight", [1, 1, nf(res - 1), 3])
        g.add(f"ToRGB_lod{log2 - res}/bias", [3], 0.2)
    return g.v


class _Net:
    """Pickles as a TF1 Network: `__getstate__` gives the TF1 state."""

    def __init__(self, state):
        self._state = state

    def __getstate__(self):
        return self._state


@contextlib.contextmanager
def _tf1_classes():
    """Make _Net picklable as dnnlib.tflib.network.Network/tfutil.Network."""
    made = {}
    for module in ("dnnlib.tflib", "dnnlib.tflib.network", "tfutil"):
        made[module] = types.ModuleType(module)
    classes = {}
    for module in ("dnnlib.tflib.network", "tfutil"):
        cls = type("Network", (_Net,), {"__module__": module})
        made[module].Network = classes[module] = cls
    saved = {m: sys.modules.get(m) for m in made}
    sys.modules.update(made)
    try:
        yield classes
    finally:
        for m, old in saved.items():
            if old is None:
                sys.modules.pop(m, None)
            else:
                sys.modules[m] = old


def _state(name, func, kwargs, variables, components=None, version=3):
    state = {
        "version": version,
        "name": name,
        "static_kwargs": dict(kwargs),
        "build_module_src": "raise SystemExit('TF1 source must not run')",
        "build_func_name": func,
        "variables": list(variables.items()),
    }
    if version == 3:
        state["components"] = dict(components or {})
    return state


def write_stylegan_pickle(path, kw, nvlabs=False, extra=None):
    """(G, D, Gs) as msg-stylegan-tf (nvlabs=False) or NVlabs pickles them;
    `extra` adds variables to Gs's synthesis network."""
    func = "training.networks_stylegan."
    with _tf1_classes() as classes:
        Network = classes["dnnlib.tflib.network"]
        nets = []
        for i, name in enumerate(("G", "Gs")):
            own, mapping, syn = stylegan_g_vars(kw, seed=10 + 3 * i, lod=nvlabs)
            if name == "Gs" and extra:
                syn.update(extra)
            comps = {
                "synthesis": Network(
                    _state("G_synthesis", func + "G_synthesis", kw, syn)
                ),
                "mapping": Network(
                    _state(
                        "G_mapping",
                        func + "G_mapping",
                        {**kw, "dlatent_broadcast": 6},
                        mapping,
                    )
                ),
            }
            nets.append(Network(_state(name, func + "G_style", kw, own, comps)))
        d = Network(
            _state("D", func + "D_basic", kw, d_vars(kw, 30, msg=not nvlabs))
        )
        data = pickle.dumps((nets[0], d, nets[1]), protocol=4)
    with open(path, "wb") as f:
        f.write(data)
    return path


def write_progan_pickle(path, kw, layout="out,in"):
    """ProGAN's own pickle (tfutil.Network, version 2) or NVlabs' port."""
    own = layout == "out,in"
    module = "tfutil" if own else "dnnlib.tflib.network"
    func = "networks." if own else "training.networks_progan."
    version = 2 if own else 3
    with _tf1_classes() as classes:
        Network = classes[module]
        g, gs = (
            Network(
                _state(
                    n,
                    func + "G_paper",
                    kw,
                    progan_g_vars(kw, seed, layout),
                    version=version,
                )
            )
            for n, seed in (("G", 40), ("Gs", 41))
        )
        d = Network(
            _state(
                "D",
                func + "D_paper",
                kw,
                d_vars(kw, 42, msg=False),
                version=version,
            )
        )
        data = pickle.dumps((g, d, gs), protocol=4)
    with open(path, "wb") as f:
        f.write(data)
    return path


# ---------------------------------------------------------------------------
# The NumPy reference: TF1's layers, NCHW, from the TF1 arrays.


def wscale(w, gain, lrmul=1.0, fan_in=None):
    fan_in = fan_in or int(np.prod(w.shape[:-1]))
    return w * (gain / np.sqrt(fan_in) * lrmul)


def lrelu(x):
    return np.maximum(x, 0.2 * x)


def pixel_norm(x):
    return x / np.sqrt(np.mean(x**2, axis=1, keepdims=True) + 1e-8)


def conv(x, w, stride=1):
    """NCHW cross-correlation, TF 'SAME' padding; w [kh, kw, in, out]."""
    k, (n, _, h, _) = w.shape[0], x.shape
    oh = -(-h // stride)
    total = max((oh - 1) * stride + k - h, 0)
    lo = total // 2
    x = np.pad(x, ((0, 0), (0, 0), (lo, total - lo), (lo, total - lo)))
    out = np.zeros((n, w.shape[3], oh, oh), np.float64)
    for dy in range(k):
        for dx in range(k):
            patch = x[:, :, dy : dy + stride * oh : stride]
            patch = patch[:, :, :, dx : dx + stride * oh : stride]
            out += np.einsum("nchw,co->nohw", patch, w[dy, dx])
    return out


def conv_transpose_up(x, kernel):
    """tf.nn.conv2d_transpose, stride 2, 'SAME', kernel [4, 4, out, in]."""
    n, _, h, w = x.shape
    full = np.zeros((n, kernel.shape[2], 2 * h + 2, 2 * w + 2))
    for m in range(4):
        for k in range(4):
            full[:, :, m : m + 2 * h : 2, k : k + 2 * w : 2] += np.einsum(
                "nchw,oc->nohw", x, kernel[m, k]
            )
    return full[:, :, 1 : 2 * h + 1, 1 : 2 * w + 1]


def fused_up_conv(x, w, layout="in,out"):
    """TF1's upscale2d_conv2d with fused_scale=True."""
    if layout == "in,out":
        w = w.transpose(0, 1, 3, 2)  # [k, k, out, in]
    w = np.pad(w, ((1, 1), (1, 1), (0, 0), (0, 0)))
    w = w[1:, 1:] + w[:-1, 1:] + w[1:, :-1] + w[:-1, :-1]
    return conv_transpose_up(x, w)


def fused_down_conv(x, w):
    """TF1's conv2d_downscale2d with fused_scale=True."""
    w = np.pad(w, ((1, 1), (1, 1), (0, 0), (0, 0)))
    w = (w[1:, 1:] + w[:-1, 1:] + w[1:, :-1] + w[:-1, :-1]) * 0.25
    return conv(x, w, stride=2)


def blur(x):
    f = np.outer([1, 2, 1], [1, 2, 1]) / 16.0
    c = x.shape[1]
    kernel = np.zeros((3, 3, c, c))
    for i in range(c):
        kernel[:, :, i, i] = f
    return conv(x, kernel)


def instance_norm(x):
    x = x - x.mean(axis=(2, 3), keepdims=True)
    return x / np.sqrt(np.mean(x**2, axis=(2, 3), keepdims=True) + 1e-8)


def mbstd(x, group_size=4):
    """TF1's minibatch_stddev_layer, one new feature, strided groups."""
    n, c, h, w = x.shape
    g = min(group_size, n)
    y = x.reshape(g, -1, c, h, w)
    y = np.sqrt(np.mean((y - y.mean(0)) ** 2, axis=0) + 1e-8)  # [MCHW]
    y = y.mean(axis=(1, 2, 3))  # [M]
    y = np.tile(y, g).reshape(n, 1, 1, 1) * np.ones((n, 1, h, w))
    return np.concatenate([x, y], axis=1)


def ref_mapping(v, z, layers, lrmul=0.01):
    x = pixel_norm(z)
    for i in range(layers):
        w = wscale(v[f"G_mapping/Dense{i}/weight"], SQRT2, lrmul)
        x = lrelu(x @ w + v[f"G_mapping/Dense{i}/bias"] * lrmul)
    return x


def ref_synthesis(v, ws, res):
    """Every ToRGB output (NCHW), coarse to fine; noise from the buffers."""
    p = "G_synthesis/"

    def epilogue(x, i, scope):
        x = x + v[f"{p}noise{i}"] * v[f"{scope}/Noise/weight"][:, None, None]
        x = lrelu(x + v[f"{scope}/bias"][:, None, None])
        x = instance_norm(x)
        style = ws[:, i] @ wscale(v[f"{scope}/StyleMod/weight"], 1.0)
        style = style + v[f"{scope}/StyleMod/bias"]
        c = x.shape[1]
        return x * (style[:, :c, None, None] + 1) + style[:, c:, None, None]

    def torgb(x, r):
        lod = int(math.log2(res) - math.log2(r))
        w = wscale(v[f"{p}ToRGB_lod{lod}/weight"], 1.0)
        return conv(x, w) + v[f"{p}ToRGB_lod{lod}/bias"][:, None, None]

    n = ws.shape[0]
    x = np.tile(v[f"{p}4x4/Const/const"], (n, 1, 1, 1))
    x = epilogue(x, 0, f"{p}4x4/Const")
    x = conv(x, wscale(v[f"{p}4x4/Conv/weight"], SQRT2))
    x = epilogue(x, 1, f"{p}4x4/Conv")
    imgs = [torgb(x, 4)]
    for i, r in enumerate(range(3, int(math.log2(res)) + 1)):
        s = f"{p}{2**r}x{2**r}"
        w = wscale(v[f"{s}/Conv0_up/weight"], SQRT2)
        x = epilogue(blur(fused_up_conv(x, w)), 2 * i + 2, f"{s}/Conv0_up")
        x = conv(x, wscale(v[f"{s}/Conv1/weight"], SQRT2))
        x = epilogue(x, 2 * i + 3, f"{s}/Conv1")
        imgs.append(torgb(x, 2**r))
    return imgs


def ref_g_style(v, z, kw, psi=1.0, cutoff=8):
    w = ref_mapping(v, z, kw["mapping_layers"])
    num_ws = 2 * int(math.log2(kw["resolution"])) - 2
    ws = np.repeat(w[:, None], num_ws, axis=1)
    coef = np.where(np.arange(num_ws) < cutoff, psi, 1.0)[None, :, None]
    ws = v["dlatent_avg"] + (ws - v["dlatent_avg"]) * coef
    return ref_synthesis(v, ws, kw["resolution"])


def ref_d_msg(v, imgs):
    """msg-stylegan-tf's D_basic with fused downscale convs."""
    log2 = int(math.log2(imgs[-1].shape[-1]))

    def layer(x, scope, gain=SQRT2, op=conv):
        w = wscale(v[f"{scope}/weight"], gain)
        return lrelu(op(x, w) + v[f"{scope}/bias"][:, None, None])

    x = layer(imgs[-1], "FromRGB_lod0")
    for res in range(log2, 1, -1):
        s = f"{2**res}x{2**res}"
        if res < log2:
            x = np.concatenate([x, imgs[res - 2]], axis=1)
            x = conv(x, wscale(v[f"{s}/combine/weight"], SQRT2))
        x = mbstd(x)
        if res > 2:
            x = layer(x, f"{s}/Conv0")
            x = layer(blur(x), f"{s}/Conv1_down", op=fused_down_conv)
    x = layer(x, "4x4/Conv").reshape(x.shape[0], -1)  # NCHW flatten
    x = lrelu(x @ wscale(v["4x4/Dense0/weight"], SQRT2) + v["4x4/Dense0/bias"])
    return x @ wscale(v["4x4/Dense1/weight"], 1.0) + v["4x4/Dense1/bias"]


def ref_progan_g(v, z, res, layout="out,in"):
    """G_paper at lod 0 (fused upscale convs): the full-size image."""
    x = pixel_norm(z)
    c = v["4x4/Dense/bias"].shape[0]
    x = x @ wscale(v["4x4/Dense/weight"], SQRT2 / 4)
    x = x.reshape(-1, c, 4, 4) + v["4x4/Dense/bias"][:, None, None]
    x = pixel_norm(lrelu(x))
    w = wscale(v["4x4/Conv/weight"], SQRT2)
    x = pixel_norm(lrelu(conv(x, w) + v["4x4/Conv/bias"][:, None, None]))
    for r in range(3, int(math.log2(res)) + 1):
        s = f"{2**r}x{2**r}"
        w = v[f"{s}/Conv0_up/weight"]
        cin = w.shape[3] if layout == "out,in" else w.shape[2]
        w = wscale(w, SQRT2, fan_in=9 * cin)
        x = fused_up_conv(x, w, layout) + v[f"{s}/Conv0_up/bias"][:, None, None]
        x = pixel_norm(lrelu(x))
        w = wscale(v[f"{s}/Conv1/weight"], SQRT2)
        x = pixel_norm(lrelu(conv(x, w) + v[f"{s}/Conv1/bias"][:, None, None]))
    w = wscale(v["ToRGB_lod0/weight"], 1.0)
    return conv(x, w) + v["ToRGB_lod0/bias"][:, None, None]


def nhwc(x):
    return np.transpose(np.asarray(x, np.float64), (0, 2, 3, 1))


def gs_vars(path):
    """Gs's variables by flat TF1 name, read back from the pickle."""
    return tf1_pickle.read(path)[2].flat_variables()


def quiet(*_):
    pass


# ---------------------------------------------------------------------------
# Fixtures: one pickle and one conversion per family.


@pytest.fixture(scope="module")
def msg_pkl(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tf1")
    return str(write_stylegan_pickle(folder / "msg-flowers.pkl", STYLE_KW))


@pytest.fixture(scope="module")
def msg_converted(msg_pkl):
    lines = []
    return convert_tf1.convert(msg_pkl, log=lines.append), lines


def _build(data, which):
    import config as config_lib

    cfg = config_lib.Config.from_json(data["config"])
    if which == "D":
        _, net = networks.build_networks(cfg)
    else:
        net = networks.build_generator(cfg, name=which)
    networks.set_state(net, data[which])
    return net, cfg


# ---------------------------------------------------------------------------
# Tests.


def test_msg_config_inferred_and_reported(msg_converted):
    data, lines = msg_converted
    cfg = _build(data, "Gs")[1]
    assert cfg.name == "msg-stylegan-flowers"  # from the file name
    assert (cfg.architecture, cfg.combine, cfg.progressive) == (
        "msg",
        "cat_lin",
        False,
    )
    assert (cfg.img_resolution, cfg.channel_base, cfg.channel_max) == (
        16,
        64,  # 2 * fmap_base: C(res) = min(64 / res, 16) = nf(log2 res - 1)
        16,
    )
    assert (cfg.z_dim, cfg.w_dim, cfg.mapping_layers) == (8, 8, 2)
    text = "\n".join(lines)
    assert "MSG-StyleGAN" in text and "fmap_base 32" in text
    assert "config: msg-stylegan-flowers (dataset from the file name)" in text
    assert "fused upscale kernels flipped" in text


def test_msg_every_variable_lands(msg_pkl, msg_converted):
    data, _ = msg_converted
    tf1 = gs_vars(msg_pkl)
    gs = data["Gs"]
    # Every project variable but the RNG state comes from a TF1 array, and
    # TF1 holds no more arrays than were used (the converter refuses any
    # left over, see test_unknown_variable_is_one_line).
    weights = [k for k in gs if not k.endswith("seed_generator_state")]
    assert len(weights) == len(tf1)
    np.testing.assert_array_equal(gs["mapping/w_avg"], tf1["dlatent_avg"])
    np.testing.assert_array_equal(
        gs["synthesis/b4/const"],
        tf1["G_synthesis/4x4/Const/const"].transpose(0, 2, 3, 1),
    )
    np.testing.assert_array_equal(
        gs["synthesis/b16/conv1/noise/const"][0, :, :, 0],
        tf1["G_synthesis/noise5"][0, 0],
    )
    d_tf1 = tf1_pickle.read(msg_pkl)[1].flat_variables()
    assert len(data["D"]) == len(d_tf1)


def test_msg_gs_equals_numpy_reference(msg_pkl, msg_converted):
    data, _ = msg_converted
    Gs, _ = _build(data, "Gs")
    v = gs_vars(msg_pkl)
    z = np.random.RandomState(0).randn(3, 8).astype(np.float32)
    for psi in (1.0, 0.5):
        ws = Gs.latent_codes(z, truncation_psi=psi, truncation_cutoff=8)
        ours = Gs.synthesize(ws, noise_mode="const")
        ref = ref_g_style(v, z.astype(np.float64), STYLE_KW, psi=psi)
        assert [tuple(o.shape) for o in ours] == [
            (3, r, r, 3) for r in (4, 8, 16)
        ]
        for o, r in zip(ours, ref):
            np.testing.assert_allclose(np.asarray(o), nhwc(r), atol=2e-4)


def test_msg_d_equals_numpy_reference(msg_pkl, msg_converted):
    data, _ = msg_converted
    D, _ = _build(data, "D")
    v = tf1_pickle.read(msg_pkl)[1].flat_variables()
    rnd = np.random.RandomState(1)
    # A batch of 4 is one minibatch-stddev group: TF1's strided grouping
    # and this project's contiguous one agree.
    imgs = [rnd.randn(4, 3, r, r) for r in (4, 8, 16)]
    ours = D([nhwc(i).astype(np.float32) for i in imgs])
    np.testing.assert_allclose(np.asarray(ours), ref_d_msg(v, imgs), atol=2e-4)


def test_nvlabs_stylegan_progressive(tmp_path):
    path = write_stylegan_pickle(
        tmp_path / "karras2019stylegan-ffhq.pkl", STYLE_KW, nvlabs=True
    )
    lines = []
    data = convert_tf1.convert(path, log=lines.append)
    Gs, cfg = _build(data, "Gs")
    assert (cfg.name, cfg.architecture, cfg.progressive) == (
        "stylegan-ffhq",
        "stylegan",
        True,
    )
    assert "StyleGAN (NVlabs" in lines[0]
    # At lod 0 the one output is the full-size ToRGB of the reference.
    v = gs_vars(path)
    z = np.random.RandomState(2).randn(2, 8).astype(np.float32)
    ws = Gs.latent_codes(z, truncation_psi=0.7, truncation_cutoff=8)
    (img,) = Gs.synthesize(ws, noise_mode="const")
    ref = ref_g_style(v, z.astype(np.float64), STYLE_KW, psi=0.7)
    np.testing.assert_allclose(np.asarray(img), nhwc(ref[-1]), atol=2e-4)
    # D: one fromRGB per resolution, the TF1 lod dropped (G keeps it).
    d_tf1 = tf1_pickle.read(path)[1].flat_variables()
    assert len(data["D"]) == len(d_tf1) - 1
    assert float(data["Gs"]["lod"]) == 0.0


@pytest.mark.parametrize("layout", ["out,in", "in,out"])
def test_progan_g_equals_numpy_reference(tmp_path, layout):
    name = "karras2018iclr-celebahq.pkl"
    path = write_progan_pickle(tmp_path / name, PROGAN_KW, layout)
    lines = []
    data = convert_tf1.convert(path, log=lines.append)
    Gs, cfg = _build(data, "Gs")
    assert (cfg.name, cfg.architecture, cfg.progressive) == (
        "progan-celebahq",
        "progan",
        True,
    )
    assert f"([k, k, {layout}]) flipped" in lines[-1]
    v = gs_vars(path)
    z = np.random.RandomState(3).randn(2, 16).astype(np.float32)
    (img,) = Gs(z)
    ref = ref_progan_g(v, z.astype(np.float64), RES, layout)
    np.testing.assert_allclose(np.asarray(img), nhwc(ref), atol=2e-4)
    # ProGAN's code and NVlabs' port store the same network alike here.
    if layout == "in,out":
        other = write_progan_pickle(tmp_path / "own.pkl", PROGAN_KW)
        theirs = convert_tf1.convert(other, log=quiet)["Gs"]
        for key, value in data["Gs"].items():
            if not key.endswith("seed_generator_state"):
                np.testing.assert_array_equal(value, theirs[key])


def _evil_pickle(path):
    """A TF1-shaped pickle whose static_kwargs would run os.system."""
    marker = str(path) + ".ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with _tf1_classes() as classes:
        kw = {**STYLE_KW, "hook": Evil()}
        net = classes["dnnlib.tflib.network"](
            _state("Gs", "training.networks_stylegan.G_style", kw, {})
        )
        data = pickle.dumps((net, net, net), protocol=4)
    with open(path, "wb") as f:
        f.write(data)
    return marker


def test_hostile_tf1_pickle_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pkl"
    marker = _evil_pickle(path)
    assert tf1_pickle.is_tf1_pickle(path)
    with pytest.raises(UserError, match=r"refusing to load '(posix|os)\.sys"):
        tf1_pickle.read(path)
    # The same through generate.py: exit 2, one line, nothing ran.
    with pytest.raises(SystemExit) as e:
        generate.run_cli(generate.main, ["--network", str(path)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "refused" in err
    assert not os.path.exists(marker)


def test_unknown_variable_is_one_line(tmp_path):
    extra = {
        "8x8/Extra/weight": np.zeros((3, 3, 8, 8), np.float32),
        "4x4/Const/const": np.zeros((1, 5, 4, 4), np.float32),  # not 16
    }
    path = write_stylegan_pickle(tmp_path / "odd.pkl", STYLE_KW, extra=extra)
    with pytest.raises(UserError) as e:
        convert_tf1.convert(path, log=quiet)
    message = str(e.value)
    assert "\n" not in message
    assert "unknown Gs variable 'G_synthesis/8x8/Extra/weight'" in message
    assert "Gs 'synthesis/b4/const' has shape (1, 4, 4, 5)" in message


def test_unsupported_setting_is_named(tmp_path):
    path = write_stylegan_pickle(
        tmp_path / "cond.pkl", {**STYLE_KW, "label_size": 10}
    )
    with pytest.raises(UserError, match="label_size=10 is not supported"):
        convert_tf1.convert(path, log=quiet)


def test_cli_writes_a_snapshot_and_generate_takes_tf1(
    msg_pkl, msg_converted, tmp_path, capsys
):
    out = tmp_path / "converted.pkl"
    assert convert_cli.run_cli(convert_cli.main, [msg_pkl, str(out)]) == 0
    assert "Wrote" in capsys.readouterr().out
    data = snapshot.load(out)
    assert data["converted_from"].startswith("msg-flowers.pkl")
    for key, value in msg_converted[0]["Gs"].items():
        if not key.endswith("seed_generator_state"):
            np.testing.assert_array_equal(data["Gs"][key], value)
    # generate.py takes the TF1 file directly and says what it inferred.
    outdir = tmp_path / "images"
    argv = ["--network", msg_pkl, "--seeds", "0-1", "--outdir", str(outdir)]
    assert generate.run_cli(generate.main, argv) == 0
    assert "config: msg-stylegan-flowers" in capsys.readouterr().out
    assert sorted(os.listdir(outdir)) == ["seed0000.png", "seed0001.png"]
    G, cfg = inference.load_network(str(out))
    assert cfg.name == "msg-stylegan-flowers"

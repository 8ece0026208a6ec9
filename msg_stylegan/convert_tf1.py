"""Published TF1 networks (MSG-StyleGAN, StyleGAN, ProGAN) mapped to ours.

The networks that msg-stylegan-tf, NVlabs' StyleGAN and ProGAN published are
pickles of `dnnlib.tflib.network.Network` (ProGAN: `tfutil.Network`), read
without running anything by `msg_stylegan.tf1_pickle`. Here each network's
family and settings give the nearest named config, and its TF1 variable
names are mapped onto this project's variable paths
(`G_synthesis/4x4/Const/const` -> `synthesis/b4/const`), converting layouts
where the conventions differ:

- NCHW tensors (the 4x4 constant, noise buffers) become NHWC, and dense
  layers that meet a 4x4 feature map (D's `4x4/Dense0`, ProGAN's
  `4x4/Dense`) have their rows or columns reordered from C,H,W to H,W,C.
- A fused upscale conv (`Conv0_up` as `conv2d_transpose` of the 4x4 kernel
  summed from the 3x3 one; StyleGAN at 128 and up, ProGAN everywhere) equals
  nearest upsampling followed by the 3x3 conv with the kernel flipped in
  both spatial axes, so those kernels are flipped. ProGAN's own code also
  stores them as [k, k, out, in]. Fused downscale convs need no change.
- Weights stay as stored: TF1's `use_wscale` keeps N(0, 1/lrmul) weights
  and scales by `gain / sqrt(fan_in) * lrmul` at run time, biases by
  `lrmul`, exactly as `EqualizedDense`/`EqualizedConv2D` do.

What does not carry over: TF1 groups minibatch-stddev samples strided, this
project contiguous (same result when the batch is one group); ProGAN's
fused `Conv1_down` pools before its leaky ReLU. Both touch D only.
"""

import math
import os
import re

import numpy as np

from dnnlib.util import UserError
from msg_stylegan import tf1_pickle

# ---------------------------------------------------------------------------
# What the networks are: family, TF1 settings, the nearest config.

FAMILIES = {
    "msg": "MSG-StyleGAN (msg-stylegan-tf: G_style, multi-scale D_basic)",
    "stylegan": "StyleGAN (NVlabs: G_style, progressive D_basic)",
    "progan": "ProGAN (G_paper, D_paper)",
}
_CONFIG_FAMILY = {"msg": "msg-stylegan", "stylegan": "stylegan"}

# The TF1 functions' defaults, for kwargs a pickle does not store.
_STYLEGAN_DEFAULTS = dict(
    num_channels=3,
    fmap_base=8192,
    fmap_decay=1.0,
    fmap_max=512,
    latent_size=512,
    dlatent_size=512,
    mapping_layers=8,
    mapping_fmaps=512,
    mapping_lrmul=0.01,
    label_size=0,
    truncation_cutoff=8,
    dlatent_avg_beta=0.995,
    fused_scale="auto",
    structure="auto",
    mbstd_group_size=4,
    mbstd_num_features=1,
)
_PROGAN_DEFAULTS = dict(
    num_channels=1,
    fmap_base=8192,
    fmap_decay=1.0,
    fmap_max=512,
    label_size=0,
    fused_scale=True,
    mbstd_group_size=4,
)
# Settings this project's networks have fixed: any other value is refused.
_STYLEGAN_FIXED = dict(
    fmap_decay=1.0,
    label_size=0,
    mapping_nonlinearity="lrelu",
    nonlinearity="lrelu",
    use_wscale=True,
    normalize_latents=True,
    use_styles=True,
    const_input_layer=True,
    use_noise=True,
    use_pixel_norm=False,
    use_instance_norm=True,
    blur_filter=[1, 2, 1],
)
_PROGAN_FIXED = dict(
    fmap_decay=1.0,
    label_size=0,
    normalize_latents=True,
    use_wscale=True,
    use_pixelnorm=True,
    pixelnorm_epsilon=1e-8,
    use_leakyrelu=True,
)


def detect_family(net):
    """'msg', 'stylegan' or 'progan' from a generator's variable names."""
    names = net.flat_variables()
    if "G_synthesis/4x4/Const/const" in names:
        return "stylegan" if "G_synthesis/lod" in names else "msg"
    if "4x4/Dense/weight" in names:
        return "progan"
    if any(n.startswith("G_synthesis/") for n in names):
        raise UserError(
            f"TF1 network '{net.name}': a StyleGAN synthesis network without "
            "a learned 4x4 constant is not supported"
        )
    raise UserError(
        f"TF1 network '{net.name}' ({net.build_func_name or 'unknown'}) is "
        "not a generator of MSG-StyleGAN, StyleGAN or ProGAN"
    )


def tf1_settings(family, net, d_net=None):
    """The TF1 kwargs that shape the networks, defaults filled in.

    Refuses settings this project's networks do not have, naming them.
    """
    kwargs = net.all_static_kwargs()
    defaults, fixed = (
        (_PROGAN_DEFAULTS, _PROGAN_FIXED)
        if family == "progan"
        else (_STYLEGAN_DEFAULTS, _STYLEGAN_FIXED)
    )
    settings = {**defaults, **kwargs}
    if d_net is not None:
        d_kwargs = {**defaults, **d_net.all_static_kwargs()}
        for key in ("resolution", "num_channels", "fmap_base", "fmap_max"):
            if key in d_kwargs and d_kwargs[key] != settings.get(key):
                raise UserError(
                    f"TF1 G and D disagree on {key}: {settings.get(key)!r} "
                    f"vs {d_kwargs[key]!r}"
                )
        for key in ("mbstd_group_size", "mbstd_num_features"):
            settings[key] = d_kwargs.get(key, defaults.get(key, 1))
    for key, value in fixed.items():
        have = settings.get(key, value)
        if have != value and not (
            isinstance(value, list) and list(have or []) == value
        ):
            raise UserError(
                f"TF1 network '{net.name}': {key}={have!r} is not supported "
                f"(this project's networks have {key}={value!r})"
            )
    if "resolution" not in settings:
        sizes = [
            int(m.group(1))
            for n in net.flat_variables()
            for m in [re.search(r"(\d+)x\1/", n)]
            if m
        ]
        settings["resolution"] = max(sizes or [0])
    if family == "progan" and settings.get("latent_size") is None:
        settings["latent_size"] = min(
            settings["fmap_base"], settings["fmap_max"]
        )
    if family != "progan":
        if settings["mapping_fmaps"] != settings["dlatent_size"]:
            raise UserError(
                "TF1 mapping_fmaps must equal dlatent_size here, got "
                f"{settings['mapping_fmaps']} and {settings['dlatent_size']}"
            )
        settings["fused_upscale_from"] = _fused_from(settings["fused_scale"])
    else:
        fused = "networks_progan" not in net.build_func_name
        settings["upscale_layout"] = "out,in" if fused else "in,out"
    return settings


def _fused_from(fused_scale):
    """The first output resolution whose Conv0_up is fused (StyleGAN)."""
    if fused_scale == "auto":
        return 128  # fused when the upsampled output is 128 or more
    return 8 if fused_scale else math.inf


_DATASET_HINTS = (
    ("ffhq", "ffhq"),
    ("celebahq", "celebahq"),
    ("celeba-hq", "celebahq"),
    ("celeba_hq", "celebahq"),
    ("church", "lsun-churches"),
    ("flower", "flowers"),
    ("indian", "indian-celebs"),
    ("cifar", "cifar10"),
)


def infer_config(family, settings, path="", config_name=None):
    """(cfg, lines): the nearest named config, with what differs replaced.

    The dataset comes from `config_name`, else from the file name, else is
    the first config of the family at that resolution (it only decides the
    training settings and the default --data, never the network).
    """
    import config as config_lib

    res = int(settings["resolution"])
    prefix = _CONFIG_FAMILY.get(family, family)
    if family == "stylegan" and settings.get("structure") == "fixed":
        prefix = "stylegan-noprog"
    names = [
        n
        for n in config_lib.config_names()
        if n.startswith(prefix + "-")
        and n[len(prefix) + 1 :] in _dataset_names(config_lib)
    ]
    how = "named by --config"
    if config_name is None:
        base = os.path.basename(os.fspath(path)).lower()
        hinted = [d for hint, d in _DATASET_HINTS if hint in base]
        config_name = next(
            (f"{prefix}-{d}" for d in hinted if f"{prefix}-{d}" in names),
            None,
        )
        how = "dataset from the file name"
        if config_name is None:
            by_res = sorted(
                names,
                key=lambda n: abs(
                    math.log2(config_lib.get_config(n).img_resolution)
                    - math.log2(max(res, 1))
                ),
            )
            config_name = by_res[0]
            how = "the first at the nearest resolution; choose with --config"
    base_cfg = config_lib.get_config(config_name)
    want_arch = {"msg": "msg", "stylegan": "stylegan", "progan": "progan"}
    if base_cfg.architecture != want_arch[family]:
        raise UserError(
            f"--config={config_name} is a '{base_cfg.architecture}' config; "
            f"this network is {FAMILIES[family]}: use one of "
            + ", ".join(names)
        )
    changes = dict(
        img_resolution=res,
        img_channels=int(settings["num_channels"]),
        channel_base=2 * int(settings["fmap_base"]),
        channel_max=int(settings["fmap_max"]),
        z_dim=int(settings["latent_size"]),
        mbstd_group_size=int(settings["mbstd_group_size"]),
        mbstd_num_features=int(settings.get("mbstd_num_features", 1)),
    )
    if family == "progan":
        changes.update(progressive=True, pixel_norm=True, equalized_lr=True)
    else:
        changes.update(
            w_dim=int(settings["dlatent_size"]),
            mapping_layers=int(settings["mapping_layers"]),
            mapping_lr_multiplier=float(settings["mapping_lrmul"]),
            truncation_cutoff=int(settings["truncation_cutoff"] or 0),
            w_avg_beta=float(settings["dlatent_avg_beta"]),
            progressive=prefix == "stylegan",
        )
        if family == "msg":
            changes["combine"] = "cat_lin"
    try:
        cfg = config_lib.override(base_cfg, **changes)
    except UserError as e:
        raise UserError(f"the inferred config is not valid: {e}")
    differs = [
        f"{k}={v}" for k, v in changes.items() if getattr(base_cfg, k) != v
    ]
    lines = [
        f"inferred: {FAMILIES[family]}, {res}x{res}, "
        f"{changes['img_channels']} channels, fmap_base "
        f"{settings['fmap_base']} (channel_base {changes['channel_base']}), "
        f"fmap_max {changes['channel_max']}, z_dim {changes['z_dim']}"
        + (
            ""
            if family == "progan"
            else f", w_dim {changes['w_dim']}, structure "
            f"{settings.get('structure')}"
        ),
        f"config: {config_name} ({how})"
        + (f", with {', '.join(differs)}" if differs else ""),
    ]
    return cfg, lines


def _dataset_names(config_lib):
    return {
        n.split("msg-stylegan-", 1)[1]
        for n in config_lib.config_names()
        if n.startswith("msg-stylegan-") and not n.endswith("-small")
    }


# ---------------------------------------------------------------------------
# Variable names: TF1 name -> (this project's key, layout conversion).


def _same(x):
    return x


def _nchw_to_nhwc(x):
    return np.transpose(x, (0, 2, 3, 1))


def _flip(x):
    return np.ascontiguousarray(x[::-1, ::-1])


def _flip_out_in(x):
    return _flip(np.transpose(x, (0, 1, 3, 2)))


def _rows_chw_to_hwc(x):
    """A dense kernel [C*4*4, out] fed a flattened NCHW map -> NHWC order."""
    c = x.shape[0] // 16
    return x.reshape(c, 4, 4, -1).transpose(1, 2, 0, 3).reshape(x.shape)


def _cols_chw_to_hwc(x):
    """A dense kernel [in, C*4*4] reshaped to NCHW -> NHWC order."""
    c = x.shape[1] // 16
    return x.reshape(-1, c, 4, 4).transpose(0, 2, 3, 1).reshape(x.shape)


def _kb(kind):
    return {"weight": "kernel", "bias": "bias"}[kind]


DROP = "<drop>"  # a TF1 variable with no counterpart that is not needed


def stylegan_g_key(name, settings):
    """Map a G/Gs variable of msg-stylegan-tf or NVlabs' StyleGAN."""
    res = int(settings["resolution"])
    if name == "dlatent_avg":
        return "mapping/w_avg", _same
    if name == "G_synthesis/lod":
        progressive = settings.get("structure") != "fixed"
        return ("lod", _same) if progressive else (DROP, None)
    m = re.fullmatch(r"G_mapping/Dense(\d+)/(weight|bias)", name)
    if m:
        return f"mapping/fc{m.group(1)}/{_kb(m.group(2))}", _same
    m = re.fullmatch(r"G_synthesis/noise(\d+)", name)
    if m:
        i = int(m.group(1))
        r = 2 ** (i // 2 + 2)
        return f"synthesis/b{r}/conv{i % 2}/noise/const", _nchw_to_nhwc
    if name == "G_synthesis/4x4/Const/const":
        return "synthesis/b4/const", _nchw_to_nhwc
    m = re.fullmatch(r"G_synthesis/ToRGB_lod(\d+)/(weight|bias)", name)
    if m:
        r = res >> int(m.group(1))
        return f"synthesis/b{r}/torgb/{_kb(m.group(2))}", _same
    m = re.fullmatch(r"G_synthesis/(\d+)x\1/(\w+)/(.+)", name)
    if not m:
        return None, None
    r, scope, rest = int(m.group(1)), m.group(2), m.group(3)
    layers = {
        (True, "Const"): "conv0",
        (True, "Conv"): "conv1",
        (False, "Conv0_up"): "conv0",
        (False, "Conv1"): "conv1",
    }
    layer = layers.get((r == 4, scope))
    parts = {
        "bias": ("bias", _same),
        "Noise/weight": ("noise/strength", _same),
        "StyleMod/weight": ("style/affine/kernel", _same),
        "StyleMod/bias": ("style/affine/bias", _same),
    }
    if rest == "weight" and scope != "Const":
        fused = scope == "Conv0_up" and r >= settings["fused_upscale_from"]
        part = ("conv/kernel", _flip if fused else _same)
    else:
        part = parts.get(rest)
    if layer is None or part is None:
        return None, None
    return f"synthesis/b{r}/{layer}/{part[0]}", part[1]


def progan_g_key(name, settings):
    """Map a G/Gs variable of ProGAN (its own code or NVlabs' port)."""
    res = int(settings["resolution"])
    if name == "lod":
        return "lod", _same
    if name == "4x4/Dense/weight":
        return "b4/dense/kernel", _cols_chw_to_hwc
    if name == "4x4/Dense/bias":
        return "b4/bias", _same
    m = re.fullmatch(r"ToRGB_lod(\d+)/(weight|bias)", name)
    if m:
        return f"b{res >> int(m.group(1))}/torgb/{_kb(m.group(2))}", _same
    m = re.fullmatch(
        r"(\d+)x\1/(Conv|Conv0_up|Conv0|Conv1)/(weight|bias)", name
    )
    if not m:
        return None, None
    r, scope, kind = int(m.group(1)), m.group(2), m.group(3)
    if (r == 4) != (scope == "Conv"):
        return None, None
    layer = "conv1" if scope in ("Conv", "Conv1") else "conv0"
    convert = _same
    if scope == "Conv0_up" and kind == "weight":
        layout = settings["upscale_layout"]
        convert = _flip_out_in if layout == "out,in" else _flip
    return f"b{r}/{layer}/{_kb(kind)}", convert


def d_key(name, settings):
    """Map a D variable (msg-stylegan-tf, NVlabs StyleGAN or ProGAN)."""
    res = int(settings["resolution"])
    if name == "lod":
        return DROP, None  # the lod lives in G here; D is given it
    m = re.fullmatch(r"FromRGB_lod(\d+)/(weight|bias)", name)
    if m:
        return f"b{res >> int(m.group(1))}/fromrgb/{_kb(m.group(2))}", _same
    m = re.fullmatch(r"(\d+)x\1/(\w+)/(weight|bias)", name)
    if not m:
        return None, None
    r, scope, kind = int(m.group(1)), m.group(2), m.group(3)
    if scope == "combine" and kind == "weight":
        return f"b{r}/combine/conv/kernel", _same
    layers = {
        (False, "Conv0"): "conv0",
        (False, "Conv1_down"): "conv1",
        (False, "Conv1"): "conv1",
        (True, "Conv"): "conv",
        (True, "Dense0"): "fc",
        (True, "Dense1"): "out",
    }
    layer = layers.get((r == 4, scope))
    if layer is None:
        return None, None
    convert = _rows_chw_to_hwc if (layer, kind) == ("fc", "weight") else _same
    return f"b{r}/{layer}/{_kb(kind)}", convert


def map_variables(net, key_fn, settings):
    """({key: array}, problems) for one TF1 network.

    Problems are the names that have no counterpart here.
    """
    state, problems = {}, []
    for name, value in net.flat_variables().items():
        key, convert = key_fn(name, settings)
        if key is None:
            problems.append(f"unknown {net.name} variable '{name}'")
        elif key != DROP:
            state[key] = np.asarray(convert(np.asarray(value)), np.float32)
    return state, problems


def complete_state(model, mapped, zero_ok=(), what=None):
    """The full state of `model` from mapped TF1 arrays, or problems.

    Every variable must come from the TF1 network with its exact shape,
    except run-time RNG state (kept as built) and the keys in `zero_ok`
    (set to zeros). Returns (state, problems, zeroed keys).
    """
    from msg_stylegan import networks

    what = what or model.name
    expected = networks.get_state(model)
    state, problems, zeroed = {}, [], []
    for key, value in expected.items():
        if key in mapped:
            have = mapped[key]
            if have.shape != value.shape:
                problems.append(
                    f"{what} '{key}' has shape {have.shape} in the TF1 "
                    f"network, this network needs {value.shape}"
                )
            state[key] = have
        elif key.endswith("seed_generator_state"):
            state[key] = value
        elif key in zero_ok:
            state[key] = np.zeros_like(value)
            zeroed.append(key)
        else:
            problems.append(f"{what} '{key}' missing from the TF1 network")
    for key in mapped:
        if key not in expected:
            problems.append(f"{what} has no variable '{key}'")
    return state, problems, zeroed


# ---------------------------------------------------------------------------
# The whole conversion.


def convert(path, config_name=None, log=print):
    """A TF1 pickle -> a dict shaped as this project's snapshot.

    Keys: config (JSON), G, D, Gs ({variable key: array}), kimg/cur_nimg/
    step 0, and `converted_from`. `log` receives what was inferred.
    Anything that does not fit is one UserError listing the first problems.
    """
    from msg_stylegan import networks

    G_tf, D_tf, Gs_tf = tf1_pickle.read(path)
    family = detect_family(Gs_tf)
    for net in (G_tf,):
        if net is not None and detect_family(net) != family:
            raise UserError(f"TF1 pickle '{path}': G and Gs differ in kind")
    settings = tf1_settings(family, Gs_tf, D_tf)
    cfg, lines = infer_config(family, settings, path, config_name)
    G, D = networks.build_networks(cfg)
    g_key = progan_g_key if family == "progan" else stylegan_g_key
    zero_ok = ()
    if family == "stylegan" and settings.get("structure") == "fixed":
        # Fixed StyleGAN has one ToRGB; the unused lower heads stay zero.
        zero_ok = {
            f"synthesis/b{r}/torgb/{k}"
            for r in _resolutions(cfg.img_resolution)[:-1]
            for k in ("kernel", "bias")
        }
    states, problems, notes = {}, [], []
    sources = {"G": G_tf or Gs_tf, "Gs": Gs_tf}
    for key, tf_net in sources.items():
        mapped, unknown = map_variables(tf_net, g_key, settings)
        state, bad, zeroed = complete_state(G, mapped, zero_ok, key)
        states[key] = state
        problems += unknown + bad
        if zeroed and key == "Gs":
            notes.append(f"{len(zeroed) // 2} unused lower ToRGB heads zero")
    if D_tf is not None:
        mapped, unknown = map_variables(D_tf, d_key, settings)
        states["D"], bad, _ = complete_state(D, mapped)
        problems += unknown + bad
    else:
        states["D"] = networks.get_state(D)
        notes.append("no G or D in the file: G is Gs, D is untrained")
    if problems:
        more = f" (+{len(problems) - 4} more)" if len(problems) > 4 else ""
        raise UserError(
            f"TF1 pickle '{path}' does not fit {FAMILIES[family]} as "
            f"{cfg.name} at {cfg.img_resolution}: "
            + "; ".join(problems[:4])
            + more
        )
    if (
        family != "progan"
        and settings["fused_upscale_from"] <= cfg.img_resolution
    ):
        notes.append(
            "fused upscale kernels flipped from "
            f"{settings['fused_upscale_from']}x{settings['fused_upscale_from']}"
        )
    if family == "progan" and any(
        "/Conv0_up/" in n for n in Gs_tf.flat_variables()
    ):
        order = settings["upscale_layout"]
        notes.append(f"fused upscale kernels ([k, k, {order}]) flipped")
    for line in lines + [f"converted: {', '.join(notes)}"] * bool(notes):
        log(f"{os.path.basename(os.fspath(path))}: {line}")
    return {
        "kimg": 0.0,
        "cur_nimg": 0,
        "step": 0,
        "config": cfg.to_json(),
        "G": states["G"],
        "D": states["D"],
        "Gs": states["Gs"],
        "converted_from": f"{os.path.basename(os.fspath(path))} "
        f"({FAMILIES[family]})",
    }


def _resolutions(res):
    return [2**k for k in range(2, int(math.log2(res)) + 1)]

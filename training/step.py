"""What one training step means, written once for both backends.

A step is: draw this step's latents, noise and style-mixing crossovers from
`(seed, step)`; the D step (D's loss on reals and fakes, plus R1 or WGAN-GP
every `r1_interval` steps); the G step against the updated D; then the
w_avg update and the Gs moving average. Losses are sums over samples
divided by the GLOBAL batch, so a replica's share summed over replicas is
the global loss. A non-finite update is skipped, never applied, and
counted in the statistics.

Everything here is `keras.ops` and plain Python. The backend modules
(`training/backends/{tensorflow,jax}.py`) supply only the mechanics: how
to call the networks with given variables, how to differentiate, apply the
optimizers, distribute and compile; they pass those in as small objects
(a D caller with `logits`, `input_grads` and `real_logits_and_grads`).
The draws are the same numbers on both backends (`training/rng.py`).
"""

from dataclasses import dataclass
from types import SimpleNamespace

from keras import ops

from msg_stylegan import ops as msg_ops
from msg_stylegan import progressive as prog
from msg_stylegan.networks import build_generator, build_networks
from training import loss as loss_lib
from training import precision, rng
from training.ema import w_avg_update
from training.stats import R1_SCALES

# Seed purposes: each random draw of a step has its own stream, so adding
# a draw never shifts another.
Z_D, NOISE_D, EPS_GP, Z_G, NOISE_G, MIX_D, MIX_G = range(7)


@dataclass
class Compiled:
    """What compilation did for one step function; returned beside it by
    `make_train_step` so the loop can report it (`Timing/step_traces`).

    Attributes:
        traces: times the step's computation was traced; a fade-in (alpha
            is a runtime value) must not add any.
        moved: variables the last call had to move to the devices (JAX;
            values assigned between steps), 0 on TensorFlow.
    """

    traces: int = 0
    moved: int = 0


# ---------------------------------------------------------------------------
# The state a step reads and writes


def new_state(cfg):
    """G, D, Gs (a copy of G) and both optimizers, built.

    A backend calls this inside its placement (a strategy's scope, a host
    device) after seeding, so the same seed builds the same weights on
    either backend, with the same variable paths.
    """
    policy = precision.dtype_policy(cfg)
    G, D = build_networks(cfg, dtype=policy)
    Gs = build_generator(cfg, name="Gs", dtype=policy)
    copy_weights(G, Gs)
    G_opt = precision.make_adam(cfg, "G_opt")
    D_opt = precision.make_adam(cfg, "D_opt")
    G_opt.build(G.trainable_variables)
    D_opt.build(D.trainable_variables)
    return SimpleNamespace(G=G, D=D, Gs=Gs, G_opt=G_opt, D_opt=D_opt)


def copy_weights(src, dst):
    for s, d in zip(src.variables, dst.variables):
        d.assign(s)


# ---------------------------------------------------------------------------
# The schedule inside a step: when to regularise, with which weights


def regularizes(cfg, step_index):
    """Lazy regularisation: the penalty is part of every `r1_interval`th
    D step (step 0 included)."""
    return step_index % cfg.r1_interval == 0


def r1_weight(cfg):
    """R1's per-sample weight: gamma / 2, times the interval, so that the
    lazily applied penalty has the same strength per image as every step."""
    return cfg.r1_gamma * 0.5 * cfg.r1_interval


def gp_weights(cfg):
    """WGAN-GP's (lambda, epsilon): the gradient penalty's and the drift
    term's weights (applied at the regularised steps as they are)."""
    return cfg.wgan_lambda, cfg.wgan_epsilon


# ---------------------------------------------------------------------------
# Draws from (seed, step)


class StepRandom:
    """The random numbers of step `step` of a run seeded `seed`.

    Every draw is a function of (seed, purpose, step) and, for a list of
    draws, an index: never of what was drawn before, so a resumed run draws
    what the straight run drew, and a step on one device or many draws the
    same global batch. The numbers come from `training/rng.py`, written in
    `keras.ops`, so both backends draw the same ones for a seed.
    """

    def __init__(self, seed, step):
        self.key = rng.key(seed, step)

    def normal(self, purpose, shape, index=0):
        return rng.normal(self.key, shape, rng.stream(purpose, index))

    def uniform(self, purpose, shape, index=0):
        return rng.uniform(self.key, shape, rng.stream(purpose, index))


def noise_resolutions(G, cfg, resolution=None):
    """The resolutions of the noise inputs that run up to `resolution`."""
    top = resolution or cfg.img_resolution
    return [r for r in G.noise_resolutions if r <= top]


def draw_latents(cfg, rng, noise_res, global_batch):
    """The global batch's z and noise for the D and G steps, and the
    WGAN-GP epsilons.

    Returns the dict `step(..., latents=...)` accepts (tests inject it to
    feed both backends the same numbers): z_d, noise_d, z_g, noise_g
    ([B, z_dim] and lists of [B, res, res, 1]) and eps ([B]).
    """
    out = {}
    for part, z_purpose, noise_purpose in (
        ("d", Z_D, NOISE_D),
        ("g", Z_G, NOISE_G),
    ):
        out[f"z_{part}"] = rng.normal(z_purpose, (global_batch, cfg.z_dim))
        out[f"noise_{part}"] = [
            rng.normal(noise_purpose, (global_batch, res, res, 1), index=i)
            for i, res in enumerate(noise_res)
        ]
    out["eps"] = rng.uniform(EPS_GP, (global_batch,))
    return out


def draw_mixing(cfg, rng, purpose, global_batch, num_ws):
    """Style mixing's second z [B, z_dim] and ONE crossover for the global
    batch (as NVlabs), or None when mixing is off.

    num_ws: the styled layers in use at the step's resolution.
    """
    if cfg.style_mixing_prob <= 0:
        return None
    z2 = rng.normal(purpose, (global_batch, cfg.z_dim))
    coin_and_uniform = rng.uniform(purpose, (2,), index=1)
    cutoff = prog.mixing_cutoff(
        coin_and_uniform[0],
        coin_and_uniform[1],
        cfg.style_mixing_prob,
        num_ws,
    )
    return z2, cutoff


def reals_at_lod(reals_u8, cfg, resolution, alpha):
    """uint8 reals in [-1, 1], faded to the current lod when growing."""
    reals = ops.cast(reals_u8, "float32") / 127.5 - 1.0
    if cfg.progressive:
        reals = prog.process_reals(reals, resolution, alpha)
    return reals


# ---------------------------------------------------------------------------
# The objectives


def d_fakes(imgs, num_inputs):
    """The scales of G's images that D sees, with no gradient path to G."""
    return [ops.stop_gradient(x) for x in imgs[-num_inputs:]]


def _batch_sum(x, global_batch):
    return ops.sum(ops.cast(x, "float32")) / global_batch


def d_objective(loss, cfg, global_batch, d, reals, fakes, eps, with_reg):
    """D's loss for this replica's samples, and its statistics.

    d: the backend's D caller, with D's weights and mode fixed:
        `d.logits(imgs)`; `d.input_grads(imgs)`, the gradients of
        sum(D(imgs)) with respect to each image; `d.real_logits_and_grads(
        reals)`, the real pyramid built from the full-resolution `reals`,
        D's logits on it and the pyramid's gradients (the full-resolution
        one the total derivative through every coarser scale, SPEC
        section 3). Both gradients stay differentiable (R1's second order)
        and come unscaled. D is called on reals, then for the penalty, then
        on fakes: D's state (spectral norm's power iteration) follows that
        order on both backends.
    reals: [n, H, W, C] in [-1, 1]; fakes: `d_fakes`; eps: [n] WGAN-GP
    epsilons. Returns (the loss summed over the samples / global batch,
    the statistics summed the same way).
    """
    n = reals.shape[0]
    penalty = ops.zeros([n])
    r1_stats = {}
    if with_reg and loss.penalty == "r1":
        real_imgs, logits_real, grads = d.real_logits_and_grads(reals)
        norms = loss_lib.squared_norms(grads)
        penalty = loss_lib.r1_penalty(grads, norms) * r1_weight(cfg)
        # Which scales D reads: the mean squared gradient norm per input.
        for g, v in zip(grads, norms):
            r = g.shape[1]
            r1_stats[f"{R1_SCALES}{r}x{r}"] = _batch_sum(v, global_batch)
    else:
        real_imgs = msg_ops.image_pyramid(reals, len(fakes))
        logits_real = d.logits(real_imgs)
    if with_reg and loss.penalty == "gp":
        mix = loss_lib.interpolate(real_imgs, fakes, eps)
        gp = loss_lib.gradient_penalty(d.input_grads(mix))
        gp_lambda, drift = gp_weights(cfg)
        penalty = gp_lambda * gp + drift * loss_lib.drift_penalty(logits_real)
    logits_fake = d.logits(fakes)
    per_sample = loss.d_loss(logits_real, logits_fake)
    total = ops.sum(per_sample + penalty) / global_batch
    stats = {
        "Loss/D/loss": total,
        "Loss/D/reg": ops.sum(penalty) / global_batch,
        "Loss/scores/real": _batch_sum(logits_real, global_batch),
        "Loss/scores/fake": _batch_sum(logits_fake, global_batch),
        **r1_stats,
    }
    return total, stats


def g_objective(
    loss, global_batch, fakes, ws, d_logits, reals, num_inputs, track_w
):
    """G's loss for this replica's samples, its statistics and the
    replica's share of the batch mean of w (for the w_avg update).

    fakes: G's images, coarse to fine, with the gradient path to G; ws:
    [n, num_ws, w_dim]; d_logits(imgs): D on a list of `num_inputs`
    scales, its state not updated; reals: [n, H, W, C] in [-1, 1], read
    only by the losses that compare with the reals (relativistic), with no
    gradient path. track_w: G has a w_avg.
    """
    logits_fake = d_logits(fakes[-num_inputs:])
    logits_real = None
    if loss.needs_real_in_g:
        real_imgs = msg_ops.image_pyramid(reals, num_inputs)
        logits_real = ops.stop_gradient(d_logits(real_imgs))
    total = ops.sum(loss.g_loss(logits_fake, logits_real)) / global_batch
    w_mean = ops.zeros([])
    if track_w:
        w_mean = ops.sum(ops.cast(ws[:, 0], "float32"), axis=0) / global_batch
    return total, {"Loss/G/loss": total}, w_mean


# ---------------------------------------------------------------------------
# The skip rule and the updates that follow G


def finite(tensors):
    """True when every element of every tensor is finite: the condition
    for applying an update (a non-finite one is skipped, never patched)."""
    checks = [ops.all(ops.isfinite(t)) for t in tensors]
    return ops.all(ops.stack(checks))


def skip_stats(d_applied, g_applied):
    """`Progress/skipped_D` and `_G`: 1.0 for an update that was skipped.

    The loop counts consecutive skips towards divergence."""
    return {
        "Progress/skipped_D": 1.0 - ops.cast(d_applied, "float32"),
        "Progress/skipped_G": 1.0 - ops.cast(g_applied, "float32"),
    }


def updated_w_avg(w_avg, w_mean, beta, g_applied):
    """w_avg moves towards the batch mean of w only after an applied G
    update (a skipped step leaves it, as it leaves G)."""
    return ops.where(g_applied, w_avg_update(w_avg, w_mean, beta), w_avg)


def updated_gs(g_values, gs_values, beta):
    """Gs's weights after the step: lerp(G, Gs, beta), every step."""
    return [g + (gs - g) * beta for g, gs in zip(g_values, gs_values)]


class FollowG:
    """What follows G's update, as new values: nothing is assigned, so
    the TensorFlow step assigns what comes back and the JAX step returns it
    as its new state.

    After the G update, w_avg moves (`updated_w_avg`); Gs copies G's
    floating non-trainable state (w_avg, lod; not integer counters); Gs's
    weights move towards G's (`updated_gs`, decay `gs_beta`).
    """

    def __init__(self, G, gs_beta):
        variables = G.non_trainable_variables
        paths = [v.path for v in variables]
        self.w_at = None if G.w_avg is None else paths.index(G.w_avg.path)
        # ProGAN generators have no w_avg, nor its decay.
        self.w_avg_beta = getattr(G, "w_avg_beta", None)
        self.copied = float_state_indices(variables)
        self.gs_beta = gs_beta

    def __call__(self, g_tv, g_ntv, gs_tv, gs_ntv, w_mean, g_applied):
        """Returns (g_ntv, gs_ntv, gs_tv) as new lists; an entry that did
        not change is the object passed in."""
        g_ntv, gs_ntv = list(g_ntv), list(gs_ntv)
        if self.w_at is not None:
            g_ntv[self.w_at] = updated_w_avg(
                g_ntv[self.w_at], w_mean, self.w_avg_beta, g_applied
            )
        for i in self.copied:
            gs_ntv[i] = g_ntv[i]
        return g_ntv, gs_ntv, updated_gs(g_tv, gs_tv, self.gs_beta)


def float_state_indices(variables):
    """Which of G's non-trainable variables Gs copies after each step: the
    floating ones (w_avg, lod), not integer counters."""
    return [i for i, v in enumerate(variables) if "float" in str(v.dtype)]

"""GAN losses on image lists (SPEC section 3), as pure functions of logits.

Non-saturating logistic with multi-scale R1 (Mescheder et al. 2018, as in
StyleGAN and MSG-StyleGAN), WGAN-GP (Gulrajani et al. 2017) with one shared
interpolation per sample across scales, hinge, relativistic average hinge
(Jolicoeur-Martineau 2018; BMSG-GAN's default) and least squares (Mao et al.
2017). Every function returns PER-SAMPLE values [N]; the backend sums them
and divides by the GLOBAL batch. Input gradients come from the backend.
"""

from dataclasses import dataclass

from keras import ops

import config

LOSSES = {}


@dataclass(frozen=True)
class Loss:
    """A registered loss.

    Attributes:
        name: the user-facing name.
        d_loss: (logits_real [N,1], logits_fake [N,1]) -> [N].
        g_loss: (logits_fake, logits_real) -> [N] (logits_real is used by
            relativistic losses only, and has no gradient path to G).
        penalty: "r1" (gradient penalty on reals), "gp" (WGAN-GP on
            interpolates) or None.
    """

    name: str
    d_loss: object
    g_loss: object
    penalty: object = None
    needs_real_in_g: bool = False


def register_loss(name, penalty=None, needs_real_in_g=False):
    # The names are listed once, in config.LOSSES, where the CLIs read them.
    if name not in config.LOSSES:
        raise ValueError(f"loss '{name}' is not listed in config.LOSSES")

    def wrap(fns):
        d_loss, g_loss = fns()
        LOSSES[name] = Loss(name, d_loss, g_loss, penalty, needs_real_in_g)
        return fns

    return wrap


def loss_names():
    return sorted(LOSSES)


def get_loss(name):
    if name not in LOSSES:
        raise ValueError(
            f"unknown loss '{name}'; valid losses: " + ", ".join(loss_names())
        )
    return LOSSES[name]


def _flat(logits):
    return ops.reshape(ops.cast(logits, "float32"), (-1,))


@register_loss("logistic", penalty="r1")
def _logistic():
    def d_loss(real, fake):
        return ops.softplus(_flat(fake)) + ops.softplus(-_flat(real))

    def g_loss(fake, real=None):
        return ops.softplus(-_flat(fake))

    return d_loss, g_loss


@register_loss("wgan-gp", penalty="gp")
def _wgan():
    def d_loss(real, fake):
        return _flat(fake) - _flat(real)

    def g_loss(fake, real=None):
        return -_flat(fake)

    return d_loss, g_loss


@register_loss("hinge")
def _hinge():
    def d_loss(real, fake):
        return ops.relu(1.0 - _flat(real)) + ops.relu(1.0 + _flat(fake))

    def g_loss(fake, real=None):
        return -_flat(fake)

    return d_loss, g_loss


@register_loss("relativistic-hinge", needs_real_in_g=True)
def _relativistic_hinge():
    # Means are over the per-replica batch (the relativistic average).
    def d_loss(real, fake):
        r, f = _flat(real), _flat(fake)
        return ops.relu(1.0 - (r - ops.mean(f))) + ops.relu(
            1.0 + (f - ops.mean(r))
        )

    def g_loss(fake, real):
        r, f = _flat(real), _flat(fake)
        return ops.relu(1.0 + (r - ops.mean(f))) + ops.relu(
            1.0 - (f - ops.mean(r))
        )

    return d_loss, g_loss


@register_loss("lsgan")
def _lsgan():
    def d_loss(real, fake):
        return 0.5 * (ops.square(_flat(real) - 1.0) + ops.square(_flat(fake)))

    def g_loss(fake, real=None):
        return 0.5 * ops.square(_flat(fake) - 1.0)

    return d_loss, g_loss


def squared_norms(grads):
    """Per-sample squared L2 norms of each scale's image gradient: [[N]]."""
    return [
        ops.sum(ops.square(ops.cast(g, "float32")), axis=(1, 2, 3))
        for g in grads
    ]


def r1_penalty(real_grads, norms=None):
    """Multi-scale R1: per-sample squared norm, averaged over scales. [N].

    `real_grads` are the gradients of sum(D(reals)) with respect to every
    image of the real pyramid (the full-resolution one a total derivative);
    `norms`, their `squared_norms` if already computed.
    """
    if norms is None:
        norms = squared_norms(real_grads)
    return ops.mean(ops.stack(norms, axis=0), axis=0)


def interpolate(reals, fakes, epsilon):
    """WGAN-GP interpolates with ONE epsilon per sample shared by all scales.

    epsilon: [N] uniform in [0, 1].
    """
    e = ops.reshape(epsilon, (-1, 1, 1, 1))
    return [
        ops.cast(f, "float32") + e * (ops.cast(r, "float32") - f)
        for r, f in zip(reals, fakes)
    ]


def gradient_penalty(mix_grads, target=1.0):
    """WGAN-GP: (||grad|| - 1)^2 per sample, averaged over scales. [N]."""
    terms = [
        ops.square(
            ops.sqrt(
                ops.sum(ops.square(ops.cast(g, "float32")), axis=(1, 2, 3))
                + 1e-8
            )
            - target
        )
        for g in mix_grads
    ]
    return ops.mean(ops.stack(terms, axis=0), axis=0)


def drift_penalty(logits_real):
    """WGAN-GP's epsilon-drift term: logits_real^2 per sample. [N]."""
    return ops.square(_flat(logits_real))

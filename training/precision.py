"""Mixed precision: dtype policies, the optimizers and fp16 loss scaling.

bf16 has float32's range and needs nothing more. fp16 does not: small
gradients underflow to zero and large ones overflow. With fp16 each
optimizer is a `keras.optimizers.LossScaleOptimizer` around Adam, whose
variables hold the dynamic scale (as NVlabs' optimizer did for StyleGAN's
fp16 option): the losses, and the inner gradients of R1 and the gradient
penalty, are multiplied by it before differentiation and the gradients
divided by it; a step with a non-finite gradient is skipped and halves the
scale, and every `GROWTH_STEPS` finite steps double it. The scale lives in
the optimizer's variables, so snapshots carry it and resume is exact.
"""

import keras

from msg_stylegan.snapshot import LOSS_SCALE_SUFFIX

# The Keras policy of each of config.PRECISIONS.
POLICIES = {"off": None, "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
INITIAL_SCALE = 2.0**15
GROWTH_STEPS = 2000


def dtype_policy(cfg):
    """The Keras dtype policy of `cfg.mixed_precision` (None: float32)."""
    return POLICIES[cfg.mixed_precision]


def make_adam(cfg, name):
    """Adam with the config's settings; wrapped for loss scaling in fp16.

    The inner Adam keeps `name`, so its moments have the same variable
    paths at every precision.
    """
    adam = keras.optimizers.Adam(
        learning_rate=cfg.lr,
        beta_1=cfg.adam_beta1,
        beta_2=cfg.adam_beta2,
        epsilon=cfg.adam_epsilon,
        name=name,
    )
    if cfg.mixed_precision != "fp16":
        return adam
    return keras.optimizers.LossScaleOptimizer(
        adam,
        initial_scale=INITIAL_SCALE,
        dynamic_growth_steps=GROWTH_STEPS,
        name=f"{name}{LOSS_SCALE_SUFFIX}",
    )


def is_scaled(opt):
    return isinstance(opt, keras.optimizers.LossScaleOptimizer)


def inner(opt):
    """The Adam itself (the optimizer, unless it scales losses)."""
    return opt.inner_optimizer if is_scaled(opt) else opt

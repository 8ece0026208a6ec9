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
from keras import ops

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


class LossScale:
    """One optimizer's dynamic loss scale, as the steps and the loop see it.

    Without fp16 every method is the identity (`active` is False and the
    scale None), so a step is written once for every precision. The scale
    and its growth counter are variables of the LossScaleOptimizer; only
    this class knows where.
    """

    def __init__(self, opt):
        self.opt = opt
        self.active = is_scaled(opt)
        if self.active:
            paths = [v.path for v in opt.variables]
            self._index = paths.index(opt.dynamic_scale.path)

    def read(self, opt_values):
        """The scale among `opt_values` (the optimizer's variables, or
        their values in the same order, as a stateless step holds them);
        None without fp16."""
        if not self.active:
            return None
        return ops.convert_to_tensor(opt_values[self._index])

    def value(self):
        """The current scale as a float (None without fp16), for logs."""
        if not self.active:
            return None
        return float(ops.convert_to_numpy(self.opt.dynamic_scale))

    def growth_count(self):
        """Applied steps in a row since the scale last changed (None
        without fp16): at `GROWTH_STEPS` the scale doubles."""
        if not self.active:
            return None
        return int(ops.convert_to_numpy(self.opt.step_counter))

    def assign(self, scale, growth_count=None):
        """Set the scale (and the growth count), as a test or a tool that
        starts from a chosen scale does; an error without fp16."""
        if not self.active:
            raise ValueError("only an fp16 optimizer has a loss scale")
        self.opt.dynamic_scale.assign(float(scale))
        if growth_count is not None:
            self.opt.step_counter.assign(int(growth_count))

    def advance(self, applied):
        """The scale after a step, assigned to the optimizer's variables:
        halved on overflow (the step was skipped), doubled after
        `GROWTH_STEPS` applied steps in a row. For a step that applies the
        inner optimizer itself (TensorFlow's cross-replica update, where
        Keras' `apply` cannot run); a stateless step gets the same rule
        from `LossScaleOptimizer.stateless_apply`."""
        if not self.active:
            return
        scale, count = self.opt.dynamic_scale, self.opt.step_counter
        grow = ops.logical_and(
            applied, ops.equal(count, self.opt.dynamic_growth_steps - 1)
        )
        kept = ops.where(grow, scale * 2.0, scale)
        scale.assign(ops.where(applied, kept, scale * 0.5))
        zero = ops.zeros_like(count)
        counting = ops.logical_and(applied, ops.logical_not(grow))
        count.assign(ops.where(counting, count + 1, zero))


def scaled(total, scale):
    """A loss multiplied by the loss scale before differentiation."""
    return total if scale is None else total * scale


def unscaled(grads, scale):
    """Gradients of a scaled loss divided back (None entries kept)."""
    if scale is None:
        return grads
    return [None if g is None else g / ops.cast(scale, g.dtype) for g in grads]


def inner(opt):
    """The Adam itself (the optimizer, unless it scales losses)."""
    return opt.inner_optimizer if is_scaled(opt) else opt

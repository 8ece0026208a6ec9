"""The TensorFlow backend: tf.distribute strategies and the compiled step.

The per-replica gradient computations are XLA-compiled (`cfg.xla`);
gradients are summed across replicas and applied once, in cross-replica
context, only when they are finite everywhere (a non-finite update is
skipped and counted, never applied). Losses are sums over the replica's
samples divided by the GLOBAL batch.

Latents and noise are drawn for the whole global batch from stateless seeds
`(seed, step, purpose)` and each replica takes its slice, so a step gives the
same result on one device or many, and a resumed run continues exactly.
"""

import contextlib
import json
import os
import re
import signal
import threading
from types import SimpleNamespace

import keras
import numpy as np
import tensorflow as tf

from dnnlib import hardware
from dnnlib.util import UserError
from msg_stylegan import ops as msg_ops
from msg_stylegan import progressive as prog
from msg_stylegan.networks import build_generator, build_networks
from training import loss as loss_lib
from training import precision
from training.ema import gs_beta

NAME = "tensorflow"
LABEL = f"TensorFlow {tf.__version__}"

# Seed purposes: each random draw of a step has its own stream.
_Z_D, _NOISE_D, _EPS_GP, _Z_G, _NOISE_G, _MIX_D, _MIX_G = range(7)


_strategies = {}

# SLURM workers listen on this port plus the job id modulo 20000 (plus the
# task's index on its node), so two jobs sharing a node do not collide.
SLURM_PORT_BASE = 15000


def make_strategy(gpus=0, devices=None):
    """MultiWorkerMirroredStrategy in a multi-worker job, else Mirrored.

    A multi-worker job is TF_CONFIG, or else a SLURM step of several tasks
    (`cluster_resolver`). gpus: how many visible GPUs to use per worker
    (0 = all); with none, one CPU replica per worker. devices: explicit
    device names (tests use two logical CPUs).
    One strategy per device set and process: two strategies over the same
    devices can collide in TF's collective-op keys.
    """
    key = (
        gpus,
        tuple(devices or ()),
        os.environ.get("TF_CONFIG"),
        os.environ.get("SLURM_PROCID"),
    )
    if key not in _strategies:
        _strategies[key] = _new_strategy(gpus, devices)
    return _strategies[key]


def _new_strategy(gpus, devices):
    if devices:
        return tf.distribute.MirroredStrategy(devices=list(devices))
    # Physical devices only until the strategy exists: a multi-worker
    # strategy must configure TF's runtime before anything initialises it.
    found = list_gpus()
    hardware.check_gpu_count(gpus, found, LABEL)
    used = gpus or len(found)
    resolver = cluster_resolver(used)
    if resolver is not None:
        with _keeping_signal_handlers():
            return tf.distribute.MultiWorkerMirroredStrategy(
                cluster_resolver=resolver
            )
    if used:
        names = [d.name for d in tf.config.list_logical_devices("GPU")]
        return tf.distribute.MirroredStrategy(devices=names[:used])
    return tf.distribute.MirroredStrategy(devices=["/cpu:0"])


@contextlib.contextmanager
def _keeping_signal_handlers():
    """Put back Python's SIGINT/SIGTERM handlers after the block.

    Starting a multi-worker strategy installs TensorFlow's own SIGTERM
    handler (its preemption notices), which would swallow the signal that
    `dnnlib.interrupt` turns into a clean stop with a snapshot.
    """
    kept = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        if threading.current_thread() is threading.main_thread():
            for s, handler in kept.items():
                if handler is not None:
                    signal.signal(s, handler)


def cluster_resolver(gpus):
    """This worker's place in a multi-worker job, or None outside one.

    From TF_CONFIG when it is set, else from SLURM's variables in a step of
    several tasks (`srun`): one worker per task, ordered by node name.
    gpus: the GPUs each worker uses (its local replicas).
    """
    how = hardware.multi_worker()
    if how is None:
        return None
    if how == "tf_config":
        found = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    else:
        found = _slurm_resolver()
    spec = found.cluster_spec()
    return tf.distribute.cluster_resolver.SimpleClusterResolver(
        spec,
        task_type=found.task_type,
        task_id=found.task_id,
        num_accelerators={"GPU": gpus},
        rpc_layer=found.rpc_layer or "grpc",
    )


def _slurm_resolver():
    # SLURM binds GPUs to tasks itself (one task per node with all its GPUs,
    # or --gpus-per-task), so the resolver must not rewrite
    # CUDA_VISIBLE_DEVICES; its GPU counts only serve that rewrite (and
    # would run nvidia-smi), so they are set just to pass its checks, and
    # the GPUs a worker uses come from `cluster_resolver`'s argument.
    tasks = hardware.slurm_num_tasks()
    try:
        job = int(os.environ.get("SLURM_JOB_ID", "0"))
    except ValueError:
        job = 0
    try:
        return tf.distribute.cluster_resolver.SlurmClusterResolver(
            port_base=SLURM_PORT_BASE + job % 20000,
            gpus_per_node=tasks,
            gpus_per_task=1,
            auto_set_gpu=False,
        )
    except (RuntimeError, ValueError) as e:
        raise UserError(f"cannot read the SLURM job step: {e}") from None


def build_state(cfg, strategy):
    """G, D, Gs and both optimizers, built under the strategy's scope.

    Initial weights come from `cfg.seed`, so equal seeds start equal runs.
    """
    keras.utils.set_random_seed(cfg.seed)
    with strategy.scope():
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


def _seed(base_seed, step, purpose):
    seed = tf.stack([tf.cast(base_seed, tf.int64), tf.cast(purpose, tf.int64)])
    return tf.random.experimental.stateless_fold_in(
        seed, tf.cast(step, tf.int64)
    )


def _slice(x, replica, n):
    """Rows [replica * n, (replica + 1) * n) with a static batch size."""
    return tf.ensure_shape(
        x[replica * n : (replica + 1) * n], [n, *x.shape[1:]]
    )


def draw_latents(
    cfg, G, global_batch, step, replica, n, purposes, resolution=None
):
    """This replica's slice of the global batch's z and noise images.

    Noise is drawn for the layers that run up to `resolution`.
    """
    z_purpose, noise_purpose = purposes
    z = tf.random.stateless_normal(
        [global_batch, cfg.z_dim], seed=_seed(cfg.seed, step, z_purpose)
    )
    noise = []
    resolution = resolution or cfg.img_resolution
    used = [r for r in G.noise_resolutions if r <= resolution]
    for i, res in enumerate(used):
        seed = tf.random.experimental.stateless_fold_in(
            _seed(cfg.seed, step, noise_purpose), i
        )
        full = tf.random.stateless_normal([global_batch, res, res, 1], seed)
        noise.append(_slice(full, replica, n))
    return _slice(z, replica, n), noise


def draw_mixing(cfg, G, global_batch, step, replica, n, purpose, resolution):
    """Style mixing's second z (this replica's slice) and the crossover.

    One crossover for the global batch, as NVlabs; None when disabled.
    """
    if cfg.style_mixing_prob <= 0:
        return None
    seed = _seed(cfg.seed, step, purpose)
    z2 = tf.random.stateless_normal([global_batch, cfg.z_dim], seed=seed)
    coin, uniform = tf.unstack(
        tf.random.stateless_uniform(
            [2], tf.random.experimental.stateless_fold_in(seed, 1)
        )
    )
    cutoff = prog.mixing_cutoff(
        coin, uniform, cfg.style_mixing_prob, G.num_ws_used(resolution)
    )
    return _slice(z2, replica, n), cutoff


def _injected(latents, part, replica, n):
    """This replica's slice of injected z and noise (`step(latents=...)`)."""
    z = _slice(tf.convert_to_tensor(latents[f"z_{part}"]), replica, n)
    noise = [
        _slice(tf.convert_to_tensor(x), replica, n)
        for x in latents[f"noise_{part}"]
    ]
    return z, noise


def real_logits_and_gradients(
    D, reals, with_gradients=True, scale=None, **d_kwargs
):
    """D on the real pyramid, and d sum(D) / d(each pyramid image).

    The pyramid is built from the full-resolution `reals` inside the
    recorded computation, so the full-resolution gradient is the total
    derivative through every lower scale (SPEC section 3). Called inside an
    outer tape, the gradients stay differentiable (R1's second order).
    `scale` (fp16 loss scaling) multiplies the sum before differentiation
    and divides the gradients after. `d_kwargs` (resolution, alpha) go to D.
    """
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(reals)
        imgs = msg_ops.image_pyramid(reals, D.num_inputs)
        logits = D(imgs, **d_kwargs)
        total = _scaled(tf.reduce_sum(tf.cast(logits, tf.float32)), scale)
    if not with_gradients:
        return imgs, logits, None
    grads = tape.gradient(total, imgs)
    return imgs, logits, _unscaled(grads, scale)


def _loss_scale(opt):
    """The optimizer's current loss scale (fp16), else None."""
    return opt.dynamic_scale if precision.is_scaled(opt) else None


def _scaled(total, scale):
    return total if scale is None else total * scale


def _unscaled(grads, scale):
    if scale is None:
        return grads
    return [None if g is None else g / tf.cast(scale, g.dtype) for g in grads]


def make_batches(info, cfg, strategy, skip_batches=0, seed=None):
    """An iterator of per-replica uint8 batches of the global batch, each
    worker reading only its own rows (`datasets.pipeline.Stream`).

    seed: the stream's seed (default `cfg.seed`).
    """
    from datasets import pipeline

    seed = cfg.seed if seed is None else seed
    found = _gather(strategy, [skip_batches, seed])
    if (found != found[0]).any():
        raise UserError(
            "the workers start from different places in the data "
            f"(batch, seed per replica: {found.astype(int).tolist()}): every "
            "worker must --resume from the same snapshot; with "
            "--resume=latest their --outdir must be one shared folder"
        )
    ds = pipeline.make_dataset(
        info,
        cfg.batch,
        strategy=strategy,
        mirror=cfg.mirror,
        seed=seed,
        skip_batches=skip_batches,
    )
    return _Checked(iter(ds))


class _Checked:
    """An iterator whose read errors are the reader's one-line UserError.

    The records are read in Python inside tf.data (`tf.numpy_function`),
    which re-raises a UserError (a record failing its checksum, naming the
    file and record) as an OpError carrying its text.
    """

    def __init__(self, it):
        self.it = it

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return next(self.it)
        except tf.errors.OpError as e:
            m = re.search(r"UserError: (.*)", e.message)
            if m is None:
                raise
            raise UserError(m.group(1).strip()) from None


def agree_stop(strategy, requested):
    """The stop request every worker acts on, at the same step, or None.

    requested: this worker's (`interrupt.requested()`: a signal name or
    None). In a multi-worker job each replica's signal number is gathered
    (one small collective, every step), so a signal to any worker stops
    them all after the same step; without it the others would wait in the
    next step's collective for good. One process: returned as is.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return requested
    number = signal.Signals[requested].value if requested else 0
    numbers = _gather(strategy, [number])[:, 0].astype(int)
    if requested or not numbers.any():
        return requested
    replica = int(np.flatnonzero(numbers)[0])
    local = len(strategy.extended.worker_devices)
    name = signal.Signals(int(numbers[replica])).name
    return f"{name} (to worker {replica // local})"


_gathers = {}  # strategy -> its compiled `_gather`


def _gather(strategy, values):
    """Every replica's `values` (the same list on each): float64 [R, k].

    Outside a multi-worker job every replica holds this process's values,
    so nothing is exchanged.
    """
    values = np.asarray(values, np.float64)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return np.tile(values, (strategy.num_replicas_in_sync, 1))
    if strategy not in _gathers:

        @tf.function
        def gather(x):
            def on_replica():
                ctx = tf.distribute.get_replica_context()
                return ctx.all_gather(x[None], axis=0)

            out = strategy.run(on_replica)
            return strategy.experimental_local_results(out)[0]

        _gathers[strategy] = gather
    return _gathers[strategy](tf.constant(values)).numpy()


def _dense(grads, model):
    """Zeros for the variables a step does not reach (the blocks above the
    current resolution when growing), as JAX's gradients give."""
    return [
        tf.zeros_like(v) if g is None else g
        for g, v in zip(grads, model.trainable_variables)
    ]


def _finite(tensors):
    checks = [tf.reduce_all(tf.math.is_finite(t)) for t in tensors]
    return tf.reduce_all(tf.stack(checks))


def make_train_step(state, cfg, strategy, resolution=None):
    """Build `step(reals, step_index, latents=None, alpha=0.0) -> dict`.

    One call runs the D step (with the regulariser), the G step, the
    w_avg update and the Gs moving average. `resolution` (progressive
    growing) is compiled in; the fade weight `alpha` is a runtime value, so
    a fade-in never retraces (`step.traces` counts traces).
    """
    G, D, Gs = state.G, state.D, state.Gs
    loss = loss_lib.get_loss(cfg.loss)
    global_batch = cfg.batch
    k = D.num_inputs
    res = resolution
    traces = [0]

    def lod_inputs(reals_u8, alpha):
        # Reals in [-1, 1], faded to the current lod when growing.
        reals = tf.cast(reals_u8, tf.float32) / 127.5 - 1.0
        if cfg.progressive:
            reals = prog.process_reals(reals, res, alpha)
        return reals

    beta = gs_beta(cfg, global_batch)
    float_fixed = [
        (s, d)
        for s, d in zip(G.non_trainable_variables, Gs.non_trainable_variables)
        if s.dtype.startswith("float")
    ]

    def d_grads(reals_u8, step, alpha, replica, with_reg, latents=None):
        # Fakes without a gradient path to G; reals as a pyramid built from
        # the full-res tensor inside the tape (total-derivative R1).
        traces[0] += 1
        n = reals_u8.shape[0]
        if latents is None:
            z, noise = draw_latents(
                cfg, G, global_batch, step, replica, n, (_Z_D, _NOISE_D), res
            )
        else:
            z, noise = _injected(latents, "d", replica, n)
        mixing = draw_mixing(
            cfg, G, global_batch, step, replica, n, _MIX_D, res
        )
        gk = dict(resolution=res, alpha=alpha)
        fakes = G(z, noise=noise, mixing=mixing, **gk)[-k:]
        # D in training mode (spectral norm's power iteration).
        dk = dict(gk, training=True)
        fakes = [tf.stop_gradient(x) for x in fakes]
        reals = lod_inputs(reals_u8, alpha)
        penalty = tf.zeros([n])
        scale = _loss_scale(state.D_opt)
        with tf.GradientTape() as tape:
            use_r1 = with_reg and loss.penalty == "r1"
            real_imgs, logits_real, r1_grads = real_logits_and_gradients(
                D, reals, with_gradients=use_r1, scale=scale, **dk
            )
            if use_r1:
                r1 = loss_lib.r1_penalty(r1_grads)
                penalty = r1 * (cfg.r1_gamma * 0.5 * cfg.r1_interval)
            elif with_reg and loss.penalty == "gp":
                eps = tf.random.stateless_uniform(
                    [global_batch], _seed(cfg.seed, step, _EPS_GP)
                )
                if latents is not None:
                    eps = tf.convert_to_tensor(latents["eps"])
                mix = loss_lib.interpolate(
                    real_imgs, fakes, _slice(eps, replica, n)
                )
                with tf.GradientTape(watch_accessed_variables=False) as gtape:
                    gtape.watch(mix)
                    mix_sum = tf.reduce_sum(tf.cast(D(mix, **dk), tf.float32))
                    mix_sum = _scaled(mix_sum, scale)
                mix_grads = gtape.gradient(mix_sum, mix)
                gp = loss_lib.gradient_penalty(_unscaled([mix_grads], scale)[0])
                penalty = cfg.wgan_lambda * gp
                penalty += cfg.wgan_epsilon * loss_lib.drift_penalty(
                    logits_real
                )
            logits_fake = D(fakes, **dk)
            per_sample = loss.d_loss(logits_real, logits_fake)
            total = tf.reduce_sum(per_sample + penalty) / global_batch
            scaled = _scaled(total, scale)
        # fp16: still scaled; `apply` divides by the scale.
        grads = _dense(tape.gradient(scaled, D.trainable_variables), D)
        stats = {
            "Loss/D/loss": total,
            "Loss/D/reg": tf.reduce_sum(penalty) / global_batch,
            "Loss/scores/real": tf.reduce_sum(tf.cast(logits_real, tf.float32))
            / global_batch,
            "Loss/scores/fake": tf.reduce_sum(tf.cast(logits_fake, tf.float32))
            / global_batch,
        }
        return grads, stats

    def g_grads(reals_u8, step, alpha, replica, latents=None):
        n = reals_u8.shape[0]
        if latents is None:
            z, noise = draw_latents(
                cfg, G, global_batch, step, replica, n, (_Z_G, _NOISE_G), res
            )
        else:
            z, noise = _injected(latents, "g", replica, n)
        mixing = draw_mixing(
            cfg, G, global_batch, step, replica, n, _MIX_G, res
        )
        dk = dict(resolution=res, alpha=alpha)
        with tf.GradientTape() as tape:
            fakes, ws = G(z, noise=noise, mixing=mixing, return_ws=True, **dk)
            logits_fake = D(fakes[-k:], **dk)
            logits_real = None
            if loss.needs_real_in_g:
                reals = lod_inputs(reals_u8, alpha)
                logits_real = tf.stop_gradient(
                    D(msg_ops.image_pyramid(reals, k), **dk)
                )
            per_sample = loss.g_loss(logits_fake, logits_real)
            total = tf.reduce_sum(per_sample) / global_batch
            scaled = _scaled(total, _loss_scale(state.G_opt))
        grads = _dense(tape.gradient(scaled, G.trainable_variables), G)
        w_mean = tf.zeros([])
        if G.w_avg is not None:
            w_sum = tf.reduce_sum(tf.cast(ws[:, 0], tf.float32), axis=0)
            w_mean = w_sum / global_batch
        return grads, {"Loss/G/loss": total}, w_mean

    jit = dict(jit_compile=bool(cfg.xla), reduce_retracing=True)
    d_grads_reg = tf.function(
        lambda r, s, a, i, lat=None: d_grads(r, s, a, i, True, lat), **jit
    )
    d_grads_plain = tf.function(
        lambda r, s, a, i, lat=None: d_grads(r, s, a, i, False, lat), **jit
    )
    g_grads_fn = tf.function(g_grads, **jit)

    def replica_sum(fn):
        # Run `fn` on every replica and sum its outputs over the replicas.
        def run(reals, step, alpha, latents=None):
            ctx = tf.distribute.get_replica_context()
            out = fn(reals, step, alpha, ctx.replica_id_in_sync_group, latents)
            return ctx.all_reduce(tf.distribute.ReduceOp.SUM, out)

        return run

    def first(per_replica):
        return tf.nest.map_structure(
            lambda v: strategy.experimental_local_results(v)[0], per_replica
        )

    def apply(opt, grads, variables):
        # Skip (never apply) an update that is not finite.
        ok = _finite(grads)
        if precision.is_scaled(opt):
            return apply_scaled(opt, grads, variables, ok)

        def update():
            opt.apply(grads, variables)
            return tf.constant(True)

        return tf.cond(ok, update, lambda: tf.constant(False))

    def apply_scaled(opt, grads, variables, ok):
        # LossScaleOptimizer's rule (the JAX step calls it): unscale and
        # apply, doubling the scale after `dynamic_growth_steps` finite
        # steps; on overflow skip and halve. Written out because Keras'
        # apply must run in a replica context and this runs across them.
        scale, count = opt.dynamic_scale, opt.step_counter

        def update():
            precision.inner(opt).apply(_unscaled(grads, scale), variables)
            grow = tf.equal(count, opt.dynamic_growth_steps - 1)
            scale.assign(tf.where(grow, scale * 2.0, scale))
            count.assign(tf.where(grow, tf.zeros_like(count), count + 1))
            return tf.constant(True)

        def overflow():
            scale.assign(scale * 0.5)
            count.assign(tf.zeros_like(count))
            return tf.constant(False)

        return tf.cond(ok, update, overflow)

    def train_step(reals, step, alpha, with_reg, latents=None):
        d_fn = d_grads_reg if with_reg else d_grads_plain
        args = (reals, step, alpha, latents)
        d_g, d_stats = first(strategy.run(replica_sum(d_fn), args))
        d_ok = apply(state.D_opt, d_g, D.trainable_variables)
        g_g, g_stats, w_mean = first(
            strategy.run(replica_sum(g_grads_fn), args)
        )
        g_ok = apply(state.G_opt, g_g, G.trainable_variables)
        # w_avg and Gs follow only an applied G update.
        if_ok = tf.cast(g_ok, tf.float32)
        w_avg = G.w_avg
        if w_avg is not None:
            target = w_mean + (w_avg - w_mean) * G.w_avg_beta
            w_avg.assign(if_ok * target + (1 - if_ok) * w_avg)
        for s, d in zip(G.trainable_variables, Gs.trainable_variables):
            d.assign(s + (d - s) * beta)
        for s, d in float_fixed:
            d.assign(s)
        stats = {**d_stats, **g_stats}
        stats["Progress/skipped_D"] = 1.0 - tf.cast(d_ok, tf.float32)
        stats["Progress/skipped_G"] = 1.0 - if_ok
        return stats

    step_reg = tf.function(
        lambda r, s, a, lat=None: train_step(r, s, a, True, lat)
    )
    step_plain = tf.function(
        lambda r, s, a, lat=None: train_step(r, s, a, False, lat)
    )

    def step(reals, step_index, latents=None, alpha=0.0):
        """One step; `latents` (global-batch z_d, noise_d, z_g, noise_g and
        eps, as jax.py's `draw_latents` returns) replaces the step's own
        draws, so tests can feed both backends the same numbers."""
        with_reg = step_index % cfg.r1_interval == 0
        fn = step_reg if with_reg else step_plain
        if latents is not None:
            latents = tf.nest.map_structure(
                lambda x: tf.constant(np.asarray(x, np.float32)), latents
            )
        out = fn(
            reals,
            tf.constant(step_index, tf.int64),
            tf.constant(alpha, tf.float32),
            latents,
        )
        step.traces = traces[0]
        return {key: float(v) for key, v in out.items()}

    step.traces = 0
    return step


def list_gpus():
    """The GPUs TensorFlow sees, as 'GPU:0 NVIDIA H200' (physical devices:
    listing them leaves the runtime unconfigured for `make_strategy`)."""
    names = []
    for d in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(d)
        short = d.name.replace("/physical_device:", "")
        names.append(f"{short} {details.get('device_name', '')}".strip())
    return names


def num_gpus():
    """GPUs TensorFlow sees."""
    return len(tf.config.list_physical_devices("GPU"))


def device_name():
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return details.get("device_name", "GPU")
    return "CPU"


def peak_memory_gb():
    """Peak device memory since the last reset (GPU), else peak host RSS."""
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        peak = max(
            tf.config.experimental.get_memory_info(d.name)["peak"] for d in gpus
        )
        return peak / 2**30
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def describe(strategy):
    return json.dumps(
        {"backend": NAME, "replicas": strategy.num_replicas_in_sync}
    )

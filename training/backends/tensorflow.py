"""The TensorFlow backend: tf.distribute strategies and the compiled step.

The per-replica gradient computations are XLA-compiled (`cfg.xla` "on"),
or run by TensorFlow's kernels with XLA fusing only the elementwise ops
("elementwise": oneDNN's bf16 convolutions, which XLA's CPU backend lacks);
gradients are summed across replicas and applied once, in cross-replica
context, only when they are finite everywhere (a non-finite update is
skipped and counted, never applied). Losses are sums over the replica's
samples divided by the GLOBAL batch.

Latents and noise are drawn for the whole global batch from `(seed, step,
purpose)` (`training/rng.py`, the JAX backend's numbers too) and each
replica takes its slice, so a step gives the same result on one device or
many, and a resumed run continues exactly.
"""

import contextlib
import functools
import json
import os
import re
import signal
import threading

import keras
import numpy as np
import tensorflow as tf

from dnnlib import hardware
from dnnlib.util import UserError, set_tf_xla_flags
from msg_stylegan import ops as msg_ops
from training import loss as loss_lib
from training import precision
from training import step as step_lib
from training.ema import gs_beta

# TensorFlow reads its XLA flags when it runs its first graph function, not
# when it is imported: in time for any step this module builds.
set_tf_xla_flags()

NAME = "tensorflow"
LABEL = f"TensorFlow {tf.__version__}"

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
        return step_lib.new_state(cfg)


def _slice(x, replica, n):
    """Rows [replica * n, (replica + 1) * n) with a static batch size."""
    return tf.ensure_shape(
        x[replica * n : (replica + 1) * n], [n, *x.shape[1:]]
    )


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
        total = tf.reduce_sum(tf.cast(logits, tf.float32))
        total = precision.scaled(total, scale)
    if not with_gradients:
        return imgs, logits, None
    grads = tape.gradient(total, imgs)
    return imgs, logits, precision.unscaled(grads, scale)


class _TapeD:
    """D as `step_lib.d_objective` calls it, recorded by the outer tape:
    stateful calls (spectral norm's u updates in training mode) and input
    gradients from inner tapes, scaled by the fp16 loss scale `scale`."""

    def __init__(self, D, scale, **d_kwargs):
        self.D, self.scale, self.kwargs = D, scale, d_kwargs

    def logits(self, imgs):
        return self.D(imgs, **self.kwargs)

    def input_grads(self, imgs):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(imgs)
            total = tf.reduce_sum(tf.cast(self.logits(imgs), tf.float32))
            total = precision.scaled(total, self.scale)
        return precision.unscaled(tape.gradient(total, imgs), self.scale)

    def real_logits_and_grads(self, reals):
        return real_logits_and_gradients(
            self.D, reals, scale=self.scale, **self.kwargs
        )


def make_batches(info, cfg, strategy, skip_batches=0, seed=None):
    """An iterator of per-replica uint8 batches of the global batch, each
    worker reading only its own rows (`datasets.stream.Stream`).

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


def _assign_changed(variables, values):
    """Assign each value that is not its variable itself (`FollowG` passes
    unchanged entries through)."""
    for v, x in zip(variables, values):
        if x is not v:
            v.assign(x)


def _replica_draws(
    cfg, G, noise_res, res, reals_u8, step, replica, latents, mix_purpose
):
    """This replica's rows of the global batch's draws (or of the injected
    `latents`) and its style mixing (`mix_purpose`)."""
    n, batch = reals_u8.shape[0], cfg.batch
    rng = step_lib.StepRandom(cfg.seed, step)
    if latents is None:
        latents = step_lib.draw_latents(cfg, rng, noise_res, batch)
    mine = tf.nest.map_structure(lambda x: _slice(x, replica, n), latents)
    mixing = step_lib.draw_mixing(
        cfg, rng, mix_purpose, batch, G.num_ws_used(res)
    )
    if mixing is not None:
        mixing = (_slice(mixing[0], replica, n), mixing[1])
    return mine, mixing


def _summed(strategy, fn, args):
    """`fn(*args, replica_index, ...)` on every replica, its outputs summed
    over the replicas (this process's copy)."""

    def run(reals, step, alpha, latents=None):
        ctx = tf.distribute.get_replica_context()
        replica = ctx.replica_id_in_sync_group
        out = fn(reals, step, alpha, replica, latents)
        return ctx.all_reduce(tf.distribute.ReduceOp.SUM, out)

    out = strategy.run(run, args)
    first = strategy.experimental_local_results
    return tf.nest.map_structure(lambda v: first(v)[0], out)


def _apply(opt, loss_scale, grads, variables):
    """Apply the inner Adam only for finite gradients, then the fp16 rule.

    Runs across replicas, where Keras' LossScaleOptimizer.apply cannot, so
    its rule is `loss_scale.advance`. Returns whether it applied."""
    ok = step_lib.finite(grads)
    grads = precision.unscaled(grads, loss_scale.read(opt.variables))

    def update():
        precision.inner(opt).apply(grads, variables)
        return tf.constant(True)

    applied = tf.cond(ok, update, lambda: tf.constant(False))
    loss_scale.advance(applied)
    return applied


def make_train_step(state, cfg, strategy, resolution=None):
    """Build `step(reals, step_index, latents=None, alpha=0.0) -> dict`.

    Returns (step, `step_lib.Compiled`). The step is `training/step.py`'s
    on every replica: per-replica gradients (compiled as `cfg.xla` says) summed
    across replicas, then applied once in cross-replica context.
    `resolution` (progressive growing) is compiled in; `alpha` is a
    runtime value, so a fade-in never retraces. `latents` (the global
    batch's, as `step_lib.draw_latents` returns) replaces the step's own
    draws, so tests can feed both backends the same numbers.
    """
    G, D, Gs = state.G, state.D, state.Gs
    loss = loss_lib.get_loss(cfg.loss)
    batch, res, k = cfg.batch, resolution, D.num_inputs
    noise_res = step_lib.noise_resolutions(G, cfg, res)
    d_scale = precision.LossScale(state.D_opt)
    g_scale = precision.LossScale(state.G_opt)
    follow_g = step_lib.FollowG(G, gs_beta(cfg, batch))
    compiled = step_lib.Compiled()
    draws = functools.partial(_replica_draws, cfg, G, noise_res, res)

    def d_grads(with_reg, reals_u8, step, alpha, replica, latents=None):
        compiled.traces += 1
        lat, mixing = draws(reals_u8, step, replica, latents, step_lib.MIX_D)
        gk = dict(resolution=res, alpha=alpha)
        imgs = G(lat["z_d"], noise=lat["noise_d"], mixing=mixing, **gk)
        fakes = step_lib.d_fakes(imgs, k)
        reals = step_lib.reals_at_lod(reals_u8, cfg, res, alpha)
        scale = d_scale.read(state.D_opt.variables)
        d = _TapeD(D, scale, training=True, **gk)
        with tf.GradientTape() as tape:
            total, stats = step_lib.d_objective(
                loss, cfg, batch, d, reals, fakes, lat["eps"], with_reg
            )
            total = precision.scaled(total, scale)
        # fp16: still scaled; `apply` divides by the scale.
        return _dense(tape.gradient(total, D.trainable_variables), D), stats

    def g_grads(reals_u8, step, alpha, replica, latents=None):
        lat, mixing = draws(reals_u8, step, replica, latents, step_lib.MIX_G)
        gk = dict(resolution=res, alpha=alpha)
        reals = step_lib.reals_at_lod(reals_u8, cfg, res, alpha)
        with tf.GradientTape() as tape:
            fakes, ws = G(
                lat["z_g"],
                noise=lat["noise_g"],
                mixing=mixing,
                return_ws=True,
                **gk,
            )
            total, stats, w_mean = step_lib.g_objective(
                loss,
                batch,
                fakes,
                ws,
                lambda x: D(x, **gk),
                reals,
                k,
                G.w_avg is not None,
            )
            scale = g_scale.read(state.G_opt.variables)
            total = precision.scaled(total, scale)
        grads = _dense(tape.gradient(total, G.trainable_variables), G)
        return grads, stats, w_mean

    # "elementwise": TensorFlow's auto-clustering, limited to elementwise ops
    # by set_tf_xla_flags, fuses them into XLA clusters and leaves each
    # convolution and matmul to TensorFlow's kernel. It is a process-wide
    # switch, set here for every step built (the last one built wins).
    tf.config.optimizer.set_jit(
        "autoclustering" if cfg.xla == "elementwise" else False
    )
    jit = dict(jit_compile=cfg.xla == "on", reduce_retracing=True)
    replica_fns = {
        "d_reg": tf.function(functools.partial(d_grads, True), **jit),
        "d": tf.function(functools.partial(d_grads, False), **jit),
        "g": tf.function(g_grads, **jit),
    }

    def train_step(with_reg, reals, step, alpha, latents=None):
        d_name = "d_reg" if with_reg else "d"
        args = (reals, step, alpha, latents)
        d_g, d_stats = _summed(strategy, replica_fns[d_name], args)
        d_ok = _apply(state.D_opt, d_scale, d_g, D.trainable_variables)
        g_g, g_stats, w_mean = _summed(strategy, replica_fns["g"], args)
        g_ok = _apply(state.G_opt, g_scale, g_g, G.trainable_variables)
        g_ntv, gs_ntv = G.non_trainable_variables, Gs.non_trainable_variables
        new = follow_g(
            G.trainable_variables,
            g_ntv,
            Gs.trainable_variables,
            gs_ntv,
            w_mean,
            g_ok,
        )
        for old, values in zip((g_ntv, gs_ntv, Gs.trainable_variables), new):
            _assign_changed(old, values)
        return {**d_stats, **g_stats, **step_lib.skip_stats(d_ok, g_ok)}

    steps = {
        reg: tf.function(functools.partial(train_step, reg))
        for reg in (True, False)
    }
    return functools.partial(_call_step, cfg, steps), compiled


def _call_step(cfg, steps, reals, step_index, latents=None, alpha=0.0):
    """One step from the host: the regularising or plain compiled step,
    its arguments as tensors, its statistics as floats."""
    if latents is not None:
        latents = tf.nest.map_structure(
            lambda x: tf.constant(np.asarray(x, np.float32)), latents
        )
    fn = steps[step_lib.regularizes(cfg, step_index)]
    index = tf.constant(step_index, tf.int64)
    out = fn(reals, index, tf.constant(alpha, tf.float32), latents)
    return {key: float(v) for key, v in out.items()}


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

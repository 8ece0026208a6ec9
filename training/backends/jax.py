"""The JAX backend: the same API as `tensorflow.py`, as one jitted step.

The same Keras networks run through `stateless_call` (or a StatelessScope
for G's mapping and synthesis separately), gradients come from
`jax.value_and_grad`, and both Adams update in stateless form
(`optimizer.stateless_apply`). Semantics match the TensorFlow backend:

- D step with multi-scale R1: the pyramid is built from the full-res reals
  inside the differentiated function, and the gradient of each pyramid image
  is the TOTAL derivative through every coarser image computed from it (as
  TF's tape gives for an intermediate tensor), so the full-res gradient is
  d sum(D(pyramid(x))) / dx.
- G step, then the w_avg update and the Gs moving average, both only after
  an applied G update.
- Losses are sums over samples divided by the GLOBAL batch.
- A non-finite D or G update is skipped (weights and optimizer state keep
  their old values, `jnp.where` over the whole state) and counted.
- Latents, noise and WGAN-GP epsilons are drawn for the whole global batch
  from (seed, purpose, step) by `training/rng.py`, the same numbers as on
  TF; with several devices the batch axis is sharded over a one-axis mesh,
  so every device computes its slice of the same global draw.

Per-device differences: relativistic losses take their batch means over
the device's slice on TF (per replica) but over the global batch here.

The data stream (`make_batches`) reads the TFRecords with the pure-Python
reader in `datasets/tfrecords.py`, so this module never imports
TensorFlow; its order is `datasets/stream.py`'s, the one tf.data reads on
TensorFlow, so for a seed both backends see the same images.

Several processes (`connect`, `jax.distributed`; one per host, or under
SLURM one per GPU): the mesh holds every process's devices, process-major;
each process reads only its rows of every global batch and the step
assembles the global array from the pieces. The weights come back
replicated; the Keras variables keep this process's copy, so grids and
snapshots are local work.
"""

import functools
import json
import queue
import signal
import threading

import jax
import jax.numpy as jnp
import keras
import numpy as np

from dnnlib import hardware
from dnnlib.util import UserError
from msg_stylegan import ops as msg_ops
from training import loss as loss_lib
from training import precision
from training import step as step_lib
from training.ema import gs_beta

NAME = "jax"
LABEL = f"JAX {jax.__version__}"


class Strategy:
    """The devices a step runs on, as a one-axis ("batch") mesh.

    Parameters are replicated and batches sharded along their first axis;
    `num_replicas_in_sync` mirrors tf.distribute for the training loop.
    """

    def __init__(self, devices):
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        self.devices = list(devices)
        self.num_replicas_in_sync = len(self.devices)
        self.mesh = Mesh(np.array(self.devices), ("batch",))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        self.batch = NamedSharding(self.mesh, PartitionSpec("batch"))


def connect(cluster):
    """Join a multi-process job (`jax.distributed.initialize`).

    cluster: `hardware.Cluster`; its coordinator, process count and id go
    to JAX, or, with `cluster.auto` (a SLURM step), none do and JAX reads
    SLURM's variables itself (coordinator: the step's first node, port from
    the job id; one process per task; each task one GPU, SLURM_LOCALID).
    Must run before anything asks JAX for its devices. Collectives between
    CPU processes use gloo.
    """
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if cluster.auto:
        jax.distributed.initialize()
    else:
        jax.distributed.initialize(
            coordinator_address=cluster.coordinator,
            num_processes=cluster.num_processes,
            process_id=cluster.process_id,
        )
    if jax.process_count() != cluster.num_processes:
        raise UserError(
            f"jax.distributed joined {jax.process_count()} processes, "
            f"expected {cluster.num_processes}"
        )


def make_strategy(gpus=0, devices=None):
    """All GPUs (or the first `gpus`), else the first CPU device.

    With several processes (`connect`), the same choice on every process,
    all of them in one mesh. devices: explicit JAX devices or indices into
    `jax.devices()` (tests use two host devices from
    --xla_force_host_platform_device_count). A multi-worker environment
    (TF_CONFIG, a SLURM step of several tasks) without `connect` is refused
    rather than run as independent copies.
    """
    if devices:
        every = jax.devices()
        return Strategy(
            [every[d] if isinstance(d, int) else d for d in devices]
        )
    if jax.process_count() == 1 and hardware.multi_worker() is not None:
        raise UserError(
            "a multi-worker job (TF_CONFIG, or a SLURM step of several "
            "tasks) but jax.distributed is not initialized: run train.py, "
            "which joins the job, or use --backend=tensorflow"
        )
    found = _gpus()
    hardware.check_gpu_count(gpus, list_gpus(), LABEL)
    platform = "gpu" if found else "cpu"
    count = (gpus or len(found)) if found else 1
    # Process-major: process p's devices hold rows [p, p + 1) * B / P.
    return Strategy(
        [
            d
            for p in range(jax.process_count())
            for d in jax.local_devices(process_index=p, backend=platform)[
                :count
            ]
        ]
    )


def agree_stop(strategy, requested):
    """A stop request every process sees at the same step, or None.

    requested: this process's (`interrupt.requested()`, a signal name or
    None). One process: returned as is. Several: one all-gather of each
    process's signal number, so a process that was signalled does not stop
    alone and leave the others waiting in the next step's collectives.
    """
    if jax.process_count() == 1:
        return requested
    from jax.experimental import multihost_utils

    number = signal.Signals[requested].value if requested else 0
    numbers = multihost_utils.process_allgather(np.int32(number))
    for process, number in enumerate(np.asarray(numbers).ravel()):
        if number:
            name = signal.Signals(int(number)).name
            return (
                name
                if process == jax.process_index()
                else (f"{name} (to process {process})")
            )
    return None


def build_state(cfg, strategy):
    """G, D, Gs and both optimizers (the same variables and paths as TF's).

    Initial weights come from `cfg.seed`. The step keeps no state of its
    own: it reads these variables and assigns its results back.
    """
    keras.utils.set_random_seed(cfg.seed)
    # Initialise on the host: every initializer is a small jitted op, and
    # compiling a hundred of them for a GPU costs far more than running them
    # on the CPU. The first step moves the weights to the step's devices.
    with jax.default_device(jax.local_devices(backend="cpu")[0]):
        return step_lib.new_state(cfg)


def draw_latents(cfg, noise_resolutions, global_batch, step):
    """`step_lib.draw_latents` as arrays: the dict `step(..., latents=...)`
    accepts (the step's own numbers, on either backend)."""
    rng = step_lib.StepRandom(cfg.seed, step)
    return step_lib.draw_latents(cfg, rng, noise_resolutions, global_batch)


def _pyramid_total_grads(direct, imgs):
    """Per-level gradients with coarser levels recomputed from each level.

    `direct[i]` is d sum(D) / d imgs[i] holding the other levels fixed.
    Level i feeds D and, through `downsample2d`, level i-1; so its total
    gradient adds the pull-back of level i-1's total gradient (coarse to
    fine, as TF's tape gives for the intermediate tensors).
    """
    total = [direct[0]]
    for i in range(1, len(imgs)):
        _, pull = jax.vjp(msg_ops.downsample2d, imgs[i])
        total.append(direct[i] + pull(total[-1])[0])
    return total


def real_logits_and_gradients(D, d_tv, d_ntv, reals, scale=None, **d_kwargs):
    """D on the real pyramid, and d sum(D) / d(each pyramid image).

    The JAX twin of the TF function of the same name; differentiable with
    respect to `d_tv` (R1's second order). `d_kwargs` go to D. Also
    returns D's updated non-trainable state (spectral norm's power
    iteration in training mode). `scale` (fp16 loss scaling) multiplies
    the sum before differentiation and divides the gradients after.
    """
    imgs = msg_ops.image_pyramid(reals, D.num_inputs)

    def d_sum(levels):
        logits, ntv = D.stateless_call(d_tv, d_ntv, levels, **d_kwargs)
        total = jnp.sum(logits.astype(jnp.float32))
        return precision.scaled(total, scale), (logits, ntv)

    (_, (logits, ntv)), direct = jax.value_and_grad(d_sum, has_aux=True)(imgs)
    direct = precision.unscaled(direct, scale)
    return imgs, logits, _pyramid_total_grads(direct, imgs), ntv


class _StatelessD:
    """D as `step_lib.d_objective` calls it inside a differentiated
    function: with the given trainable values `tv`; its non-trainable state
    (spectral norm's u, training mode) threads through the calls in order
    and ends in `ntv`. `scale`: the fp16 loss scale of input gradients."""

    def __init__(self, D, tv, ntv, scale, **d_kwargs):
        self.D, self.tv, self.ntv = D, tv, ntv
        self.scale, self.kwargs = scale, d_kwargs

    def _call(self, imgs, ntv):
        return self.D.stateless_call(self.tv, ntv, imgs, **self.kwargs)

    def logits(self, imgs):
        out, self.ntv = self._call(imgs, self.ntv)
        return out

    def input_grads(self, imgs):
        def total(x):
            out, ntv = self._call(x, self.ntv)
            out = jnp.sum(out.astype(jnp.float32))
            return precision.scaled(out, self.scale), ntv

        grads, self.ntv = jax.grad(total, has_aux=True)(imgs)
        return precision.unscaled(grads, self.scale)

    def real_logits_and_grads(self, reals):
        imgs, logits, grads, self.ntv = real_logits_and_gradients(
            self.D, self.tv, self.ntv, reals, self.scale, **self.kwargs
        )
        return imgs, logits, grads


def _generate(G, g_tv, g_ntv, z, noise, **g_kwargs):
    """ws and G's images, with G's variables given (a StatelessScope)."""
    mapping = list(zip(G.trainable_variables, g_tv))
    mapping += list(zip(G.non_trainable_variables, g_ntv))
    with keras.StatelessScope(state_mapping=mapping):
        imgs, ws = G(z, noise=noise, return_ws=True, **g_kwargs)
    return ws, imgs


def _select(ok, new, old):
    return jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, old)


def _put(x, sharding):
    """x (the same global value on every process) on `sharding`'s devices.

    One process: `device_put`. Several: each process places its own
    devices' parts (device_put cannot reach another process's devices).
    """
    if jax.process_count() == 1:
        return jax.device_put(x, sharding)
    host = np.asarray(x)
    return jax.make_array_from_callback(
        host.shape, sharding, lambda index: host[index]
    )


class _Vars:
    """The step's state as lists of arrays, read from and written to Keras.

    Reading every call lets a caller `set_state` between steps; writing
    back lets the loop use `state.Gs` and snapshot as on TF. With several
    processes the variables get this process's copy of each replicated
    array (an array spanning other processes' devices cannot be read
    here), and the step keeps the global ones for its next call.
    """

    def __init__(self, state):
        self.last = {}  # the step's arrays of the last call, on its devices
        self.written = {}  # what `write` assigned to the variables
        self.groups = {
            "g_tv": state.G.trainable_variables,
            "g_ntv": state.G.non_trainable_variables,
            "d_tv": state.D.trainable_variables,
            "d_ntv": state.D.non_trainable_variables,
            "gs_tv": state.Gs.trainable_variables,
            "gs_ntv": state.Gs.non_trainable_variables,
            "g_opt": state.G_opt.variables,
            "d_opt": state.D_opt.variables,
        }

    def read(self):
        return {k: [v.value for v in vs] for k, vs in self.groups.items()}

    def placed(self, sharding):
        """The current values on the step's devices.

        Arrays the previous step returned are already there (a variable
        still holds the very array written back), so only values assigned
        since (set_state, an optimizer reset, the first step) are moved:
        moving all 434-576 every step cost 8-18 ms of host time per step
        (bench/host_overhead.py, 2-core CPU host), now 2-5 ms.
        """
        values, moved = self.read(), 0
        for key, arrays in values.items():
            old = self.written.get(key, ())
            for i, x in enumerate(arrays):
                if i < len(old) and x is old[i]:
                    arrays[i] = self.last[key][i]
                else:
                    # A copy of its own: the step donates it, and G and Gs
                    # hold one array after copy_weights (device_put may
                    # place a replica in the very buffer it was given).
                    arrays[i] = _put(jnp.array(x, copy=True), sharding)
                    moved += 1
        return values, moved

    def write(self, values):
        self.last = values
        several = jax.process_count() > 1
        for key, vs in self.groups.items():
            for v, x in zip(vs, values[key]):
                v.assign(x.addressable_data(0) if several else x)
        self.written = self.read()


def _update(opt, loss_scale, ok, grads, tv, opt_values):
    """(weights, optimizer state) after an update applied only when `ok`.

    A skipped step keeps the weights and Adam's state; a LossScaleOptimizer
    keeps them itself and halves its scale, which must stay."""
    new_tv, new_opt = opt.stateless_apply(opt_values, grads, tv)
    if not loss_scale.active:
        new_opt = _select(ok, new_opt, opt_values)
    return _select(ok, new_tv, tv), new_opt


def _put_latents(strategy, latents):
    """Injected global-batch latents, sharded over the batch axis."""
    return jax.tree_util.tree_map(
        lambda x: _put(np.asarray(x, np.float32), strategy.batch), latents
    )


def make_train_step(state, cfg, strategy, resolution=None):
    """Build `step(reals, step_index, latents=None, alpha=0.0) -> dict`.

    Returns (step, `step_lib.Compiled`). The step is `training/step.py`'s
    as one jitted function of the whole state: the batch axis sharded over
    the mesh, the weights replicated. `latents` (the dict `draw_latents`
    returns, global batch, NumPy or JAX) replaces the step's own draws:
    tests use it to feed both backends the same numbers. `resolution`
    (progressive growing) is compiled in; `alpha` is a runtime value.
    """
    G, D, G_opt, D_opt = state.G, state.D, state.G_opt, state.D_opt
    loss = loss_lib.get_loss(cfg.loss)
    batch, res, k = cfg.batch, resolution, D.num_inputs
    follow_g = step_lib.FollowG(G, gs_beta(cfg, batch))
    noise_res = step_lib.noise_resolutions(G, cfg, res)
    d_scale, g_scale = precision.LossScale(D_opt), precision.LossScale(G_opt)
    several = strategy.num_replicas_in_sync > 1
    compiled = step_lib.Compiled()

    def shard(x):
        # The batch axis over the devices; a no-op with one device.
        if not several:
            return x
        return jax.lax.with_sharding_constraint(x, strategy.batch)

    def d_loss_fn(d_tv, s, reals, fakes, eps, with_reg, alpha):
        scale = d_scale.read(s["d_opt"])
        gk = dict(resolution=res, alpha=alpha, training=True)
        d = _StatelessD(D, d_tv, s["d_ntv"], scale, **gk)
        total, stats = step_lib.d_objective(
            loss, cfg, batch, d, reals, fakes, eps, with_reg
        )
        # fp16: the loss scaled; LossScaleOptimizer unscales the gradients.
        return precision.scaled(total, scale), (stats, d.ntv)

    def g_loss_fn(g_tv, s, reals, z, noise, mixing, alpha):
        gk = dict(resolution=res, alpha=alpha)
        ws, fakes = _generate(
            G, g_tv, s["g_ntv"], z, noise, mixing=mixing, **gk
        )

        def d_logits(imgs):
            return D.stateless_call(s["d_tv"], s["d_ntv"], imgs, **gk)[0]

        total, stats, w_mean = step_lib.g_objective(
            loss, batch, fakes, ws, d_logits, reals, k, G.w_avg is not None
        )
        scaled = precision.scaled(total, g_scale.read(s["g_opt"]))
        return scaled, (stats, w_mean)

    def train_step(s, gs_ntv, reals_u8, step, alpha, latents, with_reg):
        compiled.traces += 1
        s = dict(s, gs_ntv=gs_ntv)
        rng = step_lib.StepRandom(cfg.seed, step)
        if latents is None:
            latents = step_lib.draw_latents(cfg, rng, noise_res, batch)
        lat = jax.tree_util.tree_map(shard, latents)
        reals = step_lib.reals_at_lod(shard(reals_u8), cfg, res, alpha)
        mix_d, mix_g = (
            step_lib.draw_mixing(cfg, rng, p, batch, G.num_ws_used(res))
            for p in (step_lib.MIX_D, step_lib.MIX_G)
        )
        gk = dict(mixing=mix_d, resolution=res, alpha=alpha)
        _, imgs = _generate(
            G, s["g_tv"], s["g_ntv"], lat["z_d"], lat["noise_d"], **gk
        )
        d_args = (reals, step_lib.d_fakes(imgs, k), lat["eps"], with_reg)
        (_, (d_stats, d_ntv)), d_grads = jax.value_and_grad(
            d_loss_fn, has_aux=True
        )(s["d_tv"], s, *d_args, alpha)
        d_ok = step_lib.finite(d_grads)
        s["d_tv"], s["d_opt"] = _update(
            D_opt, d_scale, d_ok, d_grads, s["d_tv"], s["d_opt"]
        )
        s["d_ntv"] = _select(d_ok, list(d_ntv), s["d_ntv"])

        g_args = (reals, lat["z_g"], lat["noise_g"], mix_g, alpha)
        (_, (g_stats, w_mean)), g_grads = jax.value_and_grad(
            g_loss_fn, has_aux=True
        )(s["g_tv"], s, *g_args)
        g_ok = step_lib.finite(g_grads)
        s["g_tv"], s["g_opt"] = _update(
            G_opt, g_scale, g_ok, g_grads, s["g_tv"], s["g_opt"]
        )
        s["g_ntv"], s["gs_ntv"], s["gs_tv"] = follow_g(
            s["g_tv"], s["g_ntv"], s["gs_tv"], s["gs_ntv"], w_mean, g_ok
        )
        return s, {**d_stats, **g_stats, **step_lib.skip_stats(d_ok, g_ok)}

    # The state's buffers are donated: XLA writes the new weights and Adam
    # moments into them instead of allocating a second copy of the state
    # each step (the demo step 2-4% faster on a 2-core CPU; on a GPU, one
    # state's memory less). Not Gs's non-trainable state, which only copies
    # G's (nothing could be written into it). `_Vars.placed` gives the step
    # buffers of its own (G and Gs share arrays after copy_weights), and
    # `_Vars.write` hands the new ones to the Keras variables before
    # anything reads them. The new state and the statistics come back
    # replicated.
    jitted = jax.jit(
        train_step,
        static_argnums=(6,),
        donate_argnums=(0,),
        out_shardings=strategy.replicated,
    )
    step = functools.partial(
        _call_step, cfg, strategy, jitted, _Vars(state), compiled
    )
    return step, compiled


def _call_step(
    cfg,
    strategy,
    jitted,
    variables,
    compiled,
    reals,
    step_index,
    latents=None,
    alpha=0.0,
):
    """One step from the host: the batch and scalars placed on the mesh,
    the state in and out of the Keras variables, statistics as floats."""
    reals = _put_batch(strategy, np.asarray(reals), cfg.batch)
    if latents is not None:
        latents = _put_latents(strategy, latents)
    values, compiled.moved = variables.placed(strategy.replicated)
    scalars = (np.int32(step_index), np.float32(alpha))
    if jax.process_count() == 1:
        scalars = tuple(jnp.asarray(x) for x in scalars)
    else:
        scalars = tuple(_put(x, strategy.replicated) for x in scalars)
    with_reg = bool(step_lib.regularizes(cfg, step_index))
    gs_ntv = values.pop("gs_ntv")
    values, stats = jitted(values, gs_ntv, reals, *scalars, latents, with_reg)
    variables.write(values)
    return {key: float(v) for key, v in stats.items()}


def _put_batch(strategy, reals, global_batch):
    """This process's rows of the reals, as the global batch on the mesh
    (several processes: each contributes its rows)."""
    if jax.process_count() == 1:
        return jax.device_put(reals, strategy.batch)
    shape = (global_batch, *reals.shape[1:])
    return jax.make_array_from_process_local_data(strategy.batch, reals, shape)


# ---------------------------------------------------------------------------
# Data: the pure-Python TFRecord reader, seeded and resumable


class BatchStream:
    """Seeded uint8 [B, H, W, C] batches of the full-resolution records.

    The order and flips are `datasets.stream.Stream`'s, the ones tf.data
    reads on TensorFlow, so both backends see the same images in the same
    rows for a seed; `skip_batches` jumps to a batch in O(1), so a resumed
    run sees the batches it would have. A background thread keeps a few
    batches ready.

    rows: (start, stop), the part of every global batch this process
    reads (its devices' rows); the global order and flips are drawn first,
    so the processes' parts put together are the one-process batch.
    """

    def __init__(
        self, info, batch, mirror, seed, skip_batches=0, ahead=4, rows=None
    ):
        from datasets.stream import Records, Stream

        self.records = Records(info.files[info.resolution])
        self.stream = Stream(len(self.records), batch, seed, mirror=mirror)
        self.rows = rows or (0, batch)
        self.next_batch = skip_batches
        self._queue = queue.Queue(maxsize=ahead)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, daemon=True)
        self._thread.start()

    def make(self, b):
        """Batch number `b` of the stream (deterministic)."""
        index, flip = self.stream.rows(b, *self.rows)
        imgs = self.records.images(index)
        imgs[flip] = imgs[flip, :, ::-1]  # [NHWC] left-right
        return imgs

    def _fill(self):
        b = self.next_batch
        while not self._stop.is_set():
            try:
                item = self.make(b)
            except Exception as e:  # surfaced in the consumer's thread
                item = e
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(item, Exception):
                return
            b += 1

    def __iter__(self):
        return self

    def __next__(self):
        item = self._queue.get()
        if isinstance(item, Exception):
            raise item
        self.next_batch += 1
        return item

    def close(self):
        self._stop.set()


def process_rows(strategy, batch):
    """(start, stop): the rows of a global batch on this process's devices.

    The whole batch with one process; with several, a contiguous block
    (the mesh is process-major).
    """
    index = strategy.batch.addressable_devices_indices_map((batch,))
    spans = sorted(
        (s.start or 0, batch if s.stop is None else s.stop)
        for (s,) in index.values()
    )
    start, stop = spans[0][0], spans[-1][1]
    if sum(b - a for a, b in spans) != stop - start:
        raise ValueError(f"this process's rows are not contiguous: {spans}")
    return start, stop


def make_batches(info, cfg, strategy, skip_batches=0, seed=None):
    """An iterator of uint8 batches: the global batch's rows on this
    process's devices (all of it with one process); the step shards them."""
    if cfg.batch % strategy.num_replicas_in_sync:
        raise UserError(
            f"batch {cfg.batch} must be a multiple of the "
            f"{strategy.num_replicas_in_sync} replicas"
        )
    seed = cfg.seed if seed is None else seed
    return BatchStream(
        info,
        cfg.batch,
        cfg.mirror,
        seed,
        skip_batches=skip_batches,
        rows=process_rows(strategy, cfg.batch),
    )


# ---------------------------------------------------------------------------
# Optimizer state, devices, memory


def device_name():
    device = jax.local_devices()[0]
    if device.platform == "cpu":
        return "CPU"
    return getattr(device, "device_kind", device.platform.upper())


def peak_memory_gb():
    """Peak device memory (the largest over devices), else peak host RSS."""
    device = jax.local_devices()[0]
    if device.platform != "cpu":
        peaks = []
        for d in jax.local_devices():
            stats = d.memory_stats() or {}
            peaks.append(stats.get("peak_bytes_in_use", 0))
        return max(peaks) / 2**30
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def describe(strategy):
    return json.dumps(
        {
            "backend": NAME,
            "replicas": strategy.num_replicas_in_sync,
            "processes": jax.process_count(),
        }
    )


def _gpus():
    """This process's GPUs."""
    try:
        return jax.local_devices(backend="gpu")
    except RuntimeError:  # no GPU platform in this install
        return []


def list_gpus():
    """The GPUs this process sees, as 'GPU:0 NVIDIA H200'."""
    return [f"GPU:{d.id} {d.device_kind}" for d in _gpus()]


def num_gpus():
    """GPUs this process sees."""
    return len(_gpus())

"""The training loop: data, steps, ticks, grids, snapshots, metrics, logs.

SPEC section 6: a tick line every `kimg_per_tick`, sample grids per scale
from Gs with fixed latents, `reals.png`, TensorBoard scalars, network
snapshots with everything resume needs, and `network-final.pkl`. With
progressive growing (SPEC section 10) the schedule sets lod, minibatch,
learning rate and tick length at every step; each resolution gets its own
compiled step and its own data stream.
"""

import json
import math
import os
import time
from dataclasses import replace

import numpy as np

from datasets import tfrecords
from dnnlib import images, interrupt
from dnnlib.util import UserError, format_time
from msg_stylegan import networks, snapshot
from training import backends, precision, schedule
from training.stats import CONSISTENCY, StatsCollector


def grid_shape(cfg):
    """Grid width and height in images, smaller for large resolutions."""
    n = max(2, min(cfg.grid_size, 4096 // cfg.img_resolution))
    return n, n


def load_images(info, n):
    """The first n images of the dataset as uint8 NHWC (cycled)."""
    imgs = list(tfrecords.iterate_images(info, max_images=n))
    return np.stack([imgs[i % len(imgs)] for i in range(n)])


def generate_scales(Gs, z, batch, **kwargs):
    """Gs outputs for latents z, per scale as NumPy, in batches."""
    outs = None
    for i in range(0, len(z), batch):
        imgs = Gs(z[i : i + batch], **kwargs)
        imgs = [np.asarray(x, dtype=np.float32) for x in imgs]
        outs = (
            imgs
            if outs is None
            else [np.concatenate([a, b]) for a, b in zip(outs, imgs)]
        )
    return outs


def save_fake_grids(run_dir, Gs, grid_z, cfg, kimg):
    """One grid per scale, each nearest-upsampled to full size.

    Returns the scale-consistency statistics of these images.
    """
    grid = grid_shape(cfg)
    scales = generate_scales(Gs, grid_z, cfg.batch, noise_mode="const")
    for img in scales:
        res = img.shape[1]
        path = os.path.join(run_dir, f"{res}x{res}", f"fakes{kimg:06d}.png")
        images.write_grid(path, images.upsample(img, cfg.img_resolution), grid)
    return scale_consistency(scales)


def scale_consistency(scales):
    """Mean |scale - box-downsampled full-res output| per scale ([-1, 1]).

    The MSG paper's argument: with multi-scale gradients every head agrees
    with the downsampled top image. Logged as `Consistency/<res>x<res>`.
    """
    top = scales[-1]
    n, size, _, c = top.shape
    out = {}
    for img in scales[:-1]:
        res = img.shape[1]
        f = size // res
        down = top.reshape(n, res, f, res, f, c).mean(axis=(2, 4))
        out[f"{CONSISTENCY}{res}x{res}"] = float(np.abs(img - down).mean())
    return out


def _skip_reason(state):
    """Why a step was skipped when that is not divergence, else None.

    With fp16 a gradient overflow is how the loss scale finds its level
    (StyleGAN's G at initialisation needs about 1): while the halved scale
    is still at least 1, the skip does not count towards divergence.
    """
    found = [precision.LossScale(opt) for opt in (state.G_opt, state.D_opt)]
    scales = [scale.value() for scale in found if scale.active]
    if not scales or min(scales) < 1.0:
        return None
    return f" (fp16 overflow: loss scales now {scales[0]:g} / {scales[-1]:g})"


def snapshot_data(state, cfg, cur_nimg, step, extra=None):
    """Everything resume needs; `extra` adds the schedule position."""
    return {
        "kimg": cur_nimg / 1000.0,
        "cur_nimg": int(cur_nimg),
        "step": int(step),
        "lod": float(schedule.phase_at(cfg, cur_nimg).lod),
        "config": cfg.to_json(),
        "G": networks.get_state(state.G),
        "D": networks.get_state(state.D),
        "Gs": networks.get_state(state.Gs),
        "G_opt": snapshot.optimizer_state(state.G_opt),
        "D_opt": snapshot.optimizer_state(state.D_opt),
        "rng": {"seed": int(cfg.seed), "step": int(step)},
        **(extra or {}),
    }


def restore(state, data, path):
    """Load a snapshot's networks and optimizer state into `state`."""
    try:
        for key in ("G", "D", "Gs"):
            networks.set_state(getattr(state, key), data[key], what=key)
        for key in ("G_opt", "D_opt"):
            if key not in data:
                raise ValueError(f"no '{key}' entry (not a training snapshot)")
            snapshot.set_optimizer_state(getattr(state, key), data[key], key)
    except ValueError as e:
        raise UserError(f"cannot resume from '{path}': {e}")


def check_data(cfg):
    """The dataset directory, checked against the config's resolution."""
    if not cfg.data:
        raise UserError(
            "no dataset given: pass --data=DIR (a directory made by "
            "python -m datasets.dataset_tool)"
        )
    info = tfrecords.find_dataset(cfg.data)
    if info.resolution != cfg.img_resolution:
        raise UserError(
            f"dataset '{cfg.data}' is {info.resolution}x{info.resolution} "
            f"but config '{cfg.name}' trains at {cfg.img_resolution}x"
            f"{cfg.img_resolution}: pick the matching config or rebuild the "
            "dataset with --resolution"
        )
    if info.channels != cfg.img_channels:
        raise UserError(
            f"dataset '{cfg.data}' has {info.channels} channels, config "
            f"'{cfg.name}' expects {cfg.img_channels}"
        )
    return info


def stream_seed(cfg, res):
    """The data stream's seed: one stream per resolution when growing."""
    if not cfg.progressive:
        return cfg.seed
    return cfg.seed * 1000 + int(math.log2(res))


class Schedule:
    """The steps, data streams and optimizer settings of the current phase.

    A new resolution gets its own compiled step and data stream (seeded by
    the resolution, skipping what this resolution already consumed), so a
    resumed run continues exactly.
    """

    def __init__(self, backend, state, cfg, info, strategy):
        self.backend, self.state, self.cfg = backend, state, cfg
        self.info, self.strategy = info, strategy
        self.res = None
        self.batches = None
        self.step_fn = None
        self.compiled = None  # what compiling `step_fn` did (step_lib)
        self.segment_start = 0  # the step at which `res` started
        self.prev_lod = None

    def resume(self, data):
        self.segment_start = int(data.get("segment_start_step", 0))
        if data.get("prev_lod") is not None:
            self.prev_lod = float(data["prev_lod"])

    def position(self):
        """The schedule position a snapshot stores (see `resume`)."""
        return {
            "segment_start_step": int(self.segment_start),
            "prev_lod": self.prev_lod,
        }

    def enter(self, phase, step):
        """Set up `phase` before training step number `step`."""
        state, cfg = self.state, self.cfg
        if self.prev_lod is not None and schedule.resets_optimizer(
            self.prev_lod, phase.lod
        ):
            schedule.reset_optimizer(state.G_opt)
            schedule.reset_optimizer(state.D_opt)
        if phase.resolution != self.res:
            if self.res is not None:
                self.segment_start = step
            self.res = phase.resolution
            if self.batches is not None and hasattr(self.batches, "close"):
                self.batches.close()
            phase_cfg = replace(cfg, batch=phase.batch)
            self.batches = self.backend.make_batches(
                self.info,
                phase_cfg,
                self.strategy,
                skip_batches=step - self.segment_start,
                seed=stream_seed(cfg, phase.resolution),
            )
            self.step_fn, self.compiled = self.backend.make_train_step(
                state,
                phase_cfg,
                self.strategy,
                resolution=phase.resolution if cfg.progressive else None,
            )
        if cfg.progressive:
            schedule.set_learning_rate(state.G_opt, phase.lr)
            schedule.set_learning_rate(state.D_opt, phase.lr)
            state.G.lod.assign(phase.lod)
            state.Gs.lod.assign(phase.lod)
        self.prev_lod = phase.lod

    def run(self, phase, step):
        return self.step_fn(next(self.batches), step, alpha=phase.alpha)


def training_loop(cfg, run_dir, resume=None, devices=None):
    """Train until `cfg.total_kimg`; returns the final snapshot's path.

    SIGINT or SIGTERM (`dnnlib.interrupt`) stops the run after the current
    step or maintenance task with a snapshot from which `--resume` continues
    exactly; the path of that snapshot is returned.
    """
    with interrupt.catching():
        return _train(cfg, run_dir, resume, devices)


def _train(cfg, run_dir, resume, devices):
    backend = backends.get()
    info = check_data(cfg)
    strategy = backend.make_strategy(cfg.gpus, devices)
    replicas = strategy.num_replicas_in_sync
    batches = {schedule.phase_at(cfg, 0).batch, cfg.batch}
    batches |= {b for _, b in cfg.minibatch_schedule}
    for b in sorted(batches):
        if b % replicas:
            raise UserError(
                f"batch {b} must be a multiple of the {replicas} replicas"
            )
    state = backend.build_state(cfg, strategy)
    print(
        f"G {networks.count_params(state.G):,} parameters, "
        f"D {networks.count_params(state.D):,} parameters, "
        f"{replicas} replica(s), backend {backend.NAME}, "
        f"device {backend.device_name()}"
    )
    sched = Schedule(backend, state, cfg, info, strategy)
    cur_nimg, step = 0, 0
    if resume:
        data = snapshot.load(resume)
        restore(state, data, resume)
        cur_nimg, step = int(data["cur_nimg"]), int(data["step"])
        sched.resume(data)
        print(f"Resumed from '{resume}' at kimg {cur_nimg / 1000:.1f}")

    grid = grid_shape(cfg)
    grid_z = np.random.RandomState(cfg.seed).randn(grid[0] * grid[1], cfg.z_dim)
    grid_z = grid_z.astype(np.float32)
    reals_path = os.path.join(run_dir, "reals.png")
    if not os.path.exists(reals_path):
        reals = load_images(info, grid[0] * grid[1])
        images.write_grid(reals_path, reals, grid)

    stats = StatsCollector(run_dir)
    tick = 0
    tick_start_nimg = cur_nimg
    start_time = tick_start_time = time.time()
    maintenance = 0.0
    skipped_in_a_row = 0
    total_nimg = int(cfg.total_kimg * 1000)
    phase = schedule.phase_at(cfg, cur_nimg)
    sched.enter(phase, step)
    if cur_nimg == 0 or resume:
        save_fake_grids(run_dir, state.Gs, grid_z, cfg, cur_nimg // 1000)
    final_path = os.path.join(run_dir, "network-final.pkl")
    saved = {}  # step -> path of the snapshot written at that step

    def save(path):
        data = snapshot_data(state, cfg, cur_nimg, step, sched.position())
        snapshot.save(path, data)
        saved[step] = path

    def save_snapshot(keep_earlier=False):
        # NVlabs' names: a tick snapshot in the kimg of an earlier one
        # replaces it (only sub-kimg ticks do that). A stop's snapshot
        # keeps the earlier one and its metrics (snapshot_name).
        taken = {os.path.basename(p) for p in saved.values()}
        name = snapshot.snapshot_name(cur_nimg, taken if keep_earlier else ())
        path = os.path.join(run_dir, name)
        save(path)
        return path

    stop = None  # the signal every process stops for, at the same step
    try:
        if cur_nimg == 0 and cfg.metrics:
            # The initial network is a curve's first point, as in NVlabs'
            # loops: snapshot 000000 and its metrics before the first step.
            path = save_snapshot()
            run_snapshot_metrics(cfg, path, run_dir, stats, cur_nimg)
        while cur_nimg < total_nimg:
            stop = backends.agree_stop(strategy, interrupt.requested())
            if stop:
                break
            phase = schedule.phase_at(cfg, cur_nimg)
            sched.enter(phase, step)
            out = sched.run(phase, step)
            stats.add(out)
            skipped = out["Progress/skipped_D"] + out["Progress/skipped_G"]
            skipped_in_a_row = skipped_in_a_row + 1 if skipped else 0
            if skipped:
                why = _skip_reason(state)
                if why is not None:
                    skipped_in_a_row = 0
                print(f"step {step}: non-finite update skipped{why or ''}")
            if skipped_in_a_row > cfg.max_skipped_steps:
                raise UserError(
                    f"training diverged: {skipped_in_a_row} steps in a row "
                    "had non-finite losses or gradients; lower --lr or "
                    "resume from an earlier snapshot"
                )
            cur_nimg += phase.batch
            step += 1
            done = cur_nimg >= total_nimg
            tick_nimg = phase.tick_kimg * 1000
            if not done and cur_nimg < tick_start_nimg + tick_nimg:
                continue
            # Tick: report, then image and network snapshots.
            tick += 1
            now = time.time()
            tick_time = now - tick_start_time
            sec_per_kimg = tick_time / max(cur_nimg - tick_start_nimg, 1) * 1e3
            mem = backend.peak_memory_gb()
            lod = ""
            if cfg.progressive:
                lod = f"lod {phase.lod:<5.2f} res {phase.resolution:<4d} "
                state.G.lod.assign(schedule.phase_at(cfg, cur_nimg).lod)
                state.Gs.lod.assign(state.G.lod.numpy())
            print(
                f"tick {tick:<5d} kimg {cur_nimg / 1000:<8.1f} {lod}"
                f"minibatch {phase.batch:<4d} "
                f"time {format_time(now - start_time):<9} "
                f"sec/tick {tick_time:<7.1f} sec/kimg {sec_per_kimg:<7.2f} "
                f"maintenance {maintenance:<6.1f} mem {mem:.2f}",
                flush=True,
            )
            m_start = time.time()
            kimg = cur_nimg // 1000
            extra = {
                "Progress/kimg": cur_nimg / 1000,
                "Progress/tick": tick,
                "Progress/lod": phase.lod,
                "Progress/resolution": phase.resolution,
                "Progress/minibatch": phase.batch,
                "Progress/lr": phase.lr,
                "Timing/step_traces": sched.compiled.traces,
                "Timing/sec_per_tick": tick_time,
                "Timing/sec_per_kimg": sec_per_kimg,
                "Timing/maintenance_sec": maintenance,
                "Resources/peak_mem_gb": mem,
            }
            if (done or tick % cfg.image_snapshot_ticks == 0) and not (
                interrupt.requested()
            ):
                extra.update(
                    save_fake_grids(run_dir, state.Gs, grid_z, cfg, kimg)
                )
            stats.report(cur_nimg / 1000, extra)
            if not done and tick % cfg.network_snapshot_ticks == 0:
                path = save_snapshot()
                run_snapshot_metrics(cfg, path, run_dir, stats, cur_nimg)
            tick_start_nimg, tick_start_time = cur_nimg, time.time()
            maintenance = tick_start_time - m_start
    except interrupt.StopRequested:
        # A metric was abandoned; the snapshot below is what counts. The
        # other processes meet this agreement at the top of their loop.
        stop = backends.agree_stop(strategy, interrupt.requested())
    except BaseException:
        stats.close()
        raise
    stop = stop or interrupt.requested()
    try:
        if stop:
            path = saved.get(step)
            if path is None:
                path = save_snapshot(keep_earlier=True)
            print(
                f"Stopped by {stop} at kimg "
                f"{cur_nimg / 1000:.1f} (step {step}): wrote '{path}'; "
                f"continue with --resume={path} (or --resume=latest)",
                flush=True,
            )
            return path
        save(final_path)
        try:
            run_snapshot_metrics(cfg, final_path, run_dir, stats, cur_nimg)
        except interrupt.StopRequested:
            print(f"Stopped by {interrupt.requested()}: final metrics skipped")
        print(f"Exiting: wrote '{final_path}'")
        return final_path
    finally:
        stats.close()


def run_snapshot_metrics(cfg, path, run_dir, stats, cur_nimg):
    """Metrics scheduled at network snapshots (`--metrics`)."""
    if not cfg.metrics:
        return
    from metrics import metric_main

    # The run's GPUs generate and extract features, a batch each.
    gpus = cfg.gpus or backends.get().num_gpus()
    devices = [f"gpu:{i}" for i in range(gpus)] if gpus > 1 else None
    for name in cfg.metrics:
        result = metric_main.evaluate_snapshot(
            name,
            path,
            data=cfg.data,
            mirror=cfg.mirror,
            run_dir=run_dir,
            resize=cfg.fid_resize,
            devices=devices,
        )
        stats.scalars({f"Metrics/{name}": result.value}, cur_nimg / 1000)


def save_config(cfg, run_dir):
    with open(os.path.join(run_dir, "config.json"), "w") as f:
        f.write(cfg.to_json() + "\n")
    return json.loads(cfg.to_json())

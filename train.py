"""Train MSG-StyleGAN (or the StyleGAN baseline) from a named config.

python train.py --config=msg-stylegan-ffhq --data=datasets/ffhq --gpus=4
"""

import argparse
import glob
import os
import shutil
import sys
import tempfile

import config as config_lib
from dnnlib import hardware, interrupt
from dnnlib.util import (
    Logger,
    UserError,
    add_verbose_flag,
    arg_bool,
    arg_positive,
    next_run_dir,
    quiet_framework_logs,
    run_cli,
)
from metrics import RESIZE_MODES

EPILOG = r"""examples:
  # the offline CPU demo on the built-in synthetic set
  python -m datasets.dataset_tool create_synthetic data/synthetic32
  python train.py --config=msg-stylegan-demo --data=data/synthetic32

  # FFHQ at 1024 on 4 GPUs, global batch 16 (the original setting)
  python train.py --config=msg-stylegan-ffhq --data=data/ffhq --gpus=4

  # resume the newest snapshot of the newest run of that config
  python train.py --config=msg-stylegan-ffhq --data=data/ffhq --resume=latest

  # several hosts: set TF_CONFIG on each (see README), same command on all

  # several hosts on the JAX backend: one process each, process 0's host
  # as coordinator (in a SLURM step: no flags, JAX reads SLURM's variables)
  python train.py --backend=jax --config=msg-stylegan-ffhq --data=data/ffhq \
      --coordinator=host0:12345 --num-processes=2 --process-id=0

  # the same training on Keras' JAX backend (GPUs through JAX, no TF needed)
  python train.py --backend=jax --config=msg-stylegan-demo \
      --data=data/synthetic32
"""

BACKENDS = ("tensorflow", "jax")


def select_backend(argv):
    """Set KERAS_BACKEND from --backend before anything imports Keras.

    Keras reads the variable once, at its first import, so this runs
    before anything could import it.
    """
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--backend", choices=BACKENDS)
    known, _ = pre.parse_known_args(argv)
    if known.backend is None:
        return
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != known.backend:
            raise UserError(
                f"--backend={known.backend}: Keras was already imported "
                f"with the {keras.backend.backend()} backend"
            )
    os.environ["KERAS_BACKEND"] = known.backend


def arg_xla(text):
    """--xla: a boolean word (on/off, true/false, 1/0) or 'elementwise'."""
    if str(text).lower() == "elementwise":
        return "elementwise"
    try:
        return "on" if arg_bool(text) else "off"
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected on, off or elementwise, got '{text}'"
        ) from None


def _metrics(text):
    return tuple(m for m in text.split(",") if m) if text != "none" else ()


def build_parser():
    """The flags; their choices come from framework-free lists (config.py,
    metrics/__init__.py), so --help and flag errors load no framework."""
    p = argparse.ArgumentParser(
        prog="train.py",
        description="Train MSG-StyleGAN or the StyleGAN baseline.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("run")
    g.add_argument(
        "--config",
        metavar="NAME",
        required=True,
        help="named config, e.g. msg-stylegan-ffhq (an unknown name lists "
        "them all)",
    )
    g.add_argument(
        "--data",
        metavar="DIR",
        help="dataset directory of multi-resolution TFRecords",
    )
    g.add_argument(
        "--outdir",
        metavar="DIR",
        default="results",
        help="where run directories are made (default: %(default)s)",
    )
    g.add_argument(
        "--resume",
        metavar="PATH|latest",
        help="snapshot .pkl to continue from, or 'latest' for the newest "
        "snapshot of this config under --outdir (default: none)",
    )
    g.add_argument(
        "--dry-run",
        action="store_true",
        help="print the resolved config and exit (default: off)",
    )
    add_verbose_flag(g)
    t = p.add_argument_group("training (overrides of the config)")
    t.add_argument(
        "--gpus",
        metavar="N",
        type=int,
        help="GPUs to use, 0 = all visible (default: config's, 0)",
    )
    t.add_argument(
        "--batch",
        metavar="N",
        type=arg_positive(int),
        help="global batch size (default: config's)",
    )
    t.add_argument(
        "--kimg",
        metavar="KIMG",
        type=arg_positive(float),
        help="training length in thousands of real images (default: config's)",
    )
    t.add_argument(
        "--tick",
        metavar="KIMG",
        type=arg_positive(float),
        help="kimg per tick line (default: config's)",
    )
    t.add_argument(
        "--snap",
        metavar="TICKS",
        type=arg_positive(int),
        help="network snapshot every TICKS ticks (default: config's)",
    )
    t.add_argument(
        "--seed",
        metavar="N",
        type=int,
        help="random seed (default: config's, 0)",
    )
    t.add_argument(
        "--mirror",
        metavar="BOOL",
        type=arg_bool,
        help="random x-flips of the reals (default: config's)",
    )
    t.add_argument(
        "--loss",
        metavar="NAME",
        choices=config_lib.LOSSES,
        help="one of %(choices)s (default: config's, logistic)",
    )
    t.add_argument(
        "--r1-gamma",
        "--gamma",
        metavar="GAMMA",
        type=float,
        dest="r1_gamma",
        help="R1 weight (default: config's, 10)",
    )
    t.add_argument(
        "--combine",
        metavar="NAME",
        choices=config_lib.COMBINES,
        help="how an MSG discriminator joins each scale's image, one of "
        "%(choices)s (default: config's)",
    )
    t.add_argument(
        "--mbstd",
        metavar="WHERE",
        choices=config_lib.MBSTD_PLACEMENTS,
        help="minibatch stddev in D: auto (the architecture's place), every "
        "block, or the 4x4 block only (default: config's, auto)",
    )
    t.add_argument(
        "--lr",
        metavar="LR",
        type=arg_positive(float),
        help="Adam learning rate for G and D (default: config's)",
    )
    t.add_argument(
        "--metrics",
        metavar="LIST",
        type=_metrics,
        help="metrics at each network snapshot, comma separated, "
        "or 'none' (default: config's, none)",
    )
    t.add_argument(
        "--fid-resize",
        metavar="MODE",
        choices=RESIZE_MODES,
        help="resize to 299x299 for --metrics: tf1 (as the published FIDs) "
        "or half-pixel (pytorch-fid's) (default: config's, tf1)",
    )
    t.add_argument(
        "--backend",
        metavar="NAME",
        choices=BACKENDS,
        help="Keras backend, one of %(choices)s; sets KERAS_BACKEND "
        "(default: $KERAS_BACKEND, else tensorflow)",
    )
    t.add_argument(
        "--xla",
        metavar="MODE",
        type=arg_xla,
        help="on: XLA compiles the TensorFlow step; off: op by op; "
        "elementwise: XLA fuses the elementwise ops and TensorFlow's kernels "
        "run the convolutions (bf16 on CPUs with AMX) (default: config's, on)",
    )
    t.add_argument(
        "--mixed-precision",
        metavar="MODE",
        choices=config_lib.PRECISIONS,
        help="one of %(choices)s; fp16 with dynamic loss scaling "
        "(default: config's, off)",
    )
    j = p.add_argument_group(
        "processes (--backend=jax on several hosts; all three, or none)"
    )
    j.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        help="process 0's host and a free port there, the same on every "
        "process (default: none; in a SLURM step of several tasks JAX "
        "finds it)",
    )
    j.add_argument(
        "--num-processes",
        metavar="N",
        type=arg_positive(int),
        help="processes in the job, usually one per host (default: 1, or "
        "SLURM's task count)",
    )
    j.add_argument(
        "--process-id",
        metavar="I",
        type=int,
        help="this process, 0 to N-1; process 0 writes the run "
        "(default: 0, or SLURM_PROCID)",
    )
    return p


def resolve_config(args):
    cfg = config_lib.get_config(args.config)
    cfg = config_lib.override(
        cfg,
        data=os.path.abspath(args.data) if args.data else None,
        gpus=args.gpus,
        batch=args.batch,
        total_kimg=args.kimg,
        kimg_per_tick=args.tick,
        network_snapshot_ticks=args.snap,
        seed=args.seed,
        mirror=args.mirror,
        loss=args.loss,
        r1_gamma=args.r1_gamma,
        combine=args.combine,
        mbstd=args.mbstd,
        lr=args.lr,
        metrics=args.metrics,
        fid_resize=args.fid_resize,
        xla=args.xla,
        mixed_precision=args.mixed_precision,
    )
    if cfg.xla == "elementwise" and hardware.keras_backend() == "jax":
        raise UserError(
            "--xla=elementwise is TensorFlow's; JAX compiles the whole step"
        )
    if cfg.metrics:
        from metrics.metric_main import check_metric_names

        check_metric_names(cfg.metrics)
    return cfg


def check_resume(cfg, path):
    """The snapshot loads and its networks are this config's, or a
    UserError before any run directory is made."""
    from msg_stylegan import snapshot

    data = snapshot.load(path)
    try:
        trained = config_lib.Config.from_json(data["config"])
    except (TypeError, ValueError) as e:
        raise UserError(f"--resume: snapshot '{path}' has a bad config: {e}")
    differ = config_lib.network_differences(cfg, trained)
    if differ:
        raise UserError(
            f"--resume: snapshot '{path}' has other networks: "
            + ", ".join(differ)
            + "; resume with the config and flags it was trained with"
        )


def find_latest(outdir, config_name):
    """The newest snapshot of the newest run of `config_name` in outdir."""
    from msg_stylegan.snapshot import snapshot_order

    runs = sorted(glob.glob(os.path.join(outdir, f"*-{config_name}-*")))
    for run in reversed(runs):
        snaps = sorted(
            glob.glob(os.path.join(run, "network-snapshot-*.pkl")),
            key=snapshot_order,
        )
        final = os.path.join(run, "network-final.pkl")
        if os.path.exists(final):
            return final
        if snaps:
            return snaps[-1]
    raise UserError(
        f"--resume=latest: no snapshot of config '{config_name}' under "
        f"'{outdir}'"
    )


def main(argv=None):
    select_backend(sys.argv[1:] if argv is None else argv)
    hardware.require_backend(hardware.keras_backend())
    args = build_parser().parse_args(argv)
    quiet_framework_logs(args.verbose)
    cluster = hardware.jax_cluster(
        hardware.keras_backend(),
        args.coordinator,
        args.num_processes,
        args.process_id,
    )
    cfg = resolve_config(args)
    if args.dry_run:
        print(cfg.to_json())
        return 0
    resume = args.resume
    if resume == "latest":
        resume = find_latest(args.outdir, cfg.name)
    elif resume and not os.path.isfile(resume):
        raise UserError(f"--resume: snapshot '{resume}' does not exist")
    # Validate the data before making a run directory.
    from training import training_loop

    training_loop.check_data(cfg)
    if cfg.metrics:
        # Find (or fetch) the Inception weights now, not at the first
        # snapshot an hour into the run.
        from metrics.inception import find_weights

        find_weights()
    if resume:
        check_resume(cfg, resume)
    from training import backends

    if cluster is not None:
        backends.get().connect(cluster)  # before JAX looks at its devices
    devices = backends.select_devices(cfg.gpus)
    index, workers, chief = hardware.worker(cluster=cluster)
    n = (len(devices.gpus) or 1) * workers
    kind = "gpu" if devices.gpus else "cpu"
    if chief:
        run_dir = next_run_dir(args.outdir, f"{cfg.name}-{n}{kind}")
    else:
        # Only the chief writes the run; the other workers compute, and
        # what they write goes to a folder removed at exit.
        run_dir = tempfile.mkdtemp(prefix=f"msg-stylegan-worker{index}-")
    try:
        training_loop.save_config(cfg, run_dir)
        # From here on SIGINT/SIGTERM stop the run with a snapshot.
        with interrupt.catching(), Logger(os.path.join(run_dir, "log.txt")):
            print("\n".join(devices.lines))
            if workers > 1:
                role = "chief, writes the run" if chief else "computes only"
                print(f"Worker {index} of {workers} ({role})")
            print(f"Run directory: {run_dir}")
            print(
                f"Training {cfg.name} on '{cfg.data}' for {cfg.total_kimg} kimg"
            )
            training_loop.training_loop(cfg, run_dir, resume=resume)
    finally:
        if not chief:
            shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))

"""Per-tick reduction of step statistics, `stats.jsonl` and TensorBoard."""

import json
import os

import numpy as np

# Per-scale statistics, `<prefix><res>x<res>`, plotted by compare.py.
# Mean |head - box-downsampled top image| of Gs's grid (training_loop).
CONSISTENCY = "Consistency/"
# Mean squared norm of R1's gradient with respect to D's input at that
# scale, on the steps that take R1 (step.d_objective): which scales D reads.
R1_SCALES = "Loss/D/r1/"


class StatsCollector:
    """Accumulates step statistics and reports per-tick means.

    Statistics use hierarchical names (`Loss/G/loss`, `Timing/sec_per_kimg`)
    and go to `stats.jsonl` (one JSON object per tick) and TensorBoard.
    """

    def __init__(self, run_dir=None):
        self.values = {}
        self.run_dir = run_dir
        self.writer = None
        if run_dir is not None:
            try:  # TensorBoard needs TensorFlow; JAX-only installs skip it.
                import tensorflow as tf
            except ImportError:
                return
            self.writer = tf.summary.create_file_writer(run_dir)

    def add(self, stats):
        for key, value in stats.items():
            self.values.setdefault(key, []).append(float(value))

    def means(self):
        return {k: float(np.mean(v)) for k, v in self.values.items() if v}

    def report(self, step_kimg, extra=None):
        """Write the tick's means (plus `extra`) and start a new tick."""
        row = {**self.means(), **(extra or {})}
        self.values = {}
        if self.run_dir is None:
            return row
        with open(os.path.join(self.run_dir, "stats.jsonl"), "a") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")
        self.scalars(row, step_kimg)
        return row

    def scalars(self, values, step_kimg):
        if self.writer is None:
            return
        import tensorflow as tf

        with self.writer.as_default():
            for key, value in values.items():
                tf.summary.scalar(key, value, step=int(step_kimg * 1000))
        self.writer.flush()

    def close(self):
        if self.writer is not None:
            self.writer.close()

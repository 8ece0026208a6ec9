"""training/rng.py: Threefry-2x32 in keras.ops, the draws of both backends.

This process runs Keras on TensorFlow; the 20-step run in
`test_backend_equivalence.py` checks that JAX draws the same numbers.
"""

import numpy as np
import pytest
from keras import ops

from training import rng


@pytest.mark.parametrize(
    "key, counter, expected",
    [
        # Random123's known-answer vectors for Threefry-2x32-20.
        ((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
        ((2**32 - 1,) * 2, (2**32 - 1,) * 2, (0x1CB996FC, 0xBB002BE7)),
        (
            (0x13198A2E, 0x03707344),
            (0x243F6A88, 0x85A308D3),
            (0xC4923A9C, 0x483DF7A0),
        ),
    ],
)
def test_threefry_known_answers(key, counter, expected):
    x0, x1 = (ops.convert_to_tensor(np.uint32([c])) for c in counter)
    out = rng.threefry2x32(key, x0, x1)
    assert tuple(int(ops.convert_to_numpy(w)[0]) for w in out) == expected


def test_the_step_index_dtype_does_not_change_the_numbers():
    # TF's step index is an int64 tensor, JAX's an int32 one.
    base = rng.key(3, 1)
    want = rng.uniform(rng.fold_in(base, 12), (16,))
    for step in (np.int64(12), np.int32(12)):
        got = rng.uniform(rng.fold_in(base, ops.convert_to_tensor(step)), (16,))
        np.testing.assert_array_equal(got, want)


def test_distributions_and_independence():
    key = rng.fold_in(rng.key(0, 0), 0)
    u = ops.convert_to_numpy(rng.uniform(key, (100_000,)))
    z = ops.convert_to_numpy(rng.normal(key, (200, 500)))
    assert u.dtype == z.dtype == np.float32
    assert 0 <= u.min() and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert abs(np.mean(z**4) - 3) < 0.1  # Gaussian tails
    # Element i is a function of (key, i) only: a longer draw extends a
    # shorter one; other keys (purpose, seed, step) give other numbers.
    np.testing.assert_array_equal(
        ops.convert_to_numpy(rng.uniform(key, (7,))), u[:7]
    )
    others = [rng.fold_in(rng.key(0, 0), 1), rng.fold_in(rng.key(0, 1), 0)]
    others.append(rng.fold_in(rng.key(1, 0), 0))
    for other in others:
        v = ops.convert_to_numpy(rng.uniform(other, (1000,)))
        assert abs(np.corrcoef(u[:1000], v)[0, 1]) < 0.1

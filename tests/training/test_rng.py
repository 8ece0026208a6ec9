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
    want = rng.uniform(rng.key(3, 12), (16,), rng.stream(1))
    for step in (np.int64(12), np.int32(12)):
        key = rng.key(3, ops.convert_to_tensor(step))
        np.testing.assert_array_equal(
            rng.uniform(key, (16,), rng.stream(1)), want
        )


def test_a_draw_hashes_its_elements_under_the_step_key():
    # Elements 2j and 2j + 1 of stream s at step t of seed k are the two
    # words of Threefry((k, t), (j, s)): uniforms their top 24 bits,
    # normals Box-Muller's cosine and sine of them.
    key, s = rng.key(5, 9), rng.stream(2, 1)
    words = rng.threefry2x32(
        (5, 9), np.uint32([0, 1, 2]), np.full(3, (2 << 16) | 1, np.uint32)
    )
    u0, u1 = ((ops.convert_to_numpy(w) >> 8) / 2**24 for w in words)
    want_u = np.stack([u0, u1], axis=-1).reshape(-1)[:5]
    got_u = ops.convert_to_numpy(rng.uniform(key, (5,), s))
    np.testing.assert_array_equal(got_u, want_u.astype(np.float32))
    radius, angle = np.sqrt(-2 * np.log(1 - u0)), 2 * np.pi * u1
    want_z = np.stack([radius * np.cos(angle), radius * np.sin(angle)], -1)
    got_z = ops.convert_to_numpy(rng.normal(key, (2, 3), s))
    np.testing.assert_allclose(got_z, want_z.reshape(2, 3), rtol=1e-5)


def test_streams_are_named_within_range():
    assert rng.stream(3) == 3 << 16 and rng.stream(3, 4) == (3 << 16) | 4
    for bad in ((2**16, 0), (0, 2**16), (-1, 0)):
        with pytest.raises(ValueError, match="below 2\\*\\*16"):
            rng.stream(*bad)


def test_distributions_and_independence():
    key, first = rng.key(0, 0), rng.stream(0)
    u = ops.convert_to_numpy(rng.uniform(key, (100_000,), first))
    z = ops.convert_to_numpy(rng.normal(key, (200, 500), first))
    assert u.dtype == z.dtype == np.float32
    assert 0 <= u.min() and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert abs(np.mean(z**4) - 3) < 0.1  # Gaussian tails
    # Element i is a function of (key, stream, i) only: a longer draw
    # extends a shorter one; another step, seed, purpose or index gives
    # other numbers, uncorrelated.
    np.testing.assert_array_equal(
        ops.convert_to_numpy(rng.uniform(key, (7,), first)), u[:7]
    )
    np.testing.assert_allclose(  # the last place: vector vs scalar sin
        ops.convert_to_numpy(rng.normal(key, (3, 3), first)),
        z.reshape(-1)[:9].reshape(3, 3),
        rtol=1e-6,
        atol=1e-6,
    )
    others = [
        (rng.key(0, 1), first),
        (rng.key(1, 0), first),
        (key, rng.stream(1)),
        (key, rng.stream(0, 1)),
    ]
    for other_key, other_stream in others:
        v = ops.convert_to_numpy(rng.uniform(other_key, (1000,), other_stream))
        assert abs(np.corrcoef(u[:1000], v)[0, 1]) < 0.1

"""Spectral normalisation (Miyato et al. 2018) that never writes the kernel."""

import keras
from keras import ops

from msg_stylegan.initializers import HostRandom


def _l2_normalize(x):
    return x * ops.rsqrt(ops.maximum(ops.sum(ops.square(x)), 1e-12))


class SpectralNorm(keras.layers.SpectralNormalization):
    """Spectral normalisation of a plain Keras Conv2D or Dense, functionally.

    Keras' own wrapper, in training, assigns W / sigma INTO the wrapped
    layer's trainable kernel: on TensorFlow the gradient then skips sigma
    and the stored weights are overwritten, while JAX's `stateless_call`
    drops assignments to trainable variables, so the two backends would
    train different models. This subclass never writes the kernel. Each
    training call runs `power_iterations` steps of power iteration on the
    stored unit vector `vector_u` and assigns only that (non-trainable, so
    `stateless_call` returns it on JAX; synchronised on read, so every
    replica of a distribution strategy updates its own copy, alike, from
    the same W). Every call, training or not, convolves with
    W / sigma, sigma = |W u| from the current u held constant, so the
    gradient passes through sigma (Miyato et al. 2018). With u converged,
    sigma is W's largest singular value; inference calls use the stored u
    without iterating.

    The wrapped layers keep Keras' default glorot-uniform initialisation:
    W / sigma does not depend on W's scale, which only sets how large
    Adam's fixed-size steps are relative to W, and glorot's std of about
    1 / sqrt(fan_in) is that of PyTorch's default conv initialisation used
    by the reference spectral-norm discriminator.

    Args:
        layer: a built or unbuilt `keras.layers.Conv2D` or `Dense`.
        power_iterations: int, power iterations per training call.
    """

    def build(self, input_shape):
        if not isinstance(
            self.layer, (keras.layers.Conv2D, keras.layers.Dense)
        ):
            raise ValueError(
                f"{self.name}: SpectralNorm wraps Conv2D or Dense, got "
                f"{type(self.layer).__name__}"
            )
        keras.layers.Wrapper.build(self, input_shape)
        self.kernel = self.layer.kernel
        self.kernel_shape = tuple(self.kernel.shape)
        # On-read synchronisation: under a tf.distribute strategy each
        # replica assigns its own copy inside the compiled step (no
        # cross-replica sync there); all compute the same u from the same W.
        with keras.name_scope(self.name, caller=self):
            self.vector_u = keras.Variable(
                HostRandom("truncated_normal", stddev=0.02),
                shape=(1, self.kernel_shape[-1]),
                dtype=self.kernel.dtype,
                trainable=False,
                aggregation="mean",
                synchronization="on_read",
                name="vector_u",
            )

    def normalized_kernel(self, training=False):
        """(W / sigma, new u): the kernel to use and the u to store."""
        kernel = self.layer.kernel
        w = ops.reshape(kernel, (-1, self.kernel_shape[-1]))  # [fan_in, out]
        u = _l2_normalize(ops.cast(self.vector_u, w.dtype))  # [1, out]
        if training:
            for _ in range(self.power_iterations):
                v = _l2_normalize(ops.matmul(u, ops.transpose(w)))  # [1, in]
                u = _l2_normalize(ops.matmul(v, w))  # [1, out]
        u = ops.stop_gradient(u)
        sigma = ops.sqrt(ops.sum(ops.square(ops.matmul(w, ops.transpose(u)))))
        return kernel / sigma, u

    def call(self, inputs, training=False):
        kernel, u = self.normalized_kernel(training)
        if training:
            self.vector_u.assign(ops.cast(u, self.vector_u.dtype))
        layer = self.layer
        if isinstance(layer, keras.layers.Dense):
            x = ops.matmul(inputs, kernel)
        else:
            x = layer.convolution_op(inputs, kernel)
        if layer.use_bias:
            x = x + ops.cast(layer.bias, x.dtype)
        return layer.activation(x)

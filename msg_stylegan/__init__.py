"""MSG-StyleGAN networks and layers (keras.layers / keras.ops only)."""

"""Losses, training steps, the training loop and snapshots."""

"""Evaluation metrics: FID and KID on FID-Inception pool_3 features."""

"""The Gs moving average: half-life in images, as StyleGAN (SPEC section 4)."""


def ema_beta(global_batch, ema_kimg):
    """Per-step decay so that Gs halves its lag every `ema_kimg` thousand
    images: beta = 0.5 ** (global_batch / (ema_kimg * 1000))."""
    if ema_kimg <= 0:
        return 0.0
    return 0.5 ** (global_batch / (ema_kimg * 1000.0))


def gs_beta(cfg, global_batch):
    """The Gs decay of a step: `cfg.ema_beta` when set (the ProGAN family's
    fixed 0.999 per step), else from the half-life `cfg.ema_kimg`."""
    if cfg.ema_beta > 0:
        return float(cfg.ema_beta)
    return ema_beta(global_batch, cfg.ema_kimg)


def w_avg_update(w_avg, batch_mean, beta):
    """w_avg <- lerp(batch_mean, w_avg, beta), the truncation centre."""
    return batch_mean + (w_avg - batch_mean) * beta

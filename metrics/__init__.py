"""Evaluation metrics: FID and KID on FID-Inception pool_3 features.

The resize modes are named here so that CLIs list them without Keras.
"""

# How images are resized to 299x299 before the network (`--fid-resize`):
#   tf1         TF1's legacy ResizeBilinear (align_corners=False,
#               half_pixel_centers=False): source = destination * in / out.
#               The inception-2015-12-05 graph resized this way inside
#               itself, so TTUR, NVlabs' StyleGAN metrics and the published
#               FIDs (StyleGAN, MSG-GAN) used it. The default.
#   half-pixel  half-pixel centres, source = (destination + 0.5) * in / out
#               - 0.5: TF2's tf.image.resize bilinear and pytorch-fid. The
#               reference features and statistics in ../shared/data.
# Neither antialiases, so shrinking a large image only samples it.
RESIZE_MODES = ("tf1", "half-pixel")
DEFAULT_RESIZE = "tf1"

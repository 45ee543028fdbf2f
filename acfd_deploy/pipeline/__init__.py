"""The detection pipeline: loading, preprocessing, runner, post-processing, drawing."""

from acfd_deploy.pipeline.detector import DEFAULT_SCALE, MS_TEST_SCALES, Detections, Detector, DetectorConfig
from acfd_deploy.pipeline.draw import draw_detections
from acfd_deploy.pipeline.io import ImageLoadError, find_images, load_image
from acfd_deploy.pipeline.nms import batched_nms
from acfd_deploy.pipeline.postprocess import PostprocessConfig, postprocess
from acfd_deploy.pipeline.preprocess import preprocess_batch

__all__ = [
    "DEFAULT_SCALE",
    "MS_TEST_SCALES",
    "Detections",
    "Detector",
    "DetectorConfig",
    "ImageLoadError",
    "PostprocessConfig",
    "batched_nms",
    "draw_detections",
    "find_images",
    "load_image",
    "postprocess",
    "preprocess_batch",
]

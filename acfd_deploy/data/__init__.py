"""Data: iCartoonFace CSVs and the synthetic cartoon-face generator."""

from acfd_deploy.data.icartoon import Annotations, CsvIssue, check_inside, read_annotations, write_annotations
from acfd_deploy.data.synth import SynthConfig, generate_sample, sample_rng, synthetic_batch, write_dataset

__all__ = [
    "Annotations",
    "CsvIssue",
    "SynthConfig",
    "check_inside",
    "generate_sample",
    "read_annotations",
    "sample_rng",
    "synthetic_batch",
    "write_annotations",
    "write_dataset",
]

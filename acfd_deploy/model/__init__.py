"""The ACFD network: training graph blocks, each able to fold itself."""

from acfd_deploy.model.detector import ACFD, TrainOutput, build_model

__all__ = ["ACFD", "TrainOutput", "build_model"]

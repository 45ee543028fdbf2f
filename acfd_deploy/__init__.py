"""acfd-deploy: ACFD from its training graph to fast, verified inference artifacts.

Public entry points (stable, used by tests outside this repository)::

    model = acfd_deploy.build_model("acfd-vovnetv3-51")   # training graph
    model = acfd_deploy.load_model("x.pth")                # training graph with weights
    fast = acfd_deploy.reparameterize(model)               # new module, eval mode
    boxes, scores = fast(images)                           # [B,N,4] xyxy px, [B,N]
"""

from acfd_deploy.checkpoint import load_model, save_checkpoint
from acfd_deploy.configs import ModelConfig, get_config, list_configs
from acfd_deploy.errors import AcfdError, CheckpointError, ConfigError, InputError
from acfd_deploy.model.detector import ACFD, build_model
from acfd_deploy.reparam import is_reparameterized, reparameterize

__version__ = "0.1.0"

__all__ = [
    "ACFD",
    "AcfdError",
    "CheckpointError",
    "ConfigError",
    "InputError",
    "ModelConfig",
    "__version__",
    "build_model",
    "get_config",
    "is_reparameterized",
    "list_configs",
    "load_model",
    "reparameterize",
    "save_checkpoint",
]

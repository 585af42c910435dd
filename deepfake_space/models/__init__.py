"""Model registry, architectures and loading. Importing this package registers every architecture."""

from deepfake_space.models import (  # noqa: F401  (imported to register their architectures)
    cross_efficient_vit,
    dsnet,
    efficientnet,
    ensemble,
    hf_vit,
    mobilenet,
    resnet8,
    temporal_vit,
)
from deepfake_space.models.detector import DeepfakeDetector
from deepfake_space.models.loading import load_detector, parse_model_spec, resolve_model_dir
from deepfake_space.models.registry import (build_network, default_config, list_models, load_init_weights,
                                             register_model)

__all__ = [
    "DeepfakeDetector",
    "build_network",
    "default_config",
    "list_models",
    "load_init_weights",
    "load_detector",
    "parse_model_spec",
    "register_model",
    "resolve_model_dir",
]

"""A timm-style registry: architecture name -> network builder + default config.

Each architecture module defines its network class, then one small ``@register_model`` function per
variant. ``create_detector(name)`` is the only place that turns a name into a model, so there is no
if/elif chain on model names anywhere else.
"""

from __future__ import annotations

from typing import Any, Callable

import torch.nn as nn

from deepfake_space.config import DetectorConfig

NetworkBuilder = Callable[..., nn.Module]

InitLoader = Callable[[nn.Module, str], None]

_builders: dict[str, NetworkBuilder] = {}
_default_cfgs: dict[str, DetectorConfig] = {}
_init_loaders: dict[str, InitLoader] = {}


def register_model(default_cfg: DetectorConfig,
                   init_loader: InitLoader | None = None) -> Callable[[NetworkBuilder], NetworkBuilder]:
    """Register ``fn`` under ``default_cfg.arch``; ``fn(**arch_args)`` returns the network.

    ``init_loader(net, path)``, if given, initialises the network from an ImageNet checkpoint file
    (training starts there; released weights never need it).
    """

    def wrap(fn: NetworkBuilder) -> NetworkBuilder:
        if default_cfg.arch in _builders:
            raise ValueError(f"architecture {default_cfg.arch!r} is registered twice")
        _builders[default_cfg.arch] = fn
        _default_cfgs[default_cfg.arch] = default_cfg
        if init_loader is not None:
            _init_loaders[default_cfg.arch] = init_loader
        return fn

    return wrap


def load_init_weights(arch: str, net: nn.Module, path: str) -> None:
    """Initialise ``net`` (of architecture ``arch``) from an ImageNet checkpoint."""
    if arch not in _init_loaders:
        raise KeyError(f"{arch!r} has no ImageNet initialiser; those that do: {sorted(_init_loaders)}")
    _init_loaders[arch](net, path)


def list_models() -> list[str]:
    return sorted(_builders)


def default_config(arch: str, **overrides: Any) -> DetectorConfig:
    """The registered config of ``arch`` with ``overrides`` applied (arch_args are merged)."""
    if arch not in _default_cfgs:
        raise KeyError(f"unknown architecture {arch!r}; registered: {', '.join(list_models())}")
    cfg = _default_cfgs[arch]
    arch_args = {**cfg.arch_args, **overrides.pop("arch_args", {})}
    return cfg.replace(arch_args=arch_args, **overrides)


def build_network(config: DetectorConfig) -> nn.Module:
    if config.arch not in _builders:
        raise KeyError(f"unknown architecture {config.arch!r}; registered: {', '.join(list_models())}")
    return _builders[config.arch](**config.arch_args)

"""Memristive device models. Built-ins and plugins are found through the entry-point group
``crossbar_sim.device_models`` (a name mapped to a :class:`~device_models.base.DeviceModel` subclass)."""
from __future__ import annotations

from importlib.metadata import entry_points

from device_models.base import DeviceModel, DeviceModelError, DeviceParams
from device_models.ecram import ECRAM
from device_models.exp_step import ExpStep
from device_models.fefet import FeFET
from device_models.ideal import Ideal
from device_models.linear_step import LinearStep
from device_models.lookup import Lookup
from device_models.pcm import PCM
from device_models.pow_step import PowStep
from device_models.soft_bounds import SoftBounds

from device_models.registry import ENTRY_POINT_GROUP, field_docs, validate
from device_models.registry import registry as _registry

# The built-ins, so that a source tree without installed metadata still works; installed, they also come
# through the entry points and are validated like any plugin.
_BUILTINS = {cls.name: cls for cls in (Ideal, LinearStep, SoftBounds, ExpStep, PowStep, PCM, ECRAM, FeFET, Lookup)}


def registry() -> dict[str, type[DeviceModel]]:
    """All device models by name: the built-ins plus every installed plugin."""
    return _registry(_BUILTINS)


def get_model(name: str) -> type[DeviceModel]:
    models = registry()
    if name not in models:
        raise DeviceModelError(f"unknown device model {name!r}; known: {', '.join(sorted(models))}")
    return models[name]


__all__ = ["DeviceModel", "DeviceModelError", "DeviceParams", "get_model", "registry", "validate", "field_docs",
           "ENTRY_POINT_GROUP"]

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

ENTRY_POINT_GROUP = "crossbar_sim.device_models"
# Used when the package runs from a source tree without installed metadata.
_BUILTINS = {cls.name: cls for cls in (Ideal, LinearStep, SoftBounds, ExpStep, PowStep, PCM, ECRAM, FeFET, Lookup)}


def registry() -> dict[str, type[DeviceModel]]:
    """All device models by name: the built-ins plus every installed plugin."""
    models = dict(_BUILTINS)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _BUILTINS and ep.value.startswith("device_models."):
            continue
        cls = ep.load()
        if not (isinstance(cls, type) and issubclass(cls, DeviceModel)):
            raise DeviceModelError(f"plugin {ep.name!r} ({ep.value}): not a DeviceModel subclass")
        models[ep.name] = cls
    return models


def get_model(name: str) -> type[DeviceModel]:
    models = registry()
    if name not in models:
        raise DeviceModelError(f"unknown device model {name!r}; known: {', '.join(sorted(models))}")
    return models[name]


__all__ = ["DeviceModel", "DeviceModelError", "DeviceParams", "get_model", "registry", "ENTRY_POINT_GROUP"]

"""Finding and checking device models: built-ins and plugins come through one entry-point group.

A plugin package declares, in its ``setup.cfg``::

    [options.entry_points]
    crossbar_sim.device_models =
        my_device = my_package.module:MyDevice

Every model, built-in or not, is checked when it is registered; a bad one raises
:class:`~device_models.base.DeviceModelError` naming the plugin and what is wrong.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import textwrap
from importlib.metadata import entry_points

from device_models.base import DeviceModel, DeviceModelError, DeviceParams

ENTRY_POINT_GROUP = "crossbar_sim.device_models"


def field_docs(params_cls) -> dict[str, str]:
    """The docstring under each field of a parameter dataclass (and of its bases), by field name."""
    docs: dict[str, str] = {}
    for klass in reversed(params_cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body
        for node, nxt in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(nxt, ast.Expr)
                    and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def validate(cls, source: str) -> None:
    """Check that ``cls`` is a usable device model; ``source`` names it in the error."""
    def fail(problem):
        raise DeviceModelError(f"device model plugin {source}: {problem}")

    if not (isinstance(cls, type) and issubclass(cls, DeviceModel)):
        fail("is not a subclass of device_models.base.DeviceModel")
    if not isinstance(getattr(cls, "name", None), str) or not cls.name:
        fail("has no `name`")
    params_cls = cls.params_cls
    if not (dataclasses.is_dataclass(params_cls) and issubclass(params_cls, DeviceParams)):
        fail("params_cls must be a dataclass derived from DeviceParams")
    fields = {f.name for f in dataclasses.fields(params_cls)}
    missing = [name for name in cls.shape_params if name not in fields]
    if missing:
        fail(f"shape_params {missing} are not fields of {params_cls.__name__}")
    undocumented = sorted(fields - set(field_docs(params_cls)))
    if undocumented:
        fail(f"fields without a docstring (state the unit): {', '.join(undocumented)}")
    if cls.levels not in ("exact", "sweep", "mid_step"):
        fail(f"levels must be 'exact', 'sweep' or 'mid_step', got {cls.levels!r}")
    try:
        model = cls()
    except DeviceModelError as exc:
        fail(f"its default parameters are invalid ({exc})")
    except Exception as exc:  # noqa: BLE001 - any failure of third-party code is reported, not raised raw
        fail(f"cannot be constructed with default parameters ({type(exc).__name__}: {exc})")
    if not cls.ideal and not hasattr(model.pulse, "py_func"):
        fail("`pulse` must be a numba.njit-compiled function (pulse(g, n, P, k, write_noise, key, index) -> g)")


@functools.lru_cache(maxsize=1)
def _entry_point_models() -> dict[str, type[DeviceModel]]:
    models = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        source = f"{ep.name!r} ({ep.value})"
        try:
            cls = ep.load()
        except Exception as exc:  # noqa: BLE001
            raise DeviceModelError(f"device model plugin {source}: cannot be imported ({type(exc).__name__}: {exc})") from None
        validate(cls, source)
        if cls.name != ep.name:
            raise DeviceModelError(f"device model plugin {source}: registered as {ep.name!r} but named {cls.name!r}")
        models[ep.name] = cls
    return models


def registry(builtins: dict[str, type[DeviceModel]]) -> dict[str, type[DeviceModel]]:
    """All models by name: the built-ins (also found through the entry points when installed) and plugins."""
    return {**builtins, **_entry_point_models()}

"""Scenario YAML -> typed, validated configuration.

This is the only place where user input becomes configuration. Unknown keys and wrong types or values are
rejected here with the key path in the message (``hardware.device.bits: expected an integer from 1 to 16,
got 'four'``). Constructors store; :func:`bind` checks.
"""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

import device_models
from crossbar_sim.data import DATASETS, IMAGE_SHAPES, REGRESSION
from device_models.presets import PRESETS
from networks.activations import ACTIVATIONS, make_activation
from networks.conv_net import conv_net


class ConfigError(ValueError):
    """A scenario problem; the message starts with the key path."""


def spec(default=dataclasses.MISSING, *, lo=None, hi=None, choices=None, lo_open=False, hi_open=False,
         empty_ok=False):
    """A dataclass field with its allowed range or choices (checked by :func:`bind`); a list field is
    non-empty unless ``empty_ok``."""
    meta = {"lo": lo, "hi": hi, "choices": choices, "lo_open": lo_open, "hi_open": hi_open, "empty_ok": empty_ok}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DataConfig:
    name: str = spec("digits", choices=DATASETS)
    batch_size: int = spec(32, lo=1)
    test_fraction: float = spec(0.2, lo=0.0, hi=1.0, lo_open=True)
    dir: str | None = None
    train_limit: int | None = spec(None, lo=1)
    test_limit: int | None = spec(None, lo=1)  # first N test samples only, for quick probes
    eval_batch_size: int = spec(500, lo=1)
    # augmentation of the training batches (image sets only; crossbar_sim/augment.py): random translations by
    # up to ``shift`` pixels along each axis with zero fill, and left-right flips with probability 1/2
    shift: int = spec(0, lo=0)
    flip: bool = False


IMAGE_NETS = ("hopfield_resnet", "conv_net")  # kinds built on image-shaped inputs; sizes are [inputs, classes]


@dataclass
class NetworkConfig:
    """``layered``: each layer joined to the next. ``small_world`` (Gammell et al. 2021): the layered
    connections rewired with probability ``p`` into layer-skipping ones (``rewiring: rewire``), or ``p`` times
    as many layer-skipping connections added (``rewiring: add``); the topology is drawn from the run's seed.
    ``hopfield_resnet`` (Elayedam & Srinivasan): one residual block of convolutional layers per entry of
    ``channels`` on ``image``-shaped inputs (C, H, W), then a dense head; ``sizes`` is then [inputs, classes]
    and ``skips: false`` gives the same depth without the skips. ``conv_net`` (Laborieux et al. 2021): one
    convolutional layer per entry of ``channels`` (``kernel`` x ``kernel``, ``stride``, ``padding``), each coupled
    through a ``pool`` x ``pool`` max-pool (only the ``pool_layers``, 1-based, when given: a VGG-style stack),
    then a dense head; ``sizes`` is [inputs, classes] there too."""

    kind: str = spec("layered", choices=("layered", "small_world", "hopfield_resnet", "conv_net"))
    sizes: list[int] = spec([64, 100, 10], lo=1)
    activation: str = spec("hard_sigmoid", choices=ACTIVATIONS)
    alpha: float | None = spec(None, lo=0.0, lo_open=True)
    p: float = spec(0.1, lo=0.0, hi=1.0)
    rewiring: str = spec("rewire", choices=("rewire", "add"))
    image: list[int] | None = spec(None, lo=1)
    channels: list[int] = spec([16, 32, 64, 64], lo=1)
    skips: bool = True
    kernel: int = spec(5, lo=1)
    padding: int = spec(0, lo=0)
    stride: int = spec(1, lo=1)  # conv_net: every convolution's stride
    pool: int = spec(2, lo=1)
    pool_layers: list[int] | None = spec(None, lo=1)  # conv_net: the layers that pool (None: every layer)
    # state layers (1 .. L - 1) that get an auxiliary softmax readout (intermediate error signals; needs
    # ep.loss: cross_entropy)
    aux: list[int] = spec([], lo=1, empty_ok=True)
    # multiplies the initial weights (Glorot bounds): deep networks with feedback and a wide box (relu6) relax
    # to saturated, slowly converging states at gain 1
    init_gain: float = spec(1.0, lo=0.0, lo_open=True)
    # multiplies the layer-skipping blocks' initial weights once more (the ResNet's skips, a small-world
    # network's skip connections): a deep ResNet may start with its 3x3 path weak and its skips strong
    skip_gain: float = spec(1.0, lo=0.0, lo_open=True)


@dataclass
class DistillConfig:
    """Knowledge distillation: the cross-entropy readouts are nudged towards ``(1 - alpha) onehot(y) +
    alpha softmax(z / temperature)``, with ``z`` a teacher's logits of the training set (a ``.npy`` file of
    shape (training samples, classes), in the data set's order after ``data.train_limit``; the BP twin script
    writes one). None: hard targets."""

    logits: str | None = None
    temperature: float = spec(4.0, lo=0.0, lo_open=True)
    alpha: float = spec(0.5, lo=0.0, hi=1.0)


@dataclass
class EPConfig:
    estimator: str = spec("centered", choices=("one_sided", "random_sign", "centered"))
    beta: float = spec(0.5, lo=0.0, lo_open=True)
    loss: str = spec("mse", choices=("mse", "cross_entropy"))
    dynamics: str = spec("coordinate", choices=("euler", "fixed_point", "coordinate"))
    # The nudged phases' dynamics when they differ from the free phase's (None: the same). Gammell et al.
    # nudge with a few Euler steps from the free equilibrium, which do not converge; see the README.
    nudge_dynamics: str | None = spec(None, choices=("euler", "fixed_point", "coordinate"))
    free_steps: int = spec(20, lo=1)
    nudge_steps: int = spec(8, lo=1)
    tol: float = spec(1e-4, lo=0.0)
    eps: float = spec(0.5, lo=0.0, hi=1.0, lo_open=True)
    # Over-relaxation of the coordinate dynamics (projected block SOR, kernels.CFG_OMEGA): 1 is exact block
    # minimisation; below 2 the energy still never rises and the fixed points are the same (where the energy
    # is not convex a phase may end in another local minimum), often reached in far fewer steps when the
    # relaxation is slow.
    omega: float = spec(1.0, lo=0.0, hi=2.0, lo_open=True, hi_open=True)
    persistent: bool = False
    fail_delta: float = spec(0.5, lo=0.0, lo_open=True)
    # Intermediate error signals (Lin et al. 2025): the auxiliary readouts on network.aux layers nudge their
    # layers, and their losses count, aux_weight times the main readout's.
    aux_weight: float = spec(1.0, lo=0.0)
    distill: DistillConfig = field(default_factory=DistillConfig)


@dataclass
class TrainConfig:
    epochs: int = spec(10, lo=1)
    lr: Union[float, list[float]] = spec(0.1, lo=0.0)
    # SGD with momentum and weight decay on the write-back (see Trainer._step): the velocity is a digital
    # buffer beside each array, the decay reads the array's weights.
    momentum: float = spec(0.0, lo=0.0, hi=1.0)
    nesterov: bool = False
    weight_decay: float = spec(0.0, lo=0.0)
    # global L2 norm the batch's EP estimate (every block and bias row together) is scaled down to, before
    # weight decay and momentum (as torch's clip_grad_norm_ before SGD; the Hopfield-ResNet code clips at 1.0)
    clip_norm: Union[float, None] = spec(None, lo=0.0, lo_open=True)
    # each block's estimate scaled to the norm of the block's weights (as the array reads them; the bias row
    # left at the plain rate, as LARS leaves biases out) before weight decay and momentum, LARS's trust ratio
    # without its coefficient: the rate becomes the step's size relative to the weights, the same for a deep
    # block whose states are 1e-3 as for one whose states are 1. On a chip: two norms per array per batch,
    # computed digitally.
    relative_steps: bool = False
    # multiplier of the rate on every block's bias row (its estimate scaled before weight decay and momentum);
    # 1: the plain rate. With relative steps the bias rows keep the plain rate, and at a small state scale a
    # bias, driven by the bound, can outgrow what the weights bring and pin its units at a rail.
    bias_lr: float = spec(1.0, lo=0.0)
    # the blocks inside the dynamics (not the softmax readouts) step only along their weights' sphere: the
    # radial part of each step (along W, weight rows only) is removed before momentum, so their norms, and with
    # them the energy's coupling, stay near where they started while their directions learn. A deep energy
    # model's gradient raises its gain until the relaxation stops settling; this holds it. Digital: one dot
    # product and one norm per array per batch.
    keep_norm: bool = False
    # each block inside the dynamics keeps its largest singular value (of its weight rows as the array reads
    # them) at most this multiple of its initial one: after a write that exceeds it, the excess is written back
    # off along the top singular pair (-(s - cap) u v^T), once per write: where a second singular value has
    # passed the cap too, the block stays above it by that one's excess (each write takes off the largest
    # only; spectral_cap_pairs: all writes off every pair above the cap, and the cap holds). None: off. Holds
    # the energy's coupling, hence whether the relaxation settles, where keep_norm does not (weights that align
    # raise it at a fixed norm). A chip would find u, v by a few alternating forward and transposed reads of
    # the array (a power iteration, deflated for each further pair); the simulation takes an exact SVD and
    # does not count those reads.
    spectral_cap: Union[float, None] = spec(None, lo=0.0, lo_open=True)
    # which singular pairs spectral_cap writes off: top (the largest only; the default, and what every run in
    # benchmarks/ used) or all (each one above the cap)
    spectral_cap_pairs: str = spec("top", choices=("top", "all"))
    # after each batch's write, the largest eigenvalue of the states' coupling on the units the batch's free
    # phase left strictly inside the activation's box (the energy's Hessian there is I - D C D; median over the
    # batch's first few free states, Network.free_coupling_max) is held at most this value: above it, every
    # block between two state layers is scaled by cap / eigenvalue (biases and input blocks untouched). Keeps
    # the free state a minimum the relaxation contracts to. None: off. Networks without max-pooling only. A
    # chip would run the power iteration as forward and transposed reads gated by each unit's at-rail flag;
    # the simulation uses Lanczos on the weights as the arrays read them and does not count those reads.
    free_coupling_cap: Union[float, None] = spec(None, lo=0.0, lo_open=True)
    schedule: str = spec("constant", choices=("constant", "cosine"))  # of the learning rates, per epoch
    # the rates ramp up linearly over a run's first n batches: batch b (0-based, counted over the whole run)
    # writes at (b + 1) / n of its scheduled rate; 0: off. Early, large writes can drive a layer to a rail
    # it cannot leave; a chip scales the pulse counts of those batches, one digital factor per batch.
    warmup_batches: int = spec(0, lo=0)


@dataclass
class TileConfig:
    rows: int = spec(256, lo=1)
    cols: int = spec(256, lo=1)
    dac_bits: int = spec(8, lo=0, hi=24)
    adc_bits: int = spec(8, lo=0, hi=24)
    adc_range: float = spec(4.0, lo=0.0, lo_open=True)
    w_max: float = spec(1.0, lo=0.0, lo_open=True)


@dataclass
class ProgramConfig:
    method: str = spec("direct", choices=("direct", "write_verify"))
    tolerance: float = spec(1.0, lo=0.0)
    max_iterations: int = spec(30, lo=1)


@dataclass
class TimeConfig:
    """The simulated clock, which matters for drifting devices: seconds of chip time per training batch, and
    the delay between the end of training and a last test (0: no such test)."""

    batch_seconds: float = spec(1.0e-3, lo=0.0)
    eval_delay: float = spec(0.0, lo=0.0)


@dataclass
class UpdateConfig:
    """How the EP update reaches the devices: ``pulse_count`` (each pair's change counted into pulses by the
    periphery, rounded per ``rounding``) or ``pulse_trains`` (fully parallel stochastic row/column pulse
    streams of ``bl`` slots)."""

    rounding: str = spec("stochastic", choices=("round", "stochastic"))
    mode: str = spec("pulse_count", choices=("pulse_count", "pulse_trains"))
    bl: int = spec(31, lo=1, hi=64)


@dataclass
class EnergyConfig:
    """Energy per operation, for the run's energy estimate (all zero: no estimate). Per DAC conversion, per
    ADC conversion, per device sensed in one read, and per programming pulse, in pJ."""

    dac_pj: float = spec(0.0, lo=0.0)
    adc_pj: float = spec(0.0, lo=0.0)
    cell_read_pj: float = spec(0.0, lo=0.0)
    pulse_pj: float = spec(0.0, lo=0.0)

    @property
    def enabled(self) -> bool:
        return any((self.dac_pj, self.adc_pj, self.cell_read_pj, self.pulse_pj))


@dataclass
class DeviceConfig:
    """The device model's name and its parameters (bound against the model's own dataclass)."""

    model: str = "ideal"
    params: Any = None  # the model's parameter dataclass, filled by the binder
    preset: str | None = None

    def build(self) -> device_models.DeviceModel:
        return device_models.get_model(self.model)(self.params)


@dataclass
class HardwareConfig:
    device: DeviceConfig = field(default_factory=DeviceConfig)
    tile: TileConfig = field(default_factory=TileConfig)
    update: UpdateConfig = field(default_factory=UpdateConfig)
    time: TimeConfig = field(default_factory=TimeConfig)
    program: ProgramConfig = field(default_factory=ProgramConfig)
    energy: EnergyConfig = field(default_factory=EnergyConfig)


@dataclass
class Scenario:
    name: str = "scenario"
    seed: int = spec(0, lo=0)
    data: DataConfig = field(default_factory=DataConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    ep: EPConfig = field(default_factory=EPConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    compare_ideal: bool = True

    def check(self) -> None:
        """Cross-field rules that no single key can check."""
        sizes = self.network.sizes
        if self.network.kind in IMAGE_NETS:
            self._check_image_net()
        elif len(sizes) < (2 if self.ep.loss == "mse" else 3):
            raise ConfigError(f"network.sizes: the {self.ep.loss} loss needs at least "
                              f"{2 if self.ep.loss == 'mse' else 3} layers, got {sizes}")
        if (self.network.aux or self.ep.distill.logits) and self.ep.loss != "cross_entropy":
            key = "network.aux" if self.network.aux else "ep.distill.logits"
            raise ConfigError(f"{key}: auxiliary readouts and distillation act through softmax readouts; "
                              "use ep.loss: cross_entropy")
        if self.data.name in REGRESSION and self.ep.loss != "mse":
            raise ConfigError(f"ep.loss: {self.data.name} is a regression set; its output layer is a state nudged "
                              f"by the squared error, so use loss: mse, not {self.ep.loss}")
        self._check_augmentation()
        t = self.train
        shaped = (t.momentum > 0 or t.weight_decay > 0 or t.clip_norm or t.relative_steps or t.keep_norm
                  or t.bias_lr != 1.0)
        if (shaped or t.spectral_cap or t.free_coupling_cap) and self.hardware.update.mode == "pulse_trains":
            raise ConfigError("train.momentum / train.weight_decay / train.clip_norm / train.relative_steps / "
                              "train.bias_lr / train.keep_norm / train.spectral_cap / train.free_coupling_cap: pulse "
                              "trains write each phase's outer products directly, so there is no update to smooth, "
                              "decay, clip, scale or project; use update.mode: pulse_count")
        if t.clip_norm and t.relative_steps:
            raise ConfigError("train.clip_norm and train.relative_steps: relative steps set every block's norm, "
                              "so a global clip has nothing left to do; use one of them")
        if t.momentum >= 1.0:
            raise ConfigError(f"train.momentum: expected a value below 1, got {t.momentum}")
        if t.nesterov and t.momentum == 0:
            raise ConfigError("train.nesterov: needs train.momentum > 0")
        n_mats = len(self.network.channels) + 1 if self.network.kind == "conv_net" else len(sizes) - 1
        if isinstance(self.train.lr, list) and self.network.kind != "hopfield_resnet" and len(self.train.lr) != n_mats:
            raise ConfigError(f"train.lr: expected one rate per layer pair ({n_mats}: the matrix into each layer), "
                              f"got {len(self.train.lr)}")

    def _check_augmentation(self) -> None:
        d = self.data
        if not (d.shift or d.flip):
            return
        if d.name not in IMAGE_SHAPES:
            raise ConfigError(f"data.shift / data.flip: {d.name!r} is not an image data set (augmentation works "
                              f"on {', '.join(IMAGE_SHAPES)})")
        _, h, w = IMAGE_SHAPES[d.name]
        if d.shift >= min(h, w):
            raise ConfigError(f"data.shift: {d.shift} moves a {h}x{w} image off its frame; use at most {min(h, w) - 1}")

    def _check_image_net(self) -> None:
        net = self.network
        if net.image is None or len(net.image) != 3:
            raise ConfigError(f"network.image: {net.kind} needs the input's [channels, height, width], got {net.image}")
        c, h, w = net.image
        if len(net.sizes) != 2 or net.sizes[0] != c * h * w:
            raise ConfigError(f"network.sizes: {net.kind} takes [inputs, classes] with inputs = {c}x{h}x{w} = "
                              f"{c * h * w}, got {net.sizes}")
        n_layers = 2 * len(net.channels) + 1
        if isinstance(self.train.lr, list) and net.kind == "hopfield_resnet" and len(self.train.lr) != n_layers:
            raise ConfigError(f"train.lr: expected one rate per layer ({n_layers}: two per residual block and the "
                              f"head; a skip takes the rate of the layer it joins), got {len(self.train.lr)}")
        if net.kind == "conv_net":
            try:
                conv_net(tuple(net.image), net.channels, net.sizes[-1], make_activation("hard_sigmoid"),
                         kernel=net.kernel, padding=net.padding, pool=net.pool, pool_layers=net.pool_layers,
                         stride=net.stride)
            except ValueError as exc:
                raise ConfigError(f"network: {exc}") from None

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        dev = self.hardware.device
        out["hardware"]["device"] = {"model": dev.model, **dataclasses.asdict(dev.params)}
        return out


# ---- binding ----------------------------------------------------------------------------------------

_NOUNS = {int: ("an integer", "integers"), float: ("a number", "numbers"), bool: ("true or false", "booleans"),
          str: ("a string", "strings")}


def _describe(tp, meta) -> str:
    lo, hi, choices = meta.get("lo"), meta.get("hi"), meta.get("choices")
    if choices:
        return "one of " + ", ".join(map(str, choices))
    noun = _NOUNS[tp][0] if tp in _NOUNS else str(tp)
    lo = f"{lo:g}" if isinstance(lo, (int, float)) else lo
    hi = f"{hi:g}" if isinstance(hi, (int, float)) else hi
    if lo is not None and hi is not None:
        if not meta.get("lo_open") and not meta.get("hi_open"):
            return f"{noun} from {lo} to {hi}"
        return f"{noun} in {'(' if meta.get('lo_open') else '['}{lo}, {hi}{')' if meta.get('hi_open') else ']'}"
    if lo is not None:
        return f"{noun} > {lo}" if meta.get("lo_open") else f"{noun} >= {lo}"
    return noun


_YAML12_EXP_FLOAT = re.compile(r"^[-+]?(\.\d+|\d+(\.\d*)?)[eE][-+]?\d+$")


def _scalar(tp, value, path, meta):
    if tp is float and isinstance(value, str) and _YAML12_EXP_FLOAT.match(value):
        # PyYAML (YAML 1.1) reads 1e-3 as a string; YAML 1.2 and every user mean a number.
        value = float(value)
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[tp]
    if ok and tp in (int, float):
        lo, hi = meta.get("lo"), meta.get("hi")
        if lo is not None and (value < lo or (meta.get("lo_open") and value == lo)):
            ok = False
        if hi is not None and (value > hi or (meta.get("hi_open") and value == hi)):
            ok = False
        if tp is float and value != value:
            ok = False
    if ok and meta.get("choices") and value not in meta["choices"]:
        ok = False
    if not ok:
        raise ConfigError(f"{path}: expected {_describe(tp, meta)}, got {value!r}")
    return float(value) if tp is float else value


def _convert(tp, value, path, meta):
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, path, meta)
            except ConfigError as exc:
                errors.append(str(exc).split(": ", 1)[1])
        wanted = " or ".join(e.split(", got")[0].removeprefix("expected ") for e in errors)
        raise ConfigError(f"{path}: expected {wanted}, got {value!r}")
    if origin is list:
        (item,) = typing.get_args(tp)
        empty_ok = meta.get("empty_ok", False)
        if not isinstance(value, list) or not (value or empty_ok):
            kind = "a list" if empty_ok else "a non-empty list"
            raise ConfigError(f"{path}: expected {kind} of {_NOUNS[item][1]}, got {value!r}")
        return [_convert(item, v, f"{path}[{i}]", meta) for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        return bind(tp, value, path)
    return _scalar(tp, value, path, meta)


def bind(cls, data, path: str = ""):
    """Build the dataclass ``cls`` from a mapping, checking every key against its declared type and range."""
    if cls is DeviceConfig:
        return _bind_device(data, path)
    prefix = f"{path}." if path else ""
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'scenario'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            raise ConfigError(f"{prefix}{key}: unknown key; known keys here: {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], prefix + name, f.metadata)
        elif dataclasses.is_dataclass(hints[name]):
            kwargs[name] = bind(hints[name], {}, prefix + name)
    return cls(**kwargs)


def _bind_device(data, path):
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping, got {data!r}")
    data = dict(data)
    preset_name = data.pop("preset", None)
    if preset_name is not None:
        if preset_name not in PRESETS:
            raise ConfigError(f"{path}.preset: unknown preset {preset_name!r}; known: {', '.join(sorted(PRESETS))}")
        preset = PRESETS[preset_name]
        if data.get("model", preset.model) != preset.model:
            raise ConfigError(f"{path}.model: preset {preset_name!r} is a {preset.model!r} device, got {data['model']!r}")
        data = {**preset.values, **data}
        data["model"] = preset.model
    name = data.pop("model", "ideal")
    try:
        model_cls = device_models.get_model(name)
    except device_models.DeviceModelError as exc:
        raise ConfigError(f"{path}.model: {exc}") from None
    params_cls = model_cls.params_cls
    hints = typing.get_type_hints(params_cls)
    fields = {f.name for f in dataclasses.fields(params_cls)}
    for key in data:
        if key not in fields:
            raise ConfigError(f"{path}.{key}: unknown parameter of device model {name!r}; known: {', '.join(sorted(fields))}")
    meta = {f.name: f.metadata for f in dataclasses.fields(params_cls)}
    kwargs = {k: _convert(hints[k], v, f"{path}.{k}", meta[k]) for k, v in data.items()}
    params = params_cls(**kwargs)
    problems = params.check()
    if problems:
        key, message = problems[0]
        raise ConfigError(f"{path}.{key}: {message}")
    return DeviceConfig(model=name, params=params, preset=preset_name)


def device_from_mapping(name: str, values: dict) -> device_models.DeviceModel:
    """A device model from a model or preset name and parameter overrides (``crossbar-sim device show``)."""
    key = "preset" if name in PRESETS else "model"
    return _bind_device({key: name, **values}, "device").build()


def set_key(raw: dict, key: str, value) -> None:
    """Set the dotted ``key`` of the raw scenario mapping to ``value``, creating mappings on the way."""
    parts = key.strip().split(".")
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif isinstance(child, dict):
            child = node[part] = dict(child)  # never change a mapping the caller shares
        else:
            raise ConfigError(f"{'.'.join(parts[: i + 1])}: is not a mapping, cannot set {key}")
        node = child
    node[parts[-1]] = value


def apply_override(raw: dict, assignment: str) -> None:
    """Apply one ``--set key.path=value`` to the raw scenario mapping; the value is parsed as YAML."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment}: expected key.path=value")
    key, text = assignment.split("=", 1)
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: cannot parse value {text!r} ({exc.problem})") from None
    set_key(raw, key, value)


def read_yaml(path: str | Path) -> dict:
    """The mapping in a scenario file; unreadable files and bad YAML are ConfigErrors naming the file."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read scenario ({exc.strerror})") from None
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of scenario keys, got {type(raw).__name__}")
    return raw


def load_scenario(path: str | Path | None = None, overrides: list[str] = (), seed: int | None = None,
                  raw: dict | None = None) -> Scenario:
    """Read a scenario file (or a raw mapping), apply ``--set`` overrides and the seed, validate.

    A ``sweep:`` block is not part of one run's scenario: it is left to ``crossbar-sim sweep`` and ignored here.
    """
    raw = dict(read_yaml(path) if raw is None else raw)
    raw.pop("sweep", None)
    for assignment in overrides:
        apply_override(raw, assignment)
    if seed is not None:
        raw["seed"] = seed
    scenario = bind(Scenario, raw)
    scenario.check()
    return scenario


def same_scenario(saved: dict, resolved: dict) -> bool:
    """Whether a resolved scenario written earlier (a run's ``config.yaml``, a checkpoint's copy) describes the
    run ``resolved`` describes. The saved one is resolved again first, so keys added to the schema since, with
    defaults that keep old runs' behaviour, do not make an old run look like another scenario."""
    try:
        return load_scenario(raw=saved).to_dict() == resolved
    except ConfigError:
        return False

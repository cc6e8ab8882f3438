"""Loading experiment and search-space files, with one-line errors naming file and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from autoopt import plugins
from autoopt.config._experiment import Experiment
from autoopt.config._space import SearchSpace
from autoopt.errors import ConfigError
from autoopt.plugins import FAMILIES, NONE_METHOD, OPTIONAL_FAMILIES


def field_path(loc: tuple[Any, ...]) -> str:
    """('parameters', 'pruning.amount', 'low') -> 'parameters[pruning.amount].low'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "." in str(part) or (out.endswith("parameters") and part):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def format_validation_error(source: str, err: ValidationError) -> str:
    first = err.errors()[0]
    # Unions report one error per branch; the 'unknown field' one is the useful message.
    for e in err.errors():
        if e["type"] == "unknown_field":
            first = e
            break
    loc = tuple(p for p in first["loc"] if not _is_union_tag(p))
    msg = first["msg"]
    if first["type"] == "unknown_field":
        loc = loc  # the message already names the key and the allowed ones
    elif first["type"] == "missing":
        msg = "required field is missing"
    elif "input" in first and first["type"] not in ("value_error",):
        msg = f"{msg}; got {_short(first['input'])}"
    msg = msg.removeprefix("Value error, ")
    return f"{source}: {field_path(loc)}: {msg}"


def _is_union_tag(part: Any) -> bool:
    # pydantic puts the tried type into loc for unions, e.g. 'SearchSpace' or 'str'.
    return isinstance(part, str) and (part[:1].isupper() or part in ("str", "list[...]"))


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{path}: (top level): not a YAML text file: byte 0x{e.object[e.start]:02x} at "
            f"offset {e.start} is not UTF-8 text"
        ) from e
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read: {e.strerror or e}") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(parse)"
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}: {where}: not valid YAML: {problem}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: (top level): expected a mapping, got {type(data).__name__}")
    return data


def _validate(model: type[BaseModel], data: dict[str, Any], source: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(source, e)) from e


def load_search_space(path: str | Path) -> SearchSpace:
    path = Path(path)
    space = _validate(SearchSpace, read_yaml(path), str(path))
    check_space(space, str(path))
    return space


def load_experiment(path: str | Path) -> Experiment:
    """Load and fully validate an experiment, its search space and its plugins."""
    path = Path(path)
    data = read_yaml(path)
    space_ref = data.get("search_space")
    space_source = str(path)
    if isinstance(space_ref, str):
        space_path = (path.parent / space_ref).resolve()
        if not space_path.is_file():
            raise ConfigError(f"{path}: search_space: file not found: {space_ref}")
        data = {**data, "search_space": _validate(SearchSpace, read_yaml(space_path), space_ref)}
        space_source = _display(space_path)
    experiment: Experiment = _validate(Experiment, data, str(path))
    if not experiment.name:
        experiment = experiment.model_copy(update={"name": path.stem})
    experiment._source = path
    _import_plugins(experiment, str(path))
    check_space(experiment.space, space_source)
    check_experiment(experiment, str(path))
    return experiment


def _display(p: Path) -> str:
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def _import_plugins(experiment: Experiment, source: str) -> None:
    import importlib

    for i, module in enumerate(experiment.plugins):
        try:
            importlib.import_module(module)
        except Exception as e:  # noqa: BLE001 - any import failure is the user's to fix
            raise ConfigError(f"{source}: plugins[{i}]: cannot import '{module}': {e}") from e


def check_space(space: SearchSpace, source: str) -> None:
    """Every method named exists, every field belongs to its method and accepts its values."""
    for name, spec in space.parameters.items():
        where = f"{source}: parameters[{name}]"
        parts = name.split(".")
        family = parts[0]
        known = plugins.method_names(family)
        if len(parts) == 2:
            values = spec.choices if spec.kind == "categorical" else [spec.value]
            for v in values or []:
                if v == NONE_METHOD and family in OPTIONAL_FAMILIES:
                    continue
                if v not in known:
                    allowed = ([NONE_METHOD] if family in OPTIONAL_FAMILIES else []) + known
                    raise ConfigError(
                        f"{where}: unknown {family} method {v!r}; allowed: {', '.join(allowed)}"
                    )
            continue
        method, field = parts[1], parts[2]
        if method not in known:
            raise ConfigError(
                f"{where}: unknown {family} method '{method}'; allowed: {', '.join(known)}"
            )
        config_cls = plugins.get(f"{family}.{method}").Config
        fields = list(config_cls.model_fields)
        if field not in fields:
            from autoopt.config._strict import unknown_key_message

            raise ConfigError(
                f"{where}: {unknown_key_message(field, fields)} for {family}.{method}"
            )
        for value in spec.example_values():
            from autoopt.config._space import decode_choice

            try:
                config_cls.model_validate({field: decode_choice(spec, value)})
            except ValidationError as e:
                detail = e.errors()[0]["msg"].removeprefix("Value error, ")
                raise ConfigError(f"{where}: value {value!r} is not allowed: {detail}") from e
    for family in (f for f in FAMILIES if f not in OPTIONAL_FAMILIES):
        if f"{family}.method" not in space.parameters:
            raise ConfigError(
                f"{source}: parameters: '{family}.method' is required; allowed methods: "
                f"{', '.join(plugins.method_names(family))}"
            )


def check_experiment(experiment: Experiment, source: str) -> None:
    space = experiment.space
    if experiment.sampler.name == "grid":
        for name, spec in space.parameters.items():
            if not spec.is_finite:
                raise ConfigError(
                    f"{source}: sampler.name: 'grid' needs a finite space, but parameter "
                    f"'{name}' is a continuous range; give it a 'step' or 'choices'"
                )
    for i, seed in enumerate(experiment.seed_candidates):
        check_seed_candidate(space, seed.params, f"{source}: seed_candidates[{i}]")
    from autoopt.workloads import check_workload_ref

    check_workload_ref(experiment.workload.name, f"{source}: workload.name")


def check_seed_candidate(space: SearchSpace, params: dict[str, Any], where: str) -> None:
    """Every value is one the space allows, and every parameter active for it is given.

    A parameter the space fixes may be given another value (a standard recipe need not lie
    inside the searched space); the method's own config validates it.
    """
    from autoopt.config._space import encode_choice
    from autoopt.resolve import recipe_from_params

    for name, value in params.items():
        spec = space.parameters.get(name)
        if spec is None:
            raise ConfigError(f"{where}.params: '{name}' is not a parameter of the search space")
        if spec.kind == "categorical":
            allowed = [encode_choice(c) for c in spec.choices or []]
            if encode_choice(value) not in allowed:
                raise ConfigError(
                    f"{where}.params[{name}]: {value!r} is not one of {spec.choices}"
                )
        elif spec.kind in ("int", "float") and not spec.low <= value <= spec.high:  # type: ignore
            raise ConfigError(
                f"{where}.params[{name}]: {value!r} is outside [{spec.low}, {spec.high}]"
            )
    given: dict[str, Any] = {}
    for name, spec in space.parameters.items():
        if spec.kind == "fixed" or not space.is_active(name, given):
            continue
        if name not in params:
            raise ConfigError(
                f"{where}.params: '{name}' is active for this candidate and must be given, "
                "or the sampler would choose it"
            )
        given[name] = encode_choice(params[name])
    try:
        recipe_from_params(given, space, fixed=params)  # a seed may set what the space fixes
    except ConfigError as e:
        raise ConfigError(f"{where}.params: {e}") from e

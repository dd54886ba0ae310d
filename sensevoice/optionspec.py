"""The fields of ``model.DecodingOptions`` as the front doors see them: one ``Option`` per field, read from its
declaration in model.py (``option(default, help, **spec)``; the ``spec`` keys are listed below). The command
line's flags (``argtypes.add_decoding_arguments``), the service's form and WebSocket fields (``serve.fields``), the
batch job's settings and FunASR's kwargs (``DecodingOptions.from_kwargs``) all come from these, so a new option is
one field in model.py. ``spec`` keys:

    range=(low, high)          numbers: the accepted interval (high None: no upper bound)
    choices=, aliases=         strings: the accepted values, and other spellings of them ({alias: value})
    as_flag=(on, off)          a string the doors take as a yes/no flag (textnorm: ``--itn``, ``use_itn``)
    names={door: name}         a door's own spelling ("cli": "--itn", "form": HTTP form, "stream": WebSocket);
                               default: the field name (``--field-name`` on the command line)
    metavar=                   the command line's placeholder for the value
    per_request=True           the service takes it with each request only (no server-wide flag)
    doors=False                each door sets it from its input or output format: no flag or field of its own

Two readings of the one declaration: ``of_type(cls)`` from the dataclass itself (the service; tests pass a copy of
the type with a field added), ``declared()`` from model.py's source text, without importing torch (the command
line builds its parser and checks its values before any heavy import). tests/test_options.py checks they agree.

``sensevoice.diarize.DiarizationOptions`` is declared the same way (``DIARIZATION``: read from diarize.py's source,
whose names resolve to diarize.py's constants). Its fields may be optional (``int | None``: None, not given); the
type as a whole has a *switch* (``SWITCH``, a ClassVar: the yes/no a door asks for it with), because an options
object exists only when diarization is asked for: a door that gets neither the switch nor a field passes None.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Mapping

from sensevoice import REPO_ROOT

OPTIONS_CLASS = "DecodingOptions"
MODEL_SOURCE = "model.py"
DIARIZATION = ("sensevoice/diarize.py", "DiarizationOptions")  # (source file, class) of the diarization options
KINDS = ("bool", "int", "float", "str", "tuple")  # the field types DecodingOptions knows how to check
DOORS = ("cli", "form", "stream")  # the spellings a field may override with names={door: name}


@dataclass(frozen=True)
class Option:
    """One declared field of an options type (DecodingOptions, DiarizationOptions) or a switch: name, type (one of
    KINDS), default, help line and the rest of its spec."""

    name: str
    kind: str
    default: Any
    help: str
    spec: Mapping[str, Any]
    optional: bool = False  # declared ``kind | None``: None means not given (the type decides what that means)

    @property
    def exposed(self) -> bool:
        """Whether the doors take it (fs and output_timestamp are set by each door from its input or format)."""
        return self.spec.get("doors", True)

    @property
    def per_request(self) -> bool:
        return self.spec.get("per_request", False)

    def spelled(self, door: str) -> str:
        """Its name at a door (one of DOORS): ``--beam-size`` on the command line, ``beam_size`` in a form."""
        if door not in DOORS:
            raise ValueError(f"door={door!r}; expected one of {DOORS}")
        default = "--" + self.name.replace("_", "-") if door == "cli" else self.name
        return self.spec.get("names", {}).get(door, default)

    def from_flag(self, on: bool) -> Any:
        """The value of an ``as_flag`` field for a yes/no answer (textnorm: True -> "withitn")."""
        on_value, off_value = self.spec["as_flag"]
        return on_value if on else off_value

    def as_flag(self, value: Any) -> bool:
        return value == self.spec["as_flag"][0]


def kind_of(annotation: Any) -> tuple[str, bool]:
    """(kind, optional) of a field's type: ``int`` -> ("int", False), ``int | None`` -> ("int", True)."""
    # a string under ``from __future__ import annotations``; ``int | None`` prints as such
    kind = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    base = kind.removesuffix(" | None")
    if base not in KINDS:
        raise TypeError(f"options field type {kind!r}; expected one of {KINDS} (or one of them | None)")
    return base, base != kind


def of_type(cls: type) -> tuple[Option, ...]:
    """The options of an options class (DecodingOptions, DiarizationOptions, or a subclass with more fields), in
    declaration order."""
    options = []
    for f in dataclasses.fields(cls):
        kind, optional = kind_of(f.type)
        spec = {k: v for k, v in f.metadata.items() if k != "help"}
        options.append(Option(f.name, kind, f.default, f.metadata.get("help", ""), spec, optional))
    return tuple(options)


def switch_of(cls: type) -> Option:
    """The yes/no a door asks for a switched options type with (its ``SWITCH``: {"name": ..., "help": ...})."""
    return Option(cls.SWITCH["name"], "bool", False, cls.SWITCH["help"], {})


@functools.cache
def source(path: str = MODEL_SOURCE) -> ast.Module:
    return ast.parse((REPO_ROOT / path).read_text(encoding="utf-8"))


@functools.cache
def constant(name: str, path: str = MODEL_SOURCE) -> Any:
    """A literal constant of a source file (model.py's LANGUAGES, BACKEND_PRECISIONS …), without importing it."""
    for node in source(path).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise KeyError(f"{path} defines no literal constant {name}")


def model_constant(name: str) -> Any:
    """A literal constant of model.py, without importing it."""
    return constant(name, MODEL_SOURCE)


def evaluate(node: ast.expr, path: str = MODEL_SOURCE) -> Any:
    """A declaration's value: a literal, a tuple/list/dict of them, a constant of the file (``path``) or
    ``len(CONSTANT)``."""
    if isinstance(node, ast.Name):
        return constant(node.id, path)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "len" and len(node.args) == 1:
        return len(evaluate(node.args[0], path))
    if isinstance(node, (ast.Tuple, ast.List)):
        values = [evaluate(e, path) for e in node.elts]
        return tuple(values) if isinstance(node, ast.Tuple) else values
    if isinstance(node, ast.Dict):
        return {evaluate(k, path): evaluate(v, path) for k, v in zip(node.keys, node.values)}
    return ast.literal_eval(node)  # ValueError names what a declaration may not hold


def class_node(path: str, name: str) -> ast.ClassDef:
    cls = next((n for n in source(path).body if isinstance(n, ast.ClassDef) and n.name == name), None)
    if cls is None:
        raise KeyError(f"{path} defines no class {name}")
    return cls


@functools.cache
def declared(path: str = MODEL_SOURCE, class_name: str = OPTIONS_CLASS) -> tuple[Option, ...]:
    """The options of a class declared with ``option(default, help, **spec)`` fields (default: model.py's
    DecodingOptions), read from its source: no torch import. ClassVars (a SWITCH) are not options."""
    options = []
    for node in class_node(path, class_name).body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        annotation = ast.unparse(node.annotation)
        if annotation.startswith("ClassVar"):
            continue
        call = node.value
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "option"):
            raise ValueError(f"{path}: {class_name}.{node.target.id} must be declared with option(default, "
                             "help, **spec)")
        default, help_text = (evaluate(arg, path) for arg in call.args)
        spec = {keyword.arg: evaluate(keyword.value, path) for keyword in call.keywords}
        kind, optional = kind_of(annotation)
        options.append(Option(node.target.id, kind, default, help_text, spec, optional))
    return tuple(options)


@functools.cache
def declared_switch(path: str, class_name: str) -> Option:
    """A switched options class's SWITCH, read from its source."""
    for node in class_node(path, class_name).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == "SWITCH":
            switch = evaluate(node.value, path)
            return Option(switch["name"], "bool", False, switch["help"], {})
    raise KeyError(f"{path}: {class_name} declares no SWITCH")


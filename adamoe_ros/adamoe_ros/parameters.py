"""Declarative node parameters: each node's parameters are one frozen dataclass, its parameter table.

A field is one parameter, written once, in the spirit of generate_parameter_library's YAML: its name, its type
(the annotation: bool, int, float, str or tuple[...] of one of them), its default, description and range or choices
(`param(...)`). From the table come

- the ParameterDescriptors (`declare_parameters`): description, type, read_only, FloatingPointRange or
  IntegerRange, and the choices or open bounds in additional_constraints;
- the typed config object (`read_parameters`): an instance of the table, built from the node's values;
- the checks: per parameter (type, range, choices) in the table's __post_init__, between parameters in its
  `check()`; a set-parameters callback applies the per-parameter checks to every later change.

Integers are accepted where a float is declared, as users type them (`-p real_time_factor:=2`, `1` in YAML, an
untyped launch argument): the initial value is converted before it is declared, a pre-set callback converts later
ones, and the value read is a float.

When values are checked: rclpy applies the descriptor (type, closed range) to every value it stores, initial ones
included, so the node never holds such a value. Open bounds, choices and checks between parameters run when the node
builds its table (`read_parameters`: at construction, or at each configure for the lifecycle policy node, which
then stays unconfigured and can be fixed with `ros2 param set`) and, per parameter, in the set-parameters callback.

read_only is a property of the table (`READ_ONLY`): a node that reads its parameters once, at construction,
declares them read-only, so `ros2 param set` cannot change a value the node would never read again. The policy
node reads them at every configure: they stay writable, are validated when set, and apply from the next configure.
"""

from __future__ import annotations

import array
import functools
import math
import operator
import textwrap
import typing
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Self

import yaml
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import (
    InvalidParameterTypeException,
    InvalidParameterValueException,
    ParameterUninitializedException,
)
from rclpy.node import Node
from rclpy.parameter import Parameter

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_TYPES = {
    bool: (Parameter.Type.BOOL, Parameter.Type.BOOL_ARRAY),
    int: (Parameter.Type.INTEGER, Parameter.Type.INTEGER_ARRAY),
    float: (Parameter.Type.DOUBLE, Parameter.Type.DOUBLE_ARRAY),
    str: (Parameter.Type.STRING, Parameter.Type.STRING_ARRAY),
}
_RULE = 'adamoe_parameter'  # key of the Rule in a field's metadata
_COMPARISONS = {'>=': operator.ge, '>': operator.gt, '<=': operator.le, '<': operator.lt}


class ParameterError(ValueError):
    """A parameter value is unusable; the message names the parameter."""


@dataclass(frozen=True)
class Rule:
    """Description and allowed values of one parameter (each element of an array parameter)."""

    description: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[str, ...] = ()

    def bounds(self) -> list[tuple[str, float]]:
        """Return (comparison, bound) of each bound set, e.g. [('>', 0.0), ('<=', 1.0)]."""
        return [
            (sign, bound)
            for sign, bound in (('>=', self.ge), ('>', self.gt), ('<=', self.le), ('<', self.lt))
            if bound is not None
        ]

    def problem(self, value: Any) -> str | None:
        """Say why a (type-checked) scalar value breaks the rule, or None."""
        if isinstance(value, float) and not math.isfinite(value):
            return f'{value} is not finite'
        if self.choices and value not in self.choices:
            return f'{value!r} is not one of {list(self.choices)}'
        for sign, bound in self.bounds():
            if not _COMPARISONS[sign](value, bound):
                return f'{value} is not {sign} {bound}'
        return None

    def constraints(self) -> str:
        """Put the rule in words, for ParameterDescriptor.additional_constraints."""
        if self.choices:
            return 'one of: ' + ', '.join(self.choices)
        return ' and '.join(f'{sign} {bound}' for sign, bound in self.bounds())


def param(
    default: Any,
    description: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple[str, ...] = (),
) -> Any:
    """Declare one table field: default, description and the allowed values (bounds or choices)."""
    return field(default=default, metadata={_RULE: Rule(description, ge, gt, le, lt, tuple(choices))})


@dataclass(frozen=True)
class ParameterTable:
    """Base of the per-node parameter tables; an instance holds checked values of the declared types."""

    READ_ONLY: ClassVar[bool] = True  # read once at construction; False: read again later (validated when set)
    ERROR: ClassVar[type[ValueError]] = ParameterError  # raised for values the table refuses

    def __post_init__(self) -> None:
        """Convert each value to its declared type (int for float, lists to tuples) and check it."""
        for f in fields(self):
            object.__setattr__(self, f.name, checked_value(type(self), f.name, getattr(self, f.name)))
        self.check()

    def check(self) -> None:
        """Check relations between parameters (tables override this); raise ERROR naming a parameter."""

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> Self:
        """Build the table from a name -> value dict; missing names take their defaults, unknown ones fail."""
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise cls.ERROR(f'unknown parameters {unknown}')
        return cls(**values)


def declare_parameters(node: Node, table: type[ParameterTable]) -> None:
    """Declare every parameter of `table` on `node` with its descriptor; validate and convert later changes.

    Initial values (params files, `-p`, parameter_overrides) are converted to the declared type first, so an
    integer for a float parameter is accepted; any other type raises table.ERROR naming the parameter.
    """
    for f in fields(table):
        rule, ros_type, _, is_array = _describe(table, f.name)
        descriptor = ParameterDescriptor(
            name=f.name,
            type=ros_type.value,
            description=rule.description,
            read_only=table.READ_ONLY,
            additional_constraints=rule.constraints(),
        )
        low, high = _first(rule.ge, rule.gt), _first(rule.le, rule.lt)
        if (low, high) != (None, None) and ros_type is Parameter.Type.DOUBLE:
            descriptor.floating_point_range = [
                FloatingPointRange(
                    from_value=-math.inf if low is None else low, to_value=math.inf if high is None else high
                )
            ]
        elif (low, high) != (None, None) and ros_type is Parameter.Type.INTEGER:
            descriptor.integer_range = [
                IntegerRange(
                    from_value=INT64_MIN if low is None else int(low),
                    to_value=INT64_MAX if high is None else int(high),
                    step=1,
                )
            ]
        value = _initial_value(node, table, f.name)
        try:
            if is_array and not value:
                # rclpy infers no element type from an empty list: declare the type, the value stays unset.
                node.declare_parameter(f.name, ros_type, descriptor, ignore_override=True)
            else:
                node.declare_parameter(f.name, list(value) if is_array else value, descriptor, ignore_override=True)
        except (InvalidParameterValueException, InvalidParameterTypeException) as error:
            checked_value(table, f.name, value)  # says why in the table's words
            raise table.ERROR(f'parameter {f.name!r}: {error}') from None
    node.add_pre_set_parameters_callback(lambda params: [_as_declared(table, p) for p in params])
    node.add_on_set_parameters_callback(lambda params: _on_set(table, params))


def read_parameters[T: ParameterTable](node: Node, table: type[T]) -> T:
    """Build the table from the node's current values; raise table.ERROR naming a parameter that does not fit."""
    values = {}
    for f in fields(table):
        try:
            values[f.name] = node.get_parameter(f.name).value
        except ParameterUninitializedException:
            values[f.name] = None  # an empty array parameter
    return table(**values)


def parameter_file(table: type[ParameterTable], header: str, key: str = '/**') -> str:
    """Return a ROS parameter file of every parameter at its default, each under its description and rule.

    Generated from the table, as generate_parameter_library generates its docs, so it cannot drift from the node.
    """
    lines = [f'# {line}'.rstrip() for line in header.strip().splitlines()]
    lines += [f'{key}:', '  ros__parameters:']
    for f in fields(table):
        rule, _, _, is_array = _describe(table, f.name)
        allowed = rule.constraints()
        if allowed:
            allowed = ' ' + (allowed.capitalize() if rule.choices else f'Must be {allowed}') + '.'
        lines += [f'    # {line}' for line in textwrap.wrap(rule.description + allowed, 112)]
        value = list(f.default) if is_array else f.default
        # '{name: value}\n' in YAML's flow style, less the braces
        lines.append('    ' + yaml.safe_dump({f.name: value}, default_flow_style=True, width=math.inf)[1:-2])
    return '\n'.join(lines) + '\n'


def checked_value(table: type[ParameterTable], name: str, value: Any) -> Any:
    """Return `value` as the declared type of parameter `name` (tuple for arrays), checked against its rule."""
    rule, _, _, is_array = _describe(table, name)
    value = _typed(table, name, value)
    for item in value if is_array else (value,):
        problem = rule.problem(item)
        if problem:
            raise table.ERROR(f'parameter {name!r}: {problem}')
    return value


def _typed(table: type[ParameterTable], name: str, value: Any) -> Any:
    """Convert without checking the rule: int for float, any sequence (or unset) for a tuple."""
    _, _, element, is_array = _describe(table, name)
    try:
        if is_array:
            return tuple(_scalar(element, v) for v in (() if value is None else _sequence(value)))
        return _scalar(element, value)
    except TypeError:
        kind = f'list of {element.__name__}' if is_array else element.__name__
        raise table.ERROR(f'parameter {name!r}: {value!r} is not a {kind}') from None


def _scalar(element: type, value: Any) -> Any:
    if isinstance(value, bool) != (element is bool):  # bool is an int subclass: never mix them
        raise TypeError
    if element is float and isinstance(value, int):
        return float(value)
    if not isinstance(value, element):
        raise TypeError
    return value


def _sequence(value: Any) -> Any:
    if not isinstance(value, (list, tuple, array.array)):
        raise TypeError
    return value


def _first(*values: float | None) -> float | None:
    return next((v for v in values if v is not None), None)


@functools.cache
def _describe(table: type[ParameterTable], name: str) -> tuple[Rule, Parameter.Type, type, bool]:
    """Return (rule, ROS type, element type, is_array) of a table field."""
    annotation = typing.get_type_hints(table)[name]
    is_array = typing.get_origin(annotation) is tuple
    element = typing.get_args(annotation)[0] if is_array else annotation
    rule = table.__dataclass_fields__[name].metadata[_RULE]
    return rule, _TYPES[element][is_array], element, is_array


def given_values(node: Node) -> dict[str, Any]:
    """Values given to the node at construction (params files, `-p`, parameter_overrides), by parameter name.

    rclpy keeps them in Node._parameter_overrides and has no public accessor.
    """
    return {name: parameter.value for name, parameter in node._parameter_overrides.items()}


def _initial_value(node: Node, table: type[ParameterTable], name: str) -> Any:
    """Return the value given for `name` converted to its type (declare_parameter refuses INTEGER for DOUBLE)."""
    given = given_values(node)
    if name not in given:
        return table.__dataclass_fields__[name].default
    return _typed(table, name, given[name])


def _as_declared(table: type[ParameterTable], parameter: Parameter) -> Parameter:
    """Give an integer (array) set on a float (array) parameter the declared type; pass anything else on."""
    if parameter.name not in table.__dataclass_fields__:
        return parameter
    _, ros_type, _, _ = _describe(table, parameter.name)
    integers = {
        Parameter.Type.DOUBLE: Parameter.Type.INTEGER,
        Parameter.Type.DOUBLE_ARRAY: Parameter.Type.INTEGER_ARRAY,
    }
    if integers.get(ros_type) is not parameter.type_:
        return parameter
    value = _typed(table, parameter.name, parameter.value)
    return Parameter(parameter.name, ros_type, list(value) if isinstance(value, tuple) else value)


def _on_set(table: type[ParameterTable], parameters: list[Parameter]) -> SetParametersResult:
    for parameter in parameters:
        if parameter.name in table.__dataclass_fields__:
            try:
                checked_value(table, parameter.name, parameter.value)
            except ValueError as error:
                return SetParametersResult(successful=False, reason=str(error))
    return SetParametersResult(successful=True)

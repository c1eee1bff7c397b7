"""The $filter language of the emulated Graph: tokenizer, recursive-descent parser, compiler.

Grammar, lowest precedence first (keywords and function names are case-insensitive):

    filter      := or_expr EOF
    or_expr     := and_expr ("or" and_expr)*
    and_expr    := not_expr ("and" not_expr)*
    not_expr    := "not" not_expr | comparison
    comparison  := operand [ cmp_op operand | "in" "(" literal ("," literal)* ")" ]
    operand     := literal | call | path | "(" or_expr ")"
    call        := ("startswith" | "endswith") "(" operand "," operand ")"
    path        := ident ("/" ident)* [ "/" "$count" | "/" lambda ]
    lambda      := ("any" | "all") "(" [ ident ":" or_expr ] ")"
    cmp_op      := eq | ne | gt | ge | lt | le

The parser builds a small tree; the compiler checks it against the resource (unknown properties,
advanced-only forms, type mismatches) and turns it into nested closures, so evaluating an object
never touches the text again. What the module supports is listed in odata.py's docstring.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple

from csp_emulator.graph.odata_schema import (
    ADVANCED_ONLY_PROPERTIES,
    INTUNE_RESOURCES,
    ODataError,
    Predicate,
    is_strict,
    lookup,
    property_kind,
    resolve_property,
    resource_label,
    unknown_property,
)

# Deeper nesting than this is refused rather than risking Python's recursion limit.
MAX_DEPTH = 64

# ---------------------------------------------------------------------------------------------
# Tokens

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2}))
  | (?P<guid>[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<string>'(?:[^']|'')*')
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<count>\$count\b)
  | (?P<punct>[(),:/])
    """,
    re.VERBOSE,
)


class _Token(NamedTuple):
    kind: str  # datetime guid number string ident count punct eof
    text: str
    pos: int


def _invalid(detail: str) -> ODataError:
    return ODataError(400, "BadRequest", f"Invalid filter clause: {detail}")


def _syntax_error(text: str, pos: int) -> ODataError:
    return _invalid(f"Syntax error at position {pos} in '{text}'.")


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            if text[pos] == "'":
                raise _invalid(
                    f"There is an unterminated string literal at position {pos} in '{text}'."
                )
            raise _invalid(
                f"Syntax error: character '{text[pos]}' is not valid at position {pos} in '{text}'."
            )
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(_Token(kind, match.group(), pos))
        pos = match.end()
    tokens.append(_Token("eof", "", len(text)))
    return tokens


# ---------------------------------------------------------------------------------------------
# Syntax tree


@dataclass(frozen=True, slots=True)
class Lit:
    kind: str  # string int decimal bool null guid datetime
    value: Any
    pos: int


@dataclass(frozen=True, slots=True)
class Path:
    segments: tuple[str, ...]  # after the lambda variable, if var is set
    var: str | None  # the lambda variable this path starts from; None = the entity
    pos: int


@dataclass(frozen=True, slots=True)
class Count:
    path: Path


@dataclass(frozen=True, slots=True)
class Lambda:
    path: Path
    quantifier: str  # any | all
    var: str | None
    body: Node | None


@dataclass(frozen=True, slots=True)
class Call:
    name: str  # startswith | endswith
    args: tuple[Node, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class Compare:
    op: str
    left: Node
    right: Node
    pos: int


@dataclass(frozen=True, slots=True)
class In:
    operand: Node
    values: tuple[Lit, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # and | or
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Node
    pos: int


Node = Lit | Path | Count | Lambda | Call | Compare | In | BoolOp | Not
_BOOLEAN_NODES = (Lambda, Call, Compare, In, BoolOp, Not)
_COMPARISONS = ("eq", "ne", "gt", "ge", "lt", "le")
_FUNCTIONS = ("startswith", "endswith")


# ---------------------------------------------------------------------------------------------
# Parser


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0
        self.depth = 0
        self.lambda_var: str | None = None

    def parse(self) -> Node:
        node = self.or_expr()
        if self.peek().kind != "eof":
            raise self.error()
        return node

    # -- helpers

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def advance(self) -> _Token:
        token = self.peek()
        self.index += 1
        return token

    def at_keyword(self, *words: str) -> bool:
        token = self.peek()
        return token.kind == "ident" and token.text.lower() in words

    def at_punct(self, char: str, ahead: int = 0) -> bool:
        token = self.peek(ahead)
        return token.kind == "punct" and token.text == char

    def expect_punct(self, char: str) -> None:
        if not self.at_punct(char):
            raise self.error()
        self.index += 1

    def error(self) -> ODataError:
        return _syntax_error(self.text, self.peek().pos)

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _invalid(f"The filter is nested more than {MAX_DEPTH} levels deep.")

    # -- grammar

    def or_expr(self) -> Node:
        items = [self.and_expr()]
        while self.at_keyword("or"):
            self.advance()
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items))

    def and_expr(self) -> Node:
        items = [self.not_expr()]
        while self.at_keyword("and"):
            self.advance()
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items))

    def not_expr(self) -> Node:
        if self.at_keyword("not"):
            pos = self.advance().pos
            self.nest()
            item = self.not_expr()
            self.depth -= 1
            return Not(item, pos)
        return self.comparison()

    def comparison(self) -> Node:
        left = self.operand()
        token = self.peek()
        if self.at_keyword(*_COMPARISONS):
            self.advance()
            return Compare(token.text.lower(), left, self.operand(), token.pos)
        if self.at_keyword("in"):
            self.advance()
            self.expect_punct("(")
            values = [self.literal()]
            while self.at_punct(","):
                self.advance()
                values.append(self.literal())
            self.expect_punct(")")
            return In(left, tuple(values), token.pos)
        if isinstance(left, _BOOLEAN_NODES):
            return left
        raise self.error()  # a bare property or literal is not a condition

    def operand(self) -> Node:
        token = self.peek()
        if self.at_punct("("):
            self.advance()
            self.nest()
            node = self.or_expr()
            self.expect_punct(")")
            self.depth -= 1
            return node
        if token.kind == "ident" and token.text.lower() not in ("true", "false", "null"):
            if self.at_punct("(", ahead=1):
                return self.call()
            return self.path()
        return self.literal()

    def literal(self) -> Lit:
        token = self.advance()
        kind, text, pos = token
        if kind == "string":
            return Lit("string", text[1:-1].replace("''", "'"), pos)
        if kind == "number":
            if any(c in text for c in ".eE"):
                return Lit("decimal", float(text), pos)
            return Lit("int", int(text), pos)
        if kind == "guid":
            return Lit("guid", text.lower(), pos)
        if kind == "datetime":
            moment = parse_datetime(text)
            if moment is None:  # well-formed but impossible, e.g. month 13
                raise _syntax_error(self.text, pos)
            return Lit("datetime", moment, pos)
        if kind == "ident":
            word = text.lower()
            if word == "null":
                return Lit("null", None, pos)
            if word in ("true", "false"):
                return Lit("bool", word == "true", pos)
        self.index -= 1
        raise self.error()

    def call(self) -> Call:
        token = self.advance()
        name = token.text.lower()
        if name not in _FUNCTIONS:
            # Graph's own words for contains(), tolower() and the rest.
            raise ODataError(
                400,
                "Request_BadRequest",
                f"An unknown function with name '{token.text}' was found. This may also be a key "
                "lookup on a navigation property, which is not allowed.",
            )
        self.expect_punct("(")
        self.nest()
        args = [self.operand()]
        while self.at_punct(","):
            self.advance()
            args.append(self.operand())
        self.expect_punct(")")
        self.depth -= 1
        return Call(name, tuple(args), token.pos)

    def path(self) -> Node:
        first = self.advance()
        segments = [first.text]
        while self.at_punct("/"):
            self.advance()
            token = self.peek()
            if token.kind == "count":
                self.advance()
                return Count(self._path(segments, first.pos))
            if token.kind != "ident":
                raise self.error()
            if token.text.lower() in ("any", "all") and self.at_punct("(", ahead=1):
                return self.lambda_(self._path(segments, first.pos))
            segments.append(self.advance().text)
        return self._path(segments, first.pos)

    def _path(self, segments: list[str], pos: int) -> Path:
        if segments[0] == self.lambda_var:
            return Path(tuple(segments[1:]), self.lambda_var, pos)
        return Path(tuple(segments), None, pos)

    def lambda_(self, path: Path) -> Lambda:
        quantifier = self.advance().text.lower()
        self.expect_punct("(")
        if self.at_punct(")"):
            self.advance()
            return Lambda(path, quantifier, None, None)
        variable = self.advance()
        if variable.kind != "ident":
            self.index -= 1
            raise self.error()
        self.expect_punct(":")
        self.nest()
        outer, self.lambda_var = self.lambda_var, variable.text
        body = self.or_expr()
        self.lambda_var = outer
        self.expect_punct(")")
        self.depth -= 1
        return Lambda(path, quantifier, variable.text, body)


# ---------------------------------------------------------------------------------------------
# Values

_MISSING = object()


@lru_cache(maxsize=65536)
def parse_datetime(text: str) -> datetime | None:
    """An aware datetime from ISO 8601 text (naive means UTC), or None if it isn't one."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _getter(names: tuple[str, ...], exact_first: bool) -> Callable[[Any], Any]:
    """Reads names[0]/names[1]/... from a value; anything missing or not an object is null."""
    if not names:
        return lambda value: value
    if exact_first and len(names) == 1:
        name = names[0]
        return lambda obj: obj.get(name) if isinstance(obj, dict) else None

    def get(value: Any) -> Any:
        for index, name in enumerate(names):
            if not isinstance(value, dict):
                return None
            found = value.get(name, _MISSING)
            if found is _MISSING:
                found = None if (exact_first and index == 0) else lookup(value, name)[1]
            value = found
        return value

    return get


_ORDERING: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}
_FLIPPED = {"eq": "eq", "ne": "ne", "gt": "lt", "ge": "le", "lt": "gt", "le": "ge"}
_OPERATOR_KIND = {
    "eq": "Equal",
    "ne": "NotEqual",
    "gt": "GreaterThan",
    "ge": "GreaterThanOrEqual",
    "lt": "LessThan",
    "le": "LessThanOrEqual",
}
_EDM = {
    "string": "Edm.String",
    "guid": "Edm.Guid",
    "int": "Edm.Int32",
    "decimal": "Edm.Decimal",
    "bool": "Edm.Boolean",
    "boolean": "Edm.Boolean",
    "datetime": "Edm.DateTimeOffset",
}
# Literal kinds each property kind accepts (null goes with everything). GUID literals compare
# with strings because Graph's ids are strings that look like GUIDs.
_COMPATIBLE = {
    "string": ("string", "guid"),
    "boolean": ("bool",),
    "int": ("int", "decimal"),
    "datetime": ("datetime",),
}


def _equals(get: Callable[[Any], Any], lit: Lit) -> Callable[[Any], bool]:
    """value eq literal, one closure per literal kind so the per-object work is minimal."""
    if lit.kind == "null":
        return lambda o: get(o) is None
    if lit.kind in ("string", "guid"):
        wanted = str(lit.value).casefold()

        def string_eq(o: Any) -> bool:
            value = get(o)
            return isinstance(value, str) and value.casefold() == wanted

        return string_eq
    if lit.kind == "bool":
        flag = lit.value
        return lambda o: get(o) is flag
    if lit.kind == "datetime":
        moment = lit.value

        def datetime_eq(o: Any) -> bool:
            value = get(o)
            return isinstance(value, str) and parse_datetime(value) == moment

        return datetime_eq
    number = lit.value

    def number_eq(o: Any) -> bool:
        value = get(o)
        return isinstance(value, int | float) and not isinstance(value, bool) and value == number

    return number_eq


def _ordered(op: str, get: Callable[[Any], Any], lit: Lit) -> Callable[[Any], bool]:
    """value gt/ge/lt/le literal; null and mismatched types are simply not matches."""
    compare = _ORDERING[op]
    if lit.kind in ("string", "guid"):
        bound = str(lit.value).casefold()

        def string_cmp(o: Any) -> bool:
            value = get(o)
            return isinstance(value, str) and compare(value.casefold(), bound)

        return string_cmp
    if lit.kind == "datetime":
        moment = lit.value

        def datetime_cmp(o: Any) -> bool:
            value = get(o)
            parsed = parse_datetime(value) if isinstance(value, str) else None
            return parsed is not None and compare(parsed, moment)

        return datetime_cmp
    if lit.kind in ("int", "decimal"):
        number = lit.value

        def number_cmp(o: Any) -> bool:
            value = get(o)
            return (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and compare(value, number)
            )

        return number_cmp
    return lambda o: False  # ordering against null or a boolean never matches


def _all_of(preds: list[Callable[[Any], bool]]) -> Callable[[Any], bool]:
    if len(preds) == 2:
        first, second = preds
        return lambda o: first(o) and second(o)
    return lambda o: all(p(o) for p in preds)


def _any_of(preds: list[Callable[[Any], bool]]) -> Callable[[Any], bool]:
    if len(preds) == 2:
        first, second = preds
        return lambda o: first(o) or second(o)
    return lambda o: any(p(o) for p in preds)


# ---------------------------------------------------------------------------------------------
# Compiler


class _Compiler:
    def __init__(self, resource: str, advanced: bool) -> None:
        self.resource = resource
        self.strict = is_strict(resource)
        self.intune = resource in INTUNE_RESOURCES
        # Advanced-mode rules are the directory's; Intune has none of them.
        self.plain_directory = not advanced and not self.intune
        self.advanced_only = ADVANCED_ONLY_PROPERTIES.get(resource, frozenset())
        # The first advanced-only form met. It is raised only after the whole tree compiled,
        # because Graph rejects unknown properties and type errors before advanced-query rules.
        self.needs_advanced_mode: ODataError | None = None

    # -- rule checks

    def needs_advanced(self, message: str) -> None:
        if self.plain_directory and self.needs_advanced_mode is None:
            self.needs_advanced_mode = ODataError(400, "Request_UnsupportedQuery", message)

    def not_on_intune(self, what: str) -> None:
        if self.intune:
            raise _invalid(f"{what} is not supported on {resource_label(self.resource)}.")

    # -- operands

    def value(self, node: Node, var: str | None) -> tuple[Callable[[Any], Any], str | None]:
        """A getter for a property path or /$count, and the property's kind if known."""
        if isinstance(node, Count):
            self.needs_advanced("Unsupported Query.")
            self.not_on_intune("$count in $filter")
            get, kind = self.value(node.path, var)
            if kind not in (None, "collection"):
                raise _invalid(
                    f"$count applies to collections; '{'/'.join(node.path.segments)}' is not one."
                )
            return (lambda o: len(c) if isinstance(c := get(o), list) else 0), None
        if not isinstance(node, Path):
            raise _invalid("A comparison needs a property on one side and a literal on the other.")
        if node.var is not None:
            # Inside a lambda: relative to the current element; no schema for elements.
            return _getter(node.segments, exact_first=False), None
        if var is not None:
            raise _invalid(f"Only the range variable '{var}' can be used inside a lambda.")
        first = node.segments[0]
        name = resolve_property(self.resource, first)
        if name is None:
            raise unknown_property(self.resource, first)
        if name in self.advanced_only:
            self.needs_advanced(
                "Unsupported or invalid query filter clause specified for property "
                f"'{name}' of resource '{resource_label(self.resource)}'."
            )
        kind = property_kind(self.resource, name)
        if len(node.segments) > 1:
            if kind not in (None, "complex"):
                raise _invalid(f"'{name}' has no properties to navigate into.")
            kind = None
        return _getter((name, *node.segments[1:]), exact_first=self.strict), kind

    def check_literal(self, kind: str | None, op: str, lit: Lit, name: str) -> None:
        if kind is None or lit.kind == "null":
            return
        if kind in ("collection", "complex"):
            raise _invalid(
                f"The property '{name}' is not a single value; use any(), as in "
                f"{name}/any(x:x eq 'value')."
                if kind == "collection"
                else f"The property '{name}' can only be compared with null."
            )
        if lit.kind not in _COMPATIBLE[kind]:
            raise _invalid(
                "A binary operator with incompatible types was detected. Found operand types "
                f"'{_EDM[kind]}' and '{_EDM[lit.kind]}' for operator kind '{_OPERATOR_KIND[op]}'."
            )

    # -- boolean nodes

    def predicate(self, node: Node, var: str | None) -> Callable[[Any], bool]:
        if isinstance(node, BoolOp):
            preds = [self.predicate(item, var) for item in node.items]
            return _all_of(preds) if node.op == "and" else _any_of(preds)
        if isinstance(node, Not):
            self.needs_advanced("Filter operator 'Not' is not supported.")
            self.not_on_intune("The 'not' operator")
            inner = self.predicate(node.item, var)
            return lambda o: not inner(o)
        if isinstance(node, Compare):
            return self.compare(node, var)
        if isinstance(node, In):
            return self.in_(node, var)
        if isinstance(node, Call):
            return self.call(node, var)
        if isinstance(node, Lambda):
            return self.lambda_(node, var)
        raise _invalid("Expected a condition.")  # the parser never builds this

    def compare(self, node: Compare, var: str | None) -> Callable[[Any], bool]:
        op, left, right = node.op, node.left, node.right
        if isinstance(left, Lit) and not isinstance(right, Lit):
            left, right, op = right, left, _FLIPPED[op]
        if op == "ne":
            self.needs_advanced("Filter operator 'NotEqualsMatch' is not supported.")
        if isinstance(left, _BOOLEAN_NODES):
            # e.g. startswith(displayName,'a') eq true
            if not (isinstance(right, Lit) and right.kind == "bool" and op in ("eq", "ne")):
                raise _invalid("A condition can only be compared with true or false.")
            inner = self.predicate(left, var)
            if right.value == (op == "eq"):
                return inner
            return lambda o: not inner(o)
        if not isinstance(right, Lit):
            raise _invalid("A comparison needs a property on one side and a literal on the other.")
        get, kind = self.value(left, var)
        self.check_literal(kind, op, right, _describe(left))
        if op == "eq":
            return _equals(get, right)
        if op == "ne":
            equal = _equals(get, right)
            return lambda o: not equal(o)
        return _ordered(op, get, right)

    def in_(self, node: In, var: str | None) -> Callable[[Any], bool]:
        get, kind = self.value(node.operand, var)
        for lit in node.values:
            self.check_literal(kind, "eq", lit, _describe(node.operand))
        if all(lit.kind in ("string", "guid") for lit in node.values):
            wanted = frozenset(str(lit.value).casefold() for lit in node.values)

            def string_in(o: Any) -> bool:
                value = get(o)
                return isinstance(value, str) and value.casefold() in wanted

            return string_in
        return _any_of([_equals(get, lit) for lit in node.values])

    def call(self, node: Call, var: str | None) -> Callable[[Any], bool]:
        signature = _invalid(
            f"No function signature for the function with name '{node.name}' matches the "
            f"specified arguments. The function signatures considered are: {node.name}"
            "(Edm.String Nullable=true, Edm.String Nullable=true)."
        )
        if len(node.args) != 2 or not isinstance(node.args[0], Path | Count):
            raise signature
        subject, affix = node.args
        if not (isinstance(affix, Lit) and affix.kind == "string"):
            raise signature
        if node.name == "endswith":
            self.needs_advanced("Unsupported Query.")
            self.not_on_intune("endswith")
        get, kind = self.value(subject, var)
        if kind == "collection":
            self.check_literal(kind, "eq", affix, _describe(subject))
        if kind not in (None, "string"):
            raise signature
        text = str(affix.value).casefold()
        if node.name == "startswith":

            def starts(o: Any) -> bool:
                value = get(o)
                return isinstance(value, str) and value.casefold().startswith(text)

            return starts

        def ends(o: Any) -> bool:
            value = get(o)
            return isinstance(value, str) and value.casefold().endswith(text)

        return ends

    def lambda_(self, node: Lambda, var: str | None) -> Callable[[Any], bool]:
        self.not_on_intune(f"The '{node.quantifier}' operator")
        get, kind = self.value(node.path, var)
        if kind not in (None, "collection"):
            raise _invalid(
                f"The '{node.quantifier}' operator needs a collection; "
                f"'{_describe(node.path)}' is not one."
            )
        if node.body is None:
            if node.quantifier == "all":
                return lambda o: isinstance(get(o), list)
            return lambda o: bool(c) if isinstance(c := get(o), list) else False
        body = self.predicate(node.body, node.var)
        if node.quantifier == "all":
            return lambda o: isinstance(c := get(o), list) and all(body(e) for e in c)

        def any_element(o: Any) -> bool:
            collection = get(o)
            if not isinstance(collection, list):
                return False
            return any(body(element) for element in collection)

        return any_element


def _describe(node: Node) -> str:
    if isinstance(node, Count):
        return _describe(node.path) + "/$count"
    if isinstance(node, Path):
        return "/".join(((node.var,) if node.var else ()) + node.segments)
    return "expression"


def compile_filter(text: str, *, resource: str, advanced: bool) -> Predicate:
    """Compile a $filter expression for ``resource`` into a predicate over objects.

    ``advanced`` is whether the request carries ConsistencyLevel: eventual and $count=true.
    """
    tree = _Parser(text).parse()
    compiler = _Compiler(resource, advanced)
    predicate = compiler.predicate(tree, None)
    if compiler.needs_advanced_mode is not None:
        raise compiler.needs_advanced_mode
    return predicate

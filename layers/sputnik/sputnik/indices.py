"""Spectral indices: the named ones (NDVI, NDWI, ...) and expressions over band names, never `eval`'d.

An expression is parsed by Python's `ast` (eval mode) and only an allowlist of nodes is kept: band
names (`B04` or its v1 name `red`), numbers, `+ - * /`, parentheses and unary minus. Its length,
its depth and its numbers are bounded, so checking and evaluating it is bounded work. It is
evaluated on float32 reflectance; a division by zero (or any overflow) gives NaN, never inf.
"""

from __future__ import annotations

import ast
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sputnik.band_names import SCL, BandError, band_name
from sputnik.errors import InvalidInput

if TYPE_CHECKING:
    import numpy as np

MAX_LENGTH = 200  # characters of an expression
MAX_DEPTH = 24  # operators nested in one another (EVI needs 6)
MAX_NUMBER = 1e6  # largest magnitude of a number in an expression
CUSTOM_PREFIX = "expr-"
CUSTOM_COLORMAP = "viridis"
CUSTOM_RESCALE = (-1.0, 1.0)

Node = ast.expr


@dataclass(frozen=True)
class Index:
    """A spectral index: its name, formula, the bands it reads, and how a tile shows it."""

    name: str
    title: str
    expression: str  # normalised: archive band names, one spacing
    bands: tuple[str, ...]  # archive names (`B04`), in order of first use
    colormap: str  # a rio-tiler colormap name
    rescale: tuple[float, float]  # the values the colormap spans
    tree: Node = field(repr=False, compare=False)

    def compute(self, bands: Mapping[str, np.ndarray]) -> np.ndarray:
        """The index as float32 over arrays of reflectance keyed by archive band name; NaN where undefined."""
        import numpy as np  # only the stages that compute import numpy; the task API only parses

        shape = np.broadcast_shapes(*(np.shape(bands[band]) for band in self.bands))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            value = np.asarray(_evaluate(self.tree, bands), dtype=np.float32)
            value = np.broadcast_to(value, shape).copy()
            value[~np.isfinite(value)] = np.nan
        return value

    def describe(self) -> dict[str, Any]:
        """What a client needs to know of the index: formula, bands, colormap and range."""
        return {
            "name": self.name,
            "title": self.title,
            "expression": self.expression,
            "bands": list(self.bands),
            "colormap_name": self.colormap,
            "rescale": list(self.rescale),
        }


def _evaluate(node: Node, bands: Mapping[str, np.ndarray]) -> Any:
    """Value of a checked node (float32 scalars and arrays)."""
    import numpy as np

    if isinstance(node, ast.Constant):
        return np.float32(_number(node.value))
    if isinstance(node, ast.Name):
        return bands[node.id]
    if isinstance(node, ast.UnaryOp):
        return -_evaluate(node.operand, bands)
    assert isinstance(node, ast.BinOp)
    left, right = _evaluate(node.left, bands), _evaluate(node.right, bands)
    if isinstance(node.op, ast.Add):
        return left + right
    if isinstance(node.op, ast.Sub):
        return left - right
    if isinstance(node.op, ast.Mult):
        return left * right
    # x / 0 is NaN: a pixel whose denominator vanishes has no index value.
    quotient = np.true_divide(left, right, dtype=np.float32)
    return np.where(np.asarray(right) == 0, np.float32(np.nan), quotient)


_OPERATORS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_FORBIDDEN = {
    ast.Call: "a function call",
    ast.Attribute: "attribute access",
    ast.Subscript: "subscripts",
    ast.Compare: "comparisons",
    ast.BoolOp: "and/or",
    ast.IfExp: "if/else",
    ast.Lambda: "lambda",
    ast.NamedExpr: "':='",
    ast.Tuple: "tuples",
    ast.List: "lists",
}
_FORBIDDEN_OPERATORS = {
    ast.Pow: "'**'",
    ast.Mod: "'%'",
    ast.FloorDiv: "'//'",
    ast.MatMult: "'@'",
    ast.LShift: "'<<'",
    ast.RShift: "'>>'",
    ast.BitAnd: "'&'",
    ast.BitOr: "'|'",
    ast.BitXor: "'^'",
    ast.UAdd: "unary '+'",
    ast.Not: "'not'",
    ast.Invert: "'~'",
}
ALLOWED = "only band names, numbers, + - * / ( ) and unary minus are allowed"


def _refuse(what: str) -> InvalidInput:
    """The error for an expression that uses something outside the allowlist."""
    return InvalidInput(f"expression: {ALLOWED}, not {what}")


def _number(value: object) -> float:
    """A literal's value, if it is a real number of a sensible magnitude."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _refuse("a string" if isinstance(value, str | bytes) else f"the literal {value!r}"[:60])
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number) or abs(number) > MAX_NUMBER:
        raise InvalidInput(f"expression: a number is out of range (at most {MAX_NUMBER:g} in magnitude)")
    return number


def _check(node: ast.AST, depth: int = 0) -> Node:
    """The node rebuilt from allowed parts only (archive band names, float numbers), or InvalidInput."""
    if depth > MAX_DEPTH:
        raise InvalidInput(f"expression is nested more than {MAX_DEPTH} levels deep")
    if isinstance(node, ast.Constant):
        return ast.Constant(_number(node.value))
    if isinstance(node, ast.Name):
        try:
            band = band_name(node.id)
        except BandError as exc:
            raise InvalidInput(f"expression: unknown band {node.id[:20]!r}") from exc
        if band == SCL:
            raise InvalidInput("expression: SCL is a classification, not a reflectance band")
        return ast.Name(band, ast.Load())
    if isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, ast.USub):
            raise _refuse(_FORBIDDEN_OPERATORS.get(type(node.op), "that operator"))
        return ast.UnaryOp(ast.USub(), _check(node.operand, depth + 1))
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _OPERATORS:
            raise _refuse(_FORBIDDEN_OPERATORS.get(type(node.op), "that operator"))
        return ast.BinOp(_check(node.left, depth + 1), node.op, _check(node.right, depth + 1))
    raise _refuse(_FORBIDDEN.get(type(node), "a " + type(node).__name__.lower()))


def _bands(node: Node) -> tuple[str, ...]:
    """Archive band names an expression reads, in order of first use."""
    return tuple(dict.fromkeys(n.id for n in ast.walk(node) if isinstance(n, ast.Name)))


def _normalise(node: Node) -> Node:
    """Integral numbers written as ints so that `1` and `1.0` normalise alike."""
    for child in ast.walk(node):
        if isinstance(child, ast.Constant):
            value = _number(child.value)
            child.value = int(value) if value.is_integer() else value
    return node


def parse_expression(text: str) -> tuple[Node, str]:
    """The checked tree of an expression and its normalised text, or InvalidInput naming the problem."""
    if not isinstance(text, str):
        raise InvalidInput("expression must be a string")
    if len(text) > MAX_LENGTH:
        raise InvalidInput(f"expression is longer than {MAX_LENGTH} characters")
    if not text.strip():
        raise InvalidInput("expression is empty")
    try:
        parsed = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        where = f" at column {exc.offset}" if isinstance(exc, SyntaxError) and exc.offset else ""
        raise InvalidInput(f"expression is not a formula{where}: {ALLOWED}") from exc
    tree = _normalise(_check(parsed.body))
    if not _bands(tree):
        raise InvalidInput("expression uses no band")
    return tree, ast.unparse(tree)


def _named(name: str, title: str, expression: str, colormap: str, rescale: tuple[float, float]) -> Index:
    """A named index from its formula."""
    tree, text = parse_expression(expression)
    return Index(name, title, text, _bands(tree), colormap, rescale, tree)


INDICES: dict[str, Index] = {
    index.name: index
    for index in (
        _named(
            "ndvi", "Normalized Difference Vegetation Index", "(nir - red) / (nir + red)", "rdylgn", (-1, 1)
        ),
        # McFeeters (1996): open water positive.
        _named("ndwi", "Normalized Difference Water Index", "(green - nir) / (green + nir)", "rdbu", (-1, 1)),
        _named(
            "ndmi", "Normalized Difference Moisture Index", "(nir - swir16) / (nir + swir16)", "brbg", (-1, 1)
        ),
        _named("nbr", "Normalized Burn Ratio", "(nir - swir22) / (nir + swir22)", "rdylgn", (-1, 1)),
        _named(
            "evi",
            "Enhanced Vegetation Index",
            "2.5 * (nir - red) / (nir + 6 * red - 7.5 * blue + 1)",
            "rdylgn",
            (-1, 1),
        ),
        _named(
            "savi",
            "Soil Adjusted Vegetation Index (L = 0.5)",
            "1.5 * (nir - red) / (nir + red + 0.5)",
            "rdylgn",
            (-1, 1),
        ),
    )
}


def custom_name(expression: str) -> str:
    """Stable name of a custom expression: the same formula, however spelt, has the same name."""
    return CUSTOM_PREFIX + hashlib.sha256(expression.encode()).hexdigest()[:10]


def expression_index(text: str) -> Index:
    """The index of a custom expression, or InvalidInput naming the problem."""
    tree, normalised = parse_expression(text)
    return Index(
        custom_name(normalised),
        normalised,
        normalised,
        _bands(tree),
        CUSTOM_COLORMAP,
        CUSTOM_RESCALE,
        tree,
    )


def get_index(spec: str | Mapping[str, Any]) -> Index:
    """The index a task's params name: a known name (`ndvi`) or `{"expression": "..."}`."""
    if isinstance(spec, str):
        index = INDICES.get(spec.strip().lower())
        if index is None:
            raise InvalidInput(
                f"unknown index {spec[:40]!r}; indices are {', '.join(INDICES)} or an expression"
            )
        return index
    if isinstance(spec, Mapping) and set(spec) == {"expression"}:
        return expression_index(spec["expression"])
    raise InvalidInput('index must be a name or {"expression": "..."}')

"""Spectral indices: the named formulas, the expression parser's allowlist and its bounds, NaN not inf."""

import re

import numpy
import pytest

from sputnik.errors import InvalidInput
from sputnik.indices import INDICES, MAX_LENGTH, custom_name, expression_index, get_index, parse_expression

RNG = numpy.random.default_rng(18)
BANDS = {
    band: RNG.uniform(0.0, 0.6, (7, 9)).astype(numpy.float32)
    for band in ("B02", "B03", "B04", "B08", "B11", "B12")
}


def test_named_indices_compute_their_published_formulas() -> None:
    b, g, r, n, s1, s2 = (BANDS[k].astype(numpy.float64) for k in ("B02", "B03", "B04", "B08", "B11", "B12"))
    expected = {
        "ndvi": (n - r) / (n + r),
        "ndwi": (g - n) / (g + n),
        "ndmi": (n - s1) / (n + s1),
        "nbr": (n - s2) / (n + s2),
        "evi": 2.5 * (n - r) / (n + 6 * r - 7.5 * b + 1),
        "savi": 1.5 * (n - r) / (n + r + 0.5),
    }
    assert set(expected) <= set(INDICES)
    for name, values in expected.items():
        got = INDICES[name].compute(BANDS)
        assert got.dtype == numpy.float32
        numpy.testing.assert_allclose(got, values, rtol=1e-5, atol=1e-6, err_msg=name)


def test_named_indices_say_which_bands_and_how_to_show_them() -> None:
    assert INDICES["ndvi"].bands == ("B08", "B04")
    assert set(INDICES["evi"].bands) == {"B08", "B04", "B02"}
    assert INDICES["ndmi"].bands == ("B08", "B11")
    assert INDICES["ndvi"].describe()["colormap_name"] == "rdylgn"
    assert INDICES["ndvi"].rescale == (-1, 1)
    from rio_tiler.colormap import cmap

    for index in INDICES.values():
        assert cmap.get(index.colormap)  # a colormap rio-tiler knows


def test_v0_and_v1_band_names_make_the_same_expression_and_name() -> None:
    a = expression_index("(B08-B04)/(B08+B04)")
    b = expression_index("( nir - red ) / ( nir + red )")
    c = expression_index("(nir - B04) / (B08 + red)")
    assert a.expression == b.expression == c.expression == "(B08 - B04) / (B08 + B04)"
    assert a.name == b.name == c.name == custom_name(a.expression)
    assert a.name.startswith("expr-") and len(a.name) == len("expr-") + 10
    assert expression_index("B04 * 2").name == expression_index("B04*2.0").name
    assert expression_index("B04 * 2").name != expression_index("B04 * 3").name
    numpy.testing.assert_array_equal(a.compute(BANDS), INDICES["ndvi"].compute(BANDS))


def test_division_by_zero_and_overflow_give_nan_not_inf() -> None:
    zero = {
        "B04": numpy.array([0.0, 0.2, 0.0, -0.1], numpy.float32),
        "B08": numpy.array([0.0, 0.2, 0.3, 0.1], numpy.float32),
    }
    ndvi = INDICES["ndvi"].compute(zero)
    assert numpy.isnan(ndvi[0]) and numpy.isnan(ndvi[3])  # 0/0 and x/0
    assert ndvi[1] == 0 and ndvi[2] == 1
    ratio = expression_index("B08 / B04").compute(zero)
    assert numpy.isnan(ratio[0]) and numpy.isnan(ratio[2]) and not numpy.isinf(ratio).any()
    huge = expression_index(
        "B08 * 1000000 * 1000000 * 1000000 * 1000000 * 1000000 * 1000000 * 1000000"
    ).compute({"B08": numpy.array([1.0], numpy.float32)})
    assert numpy.isnan(huge[0])
    assert expression_index("-B04 + 1").compute({"B04": numpy.array([0.25], numpy.float32)})[0] == 0.75


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expression is empty"),
        ("   ", "expression is empty"),
        ("(B99-B04)/(B99+B04)", "unknown band 'B99'"),
        ("nir - foo", "unknown band 'foo'"),
        ("SCL * 2", "SCL is a classification"),
        ("__import__('os').system('id')", "not a function call"),
        ("B04.__class__", "not attribute access"),
        ("abs(B04)", "not a function call"),
        ("B04 ** 2", "not '**'"),
        ("B04 % 2", "not '%'"),
        ("B04 // 2", "not '//'"),
        ("B04 > 0", "not comparisons"),
        ("B04 if B08 else B02", "not if/else"),
        ("+B04", "not unary '+'"),
        ("~B04", "not '~'"),
        ("B04[0]", "not subscripts"),
        ("'B04'", "not a string"),
        ("B04 * 1j", "not the literal 1j"),
        ("B04 * True", "not the literal True"),
        ("lambda: 1", "not lambda"),
        ("(x := B04)", "not ':='"),
        ("B04, B08", "not tuples"),
        ("B04 = 1", "not a formula"),
        ("B04 +", "not a formula"),
        ("import os", "not a formula"),
        ("B04\x00", "not a formula"),
        ("B04 * 1e400", "out of range"),
        ("B04 * " + "9" * 150, "out of range"),
        ("B04 * 1000001", "out of range"),
        ("1 + 2", "uses no band"),
        ("-" * 60 + "B04", "nested more than"),
        ("B04" + "+B04" * 40, "nested more than"),
        ("(" * 100 + "B04" + ")" * 100, "longer than"),
        ("B04 + " * 40 + "B04", "longer than"),
    ],
)
def test_hostile_and_malformed_expressions_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        parse_expression(text)


def test_bounds_allow_real_formulas_up_to_the_limit() -> None:
    text = "(" * 40 + "B04" + ")" * 40
    assert len(text) <= MAX_LENGTH
    assert parse_expression(text)[1] == "B04"
    _, normalised = parse_expression("-(-B04) * 1000000")
    assert normalised == "--B04 * 1000000"
    # The normalised text is a formula of its own that normalises to itself.
    for index in INDICES.values():
        assert parse_expression(index.expression)[1] == index.expression


def test_get_index_takes_a_name_or_an_expression() -> None:
    assert get_index("NDVI") is INDICES["ndvi"]
    assert get_index({"expression": "(nir-red)/(nir+red)"}).bands == ("B08", "B04")
    with pytest.raises(InvalidInput, match="unknown index 'ndxx'"):
        get_index("ndxx")
    with pytest.raises(InvalidInput, match="name or"):
        get_index({"expression": "B04", "x": 1})

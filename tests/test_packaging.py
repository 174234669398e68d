"""What `sam build` packs agrees with what the code imports and with pyproject.toml."""

import re
import subprocess
import sys
import tomllib

import pytest

from sputnik.local.template import Template
from tests.conftest import REPO, TEMPLATE

LAYER = REPO / "layers" / "sputnik"


def _names(lines: list[str]) -> set[str]:
    """Distribution names of requirement lines, normalised."""
    found = set()
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            found.add(
                re.split(r"[<>=!~\[ ]", line, maxsplit=1)[0].lower().replace("_", "-").replace(".", "-")
            )
    return found


def test_layer_requirements_match_pyproject() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    light = _names((LAYER / "requirements.txt").read_text().splitlines())
    geo = _names((LAYER / "requirements-geo.txt").read_text().splitlines())
    # boto3 comes with Lambda's runtime; rio-cogeo only writes demo archives, never in Lambda.
    assert light == _names(project["dependencies"]) - {"boto3"}
    assert geo == _names(project["optional-dependencies"]["geo"]) - {"rio-cogeo"}


@pytest.mark.parametrize("logical", sorted(Template.load(TEMPLATE).of_type("AWS::Serverless::Function")))
def test_only_functions_with_the_geo_layer_import_the_imagery_stack(logical: str) -> None:
    props = Template.load(TEMPLATE).resources[logical]["Properties"]
    layers = [layer["Ref"] for layer in props["Layers"]]
    assert len(layers) == 1, "a function attaches one layer: GeoLayer already holds SputnikLayer's packages"
    code = (
        "import importlib.util, sys;"
        f"spec = importlib.util.spec_from_file_location('fn', '{props['CodeUri']}app.py');"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m);"
        "print('rasterio' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(layers == ["GeoLayer"])

"""Names of Sentinel-2 L2A bands in both item schemas, their resolutions and the scene classes.

Plain data and one lookup: light enough for any function (the task API checks index formulas with it)
without the pixel libraries that `sputnik.bands` needs.
"""

from sputnik.errors import SputnikError

# v1 asset names -> the v0 names (band ids) that the first sputnik and the archive's files use.
V1_TO_V0 = {
    "coastal": "B01",
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "rededge1": "B05",
    "rededge2": "B06",
    "rededge3": "B07",
    "nir": "B08",
    "nir08": "B8A",
    "nir09": "B09",
    "swir16": "B11",
    "swir22": "B12",
    "scl": "SCL",
    "aot": "AOT",
    "wvp": "WVP",
}
V0_TO_V1 = {v0: v1 for v1, v0 in V1_TO_V0.items()}


# SCL classes masked by default: no data, saturated/defective, cloud shadow, cloud medium and high
# probability, thin cirrus (ESA's Sentinel-2 L2A scene classification).
SCL_CLASSES = {
    0: "no data",
    1: "saturated or defective",
    2: "dark area pixels",
    3: "cloud shadows",
    4: "vegetation",
    5: "not vegetated",
    6: "water",
    7: "unclassified",
    8: "cloud medium probability",
    9: "cloud high probability",
    10: "thin cirrus",
    11: "snow",
}
CLOUDY_SCL: tuple[int, ...] = (0, 1, 3, 8, 9, 10)
SCL = "SCL"
# Native resolution (m) of each L2A band as the archive stores it.
RESOLUTION = {
    "B01": 60,
    "B02": 10,
    "B03": 10,
    "B04": 10,
    "B05": 20,
    "B06": 20,
    "B07": 20,
    "B08": 10,
    "B8A": 20,
    "B09": 60,
    "B11": 20,
    "B12": 20,
    SCL: 20,
}
REFLECTANCE_BANDS = tuple(band for band in RESOLUTION if band != SCL)
REFLECTANCE_SCALE = 1e-4  # L2A digital numbers are reflectance x 10000 (QUANTIFICATION_VALUE)


class BandError(SputnikError):
    """A band cannot be read: missing from the item, outside the archive, unreadable or not a band."""


def band_name(name: str) -> str:
    """The archive's band name (`B04`, `SCL`) for a v0 or v1 name (`B04`, `red`, `scl`)."""
    upper = name.upper()
    if upper in RESOLUTION:
        return upper
    v0 = V1_TO_V0.get(name.lower())
    if v0 in RESOLUTION:
        return str(v0)
    raise BandError(f"unknown band {name!r}; bands are {', '.join(RESOLUTION)} or their v1 names")

"""GSDF P-value -> OD against the PS3.14 formulas and against DCMTK's dcmdspfn as an oracle."""

import subprocess

import numpy as np
import pytest

from image import gsdf
from peers import require


def _need(binary: str, package: str) -> str:
    return require(binary, package)


def _dcmdspfn_od(tmp_path, ddl_count, dmin, dmax, l0, la):
    """Run dcmdspfn and turn its GSDF column (luminance incl. ambient light, cd/m^2) into OD.

    Output format (dcmtk 3.6.7): '#' comment lines, a 'DDL\\tGSDF' header, then one
    '<ddl>\\t<luminance>' line per driving level.
    """
    exe = _need("dcmdspfn", "dcmtk")
    out = tmp_path / "gsdf.txt"
    subprocess.run([exe, "+Io", str(dmin), str(dmax), "+Ci", str(l0), "+Ca", str(la),
                    "+Cd", str(ddl_count), "+Og", str(out)], check=True, capture_output=True)
    rows = [line.split() for line in out.read_text().splitlines()
            if line[:1].isdigit()]
    ddl = np.array([int(r[0]) for r in rows])
    lum = np.array([float(r[1]) for r in rows])
    assert ddl.tolist() == list(range(ddl_count))
    return -np.log10((lum - la) / l0)


@pytest.mark.parametrize("ddl_count,dmin,dmax,l0,la", [
    (256, 0.20, 3.00, 2000, 10),
    (4096, 0.20, 3.00, 2000, 10),
    (1024, 0.10, 3.60, 4000, 5),
])
def test_p_value_to_od_matches_dcmdspfn(tmp_path, ddl_count, dmin, dmax, l0, la):
    ref = _dcmdspfn_od(tmp_path, ddl_count, dmin, dmax, l0, la)
    ours = gsdf.od_from_p_values(np.arange(ddl_count), ddl_count - 1, dmin, dmax, l0, la)
    assert np.max(np.abs(ours - ref)) < 1e-3


def test_formula_anchors():
    # PS3.14: L(1) = 10**a = 0.05 cd/m^2 and L(1023) = 3993.4 cd/m^2.
    assert gsdf.luminance_from_jnd(1.0) == pytest.approx(10 ** -1.3011877, rel=1e-12)
    assert gsdf.luminance_from_jnd(1023.0) == pytest.approx(3993.4, rel=1e-4)
    j = np.linspace(1, 1023, 200)
    assert np.allclose(gsdf.jnd_from_luminance(gsdf.luminance_from_jnd(j)), j, atol=0.5)


def test_hardcopy_luminance_roundtrip():
    od = np.linspace(0.1, 3.5, 50)
    lum = gsdf.luminance_from_od(od, 2000, 10)
    assert np.allclose(lum, 10 + 2000 * 10 ** -od)
    assert np.allclose(gsdf.od_from_luminance(lum, 2000, 10), od)


def test_p_values_are_monotone_and_span_the_density_range():
    od = gsdf.p_value_od_table(12, 0.2, 3.0)
    assert od.size == 4096
    assert np.all(np.diff(od) < 0)  # brighter P-values print less dense
    assert od[0] == pytest.approx(3.0, abs=1e-3) and od[-1] == pytest.approx(0.2, abs=1e-3)


def test_equal_p_steps_are_equal_jnd_steps():
    od = gsdf.p_value_od_table(8, 0.2, 3.0)
    j = gsdf.jnd_from_luminance(gsdf.luminance_from_od(od, 2000, 10))
    assert np.allclose(np.diff(j), np.diff(j).mean(), rtol=1e-3)


@pytest.mark.parametrize("kwargs,word", [
    (dict(dmin=2.0, dmax=1.0), "Min Density"),
    (dict(dmin=0.2, dmax=3.0, illumination=0), "Illumination"),
    (dict(dmin=0.2, dmax=9.0, illumination=100, ambient=0), "outside the GSDF range"),
])
def test_bad_parameters_are_named(kwargs, word):
    with pytest.raises(ValueError, match=word):
        gsdf.od_from_p_values([0], 255, **kwargs)

"""How long Yosys plus nextpnr will take on a design, estimated from its size before they run.

Synthesis and place-and-route time grow faster than linearly with the design: a fully unrolled TFC (26 k
estimated LUTs) ran more than 30 minutes in Yosys without a word beforehand. The model is a power law in the
estimated LUTs of hw.estimate (the input `pqhw compile` has anyway), seconds = A * kLUTs ** B per family,
fitted on measured runs (`make bench ONLY=synth_time`, bench/synth_time.py; the fit's points are named in
FITS). `pqhw compile --board` and `pqhw flow` print one line when a folding is estimated to take longer
than WARN_MINUTES, suggesting a folder folding.
"""
from __future__ import annotations

import math

# seconds = a * (estimated LUTs / 1000) ** b, yosys synth_ecp5 + nextpnr-ecp5 on this machine kind (one core
# of a shared 2-core machine); see bench/results.json "synth_time" for the measured rows.
# The iCE40UP5K (5,280 cells) and GW1NR-9 (8,640 LUTs) hold no design that takes long: only ECP5 is fitted.
# ECP5: five designs of 2.1-14.2 k estimated LUTs, 68 s to 35 minutes (bench/results.json "synth_time"); the
# largest, the unrolled digits net, counts with its second run (22 min Yosys + 12 min nextpnr); its first was
# stopped after 16 minutes in Yosys. The second was recorded as "-noabc9", an option Yosys 0.70's synth_ecp5
# accepts and ignores (it always runs ABC9): both were default runs, on a loaded machine.
FITS = {
    "ecp5": {"a": 24.33, "b": 1.719, "points": 5, "source": "python -m bench.synth_time, ulx3s-85f, seed 1"},
}
WARN_MINUTES = 10.0


def fit_power_law(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least squares in log-log space: (a, b) with seconds = a * (luts / 1000) ** b."""
    pts = [(math.log(luts / 1000.0), math.log(secs)) for luts, secs in points if luts > 0 and secs > 0]
    if len(pts) < 2:
        raise ValueError("a power law needs at least two measured designs")
    n = len(pts)
    mx = sum(x for x, _ in pts) / n
    my = sum(y for _, y in pts) / n
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    if sxx == 0:
        raise ValueError("the measured designs all have the same size")
    b = sum((x - mx) * (y - my) for x, y in pts) / sxx
    return math.exp(my - b * mx), b


def estimate_seconds(luts: float, family: str) -> float | None:
    """Estimated seconds of synthesis plus place and route for a design of `luts` estimated LUTs; None for
    a family without a fit."""
    fit = FITS.get(family)
    if fit is None or luts <= 0:
        return None
    return fit["a"] * (luts / 1000.0) ** fit["b"]


def long_synthesis_warning(family: str, total: dict | None, warn_minutes: float | None = None) -> str | None:
    """One line when a design of these estimated resources (estimate.json's "total") will take longer than
    warn_minutes (default WARN_MINUTES) to synthesise and place; None when it will not, or when nothing can be
    said (no estimate, no fit)."""
    if not total:
        return None
    luts = int(total.get("luts", 0))
    secs = estimate_seconds(luts, family)
    if secs is None or secs < 60.0 * (WARN_MINUTES if warn_minutes is None else warn_minutes):
        return None
    return (f"warning: synthesis and place and route of this folding ({luts:,} estimated LUTs) are estimated at "
            f"about {secs / 60.0:.0f} minutes on {family.upper()}; a folder folding (lower --target-fps, or "
            f"smaller PE/SIMD in --folding) builds much faster")


def synthesis_estimate(family: str | None, total: dict | None) -> dict:
    """compile.json's synthesis entries: estimated minutes (None without a fit) and the warning, if any."""
    secs = estimate_seconds(int(total.get("luts", 0)), family) if total and family else None
    return {"synthesis_minutes_estimate": None if secs is None else round(secs / 60.0, 1),
            "synthesis_warning": long_synthesis_warning(family, total) if family else None}

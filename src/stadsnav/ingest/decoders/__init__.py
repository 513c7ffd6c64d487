"""Device payload decoders: one module per device model, each a pure function of the bytes.

``decode(model, fport, payload)`` turns one uplink's application payload into readings, or
raises DecodeError saying why it cannot. Model ids are the names of the documented payload
files (``tests/data/devices/<model>.json``), ``<vendor>-<model>``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from stadsnav.ingest.decoders import (
    axioma_qalcosonic_w1,
    decentlab_dl_atm41,
    decentlab_dl_mbx,
    decentlab_dl_ntu,
    decentlab_dl_pm,
    elsys_elt_2_hp,
    elsys_ers_co2,
    json_environment,
    milesight_em310_udl,
    milesight_em400_tld,
    nas_ul20xx,
    niab_fls,
    sensative_strips,
    unknown_airquality_pm_no2,
    vega_vegapuls_air_41,
)
from stadsnav.ingest.decoders.base import DecodeError, Reading

__all__ = ["MODELS", "DecodeError", "Decoder", "Reading", "decode"]

Decoder = Callable[[int, bytes], list[Reading]]

MODELS: Mapping[str, Decoder] = MappingProxyType(
    {
        "axioma-qalcosonic-w1": axioma_qalcosonic_w1.decode,
        "decentlab-dl-atm41": decentlab_dl_atm41.decode,
        "decentlab-dl-mbx": decentlab_dl_mbx.decode,
        "decentlab-dl-ntu": decentlab_dl_ntu.decode,
        "decentlab-dl-pm": decentlab_dl_pm.decode,
        "elsys-elt-2-hp": elsys_elt_2_hp.decode,
        "elsys-ers-co2": elsys_ers_co2.decode,
        "json-environment": json_environment.decode,
        "milesight-em310-udl": milesight_em310_udl.decode,
        "milesight-em400-tld": milesight_em400_tld.decode,
        "nas-ul20xx": nas_ul20xx.decode,
        "niab-fls": niab_fls.decode,
        "sensative-strips": sensative_strips.decode,
        "unknown-airquality-pm-no2": unknown_airquality_pm_no2.decode,
        "vega-vegapuls-air-41": vega_vegapuls_air_41.decode,
    }
)


def decode(model: str, fport: int, payload: bytes) -> list[Reading]:
    """The readings in one uplink of a device of this model; DecodeError if there are none to
    be had (unknown model, malformed or unsupported payload)."""
    decoder = MODELS.get(model)
    if decoder is None:
        raise DecodeError(f"device model {model!r} unknown")
    return decoder(fport, payload)

"""The Stockholm fleet simulator: a living city of LoRaWAN devices for demos and benchmarks.

The modules follow an uplink's way from the street to the platform:

- ``fleet``: which devices exist, of which model, where in which district, measuring which
  entity; exported as the CSV/GeoJSON the device registry imports;
- ``world``: what they measure: bins filling and being emptied, traffic-driven air pollution,
  Stockholm's weather with rain events, water levels, indoor air, streetlights, water meters;
- ``encoders``: the physical values as each model's payload bytes, the inverse of its decoder;
- ``faults``: silent devices, garbage payloads and duplicate deliveries, at chosen rates;
- ``envelopes``: the payload wrapped as a ChirpStack v4 or The Things Stack v3 uplink;
- ``runner``: the schedule as a reproducible stream (``uplinks``) and its delivery over HTTP or
  MQTT at a chosen speed (``run``).

Everything but the runner is deterministic: the same fleet, seed and time window give the same
bytes, so a benchmark can replay exactly what a demo showed.
"""

"""Device profiles: the city's guidelines for each device model, as code.

A profile states what a model must provide before a device of it may be registered: the
quantities it measures (the reading names and UN/CEFACT units its decoder emits, with the range
each can physically take), the purposes it serves (Smart Data Models ``controlledProperty``
values, and from which readings), how often it reports, how it is powered, how it must be
secured on the network, and which Smart Data Models entity types it may feed. Registration
checks a device against its model's profile (devices/registration.py); health alarms read the
reporting interval, the battery kind and the ranges.

There is one profile per decoder model (``stadsnav.ingest.decoders.MODELS``); the tests decode
every documented payload of a model and check that its profile claims nothing the decoder does
not emit.

Ranges are what a quantity can physically be where these devices are installed (Stockholm,
outdoors, in containers, wells, water and buildings) and within the sensor's measuring range:
not alarm thresholds, but the bounds outside which a reading is a faulty sensor or decoder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from stadsnav.ingest import mapping

Battery = Literal["level", "voltage", "alarm", "mains", "unreported"]


@dataclass(frozen=True, slots=True)
class Quantity:
    """A reading a model provides: its decoder name, its unit (None where the decoder gives
    none) and the range it can physically take (None: unbounded, or not a number)."""

    reading: str
    unit: str | None
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True, slots=True)
class Purpose:
    """A Smart Data Models ``controlledProperty`` a model serves, and the readings it comes
    from. ``primary`` purposes are what the model is installed for, the default when a
    registration names none. ``targets`` limits a purpose to devices that feed one of these
    entity types: a distance becomes a filling level only over a container, a water level
    only over water."""

    property: str
    readings: tuple[str, ...]
    primary: bool = True
    targets: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Reporting:
    """Seconds between uplinks: as configured by default, and the longest a device may be set
    to (beyond it, the data is too old for its purpose)."""

    expected: int
    longest: int


@dataclass(frozen=True, slots=True)
class Security:
    """How a device of the model must be connected."""

    transport: Literal["lorawan", "mqtt"]
    requirement: str


# Sending more often than this wastes the radio's duty cycle and a battery's life.
SHORTEST_INTERVAL = 60

LORAWAN_OTAA = Security(
    "lorawan",
    "LoRaWAN 1.0.3 or later, over-the-air activation (OTAA) with an AES-128 root key (AppKey) "
    "unique to the device and held only by the network server; no ABP, no shared keys",
)

MQTT_CREDENTIALS = Security(
    "mqtt",
    "MQTT over the platform's broker with the device's own secret (stadsnav devices "
    "rotate-secret), publishing only on its own topic stadsnav/devices/<key>/up; or HTTPS POST "
    "to /ingest/devices/<key> with that secret as a bearer token",
)


@dataclass(frozen=True, slots=True)
class Profile:
    model: str  # the decoder's model id
    vendor: str
    product: str
    category: tuple[str, ...]  # Smart Data Models deviceCategory
    quantities: tuple[Quantity, ...]
    purposes: tuple[Purpose, ...]
    reporting: Reporting
    battery: Battery
    security: Security
    # Entity types the device may feed (None: it may feed none, only its own Device entity).
    targets: frozenset[str | None]
    # Measures one thing (a room, a building's water supply) rather than its surroundings:
    # only another device on the same thing duplicates it, however near others stand.
    asset_bound: bool = False

    def quantity(self, reading: str) -> Quantity | None:
        return next((q for q in self.quantities if q.reading == reading), None)

    def purposes_for(self, target_type: str | None) -> tuple[Purpose, ...]:
        """The purposes a device of this model serves when it feeds `target_type`."""
        return tuple(p for p in self.purposes if p.targets is None or target_type in p.targets)

    def default_properties(self, target_type: str | None) -> tuple[str, ...]:
        return tuple(p.property for p in self.purposes_for(target_type) if p.primary)

    def required_settings(self, target_type: str | None) -> tuple[str, ...]:
        """Installation settings the mapping needs to turn this model's readings into the
        target's attributes: the bin depth under a distance sensor, the height of a sensor
        over the water."""
        target = None if target_type is None else mapping.TARGETS.get(target_type)
        if target is None or target.from_distance is None or self.quantity("distance") is None:
            return ()
        return (target.from_distance.setting,)


_CONTAINERS = frozenset({"WasteContainer"})
_WATERS = frozenset({"WaterObserved", "FloodMonitoring"})


def _distance_sensor(
    model: str,
    vendor: str,
    product: str,
    *,
    distance: float,
    battery: Battery,
    temperature: bool,
    interval: int,
    targets: frozenset[str],
) -> Profile:
    """A downward-looking distance sensor: over a container it measures how full it is, over
    water how high the water stands (``distance``: the farthest it measures, in metres)."""
    battery_quantity = (
        Quantity("batteryLevel", "P1", 0, 1)
        if battery == "level"
        else Quantity("batteryVoltage", "VLT", 0, 3.7)
    )
    purposes = []
    if targets & _CONTAINERS:
        purposes.append(Purpose("fillingLevel", ("distance",), targets=targets & _CONTAINERS))
    if targets & _WATERS:
        purposes.append(Purpose("waterLevel", ("distance",), targets=targets & _WATERS))
    quantities = [Quantity("distance", "MTR", 0, distance), battery_quantity]
    if temperature:
        # Inside a container in the sun, or over water in winter.
        quantities.append(Quantity("temperature", "CEL", -40, 70))
        purposes.append(Purpose("temperature", ("temperature",), primary=False))
    return Profile(
        model,
        vendor,
        product,
        ("sensor",),
        tuple(quantities),
        tuple(purposes),
        Reporting(interval, 6 * 3600),
        battery,
        LORAWAN_OTAA,
        frozenset(targets),
    )


_TEMPERATURE_OUTDOORS = Quantity("temperature", "CEL", -40, 60)
_HUMIDITY = Quantity("relativeHumidity", "P1", 0, 1)
# The lowest and highest sea-level pressures ever recorded, in hectopascals.
_PRESSURE = Quantity("atmosphericPressure", "A97", 870, 1085)
_DECENTLAB_BATTERY = Quantity("batteryVoltage", "VLT", 0, 3.7)

_PROFILES = (
    Profile(
        "axioma-qalcosonic-w1",
        "Axioma Metering",
        "Qalcosonic W1 ultrasonic water meter",
        ("meter",),
        (
            # The register shows at most 99 999.999 m³.
            Quantity("waterConsumption", "MTQ", 0, 99_999.999),
            Quantity("temperature", "CEL", 0, 50),
            Quantity("lowBatteryAlarm", None),
        ),
        (
            Purpose("waterConsumption", ("waterConsumption",)),
            Purpose("temperature", ("temperature",), primary=False),
        ),
        Reporting(3600, 24 * 3600),
        "alarm",
        LORAWAN_OTAA,
        # Smart Data Models has no consumption type the mapping writes: the meter's readings
        # stay on its Device entity.
        frozenset({None}),
        asset_bound=True,
    ),
    Profile(
        "decentlab-dl-atm41",
        "Decentlab",
        "DL-ATM41 weather station",
        ("sensor",),
        (
            _TEMPERATURE_OUTDOORS,
            _HUMIDITY,
            _PRESSURE,
            Quantity("precipitation", "MMT", 0, 500),
            Quantity("windSpeed", "MTS", 0, 75),
            Quantity("gustSpeed", "MTS", 0, 90),
            Quantity("windDirection", "DD", 0, 360),
            # Sunlight at the ground stays below the solar constant (1361 W/m²).
            Quantity("solarRadiation", "D54", 0, 1500),
            _DECENTLAB_BATTERY,
        ),
        (
            Purpose("temperature", ("temperature",)),
            Purpose("humidity", ("relativeHumidity",)),
            Purpose("atmosphericPressure", ("atmosphericPressure",)),
            Purpose("precipitation", ("precipitation",)),
            Purpose("windSpeed", ("windSpeed", "gustSpeed")),
            Purpose("windDirection", ("windDirection",)),
            Purpose("solarRadiation", ("solarRadiation",)),
        ),
        Reporting(600, 3600),
        "voltage",
        LORAWAN_OTAA,
        frozenset({"WeatherObserved"}),
    ),
    _distance_sensor(
        "decentlab-dl-mbx",
        "Decentlab",
        "DL-MBX ultrasonic distance sensor",
        distance=10,
        battery="voltage",
        temperature=False,
        interval=600,
        targets=_CONTAINERS | _WATERS,
    ),
    Profile(
        "decentlab-dl-ntu",
        "Decentlab",
        "DL-NTU turbidity and temperature sensor",
        ("sensor",),
        (
            # The sensor's measuring range, in NTU.
            Quantity("turbidity", None, 0, 4000),
            Quantity("temperature", "CEL", -5, 40),
            _DECENTLAB_BATTERY,
        ),
        (
            Purpose("turbidity", ("turbidity",)),
            Purpose("temperature", ("temperature",), primary=False),
        ),
        Reporting(900, 6 * 3600),
        "voltage",
        LORAWAN_OTAA,
        frozenset({"WaterQualityObserved"}),
    ),
    Profile(
        "decentlab-dl-pm",
        "Decentlab",
        "DL-PM particulate matter sensor",
        ("sensor",),
        (
            # The optical sensor's measuring range.
            *(Quantity(name, "GQ", 0, 1000) for name in ("pm1", "pm25", "pm4", "pm10")),
            _TEMPERATURE_OUTDOORS,
            _HUMIDITY,
            _PRESSURE,
            _DECENTLAB_BATTERY,
        ),
        (
            Purpose("airPollution", ("pm1", "pm25", "pm4", "pm10")),
            Purpose("temperature", ("temperature",), primary=False),
            Purpose("humidity", ("relativeHumidity",), primary=False),
            Purpose("atmosphericPressure", ("atmosphericPressure",), primary=False),
        ),
        Reporting(600, 3600),
        "voltage",
        LORAWAN_OTAA,
        frozenset({"AirQualityObserved"}),
    ),
    Profile(
        "elsys-elt-2-hp",
        "Elsys",
        "ELT-2 HP outdoor temperature, humidity and pressure sensor",
        ("sensor",),
        (_TEMPERATURE_OUTDOORS, _HUMIDITY, _PRESSURE, Quantity("batteryVoltage", "VLT", 0, 3.7)),
        (
            Purpose("temperature", ("temperature",)),
            Purpose("humidity", ("relativeHumidity",)),
            Purpose("atmosphericPressure", ("atmosphericPressure",), primary=False),
        ),
        Reporting(900, 3600),
        "voltage",
        LORAWAN_OTAA,
        frozenset({"WeatherObserved"}),
    ),
    Profile(
        "elsys-ers-co2",
        "Elsys",
        "ERS CO2 indoor climate sensor",
        ("sensor",),
        (
            Quantity("temperature", "CEL", -10, 50),
            _HUMIDITY,
            # The NDIR sensor's measuring range.
            Quantity("co2", "59", 0, 10_000),
            Quantity("illuminance", "LUX", 0, 100_000),
            Quantity("motionCount", None, 0, None),
            Quantity("batteryVoltage", "VLT", 0, 3.7),
        ),
        (
            Purpose("temperature", ("temperature",)),
            Purpose("humidity", ("relativeHumidity",)),
            Purpose("airPollution", ("co2",)),
            Purpose("light", ("illuminance",), primary=False),
            Purpose("motion", ("motionCount",), primary=False),
        ),
        Reporting(600, 3600),
        "voltage",
        LORAWAN_OTAA,
        # Smart Data Models has no indoor-climate type the mapping writes; a room's air is an
        # AirQualityObserved.
        frozenset({"AirQualityObserved"}),
        asset_bound=True,
    ),
    _distance_sensor(
        "milesight-em310-udl",
        "Milesight",
        "EM310-UDL ultrasonic fill-level sensor",
        distance=5,
        battery="level",
        temperature=False,
        interval=1800,
        targets=_CONTAINERS,
    ),
    _distance_sensor(
        "milesight-em400-tld",
        "Milesight",
        "EM400-TLD laser fill-level sensor",
        distance=5,
        battery="level",
        temperature=True,
        interval=1800,
        targets=_CONTAINERS,
    ),
    Profile(
        "nas-ul20xx",
        "Nordic Automation Systems",
        "UL20xx streetlight controller",
        ("actuator", "meter"),
        (
            Quantity("illuminanceLevel", "P1", 0, 1),
            Quantity("illuminance", "LUX", 0, 100_000),
            Quantity("powerConsumption", "WTT", 0, 2500),
            Quantity("voltage", "VLT", 0, 300),
            Quantity("powerFactor", "C62", 0, 1),
            Quantity("powerState", None),
            Quantity("status", None),
        ),
        (
            Purpose("light", ("illuminanceLevel", "powerState", "status")),
            Purpose("power", ("powerConsumption", "voltage", "powerFactor")),
        ),
        Reporting(900, 6 * 3600),
        "mains",
        LORAWAN_OTAA,
        frozenset({"Streetlight"}),
    ),
    _distance_sensor(
        "niab-fls",
        "NIAB",
        "FLS ultrasonic fill-level sensor",
        distance=5,
        battery="level",
        temperature=True,
        interval=1800,
        targets=_CONTAINERS,
    ),
    Profile(
        "sensative-strips",
        "Sensative",
        "Strips indoor temperature, presence and leak sensor",
        ("sensor",),
        (
            Quantity("temperature", "CEL", -20, 60),
            Quantity("closeProximityAlarm", None),
            Quantity("batteryLevel", "P1", 0, 1),
        ),
        (
            Purpose("temperature", ("temperature",)),
            Purpose("occupancy", ("closeProximityAlarm",), primary=False),
        ),
        Reporting(3600, 24 * 3600),
        "level",
        LORAWAN_OTAA,
        frozenset({None}),
        asset_bound=True,
    ),
    Profile(
        "unknown-airquality-pm-no2",
        "unknown",
        "outdoor air-quality node (provisional decoder: raw particle values)",
        ("sensor",),
        (
            # Tenths of the sensor's raw units, in two bytes.
            Quantity("pm10Raw", None, 0, 6553.5),
            Quantity("pm25Raw", None, 0, 6553.5),
            _TEMPERATURE_OUTDOORS,
            _HUMIDITY,
        ),
        (
            Purpose("airPollution", ("pm10Raw", "pm25Raw")),
            Purpose("temperature", ("temperature",), primary=False),
            Purpose("humidity", ("relativeHumidity",), primary=False),
        ),
        Reporting(600, 3600),
        "unreported",
        LORAWAN_OTAA,
        frozenset({"AirQualityObserved"}),
    ),
    Profile(
        "json-environment",
        "any",
        "plain-JSON environment sensor (stadsnav's declarative JSON device format)",
        ("sensor",),
        (
            Quantity("temperature", "CEL", -40, 60),
            _HUMIDITY,
            Quantity("co2", "59", 0, 10_000),
            Quantity("pm25", "GQ", 0, 1000),
            Quantity("pm10", "GQ", 0, 1000),
            Quantity("batteryLevel", "P1", 0, 1),
        ),
        (
            Purpose("airPollution", ("co2", "pm25", "pm10")),
            Purpose("temperature", ("temperature",)),
            Purpose("humidity", ("relativeHumidity",), primary=False),
        ),
        Reporting(300, 3600),
        "level",
        MQTT_CREDENTIALS,
        frozenset({"AirQualityObserved", "WeatherObserved", None}),
    ),
    _distance_sensor(
        "vega-vegapuls-air-41",
        "VEGA Grieshaber",
        "VEGAPULS Air 41 radar level sensor",
        distance=15,
        battery="level",
        temperature=True,
        interval=900,
        targets=_CONTAINERS | _WATERS,
    ),
)

PROFILES: Mapping[str, Profile] = MappingProxyType({p.model: p for p in _PROFILES})

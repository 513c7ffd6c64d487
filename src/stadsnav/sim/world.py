"""What the simulated devices measure: Stockholm's days, weather and city life, as physics.

Every function is pure: the same device, instant and random generator give the same values.
City-wide state (weather, rain, daylight, traffic) depends on the instant alone, so every
station in the city sees the same shower; a device's own constants (how fast its bin fills,
how high its level sensor hangs) come from its DevEUI; the generator only adds measurement
noise. Cumulative quantities (bin fill, meter volumes, lamp energy) are closed-form integrals
of their rates, so they are consistent between any two instants without keeping state.

``observe`` gives one uplink's readings under the decoders' names and units (see
``stadsnav.ingest.decoders.base``), ready for ``encoders.encode``.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from stadsnav.ingest.decoders.base import Value
from stadsnav.sim.fleet import Device

Readings = dict[str, Value]

STOCKHOLM = ZoneInfo("Europe/Stockholm")
# Stortorget, Gamla stan: where city-wide quantities (daylight, lamp switching) are reckoned.
CITY_LON, CITY_LAT = 18.0707, 59.3251
# Batteries and meter counters are stated at this instant and run from it.
REFERENCE = datetime(2026, 1, 1, tzinfo=UTC)

_HOUR = 3600.0
_DAY = 86400.0
_YEAR_DAYS = 365.25
_OMEGA = 2 * math.pi / 24  # one cycle a day, per hour

# Rain comes in events: each six-hour block has this chance of one shower of 0.5-6 h. With a
# mean intensity of 1.2 mm/h that gives Stockholm's 40-60 mm a month.
_RAIN_BLOCK = 6 * _HOUR
_RAIN_CHANCE = 0.12
_RAIN_MEAN = 1.2
_RAIN_MAX = 30.0
# Rain reaches streams and storm drains through a linear reservoir with this time constant.
_RUNOFF_TAU = 12 * _HOUR
_RUNOFF_WINDOW = 6 * _RUNOFF_TAU

# A bin keeps this much after being emptied (what sticks to the bottom and the walls).
_BIN_RESIDUAL = 0.02
# Photocells switch the street lights when the sun is this far below the horizon, a little
# after sunset, when the light falls under about 50 lux.
LIGHTS_ELEVATION = -2.0
_LAMP_STANDBY_W = 1
# Lamp hours are counted from this day on (before any lamp in the fleet was installed).
_LAMP_EPOCH_DAY = int(datetime(2019, 1, 1, tzinfo=UTC).timestamp() // _DAY)


@dataclass(frozen=True, slots=True)
class Traits:
    """A device's own constants, drawn once from its DevEUI."""

    battery: float  # level at REFERENCE, 0..1
    drain_per_day: float
    exposure: float  # how much of the street's traffic reaches an air sensor, 0.3..1.5
    fill_target: float  # a bin's filling level at its pickup, if nothing overflowed
    pickup_every_days: int
    pickup_phase: int
    pickup_hour: float  # local standard time
    runoff_gain: float  # water level rise per mm of runoff, m
    turbidity: float  # NTU in dry weather
    consumption_per_day: float  # a water meter's mean use, m³
    meter_start: float  # its reading at REFERENCE, m³
    lamp_watts: int
    installed: float  # Unix time
    occupancy: float  # a room's peak use, 0..1
    offset: float  # the site's microclimate, °C
    tilt: tuple[float, float]  # a weather station's x and y orientation, degrees
    heading: int  # its compass heading, degrees


# A level sensor the fleet gave no height (not one of its level sensors), m.
_DEFAULT_SENSOR_HEIGHT = 2.0


@functools.lru_cache(maxsize=65536)
def traits(dev_eui: str) -> Traits:
    rng = random.Random(f"traits:{dev_eui}")
    installed = datetime(2019, 1, 1, tzinfo=UTC).timestamp() + rng.uniform(0, 7 * 365) * _DAY
    return Traits(
        battery=rng.uniform(0.55, 1.0),
        drain_per_day=rng.uniform(0.0001, 0.0008),
        exposure=rng.uniform(0.3, 1.5),
        fill_target=rng.uniform(0.45, 1.25),
        pickup_every_days=rng.choice((1, 2, 3, 7, 7, 14)),
        pickup_phase=rng.randrange(14),
        pickup_hour=rng.uniform(6.0, 15.0),
        runoff_gain=rng.uniform(0.01, 0.04),
        turbidity=rng.uniform(1.5, 6.0),
        # Log-uniform: from a small household to a block of flats.
        consumption_per_day=math.exp(rng.uniform(math.log(0.2), math.log(25.0))),
        meter_start=rng.uniform(50.0, 40000.0),
        lamp_watts=rng.choice((24, 36, 48, 60, 80)),
        installed=installed,
        occupancy=rng.uniform(0.3, 1.0),
        offset=rng.gauss(0.0, 0.4),
        tilt=(round(rng.gauss(0.0, 0.8), 1), round(rng.gauss(0.0, 0.8), 1)),
        heading=rng.randrange(360),
    )


# -- time of day -------------------------------------------------------------------------------


def _standard_hours(at: datetime) -> float:
    """Hours since the epoch on Swedish standard time (UTC+1). Daily cycles that are integrated
    (bins, meters) use it: a clock that jumps at daylight saving would break the integral."""
    return at.timestamp() / _HOUR + 1.0


def local_hour(at: datetime) -> float:
    """The hour of the day on Stockholm's clocks, daylight saving included."""
    local = at.astimezone(STOCKHOLM)
    return local.hour + local.minute / 60 + local.second / 3600


@dataclass(frozen=True, slots=True)
class DailyCycle:
    """A positive daily rate with mean 1: 1 + Σ amplitude·cos(k·ω·(h − peak)), h in hours.

    The amplitudes sum to less than 1 so that the rate never stops or reverses, which keeps the
    integrated quantities monotonic."""

    terms: tuple[tuple[float, int, float], ...]  # amplitude, harmonic, peak hour

    def integral(self, start: float, end: float) -> float:
        """∫ rate dh from ``start`` to ``end``, in rate-hours."""

        def antiderivative(h: float) -> float:
            return h + sum(
                a / (k * _OMEGA) * math.sin(k * _OMEGA * (h - p)) for a, k, p in self.terms
            )

        return antiderivative(end) - antiderivative(start)


# Waste is thrown away mostly by day, most in the afternoon.
BIN_USE = DailyCycle(((0.7, 1, 14.0),))
# Water use: high in the morning and the evening, least at night.
WATER_USE = DailyCycle(((0.5, 1, 13.0), (0.4, 2, 7.5)))


def _gauss_bump(hour: float, centre: float, width: float) -> float:
    return math.exp(-0.5 * ((hour - centre) / width) ** 2)


def traffic(at: datetime) -> float:
    """Road traffic in the city, 0 (empty streets) to 1 (the worst rush hour).

    Weekdays have the morning and the afternoon rush hours on top of day traffic; weekends one
    broad midday hump."""
    hour = local_hour(at)
    if at.astimezone(STOCKHOLM).weekday() >= 5:
        return 0.06 + 0.5 * _gauss_bump(hour, 13.5, 3.5)
    day = 0.3 / (1 + math.exp(-(hour - 6.5) * 2)) / (1 + math.exp((hour - 19.5) * 2))
    rush = 0.62 * _gauss_bump(hour, 7.75, 0.9) + 0.55 * _gauss_bump(hour, 16.75, 1.1)
    return min(1.0, 0.06 + day + rush)


# -- the sun -----------------------------------------------------------------------------------


def _sun(timestamp: float) -> tuple[float, float, float]:
    """Declination, right ascension and mean longitude of the sun, in degrees (the Astronomical
    Almanac's low-precision formulas, good to about 0.01°)."""
    n = timestamp / _DAY - 10957.5  # days since J2000.0
    mean_longitude = (280.460 + 0.9856474 * n) % 360
    anomaly = math.radians(357.528 + 0.9856003 * n)
    ecliptic = math.radians(
        mean_longitude + 1.915 * math.sin(anomaly) + 0.020 * math.sin(2 * anomaly)
    )
    obliquity = math.radians(23.439 - 0.0000004 * n)
    declination = math.degrees(math.asin(math.sin(obliquity) * math.sin(ecliptic)))
    right_ascension = math.degrees(
        math.atan2(math.cos(obliquity) * math.sin(ecliptic), math.cos(ecliptic))
    )
    return declination, right_ascension % 360, mean_longitude


def sun_elevation(at: datetime, lon: float = CITY_LON, lat: float = CITY_LAT) -> float:
    """The sun's elevation above the horizon, in degrees (no refraction)."""
    timestamp = at.timestamp()
    declination, right_ascension, _ = _sun(timestamp)
    n = timestamp / _DAY - 10957.5
    sidereal = (280.46061837 + 360.98564736629 * n + lon) % 360
    hour_angle = math.radians(sidereal - right_ascension)
    phi, delta = math.radians(lat), math.radians(declination)
    sine = math.sin(phi) * math.sin(delta) + math.cos(phi) * math.cos(delta) * math.cos(hour_angle)
    return math.degrees(math.asin(sine))


@functools.lru_cache(maxsize=8192)
def _light_hours(day: int) -> tuple[float, float]:
    """When, in UTC seconds after midnight of the Unix ``day``, the city's lights go off in the
    morning and on in the evening. Stockholm's sun always rises and sets within a UTC day."""
    noon_guess = day * _DAY + (12 - CITY_LON / 15) * _HOUR
    declination, right_ascension, mean_longitude = _sun(noon_guess)
    equation_of_time = ((mean_longitude - right_ascension + 180) % 360 - 180) * 4 / 60  # hours
    noon = 12 - CITY_LON / 15 - equation_of_time
    phi, delta = math.radians(CITY_LAT), math.radians(declination)
    cosine = (math.sin(math.radians(LIGHTS_ELEVATION)) - math.sin(phi) * math.sin(delta)) / (
        math.cos(phi) * math.cos(delta)
    )
    half_day = math.degrees(math.acos(max(-1.0, min(1.0, cosine)))) / 15
    return (noon - half_day) * _HOUR, (noon + half_day) * _HOUR


def lights_on(at: datetime) -> bool:
    """Whether the city's street lights are on: from dusk to dawn, switched city-wide."""
    timestamp = at.timestamp()
    day = math.floor(timestamp / _DAY)
    off, on = _light_hours(day)
    return not off <= timestamp - day * _DAY < on


_night_prefix: list[float] = [0.0]


def _lit_seconds_before(timestamp: float) -> float:
    """Seconds the street lights have been on from _LAMP_EPOCH_DAY up to ``timestamp``."""
    day = math.floor(timestamp / _DAY)
    index = day - _LAMP_EPOCH_DAY
    if index < 0:
        return 0.0
    # A running sum of whole nights, extended on demand: the per-day values never change.
    while len(_night_prefix) <= index:
        off, on = _light_hours(_LAMP_EPOCH_DAY + len(_night_prefix) - 1)
        _night_prefix.append(_night_prefix[-1] + off + (_DAY - on))
    off, on = _light_hours(day)
    into_day = timestamp - day * _DAY
    return _night_prefix[index] + min(into_day, off) + max(0.0, into_day - on)


def daylight(at: datetime, transmission: float) -> tuple[float, float]:
    """Global irradiance (W/m²) and illuminance (lux) under a sky letting ``transmission`` of
    the clear-sky light through. Twilight fades from about 400 lux at sunset to 3 lux at the
    end of civil twilight; the city's own light keeps the night above 0.05 lux."""
    elevation = sun_elevation(at)
    if elevation > 0:
        irradiance = 1000 * math.sin(math.radians(elevation)) * transmission
        # Daylight carries roughly 110 lumen per watt.
        return irradiance, max(400 * transmission, 110 * irradiance)
    return 0.0, max(0.05, 400 * transmission * 10 ** (elevation * 2.1 / 6))


# -- weather -----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _daily_draw(kind: str, day: int, sigma: float) -> float:
    return random.Random(f"{kind}:{day}").gauss(0.0, sigma)


def _slow_noise(kind: str, at: datetime, sigma: float, period: float = _DAY) -> float:
    """A random quantity that drifts smoothly: one draw per period, interpolated linearly."""
    position = at.timestamp() / period - 0.5
    first = math.floor(position)
    weight = position - first
    return (1 - weight) * _daily_draw(kind, first, sigma) + weight * _daily_draw(
        kind, first + 1, sigma
    )


def _season(at: datetime, lag_days: float) -> float:
    """−1 in the depth of winter to +1 at the height of summer, ``lag_days`` after the first of
    January being the coldest."""
    day_of_year = at.timetuple().tm_yday
    return -math.cos(2 * math.pi * (day_of_year - lag_days) / _YEAR_DAYS)


def air_temperature(at: datetime) -> float:
    """The city's air temperature, °C: a seasonal mean through Stockholm's normals (about −2 °C
    in late January, 17 °C in late July, 4 °C in November), a daily cycle peaking at 14:00
    that is wider in summer, and a weather anomaly drifting from day to day."""
    season = _season(at, 25)
    mean = 7.5 + 9.5 * season
    swing = 3.5 + 2.0 * season
    return (
        mean
        + swing * math.cos(_OMEGA * (local_hour(at) - 14))
        + _slow_noise("temperature", at, 2.5)
    )


@functools.lru_cache(maxsize=4096)
def _rain_event(block: int) -> tuple[float, float, float] | None:
    """The shower that starts in this six-hour block, if one does: start, end (Unix seconds)
    and intensity (mm/h)."""
    rng = random.Random(f"rain:{block}")
    if rng.random() >= _RAIN_CHANCE:
        return None
    start = block * _RAIN_BLOCK + rng.uniform(0, _RAIN_BLOCK)
    duration = rng.uniform(0.5, 6.0) * _HOUR
    return start, start + duration, min(_RAIN_MAX, rng.expovariate(1 / _RAIN_MEAN))


def _rain_events(start: float, end: float) -> list[tuple[float, float, float]]:
    """The showers overlapping [start, end]. A shower lasts at most one block, so the block
    before the first one is the only earlier one to look at."""
    first = math.floor(start / _RAIN_BLOCK) - 1
    last = math.floor(end / _RAIN_BLOCK)
    events = (_rain_event(block) for block in range(first, last + 1))
    return [e for e in events if e is not None and e[1] > start and e[0] < end]


def rain_rate(at: datetime) -> float:
    """Rain intensity over the city, mm/h."""
    timestamp = at.timestamp()
    return sum(r for s, e, r in _rain_events(timestamp, timestamp) if s <= timestamp < e)


def rainfall(start: datetime, end: datetime) -> float:
    """Rain fallen between two instants, mm."""
    a, b = start.timestamp(), end.timestamp()
    return sum(r * (min(e, b) - max(s, a)) / _HOUR for s, e, r in _rain_events(a, b))


def runoff(at: datetime) -> float:
    """Rain on its way through the drains and streams, mm: each shower fills a reservoir that
    empties exponentially, so water levels rise during rain and fall back over a day."""
    t = at.timestamp()
    stored = 0.0
    for start, end, rate in _rain_events(t - _RUNOFF_WINDOW, t):
        if start >= t:
            continue
        tau = _RUNOFF_TAU
        stored += (
            rate / _HOUR * tau * (math.exp(-(t - min(end, t)) / tau) - math.exp(-(t - start) / tau))
        )
    return stored


def sky_transmission(at: datetime) -> float:
    """The share of clear-sky sunlight the clouds let through: low under rain, and mostly low
    in a Stockholm autumn."""
    if rain_rate(at) > 0:
        return 0.2
    return min(1.0, max(0.15, 0.55 + _slow_noise("clouds", at, 0.3, _RAIN_BLOCK)))


def relative_humidity(at: datetime, temperature: float) -> float:
    dry = 0.8 - 0.03 * (temperature - air_temperature(at)) + _slow_noise("humidity", at, 0.06)
    return min(1.0, max(0.25, dry + (0.12 if rain_rate(at) > 0 else 0.0)))


def _saturation_vapour_pressure(celsius: float) -> float:
    """hPa over water (Magnus formula, WMO coefficients)."""
    return 6.112 * math.exp(17.62 * celsius / (243.12 + celsius))


def pressure(at: datetime) -> float:
    """Station pressure in the city, hPa, drifting with passing highs and lows."""
    return 1008.0 + _slow_noise("pressure", at, 10.0)


def wind(at: datetime) -> tuple[float, float]:
    """Mean wind speed (m/s) and the direction it blows from (degrees), mostly westerly."""
    speed = max(0.3, 4.0 + _slow_noise("wind", at, 1.8, _RAIN_BLOCK))
    direction = (245 + _slow_noise("wind-direction", at, 60.0)) % 360
    return speed, direction


# -- what each kind of device measures -----------------------------------------------------------


def battery_level(device: Device, at: datetime) -> float:
    own = traits(device.dev_eui)
    days = (at - REFERENCE).total_seconds() / _DAY
    return min(1.0, max(0.05, own.battery - own.drain_per_day * days))


def _battery_voltage(device: Device, at: datetime) -> float:
    # Lithium thionyl chloride cells hold 3.6 V until nearly empty, then fall off.
    return 3.0 + 0.6 * math.pow(battery_level(device, at), 0.3)


def last_emptied(device: Device, at: datetime) -> datetime:
    """The last pickup of the device's bin at or before ``at``: every few days, each bin on
    its own days and at its own hour of the route."""
    own = traits(device.dev_eui)
    hours = _standard_hours(at)
    day = math.floor(hours / 24)
    day -= (day - own.pickup_phase) % own.pickup_every_days
    pickup = day * 24 + own.pickup_hour
    if pickup > hours:
        pickup -= own.pickup_every_days * 24
    return datetime.fromtimestamp((pickup - 1.0) * _HOUR, UTC)


def fill_level(device: Device, at: datetime) -> float:
    """How full the device's bin is, 0..1: it fills with the day's use since the last pickup,
    at a rate that brings it to its fill target by the next one; some bins overflow first."""
    own = traits(device.dev_eui)
    emptied = _standard_hours(last_emptied(device, at))
    rate = own.fill_target / (own.pickup_every_days * 24)
    return min(1.0, _BIN_RESIDUAL + rate * BIN_USE.integral(emptied, _standard_hours(at)))


def no2(device: Device, at: datetime, rng: random.Random) -> float:
    """Nitrogen dioxide at an air station, µg/m³: urban background plus the street's traffic."""
    local = 40.0 * traits(device.dev_eui).exposure * traffic(at)
    return max(1.0, 7.0 + local + rng.gauss(0, 2.0))


def _particulates(device: Device, at: datetime, rng: random.Random) -> Readings:
    """Mass concentrations (µg/m³) rising with traffic; road dust from studded tyres adds
    coarse particles in the studded-tyre season (October to April)."""
    exposure = traits(device.dev_eui).exposure * traffic(at)
    dust = 1.6 if at.month >= 10 or at.month <= 4 else 1.0
    pm25 = max(0.5, 3.5 + 6.0 * exposure + rng.gauss(0, 0.8))
    pm1 = 0.75 * pm25
    pm10 = pm25 + max(0.2, 3.0 + 10.0 * exposure * dust + rng.gauss(0, 1.5))
    pm4 = pm25 + 0.4 * (pm10 - pm25)
    # Optical counters report cumulative number concentrations (particles/cm³), dominated by
    # the smallest particles.
    pm05_count = 6.5 * pm1
    return {
        "pm1": pm1,
        "pm25": pm25,
        "pm4": pm4,
        "pm10": pm10,
        "typicalParticleSize": round(480 + 60 * exposure + rng.gauss(0, 25)),
        "pm05NumberConcentration": pm05_count,
        "pm1NumberConcentration": pm05_count + 0.9 * pm1,
        "pm25NumberConcentration": pm05_count + 0.9 * pm1 + 0.1 * (pm25 - pm1),
        "pm4NumberConcentration": pm05_count + 0.9 * pm1 + 0.1 * (pm25 - pm1) + 0.01 * pm4,
        "pm10NumberConcentration": pm05_count
        + 0.9 * pm1
        + 0.1 * (pm25 - pm1)
        + 0.01 * (pm4 + pm10),
    }


def _site_temperature(device: Device, at: datetime, rng: random.Random) -> float:
    return air_temperature(at) + traits(device.dev_eui).offset + rng.gauss(0, 0.15)


def _bin(device: Device, at: datetime, rng: random.Random) -> Readings:
    depth = device.bin_depth or 1.0
    # Waste heaps unevenly, so the echo wanders by a few millimetres; a full bin reads the
    # sensor's blind zone.
    distance = max(0.03, depth * (1 - fill_level(device, at)) + rng.gauss(0, 0.004))
    readings: Readings = {
        "batteryLevel": battery_level(device, at),
        "distance": min(distance, depth + 0.02),
        "tilted": False,
    }
    if device.model == "milesight-em400-tld":
        readings["temperature"] = _site_temperature(device, at, rng)
    return readings


def _air(device: Device, at: datetime, rng: random.Random) -> Readings:
    temperature = _site_temperature(device, at, rng)
    return {
        "batteryVoltage": _battery_voltage(device, at),
        **_particulates(device, at, rng),
        "temperature": temperature,
        "relativeHumidity": relative_humidity(at, temperature),
        "atmosphericPressure": pressure(at) + rng.gauss(0, 0.1),
    }


def _weather(device: Device, at: datetime, rng: random.Random) -> Readings:
    own = traits(device.dev_eui)
    temperature = _site_temperature(device, at, rng)
    humidity = relative_humidity(at, temperature)
    speed, direction = wind(at)
    speed = max(0.0, speed + rng.gauss(0, 0.4))
    irradiance, _ = daylight(at, sky_transmission(at))
    # The wind vector's components point where the air goes, opposite to where it comes from.
    towards = math.radians(direction + 180)
    return {
        "solarRadiation": round(irradiance),
        "precipitation": rainfall(at - timedelta(seconds=device.interval_s), at),
        "lightningStrikeCount": 0,
        "lightningAverageDistance": 0,
        "windSpeed": speed,
        "windDirection": direction,
        "gustSpeed": speed * rng.uniform(1.3, 1.8),
        "temperature": temperature,
        "vaporPressure": humidity * _saturation_vapour_pressure(temperature),
        "atmosphericPressure": pressure(at) + rng.gauss(0, 0.1),
        "relativeHumidity": humidity,
        "internalTemperature": temperature + 1.0 + irradiance / 150,
        "xOrientationAngle": own.tilt[0],
        "yOrientationAngle": own.tilt[1],
        "compassHeading": own.heading,
        "northWindSpeed": speed * math.cos(towards),
        "eastWindSpeed": speed * math.sin(towards),
        "batteryVoltage": _battery_voltage(device, at),
    }


def water_level_distance(device: Device, at: datetime, rng: random.Random) -> float:
    """What a level sensor over a stream or quay measures, m: its height over the water,
    less the rise that runoff brings, with ripples."""
    own = traits(device.dev_eui)
    rise = own.runoff_gain * runoff(at)
    height = device.sensor_height or _DEFAULT_SENSOR_HEIGHT
    return max(0.05, height - rise + rng.gauss(0, 0.004))


def _vega(device: Device, at: datetime, rng: random.Random) -> Readings:
    return {
        "distance": water_level_distance(device, at, rng),
        "batteryLevel": battery_level(device, at),
        "temperature": _site_temperature(device, at, rng),
    }


def _mbx(device: Device, at: datetime, rng: random.Random) -> Readings:
    return {
        "distance": water_level_distance(device, at, rng),
        "numberOfValidSamples": rng.randint(26, 32),
        "batteryVoltage": _battery_voltage(device, at),
    }


def _turbidity(device: Device, at: datetime, rng: random.Random) -> Readings:
    """Runoff washes sediment in: turbidity climbs with rain and settles over a day."""
    ntu = traits(device.dev_eui).turbidity * (1 + 0.25 * runoff(at)) + abs(rng.gauss(0, 0.2))
    return {
        "sensorStatus": 0,
        # Surface water follows the air about a month late and never freezes through.
        "temperature": max(0.5, 8.5 + 7.5 * _season(at, 35) + rng.gauss(0, 0.05)),
        "turbidity": ntu,
        "turbidityFnu": 0.95 * ntu,
        "turbidityMassConcentration": 1.4 * ntu,
        "batteryVoltage": _battery_voltage(device, at),
    }


def occupied(at: datetime) -> bool:
    """School and office hours: weekdays 08:00-16:00."""
    local = at.astimezone(STOCKHOLM)
    return local.weekday() < 5 and 8 <= local_hour(at) < 16


def co2(device: Device, at: datetime) -> float:
    """CO2 in a room, ppm: rises towards a level set by how full the room is while it is in
    use, and is ventilated back to outdoor air afterwards."""
    local = at.astimezone(STOCKHOLM)
    hour = local_hour(at)
    if local.weekday() >= 5 or hour < 8:
        return 420.0
    rise = 900.0 * traits(device.dev_eui).occupancy
    built = rise * (1 - math.exp(-(min(hour, 16) - 8) / 1.2))
    if hour < 16:
        return 420.0 + built
    return 420.0 + built * math.exp(-(hour - 16) / 1.5)


def _indoor(device: Device, at: datetime, rng: random.Random) -> Readings:
    own = traits(device.dev_eui)
    in_use = occupied(at)
    _, outdoor_lux = daylight(at, sky_transmission(at))
    return {
        "temperature": 20.5 + (1.2 if in_use else 0.0) + own.offset + rng.gauss(0, 0.1),
        # Heated winter air is dry; people add moisture.
        "relativeHumidity": 0.27 + (0.06 * own.occupancy if in_use else 0.0) + rng.gauss(0, 0.01),
        "illuminance": round(rng.uniform(300, 500) if in_use else outdoor_lux * 0.01),
        "motionCount": rng.randint(3, 40) if in_use else int(rng.random() < 0.03),
        "co2": round(co2(device, at) + rng.gauss(0, 12)),
        "batteryVoltage": _battery_voltage(device, at),
    }


def lit_hours(device: Device, at: datetime) -> float:
    """Hours a street light has been on since it was installed."""
    installed = traits(device.dev_eui).installed
    if at.timestamp() <= installed:
        return 0.0
    return (_lit_seconds_before(at.timestamp()) - _lit_seconds_before(installed)) / _HOUR


def lamp_energy(device: Device, at: datetime) -> float:
    """Energy a street light has drawn since installation, Wh: its rated power while lit, the
    controller's standby power all the time."""
    own = traits(device.dev_eui)
    hours = max(0.0, (at.timestamp() - own.installed) / _HOUR)
    return _LAMP_STANDBY_W * hours + (own.lamp_watts - _LAMP_STANDBY_W) * lit_hours(device, at)


def _streetlight(device: Device, at: datetime, rng: random.Random) -> Readings:
    """Status and usage frames take turns, as a controller configured for both sends them."""
    own = traits(device.dev_eui)
    lit = lights_on(at)
    if int(at.timestamp() // device.interval_s) % 2:
        return {
            "activeEnergyImport": math.floor(lamp_energy(device, at)),
            "powerConsumption": own.lamp_watts if lit else _LAMP_STANDBY_W,
            "powerFactor": rng.uniform(0.93, 0.98) if lit else 0.4,
            "voltage": rng.randint(226, 234),
            "lampOnTime": lit_hours(device, at),
        }
    _, lux = daylight(at, sky_transmission(at))
    return {
        "daliConnectionError": False,
        "meteringComError": False,
        "mcuTemperature": round(air_temperature(at) + (14 if lit else 4)),
        "voltageAlertIn24h": False,
        "lampErrorAlertIn24h": False,
        "powerAlertIn24h": False,
        "powerFactorAlertIn24h": False,
        "illuminance": lux * rng.uniform(0.9, 1.1),
        "illuminanceLevel": 1.0 if lit else 0.0,
        "status": "ok",
        "powerState": "on" if lit else "off",
    }


def water_volume(device: Device, at: datetime) -> float:
    """A water meter's reading, m³: its mean daily use spread over the day's pattern."""
    own = traits(device.dev_eui)
    days = WATER_USE.integral(_standard_hours(REFERENCE), _standard_hours(at)) / 24
    return max(0.0, own.meter_start + own.consumption_per_day * days)


def _water_meter(device: Device, at: datetime, rng: random.Random) -> Readings:
    return {"waterConsumption": water_volume(device, at), "statusCode": 0}


_OBSERVERS: dict[str, Callable[[Device, datetime, random.Random], Readings]] = {
    "milesight-em310-udl": _bin,
    "milesight-em400-tld": _bin,
    "decentlab-dl-pm": _air,
    "decentlab-dl-atm41": _weather,
    "vega-vegapuls-air-41": _vega,
    "decentlab-dl-mbx": _mbx,
    "decentlab-dl-ntu": _turbidity,
    "elsys-ers-co2": _indoor,
    "nas-ul20xx": _streetlight,
    "axioma-qalcosonic-w1": _water_meter,
}
MODELS = frozenset(_OBSERVERS)


def observe(device: Device, at: datetime, rng: random.Random) -> Readings:
    """The readings the device sends at ``at``, named as its decoder names them."""
    observer = _OBSERVERS.get(device.model)
    if observer is None:
        raise ValueError(f"the simulated world has no physics for model {device.model!r}")
    return observer(device, at, rng)

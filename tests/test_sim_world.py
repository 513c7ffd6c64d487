"""The simulated world behaves like Stockholm: bins fill and get emptied, rush hours pollute,
lights follow the dark, rain raises the water, meters only count up."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from stadsnav.sim import world
from stadsnav.sim.fleet import Device, build_fleet

# A Monday in November.
MONDAY = datetime(2026, 11, 23, tzinfo=UTC)
LOCAL = world.STOCKHOLM


@pytest.fixture(scope="module")
def fleet() -> list[Device]:
    return build_fleet(600, seed=11)


def of(fleet: list[Device], *models: str) -> list[Device]:
    return [device for device in fleet if device.model in models]


def steps(start: datetime, hours: float, minutes: int) -> list[datetime]:
    return [start + timedelta(minutes=m) for m in range(0, int(hours * 60), minutes)]


def test_bins_fill_monotonically_between_emptyings(fleet: list[Device]) -> None:
    bins = of(fleet, "milesight-em310-udl", "milesight-em400-tld")[:60]
    emptyings = 0
    for device in bins:
        previous_level, previous_pickup = None, None
        for at in steps(MONDAY, 15 * 24, 20):
            level, pickup = world.fill_level(device, at), world.last_emptied(device, at)
            assert 0 <= level <= 1
            assert pickup <= at
            if previous_level is not None:
                if pickup == previous_pickup:
                    assert level >= previous_level, (device.name, at)
                else:
                    emptyings += 1
                    assert level < 0.1, "just emptied"
            previous_level, previous_pickup = level, pickup
    assert emptyings > len(bins), "every bin is emptied at least every two weeks"


def test_a_full_bin_reads_a_short_distance(fleet: list[Device]) -> None:
    device = of(fleet, "milesight-em310-udl")[0]
    assert device.bin_depth is not None
    rng = random.Random(0)
    for at in steps(MONDAY, 48, 60):
        distance = world.observe(device, at, rng)["distance"]
        expected = device.bin_depth * (1 - world.fill_level(device, at))
        assert isinstance(distance, float)
        assert distance == pytest.approx(max(0.03, expected), abs=0.02)


def test_no2_is_higher_at_rush_hour_than_at_three_in_the_morning(fleet: list[Device]) -> None:
    rng = random.Random(0)
    rush = MONDAY.replace(hour=8, tzinfo=LOCAL)
    night = MONDAY.replace(hour=3, tzinfo=LOCAL)
    assert world.traffic(rush) > 0.8 > 0.1 > world.traffic(night)
    for device in of(fleet, "decentlab-dl-pm"):
        assert world.no2(device, rush, rng) > world.no2(device, night, rng)


def test_particulates_follow_the_traffic(fleet: list[Device]) -> None:
    device = max(of(fleet, "decentlab-dl-pm"), key=lambda d: world.traits(d.dev_eui).exposure)
    rush = MONDAY.replace(hour=17, tzinfo=LOCAL)
    night = MONDAY.replace(hour=3, tzinfo=LOCAL)

    def mean_pm10(at: datetime) -> float:
        readings = [world.observe(device, at, random.Random(i))["pm10"] for i in range(50)]
        return sum(float(r) for r in readings) / len(readings)

    assert mean_pm10(rush) > mean_pm10(night) + 5


def test_weekends_have_no_rush_hour() -> None:
    saturday = (MONDAY + timedelta(days=5)).replace(hour=8, tzinfo=LOCAL)
    assert world.traffic(saturday) < world.traffic(MONDAY.replace(hour=8, tzinfo=LOCAL)) / 2


def test_streetlights_are_on_at_dark_and_off_by_day(fleet: list[Device]) -> None:
    for day in range(30):
        date = datetime(2026, 11, 1, tzinfo=LOCAL) + timedelta(days=day)
        assert world.lights_on(date.replace(hour=20))
        assert world.lights_on(date.replace(hour=6))
        assert not world.lights_on(date.replace(hour=12))
    # Midsummer: light at 22:00, still dark enough for lamps shortly after midnight.
    assert not world.lights_on(datetime(2026, 6, 21, 21, tzinfo=LOCAL))
    assert world.lights_on(datetime(2026, 6, 22, 0, 30, tzinfo=LOCAL))
    lamp = of(fleet, "nas-ul20xx")[0]
    rng = random.Random(0)
    evening, noon = MONDAY.replace(hour=20, tzinfo=LOCAL), MONDAY.replace(hour=12, tzinfo=LOCAL)
    status_at = [at for at in steps(evening, 1, 15) if world.observe(lamp, at, rng).get("status")]
    assert all(world.observe(lamp, at, rng)["powerState"] == "on" for at in status_at)
    assert world.observe(lamp, noon, rng).get("powerState", "off") == "off"


def test_the_sun_is_where_it_should_be() -> None:
    # Stockholm, November 23rd: the sun culminates at about 11:35 local time, at 90° less the
    # latitude (59.3°) plus the declination (-20.4°).
    noon = datetime(2026, 11, 23, 11, 35, tzinfo=LOCAL)
    assert world.sun_elevation(noon) == pytest.approx(10.3, abs=0.5)
    assert world.sun_elevation(noon - timedelta(hours=1)) < world.sun_elevation(noon)
    assert world.sun_elevation(noon + timedelta(hours=1)) < world.sun_elevation(noon)
    assert world.sun_elevation(noon.replace(hour=22)) < -30
    # Midsummer noon: about 54°.
    assert world.sun_elevation(datetime(2026, 6, 21, 13, 10, tzinfo=LOCAL)) == pytest.approx(
        54.1, abs=0.7
    )


def test_lamp_energy_and_hours_only_count_up_and_agree(fleet: list[Device]) -> None:
    for lamp in of(fleet, "nas-ul20xx")[:20]:
        previous_energy = previous_hours = -1.0
        for at in steps(MONDAY, 72, 30):
            energy, hours = world.lamp_energy(lamp, at), world.lit_hours(lamp, at)
            assert energy >= previous_energy
            assert hours >= previous_hours
            previous_energy, previous_hours = energy, hours
        # Over a November day the lamps burn for about sixteen hours.
        day = world.lit_hours(lamp, MONDAY + timedelta(days=1)) - world.lit_hours(lamp, MONDAY)
        assert 15 < day < 18


def test_water_meters_only_count_up(fleet: list[Device]) -> None:
    for meter in of(fleet, "axioma-qalcosonic-w1"):
        readings = [world.water_volume(meter, at) for at in steps(MONDAY, 48, 30)]
        assert readings == sorted(readings)
        assert readings[-1] > readings[0]
        # Most water is drawn in the day: 07-08 uses more than 03-04.
        morning = world.water_volume(meter, MONDAY.replace(hour=8, tzinfo=LOCAL))
        early = world.water_volume(meter, MONDAY.replace(hour=7, tzinfo=LOCAL))
        night = world.water_volume(meter, MONDAY.replace(hour=4, tzinfo=LOCAL))
        small_hours = world.water_volume(meter, MONDAY.replace(hour=3, tzinfo=LOCAL))
        assert morning - early > night - small_hours


def test_november_temperatures_and_a_daily_cycle() -> None:
    temperatures = [
        world.air_temperature(at) for at in steps(datetime(2026, 11, 1, tzinfo=UTC), 30 * 24, 60)
    ]
    mean = sum(temperatures) / len(temperatures)
    assert 0 < mean < 8
    assert min(temperatures) > -15
    assert max(temperatures) < 15
    afternoons = [
        world.air_temperature(MONDAY.replace(day=d, hour=14, tzinfo=LOCAL)) for d in range(2, 29)
    ]
    nights = [
        world.air_temperature(MONDAY.replace(day=d, hour=4, tzinfo=LOCAL)) for d in range(2, 29)
    ]
    assert sum(afternoons) > sum(nights)


def test_rain_comes_in_events_and_raises_the_water(fleet: list[Device]) -> None:
    year = datetime(2026, 1, 1, tzinfo=UTC)
    total = world.rainfall(year, year.replace(year=2027))
    assert 400 < total < 900, "Stockholm gets 500-700 mm a year"
    hours = steps(year, 60 * 24, 60)
    rainy = [at for at in hours if world.rain_rate(at) > 0]
    assert 0.02 < len(rainy) / len(hours) < 0.3
    # An hour's rainfall is the integral of the rate over it.
    shower = rainy[0]
    assert world.rainfall(shower, shower + timedelta(seconds=1)) == pytest.approx(
        world.rain_rate(shower) / 3600
    )
    # After the biggest shower of those months, level sensors read shorter distances (the water
    # came up), and turbidity has risen, compared with a dry spell.
    wettest = max(hours, key=world.runoff)
    driest = min(hours, key=world.runoff)
    assert world.runoff(wettest) > 1
    rng = random.Random(0)
    for sensor in of(fleet, "vega-vegapuls-air-41", "decentlab-dl-mbx"):
        assert world.water_level_distance(sensor, wettest, rng) < world.water_level_distance(
            sensor, driest, rng
        )
    for sensor in of(fleet, "decentlab-dl-ntu"):
        wet, dry = world.observe(sensor, wettest, rng), world.observe(sensor, driest, rng)
        assert float(wet["turbidity"]) > float(dry["turbidity"])


def test_indoor_co2_builds_up_in_school_hours(fleet: list[Device]) -> None:
    for room in of(fleet, "elsys-ers-co2"):
        assert world.co2(room, MONDAY.replace(hour=15, tzinfo=LOCAL)) > 600
        assert world.co2(room, MONDAY.replace(hour=5, tzinfo=LOCAL)) == 420
        assert world.co2(room, (MONDAY + timedelta(days=6)).replace(hour=12, tzinfo=LOCAL)) == 420


def test_observations_are_a_function_of_device_time_and_generator(fleet: list[Device]) -> None:
    for device in fleet[::25]:
        at = MONDAY + timedelta(hours=13, minutes=7)
        assert world.observe(device, at, random.Random(5)) == world.observe(
            device, at, random.Random(5)
        )


def test_batteries_drain_slowly(fleet: list[Device]) -> None:
    device = fleet[0]
    now = world.battery_level(device, MONDAY)
    later = world.battery_level(device, MONDAY + timedelta(days=90))
    assert 0.05 <= later < now <= 1
    assert now - later < 0.1

"""Bulk import of a fleet over HTTP, on both backends: every row checked, a report per row."""

from __future__ import annotations

import io
from typing import Any

import httpx
import orjson
import pytest

from stadsnav.sim import fleet
from tests.helpers import assert_problem

HEADER = (
    "dev_eui,name,model,owner,lon,lat,district,target_id,target_type,bin_depth,sensor_height,"
    "interval_s,state"
)
GOOD_BIN = (
    "24e1240000000001,bin-1,milesight-em310-udl,trafikkontoret,18.0700,59.3300,Norrmalm,"
    "urn:ngsi-ld:WasteContainer:n1,WasteContainer,1.2,,1800,active"
)
CSV = "\n".join(
    [
        HEADER,
        GOOD_BIN,  # row 2
        # row 3: a bin sensor without the bin's depth
        "24e1240000000002,bin-2,milesight-em310-udl,trafikkontoret,18.0710,59.3300,Norrmalm,"
        "urn:ngsi-ld:WasteContainer:n2,WasteContainer,,,1800,active",
        # row 4: not a DevEUI
        "not-a-eui,bin-3,milesight-em310-udl,trafikkontoret,18.0720,59.3300,Norrmalm,"
        "urn:ngsi-ld:WasteContainer:n3,WasteContainer,1.2,,1800,active",
        # row 5: the DevEUI of row 2 again
        "24E1240000000001,bin-4,milesight-em310-udl,trafikkontoret,18.0730,59.3300,Norrmalm,"
        "urn:ngsi-ld:WasteContainer:n4,WasteContainer,1.2,,1800,active",
        # row 6: an air-quality station
        "70b3d57ba0000001,air-1,decentlab-dl-pm,miljoforvaltningen,18.0717,59.3195,Södermalm,"
        "urn:ngsi-ld:AirQualityObserved:a1,AirQualityObserved,,,600,active",
        # row 7: another a few metres from it, measuring the same
        "70b3d57ba0000002,air-2,decentlab-dl-pm,trafikkontoret,18.0718,59.3196,Södermalm,"
        "urn:ngsi-ld:AirQualityObserved:a2,AirQualityObserved,,,600,active",
        # row 8: a longitude that is no number
        "70b3d57ba0000003,air-3,decentlab-dl-pm,miljoforvaltningen,east,59.3195,Södermalm,"
        "urn:ngsi-ld:AirQualityObserved:a3,AirQualityObserved,,,600,active",
        # row 9: a model without a profile
        "70b3d57ba0000004,toaster,toaster-9000,miljoforvaltningen,18.0,59.3,Södermalm,,,,,600,",
        # row 10: owner and state left to the import's defaults
        "a81758fffe000001,room-1,elsys-ers-co2,,18.0500,59.3400,Vasastaden,"
        "urn:ngsi-ld:AirQualityObserved:room-1,AirQualityObserved,,,600,",
    ]
)
DEFAULTS = {"owner": "fastighetskontoret", "state": "installed"}


async def import_file(
    client: httpx.AsyncClient, body: str | bytes, media: str, **query: str
) -> dict[str, Any]:
    answer = await client.post(
        "/devices/import",
        content=body.encode() if isinstance(body, str) else body,
        headers={"Content-Type": media},
        params=query,
    )
    assert answer.status_code == 200, answer.text
    report: dict[str, Any] = answer.json()
    return report


def outcomes(report: dict[str, Any]) -> dict[int, tuple[str, str]]:
    return {r["row"]: (r["outcome"], r.get("reason", "")) for r in report["results"]}


async def test_a_csv_import_registers_the_good_rows_and_reports_why_the_others_were_rejected(
    client: httpx.AsyncClient,
) -> None:
    report = await import_file(client, CSV, "text/csv", **DEFAULTS)
    found = outcomes(report)
    assert {row: outcome for row, (outcome, _) in found.items()} == {
        2: "registered",
        3: "rejected",
        4: "rejected",
        5: "rejected",
        6: "registered",
        7: "rejected",
        8: "rejected",
        9: "rejected",
        10: "registered",
    }
    assert "needs the setting binDepth" in found[3][1]
    assert "devEUI must be 16 hexadecimal digits" in found[4][1]
    assert "repeats the devEUI of row 2" in found[5][1]
    assert "duplicate: 70b3d57ba0000001" in found[7][1]
    assert "lon is a number" in found[8][1]
    assert "No profile for device model 'toaster-9000'" in found[9][1]
    assert (report["registered"], report["alreadyRegistered"], report["rejected"]) == (3, 0, 6)

    listed = {d["devEUI"]: d for d in (await client.get("/devices")).json()}
    assert set(listed) == {"24e1240000000001", "70b3d57ba0000001", "a81758fffe000001"}
    assert listed["a81758fffe000001"]["owner"] == "fastighetskontoret"
    assert listed["a81758fffe000001"]["state"] == "installed"
    assert listed["24e1240000000001"]["settings"] == {"binDepth": 1.2, "reportingInterval": 1800}
    assert listed["24e1240000000001"]["district"] == "Norrmalm"
    device = await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Device:70b3d57ba0000001")
    assert device.status_code == 200


async def test_importing_the_same_file_again_reports_rows_as_already_registered(
    client: httpx.AsyncClient,
) -> None:
    await import_file(client, CSV, "text/csv", **DEFAULTS)
    again = await import_file(client, CSV, "text/csv", **DEFAULTS)
    found = outcomes(again)
    # Row 5 repeats row 2's DevEUI, which is registered now.
    assert found[2][0] == found[5][0] == found[6][0] == found[10][0] == "already-registered"
    assert found[7][0] == "rejected"  # still a duplicate of row 6's device
    assert (again["registered"], again["alreadyRegistered"]) == (0, 4)
    assert len((await client.get("/devices")).json()) == 3


async def test_a_duplicate_row_with_an_override_reason_is_registered(
    client: httpx.AsyncClient,
) -> None:
    csv = "\n".join(
        [
            HEADER + ",override_reason",
            "70b3d57ba0000001,air-1,decentlab-dl-pm,miljoforvaltningen,18.0717,59.3195,Södermalm,"
            "urn:ngsi-ld:AirQualityObserved:a1,AirQualityObserved,,,600,active,",
            "70b3d57ba0000002,air-2,decentlab-dl-pm,trafikkontoret,18.0718,59.3196,Södermalm,"
            "urn:ngsi-ld:AirQualityObserved:a2,AirQualityObserved,,,600,active,calibration pair",
        ]
    )
    report = await import_file(client, csv, "text/csv")
    assert report["registered"] == 2
    trail = (await client.get("/devices/70b3d57ba0000002/history")).json()
    assert [e["reason"] for e in trail if e["kind"] == "override"] == ["calibration pair"]


async def test_a_geojson_import_takes_points_and_reports_what_is_not_one(
    client: httpx.AsyncClient,
) -> None:
    def feature(geometry: dict[str, Any], **properties: Any) -> dict[str, Any]:
        return {"type": "Feature", "geometry": geometry, "properties": properties}

    good = {
        "dev_eui": "24e1240000000001",
        "model": "milesight-em400-tld",
        "owner": "trafikkontoret",
        "target_id": "urn:ngsi-ld:WasteContainer:n1",
        "target_type": "WasteContainer",
        "bin_depth": 1.1,
        "interval_s": 1800,
        "state": "active",
    }
    document = {
        "type": "FeatureCollection",
        "features": [
            feature({"type": "Point", "coordinates": [18.07, 59.33]}, **good),
            feature(
                {"type": "LineString", "coordinates": [[18.07, 59.33], [18.08, 59.33]]},
                **{**good, "dev_eui": "24e1240000000002"},
            ),
            feature(
                {"type": "Point", "coordinates": [18.07, 59.33]},
                **{**good, "dev_eui": "24e1240000000003", "colour": "green"},
            ),
            feature(
                {"type": "Point", "coordinates": [18.07, 59.33]},
                **{**good, "dev_eui": "24e1240000000004", "bin_depth": "deep"},
            ),
        ],
    }
    report = await import_file(client, orjson.dumps(document), "application/geo+json")
    found = outcomes(report)
    assert found[1][0] == "registered"
    assert "not a Point" in found[2][1]
    assert "unknown properties colour" in found[3][1]
    assert "bin_depth is a number" in found[4][1]
    shown = (await client.get("/devices/24e1240000000001")).json()
    assert shown["location"] == [18.07, 59.33]
    assert shown["settings"] == {"binDepth": 1.1, "reportingInterval": 1800}


async def test_a_simulated_fleet_export_imports_with_a_default_owner(
    client: httpx.AsyncClient,
) -> None:
    city = fleet.build_fleet(150, seed=3)
    out = io.StringIO()
    fleet.write_csv(city, out)
    report = await import_file(
        client, out.getvalue(), "text/csv", owner="stockholms-stad", state="active"
    )
    assert report["rejected"] == 0, [r for r in report["results"] if r["outcome"] == "rejected"]
    assert report["registered"] == len(city)
    geojson = orjson.dumps(fleet.geojson(city))
    again = await import_file(client, geojson, "application/geo+json", owner="stockholms-stad")
    assert again["alreadyRegistered"] == len(city)


@pytest.mark.parametrize(
    ("body", "media", "status", "problem"),
    [
        ("dev_eui,model,lon,lat,colour\n", "text/csv", 400, "BadRequestData"),
        ("dev_eui,model,lon\n", "text/csv", 400, "BadRequestData"),
        ('{"type": "Feature"}', "application/geo+json", 400, "BadRequestData"),
        ("{not json", "application/geo+json", 400, "BadRequestData"),
        (b"\xff\xfe", "text/csv", 400, "BadRequestData"),
        (HEADER, "text/plain", 415, "InvalidRequest"),
    ],
)
async def test_a_file_that_is_no_fleet_is_refused_whole(
    client: httpx.AsyncClient, body: str | bytes, media: str, status: int, problem: str
) -> None:
    answer = await client.post(
        "/devices/import",
        content=body.encode() if isinstance(body, str) else body,
        headers={"Content-Type": media},
    )
    assert_problem(answer, status, problem)


async def test_bad_import_defaults_are_refused_whole(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        "/devices/import",
        content=CSV.encode(),
        headers={"Content-Type": "text/csv"},
        params={"state": "retired"},
    )
    assert_problem(answer, 400, "BadRequestData")
    assert (await client.get("/devices")).json() == []

"""A published NGSI-LD client library works against stadsnav unmodified (ngsildclient)."""

from __future__ import annotations

from urllib.parse import urlparse

from ngsildclient import Client, Entity


def test_ngsildclient_create_retrieve_query_batch_and_delete(live_server: str) -> None:
    address = urlparse(live_server)
    client = Client(hostname=address.hostname or "", port=address.port or 0, verbose=False)
    try:
        entity = Entity("WasteContainer", "Slussen:1")
        entity.prop("fillingLevel", 0.8, unitcode="P1")
        entity.gprop("location", (59.3195, 18.0717))
        entity.rel("refDevice", "Device:d1")
        client.create(entity)

        fetched = client.get(entity.id)
        assert fetched["fillingLevel"]["value"] == 0.8
        assert fetched["location"]["value"]["coordinates"] == [18.0717, 59.3195]

        fleet = []
        for n in range(2, 12):
            more = Entity("WasteContainer", f"Slussen:{n}")
            more.prop("fillingLevel", n / 20)
            fleet.append(more)
        result = client.create(*fleet)
        assert result.ok

        found = client.query(type="WasteContainer", q="fillingLevel>0.4")
        assert sorted(e.id for e in found) == sorted(
            [entity.id] + [e.id for e in fleet if e["fillingLevel"]["value"] > 0.4]
        )
        assert client.exists(entity.id)
        client.delete(entity)
        assert not client.exists(entity.id)
    finally:
        client.close()

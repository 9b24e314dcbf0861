"""/healthz reports the database, PostGIS and every layer's row count."""


def test_healthz(client, runtime, scalar):
    body = client.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["database"]["postgresql"].startswith(str(scalar("SHOW server_version"))[:2])
    assert body["database"]["postgis"].startswith("3.")
    assert body["database"]["pgrouting"] != "not installed"
    assert set(body["layers"]) == set(runtime.catalogue.layers)
    for layer in runtime.catalogue.layers.values():
        if layer.managed:  # maintained by the service, not loaded: no load record
            assert body["layers"][layer.id]["rows"] is None
            continue
        expected = scalar(f"SELECT count(*) FROM layers.{layer.table_name}")
        assert body["layers"][layer.id]["rows"] == expected
    assert body["layers"]["libraries"]["version"] >= 1

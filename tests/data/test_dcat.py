"""The DCAT-AP 3 export, parsed back with rdflib: the mandatory classes and properties are there."""

from __future__ import annotations

import pytest
from rdflib import RDF, Graph, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF

from citybrain.org import service as org_service
from data_factories import make_entry


@pytest.fixture
def entry(db):
    made = make_entry(db, code="1010100/dcat-00001", name="独居老人信息", department="police", keywords="养老,独居",
                      update_cycle="weekly")
    db.commit()
    return made


@pytest.mark.parametrize(("path", "fmt", "media"), [("/catalog.ttl", "turtle", "text/turtle"),
                                                     ("/catalog.jsonld", "json-ld", "application/ld+json")])
def test_catalog_has_the_mandatory_dcat_ap_properties(client, db, entry, path, fmt, media):
    r = client.get(path)  # public: metadata only
    assert r.status_code == 200 and r.headers["content-type"].startswith(media)
    g = Graph().parse(data=r.text, format=fmt)
    catalogs = list(g.subjects(RDF.type, DCAT.Catalog))
    assert len(catalogs) == 1
    cat = catalogs[0]
    assert g.value(cat, DCTERMS.title) and g.value(cat, DCTERMS.description)
    assert g.value(g.value(cat, DCTERMS.publisher), FOAF.name)
    ds = URIRef(f"http://testserver/data/entries/{entry.id}")
    assert (cat, DCAT.dataset, ds) in g and (ds, RDF.type, DCAT.Dataset) in g
    assert str(g.value(ds, DCTERMS.title)) == "独居老人信息" and g.value(ds, DCTERMS.description)
    assert str(g.value(ds, DCTERMS.identifier)) == "1010100/dcat-00001"
    police = org_service.get_department_by_code(db, code="police")
    assert str(g.value(g.value(ds, DCTERMS.publisher), FOAF.name)) == police.name
    assert {str(k) for k in g.objects(ds, DCAT.keyword)} == {"养老", "独居"}
    assert str(g.value(ds, DCTERMS.accrualPeriodicity)).endswith("/frequency/WEEKLY")
    dist = g.value(ds, DCAT.distribution)
    assert (dist, RDF.type, DCAT.Distribution) in g
    assert str(g.value(dist, DCAT.accessURL)).endswith(f"datastore_search?resource_id={entry.resource_id}")
    assert str(g.value(dist, DCTERMS.format)).endswith("/file-type/JSON")
    services = list(g.subjects(RDF.type, DCAT.DataService))
    assert len(services) == 1
    svc = services[0]
    assert g.value(svc, DCTERMS.title) and str(g.value(svc, DCAT.endpointURL)) == "http://testserver/api/3/action/"
    assert (svc, DCAT.servesDataset, ds) in g


def test_every_dataset_has_title_description_and_an_access_url(client, entry):
    g = Graph().parse(data=client.get("/catalog.ttl").text, format="turtle")
    datasets = list(g.subjects(RDF.type, DCAT.Dataset))
    assert datasets
    for ds in datasets:
        assert g.value(ds, DCTERMS.title) and g.value(ds, DCTERMS.description), ds
        assert g.value(g.value(ds, DCAT.distribution), DCAT.accessURL), ds
    # No rows: a personal value of the resources never appears in the catalog.
    assert "370306" not in client.get("/catalog.jsonld").text.replace("370306001", "")

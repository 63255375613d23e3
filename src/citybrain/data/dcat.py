"""The catalog as DCAT-AP 3 (RDF with rdflib): ``/catalog.ttl`` and ``/catalog.jsonld``.

Metadata only, never rows: one ``dcat:Catalog`` published by the big-data bureau, one
``dcat:Dataset`` per catalog entry (its provider department as ``dct:publisher``), one
``dcat:Distribution`` per dataset whose ``dcat:accessURL`` is the CKAN ``datastore_search`` of its
resource, and one ``dcat:DataService`` for the CKAN Action API serving every dataset.
Frequencies and formats use the EU Publications Office authority tables, as DCAT-AP asks.
"""

from __future__ import annotations

from collections.abc import Iterable

from rdflib import RDF, XSD, BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF
from sqlalchemy import select
from sqlalchemy.orm import Session

from citybrain.org.models import Department

from .ckan_package import tags_of
from .models import CatalogEntry

FREQ = Namespace("http://publications.europa.eu/resource/authority/frequency/")
FILE_TYPE = Namespace("http://publications.europa.eu/resource/authority/file-type/")
ACCESS_RIGHTS = Namespace("http://publications.europa.eu/resource/authority/access-right/")
FREQUENCIES = {"realtime": "CONT", "daily": "DAILY", "weekly": "WEEKLY", "monthly": "MONTHLY",
               "quarterly": "QUARTERLY", "yearly": "ANNUAL", "irregular": "IRREG"}
# 无条件共享 → public inside government; 有条件共享 → restricted; 不予共享 → non-public.
ACCESS = {"unconditional": "PUBLIC", "conditional": "RESTRICTED", "none": "NON_PUBLIC"}
CATALOG_TITLE = "政务信息资源目录 (government information resource catalog)"
CATALOG_DESCRIPTION = ("The district big data center's catalog of government information resources "
                       "(GB/T 21063), with their sharing type and a DataStore API for the shared rows.")
BUREAU_CODE = "bigdata"


def _agent(g: Graph, base: str, dept: Department) -> URIRef:
    node = URIRef(f"{base}/organization/{dept.code}")
    g.add((node, RDF.type, FOAF.Agent))
    g.add((node, FOAF.name, Literal(dept.name, lang="zh")))
    g.add((node, DCTERMS.identifier, Literal(dept.code)))
    return node


def _dataset(g: Graph, base: str, entry: CatalogEntry, publisher: URIRef) -> URIRef:
    ds = URIRef(f"{base}/data/entries/{entry.id}")
    g.add((ds, RDF.type, DCAT.Dataset))
    g.add((ds, DCTERMS.title, Literal(entry.name, lang="zh")))
    g.add((ds, DCTERMS.description, Literal(entry.abstract or entry.name, lang="zh")))
    g.add((ds, DCTERMS.identifier, Literal(entry.code)))
    g.add((ds, DCTERMS.publisher, publisher))
    g.add((ds, DCTERMS.accessRights, ACCESS_RIGHTS[ACCESS.get(entry.sharing_type, "NON_PUBLIC")]))
    if entry.update_cycle in FREQUENCIES:
        g.add((ds, DCTERMS.accrualPeriodicity, FREQ[FREQUENCIES[entry.update_cycle]]))
    for tag in tags_of(entry.keywords):
        g.add((ds, DCAT.keyword, Literal(tag, lang="zh")))
    if entry.published_on:
        g.add((ds, DCTERMS.issued, Literal(entry.published_on, datatype=XSD.date)))
    g.add((ds, DCTERMS.modified, Literal(entry.updated_at.replace(microsecond=0), datatype=XSD.dateTime)))
    g.add((ds, DCAT.landingPage, URIRef(f"{base}/data/entries/{entry.id}")))
    dist = URIRef(f"{base}/data/entries/{entry.id}#datastore")
    g.add((ds, DCAT.distribution, dist))
    g.add((dist, RDF.type, DCAT.Distribution))
    g.add((dist, DCTERMS.title, Literal(f"{entry.name} (DataStore API)", lang="zh")))
    g.add((dist, DCAT.accessURL, URIRef(f"{base}/api/3/action/datastore_search?resource_id={entry.resource_id}")))
    g.add((dist, DCTERMS.format, FILE_TYPE.JSON))
    g.add((dist, DCAT.mediaType, URIRef("https://www.iana.org/assignments/media-types/application/json")))
    g.add((dist, DCAT.accessService, URIRef(f"{base}/api/3/action/")))
    return ds


def catalog_graph(db: Session, *, base_url: str) -> Graph:
    base = base_url.rstrip("/")
    g = Graph()
    for prefix, ns in (("dcat", DCAT), ("dct", DCTERMS), ("foaf", FOAF), ("freq", FREQ), ("filetype", FILE_TYPE),
                       ("access", ACCESS_RIGHTS)):
        g.bind(prefix, ns)
    depts = {d.id: d for d in db.scalars(select(Department))}
    cat = URIRef(f"{base}/catalog")
    g.add((cat, RDF.type, DCAT.Catalog))
    g.add((cat, DCTERMS.title, Literal(CATALOG_TITLE, lang="zh")))
    g.add((cat, DCTERMS.description, Literal(CATALOG_DESCRIPTION, lang="en")))
    g.add((cat, DCTERMS.publisher, _publisher(g, base, depts.values())))
    g.add((cat, FOAF.homepage, URIRef(f"{base}/data")))
    service = URIRef(f"{base}/api/3/action/")
    g.add((service, RDF.type, DCAT.DataService))
    g.add((service, DCTERMS.title, Literal("CKAN Action API (DataStore)", lang="en")))
    g.add((service, DCAT.endpointURL, service))
    g.add((service, DCAT.endpointDescription, URIRef(f"{base}/docs")))
    g.add((cat, DCAT.service, service))
    agents: dict[int, URIRef] = {}
    for entry in db.scalars(select(CatalogEntry).order_by(CatalogEntry.code)):
        dept = depts[entry.provider_department_id]
        agent = agents.get(dept.id) or agents.setdefault(dept.id, _agent(g, base, dept))
        ds = _dataset(g, base, entry, agent)
        g.add((cat, DCAT.dataset, ds))
        g.add((service, DCAT.servesDataset, ds))
    return g


def _publisher(g: Graph, base: str, depts: Iterable[Department]) -> URIRef | BNode:
    bureau = next((d for d in depts if d.code == BUREAU_CODE), None)
    if bureau is not None:
        return _agent(g, base, bureau)
    node = BNode()
    g.add((node, RDF.type, FOAF.Agent))
    g.add((node, FOAF.name, Literal("区级大数据中心 (district big data center)", lang="zh")))
    return node


def turtle(db: Session, *, base_url: str) -> str:
    return catalog_graph(db, base_url=base_url).serialize(format="turtle")


def jsonld(db: Session, *, base_url: str) -> str:
    g = catalog_graph(db, base_url=base_url)
    context = {"dcat": str(DCAT), "dct": str(DCTERMS), "foaf": str(FOAF)}
    return g.serialize(format="json-ld", context=context, indent=None)

"""Catalog search: Chinese words (all must match), relevance, filters, facets and paging.

The demo catalog is loaded too, so the entries made here use words it does not contain (游客, 景区)
whenever a test counts results."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from citybrain.core.errors import Invalid
from citybrain.data import search
from citybrain.data.models import CatalogEntry
from data_factories import make_entry

ITEMS = [{"code": "spot", "name": "地点"}, {"code": "visitors", "name": "数量", "data_type": "integer"}]


def tourism(db, n: int, name: str, department: str = "police", sharing: str = "unconditional", **extra):
    return make_entry(db, code=f"2130100/{department}-0{n:04d}", name=name, department=department, sharing=sharing,
                      items=ITEMS, key_fields=["spot"], class_kind="thematic", class_code="2-13-001",
                      abstract=extra.pop("abstract", "周村古商城接待情况"), **extra)


@pytest.fixture
def three(db):
    return [tourism(db, 1, "游客接待统计", "police", "unconditional", database="economy"),
            tourism(db, 2, "景区游客流量", "market", "conditional", update_cycle="daily"),
            tourism(db, 3, "古商城客流信息", "police", "none", abstract="按小时统计的游客数")]


def codes(result) -> list[str]:
    return [e.code for e in result.entries]


def test_a_chinese_word_finds_the_entries_whose_text_contains_it(db) -> None:
    mine = make_entry(db, code="1010100/police-09001", name="户籍人口信息")
    result = search.search(db, q="人口", limit=1000)
    assert mine.code in codes(result)
    assert result.words == ["人口"]
    assert all(" 人口 " in e.search_text for e in result.entries)


def test_every_word_of_the_query_must_match(db, three) -> None:
    assert search.search(db, q="游客").total == 3
    assert search.search(db, q="游客 景区").total == 1  # 景区 is only in entry 2's name
    assert search.search(db, q="游客 潜水艇").total == 0  # one word matches nothing: no result at all


def test_words_in_the_name_rank_before_words_in_the_abstract(db, three) -> None:
    result = search.search(db, q="游客统计")
    assert result.words == ["游客", "统计"]
    assert codes(result)[0] == three[0].code  # both words in its name
    assert codes(result)[-1] == three[2].code  # both words in its abstract only


def test_facets_count_the_matched_set(db, three) -> None:
    result = search.search(db, q="游客")
    assert [(v, n) for v, _label, n in result.facets["department"]] == [("police", 2), ("market", 1)]
    assert sorted(result.facets["sharing_type"]) == [("conditional", "Conditional sharing", 1),
                                                     ("none", "Not shared", 1),
                                                     ("unconditional", "Unconditional sharing", 1)]
    assert result.facets["class_kind"] == [("thematic", "Thematic resource", 3)]
    assert result.facets["database"] == [("economy", "Economic monitoring", 1)]
    assert dict((v, n) for v, _label, n in result.facets["update_cycle"]) == {"monthly": 2, "daily": 1}


def test_facet_labels_of_departments_are_their_names(db, three) -> None:
    result = search.search(db, q="游客", facets=("department",))
    assert set(result.facets) == {"department"}
    names = {v: label for v, label, _n in result.facets["department"]}
    from citybrain.org import service as org_service

    assert names["police"] == org_service.get_department_by_code(db, code="police").name


def test_filters_narrow_and_facets_follow_them(db, three) -> None:
    police = search.search(db, q="游客", filters={"department": ["police"]})
    assert sorted(codes(police)) == sorted([three[0].code, three[2].code])
    assert [(v, n) for v, _l, n in police.facets["department"]] == [("police", 2)]
    either = search.search(db, q="游客", filters={"sharing_type": ["conditional", "none"]})
    assert sorted(codes(either)) == sorted([three[1].code, three[2].code])
    both = search.search(db, q="游客", filters={"department": ["police"], "sharing_type": ["conditional"]})
    assert both.total == 0
    assert search.search(db, q="游客", filters={"database": ["economy"]}).total == 1
    assert search.search(db, q="游客", filters={"update_cycle": ["daily"]}).total == 1
    assert search.search(db, q="游客", filters={"class_code": ["2-13"]}).total == 3
    assert search.search(db, q="游客", filters={"class_code": ["1-01"]}).total == 0
    assert search.search(db, q="游客", filters={"department": ["no-such-department"]}).total == 0
    assert search.search(db, q="游客", filters={"department": [""]}).total == 3  # an empty value is no filter


def test_paging_gives_disjoint_pages_in_a_stable_order(db, three) -> None:
    first = search.search(db, q="游客", sort="code", limit=2, offset=0)
    second = search.search(db, q="游客", sort="code", limit=2, offset=2)
    assert first.total == second.total == 3
    assert codes(first) + codes(second) == sorted(e.code for e in three)
    assert search.search(db, q="游客", limit=0).entries == []
    assert len(search.search(db, q="游客", limit=None).entries) == 3


def test_an_empty_query_lists_the_whole_catalog(db, three) -> None:
    everything = db.scalar(select(func.count()).select_from(CatalogEntry))
    result = search.search(db, limit=5)
    assert result.total == everything and len(result.entries) == 5


def test_like_wildcards_and_quotes_in_the_query_match_literally(db, three) -> None:
    assert search.search(db, q="%").total == search.search(db).total  # no word: "%" is not a word
    assert " 的 " in three[2].search_text  # a one-character word that an unescaped "_" would match
    assert search.search(db, q="游客 _").total == 0
    assert search.search(db, q="a%b").total == 0
    assert search.search(db, q="游客' OR '1'='1").total == 0


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"sort": "random"}, "sort"),
    ({"filters": {"owner": ["x"]}}, "unknown filter"),
    ({"filters": {"sharing_type": ["sometimes"]}}, "sharing_type 'sometimes'"),
    ({"filters": {"database": ["nope"]}}, "database 'nope'"),
    ({"filters": {"class_code": ["1-01' --"]}}, "class_code"),
    ({"q": "人" * 201}, "longer than"),
    ({"limit": 5000}, "limit"),
    ({"offset": -1}, "offset"),
    ({"facets": ("owner",)}, "unknown facet"),
])
def test_bad_search_parameters_are_refused_with_a_reason(db, kwargs, message) -> None:
    with pytest.raises(Invalid, match=message):
        search.search(db, **kwargs)

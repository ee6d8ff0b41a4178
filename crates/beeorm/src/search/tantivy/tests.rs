//! The tantivy backend through the `SearchBackend` trait.

use std::ops::Bound;

use super::*;
use crate::search::SearchField;

const TITLE: usize = 0;
const BODY: usize = 1;
const PRICE: usize = 2;
const COLOR: usize = 3;
const LABELS: usize = 4;

fn field(name: &str, kind: SearchFieldKind, sortable: bool) -> SearchField {
    SearchField {
        name: name.to_string(),
        kind,
        sortable,
    }
}

/// title (text, sortable), body (text), price (numeric, sortable), color (tag,
/// sortable), labels (tag).
fn products(name: &str) -> SearchIndex {
    SearchIndex {
        name: name.to_string(),
        pool: "default".to_string(),
        fields: vec![
            field("title", SearchFieldKind::Text, true),
            field("body", SearchFieldKind::Text, false),
            field("price", SearchFieldKind::Numeric, true),
            field("color", SearchFieldKind::Tag, true),
            field("labels", SearchFieldKind::Tag, false),
        ],
    }
}

#[derive(Default)]
struct D {
    title: Option<&'static str>,
    body: Option<&'static str>,
    price: Option<f64>,
    color: Option<&'static str>,
    labels: Vec<&'static str>,
}

fn doc(id: u64, d: D) -> Doc {
    let mut fields = Vec::new();
    if let Some(t) = d.title {
        fields.push((TITLE, DocValue::Text(t.to_string())));
    }
    if let Some(b) = d.body {
        fields.push((BODY, DocValue::Text(b.to_string())));
    }
    if let Some(p) = d.price {
        fields.push((PRICE, DocValue::Number(p)));
    }
    if let Some(c) = d.color {
        fields.push((COLOR, DocValue::Tags(vec![c.to_string()])));
    }
    if !d.labels.is_empty() {
        fields.push((
            LABELS,
            DocValue::Tags(d.labels.iter().map(|s| s.to_string()).collect()),
        ));
    }
    Doc { id, fields }
}

fn titled(id: u64, title: &'static str) -> Doc {
    doc(
        id,
        D {
            title: Some(title),
            ..D::default()
        },
    )
}

fn all() -> CompiledQuery {
    CompiledQuery {
        text: None,
        filters: Vec::new(),
        sort: None,
        offset: 0,
        limit: 100,
    }
}

fn text(node: QueryNode) -> CompiledQuery {
    CompiledQuery {
        text: Some(node),
        ..all()
    }
}

fn t(s: &str) -> QueryNode {
    QueryNode::Term(s.to_string())
}

fn not(n: QueryNode) -> QueryNode {
    QueryNode::Not(Box::new(n))
}

fn phrase(words: &[&str]) -> QueryNode {
    QueryNode::Phrase(words.iter().map(|w| w.to_string()).collect())
}

fn ram() -> TantivyBackend {
    TantivyBackend::open("default", None).expect("open in RAM")
}

async fn ready(backend: &TantivyBackend, index: &SearchIndex, docs: &[Doc]) {
    backend.create(index).await.expect("create");
    backend.write(index, docs, &[]).await.expect("write");
}

async fn ids(backend: &TantivyBackend, index: &SearchIndex, q: &CompiledQuery) -> Vec<u64> {
    backend.search(index, q).await.expect("search").ids
}

async fn sorted_ids(backend: &TantivyBackend, index: &SearchIndex, q: &CompiledQuery) -> Vec<u64> {
    let mut ids = ids(backend, index, q).await;
    ids.sort_unstable();
    ids
}

fn search_error(r: Result<impl std::fmt::Debug>) -> String {
    match r {
        Err(Error::Search { pool, reason, .. }) => {
            assert_eq!(pool, "default");
            reason
        }
        other => panic!("expected Error::Search, got {other:?}"),
    }
}

#[tokio::test]
async fn in_ram_create_list_fingerprint_drop() {
    let b = ram();
    assert_eq!(b.describe(), "tantivy in RAM");
    assert!(b.list().await.expect("list").is_empty());
    assert_eq!(b.stored_fingerprint("p_a").await.expect("fp"), None);
    let a = products("p_a");
    let mut other = products("p_b");
    other.fields.pop();
    b.create(&a).await.expect("create a");
    b.create(&other).await.expect("create b");
    assert_eq!(b.list().await.expect("list"), ["p_a", "p_b"]);
    assert_eq!(
        b.stored_fingerprint("p_a").await.expect("fp"),
        Some(a.fingerprint())
    );
    assert_eq!(
        b.stored_fingerprint("p_b").await.expect("fp"),
        Some(other.fingerprint())
    );
    assert_ne!(a.fingerprint(), other.fingerprint());
    b.drop_index("p_a").await.expect("drop");
    b.drop_index("p_a")
        .await
        .expect("dropping a missing index is fine");
    assert_eq!(b.list().await.expect("list"), ["p_b"]);
    assert_eq!(b.stored_fingerprint("p_a").await.expect("fp"), None);
}

#[tokio::test]
async fn on_disk_create_list_fingerprint_drop() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let b = TantivyBackend::open("default", Some(tmp.path())).expect("open");
    assert_eq!(b.describe(), format!("tantivy at {}", tmp.path().display()));
    // Neither a stray directory nor a file is an index.
    std::fs::create_dir(tmp.path().join("stray")).expect("mkdir");
    std::fs::write(tmp.path().join("file"), "x").expect("write");
    assert!(b.list().await.expect("list").is_empty());
    let a = products("p_a");
    b.create(&a).await.expect("create");
    assert_eq!(b.list().await.expect("list"), ["p_a"]);
    let stored = std::fs::read_to_string(tmp.path().join("p_a").join("beeorm-index.json"))
        .expect("fingerprint file");
    assert_eq!(stored, a.fingerprint());
    assert_eq!(b.stored_fingerprint("p_a").await.expect("fp"), Some(stored));
    assert_eq!(b.stored_fingerprint("file").await.expect("fp"), None);
    b.drop_index("p_a").await.expect("drop");
    assert!(!tmp.path().join("p_a").exists());
    assert!(b.list().await.expect("list").is_empty());
    assert_eq!(b.stored_fingerprint("p_a").await.expect("fp"), None);
}

#[tokio::test]
async fn create_replaces_an_index_with_its_documents() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for b in [
        ram(),
        TantivyBackend::open("default", Some(tmp.path())).expect("open"),
    ] {
        let idx = products("p_replace");
        ready(&b, &idx, &[titled(1, "one"), titled(2, "two")]).await;
        assert_eq!(b.count(&idx).await.expect("count"), 2);
        b.create(&idx).await.expect("create again");
        assert_eq!(b.count(&idx).await.expect("count"), 0);
        b.write(&idx, &[titled(3, "three")], &[])
            .await
            .expect("write after re-create");
        assert_eq!(ids(&b, &idx, &all()).await, [3]);
    }
}

#[tokio::test]
async fn write_replaces_by_id_and_deletes() {
    let b = ram();
    let idx = products("p_write");
    ready(
        &b,
        &idx,
        &[
            titled(1, "red apple"),
            titled(2, "green pear"),
            titled(u64::MAX, "blue plum"),
        ],
    )
    .await;
    assert_eq!(b.count(&idx).await.expect("count"), 3);
    assert_eq!(ids(&b, &idx, &text(t("plum"))).await, [u64::MAX]);
    // Replace 2: the old text no longer matches.
    b.write(&idx, &[titled(2, "yellow banana")], &[])
        .await
        .expect("replace");
    assert!(ids(&b, &idx, &text(t("pear"))).await.is_empty());
    assert_eq!(ids(&b, &idx, &text(t("banana"))).await, [2]);
    assert_eq!(b.count(&idx).await.expect("count"), 3);
    // Delete (a missing ID is fine) and write in one batch.
    b.write(&idx, &[titled(4, "black grape")], &[1, 99, u64::MAX])
        .await
        .expect("batch");
    assert_eq!(sorted_ids(&b, &idx, &all()).await, [2, 4]);
    // A write and a delete of the same ID in one batch: the delete wins.
    b.write(&idx, &[titled(5, "white cherry")], &[5])
        .await
        .expect("batch");
    assert_eq!(sorted_ids(&b, &idx, &all()).await, [2, 4]);
    // The same ID twice in one batch: the last one stays.
    b.write(&idx, &[titled(6, "first"), titled(6, "second")], &[])
        .await
        .expect("batch");
    assert!(ids(&b, &idx, &text(t("first"))).await.is_empty());
    assert_eq!(ids(&b, &idx, &text(t("second"))).await, [6]);
    assert_eq!(b.count(&idx).await.expect("count"), 3);
}

async fn animals() -> (TantivyBackend, SearchIndex) {
    let b = ram();
    let idx = products("p_nodes");
    let d = |id, title, body| {
        doc(
            id,
            D {
                title: Some(title),
                body: Some(body),
                ..D::default()
            },
        )
    };
    ready(
        &b,
        &idx,
        &[
            d(1, "The QUICK brown fox", "jumps over the lazy dog"),
            d(2, "brown quick cat", "sleeps all day"),
            d(3, "slow turtle", "quick-thinking, e-mail"),
        ],
    )
    .await;
    (b, idx)
}

#[tokio::test]
async fn term_matches_any_text_field_lower_cased_without_stop_words() {
    let (b, idx) = animals().await;
    assert_eq!(sorted_ids(&b, &idx, &text(t("quick"))).await, [1, 2, 3]);
    assert_eq!(sorted_ids(&b, &idx, &text(t("fox"))).await, [1]);
    assert_eq!(sorted_ids(&b, &idx, &text(t("the"))).await, [1]);
    assert_eq!(sorted_ids(&b, &idx, &text(t("mail"))).await, [3]);
    assert!(ids(&b, &idx, &text(t("qui"))).await.is_empty());
    assert!(ids(&b, &idx, &text(t("QUICK"))).await.is_empty());
}

#[tokio::test]
async fn prefix_matches_word_starts() {
    let (b, idx) = animals().await;
    let prefix = |p: &str| text(QueryNode::Prefix(p.to_string()));
    assert_eq!(sorted_ids(&b, &idx, &prefix("qui")).await, [1, 2, 3]);
    assert_eq!(sorted_ids(&b, &idx, &prefix("tur")).await, [3]);
    assert_eq!(sorted_ids(&b, &idx, &prefix("sl")).await, [2, 3]);
    assert!(ids(&b, &idx, &prefix("urtle")).await.is_empty());
    // Regex syntax in a prefix is literal.
    assert!(ids(&b, &idx, &prefix(".*")).await.is_empty());
    assert!(ids(&b, &idx, &prefix("q[u]")).await.is_empty());
}

#[tokio::test]
async fn phrase_needs_adjacent_words_in_order() {
    let (b, idx) = animals().await;
    assert_eq!(
        sorted_ids(&b, &idx, &text(phrase(&["quick", "brown"]))).await,
        [1]
    );
    assert_eq!(
        sorted_ids(&b, &idx, &text(phrase(&["brown", "quick"]))).await,
        [2]
    );
    assert_eq!(
        sorted_ids(&b, &idx, &text(phrase(&["e", "mail"]))).await,
        [3]
    );
    assert!(ids(&b, &idx, &text(phrase(&["quick", "fox"])))
        .await
        .is_empty());
    // Across two fields is not a phrase.
    assert!(ids(&b, &idx, &text(phrase(&["fox", "jumps"])))
        .await
        .is_empty());
    // Degenerate phrases do not panic.
    assert_eq!(sorted_ids(&b, &idx, &text(phrase(&["fox"]))).await, [1]);
    assert!(ids(&b, &idx, &text(phrase(&[]))).await.is_empty());
}

#[tokio::test]
async fn and_or_not() {
    let (b, idx) = animals().await;
    let and = |n: Vec<QueryNode>| text(QueryNode::And(n));
    let or = |n: Vec<QueryNode>| text(QueryNode::Or(n));
    assert_eq!(
        sorted_ids(&b, &idx, &and(vec![t("quick"), t("brown")])).await,
        [1, 2]
    );
    assert_eq!(
        sorted_ids(&b, &idx, &and(vec![t("quick"), not(t("fox"))])).await,
        [2, 3]
    );
    assert_eq!(
        sorted_ids(
            &b,
            &idx,
            &and(vec![t("quick"), not(phrase(&["brown", "fox"]))])
        )
        .await,
        [2, 3]
    );
    assert_eq!(
        sorted_ids(&b, &idx, &or(vec![t("fox"), t("turtle")])).await,
        [1, 3]
    );
    assert_eq!(
        sorted_ids(
            &b,
            &idx,
            &and(vec![
                t("brown"),
                or(vec![t("cat"), t("dog")]).text.expect("or")
            ])
        )
        .await,
        [1, 2]
    );
    assert!(ids(&b, &idx, &and(vec![t("fox"), t("cat")]))
        .await
        .is_empty());
    assert_eq!(
        sorted_ids(&b, &idx, &and(vec![t("lazy"), phrase(&["brown", "fox"])])).await,
        [1]
    );
    assert_eq!(
        sorted_ids(
            &b,
            &idx,
            &and(vec![
                or(vec![
                    phrase(&["brown", "quick"]),
                    phrase(&["slow", "turtle"])
                ])
                .text
                .expect("or"),
                not(phrase(&["quick", "thinking"])),
                not(t("nothing")),
            ])
        )
        .await,
        [2]
    );
    let mut q = and(vec![
        phrase(&["quick", "brown"]),
        not(phrase(&["lazy", "cat"])),
    ]);
    q.filters = vec![Filter::Range {
        field: PRICE,
        min: Bound::Unbounded,
        max: Bound::Unbounded,
    }];
    assert!(ids(&b, &idx, &q).await.is_empty());
    assert!(ids(&b, &idx, &or(vec![])).await.is_empty());
    // Negations alone (the parser rejects them; the backend still answers sensibly).
    assert_eq!(
        sorted_ids(&b, &idx, &and(vec![not(t("fox"))])).await,
        [2, 3]
    );
    assert_eq!(sorted_ids(&b, &idx, &text(not(t("fox")))).await, [2, 3]);
}

#[tokio::test]
async fn field_restricts_to_one_text_field() {
    let (b, idx) = animals().await;
    let in_field = |pos, n| text(QueryNode::Field(pos, Box::new(n)));
    assert_eq!(sorted_ids(&b, &idx, &in_field(BODY, t("quick"))).await, [3]);
    assert_eq!(
        sorted_ids(&b, &idx, &in_field(TITLE, t("quick"))).await,
        [1, 2]
    );
    assert_eq!(
        sorted_ids(&b, &idx, &in_field(TITLE, phrase(&["quick", "brown"]))).await,
        [1]
    );
    assert!(ids(&b, &idx, &in_field(TITLE, t("dog"))).await.is_empty());
    let reason = search_error(b.search(&idx, &in_field(PRICE, t("quick"))).await);
    assert!(reason.contains("`price`"), "{reason}");
}

#[tokio::test]
async fn bm25_ranks_a_frequent_term_in_a_short_text_first() {
    let b = ram();
    let idx = products("p_rank");
    ready(
        &b,
        &idx,
        &[
            titled(
                1,
                "a long text that mentions rust once among many other words about cooking, \
                 gardening, travel, weather and the price of tea",
            ),
            titled(2, "rust rust rust"),
            titled(3, "nothing here"),
            titled(4, "rust and more"),
        ],
    )
    .await;
    let hits = b.search(&idx, &text(t("rust"))).await.expect("search");
    assert_eq!(hits.ids, [2, 4, 1]);
    assert_eq!(hits.total, 3);
    // Equal scores: ID order.
    let idx = products("p_rank_ties");
    ready(
        &b,
        &idx,
        &[titled(9, "same"), titled(3, "same"), titled(5, "same")],
    )
    .await;
    assert_eq!(ids(&b, &idx, &text(t("same"))).await, [3, 5, 9]);
}

async fn priced() -> (TantivyBackend, SearchIndex) {
    let b = ram();
    let idx = products("p_range");
    let p = |id, price| {
        doc(
            id,
            D {
                title: Some("item"),
                price,
                ..D::default()
            },
        )
    };
    ready(
        &b,
        &idx,
        &[
            p(1, Some(10.0)),
            p(2, Some(20.0)),
            p(3, Some(30.0)),
            p(4, None),
            p(5, Some(-1.5)),
        ],
    )
    .await;
    (b, idx)
}

fn range(min: Bound<f64>, max: Bound<f64>) -> CompiledQuery {
    CompiledQuery {
        filters: vec![Filter::Range {
            field: PRICE,
            min,
            max,
        }],
        ..all()
    }
}

#[tokio::test]
async fn range_bounds_inclusive_exclusive_unbounded() {
    use Bound::{Excluded as Ex, Included as In, Unbounded as Un};
    let (b, idx) = priced().await;
    assert_eq!(
        sorted_ids(&b, &idx, &range(In(10.0), In(20.0))).await,
        [1, 2]
    );
    assert_eq!(sorted_ids(&b, &idx, &range(Ex(10.0), Ex(30.0))).await, [2]);
    assert_eq!(
        sorted_ids(&b, &idx, &range(Ex(10.0), In(30.0))).await,
        [2, 3]
    );
    assert_eq!(sorted_ids(&b, &idx, &range(Un, In(20.0))).await, [1, 2, 5]);
    assert_eq!(sorted_ids(&b, &idx, &range(Un, Ex(10.0))).await, [5]);
    assert_eq!(sorted_ids(&b, &idx, &range(Ex(20.0), Un)).await, [3]);
    assert_eq!(sorted_ids(&b, &idx, &range(In(-1.5), In(-1.5))).await, [5]);
    // Unbounded both ways: every document that has a price (not 4).
    assert_eq!(sorted_ids(&b, &idx, &range(Un, Un)).await, [1, 2, 3, 5]);
    assert!(ids(&b, &idx, &range(In(30.0), In(10.0))).await.is_empty());
    // A range on a field that is not numeric.
    let mut q = range(In(1.0), In(2.0));
    q.filters = vec![Filter::Range {
        field: COLOR,
        min: In(1.0),
        max: Un,
    }];
    let reason = search_error(b.search(&idx, &q).await);
    assert!(reason.contains("`color`"), "{reason}");
}

#[tokio::test]
async fn filters_combine_with_text() {
    let b = ram();
    let idx = products("p_combo");
    let d = |id, title, price, color| {
        doc(
            id,
            D {
                title: Some(title),
                price: Some(price),
                color: Some(color),
                ..D::default()
            },
        )
    };
    ready(
        &b,
        &idx,
        &[
            d(1, "red shoe", 10.0, "red"),
            d(2, "blue shoe", 50.0, "blue"),
            d(3, "red hat", 15.0, "red"),
            d(4, "red shoe shoe", 90.0, "red"),
        ],
    )
    .await;
    let q = CompiledQuery {
        text: Some(t("shoe")),
        filters: vec![
            Filter::Range {
                field: PRICE,
                min: Bound::Included(5.0),
                max: Bound::Included(60.0),
            },
            Filter::AnyTag {
                field: COLOR,
                values: vec!["red".to_string()],
            },
        ],
        ..all()
    };
    let hits = b.search(&idx, &q).await.expect("search");
    assert_eq!(hits.ids, [1]);
    assert_eq!(hits.total, 1);
    // Filters do not change the ranking of the text.
    let q = CompiledQuery {
        text: Some(t("shoe")),
        filters: vec![Filter::AnyTag {
            field: COLOR,
            values: vec!["red".to_string()],
        }],
        ..all()
    };
    assert_eq!(ids(&b, &idx, &q).await, [4, 1]);
}

fn any_of(field: usize, values: &[&str]) -> CompiledQuery {
    CompiledQuery {
        filters: vec![Filter::AnyTag {
            field,
            values: values.iter().map(|v| v.to_string()).collect(),
        }],
        ..all()
    }
}

#[tokio::test]
async fn tags_match_exact_values_any_of() {
    let b = ram();
    let idx = products("p_tags");
    let c = |id, color, labels| {
        doc(
            id,
            D {
                color: Some(color),
                labels,
                ..D::default()
            },
        )
    };
    ready(
        &b,
        &idx,
        &[
            c(1, "dark red", vec!["x", "y z"]),
            c(2, "a,b; c!", vec![]),
            c(3, "قرمز", vec!["y z"]),
            c(4, "Red", vec!["x"]),
            doc(5, D::default()),
        ],
    )
    .await;
    assert_eq!(
        sorted_ids(&b, &idx, &any_of(COLOR, &["dark red"])).await,
        [1]
    );
    assert_eq!(sorted_ids(&b, &idx, &any_of(COLOR, &["Red"])).await, [4]);
    assert!(ids(&b, &idx, &any_of(COLOR, &["red"])).await.is_empty());
    assert!(ids(&b, &idx, &any_of(COLOR, &["dark"])).await.is_empty());
    assert_eq!(
        sorted_ids(&b, &idx, &any_of(COLOR, &["a,b; c!", "قرمز", "nope"])).await,
        [2, 3]
    );
    // Several values on one document (a set).
    assert_eq!(
        sorted_ids(&b, &idx, &any_of(LABELS, &["y z"])).await,
        [1, 3]
    );
    assert_eq!(sorted_ids(&b, &idx, &any_of(LABELS, &["x"])).await, [1, 4]);
    assert!(ids(&b, &idx, &any_of(LABELS, &[])).await.is_empty());
    // Two tag filters: both must hold.
    let mut q = any_of(LABELS, &["x"]);
    q.filters
        .extend(any_of(COLOR, &["Red", "dark red"]).filters);
    assert_eq!(sorted_ids(&b, &idx, &q).await, [1, 4]);
    q.filters.extend(any_of(LABELS, &["y z"]).filters);
    assert_eq!(sorted_ids(&b, &idx, &q).await, [1]);
    // Tags are not text.
    assert!(ids(&b, &idx, &text(t("red"))).await.is_empty());
    let reason = search_error(b.search(&idx, &any_of(PRICE, &["1"])).await);
    assert!(reason.contains("`price`"), "{reason}");
}

fn sorted_by(pos: usize, order: SortOrder) -> CompiledQuery {
    CompiledQuery {
        sort: Some((pos, order)),
        ..all()
    }
}

#[tokio::test]
async fn sort_by_numeric_tag_and_text_with_missing_values_last() {
    let b = ram();
    let idx = products("p_sort");
    let d = |id, title, price, color| {
        doc(
            id,
            D {
                title,
                price,
                color,
                ..D::default()
            },
        )
    };
    ready(
        &b,
        &idx,
        &[
            d(1, Some("banana"), Some(20.0), Some("b")),
            d(2, Some("Apple"), Some(-5.0), Some("c")),
            d(3, Some("cherry"), Some(7.5), Some("a")),
            d(4, None, None, None),
            d(5, Some("apple"), Some(20.0), Some("b")),
            d(6, Some("Äpfel"), Some(100.0), Some("Z")),
        ],
    )
    .await;
    use SortOrder::{Asc, Desc};
    // Ties (20.0 for 1 and 5) go by ID; the document without a price comes last.
    assert_eq!(
        ids(&b, &idx, &sorted_by(PRICE, Asc)).await,
        [2, 3, 1, 5, 6, 4]
    );
    assert_eq!(
        ids(&b, &idx, &sorted_by(PRICE, Desc)).await,
        [6, 1, 5, 3, 2, 4]
    );
    // Tags sort by their exact bytes (upper case first).
    assert_eq!(
        ids(&b, &idx, &sorted_by(COLOR, Asc)).await,
        [6, 3, 1, 5, 2, 4]
    );
    assert_eq!(
        ids(&b, &idx, &sorted_by(COLOR, Desc)).await,
        [2, 1, 5, 3, 6, 4]
    );
    // Text sorts by its lower-cased value ("Apple" and "apple" tie).
    assert_eq!(
        ids(&b, &idx, &sorted_by(TITLE, Asc)).await,
        [2, 5, 1, 3, 6, 4]
    );
    assert_eq!(
        ids(&b, &idx, &sorted_by(TITLE, Desc)).await,
        [6, 3, 1, 2, 5, 4]
    );
    // Sorting a text search.
    let mut q = sorted_by(PRICE, Desc);
    q.text = Some(t("apple"));
    assert_eq!(ids(&b, &idx, &q).await, [5, 2]);
    // Fields that are not sortable.
    for pos in [BODY, LABELS] {
        let reason = search_error(b.search(&idx, &sorted_by(pos, Asc)).await);
        assert!(reason.contains("not sortable"), "{reason}");
    }
}

#[tokio::test]
async fn pager_and_total() {
    let b = ram();
    let idx = products("p_pager");
    let docs: Vec<Doc> = (1..=25)
        .map(|i| {
            doc(
                i,
                D {
                    title: Some("page item"),
                    price: Some(i as f64),
                    ..D::default()
                },
            )
        })
        .collect();
    ready(&b, &idx, &docs).await;
    let page = |offset, limit| CompiledQuery {
        text: Some(t("item")),
        sort: Some((PRICE, SortOrder::Asc)),
        offset,
        limit,
        ..all()
    };
    let hits = b.search(&idx, &page(0, 10)).await.expect("search");
    assert_eq!(hits.ids, (1..=10).collect::<Vec<u64>>());
    assert_eq!(hits.total, 25);
    let hits = b.search(&idx, &page(20, 10)).await.expect("search");
    assert_eq!(hits.ids, [21, 22, 23, 24, 25]);
    assert_eq!(hits.total, 25);
    let hits = b.search(&idx, &page(30, 10)).await.expect("search");
    assert!(hits.ids.is_empty());
    assert_eq!(hits.total, 25);
    let hits = b.search(&idx, &page(3, 0)).await.expect("search");
    assert!(hits.ids.is_empty());
    assert_eq!(hits.total, 25);
    let hits = b
        .search(&idx, &page(u64::MAX, u64::MAX))
        .await
        .expect("search");
    assert!(hits.ids.is_empty());
    assert_eq!(hits.total, 25);
    let hits = b.search(&idx, &page(24, u64::MAX)).await.expect("search");
    assert_eq!(hits.ids, [25]);
    // Relevance order pages too (equal scores: ID order).
    let mut q = page(5, 3);
    q.sort = None;
    assert_eq!(ids(&b, &idx, &q).await, [6, 7, 8]);
    // Only the total of a filtered search.
    let q = CompiledQuery {
        limit: 0,
        ..range(Bound::Included(10.0), Bound::Unbounded)
    };
    let hits = b.search(&idx, &q).await.expect("search");
    assert_eq!(
        hits,
        SearchHits {
            ids: vec![],
            total: 16
        }
    );
}

#[tokio::test]
async fn persian_text_tokenises_into_words() {
    let b = ram();
    let idx = products("p_fa");
    ready(
        &b,
        &idx,
        &[
            titled(1, "این یک کتاب خوب است"),
            titled(2, "کتابخانه‌ی شهر"),
            titled(3, "دفتر"),
        ],
    )
    .await;
    assert_eq!(sorted_ids(&b, &idx, &text(t("کتاب"))).await, [1]);
    assert_eq!(
        sorted_ids(&b, &idx, &text(phrase(&["کتاب", "خوب"]))).await,
        [1]
    );
    assert!(ids(&b, &idx, &text(phrase(&["خوب", "کتاب"])))
        .await
        .is_empty());
    assert_eq!(
        sorted_ids(&b, &idx, &text(QueryNode::Prefix("کتا".to_string()))).await,
        [1, 2]
    );
    // The zero-width non-joiner separates words.
    assert_eq!(sorted_ids(&b, &idx, &text(t("کتابخانه"))).await, [2]);
}

#[tokio::test]
async fn on_disk_index_reopened_by_a_new_backend() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let idx = products("p_reopen");
    {
        let b = TantivyBackend::open("default", Some(tmp.path())).expect("open");
        ready(
            &b,
            &idx,
            &[titled(1, "persisted words"), titled(2, "other")],
        )
        .await;
    }
    let b = TantivyBackend::open("default", Some(tmp.path())).expect("reopen");
    assert_eq!(b.list().await.expect("list"), ["p_reopen"]);
    assert_eq!(
        b.stored_fingerprint("p_reopen").await.expect("fp"),
        Some(idx.fingerprint())
    );
    assert_eq!(b.count(&idx).await.expect("count"), 2);
    assert_eq!(ids(&b, &idx, &text(t("persisted"))).await, [1]);
    // The first backend's writer lock is gone: this one writes.
    b.write(&idx, &[titled(3, "persisted again")], &[2])
        .await
        .expect("write");
    assert_eq!(sorted_ids(&b, &idx, &text(t("persisted"))).await, [1, 3]);
    assert_eq!(b.count(&idx).await.expect("count"), 2);
}

#[tokio::test]
async fn a_directory_that_cannot_be_used_is_a_typed_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("a_file");
    std::fs::write(&file, "not a directory").expect("write");
    // The pool directory is a file, or below one.
    for dir in [file.clone(), file.join("below")] {
        match TantivyBackend::open("default", Some(&dir)) {
            Err(Error::Search {
                pool,
                index,
                reason,
            }) => {
                assert_eq!(pool, "default");
                assert_eq!(index, "");
                assert!(reason.contains("a_file"), "{reason}");
            }
            other => panic!("expected Error::Search, got {other:?}"),
        }
    }
    // A file where the index directory goes.
    let b = TantivyBackend::open("default", Some(tmp.path())).expect("open");
    let idx = products("a_file");
    match b.create(&idx).await {
        Err(Error::Search { index, reason, .. }) => {
            assert_eq!(index, "a_file");
            assert!(reason.contains("cannot"), "{reason}");
        }
        other => panic!("expected Error::Search, got {other:?}"),
    }
    assert!(b.list().await.expect("list").is_empty());
}

#[tokio::test]
async fn missing_index_wrong_definition_and_bad_documents_are_typed_errors() {
    let b = ram();
    let idx = products("p_errors");
    for r in [
        b.search(&idx, &all()).await.map(|_| ()),
        b.write(&idx, &[titled(1, "x")], &[]).await,
        b.count(&idx).await.map(|_| ()),
    ] {
        let reason = search_error(r);
        assert!(reason.contains("no such index"), "{reason}");
    }
    // Names that would leave the directory are refused.
    let reason = search_error(b.stored_fingerprint("../etc").await);
    assert!(reason.contains("invalid index name"), "{reason}");
    let mut bad = products("..");
    let reason = search_error(b.create(&bad).await);
    assert!(reason.contains("invalid index name"), "{reason}");
    // The definition changed since the index was created.
    ready(&b, &idx, &[titled(1, "kept")]).await;
    bad = idx.clone();
    bad.fields[PRICE].sortable = false;
    bad.fields
        .push(field("extra", SearchFieldKind::Numeric, false));
    let reason = search_error(b.search(&bad, &all()).await);
    assert!(reason.contains("another definition"), "{reason}");
    let reason = search_error(b.write(&bad, &[titled(2, "y")], &[]).await);
    assert!(reason.contains("another definition"), "{reason}");
    // A value of the wrong kind: the batch is refused whole.
    let wrong = Doc {
        id: 3,
        fields: vec![(PRICE, DocValue::Text("ten".to_string()))],
    };
    let reason = search_error(b.write(&idx, &[titled(2, "new"), wrong], &[1]).await);
    assert!(reason.contains("`price`"), "{reason}");
    let outside = Doc {
        id: 4,
        fields: vec![(17, DocValue::Number(1.0))],
    };
    let reason = search_error(b.write(&idx, &[outside], &[]).await);
    assert!(reason.contains("position 17"), "{reason}");
    assert_eq!(ids(&b, &idx, &all()).await, [1]);
    // The writer still works.
    b.write(&idx, &[titled(2, "new")], &[])
        .await
        .expect("write");
    assert_eq!(sorted_ids(&b, &idx, &all()).await, [1, 2]);
}

#[tokio::test]
async fn a_dropped_write_still_commits_and_releases_the_writer() {
    let b = ram();
    let idx = products("p_cancel");
    b.create(&idx).await.expect("create");
    let docs: Vec<Doc> = (1..=500).map(|i| titled(i, "dropped batch")).collect();
    {
        let mut write = b.write(&idx, &docs, &[]);
        // The first poll starts the blocking task; then the future is dropped.
        assert!(futures_util::poll!(&mut write).is_pending());
    }
    // The writer is not left locked: another batch commits.
    b.write(&idx, &[titled(1000, "second batch")], &[])
        .await
        .expect("write after a dropped write");
    // The dropped batch commits too (before or after the second one).
    let mut count = 0;
    for _ in 0..600 {
        count = b.count(&idx).await.expect("count");
        if count == 501 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(count, 501);
    assert_eq!(
        b.search(&idx, &text(t("dropped")))
            .await
            .expect("search")
            .total,
        500
    );
}

/// Indexing and query figures (run in release:
/// `cargo test -p beeorm --release --no-default-features --features sqlite,tantivy --lib
/// search::tantivy::tests::measure -- --ignored --nocapture`).
/// Prints, asserts nothing about time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn measure() {
    const WORDS: &[&str] = &[
        "rust", "search", "engine", "index", "query", "fast", "book", "کتاب", "data", "table",
        "order", "price", "green", "blue", "river", "stone", "cloud", "paper", "music", "light",
        "north", "south", "winter", "summer", "garden", "window", "silver", "forest", "ocean",
        "market",
    ];
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut sentence = |n: usize| {
        (0..n)
            .map(|_| WORDS[(next() % WORDS.len() as u64) as usize])
            .collect::<Vec<_>>()
            .join(" ")
    };
    let idx = SearchIndex {
        name: "p_measure".to_string(),
        pool: "default".to_string(),
        fields: vec![
            field("title", SearchFieldKind::Text, true),
            field("summary", SearchFieldKind::Text, false),
            field("body", SearchFieldKind::Text, false),
            field("price", SearchFieldKind::Numeric, true),
            field("color", SearchFieldKind::Tag, true),
        ],
    };
    let docs: Vec<Doc> = (1..=10_000u64)
        .map(|id| Doc {
            id,
            fields: vec![
                (0, DocValue::Text(sentence(5))),
                (1, DocValue::Text(sentence(20))),
                (2, DocValue::Text(sentence(80))),
                (3, DocValue::Number((id % 1000) as f64)),
                (
                    4,
                    DocValue::Tags(vec![["red", "green", "blue"][(id % 3) as usize].to_string()]),
                ),
            ],
        })
        .collect();
    let tmp = tempfile::tempdir().expect("tempdir");
    for (label, b) in [
        ("RAM", ram()),
        (
            "disk",
            TantivyBackend::open("default", Some(tmp.path())).expect("open"),
        ),
    ] {
        b.create(&idx).await.expect("create");
        let start = std::time::Instant::now();
        for batch in docs.chunks(1_000) {
            b.write(&idx, batch, &[]).await.expect("write");
        }
        let secs = start.elapsed().as_secs_f64();
        let q = CompiledQuery {
            text: Some(QueryNode::And(vec![t("rust"), t("search")])),
            filters: vec![Filter::Range {
                field: 3,
                min: Bound::Included(100.0),
                max: Bound::Excluded(800.0),
            }],
            sort: Some((3, SortOrder::Desc)),
            offset: 20,
            limit: 20,
        };
        let mut times = Vec::new();
        let mut total = 0;
        for _ in 0..200 {
            let start = std::time::Instant::now();
            let hits = b.search(&idx, &q).await.expect("search");
            times.push(start.elapsed());
            total = hits.total;
        }
        times.sort();
        println!(
            "tantivy {label}: indexed 10,000 docs in batches of 1,000 in {secs:.2} s = {:.0} docs/s; \
             2-term query + range filter + sort + page 2 of 20 ({total} matches): median {:?}, p90 {:?}",
            10_000.0 / secs,
            times[times.len() / 2],
            times[times.len() * 9 / 10],
        );
    }
}

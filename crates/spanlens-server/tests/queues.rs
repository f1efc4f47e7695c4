//! Review queues over real sockets, with auth on and two member keys as two reviewers: a queue
//! made from a trace-list filter and one from failed span scores; refusals name the problem;
//! two reviewers asking at once never get the same item; an item one reviewer did leaves the
//! other's next; scores are stored with source `human`, the reviewer and the time; progress
//! counts per reviewer; a viewer reads but does not review; another project's key sees nothing.

mod common;

use common::client::{Server, JSON};
use serde_json::{json, Value};

const MS: u64 = 1_000_000;

/// `n` one-span traces named `job-{i}` (trace id `{i+1:032x}`), the even ones failed.
fn otlp(n: u64, base: u64) -> Value {
    let spans: Vec<Value> = (0..n)
        .map(|i| {
            let mut s = json!({
                "traceId": format!("{:032x}", i + 1),
                "spanId": format!("{:016x}", i + 1),
                "name": format!("job-{i}"),
                "startTimeUnixNano": (base + i * MS).to_string(),
                "endTimeUnixNano": (base + i * MS + 5 * MS).to_string(),
            });
            if i % 2 == 0 {
                s["status"] = json!({"code": 2, "message": "broke"});
            }
            s
        })
        .collect();
    json!({"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": spans}]}]})
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

struct Team {
    s: Server,
    alice: String,
    bob: String,
    viewer: String,
    stranger: String,
}

/// A server with auth on: members alice and bob and a viewer of `shop`, a member of `other`;
/// `shop` holds 6 traces and a `valid_json` verdict on each span (0 on traces 1, 2 and 4).
fn team() -> Team {
    let dir = tempfile::tempdir().unwrap();
    let keys = {
        let store = std::sync::Arc::new(spanlens_server::open_store(dir.path()).unwrap());
        let d = spanlens_auth::Directory::new(store);
        let rt = tokio::runtime::Runtime::new().unwrap();
        let member = [spanlens_auth::Scope::Read, spanlens_auth::Scope::Ingest];
        let mk = |project: &str, name: &str, scopes: &[spanlens_auth::Scope]| {
            let k = rt.block_on(d.create(project, name, scopes, false)).unwrap();
            format!("Bearer {}", k.secret)
        };
        [
            mk("shop", "alice", &member),
            mk("shop", "bob", &member),
            mk("shop", "watcher", &[spanlens_auth::Scope::Read]),
            mk("other", "stranger", &member),
        ]
    };
    let s = Server::start_configured(dir, Vec::new(), |c| {
        c.auth = spanlens_server::auth::AuthMode::Required;
    });
    let [alice, bob, viewer, stranger] = keys;
    let base = now_ns() - 60_000 * MS;
    let (code, body, _) = s.post(
        "/v1/traces",
        &[JSON, ("authorization", &alice)],
        otlp(6, base).to_string().as_bytes(),
    );
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let verdicts: Vec<Value> = (0..6u64)
        .map(|i| {
            json!({"trace_id": format!("{:032x}", i + 1), "span_id": format!("{:016x}", i + 1),
                   "name": "valid_json", "data_type": "boolean", "source": "rule",
                   "value": if [1, 2, 4].contains(&i) { 0 } else { 1 }, "comment": format!("span {i}")})
        })
        .collect();
    let (code, ids) = s.json(
        "POST",
        "/api/v1/scores",
        &[("authorization", &alice)],
        &json!(verdicts),
    );
    assert_eq!(code, 201, "{ids}");
    // Ingest is asynchronous: wait until the list shows every trace.
    for _ in 0..200 {
        let (_, b, _) = s.send("GET", "/api/v1/traces", &[("authorization", &alice)], b"");
        let page: Value = serde_json::from_slice(&b).unwrap();
        if page["items"].as_array().map_or(0, Vec::len) == 6 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    Team {
        s,
        alice,
        bob,
        viewer,
        stranger,
    }
}

fn call(s: &Server, method: &str, path: &str, key: &str, body: Value) -> (u16, Value) {
    s.json(method, path, &[("authorization", key)], &body)
}

fn get(s: &Server, path: &str, key: &str) -> (u16, Value) {
    let (code, b, _) = s.send("GET", path, &[("authorization", key)], b"");
    (
        code,
        serde_json::from_slice(&b).unwrap_or(Value::String(String::from_utf8_lossy(&b).into())),
    )
}

fn definitions() -> Value {
    json!([
        {"name": "correct", "data_type": "boolean"},
        {"name": "quality", "data_type": "numeric", "min": 1, "max": 5},
        {"name": "topic", "data_type": "categorical", "labels": ["billing", "bug", "other"]}
    ])
}

#[test]
fn queues_are_made_reviewed_by_two_and_counted() {
    let t = team();
    let s = &t.s;
    // A queue of the failed traces (0, 2, 4), newest first as the list shows them.
    let input = json!({"name": "Failed jobs", "source": {"kind": "filter", "query": "status=error"},
                       "scores": definitions()});
    let (code, made) = call(s, "POST", "/api/v1/queues", &t.alice, input.clone());
    assert_eq!(code, 201, "{made}");
    let id = made["queue"]["id"].as_str().unwrap().to_string();
    assert_eq!(made["progress"]["total"], 3, "{made}");
    assert_eq!(made["queue"]["capped"], false);
    assert!(made["queue"]["created_by"]
        .as_str()
        .unwrap()
        .contains("alice"));
    let (code, _) = call(s, "POST", "/api/v1/queues", &t.bob, input);
    assert_eq!(code, 409, "a taken name");

    // Refusals name the problem.
    let refusals: [(Value, &str); 8] = [
        (
            json!({"name": " ", "source": {"kind": "filter", "query": ""}, "scores": definitions()}),
            "invalid name",
        ),
        (
            json!({"name": "x", "source": {"kind": "filter", "query": "status=sideways"}, "scores": definitions()}),
            "status",
        ),
        (
            json!({"name": "x", "source": {"kind": "failed_scores", "score": "helpfulness", "fail_at_most": 0}, "scores": definitions()}),
            "no score of that name",
        ),
        (
            json!({"name": "x", "source": {"kind": "failed_scores", "score": "valid_json"}, "scores": definitions()}),
            "fail_at_most",
        ),
        (
            json!({"name": "x", "source": {"kind": "filter", "query": ""}, "scores": []}),
            "score definitions",
        ),
        (
            json!({"name": "x", "source": {"kind": "filter", "query": ""}, "scores": [{"name": "q", "data_type": "numeric"}]}),
            "`min` and `max`",
        ),
        (
            json!({"name": "x", "source": {"kind": "filter", "query": ""}, "scores": [{"name": "c", "data_type": "categorical"}]}),
            "labels",
        ),
        (
            json!({"name": "x", "source": {"kind": "sideways"}, "scores": definitions()}),
            "unknown variant",
        ),
    ];
    for (body, want) in refusals {
        let (code, answer) = call(s, "POST", "/api/v1/queues", &t.alice, body.clone());
        assert_eq!(code, 400, "{body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(want),
            "{body}: {answer}"
        );
    }

    // Alice and Bob ask at once, many times over: never the same item.
    let next = |key: &str, from: Option<u64>| {
        let path = match from {
            Some(f) => format!("/api/v1/queues/{id}/next?from={f}"),
            None => format!("/api/v1/queues/{id}/next"),
        };
        call(s, "POST", &path, key, json!({}))
    };
    let (a, b) = std::thread::scope(|sc| {
        let a = sc.spawn(|| next(&t.alice, None));
        let b = sc.spawn(|| next(&t.bob, None));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!((a.0, b.0), (200, 200), "{a:?} {b:?}");
    let (ia, ib) = (&a.1["item"], &b.1["item"]);
    assert_ne!(
        ia["index"], ib["index"],
        "two reviewers got one item: {a:?} {b:?}"
    );
    // Asking again keeps one's own item; the third goes to whoever asks for another.
    assert_eq!(next(&t.alice, None).1["item"]["index"], ia["index"]);

    // Bob cannot score Alice's item while she holds it.
    let alice_item = ia["index"].as_u64().unwrap();
    let review = json!({"scores": [{"name": "correct", "value": 0}, {"name": "quality", "value": 2},
                                   {"name": "topic", "label": "bug"}], "comment": "wrong tool"});
    let (code, answer) = call(
        s,
        "POST",
        &format!("/api/v1/queues/{id}/items/{alice_item}"),
        &t.bob,
        review.clone(),
    );
    assert_eq!(code, 409, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("alice"),
        "{answer}"
    );

    // Bad reviews are refused with the reason.
    for (body, want) in [
        (
            json!({"scores": [{"name": "quality", "value": 9}]}),
            "from 1 to 5",
        ),
        (
            json!({"scores": [{"name": "correct", "value": 0.5}]}),
            "1 (yes) or 0",
        ),
        (
            json!({"scores": [{"name": "topic", "label": "weather"}]}),
            "billing, bug, other",
        ),
        (
            json!({"scores": [{"name": "mood", "value": 1}]}),
            "not one of this queue's scores",
        ),
        (json!({"scores": []}), "at least one score"),
        (
            json!({"skip": true, "scores": [{"name": "correct", "value": 1}]}),
            "a skip gives no scores",
        ),
    ] {
        let (code, answer) = call(
            s,
            "POST",
            &format!("/api/v1/queues/{id}/items/{alice_item}"),
            &t.alice,
            body.clone(),
        );
        assert_eq!(code, 400, "{body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(want),
            "{body}: {answer}"
        );
    }
    assert_eq!(
        call(
            s,
            "POST",
            &format!("/api/v1/queues/{id}/items/7"),
            &t.alice,
            review.clone()
        )
        .0,
        404
    );

    // Alice scores her item.
    let before = now_ns();
    let (code, done) = call(
        s,
        "POST",
        &format!("/api/v1/queues/{id}/items/{alice_item}"),
        &t.alice,
        review.clone(),
    );
    assert_eq!(code, 200, "{done}");
    assert_eq!(done["item"]["state"], "done");
    assert_eq!(done["score_ids"].as_array().unwrap().len(), 3);
    assert_eq!(done["progress"]["done"], 1);
    let trace = done["item"]["trace_id"].as_str().unwrap().to_string();
    let (_, scores) = get(s, &format!("/api/v1/scores?trace_id={trace}"), &t.alice);
    let human: Vec<&Value> = scores["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["source"] == "human")
        .collect();
    assert_eq!(human.len(), 3, "{scores}");
    for x in &human {
        assert!(x["author"].as_str().unwrap().contains("(alice)"), "{x}");
        assert!(x["created_ns"].as_u64().unwrap() >= before, "{x}");
        assert_eq!(x["comment"], "wrong tool");
    }
    let quality = human.iter().find(|x| x["name"] == "quality").unwrap();
    assert_eq!(
        (quality["data_type"].as_str(), quality["value"].as_f64()),
        (Some("numeric"), Some(2.0))
    );
    let topic = human.iter().find(|x| x["name"] == "topic").unwrap();
    assert_eq!(topic["label"], "bug");
    // Done once: nobody does it again.
    let (code, again) = call(
        s,
        "POST",
        &format!("/api/v1/queues/{id}/items/{alice_item}"),
        &t.alice,
        review.clone(),
    );
    assert_eq!(code, 409, "{again}");
    assert!(
        again["error"].as_str().unwrap().contains("already done"),
        "{again}"
    );

    // Bob moves on from his item (handing it back): never to Alice's done one.
    let bob_item = ib["index"].as_u64().unwrap();
    let mut seen = Vec::new();
    let mut from = bob_item;
    for _ in 0..4 {
        let (_, n) = next(&t.bob, Some(from));
        let i = n["item"]["index"].as_u64().unwrap();
        assert_ne!(i, alice_item, "a done item came back: {n}");
        seen.push(i);
        from = i;
    }
    assert!(seen.iter().all(|i| *i != alice_item));
    // Bob skips the item he holds now, scores the last.
    let (code, skipped) = call(
        s,
        "POST",
        &format!("/api/v1/queues/{id}/items/{from}"),
        &t.bob,
        json!({"skip": true}),
    );
    assert_eq!(code, 200, "{skipped}");
    assert_eq!(skipped["item"]["state"], "skipped");
    let (_, n) = next(&t.bob, Some(from));
    let last = n["item"]["index"].as_u64().unwrap();
    assert!(last != from && last != alice_item, "{n}");
    let (code, _) = call(
        s,
        "POST",
        &format!("/api/v1/queues/{id}/items/{last}"),
        &t.bob,
        json!({"scores": [{"name": "correct", "value": 1}]}),
    );
    assert_eq!(code, 200);
    let (_, n) = next(&t.alice, None);
    assert_eq!(n["item"], Value::Null, "nothing left: {n}");

    // Progress, per reviewer, to a viewer too.
    let (code, detail) = get(s, &format!("/api/v1/queues/{id}"), &t.viewer);
    assert_eq!(code, 200, "{detail}");
    let p = &detail["progress"];
    assert_eq!(
        (&p["total"], &p["done"], &p["skipped"], &p["pending"]),
        (&json!(3), &json!(2), &json!(1), &json!(0)),
        "{p}"
    );
    let reviewers = p["reviewers"].as_array().unwrap();
    assert_eq!(reviewers.len(), 2, "{p}");
    let bob = reviewers
        .iter()
        .find(|r| r["reviewer"].as_str().unwrap().contains("(bob)"))
        .unwrap();
    assert_eq!((&bob["done"], &bob["skipped"]), (&json!(1), &json!(1)));
    let items = detail["items"].as_array().unwrap();
    assert!(items
        .iter()
        .all(|i| i["state"] != "pending" && i["at_ns"].as_u64().is_some()));
    let (_, list) = get(s, "/api/v1/queues", &t.viewer);
    assert_eq!(list["queues"][0]["progress"]["done"], 2, "{list}");

    // A viewer reads but neither reviews nor makes queues.
    assert_eq!(
        call(
            s,
            "POST",
            &format!("/api/v1/queues/{id}/next"),
            &t.viewer,
            json!({})
        )
        .0,
        403
    );
    assert_eq!(
        call(
            s,
            "POST",
            "/api/v1/queues",
            &t.viewer,
            json!({"name": "v", "source": {"kind": "filter", "query": ""}, "scores": definitions()})
        )
        .0,
        403
    );
    // Another project's key sees nothing of it.
    let (_, theirs) = get(s, "/api/v1/queues", &t.stranger);
    assert_eq!(theirs["queues"], json!([]), "{theirs}");
    assert_eq!(get(s, &format!("/api/v1/queues/{id}"), &t.stranger).0, 404);
    assert_eq!(
        get(s, &format!("/api/v1/queues/{id}?project=shop"), &t.stranger).0,
        403
    );
    assert_eq!(
        call(
            s,
            "POST",
            &format!("/api/v1/queues/{id}/next"),
            &t.stranger,
            json!({})
        )
        .0,
        404
    );

    // Deleted: gone, its scores kept.
    let (code, _, _) = s.send(
        "DELETE",
        &format!("/api/v1/queues/{id}"),
        &[("authorization", &t.alice)],
        b"",
    );
    assert_eq!(code, 204);
    assert_eq!(get(s, &format!("/api/v1/queues/{id}"), &t.alice).0, 404);
    let (_, scores) = get(s, &format!("/api/v1/scores?trace_id={trace}"), &t.alice);
    assert!(scores["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["source"] == "human"));
}

#[test]
fn a_queue_of_failed_span_scores_scores_the_spans_and_refreshes() {
    let t = team();
    let s = &t.s;
    let input = json!({"name": "Invalid JSON", "source": {"kind": "failed_scores", "score": "valid_json", "fail_at_most": 0},
                       "scores": [{"name": "json_fixable", "data_type": "boolean"}]});
    let (code, made) = call(s, "POST", "/api/v1/queues", &t.alice, input);
    assert_eq!(code, 201, "{made}");
    let id = made["queue"]["id"].as_str().unwrap().to_string();
    let (_, detail) = get(s, &format!("/api/v1/queues/{id}"), &t.alice);
    let mut spans: Vec<&str> = detail["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["span_id"].as_str().unwrap())
        .collect();
    spans.sort();
    assert_eq!(
        spans,
        vec!["0000000000000002", "0000000000000003", "0000000000000005"],
        "{detail}"
    );
    assert!(detail["items"][0]["label"]
        .as_str()
        .unwrap()
        .starts_with("valid_json = 0: span "));

    let (_, n) = call(
        s,
        "POST",
        &format!("/api/v1/queues/{id}/next"),
        &t.bob,
        json!({}),
    );
    let item = &n["item"];
    let (code, done) = call(
        s,
        "POST",
        &format!("/api/v1/queues/{id}/items/{}", item["index"]),
        &t.bob,
        json!({"scores": [{"name": "json_fixable", "value": 1}]}),
    );
    assert_eq!(code, 200, "{done}");
    let (_, scores) = get(
        s,
        &format!(
            "/api/v1/scores?trace_id={}&span_id={}&name=json_fixable",
            item["trace_id"].as_str().unwrap(),
            item["span_id"].as_str().unwrap()
        ),
        &t.alice,
    );
    let x = &scores["items"][0];
    assert_eq!(
        (&x["source"], &x["value"]),
        (&json!("human"), &json!(1.0)),
        "{scores}"
    );
    assert!(x["author"].as_str().unwrap().contains("(bob)"), "{x}");

    // A new failure appears; a refresh adds it and keeps what was done.
    let (code, _) = call(
        s,
        "POST",
        "/api/v1/scores",
        &t.alice,
        json!({"trace_id": format!("{:032x}", 6), "span_id": format!("{:016x}", 6), "name": "valid_json",
               "data_type": "boolean", "value": 0, "source": "rule"}),
    );
    assert_eq!(code, 201);
    let (code, refreshed) = call(
        s,
        "POST",
        &format!("/api/v1/queues/{id}/refresh"),
        &t.alice,
        json!({}),
    );
    assert_eq!(code, 200, "{refreshed}");
    assert_eq!(
        (
            &refreshed["progress"]["total"],
            &refreshed["progress"]["done"]
        ),
        (&json!(4), &json!(1)),
        "{refreshed}"
    );
}

/// A project whose name is as long as a project name may be (128 bytes) keeps queues, items
/// and claims like any other: its keys stay under the store's key limit.
#[test]
fn a_project_with_the_longest_name_has_queues() {
    let s = Server::start();
    let project = "p".repeat(128);
    let (code, body, _) = s.post(
        "/v1/traces",
        &[JSON, ("x-project-name", &project)],
        otlp(2, now_ns() - 60_000 * MS).to_string().as_bytes(),
    );
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let q = format!("?project={project}");
    for _ in 0..200 {
        if s.get(&format!("/api/v1/traces{q}")).1["items"]
            .as_array()
            .map_or(0, Vec::len)
            == 2
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let input = json!({"name": "long", "source": {"kind": "filter", "query": ""},
                       "scores": [{"name": "ok", "data_type": "boolean"}]});
    let (code, made) = s.json("POST", &format!("/api/v1/queues{q}"), &[], &input);
    assert_eq!(code, 201, "{made}");
    assert_eq!(made["progress"]["total"], 2);
    let id = made["queue"]["id"].as_str().unwrap();
    let (code, next) = s.json(
        "POST",
        &format!("/api/v1/queues/{id}/next{q}"),
        &[],
        &json!({}),
    );
    assert_eq!(code, 200, "{next}");
    let index = &next["item"]["index"];
    let (code, done) = s.json(
        "POST",
        &format!("/api/v1/queues/{id}/items/{index}{q}"),
        &[],
        &json!({"scores": [{"name": "ok", "value": 1}]}),
    );
    assert_eq!(code, 200, "{done}");
    assert_eq!(
        s.get(&format!("/api/v1/queues{q}")).1["queues"][0]["progress"]["done"],
        1
    );
    // A project whose name starts the same sees none of it.
    let shorter = format!("?project={}", "p".repeat(127));
    assert_eq!(
        s.get(&format!("/api/v1/queues{shorter}")).1["queues"],
        json!([])
    );
}

/// Moving through a queue: next after an item, previous before it (around the ends), the item
/// left handed back; a bad direction or position is refused.
#[test]
fn a_reviewer_moves_forward_and_back() {
    let s = Server::start();
    let (code, _, _) = s.post(
        "/v1/traces",
        &[JSON],
        otlp(3, now_ns() - 60_000 * MS).to_string().as_bytes(),
    );
    assert_eq!(code, 200);
    for _ in 0..200 {
        if s.get("/api/v1/traces").1["items"]
            .as_array()
            .map_or(0, Vec::len)
            == 3
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let input = json!({"name": "all", "source": {"kind": "filter", "query": "sort=name&order=asc"},
                       "scores": [{"name": "ok", "data_type": "boolean"}]});
    let (code, made) = s.json("POST", "/api/v1/queues", &[], &input);
    assert_eq!(code, 201, "{made}");
    let id = made["queue"]["id"].as_str().unwrap();
    let (_, detail) = s.get(&format!("/api/v1/queues/{id}"));
    let labels: Vec<&str> = detail["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["job-0", "job-1", "job-2"], "the filter's sort");
    let go = |query: &str| {
        let (code, n) = s.json(
            "POST",
            &format!("/api/v1/queues/{id}/next{query}"),
            &[],
            &json!({}),
        );
        assert_eq!(code, 200, "{query}: {n}");
        n["item"]["index"].as_u64().unwrap()
    };
    assert_eq!(go(""), 0);
    assert_eq!(go("?from=0"), 1);
    assert_eq!(go("?from=1&dir=next"), 2);
    assert_eq!(go("?from=2"), 0, "around the end");
    assert_eq!(go("?from=0&dir=prev"), 2, "around the start");
    assert_eq!(go("?from=2&dir=prev"), 1);
    for (query, want) in [
        ("?dir=sideways", "use next or prev"),
        ("?from=3", "the queue has 3 items"),
        ("?from=x", "from"),
    ] {
        let (code, answer) = s.json(
            "POST",
            &format!("/api/v1/queues/{id}/next{query}"),
            &[],
            &json!({}),
        );
        assert_eq!(code, 400, "{query}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(want),
            "{query}: {answer}"
        );
    }
}

//! Costs at the shipped prices (config/model-prices.toml), read back over the API: a span's
//! cost, its trace's and the trace list's; a dated snapshot finds its model's price; a model with
//! no price is reported as such (no cost, never 0); a trace without token usage has no cost.
//! A project's own prices replace or add to the shipped ones, apply to past spans (as every
//! answer says), are refused when invalid, and are the project's alone.
//! The real instrumentations and the Fallom SDK check their spans' costs too
//! (tests/sdk/instrumentations.py, tests/sdk/fallom_e2e.py).

use crate::common::clock::base_nanos_text;
use crate::common::{create_key, encode, status_json, TestDb, TestServer};
use serde_json::{json, Value};

/// An OTLP/JSON span of trace `trace` (a hex byte repeated), with the model and token counts.
fn span(trace: &str, n: u32, model: Option<&str>, tokens: Option<(i64, i64)>) -> Value {
    let mut attributes = vec![];
    if let Some(model) = model {
        attributes.push(json!({"key": "gen_ai.request.model", "value": {"stringValue": model}}));
    }
    if let Some((input, output)) = tokens {
        attributes.push(json!({"key": "gen_ai.usage.input_tokens", "value": {"intValue": input.to_string()}}));
        attributes.push(json!({"key": "gen_ai.usage.output_tokens", "value": {"intValue": output.to_string()}}));
    }
    json!({
        "traceId": trace.repeat(16),
        "spanId": format!("{:016x}", n + 1),
        "name": format!("call {n}"),
        "kind": 3,
        "startTimeUnixNano": base_nanos_text(n as i64 * 10),
        "endTimeUnixNano": base_nanos_text(n as i64 * 10 + 5),
        "attributes": attributes,
    })
}

fn close(a: &Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() < 1e-12)
}

both_backends!(costs_are_priced_by_model_and_unknown_models_have_no_price, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    let spans = vec![
        // trace aa: a priced call (a dated snapshot of gpt-4o), an unpriced one, a tool step
        // fixed-date: a model id with a date in its name, not a time
        span("aa", 0, Some("gpt-4o-2024-08-06"), Some((1000, 100))),
        span("aa", 1, Some("my-finetune"), Some((50, 5))),
        span("aa", 2, None, None),
        // trace bb: only a model with no price; trace cc: no token usage at all
        span("bb", 3, Some("my-finetune"), Some((50, 5))),
        span("cc", 4, Some("gpt-4o"), None),
    ];
    let body = json!({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]});
    let resp = server.http.post(server.url("/v1/traces")).bearer_auth(&key).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());

    let gpt_4o = (1000.0 * 2.50 + 100.0 * 10.00) / 1e6;
    let (status, trace) = server.get(&key, &format!("/api/v1/traces/{}", "aa".repeat(16))).await;
    assert_eq!(status, 200, "{trace}");
    let cost = &trace["cost"];
    assert!(close(&cost["usd"], gpt_4o), "{cost}");
    assert_eq!(cost["status"], "partly_priced");
    assert_eq!((&cost["unpriced_calls"], &cost["unpriced_models"]), (&json!(1), &json!(["my-finetune"])));
    let by_span: Vec<&Value> = trace["spans"].as_array().unwrap().iter().map(|s| &s["cost"]).collect();
    assert!(close(&by_span[0]["usd"], gpt_4o) && by_span[0]["status"] == "priced", "{by_span:?}");
    assert_eq!((&by_span[1]["usd"], &by_span[1]["status"]), (&Value::Null, &json!("no_price")));
    assert_eq!((&by_span[2]["usd"], &by_span[2]["status"]), (&Value::Null, &json!("no_usage")));

    let (_, listed) = server.get(&key, "/api/v1/traces").await;
    let cost_of = |prefix: &str| {
        listed["traces"].as_array().unwrap().iter().find(|t| t["trace_id"] == prefix.repeat(16)).unwrap()["cost"]
            .clone()
    };
    assert!(close(&cost_of("aa")["usd"], gpt_4o), "{listed}");
    assert_eq!(
        cost_of("bb"),
        json!({"usd": null, "status": "no_price", "unpriced_calls": 1, "unpriced_models": ["my-finetune"]})
    );
    assert_eq!(cost_of("cc"), json!({"usd": null, "status": "no_usage", "unpriced_calls": 0, "unpriced_models": []}));
    server.assert_no_server_errors();
});

async fn trace_cost(server: &TestServer, key: &str, trace: &str) -> Value {
    server.get(key, &format!("/api/v1/traces/{}", trace.repeat(16))).await.1["cost"].clone()
}

async fn put_price(server: &TestServer, key: &str, model: &str, body: Value) -> (u16, Value) {
    let url = server.url(&format!("/api/v1/prices/{}", encode(model)));
    status_json(server.http.put(url).bearer_auth(key).json(&body).send().await.unwrap()).await
}

async fn delete_price(server: &TestServer, key: &str, model: &str) -> u16 {
    let url = server.url(&format!("/api/v1/prices/{}", encode(model)));
    server.http.delete(url).bearer_auth(key).send().await.unwrap().status().as_u16()
}

both_backends!(a_projects_own_prices_apply_to_past_spans_and_to_it_alone, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    let spans = vec![
        // fixed-date: a model id with a date in its name, not a time
        span("dd", 0, Some("gpt-4o-2024-08-06"), Some((1000, 100))),
        span("dd", 1, Some("my-finetune"), Some((50, 5))),
    ];
    let body = json!({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]});
    let resp = server.http.post(server.url("/v1/traces")).bearer_auth(&key).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(trace_cost(&server, &key, "dd").await["status"], "partly_priced");

    // the project's own prices, set after the spans were stored: one replaces gpt-4o's, one
    // prices the fine-tune; the trace is repriced at once, as the answers say
    let (status, set) = put_price(&server, &key, "GPT-4o", json!({"input": 1.0, "output": 2.0})).await;
    assert_eq!(status, 200, "{set}");
    assert_eq!(set["created"], true);
    assert_eq!(
        set["price"],
        json!({"model": "gpt-4o", "input": 1.0, "output": 2.0, "cached_input": null, "source": "project"})
    );
    assert!(set["applies_to"].as_str().unwrap().contains("past"), "{set}");
    let (status, set) =
        put_price(&server, &key, "my-finetune", json!({"input": 4.0, "output": 8.0, "cached_input": 0.5})).await;
    assert_eq!((status, &set["created"]), (200, &json!(true)), "{set}");
    let (_, again) = put_price(&server, &key, "my-finetune", json!({"input": 4.0, "output": 8.0})).await;
    assert_eq!(again["created"], false, "{again}");

    let expected = (1000.0 * 1.0 + 100.0 * 2.0 + 50.0 * 4.0 + 5.0 * 8.0) / 1e6;
    let cost = trace_cost(&server, &key, "dd").await;
    assert_eq!(cost["status"], "priced", "{cost}");
    assert!(close(&cost["usd"], expected), "{cost}");

    let (_, list) = server.get(&key, "/api/v1/prices").await;
    let entry = |model: &str| list["prices"].as_array().unwrap().iter().find(|p| p["model"] == model).cloned();
    assert_eq!(entry("gpt-4o").unwrap()["source"], "project", "{list}");
    assert_eq!(entry("my-finetune").unwrap()["input"], 4.0);
    assert_eq!(entry("gpt-4o-mini").unwrap()["source"], "shipped");
    assert!(list["shipped_as_of"].is_string(), "{list}");

    // another project keeps the shipped prices and has no fine-tune price
    let other = create_key(&db, "other-project");
    let other_server_trace =
        server.http.post(server.url("/v1/traces")).bearer_auth(&other).json(&body).send().await.unwrap();
    assert_eq!(other_server_trace.status(), 200);
    let other_cost = trace_cost(&server, &other, "dd").await;
    assert_eq!(other_cost["status"], "partly_priced", "{other_cost}");
    assert!(close(&other_cost["usd"], (1000.0 * 2.50 + 100.0 * 10.00) / 1e6), "{other_cost}");

    // removing the project's price brings the shipped one back; a second removal is a 404
    assert_eq!(delete_price(&server, &key, "gpt-4o").await, 204);
    assert_eq!(delete_price(&server, &key, "gpt-4o").await, 404);
    let cost = trace_cost(&server, &key, "dd").await;
    assert!(close(&cost["usd"], (1000.0 * 2.50 + 100.0 * 10.00 + 50.0 * 4.0 + 5.0 * 8.0) / 1e6), "{cost}");

    // invalid prices are refused, naming the problem, and change nothing
    for (body, field) in [
        (json!({"input": -1.0, "output": 1.0}), "input"),
        (json!({"input": 1.0}), "output"),
        (json!({"input": 1.0, "output": "cheap"}), "output"),
        (json!({"input": 1.0, "output": 1.0, "per": "token"}), "per"),
    ] {
        let (status, error) = put_price(&server, &key, "my-finetune", body.clone()).await;
        assert_eq!(status, 422, "{body}: {error}");
        assert!(error.to_string().contains(field), "{body}: {error}");
    }
    let (_, list) = server.get(&key, "/api/v1/prices").await;
    let finetune = list["prices"].as_array().unwrap().iter().find(|p| p["model"] == "my-finetune").cloned();
    assert_eq!(finetune.unwrap()["input"], 4.0, "{list}");
    server.assert_no_server_errors();
});

//! docs/openapi.json describes exactly the routes the HTTP API serves (the
//! router is built from `http::ROUTES`; the lab test calls each of them).

use std::collections::BTreeSet;

#[test]
fn the_openapi_description_lists_every_route_and_nothing_else() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).expect("docs/openapi.json is JSON");
    assert_eq!(doc["openapi"], "3.0.3");
    let described: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| ops.as_object().unwrap().keys().map(move |m| (m.clone(), path.clone())))
        .collect();
    let served: BTreeSet<(String, String)> =
        baton_agent::http::ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(described, served);
    for (method, path) in &served {
        let op = &doc["paths"][path][method];
        assert!(op["summary"].is_string(), "{method} {path} has a summary");
        if method == "post" {
            assert_eq!(op["security"][0]["bearer"], serde_json::json!([]), "{path} needs the token");
            assert!(op["responses"]["401"].is_object(), "{path} documents the refusal");
        }
    }
}

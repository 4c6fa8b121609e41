//! The read API's OpenAPI document covers every route of the read API.

use crate::helpers::*;

/// The paths routed in a source file: every `.route("/api/v1/…"` in it.
fn routed(source: &str) -> Vec<String> {
    source
        .split(".route(")
        .skip(1)
        .filter_map(|rest| {
            let start = rest.find('"')? + 1;
            let end = start + rest[start..].find('"')?;
            Some(rest[start..end].to_string())
        })
        .filter(|path| path.starts_with("/api/v1/") && path != "/api/v1/openapi.json")
        .collect()
}

#[tokio::test]
async fn every_read_api_route_is_in_the_openapi_document() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let resp = reqwest::get(format!("{}/api/v1/openapi.json", app.base))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let doc: serde_json::Value = resp.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let sources = [
        include_str!("../../src/admin.rs"),
        include_str!("../../src/feed.rs"),
        include_str!("../../src/manage.rs"),
        include_str!("../../src/delivery/api.rs"),
    ];
    let routes: Vec<String> = sources.iter().flat_map(|s| routed(s)).collect();
    assert!(routes.len() >= 6, "routes found in the source: {routes:?}");
    let paths = doc["paths"].as_object().unwrap();
    for route in &routes {
        assert!(
            paths.contains_key(route),
            "`{route}` is routed but not in the OpenAPI document"
        );
    }
    let events = &doc["paths"]["/api/v1/events"]["get"];
    let params: Vec<&str> = events["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, ["after", "limit", "types", "wait"]);
    assert!(doc["components"]["schemas"]["Event"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

//! The spec as served at `/openapi.json`, `/openapi.yaml` and `/docs`, and
//! as committed: poem-openapi's document, finished with what its derives
//! cannot say.

use poem::endpoint::make_sync;
use poem::web::Html;
use poem::{Endpoint, Response};
use serde_json::Value;

use super::Apis;
use poem_openapi::OpenApiService;

/// The finished spec, as pretty JSON.
pub fn json(service: &OpenApiService<Apis, ()>) -> String {
    pretty(&document(service))
}

fn document(service: &OpenApiService<Apis, ()>) -> Value {
    let mut spec: Value = serde_json::from_str(&service.spec()).expect("poem-openapi writes JSON");
    finish(&mut spec);
    spec
}

fn pretty(spec: &Value) -> String {
    serde_json::to_string_pretty(spec).expect("a JSON value serializes")
}

/// What poem-openapi leaves out or spells its own way:
/// - `security: []` on every operation that needs no token, so that linters
///   and readers see "public" stated rather than forgotten;
/// - response header names as RFC 9110 spells them (`Retry-After`, not
///   `RETRY-AFTER`), which is what generated clients and linters look up.
fn finish(spec: &mut Value) {
    let operations = spec["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .filter_map(Value::as_object_mut);
    for operation in operations {
        operation
            .entry("security")
            .or_insert_with(|| Value::Array(Vec::new()));
        let headers = operation
            .get_mut("responses")
            .and_then(Value::as_object_mut)
            .into_iter()
            .flat_map(|responses| responses.values_mut())
            .filter_map(|response| response.get_mut("headers"))
            .filter_map(Value::as_object_mut);
        for headers in headers {
            let renamed = std::mem::take(headers)
                .into_iter()
                .map(|(name, header)| (header_case(&name), header));
            headers.extend(renamed);
        }
    }
}

/// `RETRY-AFTER` → `Retry-After`, `WWW-AUTHENTICATE` → `WWW-Authenticate`.
fn header_case(name: &str) -> String {
    name.split('-')
        .map(|word| match word.to_ascii_lowercase().as_str() {
            "www" => "WWW".to_owned(),
            lower => {
                let mut chars = lower.chars();
                chars.next().map_or_else(String::new, |first| {
                    first.to_ascii_uppercase().to_string() + chars.as_str()
                })
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Swagger UI's page that receives the authorization response and hands
/// it to the opener (swagger-ui's `oauth2-redirect.html`, as poem-openapi
/// ships it).
const OAUTH_RECEIVER_HTML: &str = include_str!("oauth-receiver.html");

/// Where Swagger UI's Authorize lands after Gatehouse's login page, under
/// `/docs`: a redirect URI of the built-in client.
pub const SWAGGER_RECEIVER_PATH: &str = "/docs/oauth-receiver.html";

/// Run after Swagger UI starts: Authorize's authorization-code flow uses
/// PKCE (S256), as Gatehouse requires.
const PKCE_SETUP: &str = "    ui.initOAuth({ usePkceWithAuthorizationCodeGrant: true });\n";

/// `/openapi.json`, `/openapi.yaml` and Swagger UI, all from the finished spec.
pub fn endpoints(
    service: &OpenApiService<Apis, ()>,
) -> (
    impl Endpoint + 'static,
    impl Endpoint + 'static,
    impl Endpoint + 'static,
) {
    let spec = document(service);
    let json = pretty(&spec);
    let yaml = serde_yaml::to_string(&spec).expect("JSON converts to YAML");
    // Swagger UI's page embeds poem-openapi's spec verbatim: swap in ours,
    // and turn PKCE on for Authorize's authorization-code flow (the
    // built-in client, public, registers the receiver page below).
    let docs = service
        .swagger_ui_html()
        .replacen(&service.spec(), &json, 1)
        .replacen("SwaggerUIBundle({", "const ui = SwaggerUIBundle({", 1)
        .replacen(
            "</script>\n\n</body>",
            &format!("{PKCE_SETUP}</script>\n\n</body>"),
            1,
        );
    let served_json = json.clone();
    let docs = poem::Route::new()
        .at("/", make_sync(move |_| Html(docs.clone())))
        .at(
            "/oauth-receiver.html",
            make_sync(|_| Html(OAUTH_RECEIVER_HTML)),
        );
    (
        docs,
        make_sync(move |_| {
            Response::builder()
                .content_type("application/json")
                .body(served_json.clone())
        }),
        make_sync(move |_| {
            Response::builder()
                .content_type("application/x-yaml")
                .header("Content-Disposition", "inline; filename=\"spec.yaml\"")
                .body(yaml.clone())
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_spelled_as_rfc_9110_does() {
        assert_eq!(header_case("RETRY-AFTER"), "Retry-After");
        assert_eq!(header_case("WWW-AUTHENTICATE"), "WWW-Authenticate");
        assert_eq!(header_case("CACHE-CONTROL"), "Cache-Control");
        assert_eq!(header_case("PRAGMA"), "Pragma");
    }

    #[test]
    fn swagger_ui_shows_the_finished_spec() {
        let service = super::super::openapi_service();
        let (docs, _, _) = endpoints(&service);
        let page = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async {
                docs.get_response(poem::Request::default())
                    .await
                    .into_body()
                    .into_string()
                    .await
                    .unwrap()
            });
        assert!(
            page.contains(&json(&service)),
            "Swagger UI embeds another spec"
        );
    }
}

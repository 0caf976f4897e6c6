//! An answer, read, with the assertions tests make on it; and forms.

use poem::http::{HeaderMap, StatusCode};
use poem::test::TestResponse;
use serde_json::Value;

/// A response, read.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub async fn read(response: TestResponse) -> Self {
        let response = response.0;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .into_bytes()
            .await
            .expect("a readable body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!(
                    "{status}: the body is not JSON: {:?}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Self {
            status,
            headers,
            body,
        }
    }

    /// A string field of the body.
    pub fn str(&self, field: &str) -> &str {
        self.body[field]
            .as_str()
            .unwrap_or_else(|| panic!("no string `{field}` in {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status, with the body in the message.
    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        self
    }

    /// Asserts a JSON error answer: the status and the `error` code.
    #[track_caller]
    pub fn assert_error(&self, status: u16, error: &str) -> &Self {
        self.assert_status(status);
        assert_eq!(
            self.body["error"], error,
            "unexpected error code in {}",
            self.body
        );
        let text = self
            .body
            .get("message")
            .or_else(|| self.body.get("error_description"));
        assert!(
            text.and_then(Value::as_str).is_some_and(|t| !t.is_empty()),
            "no explanation in {}",
            self.body
        );
        self
    }
}

/// `application/x-www-form-urlencoded`.
pub(super) fn form_encode(form: &[(&str, &str)]) -> String {
    let encode = |text: &str| -> String {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    form.iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

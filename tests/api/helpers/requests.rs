//! Talking to a [`TestApp`]: requests as a client sends them, and the
//! steps tests repeat (register, log in, refresh, check a session ended).

use serde_json::{Value, json};

use super::{PASSWORD, Reply, TestApp, form_encode};

impl TestApp {
    /// A form POST as if from the client address `peer` (the in-process
    /// client has none), through the same endpoint.
    pub async fn post_form_from(
        &self,
        peer: &str,
        headers: &[(&str, &str)],
        path: &str,
        form: &[(&str, &str)],
    ) -> Reply {
        let content_type = ("content-type", "application/x-www-form-urlencoded");
        let headers: Vec<_> = std::iter::once(content_type)
            .chain(headers.iter().copied())
            .collect();
        self.post_from(peer, &headers, path, form_encode(form))
            .await
    }

    /// A JSON POST as if from the client address `peer`.
    pub async fn post_json_from(&self, peer: &str, path: &str, body: &Value) -> Reply {
        let headers = [("content-type", "application/json")];
        self.post_from(peer, &headers, path, body.to_string()).await
    }

    async fn post_from(
        &self,
        peer: &str,
        headers: &[(&str, &str)],
        path: &str,
        body: String,
    ) -> Reply {
        use poem::Endpoint as _;
        let mut builder = poem::http::Request::builder().method("POST").uri(path);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let (parts, ()) = builder.body(()).unwrap().into_parts();
        let peer: std::net::SocketAddr = peer.parse().expect("ip:port");
        let remote = poem::web::RemoteAddr(poem::Addr::SocketAddr(peer));
        let local = poem::web::LocalAddr::default();
        let parts = poem::RequestParts::from((parts, local, remote, poem::http::uri::Scheme::HTTP));
        let request = poem::Request::from_parts(parts, poem::Body::from(body));
        let response = self
            .endpoint
            .call(request)
            .await
            .expect("the app answers every request");
        Reply::read(poem::test::TestResponse(response)).await
    }

    /// Stops the app and starts it again on the same database and data dir.
    pub async fn restart(self) -> Self {
        let Self {
            state,
            config,
            clock,
            db,
            client,
            endpoint,
        } = self;
        drop((client, endpoint));
        state.store.close().await;
        drop(state);
        Self::start(config, db, clock).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Reply {
        Reply::read(self.client.post(path).body_json(body).send().await).await
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Reply {
        Reply::read(self.client.post(path).form(&form).send().await).await
    }

    pub async fn post_form_with_authorization(
        &self,
        path: &str,
        authorization: &str,
        form: &[(&str, &str)],
    ) -> Reply {
        let request = self
            .client
            .post(path)
            .header("Authorization", authorization)
            .form(&form);
        Reply::read(request.send().await).await
    }

    /// `method` `path` with a JSON body and a bearer token.
    pub async fn json_with_token(
        &self,
        method: poem::http::Method,
        path: &str,
        token: &str,
        body: &Value,
    ) -> Reply {
        let request = self
            .client
            .request(method, path)
            .header("Authorization", format!("Bearer {token}"))
            .body_json(body);
        Reply::read(request.send().await).await
    }

    pub async fn get_with_token(&self, path: &str, token: &str) -> Reply {
        Reply::read(
            self.client
                .get(path)
                .header("Authorization", format!("Bearer {token}"))
                .send()
                .await,
        )
        .await
    }

    pub async fn register(&self, username: &str, password: &str) -> Reply {
        self.post_json(
            "/users",
            &json!({"username": username, "password": password}),
        )
        .await
    }

    /// Registers the client `client_id` (confidential or public) for
    /// `grants` and `scopes`, as `gatehouse client create` does; its
    /// secret, if confidential.
    pub async fn register_client(
        &self,
        client_id: &str,
        confidential: bool,
        grants: &[&str],
        scopes: &[&str],
    ) -> Option<String> {
        use secrecy::ExposeSecret as _;
        let strings = |items: &[&str]| items.iter().map(|item| (*item).to_owned()).collect();
        let new = gatehouse::auth::clients::NewClient {
            name: format!("{client_id} (a test client)"),
            client_id: Some(client_id.to_owned()),
            confidential,
            first_party: false,
            grant_types: strings(grants),
            redirect_uris: Vec::new(),
            scopes: strings(scopes),
        };
        let (_, secret) = self
            .state
            .clients
            .register(new)
            .await
            .expect("the client registers");
        secret.map(|secret| secret.expose_secret().to_owned())
    }

    /// Registers `username` with [`PASSWORD`] and logs in: the token response.
    pub async fn user_with_tokens(&self, username: &str) -> Reply {
        self.register(username, PASSWORD).await.assert_status(201);
        let tokens = self.login(username, PASSWORD).await;
        tokens.assert_status(200);
        tokens
    }

    pub async fn login(&self, username: &str, password: &str) -> Reply {
        self.post_form(
            "/oauth/token",
            &[
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
            ],
        )
        .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Reply {
        self.post_json("/auth/refresh", &json!({"refresh_token": refresh_token}))
            .await
    }

    /// Disables (or enables) the account `username` as `gatehouse user
    /// disable` does; whether it exists.
    pub async fn set_disabled(&self, username: &str, disabled: bool) -> bool {
        self.state
            .accounts
            .set_disabled(username, disabled)
            .await
            .expect("the store answers")
    }

    /// Asserts that the session of `tokens` (a login's or a refresh's
    /// answer) has ended: its refresh token and its access token are refused.
    pub async fn assert_session_ended(&self, tokens: &Reply) {
        self.refresh(tokens.str("refresh_token"))
            .await
            .assert_error(400, "invalid_grant");
        self.me(tokens.str("access_token"))
            .await
            .assert_error(401, "invalid_token");
    }

    pub async fn me(&self, access_token: &str) -> Reply {
        self.get_with_token("/users/me", access_token).await
    }

    /// An access token this app signs for the session of `claims` (another
    /// token's), with `scope`, issued at `issued_at`.
    pub fn sign_access_token(
        &self,
        claims: &Value,
        scope: &str,
        issued_at: gatehouse::clock::UnixMillis,
    ) -> String {
        let user_id = claims["sub"].as_str().expect("a sub").into();
        let session_id = claims["sid"].as_str().expect("a sid").into();
        let grant = gatehouse::auth::jwt::Subject {
            user_id: &user_id,
            session_id: &session_id,
            scope: scope.to_owned(),
            client_id: "test",
            authenticated_at: issued_at,
            amr: "pwd",
        };
        self.state
            .signing
            .issue(&grant, issued_at)
            .expect("a signed token")
    }
}

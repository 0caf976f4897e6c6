//! Gatehouse: an OpenAPI-first authentication service.
//!
//! The crate root only declares modules and what they export. [`build_app`]
//! (in `startup.rs`) is what `main` and the tests share: it opens and
//! migrates the database, loads the keys and returns the routes and the
//! [`AppState`] (in `state.rs`).

mod admin;
pub mod api;
mod audit;
pub mod auth;
pub mod clock;
pub mod config;
mod error;
pub mod ids;
pub mod mail;
mod metrics;
mod serve;
mod server;
mod startup;
mod state;
pub mod store;

pub use admin::{
    ResetLinkArgs, create_client, create_user, disable_client, list_clients, list_keys, migrate,
    reseal_keys, reset_keys, reset_link, reset_refresh_secret, reset_user_mfa,
    rotate_client_secret, rotate_keys, set_user_disabled,
};
pub use serve::serve;
pub use startup::{StartError, build_app, build_app_with_clock, open_store};
pub use state::AppState;

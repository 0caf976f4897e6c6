//! Gatehouse's integration tests: the real application, on a fresh SQLite
//! file and on a fresh MySQL database per test.

mod helpers;
mod proxy;

mod audit;
mod authorize;
mod bad_input;
mod clients;
mod disable;
mod discovery;
mod email_verification;
mod faults;
mod files;
mod galera;
mod hash_upgrade;
mod instances;
mod junk;
mod key_recovery;
mod keys;
mod layout;
mod limits;
mod mail_delivery;
mod metrics;
mod mfa;
mod pages;
mod password_change;
mod password_reset;
mod process;
mod prune;
mod refresh;
mod refresh_interleavings;
mod refresh_races;
mod restart;
mod revoke;
mod rotation;
mod sessions;
mod spec;
mod throttle;
mod tokens;
mod upgrade;
mod users;

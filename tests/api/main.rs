//! Gatehouse's integration tests: the real application, on a fresh SQLite
//! file and on a fresh MySQL database per test.

mod helpers;

mod bad_input;
mod keys;
mod process;
mod refresh;
mod restart;
mod spec;
mod tokens;
mod users;

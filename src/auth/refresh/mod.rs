//! Refresh tokens, in one place: opaque, 256 random bits, stored only as a
//! SHA-256 hash, rotated by every refresh.
//!
//! - `policy.rs`: the rule for a presented token ([`RefreshPolicy`]), pure.
//! - `successors.rs`: how a successor is derived ([`Successors`]).
//! - `rotation.rs`: the refresh grant's one transaction ([`RefreshRotation`]),
//!   which reads the state, decides by the policy, derives, and writes.
//!
//! Every refresh rotates the token. The successor is derived, not drawn:
//! `HMAC-SHA256(server secret, reissues ‖ parent)`. So a request that
//! re-presents a just-rotated parent (a second tab, a retry whose response
//! was lost) can be given the very same successor without the plaintext
//! ever being stored, and all instances sharing the database (and so the
//! secret) agree on it. The secret is kept in the database sealed with the
//! key-encryption key: a dump alone cannot compute a chain forward.
//!
//! Only within the grace window may two presenters of one token share its
//! successor. After it, a parent whose successor was never used gets a new
//! successor (its `reissues` counter moves on) and the unused one is
//! superseded: if the two presenters were an owner and a thief, whichever
//! holds the superseded token is caught on its next use, and the family
//! is revoked.

mod policy;
mod rotation;
mod successors;

pub use policy::{Decision, RefreshPolicy};
pub(crate) use rotation::{RefreshError, RefreshRotation};
pub use successors::{LEGACY_SUCCESSOR_SECRET_NAME, SUCCESSOR_SECRET_NAME, Successors};

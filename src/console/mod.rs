//! The administration console, served by Asterisk's own HTTP server under `/deviceuser/`:
//! the page and its files ([`assets`]), the JSON API under `/deviceuser/api/` ([`api`]),
//! edits of `res_deviceuser.conf` through Asterisk's config writer ([`edit`]), and the live
//! feed over a WebSocket at `/deviceuser/ws` ([`feed`]). Served only while at least one
//! console user is configured; the decisions (routes, roles, sessions, field checks) are
//! the core's [`deviceuser_core::console`].
mod api;
mod assets;
mod edit;
mod feed;
mod reply;

pub use api::serve;
pub use feed::{run as feed, upgrade};

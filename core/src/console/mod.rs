//! The administration console: what its HTTP server side decides, without Asterisk.
//!
//! The console is served by Asterisk's own HTTP server under `/deviceuser/`: a page, its
//! assets, a JSON API under `/deviceuser/api/` and a WebSocket live feed. The host parts
//! (linking the URIs, reading requests, writing `res_deviceuser.conf` through Asterisk's
//! config writer) live in the module; the decisions live here:
//!
//! - console users (`type = console_user` sections) and their roles are read with the rest
//!   of the configuration, so they are kept beside it, in [`crate::console_users`];
//! - [`auth`]: sessions, login lockout, the checks against cross-site requests, cookies;
//! - [`routes`]: which operation a method and path name (and the table the OpenAPI file is
//!   checked against);
//! - [`edit`]: JSON bodies turned into edits of a config section, validated field by field
//!   before the whole file is validated by [`crate::config::Config::from_raw`];
//! - [`render`]: the JSON the API and the live feed send.
pub mod auth;
pub mod edit;
pub mod render;
pub mod routes;

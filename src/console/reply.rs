//! The console's answers: JSON bodies and errors, the request's JSON body, where the console
//! is, and a device's state token; shared by the API and the edits.
use deviceuser_core::console::edit::FieldError;
use deviceuser_core::console::render;
use serde_json::Value;

use crate::host::devstate::device_state;
use crate::host::http::{self, Body, Request, Response};

pub const JSON: &str = "application/json; charset=utf-8";

pub fn json_response(status: u16, v: &Value) -> Response {
    Response::new(status, JSON, v.to_string())
}

pub fn error(status: u16, message: &str) -> Response {
    json_response(status, &render::error(message, &[]))
}

pub fn field_errors(status: u16, message: &str, fields: &[FieldError]) -> Response {
    json_response(status, &render::error(message, fields))
}

/// Where the console is, with `http.conf`'s prefix: `/deviceuser/` or `/asterisk/deviceuser/`.
pub fn base() -> String {
    format!("{}/deviceuser/", http::prefix())
}

/// Reads the JSON body of a request.
pub fn body(req: &Request) -> Result<Value, Response> {
    let is_json = req
        .header("Content-Type")
        .and_then(|t| t.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    match req.json_body() {
        Body::Json(text) => serde_json::from_str(&text)
            .map_err(|e| error(400, &format!("malformed JSON body: {e}"))),
        Body::TooLarge => Err(error(413, "the body is too large")),
        Body::Malformed => Err(error(400, "malformed JSON body")),
        Body::None if is_json => Err(error(400, "a JSON body is required")),
        Body::None => Err(error(415, "expected Content-Type: application/json")),
    }
}

/// The state token of a device (`PJSIP/1000`), for the device list.
pub fn device_state_token(dial: &str) -> &'static str {
    render::state_token(&device_state(dial).name(), false)
}

#![forbid(unsafe_code)]
//! Domain core of res_deviceuser.

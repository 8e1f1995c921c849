//! Harness of the integration tests: the kit shared with the benchmark driver
//! (`kit/`, crate `deviceuser-kit`): real Asterisk instances ([`Asterisk`]), an AMI client
//! ([`Ami`]) and SIP peers ([`sip`]). Helpers that only tests need go here.
pub use deviceuser_kit::*;

//! Tests of the codec, framing and client. Each test says what property it checks and why.

mod client;
mod codec;
mod fixtures;
mod frame;
mod peer;

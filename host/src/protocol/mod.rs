//! The 8x8 CPaaS Voice protocol: the wire types, parsing and reply rules
//! (crate `ivr-protocol`, re-exported here) and the client of 8x8's REST API.

pub mod api;

pub use ivr_protocol::*;

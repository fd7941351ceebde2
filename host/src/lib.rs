//! ivr-host: answers 8x8 CPaaS Voice webhooks by running IVR logic as
//! sandboxed WebAssembly components.
//!
//! One VCA event's path: [`edge`] (HTTP, limits) → [`service`] (the event's
//! path, top to bottom) → [`protocol`] (bytes → typed 8x8 event) → [`apps`]
//! (which app answers) → [`runtime`] (a fresh instance runs the guest) →
//! [`protocol`] (validate and serialize the callflow) → back to 8x8.

pub mod apps;
pub mod cli;
pub mod config;
pub mod edge;
pub mod protocol;
pub mod runtime;
pub mod service;
pub mod store;

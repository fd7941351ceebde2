//! Nothing here: the package only holds `benches/stages.rs`.

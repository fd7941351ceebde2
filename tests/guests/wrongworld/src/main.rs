//! A WASI command: a valid component, but not an IVR app (it exports
//! `wasi:cli/run`, not `handle-call-action`).

fn main() {
    println!("I am not an IVR app");
}

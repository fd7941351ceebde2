/// mimalloc instead of glibc's malloc: every event allocates and frees a
/// wasm store, WASI context, request and reply (bench/README.md has the effect).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    ivr_host::tune_allocator();
    ivr_host::cli::main()
}

fn main() -> std::process::ExitCode {
    ivr_host::cli::main()
}

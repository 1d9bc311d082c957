//! `tekup-mocks`: run the API mocks standalone. See `tekup-mocks --help`.

fn main() -> std::process::ExitCode {
    tekup_mocks::cli::main()
}

//! `tekup-harness`: see [`tekup_harness::cli`].

fn main() -> std::process::ExitCode {
    tekup_harness::cli::main()
}

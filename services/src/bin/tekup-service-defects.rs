//! `tekup-service-defects`: `tekup-service` built with the `defects`
//! feature, whose deliberate defects (`TEKUP_DEFECTS`, see
//! `tekup_services::defects`) let the harness prove its checks can fail.
//! Never deployed; built only with `--features defects`.

use std::process::ExitCode;

fn main() -> ExitCode {
    tekup_services::cli::main()
}

//! `tekup-service`: runs one of the reference services or administers their database.

use std::process::ExitCode;

fn main() -> ExitCode {
    tekup_services::cli::main()
}

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(appstore_ledger::cli::main(std::env::args_os()))
}

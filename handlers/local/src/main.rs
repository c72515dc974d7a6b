//! `keygate-local`: the whole API on one machine, with the same core and request handling as Lambda.
//! `main` only wires: flags and environment into configuration, the store, the key files, the server.

mod cli;
mod keyfile;
mod keys;
mod mailer;
mod server;

use std::process::ExitCode;

fn main() -> ExitCode {
    let options = match cli::Options::parse() {
        Ok(options) => options,
        Err(error) => {
            // clap prints usage errors (exit 2) and --help/--version (exit 0) itself.
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    server::init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("keygate-local: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = match options.action {
        cli::Action::Serve => runtime.block_on(server::run(options)),
        cli::Action::RotateKeys => runtime.block_on(server::rotate(options)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("keygate-local: {error}");
            ExitCode::FAILURE
        }
    }
}

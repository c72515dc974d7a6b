//! `keygate-local`: the whole API on one machine, with the same core and request handling as Lambda.
//! `main` only wires: flags and environment into configuration, the embedded store, the key file, the server.

mod cli;
mod key_file;
mod server;

use std::process::ExitCode;

fn main() -> ExitCode {
    let options = match cli::Options::parse() {
        Ok(options) => options,
        Err(error) => {
            // clap prints usage and help itself; everything else is one line.
            if let Some(clap_error) = error.downcast_ref::<clap::Error>() {
                let _ = clap_error.print();
                return if clap_error.use_stderr() {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
            eprintln!("keygate-local: {error}");
            return ExitCode::from(2);
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
    match runtime.block_on(server::run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("keygate-local: {error}");
            ExitCode::FAILURE
        }
    }
}

//! Lambda function `well-known`: GET /.well-known/jwks.json and GET /.well-known/openid-configuration. Only wiring; see `keygate_aws::shell`.

use keygate_aws::shell::{Table, run_http};
use keygate_http::Endpoint;

fn main() -> std::process::ExitCode {
    run_http(&[Endpoint::Jwks, Endpoint::Discovery], Table::NotUsed)
}

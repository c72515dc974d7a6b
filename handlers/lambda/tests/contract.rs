//! `cdk/contract.json` is what `keygate_lambda::contract::render` prints: the CDK never reads a route, a
//! setting or a metric that the Rust code does not have.
//! Regenerate: `KEYGATE_WRITE_CONTRACT=1 cargo test -p keygate-lambda --test contract`.

use std::path::Path;

#[test]
fn the_checked_in_contract_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../cdk/contract.json");
    let rendered = keygate_lambda::contract::render();
    if std::env::var_os("KEYGATE_WRITE_CONTRACT").is_some() {
        std::fs::write(&path, &rendered).expect("writing cdk/contract.json");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == rendered,
        "cdk/contract.json is stale (or missing): the Rust routes, settings or metrics changed. \
         Regenerate it with `KEYGATE_WRITE_CONTRACT=1 cargo test -p keygate-lambda --test contract` \
         and commit it."
    );
}

//! keygate-bench: cold start, warm round trip, peak RSS and zip size of every keygate Lambda function,
//! beside a hello floor, an SDK floor and a Node.js refresh handler, on one machine in one run.
//!
//! `keygate-bench run` starts moto's server, creates the table and key secret, seeds users and tokens
//! through the register and login functions, then starts every variant's bootstrap many times under a
//! local Lambda Runtime API (see `emulator`), interleaving the variants run by run, and writes
//! `results.json`, `results.md` and `chart.svg`. `keygate-bench report DIR` re-renders the last two from
//! the first. `tests/bench/run.sh` builds everything first; docs/benchmarks.md documents it.
//!
//! `run --cpu-mb 128,256,…` runs every variant once per memory size, each process inside a cgroup
//! whose CPU quota is Lambda's share at that size (`cgroup`), and times moto's bare calls in the same
//! run (`moto_probe`); `keygate-bench power DIR` turns such a run into a Lambda Power Tuning table
//! and chart (`power`), and `keygate-bench cost --profile FILE` prices a month of traffic (`cost`).

mod cgroup;
mod cost;
mod emulator;
mod events;
mod moto_probe;
mod power;
mod prices;
mod report;
mod table;
mod workload;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use keygate_core::SigningAlgorithm;
use keygate_core::keys::{KeySet, KeySetDocument, PublicKeySetDocument, generate_key};
use keygate_core::refresh::RefreshToken;
use keygate_core::{AuthConfig, Clock, SystemClock};
use serde_json::{Value, json};

use emulator::{Instance, Launch, lambda_env};
use report::{MotoTiming, Results, VariantResult};
use workload::{Fixture, Kind, PASSWORD_A, seed_email};

const USAGE: &str = "usage:
  keygate-bench run [--runs N] [--warm N] [--out DIR] [--lambda-dir DIR] [--node-dir DIR] [--venv DIR]
                    [--only LABEL,...] [--variant LABEL=KIND:PATH[:KEY=VALUE,...]]... [--title TEXT]
                    [--moto-endpoint URL] [--seed N] [--cpu-mb MB,...] [--moto-probes N]
                    [--table-items N,...]
  keygate-bench report DIR     (re-renders DIR/results.md and DIR/chart.svg from DIR/results.json)
  keygate-bench power DIR      (DIR/results.json of a --cpu-mb run -> DIR/power.md, DIR/power.svg)
  keygate-bench cost [--profile FILE] [--power DIR] [--mau N] [--results FILE] [--memory FILE]
                     [--contract FILE]   (a month's cost, keygate beside Amazon Cognito)";

const TABLE: &str = "keygate-bench";
/// The sender's domain, a verified identity on moto's SES (the mailer's `KEYGATE_MAIL_FROM`).
const MAIL_DOMAIN: &str = "bench.keygate.test";

struct Options {
    runs: usize,
    warm: usize,
    out: PathBuf,
    lambda_dir: PathBuf,
    node_dir: PathBuf,
    venv: PathBuf,
    only: Option<Vec<String>>,
    extras: Vec<String>,
    title: String,
    moto_endpoint: Option<String>,
    seed: u64,
    /// Emulated memory sizes: every variant once per size, inside that size's CPU cgroup.
    cpu_mb: Vec<u32>,
    /// Timed calls per DynamoDB operation at each moto sampling point.
    moto_probes: usize,
    /// The table's sizes: every variant once per size, each cold start on a table restored to it.
    table_items: Vec<usize>,
}

/// The default table sizes: small (a little above what seeding writes with the defaults) and
/// realistic for moto (the 2,403 items the single growing table of the power run reached by its
/// end; DynamoDB's latency does not grow with a table, moto's does).
const TABLE_ITEMS: [usize; 2] = [400, 2_400];

/// One benchmarked process.
#[derive(Debug, Clone)]
struct Variant {
    label: String,
    kind: Kind,
    runtime: &'static str,
    program: PathBuf,
    args: Vec<String>,
    task_root: PathBuf,
    extra_env: Vec<(String, String)>,
    zip_files: Vec<(String, PathBuf)>,
    cpu_mb: Option<u32>,
    table_items: usize,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("run") => parse_options(&args[1..]).and_then(|options| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                // An interrupted run still ends its processes and removes its cgroups: dropping
                // `run` drops the instances (killed on drop), moto and the groups.
                tokio::select! {
                    outcome = run(options) => outcome,
                    signal = interrupted() => Err(format!("interrupted by {signal}")),
                }
            })
        }),
        Some("report") if args.len() == 2 => rerender(Path::new(&args[1])),
        Some("power") if args.len() == 2 => power::write(Path::new(&args[1])),
        Some("cost") => cost::main(&args[1..]),
        _ => Err(USAGE.to_owned()),
    };
    if let Err(message) = outcome {
        eprintln!("keygate-bench: {message}");
        std::process::exit(1);
    }
}

async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        },
        _ => std::future::pending().await,
    }
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    let mut options = Options {
        runs: 20,
        warm: 20,
        out: PathBuf::from("tests/bench"),
        lambda_dir: target.join("lambda"),
        node_dir: PathBuf::from("tests/bench/node-refresh"),
        venv: PathBuf::from(".venv"),
        only: None,
        extras: Vec::new(),
        title: "keygate cold-start benchmark".to_owned(),
        moto_endpoint: std::env::var("AWS_ENDPOINT_URL_DYNAMODB").ok(),
        seed: 6,
        cpu_mb: Vec::new(),
        moto_probes: 10,
        table_items: TABLE_ITEMS.to_vec(),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        let number = |v: String| {
            v.parse::<usize>()
                .map_err(|_| format!("{flag}: `{v}` is not a number"))
        };
        match flag.as_str() {
            "--runs" => options.runs = number(value()?)?.max(1),
            "--warm" => options.warm = number(value()?)?,
            "--out" => options.out = PathBuf::from(value()?),
            "--lambda-dir" => options.lambda_dir = PathBuf::from(value()?),
            "--node-dir" => options.node_dir = PathBuf::from(value()?),
            "--venv" => options.venv = PathBuf::from(value()?),
            "--only" => options.only = Some(value()?.split(',').map(str::to_owned).collect()),
            "--variant" => options.extras.push(value()?),
            "--title" => options.title = value()?,
            "--moto-endpoint" => options.moto_endpoint = Some(value()?),
            "--seed" => options.seed = number(value()?)? as u64,
            "--moto-probes" => options.moto_probes = number(value()?)?.max(1),
            "--cpu-mb" => {
                let list = value()?;
                options.cpu_mb = list
                    .split(',')
                    .map(|v| match v.trim().parse::<u32>() {
                        // Lambda's range.
                        Ok(mb) if (128..=10_240).contains(&mb) => Ok(mb),
                        _ => Err(format!(
                            "--cpu-mb: `{v}` is not a memory size in MB (128-10240)"
                        )),
                    })
                    .collect::<Result<Vec<u32>, String>>()?;
                options.cpu_mb.sort_unstable();
                options.cpu_mb.dedup();
            }
            "--table-items" => {
                let list = value()?;
                options.table_items = list
                    .split(',')
                    .map(|v| {
                        v.trim()
                            .parse::<usize>()
                            .ok()
                            .filter(|n| (1..=100_000).contains(n))
                            .ok_or_else(|| {
                                format!("--table-items: `{v}` is not an item count (1-100000)")
                            })
                    })
                    .collect::<Result<Vec<usize>, String>>()?;
                options.table_items.sort_unstable();
                options.table_items.dedup();
            }
            _ => return Err(format!("unknown argument {flag}\n{USAGE}")),
        }
    }
    Ok(options)
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

fn rust_variant(
    label: &str,
    kind: Kind,
    bootstrap: PathBuf,
    extra_env: Vec<(String, String)>,
) -> Variant {
    let task_root = bootstrap.parent().map(Path::to_owned).unwrap_or_default();
    Variant {
        label: label.to_owned(),
        kind,
        runtime: "provided.al2023",
        zip_files: vec![("bootstrap".to_owned(), bootstrap.clone())],
        program: bootstrap,
        args: Vec::new(),
        task_root,
        extra_env,
        cpu_mb: None,
        table_items: 0,
    }
}

fn discover(options: &Options, notes: &mut Vec<String>) -> Result<Vec<Variant>, String> {
    let mut variants = Vec::new();
    let wanted = |label: &str| {
        options
            .only
            .as_ref()
            .is_none_or(|only| only.iter().any(|o| o == label))
    };
    let mut kinds = vec![Kind::HelloFloor, Kind::SdkFloor];
    kinds.extend(Kind::FUNCTIONS);
    for kind in kinds {
        if !wanted(kind.name()) {
            continue;
        }
        let (bootstrap, env) = kind.bootstrap(&options.lambda_dir);
        let bootstrap = absolute(&bootstrap);
        if bootstrap.is_file() {
            variants.push(rust_variant(kind.name(), kind, bootstrap, env));
        } else {
            notes.push(format!(
                "{}: not built ({} missing), skipped",
                kind.name(),
                bootstrap.display()
            ));
        }
    }
    if wanted(Kind::NodeRefresh.name()) {
        let bundle = absolute(&options.node_dir.join("dist/index.js"));
        let runtime = absolute(&options.node_dir.join("runtime.js"));
        match find_in_path("node") {
            Some(node) if bundle.is_file() && runtime.is_file() => {
                let node_dir = node
                    .parent()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default();
                variants.push(Variant {
                    label: Kind::NodeRefresh.name().to_owned(),
                    kind: Kind::NodeRefresh,
                    runtime: "nodejs20.x",
                    program: node,
                    args: vec![runtime.display().to_string()],
                    task_root: bundle.parent().map(Path::to_owned).unwrap_or_default(),
                    extra_env: vec![(
                        "PATH".to_owned(),
                        format!("{node_dir}:/usr/local/bin:/usr/bin:/bin"),
                    )],
                    zip_files: vec![("index.js".to_owned(), bundle)],
                    cpu_mb: None,
                    table_items: 0,
                });
            }
            _ => notes.push(
                "node-refresh: node or the bundle (npm run build) missing, skipped".to_owned(),
            ),
        }
    }
    for spec in &options.extras {
        let (label, rest) = spec
            .split_once('=')
            .ok_or_else(|| format!("--variant {spec}: expected LABEL=KIND:PATH"))?;
        let mut parts = rest.splitn(3, ':');
        let kind_name = parts.next().unwrap_or_default();
        let kind = Kind::parse(kind_name)
            .filter(|k| *k != Kind::NodeRefresh)
            .ok_or_else(|| format!("--variant {spec}: unknown kind {kind_name}"))?;
        let mut path = PathBuf::from(
            parts
                .next()
                .ok_or_else(|| format!("--variant {spec}: no path"))?,
        );
        if path.is_dir() {
            path = path.join("bootstrap");
        }
        if !path.is_file() {
            return Err(format!(
                "--variant {spec}: {} is not a file",
                path.display()
            ));
        }
        // A function build is told which function it is, as in `Kind::bootstrap`.
        let (_, mut env) = kind.bootstrap(&options.lambda_dir);
        let extra: Vec<(String, String)> = parts
            .next()
            .map(|list| {
                list.split(',')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        env.extend(extra);
        variants.push(rust_variant(label, kind, absolute(&path), env));
    }
    // One variant per memory size and table size (a label says a size only if the run has
    // several); the run order is shuffled anyway.
    let by_memory: Vec<Variant> = if options.cpu_mb.is_empty() {
        variants
    } else {
        variants
            .into_iter()
            .flat_map(|v| {
                options.cpu_mb.iter().map(move |&mb| Variant {
                    label: format!("{} @{mb} MB", v.label),
                    cpu_mb: Some(mb),
                    ..v.clone()
                })
            })
            .collect()
    };
    let several = options.table_items.len() > 1;
    Ok(by_memory
        .into_iter()
        .flat_map(|v| {
            options.table_items.iter().map(move |&items| Variant {
                label: if several {
                    format!("{} [{items} items]", v.label)
                } else {
                    v.label.clone()
                },
                table_items: items,
                ..v.clone()
            })
        })
        .collect())
}

/// moto's server on a free loopback port, stopped on drop.
struct Moto {
    child: Option<std::process::Child>,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn start_moto(options: &Options, logs: &Path) -> Result<Moto, String> {
    if let Some(endpoint) = &options.moto_endpoint {
        return Ok(Moto {
            child: None,
            endpoint: endpoint.clone(),
        });
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let server = options.venv.join("bin/moto_server");
    let log = std::fs::File::create(logs.join("moto.log")).map_err(|e| e.to_string())?;
    let child = std::process::Command::new(&server)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| {
            format!(
                "{}: {e} (pip install 'moto[server]==5.2.5' into the venv)",
                server.display()
            )
        })?;
    let moto = Moto {
        child: Some(child),
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(moto);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("moto did not start listening within 30 s".into())
}

fn attr_s(value: &str) -> Value {
    json!({"S": value})
}

fn attr_n(value: i64) -> Value {
    json!({"N": value.to_string()})
}

/// The Node.js baseline's own user and first refresh token, written straight to the table in the item
/// layout its handler reads (so its chain does not depend on the Rust adapter's layout).
fn node_seed(now_ms: i64) -> Result<(String, Vec<Value>), String> {
    let email = "bench-node@example.com";
    let user_id = *uuid::Uuid::new_v4().as_bytes();
    // Family number 0 and no session flags: the unnumbered token layout (version 1), the one the
    // Node.js handler parses (a flagged token, version 3, it refuses as malformed).
    let mut token = RefreshToken::new_family(
        email,
        user_id,
        0,
        keygate_core::tokens::SessionFlags::VERIFIED,
        now_ms,
        30 * 86_400,
    )
    .map_err(|e| e.to_string())?;
    token.flags = None;
    let record = token.record(None);
    let pk = format!("USER#{email}");
    let user = json!({
        "pk": attr_s(&pk), "sk": attr_s("PROFILE"), "userId": attr_s(&token.user_id_string()), "email": attr_s(email),
        "passwordHash": attr_s("$argon2id$v=19$m=19456,t=2,p=1$bm90LXVzZWQ$bm90LXVzZWQ"), "createdAt": attr_n(now_ms),
        "revokedBefore": attr_n(0), "failedLogins": attr_n(0), "lockedUntil": attr_n(0)
    });
    let item = json!({
        "pk": attr_s(&pk), "sk": attr_s(&format!("REFRESH#{}#{}", record.family_id, record.token_id)),
        "tokenHash": attr_s(&record.token_hash), "issuedAt": attr_n(record.issued_at_ms),
        "expiresAt": attr_n(record.expires_at_s), "familyExpiresAt": attr_n(record.expires_at_s)
    });
    Ok((token.encode(), vec![user, item]))
}

fn launch_for(
    variant: &Variant,
    base_env: &[(String, String)],
    logs: &Path,
    groups: Option<&cgroup::CpuGroups>,
) -> Launch {
    let function_name = format!(
        "keygate-bench-{}",
        variant
            .label
            .replace(|c: char| !c.is_ascii_alphanumeric(), "-")
    );
    let mut env = lambda_env(
        &function_name,
        variant.runtime,
        &variant.task_root,
        events::REGION,
    );
    env.extend(base_env.iter().cloned());
    for (key, value) in &variant.extra_env {
        env.retain(|(k, _)| k != key);
        env.push((key.clone(), value.clone()));
    }
    let (program, args) = match (variant.cpu_mb, groups) {
        (Some(mb), Some(groups)) => {
            env.retain(|(k, _)| k != "AWS_LAMBDA_FUNCTION_MEMORY_SIZE");
            env.push(("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".to_owned(), mb.to_string()));
            cgroup::wrap(groups.root(), mb, &variant.program, &variant.args)
        }
        _ => (variant.program.clone(), variant.args.clone()),
    };
    Launch {
        program,
        args,
        current_dir: variant.program.parent().map(Path::to_owned),
        env,
        function_name,
        log: logs.join(format!(
            "{}.log",
            variant
                .label
                .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
        )),
    }
}

/// Calls a warm helper process and checks the status; returns the decoded body.
async fn call(
    instance: &mut Instance,
    event: &Value,
    expected: u16,
    what: &str,
) -> Result<Value, String> {
    let (reply, _) = instance
        .invoke(event)
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    let (status, body) = events::parse_response(&reply.body);
    if status != expected {
        return Err(format!(
            "{what}: status {status}: {}",
            String::from_utf8_lossy(&reply.body)
        ));
    }
    Ok(body.unwrap_or(Value::Null))
}

/// The kinds whose requests need users or tokens seeded before measuring.
fn needs_seeding(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Login
            | Kind::Refresh
            | Kind::Logout
            | Kind::LogoutAll
            | Kind::ChangePassword
            | Kind::Me
            | Kind::AccountEmail
            | Kind::AccountMfa
            | Kind::Mailer
    )
}

/// Seeds users and tokens through the register and login functions themselves. Every cold start
/// finds the table and the fixture as seeding left them (`table`), so a pool needs one item per
/// invocation of one cold start, whatever the runs and variants.
async fn prepare(
    variants: &[Variant],
    fixture: &mut Fixture,
    options: &Options,
    base_env: &[(String, String)],
    logs: &Path,
) -> Result<(), String> {
    let count = |kind: Kind| variants.iter().filter(|v| v.kind == kind).count();
    let per_cold_start = |kind: Kind| {
        if count(kind) > 0 { options.warm + 1 } else { 0 }
    };
    if !variants.iter().any(|v| needs_seeding(v.kind)) {
        return Ok(());
    }
    let helper = |kind: Kind| -> Result<Variant, String> {
        let (bootstrap, env) = kind.bootstrap(&options.lambda_dir);
        let bootstrap = absolute(&bootstrap);
        if !bootstrap.is_file() {
            return Err(format!(
                "seeding needs the {} function ({} missing)",
                kind.name(),
                bootstrap.display()
            ));
        }
        Ok(rust_variant(
            &format!("seed-{}", kind.name()),
            kind,
            bootstrap,
            env,
        ))
    };
    let register = |email: &str| {
        events::rest_event(
            "POST",
            "/auth/register",
            Some(&json!({"email": email, "password": PASSWORD_A})),
            None,
        )
    };
    let login_as = |email: &str| {
        events::rest_event(
            "POST",
            "/auth/login",
            Some(&json!({"email": email, "password": PASSWORD_A})),
            None,
        )
    };
    let login = || login_as(seed_email());

    let mut instance =
        Instance::start(&launch_for(&helper(Kind::Register)?, base_env, logs, None)).await?;
    let user_id = |body: &Value| {
        body.get("user_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or("register: no user_id")
    };
    let seed = call(
        &mut instance,
        &register(seed_email()),
        201,
        "register the seed user",
    )
    .await?;
    fixture.seed_user = Some(user_id(&seed)?);
    if count(Kind::Me) > 0 {
        let email = fixture.unique_email("me");
        fixture.me_user = Some(user_id(
            &call(
                &mut instance,
                &register(&email),
                201,
                "register the me user",
            )
            .await?,
        )?);
    }
    for v in variants.iter().filter(|v| v.kind == Kind::ChangePassword) {
        let email = fixture.unique_email("pw");
        let id = user_id(
            &call(
                &mut instance,
                &register(&email),
                201,
                "register a password-change user",
            )
            .await?,
        )?;
        fixture
            .password_chains
            .insert(v.label.clone(), (fixture.mint_access_token(&id)?, true));
        fixture.password_users.insert(v.label.clone(), id);
    }
    if count(Kind::AccountMfa) > 0 {
        let email = fixture.unique_email("mfa");
        fixture.mfa_user = Some(user_id(
            &call(
                &mut instance,
                &register(&email),
                201,
                "register the account-mfa user",
            )
            .await?,
        )?);
    }
    for _ in 0..per_cold_start(Kind::AccountEmail) {
        let email = fixture.unique_email("reset");
        call(
            &mut instance,
            &register(&email),
            201,
            "register an account-email user",
        )
        .await?;
        fixture.email_pool.push(email);
    }
    // Each registration queues its verification mail: the mailer's pool (taken from the snapshot).
    for _ in 0..per_cold_start(Kind::Mailer) {
        let email = fixture.unique_email("mail");
        call(
            &mut instance,
            &register(&email),
            201,
            "register a user for the mailer's outbox",
        )
        .await?;
    }
    let logout_all_users = per_cold_start(Kind::LogoutAll);
    for i in 0..logout_all_users {
        let email = fixture.unique_email("all");
        fixture.logout_all_pool.push(user_id(
            &call(
                &mut instance,
                &register(&email),
                201,
                "register a logout-all user",
            )
            .await?,
        )?);
        progress("seeding logout-all users", i + 1, logout_all_users);
    }
    // A refresh chain has a user of its own: a user's families beyond the live-family cap
    // (KEYGATE_MAX_REFRESH_FAMILIES) are retired, and the login variants and the logout pool open
    // hundreds of the seed user's.
    let refreshes: Vec<(&Variant, String)> = variants
        .iter()
        .filter(|v| v.kind == Kind::Refresh)
        .map(|v| (v, fixture.unique_email("refresh")))
        .collect();
    for (_, email) in &refreshes {
        call(
            &mut instance,
            &register(email),
            201,
            "register a refresh user",
        )
        .await?;
    }
    instance.stop().await;

    let logouts = per_cold_start(Kind::Logout);
    if logouts + refreshes.len() > 0 {
        let mut instance =
            Instance::start(&launch_for(&helper(Kind::Login)?, base_env, logs, None)).await?;
        let refresh_token = |body: &Value| {
            body.get("refresh_token")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or("login: no refresh_token")
        };
        for (v, email) in refreshes {
            let body = call(
                &mut instance,
                &login_as(&email),
                200,
                "log a refresh user in",
            )
            .await?;
            fixture
                .chains
                .insert(v.label.clone(), refresh_token(&body)?);
        }
        for i in 0..logouts {
            let body = call(&mut instance, &login(), 200, "log in for the logout pool").await?;
            fixture.logout_pool.push(refresh_token(&body)?);
            progress("seeding logout tokens", i + 1, logouts);
        }
        instance.stop().await;
    }
    Ok(())
}

fn progress(what: &str, done: usize, total: usize) {
    if done == total || done.is_multiple_of(50) {
        eprintln!("  {what}: {done}/{total}");
    }
}

/// One cold start of `variant` on the table and fixture as seeded (the table topped up to the
/// variant's size), then `warm` warm invocations, each followed by one bare call to moto of each
/// kind of DynamoDB call the invocation made (`probe`).
async fn measure(
    variant: &Variant,
    seeded: (&Fixture, &table::Snapshot),
    launch: &Launch,
    warm: usize,
    result: &mut VariantResult,
    probe: &moto_probe::Probe,
) {
    let fail = |result: &mut VariantResult, error: String| {
        result.invocations_failed += 1;
        if result.errors.len() < 20 {
            result.errors.push(error);
        }
    };
    let mut fixture = seeded.0.clone();
    if let Err(e) = seeded.1.restore(probe, variant.table_items).await {
        return fail(
            result,
            format!("{}: restoring the table: {e}", variant.label),
        );
    }
    let mut instance = match Instance::start(launch).await {
        Ok(instance) => instance,
        Err(e) => return fail(result, e),
    };
    if variant.kind.init_only() {
        match instance.wait_init().await {
            Ok(init) => {
                result.init_ms.push(init.as_secs_f64() * 1e3);
                result.peak_rss_bytes.extend(instance.peak_rss());
            }
            Err(e) => fail(result, format!("{}: {e}", variant.label)),
        }
        instance.stop().await;
        return;
    }
    for i in 0..=warm {
        let event = match fixture.event(variant.kind, &variant.label) {
            Ok(event) => event,
            Err(e) => {
                fail(result, e);
                break;
            }
        };
        let (reply, took) = match instance.invoke(&event).await {
            Ok(answer) => answer,
            Err(e) => {
                fail(result, format!("{}: {e}", variant.label));
                break;
            }
        };
        if i == 0 {
            match instance.wait_init().await {
                Ok(init) => result.init_ms.push(init.as_secs_f64() * 1e3),
                Err(e) => fail(result, e),
            }
            result.first_response_ms.push(
                reply
                    .arrived
                    .saturating_duration_since(instance.started())
                    .as_secs_f64()
                    * 1e3,
            );
        } else {
            for (op, _) in variant.kind.dynamo_calls() {
                if let Ok(ms) = probe.time(*op).await {
                    result
                        .moto_samples
                        .entry(op.name().to_owned())
                        .or_default()
                        .push(ms);
                }
            }
        }
        let checked = if reply.ok {
            fixture.check(variant.kind, &variant.label, &reply.body)
        } else {
            Err(format!(
                "{}: the handler failed: {}",
                variant.label,
                String::from_utf8_lossy(&reply.body)
            ))
        };
        match checked {
            Ok(()) => {
                result.invocations_ok += 1;
                // A warm figure is an answer as expected: a refusal is not the workload's work.
                if i > 0 {
                    result.warm_ms.push(took.as_secs_f64() * 1e3);
                }
            }
            Err(e) => fail(result, e),
        }
    }
    result.peak_rss_bytes.extend(instance.peak_rss());
    instance.stop().await;
}

/// The size of a zip holding `files` as cargo-lambda packs a bootstrap (deflate, mode 755).
fn zip_size(files: &[(String, PathBuf)]) -> Result<u64, String> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o755);
    for (name, path) in files {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        writer
            .start_file(name.as_str(), options)
            .map_err(|e| e.to_string())?;
        writer.write_all(&bytes).map_err(|e| e.to_string())?;
    }
    Ok(writer
        .finish()
        .map_err(|e| e.to_string())?
        .into_inner()
        .len() as u64)
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo.lines().find_map(|l| {
        l.strip_prefix("model name")
            .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
    });
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "{} ({cores} cores), Linux {}",
        model.unwrap_or_else(|| "unknown CPU".into()),
        std::env::consts::ARCH
    )
}

/// A small deterministic generator for the run order.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

async fn run(options: Options) -> Result<(), String> {
    let mut notes = Vec::new();
    let mut variants = discover(&options, &mut notes)?;
    if variants.is_empty() {
        return Err(
            "nothing to benchmark: build the functions and floors first (tests/bench/run.sh)"
                .into(),
        );
    }
    let logs = absolute(
        &std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| PathBuf::from("target"), PathBuf::from)
            .join("bench-logs"),
    );
    std::fs::create_dir_all(&logs).map_err(|e| e.to_string())?;
    for entry in std::fs::read_dir(&logs)
        .map_err(|e| e.to_string())?
        .flatten()
    {
        let _ = std::fs::remove_file(entry.path());
    }
    std::fs::create_dir_all(&options.out).map_err(|e| e.to_string())?;
    // Created first, removed when `run` returns (or is dropped), whatever happened in between.
    let groups = if options.cpu_mb.is_empty() {
        None
    } else {
        Some(cgroup::CpuGroups::create(&options.cpu_mb)?)
    };

    eprintln!("starting moto and creating the table, the secrets and the mail identity");
    let moto = start_moto(&options, &logs).await?;
    let now_ms = SystemClock.now_ms();
    let document = KeySetDocument {
        keys: vec![
            generate_key(SigningAlgorithm::Es256, now_ms / 1000).map_err(|e| e.to_string())?,
        ],
    };
    let keys = Arc::new(KeySet::from_documents(&document, None).map_err(|e| e.to_string())?);
    let keys_file = logs.join("keyset.json");
    std::fs::write(&keys_file, document.to_json()).map_err(|e| e.to_string())?;
    // What rotate-keys writes beside it, for the functions that only verify.
    let public_file = logs.join("public-keyset.json");
    let public = PublicKeySetDocument::of(Some(&document), None).map_err(|e| e.to_string())?;
    std::fs::write(&public_file, public.to_json()).map_err(|e| e.to_string())?;
    let (node_token, node_items) = node_seed(now_ms)?;
    let creator = moto_probe::Probe::new(&moto.endpoint, TABLE, events::REGION, None);
    table::create(&creator)
        .await
        .map_err(|e| format!("creating the table: {e}"))?;
    table::put(&creator, &node_items).await?;
    let secret_name = "keygate-bench-signing-keys";
    let script = absolute(Path::new("tests/bench/moto_fixture.py"));
    let output = std::process::Command::new(options.venv.join("bin/python"))
        .arg(&script)
        .args([moto.endpoint.as_str(), secret_name, MAIL_DOMAIN])
        .arg(&keys_file)
        .arg(&public_file)
        .output()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    if !output.status.success() {
        return Err(format!(
            "creating the secrets and the mail identity failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let setup: Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("moto_fixture.py output: {e}"))?;
    let secret_arn = setup["secret_arn"]
        .as_str()
        .ok_or("moto_fixture.py printed no secret_arn")?
        .to_owned();
    let public_arn = setup["public_secret_arn"]
        .as_str()
        .ok_or("moto_fixture.py printed no public_secret_arn")?
        .to_owned();
    let server_key_arn = setup["server_key_secret_arn"]
        .as_str()
        .ok_or("moto_fixture.py printed no server_key_secret_arn")?
        .to_owned();
    let factor_keys_arn = setup["factor_keys_secret_arn"]
        .as_str()
        .ok_or("moto_fixture.py printed no factor_keys_secret_arn")?
        .to_owned();

    let base_env: Vec<(String, String)> = [
        ("AWS_ENDPOINT_URL_DYNAMODB", moto.endpoint.clone()),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto.endpoint.clone()),
        ("AWS_ENDPOINT_URL_SESV2", moto.endpoint.clone()),
        ("KEYGATE_TABLE_NAME", TABLE.to_owned()),
        ("KEYGATE_KEYS_SECRET_ID", secret_arn),
        ("KEYGATE_PUBLIC_KEYS_SECRET_ID", public_arn),
        ("KEYGATE_SERVER_KEY_SECRET_ID", server_key_arn),
        // Read by account-mfa only, as on AWS (the contract's `factor_keys`).
        ("KEYGATE_FACTOR_KEYS_SECRET_ID", factor_keys_arn),
        (
            "KEYGATE_MAIL_FROM",
            format!("keygate bench <no-reply@{MAIL_DOMAIN}>"),
        ),
        (
            "KEYGATE_ISSUER",
            format!(
                "https://{}.execute-api.{}.amazonaws.com/{}",
                events::API_ID,
                events::REGION,
                events::STAGE
            ),
        ),
        ("KEYGATE_AUDIENCE", "keygate-bench".to_owned()),
        ("KEYGATE_METRICS_NAMESPACE", "Keygate/bench".to_owned()),
        // The seeded users never open their verification mail: logins would answer 403.
        ("KEYGATE_REQUIRE_VERIFIED_EMAIL", "false".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let config = AuthConfig::from_lookup(|name| {
        base_env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    })
    .map_err(|e| e.to_string())?;
    let mut fixture = Fixture::new(config, keys, &format!("{:x}", now_ms));
    // Its chain, under every label it runs as (one per table size).
    for v in variants.iter().filter(|v| v.kind == Kind::NodeRefresh) {
        fixture.chains.insert(v.label.clone(), node_token.clone());
    }

    eprintln!("seeding users and tokens through the register and login functions");
    if let Err(e) = prepare(&variants, &mut fixture, &options, &base_env, &logs).await {
        let skipped: std::collections::BTreeSet<&str> = variants
            .iter()
            .filter(|v| needs_seeding(v.kind))
            .map(|v| v.kind.name())
            .collect();
        notes.push(format!(
            "seeding failed ({e}); {} skipped",
            skipped.into_iter().collect::<Vec<_>>().join(", ")
        ));
        eprintln!("  {e}");
        variants.retain(|v| !needs_seeding(v.kind));
    }
    let probe = moto_probe::Probe::new(
        &moto.endpoint,
        TABLE,
        events::REGION,
        fixture.seed_user.as_deref(),
    );
    let snapshot = table::Snapshot::take(&probe).await?;
    if let Some(&smallest) = options.table_items.first()
        && smallest < snapshot.len()
    {
        return Err(format!(
            "--table-items {smallest}: seeding wrote {} items (more with more --warm); ask for at least that many",
            snapshot.len()
        ));
    }
    if variants.iter().any(|v| v.kind == Kind::Mailer) {
        fixture.outbox_pool = snapshot.items_where("OUTBOX#", "MAIL");
        fixture.outbox_pool.truncate(options.warm + 1);
    }
    notes.push(format!(
        "Every cold start ran on the table as seeding left it ({} items: the seeded users, tokens and outbox mails), topped up with filler items (other users' profiles and refresh tokens) to the variant's size and put back so (what the last cold start added deleted, what it changed rewritten) before the process started, untimed; the harness's chains and pools were restored with it.",
        snapshot.len()
    ));

    let mut results: Vec<VariantResult> = variants
        .iter()
        .map(|v| VariantResult {
            label: v.label.clone(),
            kind: v.kind.name().to_owned(),
            runtime: v.runtime.to_owned(),
            init_only: v.kind.init_only(),
            zip_bytes: zip_size(&v.zip_files).ok(),
            cpu_mb: v.cpu_mb,
            table_items: Some(v.table_items as u64),
            binary_bytes: v
                .zip_files
                .iter()
                .map(|(_, p)| std::fs::metadata(p).map_or(0, |m| m.len()))
                .sum::<u64>()
                .into(),
            ..Default::default()
        })
        .collect();
    let launches: Vec<Launch> = variants
        .iter()
        .map(|v| launch_for(v, &base_env, &logs, groups.as_ref()))
        .collect();
    // moto's own time at each table size, sampled before the first run and after each (on the table
    // restored to that size, its count checked), and beside every warm invocation.
    let mut moto_timing = MotoTiming {
        method: format!(
            "Bare calls from the harness to the same moto and table (Rust HTTP/1.1 client, unsigned JSON, connect not timed): {} of each call before the first run and after every run on the table restored to each size, interleaved call by call (this table); and one of each call a variant makes right after each of its warm invocations, whose medians give that variant's moto time.",
            options.moto_probes
        ),
        calls: variants
            .iter()
            .map(|v| {
                let calls = v
                    .kind
                    .dynamo_calls()
                    .iter()
                    .map(|(op, n)| (op.name().to_owned(), *n))
                    .collect();
                (v.kind.name().to_owned(), calls)
            })
            .collect(),
        ..Default::default()
    };
    let sample_every_size = async |timing: &mut MotoTiming| -> Result<(), String> {
        for &size in &options.table_items {
            snapshot.restore(&probe, size).await?;
            let held = probe.item_count().await?;
            if held != size as u64 {
                return Err(format!("the table restored to {size} items holds {held}"));
            }
            probe
                .sample(
                    options.moto_probes,
                    timing.by_table.entry(size as u64).or_default(),
                )
                .await?;
        }
        Ok(())
    };
    sample_every_size(&mut moto_timing).await?;
    let mut rng = XorShift(options.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut order: Vec<usize> = (0..variants.len()).collect();
    eprintln!(
        "measuring {} variants x {} runs x (1 cold + {} warm invocations)",
        variants.len(),
        options.runs,
        options.warm
    );
    for run in 0..options.runs {
        rng.shuffle(&mut order);
        for &i in &order {
            measure(
                &variants[i],
                (&fixture, &snapshot),
                &launches[i],
                options.warm,
                &mut results[i],
                &probe,
            )
            .await;
        }
        sample_every_size(&mut moto_timing).await?;
        eprintln!("  run {}/{} done", run + 1, options.runs);
    }
    drop(moto);
    if let Some(groups) = &groups {
        notes.push(format!(
            "Emulated memory sizes: each process ran in a cgroup v1 cpu group with cpu.cfs_period_us = {} and cpu.cfs_quota_us = period x MB / {} (Lambda's {} MB = one vCPU); moto and the harness ran outside them. Periods throttled / periods run, and CPU time refused, per size: {}.",
            cgroup::PERIOD_US,
            cgroup::ONE_VCPU_MB,
            cgroup::ONE_VCPU_MB,
            options
                .cpu_mb
                .iter()
                .map(|&mb| match groups.throttling(mb) {
                    Some((throttled, periods, ms)) =>
                        format!("{mb} MB {throttled}/{periods} ({ms:.0} ms)"),
                    None => format!("{mb} MB ?"),
                })
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }

    notes.push(
        "DynamoDB and Secrets Manager are moto's server on loopback over plain HTTP: every SDK round trip is real, but no TLS handshake is made (on Lambda the first call to each service also pays one), and moto (Python) answers more slowly than the AWS services do, which weighs on first response and warm figures alike for every variant."
            .to_owned(),
    );
    notes.push(
        "MB = 10^6 bytes (peak RSS is VmHWM; zip is the bootstrap deflated as cargo-lambda zips it, the Node bundle's index.js likewise). Init = spawn to the first GET /next; first response = spawn to the first answer; warm = median over the warm invocations answered as expected.".to_owned(),
    );
    notes.push(
        "node-refresh runs under a minimal Runtime API loop (tests/bench/node-refresh/runtime.js), lighter than the managed nodejs20.x runtime; it fetches and caches the key secret on its first invocation (the seed's pattern), whereas the Rust functions load keys during init: compare first response for the whole cold path."
            .to_owned(),
    );
    let results = Results {
        title: options.title.clone(),
        machine: machine(),
        runs: options.runs,
        warm: options.warm,
        notes,
        variants: results,
        cpu_mb: options.cpu_mb.clone(),
        moto: Some(moto_timing),
    };
    write_outputs(&results, &options.out)?;
    print!("{}", report::markdown(&results));
    eprintln!("process logs: {}", logs.display());
    Ok(())
}

fn write_outputs(results: &Results, out: &Path) -> Result<(), String> {
    let json = serde_json::to_string_pretty(results).map_err(|e| e.to_string())?;
    std::fs::write(out.join("results.json"), json + "\n").map_err(|e| e.to_string())?;
    std::fs::write(out.join("results.md"), report::markdown(results)).map_err(|e| e.to_string())?;
    std::fs::write(out.join("chart.svg"), report::svg(results)).map_err(|e| e.to_string())?;
    eprintln!("wrote {}/results.{{json,md}} and chart.svg", out.display());
    Ok(())
}

fn rerender(dir: &Path) -> Result<(), String> {
    let raw = std::fs::read_to_string(dir.join("results.json")).map_err(|e| e.to_string())?;
    let results: Results = serde_json::from_str(&raw).map_err(|e| e.to_string())?;
    write_outputs(&results, dir)
}

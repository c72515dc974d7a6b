//! Medians, ratios against the floors and the issue-6 targets, as a Markdown table and an SVG chart.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VariantResult {
    pub label: String,
    /// The workload kind (`refresh`, `floor-sdk`, ...).
    pub kind: String,
    pub runtime: String,
    pub init_only: bool,
    pub init_ms: Vec<f64>,
    pub first_response_ms: Vec<f64>,
    pub warm_ms: Vec<f64>,
    pub peak_rss_bytes: Vec<u64>,
    pub zip_bytes: Option<u64>,
    pub binary_bytes: Option<u64>,
    pub invocations_ok: u32,
    pub invocations_failed: u32,
    pub errors: Vec<String>,
    /// The emulated memory size (`run --cpu-mb`): the process ran with that share of one CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_mb: Option<u32>,
    /// The table's size at each of this variant's cold starts (restored to it before each).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_items: Option<u64>,
    /// moto's time per call (`workload::Op::name`), ms, timed by the harness right after each of
    /// this variant's warm invocations: one call of each kind of call the invocation made.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub moto_samples: BTreeMap<String, Vec<f64>>,
}

/// moto's own time per DynamoDB call in the same run (`crate::moto_probe`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MotoTiming {
    /// Per call (`workload::Op::name`), every timed call, ms (runs on one growing table).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub samples: BTreeMap<String, Vec<f64>>,
    /// The same per table size (runs that restore the table to a fixed size before each cold
    /// start): size in items -> call -> ms.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_table: BTreeMap<u64, BTreeMap<String, Vec<f64>>>,
    /// How the samples were taken.
    pub method: String,
    /// The one growing table's item count when measuring started and when it ended (earlier runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_items_start: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_items_end: Option<u64>,
    /// The calls one warm invocation makes, per workload kind (`workload::Kind::dynamo_calls`).
    pub calls: BTreeMap<String, BTreeMap<String, u32>>,
}

impl MotoTiming {
    /// moto's median for `op` over the run, at `table_items` when the run sampled by size.
    pub fn median(&self, op: &str, table_items: Option<u64>) -> Option<f64> {
        let samples = match table_items.and_then(|n| self.by_table.get(&n)) {
            Some(at_size) => at_size.get(op),
            None => self.samples.get(op),
        };
        samples.and_then(|s| median(s))
    }

    /// moto's share of one warm invocation of `kind`: its calls times moto's median per call (over
    /// the whole run, at `table_items` if sampled by size).
    pub fn per_invocation(&self, kind: &str, table_items: Option<u64>) -> Option<f64> {
        let calls = self.calls.get(kind)?;
        calls
            .iter()
            .map(|(op, n)| self.median(op, table_items).map(|m| m * f64::from(*n)))
            .sum::<Option<f64>>()
            // An empty float sum is -0.0.
            .map(|m| m + 0.0)
    }

    /// moto's share of one warm invocation of `v`: its calls times moto's median per call as timed
    /// beside `v`'s own invocations (the table grows during a run, and moto's TransactWriteItems and
    /// index Query slow with it), else over the whole run.
    pub fn per_invocation_of(&self, v: &VariantResult) -> Option<f64> {
        if v.moto_samples.is_empty() {
            return self.per_invocation(&v.kind, v.table_items);
        }
        let calls = self.calls.get(&v.kind)?;
        calls
            .iter()
            .map(|(op, n)| {
                v.moto_samples
                    .get(op)
                    .and_then(|s| median(s))
                    .or_else(|| self.median(op, v.table_items))
                    .map(|m| m * f64::from(*n))
            })
            .sum::<Option<f64>>()
            // An empty float sum is -0.0.
            .map(|m| m + 0.0)
    }

    pub fn calls_text(&self, kind: &str) -> String {
        match self.calls.get(kind) {
            Some(calls) if !calls.is_empty() => calls
                .iter()
                .map(|(op, n)| format!("{n} {op}"))
                .collect::<Vec<_>>()
                .join(" + "),
            Some(_) => "none".into(),
            None => "?".into(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Results {
    pub title: String,
    pub machine: String,
    pub runs: usize,
    pub warm: usize,
    pub notes: Vec<String>,
    pub variants: Vec<VariantResult>,
    /// The emulated memory sizes of a `--cpu-mb` run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpu_mb: Vec<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moto: Option<MotoTiming>,
}

pub fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = p * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64))
}

pub fn median(samples: &[f64]) -> Option<f64> {
    percentile(samples, 0.5)
}

const MB: f64 = 1_000_000.0;

impl VariantResult {
    pub fn init(&self) -> Option<f64> {
        median(&self.init_ms)
    }
    pub fn first(&self) -> Option<f64> {
        median(&self.first_response_ms)
    }
    pub fn warm(&self) -> Option<f64> {
        median(&self.warm_ms)
    }
    pub fn rss_mb(&self) -> Option<f64> {
        let rss: Vec<f64> = self.peak_rss_bytes.iter().map(|&b| b as f64 / MB).collect();
        median(&rss)
    }
    pub fn zip_mb(&self) -> Option<f64> {
        self.zip_bytes.map(|b| b as f64 / MB)
    }
    fn is_function(&self) -> bool {
        crate::workload::Kind::parse(&self.kind).is_some_and(|k| k.is_keygate_function())
    }

    /// Whether this is the kind's default build (labelled by its kind, and its table size when
    /// the run had several), not a tuning variant.
    pub fn is_standard(&self) -> bool {
        self.label == self.kind
            || self
                .table_items
                .is_some_and(|n| self.label == format!("{} [{n} items]", self.kind))
    }
}

impl Results {
    /// The default build of `kind`, on the smallest table the run used.
    pub fn find(&self, kind: &str) -> Option<&VariantResult> {
        self.variants
            .iter()
            .filter(|v| v.kind == kind && v.is_standard() && v.cpu_mb.is_none())
            .min_by_key(|v| v.table_items)
    }

    /// The default build of `kind` on the same table size as `table_items` (a floor beside the
    /// variant it is the floor of: moto's time grows with the table), else on the smallest table.
    pub fn find_at(&self, kind: &str, table_items: Option<u64>) -> Option<&VariantResult> {
        self.variants
            .iter()
            .find(|v| {
                v.kind == kind
                    && v.is_standard()
                    && v.cpu_mb.is_none()
                    && v.table_items == table_items
            })
            .or_else(|| self.find(kind))
    }

    /// The standard keygate functions (tuning variants, labelled otherwise, excluded).
    fn functions(&self) -> impl Iterator<Item = &VariantResult> {
        self.variants
            .iter()
            .filter(|v| v.is_function() && v.is_standard())
    }
}

pub fn ms(value: Option<f64>) -> String {
    match value {
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) if v >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
        None => "-".into(),
    }
}

/// Like [`ms`], for a difference that noise can make negative.
pub fn signed_ms(value: Option<f64>) -> String {
    match value {
        Some(v) if v < 0.0 => format!("-{}", ms(Some(-v))),
        other => ms(other),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn x(value: Option<f64>) -> String {
    value.map_or("-".into(), |v| format!("{v:.2}x"))
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

pub fn markdown(results: &Results) -> String {
    let mut out = String::new();
    let floor_init = |kind: &str, v: &VariantResult| {
        results
            .find_at(kind, v.table_items)
            .and_then(VariantResult::init)
    };
    let _ = writeln!(out, "# {}\n", results.title);
    let _ = writeln!(
        out,
        "{} cold starts per variant (fresh processes, variants interleaved run by run in a shuffled order), {} warm invocations after each; medians; a ratio to a floor is to the floor on the same table size. Machine: {}.\n",
        results.runs, results.warm, results.machine
    );
    let _ = writeln!(
        out,
        "| variant | init ms (p25-p75) | first response ms | warm round trip ms | peak RSS MB | zip MB | init / SDK floor | init / hello floor | answered as expected |"
    );
    let _ = writeln!(
        out,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for v in &results.variants {
        let init = v.init();
        let spread = match (percentile(&v.init_ms, 0.25), percentile(&v.init_ms, 0.75)) {
            (Some(a), Some(b)) => format!(" ({}-{})", ms(Some(a)), ms(Some(b))),
            _ => String::new(),
        };
        let (first, warm) = if v.init_only {
            ("(init only)".to_owned(), "-".to_owned())
        } else {
            (ms(v.first()), ms(v.warm()))
        };
        let answered = if v.init_only {
            format!("{} starts", v.init_ms.len())
        } else {
            format!(
                "{}/{}",
                v.invocations_ok,
                v.invocations_ok + v.invocations_failed
            )
        };
        let _ = writeln!(
            out,
            "| {} | {}{} | {} | {} | {} | {} | {} | {} | {} |",
            v.label,
            ms(init),
            spread,
            first,
            warm,
            v.rss_mb().map_or("-".into(), |m| format!("{m:.1}")),
            v.zip_mb().map_or("-".into(), |m| format!("{m:.2}")),
            x(ratio(init, floor_init("floor-sdk", v))),
            x(ratio(init, floor_init("floor-hello", v))),
            answered
        );
    }

    let refresh = results.find("refresh");
    let node = refresh.and_then(|r| results.find_at("node-refresh", r.table_items));
    if let (Some(refresh), Some(node)) = (refresh, node) {
        let _ = writeln!(out, "\n## Node.js / Rust refresh\n");
        let _ = writeln!(out, "| measure | Node.js | Rust | Node / Rust |");
        let _ = writeln!(out, "| --- | ---: | ---: | ---: |");
        let rows: [(&str, Option<f64>, Option<f64>); 5] = [
            ("init ms", node.init(), refresh.init()),
            ("first response ms", node.first(), refresh.first()),
            ("warm round trip ms", node.warm(), refresh.warm()),
            ("peak RSS MB", node.rss_mb(), refresh.rss_mb()),
            ("zip MB", node.zip_mb(), refresh.zip_mb()),
        ];
        for (name, n, r) in rows {
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} |",
                ms(n),
                ms(r),
                x(ratio(n, r))
            );
        }
    }

    let functions: Vec<&VariantResult> = results.functions().collect();
    if !functions.is_empty() {
        let _ = writeln!(out, "\n## Targets\n");
        let _ = writeln!(out, "| target | figure | verdict |");
        let _ = writeln!(out, "| --- | --- | --- |");
        let worst_init = functions
            .iter()
            .filter_map(|v| {
                let (init, sdk) = (v.init()?, floor_init("floor-sdk", v)?);
                (sdk > 0.0).then_some((init / sdk, init, sdk, v))
            })
            .max_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((r, init, sdk, v)) = worst_init {
            let _ = writeln!(
                out,
                "| every function's init <= 1.25x SDK floor | worst: {} {:.2}x ({} ms vs {} ms) | {} |",
                v.label,
                r,
                ms(Some(init)),
                ms(Some(sdk)),
                verdict(r <= 1.25)
            );
        }
        let hello = refresh.and_then(|r| floor_init("floor-hello", r));
        if let (Some(r), Some(h)) = (refresh.and_then(VariantResult::init), hello)
            && h > 0.0
        {
            let q = r / h;
            let _ = writeln!(
                out,
                "| refresh init <= 4x hello floor | {q:.2}x ({} ms vs {} ms) | {} |",
                ms(Some(r)),
                ms(hello),
                verdict(q <= 4.0)
            );
        }
        if let Some(q) = ratio(
            node.and_then(VariantResult::init),
            refresh.and_then(VariantResult::init),
        ) {
            let _ = writeln!(
                out,
                "| Node.js init >= 10x refresh init | {q:.1}x | {} |",
                verdict(q >= 10.0)
            );
        }
        let largest_zip = functions
            .iter()
            .filter_map(|v| v.zip_mb().map(|z| (z, v)))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((z, v)) = largest_zip {
            let _ = writeln!(
                out,
                "| every zip <= 4 MB | largest: {} {z:.2} MB | {} |",
                v.label,
                verdict(z <= 4.0)
            );
        }
        let largest_rss = functions
            .iter()
            .filter_map(|v| v.rss_mb().map(|z| (z, v)))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((m, v)) = largest_rss {
            let _ = writeln!(
                out,
                "| peak RSS <= 16 MB | largest: {} {m:.1} MB | {} |",
                v.label,
                verdict(m <= 16.0)
            );
        }
    }

    if let Some(moto) = &results.moto {
        let _ = writeln!(out, "\n## moto's own time per call\n");
        let _ = writeln!(out, "{}\n", moto.method);
        if !moto.samples.is_empty() {
            let _ = writeln!(out, "| call | median ms | p25-p75 | calls timed |");
            let _ = writeln!(out, "| --- | ---: | ---: | ---: |");
            for (op, samples) in &moto.samples {
                let _ = writeln!(
                    out,
                    "| {op} | {} | {}-{} | {} |",
                    ms(median(samples)),
                    ms(percentile(samples, 0.25)),
                    ms(percentile(samples, 0.75)),
                    samples.len()
                );
            }
        }
        if !moto.by_table.is_empty() {
            let sizes: Vec<u64> = moto.by_table.keys().copied().collect();
            let ops: std::collections::BTreeSet<&String> =
                moto.by_table.values().flat_map(BTreeMap::keys).collect();
            let _ = writeln!(
                out,
                "| call | {} |",
                sizes
                    .iter()
                    .map(|n| format!("{n} items: median (p25-p75) ms"))
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
            let _ = writeln!(out, "| --- |{}", " ---: |".repeat(sizes.len()));
            for op in ops {
                let cells: Vec<String> = sizes
                    .iter()
                    .map(|n| match moto.by_table[n].get(op) {
                        Some(s) => format!(
                            "{} ({}-{})",
                            ms(median(s)),
                            ms(percentile(s, 0.25)),
                            ms(percentile(s, 0.75))
                        ),
                        None => "-".into(),
                    })
                    .collect();
                let _ = writeln!(out, "| {op} | {} |", cells.join(" | "));
            }
        }
        if let (Some(a), Some(b)) = (moto.table_items_start, moto.table_items_end) {
            let _ = writeln!(
                out,
                "\nThe table held {a} items when measuring started and {b} when it ended (one table for the whole run)."
            );
        }
        let _ = writeln!(
            out,
            "\n| variant | calls per warm invocation | moto ms | first response ms | warm ms | keygate's own ms |"
        );
        let _ = writeln!(out, "| --- | --- | ---: | ---: | ---: | ---: |");
        for v in results.variants.iter().filter(|v| !v.init_only) {
            let moto_ms = moto.per_invocation_of(v);
            let own = match (v.warm(), moto_ms) {
                (Some(w), Some(m)) => Some(w - m),
                _ => None,
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                v.label,
                moto.calls_text(&v.kind),
                ms(moto_ms),
                ms(median(&v.first_response_ms)),
                ms(v.warm()),
                signed_ms(own)
            );
        }
    }

    let failing: Vec<&VariantResult> = results
        .variants
        .iter()
        .filter(|v| !v.errors.is_empty())
        .collect();
    if !failing.is_empty() {
        let _ = writeln!(out, "\n## Errors (first of each variant)\n");
        for v in failing {
            let _ = writeln!(
                out,
                "- {}: {} ({} in all)",
                v.label,
                v.errors[0].replace('\n', " "),
                v.errors.len()
            );
        }
    }
    if !results.notes.is_empty() {
        let _ = writeln!(out, "\n## Notes\n");
        for note in &results.notes {
            let _ = writeln!(out, "- {note}");
        }
    }
    out
}

fn colour(v: &VariantResult) -> &'static str {
    match v.kind.as_str() {
        // Tuning variants first: a floor run with a switch is a tuning variant too.
        _ if !v.is_standard() => "#6a51a3",
        "floor-hello" | "floor-sdk" => "#8a8a8a",
        "node-refresh" => "#d9822b",
        _ => "#2b6cb0",
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One chart: a row per variant, four panels (init and first response on a log scale, peak RSS and
/// zip size on a linear one), with the issue's targets drawn as dashed lines.
pub fn svg(results: &Results) -> String {
    struct Panel {
        title: &'static str,
        log: bool,
        value: fn(&VariantResult) -> Option<f64>,
        target: Option<(f64, &'static str)>,
    }
    let sdk = results.find("floor-sdk").and_then(VariantResult::init);
    let panels = [
        Panel {
            title: "init, ms (log)",
            log: true,
            value: VariantResult::init,
            target: sdk.map(|s| (s * 1.25, "1.25x SDK floor")),
        },
        Panel {
            title: "first response, ms (log)",
            log: true,
            value: |v| if v.init_only { None } else { v.first() },
            target: None,
        },
        Panel {
            title: "peak RSS, MB",
            log: false,
            value: VariantResult::rss_mb,
            target: Some((16.0, "16 MB")),
        },
        Panel {
            title: "zip, MB",
            log: false,
            value: VariantResult::zip_mb,
            target: Some((4.0, "4 MB")),
        },
    ];
    let (label_w, panel_w, gap, row_h, top) = (170.0, 200.0, 40.0, 20.0, 56.0);
    let rows = results.variants.len() as f64;
    let width = label_w + panels.len() as f64 * (panel_w + gap) + 10.0;
    let height = top + rows * row_h + 36.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="Helvetica, Arial, sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="10" y="18" font-size="14" font-weight="bold">{}</text>"#,
        escape(&results.title)
    );
    let _ = writeln!(
        s,
        r##"<text x="10" y="34" fill="#555">medians of {} cold starts per variant; grey: floors, blue: keygate functions, purple: tuning variants, orange: Node.js</text>"##,
        results.runs
    );
    for (i, v) in results.variants.iter().enumerate() {
        let y = top + i as f64 * row_h;
        let _ = writeln!(
            s,
            r#"<text x="{:.0}" y="{:.1}" text-anchor="end">{}</text>"#,
            label_w - 6.0,
            y + row_h * 0.65,
            escape(&v.label)
        );
    }
    for (p, panel) in panels.iter().enumerate() {
        let x0 = label_w + p as f64 * (panel_w + gap);
        let values: Vec<Option<f64>> = results.variants.iter().map(|v| (panel.value)(v)).collect();
        let max = values
            .iter()
            .flatten()
            .copied()
            .chain(panel.target.map(|t| t.0))
            .fold(0.0f64, f64::max)
            .max(1e-9);
        // Log panels span whole decades from 0.1 ms (or below the smallest value).
        let min_value = values
            .iter()
            .flatten()
            .copied()
            .filter(|v| *v > 0.0)
            .fold(f64::MAX, f64::min);
        let lo_exp = if min_value < f64::MAX {
            min_value.log10().floor().min(-1.0)
        } else {
            -1.0
        };
        let hi_exp = max.log10().ceil().max(lo_exp + 1.0);
        let scale = |value: f64| -> f64 {
            if panel.log {
                ((value.max(10f64.powf(lo_exp)).log10() - lo_exp) / (hi_exp - lo_exp)) * panel_w
            } else {
                value / (max * 1.1) * panel_w
            }
        };
        let _ = writeln!(
            s,
            r#"<text x="{x0:.0}" y="{:.0}" font-weight="bold">{}</text>"#,
            top - 10.0,
            panel.title
        );
        let bottom = top + rows * row_h;
        let _ = writeln!(
            s,
            r##"<line x1="{x0:.1}" y1="{top:.1}" x2="{x0:.1}" y2="{bottom:.1}" stroke="#333"/>"##
        );
        // Axis ticks.
        let ticks: Vec<f64> = if panel.log {
            (lo_exp as i32..=hi_exp as i32)
                .map(|e| 10f64.powi(e))
                .collect()
        } else {
            let step = nice_step(max * 1.1 / 4.0);
            (0..)
                .map(|i| i as f64 * step)
                .take_while(|t| *t <= max * 1.1)
                .collect()
        };
        for t in ticks {
            let tx = x0 + scale(t);
            let _ = writeln!(
                s,
                r##"<line x1="{tx:.1}" y1="{top:.1}" x2="{tx:.1}" y2="{bottom:.1}" stroke="#e6e6e6"/>"##
            );
            let label = if t >= 1.0 || t == 0.0 {
                format!("{t}")
            } else {
                format!("{t:.1}")
            };
            let _ = writeln!(
                s,
                r##"<text x="{tx:.1}" y="{:.1}" text-anchor="middle" fill="#555">{label}</text>"##,
                bottom + 12.0
            );
        }
        for (i, (v, value)) in results.variants.iter().zip(&values).enumerate() {
            let Some(value) = value else { continue };
            let y = top + i as f64 * row_h + 3.0;
            let w = scale(*value).max(1.0);
            let _ = writeln!(
                s,
                r#"<rect x="{x0:.1}" y="{y:.1}" width="{w:.1}" height="{:.1}" fill="{}"/>"#,
                row_h - 6.0,
                colour(v)
            );
            let text = if *value >= 100.0 {
                format!("{value:.0}")
            } else if *value >= 10.0 {
                format!("{value:.1}")
            } else {
                format!("{value:.2}")
            };
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" font-size="10">{text}</text>"#,
                x0 + w + 3.0,
                y + row_h * 0.5
            );
        }
        if let Some((target, name)) = panel.target {
            let tx = x0 + scale(target);
            let _ = writeln!(
                s,
                r##"<line x1="{tx:.1}" y1="{:.1}" x2="{tx:.1}" y2="{bottom:.1}" stroke="#c53030" stroke-dasharray="4 3"/>"##,
                top - 4.0
            );
            let _ = writeln!(
                s,
                r##"<text x="{tx:.1}" y="{:.1}" text-anchor="middle" fill="#c53030" font-size="10">{name}</text>"##,
                bottom + 24.0
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

fn nice_step(raw: f64) -> f64 {
    let magnitude = 10f64.powf(raw.log10().floor());
    let fraction = raw / magnitude;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kinds_default_build_is_found_on_the_smallest_table_and_tuning_builds_are_not() {
        let v = |label: &str, items: Option<u64>, warm: f64| VariantResult {
            label: label.into(),
            kind: "refresh".into(),
            table_items: items,
            warm_ms: vec![warm],
            ..Default::default()
        };
        let results = Results {
            variants: vec![
                v("refresh opt-level 3 [400 items]", Some(400), 1.0),
                v("refresh [2400 items]", Some(2400), 90.0),
                v("refresh [400 items]", Some(400), 20.0),
            ],
            ..Default::default()
        };
        assert_eq!(
            results.find("refresh").and_then(VariantResult::warm),
            Some(20.0)
        );
        assert_eq!(results.functions().count(), 2);
        // A run with one size labels by kind alone.
        let single = Results {
            variants: vec![v("refresh", Some(2400), 30.0)],
            ..Default::default()
        };
        assert_eq!(
            single.find("refresh").and_then(VariantResult::warm),
            Some(30.0)
        );
        // moto's median at the variant's size when the run sampled by size.
        let mut moto = MotoTiming::default();
        moto.by_table
            .insert(400, BTreeMap::from([("GetItem".into(), vec![2.0])]));
        moto.by_table
            .insert(2400, BTreeMap::from([("GetItem".into(), vec![9.0])]));
        assert_eq!(moto.median("GetItem", Some(2400)), Some(9.0));
        assert_eq!(moto.median("GetItem", Some(400)), Some(2.0));
        assert_eq!(moto.median("GetItem", None), None);
    }

    fn variant(label: &str, kind: &str, init: f64) -> VariantResult {
        VariantResult {
            label: label.into(),
            kind: kind.into(),
            runtime: "provided.al2023".into(),
            init_ms: vec![init, init * 2.0, init / 2.0],
            first_response_ms: vec![init * 1.5],
            warm_ms: vec![1.0, 2.0, 3.0],
            peak_rss_bytes: vec![8_000_000],
            zip_bytes: Some(3_000_000),
            invocations_ok: 3,
            ..Default::default()
        }
    }

    #[test]
    fn a_ratio_to_a_floor_is_taken_at_the_variants_table_size() {
        let at = |kind: &str, items: u64, init: f64| VariantResult {
            table_items: Some(items),
            ..variant(&format!("{kind} [{items} items]"), kind, init)
        };
        let results = Results {
            title: "t".into(),
            variants: vec![
                at("floor-sdk", 400, 10.0),
                at("floor-sdk", 2400, 20.0),
                at("refresh", 400, 11.0),
                at("refresh", 2400, 24.0),
            ],
            ..Default::default()
        };
        let md = markdown(&results);
        // 24 ms against the 2,400-item floor (1.20x), not the 400-item one (2.40x).
        assert!(md.contains("| refresh [2400 items] | 24.0 "), "{md}");
        assert!(md.contains("| 1.20x |"), "{md}");
        assert!(!md.contains("2.40x"), "{md}");
        assert!(
            md.contains(
                "| every function's init <= 1.25x SDK floor | worst: refresh [2400 items] 1.20x (24.0 ms vs 20.0 ms) | met |"
            ),
            "{md}"
        );
    }

    #[test]
    fn percentiles_interpolate() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[1.0, 2.0, 3.0, 4.0]), Some(2.5));
        assert_eq!(percentile(&[0.0, 10.0], 0.25), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn motos_share_is_taken_beside_the_variant_when_it_was_timed_there() {
        let mut moto = MotoTiming::default();
        moto.samples.insert("GetItem".into(), vec![2.0]);
        moto.samples.insert("TransactWriteItems".into(), vec![50.0]);
        moto.calls.insert(
            "register".into(),
            BTreeMap::from([("GetItem".into(), 2), ("TransactWriteItems".into(), 1)]),
        );
        let mut v = variant("register", "register", 10.0);
        assert_eq!(moto.per_invocation_of(&v), Some(54.0));
        // Timed beside it: TransactWriteItems 90 ms there; GetItem falls back to the run's median.
        v.moto_samples
            .insert("TransactWriteItems".into(), vec![80.0, 90.0, 100.0]);
        assert_eq!(moto.per_invocation_of(&v), Some(94.0));
        assert_eq!(
            moto.calls_text("register"),
            "2 GetItem + 1 TransactWriteItems"
        );
    }

    #[test]
    fn the_table_states_ratios_and_targets() {
        let results = Results {
            title: "t".into(),
            runs: 3,
            warm: 3,
            variants: vec![
                variant("floor-hello", "floor-hello", 2.0),
                variant("floor-sdk", "floor-sdk", 10.0),
                variant("refresh", "refresh", 11.0),
                variant("node-refresh", "node-refresh", 200.0),
            ],
            ..Default::default()
        };
        let md = markdown(&results);
        assert!(
            md.contains(
                "| refresh | 11.0 (8.25-16.5) | 16.5 | 2.00 | 8.0 | 3.00 | 1.10x | 5.50x | 3/3 |"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "| refresh init <= 4x hello floor | 5.50x (11.0 ms vs 2.00 ms) | **missed** |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| Node.js init >= 10x refresh init | 18.2x | met |"),
            "{md}"
        );
        let chart = svg(&results);
        assert!(chart.starts_with("<svg") && chart.trim_end().ends_with("</svg>"));
        assert_eq!(
            chart.matches("<rect").count(),
            1 + 4 * 4,
            "one background and a bar per variant and panel"
        );
    }
}

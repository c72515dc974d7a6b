//! `keygate-bench power DIR`: Lambda Power Tuning on the emulated sizes of a `run --cpu-mb` run.
//!
//! Per function and memory size: the median warm round trip as measured (moto included), moto's
//! share of it (the function's DynamoDB calls times moto's median per call, timed in the same run),
//! keygate's own time (the difference), the init median, the billed duration of a warm invocation on
//! AWS and its price per million invocations on x86 and arm64, and the chosen size ([`choose`]).
//! Writes `DIR/power.md` and `DIR/power.svg`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::cgroup;
use crate::prices::PRICES;
use crate::report::{Results, VariantResult, median, ms, signed_ms};

/// What one DynamoDB round trip is taken to cost on AWS when pricing a warm invocation: keygate's
/// own time (measured) plus this per call (assumed: single-digit milliseconds in-region, summed
/// even where calls overlap, so an upper bound).
pub const AWS_DYNAMODB_MS_PER_CALL: f64 = 5.0;

/// The chosen size's tolerance: within this fraction of the fastest size's own time...
pub const WITHIN: f64 = 0.10;
/// ...or within this many ms, Lambda's billing granularity (sub-millisecond own times are noise).
pub const WITHIN_MS: f64 = 1.0;

/// One memory size of one function.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub mb: u32,
    pub warm_raw: Option<f64>,
    pub moto: Option<f64>,
    pub own: Option<f64>,
    pub init: Option<f64>,
    pub first: Option<f64>,
    pub rss_mb: Option<f64>,
    /// A warm invocation's billed duration on AWS: ceil(own + calls x [`AWS_DYNAMODB_MS_PER_CALL`]).
    pub billed_ms: Option<f64>,
    pub x86_per_million: Option<f64>,
    pub arm64_per_million: Option<f64>,
}

/// One function (or other variant) over the sizes.
#[derive(Debug, Clone)]
pub struct Function {
    pub label: String,
    pub calls: String,
    pub call_count: u32,
    pub points: Vec<Point>,
    pub chosen: Option<u32>,
}

impl Function {
    pub fn point(&self, mb: u32) -> Option<&Point> {
        self.points.iter().find(|p| p.mb == mb)
    }
}

/// The billed duration of a warm invocation whose own work is `own_ms` and which makes `calls`
/// DynamoDB calls: rounded up to the millisecond, at least 1 ms.
pub fn billed_ms(own_ms: f64, calls: u32) -> f64 {
    (own_ms.max(0.0) + f64::from(calls) * AWS_DYNAMODB_MS_PER_CALL)
        .ceil()
        .max(1.0)
}

/// The rule: the cheapest size (x86 price per million) whose keygate-own warm time is within 10% of
/// the fastest size's (or within 1 ms of it, whichever is wider); ties go to the smaller size. If no
/// size has an own time, the cheapest priced size; if none is priced, none.
pub fn choose(points: &[Point]) -> Option<u32> {
    let cheapest = |candidates: Vec<&Point>| {
        candidates
            .into_iter()
            .filter(|p| p.x86_per_million.is_some())
            .min_by(|a, b| {
                a.x86_per_million
                    .unwrap()
                    .total_cmp(&b.x86_per_million.unwrap())
                    .then(a.mb.cmp(&b.mb))
            })
            .map(|p| p.mb)
    };
    let fastest = points
        .iter()
        .filter_map(|p| p.own)
        .map(|own| own.max(0.0))
        .min_by(f64::total_cmp);
    match fastest {
        Some(fastest) => {
            let limit = (fastest * (1.0 + WITHIN)).max(fastest + WITHIN_MS);
            cheapest(
                points
                    .iter()
                    .filter(|p| p.own.is_some_and(|own| own.max(0.0) <= limit))
                    .collect(),
            )
        }
        None => cheapest(points.iter().collect()),
    }
}

/// `login @512 MB` -> `login`.
fn base_label(label: &str) -> &str {
    label
        .rsplit_once(" @")
        .filter(|(_, size)| size.ends_with(" MB"))
        .map_or(label, |(base, _)| base)
}

pub fn analyse(results: &Results) -> Vec<Function> {
    let mut groups: BTreeMap<(usize, String), Vec<&VariantResult>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for v in results.variants.iter().filter(|v| v.cpu_mb.is_some()) {
        let base = base_label(&v.label).to_owned();
        if !order.contains(&base) {
            order.push(base.clone());
        }
        let at = order.iter().position(|b| *b == base).unwrap_or_default();
        groups.entry((at, base)).or_default().push(v);
    }
    groups
        .into_iter()
        .map(|((_, label), mut variants)| {
            variants.sort_by_key(|v| v.cpu_mb);
            let kind = variants[0].kind.clone();
            let moto = results.moto.as_ref();
            let call_count: u32 = moto
                .and_then(|m| m.calls.get(&kind))
                .map_or(0, |c| c.values().sum());
            let points: Vec<Point> = variants
                .iter()
                .map(|v| {
                    let mb = v.cpu_mb.unwrap_or_default();
                    let moto_ms = moto.and_then(|m| m.per_invocation_of(v));
                    let warm_raw = if v.init_only { None } else { v.warm() };
                    let own = match (warm_raw, moto_ms) {
                        (Some(w), Some(m)) => Some(w - m),
                        _ => None,
                    };
                    let billed = own.map(|own| billed_ms(own, call_count));
                    Point {
                        mb,
                        warm_raw,
                        moto: moto_ms.filter(|_| warm_raw.is_some()),
                        own,
                        init: v.init(),
                        first: if v.init_only { None } else { v.first() },
                        rss_mb: v.rss_mb(),
                        billed_ms: billed,
                        x86_per_million: billed
                            .map(|b| PRICES.lambda_invocation(mb, b, false) * 1e6),
                        arm64_per_million: billed
                            .map(|b| PRICES.lambda_invocation(mb, b, true) * 1e6),
                    }
                })
                .collect();
            let chosen = if points.iter().any(|p| p.own.is_some()) {
                choose(&points)
            } else {
                None
            };
            Function {
                calls: moto.map_or("?".into(), |m| m.calls_text(&kind)),
                label,
                call_count,
                points,
                chosen,
            }
        })
        .collect()
}

/// `MEMORY_MB` of `cdk/config/common.ts`: the `name: number,` lines of its object literal.
pub fn read_memory_mb(path: &Path) -> Option<BTreeMap<String, u32>> {
    let text = std::fs::read_to_string(path).ok()?;
    let start = text.find("export const MEMORY_MB")?;
    let body = &text[start..];
    let body = &body[body.find('{')? + 1..body.find("};")?];
    Some(
        body.lines()
            .filter_map(|line| {
                let (name, value) = line.split_once(':')?;
                let name = name.trim().trim_matches('\'').trim_matches('"');
                let value = value.trim().trim_end_matches(',').replace('_', "");
                Some((name.to_owned(), value.parse().ok()?))
            })
            .collect(),
    )
}

fn usd(value: Option<f64>) -> String {
    value.map_or("-".into(), |v| format!("{v:.2}"))
}

pub fn markdown(
    results: &Results,
    functions: &[Function],
    memory: Option<&BTreeMap<String, u32>>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Memory by measurement (Lambda Power Tuning, emulated)\n"
    );
    let _ = writeln!(
        out,
        "{} cold starts per variant and size, {} warm invocations after each, every variant and size interleaved in one run; medians. Machine: {}. Each size ran in a cgroup v1 cpu group with Lambda's CPU share (quota = {} us x MB / {} per {} us period: 1,769 MB = one vCPU, 3,008 MB = 1.7); moto and the harness ran outside them.\n",
        results.runs,
        results.warm,
        results.machine,
        cgroup::PERIOD_US,
        cgroup::ONE_VCPU_MB,
        cgroup::PERIOD_US
    );
    if let Some(moto) = &results.moto {
        let list = |samples: &BTreeMap<String, Vec<f64>>| {
            samples
                .iter()
                .map(|(op, s)| format!("{op} {} ms", ms(median(s))))
                .collect::<Vec<_>>()
                .join(", ")
        };
        // A run on tables held at fixed sizes times moto per size; an older run over the whole run.
        let per_call = if moto.by_table.is_empty() {
            list(&moto.samples)
        } else {
            moto.by_table
                .iter()
                .map(|(n, samples)| format!("at {n} items {}", list(samples)))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let _ = writeln!(
            out,
            "moto's own median per call, timed from the harness in the same run against the same table: {per_call}.{}\n",
            match (moto.table_items_start, moto.table_items_end) {
                (Some(a), Some(b)) => format!(
                    " One table for the whole run: {a} items when measuring started, {b} at the end; every size met the same table, the sizes interleaved."
                ),
                _ => String::new(),
            }
        );
    }
    let _ = writeln!(
        out,
        "keygate's own = warm - calls x moto's median per call. Billed = a warm invocation on AWS: ceil(keygate's own + calls x {AWS_DYNAMODB_MS_PER_CALL} ms, an assumed DynamoDB round trip). $ per 1M = GB-s (MB / 1024 x billed s) x price + requests. Chosen (**bold**): the cheapest size (x86) whose keygate-own warm time is within {:.0}% of the fastest size's, or within {WITHIN_MS} ms of it when that is wider; ties go to the smaller size.\n",
        WITHIN * 100.0
    );
    let _ = writeln!(
        out,
        "| function | DynamoDB calls | MB | CPU | warm ms | moto ms | keygate's own ms | init ms | billed ms | $ / 1M x86 | $ / 1M arm64 |"
    );
    let _ = writeln!(
        out,
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for f in functions {
        for (i, p) in f.points.iter().enumerate() {
            let size = if f.chosen == Some(p.mb) {
                format!("**{}**", p.mb)
            } else {
                p.mb.to_string()
            };
            let _ = writeln!(
                out,
                "| {} | {} | {size} | {:.2} | {} | {} | {} | {} | {} | {} | {} |",
                if i == 0 { f.label.as_str() } else { "" },
                if i == 0 { f.calls.as_str() } else { "" },
                cgroup::cpu_share(p.mb),
                ms(p.warm_raw),
                ms(p.moto),
                signed_ms(p.own),
                ms(p.init),
                p.billed_ms.map_or("-".into(), |b| format!("{b:.0}")),
                usd(p.x86_per_million),
                usd(p.arm64_per_million)
            );
        }
    }
    let _ = writeln!(out, "\n## Chosen sizes\n");
    let _ = writeln!(
        out,
        "| function | chosen MB | MEMORY_MB now | keygate's own ms at chosen / fastest | warm ms at chosen / fastest | init ms at chosen / at 1769 | $ / 1M x86 at chosen / at MEMORY_MB |"
    );
    let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for f in functions.iter().filter(|f| f.chosen.is_some()) {
        let chosen = f.chosen.and_then(|mb| f.point(mb));
        let fastest = f
            .points
            .iter()
            .filter(|p| p.own.is_some())
            .min_by(|a, b| a.own.unwrap().total_cmp(&b.own.unwrap()));
        let now = memory.and_then(|m| m.get(&f.label)).copied();
        let at_now = now.and_then(|mb| f.point(mb));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} / {} ({} MB) | {} / {} | {} / {} | {} / {} |",
            f.label,
            f.chosen.map_or("-".into(), |mb| mb.to_string()),
            now.map_or("-".into(), |mb| mb.to_string()),
            signed_ms(chosen.and_then(|p| p.own)),
            signed_ms(fastest.and_then(|p| p.own)),
            fastest.map_or("-".into(), |p| p.mb.to_string()),
            ms(chosen.and_then(|p| p.warm_raw)),
            ms(fastest.and_then(|p| p.warm_raw)),
            ms(chosen.and_then(|p| p.init)),
            ms(f.point(cgroup::ONE_VCPU_MB).and_then(|p| p.init)),
            usd(chosen.and_then(|p| p.x86_per_million)),
            usd(at_now.and_then(|p| p.x86_per_million)),
        );
    }
    let _ = writeln!(out, "\n{}", PRICES.markdown());
    if !results.notes.is_empty() {
        let _ = writeln!(out, "## Notes of the run\n");
        for note in &results.notes {
            let _ = writeln!(out, "- {note}");
        }
    }
    out
}

const PALETTE: [&str; 10] = [
    "#2b6cb0", "#c53030", "#2f855a", "#d69e2e", "#6b46c1", "#dd6b20", "#319795", "#718096",
    "#b83280", "#1a202c",
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Two panels, duration against memory (log-log): the warm round trip as measured (moto included),
/// and keygate's own time; one line per function, the chosen size circled.
pub fn svg(results: &Results, functions: &[Function]) -> String {
    let functions: Vec<&Function> = functions
        .iter()
        .filter(|f| f.points.iter().any(|p| p.warm_raw.is_some()))
        .collect();
    let (panel_w, panel_h, left, top, gap) = (380.0, 300.0, 60.0, 60.0, 80.0);
    let legend_w = 170.0;
    let width = left + 2.0 * panel_w + gap + legend_w;
    let height = top + panel_h + 60.0;
    let sizes: Vec<u32> = if results.cpu_mb.is_empty() {
        vec![128, 3008]
    } else {
        results.cpu_mb.clone()
    };
    let (x_lo, x_hi) = (
        f64::from(*sizes.first().unwrap_or(&128)).log2(),
        f64::from(*sizes.last().unwrap_or(&3008)).log2().max(8.0),
    );
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="Helvetica, Arial, sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="10" y="18" font-size="14" font-weight="bold">Warm duration vs memory (emulated Lambda CPU share)</text>"#
    );
    let _ = writeln!(
        s,
        r##"<text x="10" y="34" fill="#555">medians of {} runs x {} warm invocations per size; log-log; circled: the chosen size</text>"##,
        results.runs, results.warm
    );
    type Value = fn(&Point) -> Option<f64>;
    let panels: [(&str, Value); 2] = [
        ("warm round trip, ms (moto included)", |p| p.warm_raw),
        ("keygate's own, ms (warm - moto's calls)", |p| p.own),
    ];
    for (i, (title, value)) in panels.iter().enumerate() {
        let x0 = left + i as f64 * (panel_w + gap);
        let values: Vec<f64> = functions
            .iter()
            .flat_map(|f| f.points.iter().filter_map(value))
            .map(|v| v.max(0.1))
            .collect();
        let lo = values
            .iter()
            .copied()
            .fold(f64::MAX, f64::min)
            .log10()
            .floor()
            .min(0.0);
        let hi = values
            .iter()
            .copied()
            .fold(1.0, f64::max)
            .log10()
            .ceil()
            .max(lo + 1.0);
        let x = |mb: u32| x0 + (f64::from(mb).log2() - x_lo) / (x_hi - x_lo) * panel_w;
        let y = |v: f64| top + panel_h - (v.max(0.1).log10() - lo) / (hi - lo) * panel_h;
        let _ = writeln!(
            s,
            r#"<text x="{x0:.0}" y="{:.0}" font-weight="bold">{}</text>"#,
            top - 10.0,
            escape(title)
        );
        let _ = writeln!(
            s,
            r##"<rect x="{x0:.1}" y="{top:.1}" width="{panel_w:.1}" height="{panel_h:.1}" fill="none" stroke="#333"/>"##
        );
        for e in lo as i32..=hi as i32 {
            let ty = y(10f64.powi(e));
            let _ = writeln!(
                s,
                r##"<line x1="{x0:.1}" y1="{ty:.1}" x2="{:.1}" y2="{ty:.1}" stroke="#e6e6e6"/>"##,
                x0 + panel_w
            );
            let label = if e >= 0 {
                format!("{}", 10f64.powi(e))
            } else {
                format!("{:.1}", 10f64.powi(e))
            };
            let _ = writeln!(
                s,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#555">{label}</text>"##,
                x0 - 4.0,
                ty + 4.0
            );
        }
        for &mb in &sizes {
            let tx = x(mb);
            let _ = writeln!(
                s,
                r##"<line x1="{tx:.1}" y1="{top:.1}" x2="{tx:.1}" y2="{:.1}" stroke="#e6e6e6"/>"##,
                top + panel_h
            );
            let _ = writeln!(
                s,
                r##"<text x="{tx:.1}" y="{:.1}" text-anchor="middle" fill="#555">{mb}</text>"##,
                top + panel_h + 14.0
            );
        }
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#555">memory, MB (log)</text>"##,
            x0 + panel_w / 2.0,
            top + panel_h + 30.0
        );
        for (n, f) in functions.iter().enumerate() {
            let colour = PALETTE[n % PALETTE.len()];
            let points: Vec<(f64, f64, u32)> = f
                .points
                .iter()
                .filter_map(|p| value(p).map(|v| (x(p.mb), y(v), p.mb)))
                .collect();
            let path: Vec<String> = points
                .iter()
                .map(|(px, py, _)| format!("{px:.1},{py:.1}"))
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="1.8"/>"#,
                path.join(" ")
            );
            for (px, py, mb) in points {
                let r = if f.chosen == Some(mb) { 5.0 } else { 2.5 };
                let fill = if f.chosen == Some(mb) {
                    "white"
                } else {
                    colour
                };
                let _ = writeln!(
                    s,
                    r#"<circle cx="{px:.1}" cy="{py:.1}" r="{r}" fill="{fill}" stroke="{colour}" stroke-width="1.5"/>"#
                );
            }
        }
    }
    let lx = left + 2.0 * panel_w + gap + 10.0;
    for (n, f) in functions.iter().enumerate() {
        let ly = top + 10.0 + n as f64 * 18.0;
        let colour = PALETTE[n % PALETTE.len()];
        let _ = writeln!(
            s,
            r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="2"/>"#,
            lx + 18.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}">{}{}</text>"#,
            lx + 24.0,
            ly + 4.0,
            escape(&f.label),
            f.chosen.map_or(String::new(), |mb| format!(" ({mb} MB)"))
        );
    }
    s.push_str("</svg>\n");
    s
}

pub fn write(dir: &Path) -> Result<(), String> {
    let path = dir.join("results.json");
    let raw = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let results: Results =
        serde_json::from_str(&raw).map_err(|e| format!("{}: {e}", path.display()))?;
    if !results.variants.iter().any(|v| v.cpu_mb.is_some()) {
        return Err(format!(
            "{}: not a --cpu-mb run (no variant has an emulated memory size)",
            path.display()
        ));
    }
    let functions = analyse(&results);
    let memory = read_memory_mb(Path::new("cdk/config/common.ts"));
    let md = markdown(&results, &functions, memory.as_ref());
    std::fs::write(dir.join("power.md"), &md).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("power.svg"), svg(&results, &functions)).map_err(|e| e.to_string())?;
    print!("{md}");
    eprintln!("wrote {}/power.md and power.svg", dir.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::MotoTiming;

    fn point(mb: u32, own: f64) -> Point {
        let billed = billed_ms(own, 1);
        Point {
            mb,
            warm_raw: Some(own + 10.0),
            moto: Some(10.0),
            own: Some(own),
            init: None,
            first: None,
            rss_mb: None,
            billed_ms: Some(billed),
            x86_per_million: Some(PRICES.lambda_invocation(mb, billed, false) * 1e6),
            arm64_per_million: Some(PRICES.lambda_invocation(mb, billed, true) * 1e6),
        }
    }

    #[test]
    fn billing_rounds_up_to_the_millisecond() {
        assert_eq!(billed_ms(0.2, 0), 1.0);
        assert_eq!(
            billed_ms(-3.0, 0),
            1.0,
            "noise below zero bills the minimum"
        );
        assert_eq!(billed_ms(1.01, 1), 7.0, "1.01 + 5 ms");
        assert_eq!(billed_ms(30.0, 2), 40.0);
    }

    #[test]
    fn the_cheapest_size_near_the_fastest_is_chosen() {
        // CPU-bound: own time halves as memory doubles until one vCPU, then stays.
        let bound = [
            point(128, 480.0),
            point(256, 240.0),
            point(512, 120.0),
            point(1024, 60.0),
            point(1769, 35.0),
            point(3008, 34.0),
        ];
        // 1769 and 3008 are within 10% of 34 ms; 1769 costs less.
        assert_eq!(choose(&bound), Some(1769));
        // I/O-bound: flat own time; every size qualifies, the smallest is cheapest.
        let flat = [point(128, 2.2), point(256, 1.9), point(1769, 1.8)];
        assert_eq!(choose(&flat), Some(128));
        // 10% of 1.8 ms is noise: 2.7 ms is within the 1 ms floor, 2.9 ms is not.
        let near = [point(128, 2.7), point(1769, 1.8)];
        assert_eq!(choose(&near), Some(128));
        let far = [point(128, 2.9), point(1769, 1.8)];
        assert_eq!(choose(&far), Some(1769));
        assert_eq!(choose(&[]), None);
    }

    #[test]
    fn a_power_run_is_grouped_by_function_and_size() {
        let variant = |label: &str, kind: &str, mb: u32, warm: f64| VariantResult {
            label: label.into(),
            kind: kind.into(),
            warm_ms: vec![warm],
            init_ms: vec![10.0],
            cpu_mb: Some(mb),
            ..Default::default()
        };
        let mut moto = MotoTiming::default();
        moto.samples
            .insert("TransactWriteItems".into(), vec![40.0, 50.0, 60.0]);
        moto.calls.insert(
            "refresh".into(),
            BTreeMap::from([("TransactWriteItems".into(), 1)]),
        );
        let results = Results {
            variants: vec![
                variant("refresh @128 MB", "refresh", 128, 54.0),
                variant("refresh @1769 MB", "refresh", 1769, 52.0),
            ],
            cpu_mb: vec![128, 1769],
            moto: Some(moto),
            ..Default::default()
        };
        let functions = analyse(&results);
        assert_eq!(functions.len(), 1);
        let f = &functions[0];
        assert_eq!((f.label.as_str(), f.call_count), ("refresh", 1));
        assert_eq!(f.point(128).unwrap().own, Some(4.0));
        assert_eq!(f.point(128).unwrap().billed_ms, Some(9.0));
        // 4 ms is within 1 ms of 2 ms? No: 128 MB is out, 1769 is chosen.
        assert_eq!(f.chosen, Some(1769));
        let md = markdown(&results, &functions, None);
        assert!(
            md.contains("| refresh | 1 TransactWriteItems | 128 | 0.07 | 54.0 | 50.0 | 4.00 |"),
            "{md}"
        );
        assert!(svg(&results, &functions).contains("<polyline"));
    }

    #[test]
    fn memory_sizes_are_read_from_the_cdk_config() {
        let dir = std::env::temp_dir().join(format!("kb-power-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("common.ts");
        std::fs::write(
            &file,
            "/** x */\nexport const MEMORY_MB: Readonly<Record<FunctionName, number>> = {\n  register: 1024,\n  'logout-all': 256,\n};\nexport const OTHER = { a: 1 };\n",
        )
        .unwrap();
        let memory = read_memory_mb(&file).unwrap();
        assert_eq!(memory.get("register"), Some(&1024));
        assert_eq!(memory.get("logout-all"), Some(&256));
        assert_eq!(memory.len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

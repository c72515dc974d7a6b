//! Lambda's CPU share, emulated: Lambda gives a function CPU in proportion to its memory (1,769 MB is
//! one vCPU, 3,008 MB about 1.7). `run --cpu-mb` starts each variant inside a cgroup v1 `cpu` group
//! whose CFS quota is that share of one CPU: `cpu.cfs_period_us = 100000`, `cpu.cfs_quota_us =
//! 100000 * mb / 1769`. The groups are `/sys/fs/cgroup/cpu/keygate-bench-<mb>/`, created when the run
//! starts and removed (rmdir) when it ends, on error too ([`CpuGroups`]'s `Drop`).
//!
//! A process joins its group before it starts a thread: the launch is wrapped as
//! `/bin/sh -c 'echo $$ > …/cgroup.procs && exec "$0" "$@"' PROGRAM ARGS…`, and `exec` keeps the pid,
//! so the emulator's peak RSS (`/proc/PID/status`) is still the bootstrap's.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where cgroup v1 mounts the `cpu` controller.
pub const CPU_ROOT: &str = "/sys/fs/cgroup/cpu";
/// The memory size Lambda gives one full vCPU at.
pub const ONE_VCPU_MB: u32 = 1769;
pub const PERIOD_US: u64 = 100_000;

/// The CFS quota of `mb`: its share of one CPU per 100 ms period.
pub fn quota_us(mb: u32) -> u64 {
    PERIOD_US * u64::from(mb) / u64::from(ONE_VCPU_MB)
}

/// The CPU share of `mb` (1.0 = one vCPU).
pub fn cpu_share(mb: u32) -> f64 {
    f64::from(mb) / f64::from(ONE_VCPU_MB)
}

pub fn group_dir(root: &Path, mb: u32) -> PathBuf {
    root.join(format!("keygate-bench-{mb}"))
}

/// `program args…` started inside the group of `mb` (see the module documentation).
pub fn wrap(root: &Path, mb: u32, program: &Path, args: &[String]) -> (PathBuf, Vec<String>) {
    let procs = group_dir(root, mb).join("cgroup.procs");
    let script = format!(r#"echo $$ > {} && exec "$0" "$@""#, procs.display());
    let mut wrapped = vec!["-c".to_owned(), script, program.display().to_string()];
    wrapped.extend(args.iter().cloned());
    (PathBuf::from("/bin/sh"), wrapped)
}

/// The groups of one run; removed on drop.
#[derive(Debug)]
pub struct CpuGroups {
    root: PathBuf,
    sizes: Vec<u32>,
}

impl CpuGroups {
    /// Creates (or takes over, after an interrupted run) one group per size and sets its quota.
    pub fn create(sizes: &[u32]) -> Result<Self, String> {
        Self::create_under(Path::new(CPU_ROOT), sizes)
    }

    fn create_under(root: &Path, sizes: &[u32]) -> Result<Self, String> {
        // Opening the root's quota for writing (nothing is written) fails on a read-only mount or
        // without the rights, as creating a group would.
        let writable = std::fs::OpenOptions::new()
            .write(true)
            .open(root.join("cpu.cfs_quota_us"))
            .is_ok();
        if !writable {
            return Err(format!(
                "--cpu-mb needs cgroup v1's cpu controller at {} and the right to create groups in it (root); it is missing or read-only here",
                root.display()
            ));
        }
        let mut groups = Self {
            root: root.to_owned(),
            sizes: Vec::new(),
        };
        for &mb in sizes {
            let dir = group_dir(root, mb);
            if !dir.is_dir() {
                std::fs::create_dir(&dir).map_err(|e| {
                    format!(
                        "--cpu-mb: cannot create {} ({e}); is {} writable?",
                        dir.display(),
                        root.display()
                    )
                })?;
            }
            groups.sizes.push(mb);
            let write = |file: &str, value: u64| {
                std::fs::write(dir.join(file), value.to_string())
                    .map_err(|e| format!("{}/{file}: {e}", dir.display()))
            };
            write("cpu.cfs_period_us", PERIOD_US)?;
            write("cpu.cfs_quota_us", quota_us(mb))?;
        }
        Ok(groups)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// How much CPU time the processes of `mb`'s group were refused: (periods throttled, total
    /// periods, throttled time in ms), from `cpu.stat`.
    pub fn throttling(&self, mb: u32) -> Option<(u64, u64, f64)> {
        let stat = std::fs::read_to_string(group_dir(&self.root, mb).join("cpu.stat")).ok()?;
        let field = |name: &str| {
            stat.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
        };
        Some((
            field("nr_throttled ")?,
            field("nr_periods ")?,
            field("throttled_time ")? as f64 / 1e6,
        ))
    }
}

impl Drop for CpuGroups {
    fn drop(&mut self) {
        for &mb in &self.sizes {
            let dir = group_dir(&self.root, mb);
            // A process killed a moment ago may not have left yet: end what is left (only the
            // benchmark's own processes are ever put there) and retry for a second.
            for attempt in 0..20 {
                if std::fs::remove_dir(&dir).is_ok() || !dir.exists() {
                    break;
                }
                if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
                    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                        let _ = std::process::Command::new("kill")
                            .args(["-KILL", &pid.to_string()])
                            .status();
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
                if attempt == 19 {
                    eprintln!(
                        "keygate-bench: could not remove {}; remove it with `rmdir {}`",
                        dir.display(),
                        dir.display()
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_follow_lambdas_memory_to_cpu_ratio() {
        assert_eq!(quota_us(1769), 100_000);
        assert_eq!(quota_us(128), 7_235); // 100000 * 128 / 1769 = 7235.7
        assert_eq!(quota_us(512), 28_942);
        assert_eq!(quota_us(3008), 170_039); // 1.7 CPUs
        assert!((cpu_share(3008) - 1.7004).abs() < 1e-4);
    }

    #[test]
    fn the_launch_joins_the_group_and_execs() {
        let (program, args) = wrap(
            Path::new("/sys/fs/cgroup/cpu"),
            512,
            Path::new("/opt/bootstrap"),
            &["--x".to_owned()],
        );
        assert_eq!(program, PathBuf::from("/bin/sh"));
        assert_eq!(
            args,
            [
                "-c",
                r#"echo $$ > /sys/fs/cgroup/cpu/keygate-bench-512/cgroup.procs && exec "$0" "$@""#,
                "/opt/bootstrap",
                "--x"
            ]
        );
    }

    #[test]
    fn a_missing_controller_is_one_clear_error() {
        let error = CpuGroups::create_under(Path::new("/nonexistent/cpu"), &[128]).unwrap_err();
        assert!(error.contains("cgroup v1's cpu controller"), "{error}");
        assert!(!error.contains('\n'));
    }
}

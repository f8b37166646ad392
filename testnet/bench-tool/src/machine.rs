//! What the benchmarks ran on, and how busy it was: CPU, memory, kernel, toolchain, load
//! averages, and the resident memory of processes (all read from `/proc` or from commands).

use std::process::Command;

/// The machine and toolchain.
#[derive(Clone, Debug)]
pub struct MachineInfo {
    /// `model name` of the first CPU in `/proc/cpuinfo`.
    pub cpu_model: String,
    /// Logical CPUs (`processor` entries in `/proc/cpuinfo`).
    pub cpus: usize,
    /// `MemTotal` of `/proc/meminfo`, MiB.
    pub mem_total_mib: u64,
    /// `MemAvailable` of `/proc/meminfo` at the start, MiB.
    pub mem_available_mib: u64,
    /// Kernel release (`/proc/sys/kernel/osrelease`, what `uname -r` prints).
    pub kernel: String,
    /// `rustc --version`.
    pub rustc: String,
    /// UTC date and time of the start (`date -u`).
    pub date: String,
    /// `git rev-parse --short HEAD` of the repository.
    pub commit: String,
    /// Files of the node, its crates, the contracts and the protos that differ from that
    /// commit (`git status --porcelain`): the benchmark measures the working tree.
    pub dirty: Vec<String>,
}

/// Output of a command, trimmed; `"unknown"` when it cannot run.
fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// A `/proc/meminfo` field in MiB.
fn meminfo_mib(text: &str, field: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

impl MachineInfo {
    /// Reads the machine's description now; `repo` is the repository root.
    pub fn read(repo: &std::path::Path) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".to_owned(), |(_, v)| v.trim().to_owned());
        let cpus = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| command_output("uname", &["-r"]));
        Self {
            cpu_model,
            cpus,
            mem_total_mib: meminfo_mib(&meminfo, "MemTotal:"),
            mem_available_mib: meminfo_mib(&meminfo, "MemAvailable:"),
            kernel,
            rustc: command_output("rustc", &["--version"]),
            date: command_output("date", &["-u", "+%Y-%m-%d %H:%M:%S UTC"]),
            commit: command_output(
                "git",
                &[
                    "-C",
                    &repo.to_string_lossy(),
                    "rev-parse",
                    "--short",
                    "HEAD",
                ],
            ),
            dirty: command_output(
                "git",
                &[
                    "-C",
                    &repo.to_string_lossy(),
                    "status",
                    "--porcelain",
                    "--",
                    "node",
                    "proto",
                    "contracts-bindings",
                    "Cargo.lock",
                ],
            )
            .lines()
            .filter(|l| !l.trim().is_empty() && *l != "unknown")
            .map(|l| l.trim().to_owned())
            .collect(),
        }
    }
}

/// The 1-, 5- and 15-minute load averages (`/proc/loadavg`).
pub fn load_average() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut out = [f64::NAN; 3];
    for (slot, field) in out.iter_mut().zip(text.split_whitespace()) {
        *slot = field.parse().unwrap_or(f64::NAN);
    }
    out
}

/// Resident set size of process `pid` (`VmRSS`), KiB; `None` once it is gone.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_field_kib(pid, "VmRSS:")
}

/// Of the resident set of process `pid`: (anonymous, file-backed) KiB (`RssAnon`,
/// `RssFile`). The file-backed part is mostly the binary's code, mapped by the kernel in
/// fault-around windows (64 KiB by default) as it runs, and shared by every process of it.
pub fn rss_split_kib(pid: u32) -> Option<(u64, u64)> {
    Some((
        status_field_kib(pid, "RssAnon:")?,
        status_field_kib(pid, "RssFile:")?,
    ))
}

/// Peak resident set size of process `pid` since it started (`VmHWM`), KiB.
pub fn hwm_kib(pid: u32) -> Option<u64> {
    status_field_kib(pid, "VmHWM:")
}

/// Clock ticks per second of `/proc/<pid>/stat`'s CPU times (`USER_HZ`: 100 on Linux).
pub const USER_HZ: u64 = 100;

/// CPU time process `pid` has used, user plus system, in [`USER_HZ`] ticks
/// (`/proc/<pid>/stat` fields 14 and 15).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let mut rest = text.rsplit_once(')')?.1.split_whitespace();
    let utime: u64 = rest.nth(11)?.parse().ok()?;
    let stime: u64 = rest.next()?.parse().ok()?;
    Some(utime + stime)
}

/// A `kB` field of `/proc/<pid>/status`.
fn status_field_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

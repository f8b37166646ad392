//! A CPU profile of one node while the concurrent incidents run: `perf record` at a fixed
//! frequency for a fixed time, summarised with `perf report` as the share of samples per
//! object (the node's binary, the kernel, libc …) and the hottest symbols, with the CPU time
//! the process used over the same window (`/proc/<pid>/stat`). Without `perf`, or when it
//! cannot attach, the report says why instead of a profile.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use crate::machine;

/// Sampling frequency (Hz): not a multiple of the 100 Hz timer ticks, so samples do not lock
/// onto periodic work.
pub const HZ: u32 = 499;
/// Length of the recording (s), from the first gap: the 100 incidents close within it.
pub const SECONDS: u64 = 6;
/// Symbols listed.
const TOP_SYMBOLS: usize = 15;
/// Objects listed.
const TOP_OBJECTS: usize = 6;

/// A summarised profile.
#[derive(Clone, Debug, Default)]
pub struct Profile {
    /// Node profiled.
    pub node: String,
    /// Samples taken.
    pub samples: u64,
    /// CPU time (user + system) of the process over the window, in cores.
    pub cores: Option<f64>,
    /// Share of the samples (%) per object, largest first.
    pub objects: Vec<(f64, String)>,
    /// The hottest symbols: (share %, object, symbol), largest first.
    pub symbols: Vec<(f64, String, String)>,
}

/// A recording under way.
pub struct Recording {
    node: String,
    pid: u32,
    file: PathBuf,
    child: Child,
    started: Instant,
    ticks: Option<u64>,
}

/// Starts recording process `pid` (named `node`) into `dir` for [`SECONDS`].
pub fn start(node: &str, pid: u32, dir: &Path) -> Result<Recording, String> {
    let file = dir.join(format!("perf-{node}.data"));
    let child = Command::new("perf")
        .args([
            "record",
            "-q",
            "-F",
            &HZ.to_string(),
            "-p",
            &pid.to_string(),
            "-o",
        ])
        .arg(&file)
        .args(["--", "sleep", &SECONDS.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("`perf record` did not start ({e}); install linux-perf"))?;
    Ok(Recording {
        node: node.to_owned(),
        pid,
        file,
        child,
        started: Instant::now(),
        ticks: machine::cpu_ticks(pid),
    })
}

impl Recording {
    /// Waits for the recording to end and summarises it.
    pub async fn finish(self) -> Result<Profile, String> {
        let Recording {
            node,
            pid,
            file,
            child,
            started,
            ticks,
        } = self;
        let out = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("`perf record`: {e}"))?;
        let cores = match (ticks, machine::cpu_ticks(pid)) {
            (Some(a), Some(b)) => Some(
                b.saturating_sub(a) as f64
                    / machine::USER_HZ as f64
                    / started.elapsed().as_secs_f64(),
            ),
            _ => None,
        };
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(format!("`perf record` failed: {}", err.trim()));
        }
        tokio::task::spawn_blocking(move || summarise(node, &file, cores))
            .await
            .map_err(|e| e.to_string())?
    }
}

/// `perf report` of `file`, per object and per symbol.
fn summarise(node: String, file: &Path, cores: Option<f64>) -> Result<Profile, String> {
    let objects = parse_report(&report(file, "dso")?);
    let symbols = parse_report(&report(file, "dso,sym")?);
    let samples = objects.iter().map(|r| r.samples).sum();
    Ok(Profile {
        node,
        samples,
        cores,
        objects: objects
            .into_iter()
            .take(TOP_OBJECTS)
            .map(|r| (r.percent, r.object))
            .collect(),
        symbols: symbols
            .into_iter()
            .take(TOP_SYMBOLS)
            .map(|r| (r.percent, r.object, r.symbol))
            .collect(),
    })
}

/// `perf report --stdio` sorted by `keys`, with sample counts, no header.
fn report(file: &Path, keys: &str) -> Result<String, String> {
    let out = Command::new("perf")
        .args([
            "report",
            "-q",
            "--stdio",
            "-n",
            "--no-children",
            "--sort",
            keys,
            "-i",
        ])
        .arg(file)
        .output()
        .map_err(|e| format!("`perf report`: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`perf report` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One row of `perf report -n`.
#[derive(Debug, PartialEq)]
struct Row {
    percent: f64,
    samples: u64,
    object: String,
    /// Empty when sorted by object only.
    symbol: String,
}

/// Rows of `perf report -q -n --sort dso[,sym]`: `  12.34%   567  object  [.] symbol`.
/// Lines that do not have that shape are skipped.
fn parse_report(text: &str) -> Vec<Row> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let percent = words.next()?.strip_suffix('%')?.parse().ok()?;
            let samples = words.next()?.parse().ok()?;
            let object = words.next()?.to_owned();
            let symbol = match words.next() {
                Some("[.]" | "[k]") => words.collect::<Vec<_>>().join(" "),
                Some(_) => return None,
                None => String::new(),
            };
            Some(Row {
                percent,
                samples,
                object,
                symbol,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_perf_report_rows_by_object_and_by_symbol() {
        let by_object = "\n    41.20%          1230  backstop\n    37.85%  1130  [kernel.kallsyms]\n# comment\n";
        let rows = parse_report(by_object);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].percent, 41.2);
        assert_eq!(rows[0].samples, 1230);
        assert_eq!(rows[1].object, "[kernel.kallsyms]");
        assert!(rows[1].symbol.is_empty());

        let by_symbol = "     2.03%  61  backstop  [.] <alloc::vec::Vec<T> as Clone>::clone\n     1.50%  45  [kernel.kallsyms]  [k] clear_page_erms\n     0.90%  27  backstop  0x1234\n";
        let rows = parse_report(by_symbol);
        assert_eq!(rows.len(), 2, "a row without [.] or [k] is skipped");
        assert_eq!(rows[0].symbol, "<alloc::vec::Vec<T> as Clone>::clone");
        assert_eq!(rows[1].object, "[kernel.kallsyms]");
        assert_eq!(rows[1].symbol, "clear_page_erms");
    }
}

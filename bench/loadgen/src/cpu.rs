//! CPU time of the processes a benchmark drives, read from `/proc`: per process (user + system,
//! all threads, children not included) and per thread name, so a phase's figures show which
//! process — and which of the broker's threads — a limit binds on.

use std::{collections::BTreeMap, path::Path, time::Instant};

/// Seconds of CPU per clock tick of `/proc/*/stat`.
fn seconds_per_tick() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .map_or(0.01, |t| 1.0 / t as f64)
}

/// (name, user + system ticks) of a `stat` file: the name is between the parentheses, the
/// fields after it are numbered from 3 (`state`); utime and stime are fields 14 and 15.
fn stat(path: &Path) -> Option<(String, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let (open, close) = (text.find('(')?, text.rfind(')')?);
    let name = text[open + 1..close].to_owned();
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

/// CPU seconds process `pid` has used so far.
pub fn process_seconds(pid: u32) -> Option<f64> {
    stat(&Path::new("/proc").join(pid.to_string()).join("stat"))
        .map(|(_, ticks)| ticks as f64 * seconds_per_tick())
}

/// CPU seconds each thread name of process `pid` has used so far (threads sharing a name, such
/// as a runtime's workers, summed).
pub fn thread_seconds(pid: u32) -> BTreeMap<String, f64> {
    let mut by_name = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(Path::new("/proc").join(pid.to_string()).join("task")) else {
        return by_name;
    };
    for task in tasks.flatten() {
        if let Some((name, ticks)) = stat(&task.path().join("stat")) {
            *by_name.entry(name).or_insert(0.0) += ticks as f64 * seconds_per_tick();
        }
    }
    by_name
}

/// Processes whose executable is called `exe` and whose command line contains `arg` (when
/// given), e.g. the broker listening on an address, or every PostgreSQL backend.
pub fn pids_of(exe: &str, arg: Option<&str>) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let dir = Path::new("/proc").join(pid.to_string());
            let named = std::fs::read_link(dir.join("exe"))
                .ok()
                .and_then(|p| {
                    p.file_name().map(|n| n.to_string_lossy().trim_end_matches(" (deleted)").to_owned())
                })
                .is_some_and(|n| n == exe);
            named
                && arg.is_none_or(|arg| {
                    std::fs::read(dir.join("cmdline"))
                        .is_ok_and(|c| String::from_utf8_lossy(&c).replace('\0', " ").contains(arg))
                })
        })
        .collect()
}

/// CPU use of named groups of processes over a stretch of time.
pub struct Meter {
    groups: Vec<(String, Vec<u32>)>,
    threads_of: Option<(String, u32)>,
    start: BTreeMap<String, f64>,
    start_threads: BTreeMap<String, f64>,
    started: Instant,
}

/// What a [`Meter`] measured: CPU seconds per group and per thread name of the one process whose
/// threads were followed, over `wall_seconds`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Usage {
    pub wall_seconds: f64,
    pub cpu_seconds: BTreeMap<String, f64>,
    pub threads: BTreeMap<String, f64>,
    pub threads_of: Option<String>,
}

impl Usage {
    /// CPU seconds of every group together.
    pub fn total(&self) -> f64 {
        self.cpu_seconds.values().sum()
    }
}

fn group_seconds(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|pid| process_seconds(*pid)).sum()
}

impl Meter {
    /// Starts measuring each named group of processes, and the threads of `threads_of`.
    pub fn start(groups: Vec<(String, Vec<u32>)>, threads_of: Option<(String, u32)>) -> Self {
        let start = groups.iter().map(|(name, pids)| (name.clone(), group_seconds(pids))).collect();
        let start_threads = threads_of.as_ref().map(|(_, pid)| thread_seconds(*pid)).unwrap_or_default();
        Self { groups, threads_of, start, start_threads, started: Instant::now() }
    }

    pub fn stop(&self) -> Usage {
        let cpu_seconds = self
            .groups
            .iter()
            .map(|(name, pids)| (name.clone(), (group_seconds(pids) - self.start[name]).max(0.0)))
            .collect();
        let threads = self
            .threads_of
            .as_ref()
            .map(|(_, pid)| {
                thread_seconds(*pid)
                    .into_iter()
                    .map(|(name, s)| {
                        let before = self.start_threads.get(&name).copied().unwrap_or(0.0);
                        (name, (s - before).max(0.0))
                    })
                    .filter(|(_, s)| *s > 0.0)
                    .collect()
            })
            .unwrap_or_default();
        Usage {
            wall_seconds: self.started.elapsed().as_secs_f64(),
            cpu_seconds,
            threads,
            threads_of: self.threads_of.as_ref().map(|(name, _)| name.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_uses_cpu_and_has_named_threads() {
        let pid = std::process::id();
        let before = process_seconds(pid).expect("own stat");
        let mut x = 0u64;
        let spin = Instant::now();
        while spin.elapsed().as_millis() < 200 {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        let after = process_seconds(pid).expect("own stat");
        assert!(after > before, "{before} → {after}");
        assert!(!thread_seconds(pid).is_empty());
    }

    #[test]
    fn a_name_in_parentheses_does_not_shift_the_fields() {
        let dir = std::env::temp_dir().join(format!("cpu-stat-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let line = "42 (tokio (worker) 1) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 1 0 0";
        std::fs::write(dir.join("stat"), line).expect("write");
        assert_eq!(stat(&dir.join("stat")), Some(("tokio (worker) 1".to_owned(), 10)));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

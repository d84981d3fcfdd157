//! Reading /proc: CPU time and resident memory of process trees, the bench's own CPU with its reaped children
//! (the client), the page cache's size, and the whole machine's CPU split. Everything here is a plain sample; the
//! caller takes deltas over a run.

use std::collections::HashMap;
use std::fs;

use serde::Serialize;

/// Clock ticks per second of /proc's CPU times.
pub fn clock_ticks() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as f64,
        _ => 100.0,
    }
}

/// The fields of /proc/PID/stat after the command name (which may hold spaces and parentheses).
/// Index 0 is field 3 (state) of proc(5).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    stat_fields_of(&format!("/proc/{pid}/stat"))
}

fn stat_fields_of(path: &str) -> Option<Vec<String>> {
    let s = fs::read_to_string(path).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

fn field(f: &[String], n: usize) -> Option<u64> {
    // proc(5) numbers fields from 1; fields 1 and 2 (pid, comm) are not in `f`.
    f.get(n.checked_sub(3)?)?.parse().ok()
}

/// utime + stime (fields 14 and 15) of one process, in ticks; for a process this covers all of its threads.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    cpu_split_ticks(pid).map(|t| t.total())
}

/// CPU time in ticks, split into user space and the kernel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ticks {
    /// utime: user space (the server's code, libc, the vDSO).
    pub user: u64,
    /// stime: the kernel, on the process's behalf (syscalls, and the softirq work the kernel charges to the
    /// running task, such as loopback's receive path).
    pub system: u64,
}

impl Ticks {
    pub fn total(self) -> u64 {
        self.user + self.system
    }

    /// `later - self`, field by field (0 where a process went away).
    pub fn until(self, later: Ticks) -> Ticks {
        Ticks {
            user: later.user.saturating_sub(self.user),
            system: later.system.saturating_sub(self.system),
        }
    }
}

/// utime and stime (fields 14 and 15) of one process, in ticks.
pub fn cpu_split_ticks(pid: u32) -> Option<Ticks> {
    let f = stat_fields(pid)?;
    Some(Ticks {
        user: field(&f, 14)?,
        system: field(&f, 15)?,
    })
}

/// Summed utime and stime of `pids` (processes that are gone count 0).
pub fn split_ticks_sum(pids: &[u32]) -> Ticks {
    pids.iter()
        .filter_map(|&p| cpu_split_ticks(p))
        .fold(Ticks::default(), |a, t| Ticks {
            user: a.user + t.user,
            system: a.system + t.system,
        })
}

/// The client's CPU in ticks: this process's own utime+stime (all threads; the idle client of (g) runs in it)
/// plus cutime+cstime of the children it has waited for (wrk, h2load).
pub fn client_ticks() -> u64 {
    stat_fields_of("/proc/self/stat")
        .and_then(|f| Some(field(&f, 14)? + field(&f, 15)? + field(&f, 16)? + field(&f, 17)?))
        .unwrap_or(0)
}

/// The `Cached:` line of /proc/meminfo (page cache), in KiB.
pub fn page_cache_kib() -> Option<u64> {
    let s = fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("Cached:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// VmRSS of one process in KiB (absent for zombies and kernel threads).
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// RssAnon of one process in KiB: VmRSS less the file pages it maps (a server that memory-maps what it serves
/// counts those page-cache pages in VmRSS, though they are the page cache's, not its own).
pub fn rss_anon_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "RssAnon:")
}

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `root` and all of its descendants, found through the parent field of every /proc/PID/stat.
pub fn tree(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(ppid) = stat_fields(pid).and_then(|f| field(&f, 4)) {
                children.entry(ppid as u32).or_default().push(pid);
            }
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        if let Some(c) = children.get(&out[i]) {
            out.extend(c);
        }
        i += 1;
    }
    out
}

/// Summed CPU ticks of `pids` (processes that are gone count 0).
pub fn cpu_ticks_sum(pids: &[u32]) -> u64 {
    pids.iter().filter_map(|&p| cpu_ticks(p)).sum()
}

/// Summed VmRSS of `pids` in KiB.
pub fn rss_kib_sum(pids: &[u32]) -> u64 {
    pids.iter().filter_map(|&p| rss_kib(p)).sum()
}

/// Summed RssAnon of `pids` in KiB.
pub fn rss_anon_kib_sum(pids: &[u32]) -> u64 {
    pids.iter().filter_map(|&p| rss_anon_kib(p)).sum()
}

/// CPU ticks and command name of every process on the machine (kernel threads included). The ticks are
/// utime+stime+cutime+cstime, so that a parent is credited with the children it reaped (a build's cargo with its
/// finished rustc processes); good enough to name who else was busy, not to account for it exactly.
pub fn all_ticks() -> HashMap<u32, (String, u64)> {
    let mut out = HashMap::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(s) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (s.find('('), s.rfind(')')) else {
            continue;
        };
        let comm = s[open + 1..close].to_string();
        let f: Vec<String> = s[close + 1..]
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let ticks: Option<u64> = [14, 15, 16, 17].iter().map(|&n| field(&f, n)).sum();
        if let Some(t) = ticks {
            out.insert(pid, (comm, t));
        }
    }
    out
}

/// The machine's aggregate CPU counters from the first line of /proc/stat.
#[derive(Debug, Clone, Copy, Default)]
pub struct SysCpu {
    user: u64,
    system: u64,
    softirq: u64,
    idle: u64,
    total: u64,
}

impl SysCpu {
    pub fn sample() -> SysCpu {
        let Ok(s) = fs::read_to_string("/proc/stat") else {
            return SysCpu::default();
        };
        let Some(line) = s.lines().find(|l| l.starts_with("cpu ")) else {
            return SysCpu::default();
        };
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        let at = |i: usize| v.get(i).copied().unwrap_or(0);
        // user nice system idle iowait irq softirq steal (guest time is already inside user).
        SysCpu {
            user: at(0) + at(1),
            system: at(2) + at(5),
            softirq: at(6),
            idle: at(3) + at(4),
            total: (0..8).map(at).sum(),
        }
    }

    /// Percentages of all cores between `self` (earlier) and `later`.
    pub fn split_until(&self, later: &SysCpu) -> CpuSplit {
        let total = later.total.saturating_sub(self.total).max(1) as f64;
        let pct = |a: u64, b: u64| 100.0 * b.saturating_sub(a) as f64 / total;
        CpuSplit {
            user_pct: pct(self.user, later.user),
            system_pct: pct(self.system, later.system),
            softirq_pct: pct(self.softirq, later.softirq),
            idle_pct: pct(self.idle, later.idle),
        }
    }
}

/// Where the machine's CPU went during a run, in percent of all cores.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CpuSplit {
    pub user_pct: f64,
    pub system_pct: f64,
    pub softirq_pct: f64,
    pub idle_pct: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        assert!(cpu_ticks(me).is_some());
        let t = cpu_split_ticks(me).expect("own stat");
        assert_eq!(cpu_ticks(me).map(|c| c >= t.total()), Some(true));
        assert!(split_ticks_sum(&[me, u32::MAX]).total() >= t.total());
        assert!(rss_kib(me).is_some_and(|k| k > 0));
        assert!(rss_anon_kib(me).is_some_and(|k| k > 0));
        assert_eq!(tree(me).first(), Some(&me));
        assert!(clock_ticks() > 0.0);
    }
}

//! The gateway process as seen from `/proc/PID`: CPU time and memory.

use std::time::Duration;

use crate::BenchError;

/// CPU time and resident memory of a process at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// User plus system CPU time.
    pub cpu: Duration,
    /// Resident set size in bytes.
    pub rss: u64,
}

/// Reads `/proc/PID/stat` (CPU, in USER_HZ = 1/100 s ticks) and
/// `/proc/PID/status` (VmRSS).
///
/// # Errors
/// [`BenchError::Usage`] if the process does not exist or is unreadable.
pub fn sample(pid: u32) -> Result<Sample, BenchError> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| BenchError::Usage(format!("cannot read /proc/{pid}/stat: {e}")))?;
    // The command name may hold spaces: fields are counted after its ')'.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After ')': state is field 3 overall, so utime (14) and stime (15) are at 11 and 12.
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    let cpu = Duration::from_millis((ticks(11) + ticks(12)) * 10);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| BenchError::Usage(format!("cannot read /proc/{pid}/status: {e}")))?;
    let rss_kb = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    Ok(Sample {
        cpu,
        rss: rss_kb * 1024,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = sample(std::process::id()).unwrap();
        assert!(me.rss > 1024 * 1024, "a test process holds more than 1 MiB");
        assert!(sample(u32::MAX).is_err());
    }
}

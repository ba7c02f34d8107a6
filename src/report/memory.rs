//! The process's peak memory, for the run's report and its last line: at atlas scale memory,
//! not time, is what runs out first.

/// The peak resident set size of this process so far, in bytes: `VmHWM` of
/// `/proc/self/status` (Linux); `None` where that file does not exist or does not say.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `, peak memory 1,234 MB` (MB = 10⁶ bytes), or nothing where the peak is not known.
pub fn peak_note() -> String {
    peak_rss_bytes().map_or(String::new(), |b| {
        format!(", peak memory {} MB", b.div_ceil(1_000_000))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_covers_what_was_touched() {
        if !std::path::Path::new("/proc/self/status").exists() {
            assert_eq!(peak_rss_bytes(), None);
            return;
        }
        let before = peak_rss_bytes().unwrap();
        // 64 MB touched page by page: the peak is at least that.
        let v = vec![1u8; 64 << 20];
        let after = peak_rss_bytes().unwrap();
        assert!(v.iter().step_by(4096).all(|&b| b == 1));
        assert!(
            after >= (64 << 20) && after >= before,
            "{before} -> {after}"
        );
        assert!(peak_note().starts_with(", peak memory "));
    }
}

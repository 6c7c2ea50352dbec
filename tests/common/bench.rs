//! What the load benchmarks share: their arguments and percentiles.

use std::time::Duration;

/// The benchmark's arguments. `cargo bench` passes `--bench`; without it (as
/// `cargo test --all-targets` runs benches) a benchmark only checks its
/// harness on small numbers.
pub struct Args {
    args: Vec<String>,
    pub measure: bool,
}

impl Args {
    pub fn from_env() -> Args {
        let args: Vec<String> = std::env::args().collect();
        let measure = args.iter().any(|a| a == "--bench");
        Args { args, measure }
    }

    /// `--name N`, or `measured` when benchmarking, `smoke` otherwise.
    pub fn number(&self, name: &str, measured: usize, smoke: usize) -> usize {
        self.args
            .iter()
            .position(|a| a == name)
            .and_then(|i| self.args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(if self.measure { measured } else { smoke })
    }
}

/// The `p` quantile of sorted latencies.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

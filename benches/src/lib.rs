//! What the benchmarks (`benches/`) share: reading their knobs from the
//! environment.

/// The value of the environment variable `name` as a number, or `default`
/// when it is unset or not a number.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `BENCH_QUICK` is set to something other than empty or `0`: the bench
/// runs its small numbers.
pub fn quick() -> bool {
    std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

//! The contract's `limits`: what a connection, a message and a log line may
//! cost the platform. Durations read like the rest of the contract (`10s`),
//! sizes in bytes with a binary or decimal unit (`64KiB`, `16kB`, `512`).

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The bounds every service keeps (see `limits` in `fixtures/platform.yaml`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Limits {
    /// A request header not complete within this closes the connection.
    #[serde(deserialize_with = "super::duration")]
    pub header_read_timeout: Duration,
    /// A connection that sends nothing is closed within this.
    #[serde(deserialize_with = "super::duration")]
    pub idle_timeout: Duration,
    /// The largest WebSocket message, in bytes; a larger one is refused
    /// with close code 1009.
    #[serde(deserialize_with = "size")]
    pub max_ws_frame: u64,
    /// The longest log line, in bytes.
    #[serde(deserialize_with = "size")]
    pub max_log_line: u64,
    /// Metric series unauthenticated junk may add.
    pub max_metric_series_growth: u64,
}

impl Limits {
    /// Bounds of zero would refuse everything; the message names the key.
    pub(super) fn check(&self) -> Result<(), String> {
        for (key, zero) in [
            ("header-read-timeout", self.header_read_timeout.is_zero()),
            ("idle-timeout", self.idle_timeout.is_zero()),
            ("max-ws-frame", self.max_ws_frame == 0),
            ("max-log-line", self.max_log_line == 0),
        ] {
            if zero {
                return Err(format!("limits.{key}: must be more than zero"));
            }
        }
        Ok(())
    }
}

/// `64KiB`, `1MiB`, `16kB`, `512` (bytes).
fn size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let value = serde_yaml::Value::deserialize(d)?;
    let parsed = match &value {
        serde_yaml::Value::Number(n) => n.as_u64(),
        serde_yaml::Value::String(text) => parse_size(text),
        _ => None,
    };
    parsed.ok_or_else(|| {
        serde::de::Error::custom(format!(
            "`{}` is not a size (write e.g. `64KiB`, `1MiB`, `16kB` or a number of bytes)",
            serde_yaml::to_string(&value).unwrap_or_default().trim_end()
        ))
    })
}

pub(crate) fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let unit: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(unit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{Contract, REFERENCE};

    #[test]
    fn the_reference_states_its_limits() {
        let limits = Contract::reference()
            .limits
            .clone()
            .expect("the reference contract states limits");
        assert_eq!(
            limits,
            Limits {
                header_read_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(30),
                max_ws_frame: 64 * 1024,
                max_log_line: 16 * 1024,
                max_metric_series_growth: 0,
            }
        );
    }

    #[test]
    fn sizes_read_with_units() {
        assert_eq!(parse_size("64KiB"), Some(65_536));
        assert_eq!(parse_size("16kB"), Some(16_000));
        assert_eq!(parse_size("2 MiB"), Some(2 << 20));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("64 KiBs"), None);
        assert_eq!(parse_size("KiB"), None);
        assert_eq!(parse_size("99999999999GiB"), None);
    }

    #[test]
    fn bad_limits_are_refused_naming_the_key() {
        let bad_size = REFERENCE.replace("max-ws-frame: 64KiB", "max-ws-frame: large");
        let err = Contract::parse(&bad_size, "team.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`large` is not a size"), "{err}");
        assert!(
            err.contains("max-ws-frame") || err.contains("limits"),
            "{err}"
        );

        let bad_time = REFERENCE.replace("idle-timeout: 30s", "idle-timeout: a while");
        let err = Contract::parse(&bad_time, "team.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`a while` is not a duration"), "{err}");

        let unknown = REFERENCE.replace("max-log-line: 16KiB", "max-log-lines: 16KiB");
        let err = Contract::parse(&unknown, "team.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max-log-lines"), "{err}");
    }

    #[test]
    fn a_zero_bound_is_refused() {
        let zero = REFERENCE.replace("header-read-timeout: 10s", "header-read-timeout: 0s");
        let err = Contract::parse(&zero, "team.yaml").unwrap_err().to_string();
        assert!(
            err.contains("limits.header-read-timeout: must be more than zero"),
            "{err}"
        );
    }

    #[test]
    fn a_contract_without_limits_still_parses() {
        let start = REFERENCE
            .find("\nlimits:")
            .expect("the reference has limits");
        let without = &REFERENCE[..start];
        let contract = Contract::parse(without, "team.yaml").expect("parses");
        assert!(contract.limits.is_none());
    }
}

//! How long rbuild waits for a registry, so that a server that accepts a connection and never
//! answers, or stops sending in the middle of a blob, fails the command instead of hanging it.
//!
//! One setting, `RBUILD_REGISTRY_TIMEOUT` (seconds, default 30, fractions allowed), scales
//! them all:
//!
//! - connecting: at most 5 s (or the setting, when smaller);
//! - a request: its answer's headers must arrive within the setting;
//! - a body being read: each read must bring data within the setting (an idle limit, so a
//!   large blob that keeps arriving is never cut);
//! - a body being sent: the connection is dropped when what was sent stays unacknowledged
//!   (the server stopped reading) for the setting (`TCP_USER_TIMEOUT`), and the whole upload
//!   request may take the setting plus as much again per MiB (≈ 34 KiB/s at the default);
//! - retries (see [`super::Client::retry`]): no new attempt starts once three times the
//!   setting has passed since the first, so a dead server costs about three attempts.

use std::io;
use std::time::Duration;

use super::RegistryError;

/// The environment variable that sets the registry timeout, in seconds.
pub const ENV: &str = "RBUILD_REGISTRY_TIMEOUT";

/// The timeout when [`ENV`] is not set.
pub const DEFAULT: Duration = Duration::from_secs(30);

/// Connecting never waits longer than this, whatever the setting.
const MAX_CONNECT: Duration = Duration::from_secs(5);

/// How many attempts' worth of the setting retries may spend.
const RETRY_BUDGET_FACTOR: u32 = 3;

/// The limits derived from one setting (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timeouts {
    /// The setting: time to an answer, and the longest silence while a body is read.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts { idle: DEFAULT }
    }
}

impl Timeouts {
    /// The limits [`ENV`] asks for (the defaults when it is unset or empty).
    pub fn from_env() -> Result<Timeouts, RegistryError> {
        match std::env::var(ENV) {
            Ok(v) if !v.trim().is_empty() => Timeouts::parse(&v),
            _ => Ok(Timeouts::default()),
        }
    }

    /// Parses a number of seconds (`30`, `0.5`); it must be positive and finite.
    pub fn parse(value: &str) -> Result<Timeouts, RegistryError> {
        let seconds: f64 = value.trim().parse().map_err(|_| bad(value))?;
        if !(seconds > 0.0 && seconds.is_finite() && seconds < 1e9) {
            return Err(bad(value));
        }
        Ok(Timeouts {
            idle: Duration::from_secs_f64(seconds),
        })
    }

    /// How long connecting may take.
    pub fn connect(&self) -> Duration {
        self.idle.min(MAX_CONNECT)
    }

    /// How long a request that sends `bytes` may take in all (sending and the answer).
    pub fn upload(&self, bytes: u64) -> Duration {
        let mib = bytes as f64 / (1u64 << 20) as f64;
        self.idle + self.idle.mul_f64(mib)
    }

    /// After this long since the first attempt, no new attempt starts.
    pub fn retry_budget(&self) -> Duration {
        self.idle * RETRY_BUDGET_FACTOR
    }

    /// An HTTP client builder with these limits: connecting, the wait for an answer's headers
    /// and each read of its body (reqwest's blocking reads apply `timeout` per read), and
    /// `TCP_USER_TIMEOUT` for a server that stops reading what is sent. Registry requests and
    /// plain downloads (`ADD <url>`, `import <url>`) start from it.
    pub fn client_builder(&self) -> reqwest::blocking::ClientBuilder {
        reqwest::blocking::Client::builder()
            .connect_timeout(self.connect())
            .timeout(self.idle)
            .tcp_user_timeout(self.idle)
    }

    /// The setting as people write it (`30s`, `0.5s`).
    pub fn describe(&self) -> String {
        format!("{}s", self.idle.as_secs_f64())
    }
}

fn bad(value: &str) -> RegistryError {
    RegistryError::Config(format!(
        "{ENV}={value:?}: expected a positive number of seconds"
    ))
}

/// Whether an error from reading an answer's body is the idle limit running out.
pub fn is_timeout(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::TimedOut
        || e.get_ref()
            .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
            .is_some_and(reqwest::Error::is_timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_seconds() {
        assert_eq!(Timeouts::parse("2").unwrap().idle, Duration::from_secs(2));
        assert_eq!(
            Timeouts::parse(" 0.5 ").unwrap().idle,
            Duration::from_millis(500)
        );
        for bad in ["0", "-1", "abc", "inf", "NaN", ""] {
            let err = Timeouts::parse(bad).unwrap_err().to_string();
            assert!(err.contains(ENV), "{err}");
        }
    }

    #[test]
    fn derived_limits() {
        let t = Timeouts::parse("30").unwrap();
        assert_eq!(t.connect(), Duration::from_secs(5));
        assert_eq!(t.retry_budget(), Duration::from_secs(90));
        assert_eq!(t.upload(0), Duration::from_secs(30));
        assert_eq!(t.upload(2 << 20), Duration::from_secs(90));
        let short = Timeouts::parse("1").unwrap();
        assert_eq!(short.connect(), Duration::from_secs(1));
        assert_eq!(short.describe(), "1s");
    }
}

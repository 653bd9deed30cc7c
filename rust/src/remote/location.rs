//! Location strings: where a map lives on a Redis or Valkey server.
//!
//! `redis://[user:pass@]host[:port][/db][?opts]#MAP`, `rediss://…#MAP` and
//! `redis+unix:///socket/path[?db=N&opts]#MAP` (the `valkey` spellings too).
//! `MAP` names the map within the database. Options of ours, taken out of
//! the query string before the rest goes to the client library:
//! `connect_timeout` and `timeout` (seconds, decimals allowed).
//!
//! This module is compiled without the backend as well, so that a build
//! without it can recognise a location and say how to enable it.
// Without the backend only `is_location` is used (to say how to get it).
#![cfg_attr(not(feature = "redis"), allow(dead_code))]

use crate::error::{Error, Result};
use std::time::Duration;

/// Default connect timeout, seconds.
pub const CONNECT_TIMEOUT: f64 = 5.0;
/// Default read/write timeout, seconds.
pub const TIMEOUT: f64 = 10.0;

const SCHEMES: &[&str] = &[
    "redis://",
    "rediss://",
    "redis+unix://",
    "valkey://",
    "valkeys://",
    "valkey+unix://",
];

/// True if `s` is a location rather than a file path.
pub fn is_location(s: &str) -> bool {
    SCHEMES.iter().any(|p| s.starts_with(p))
}

/// A parsed location.
#[derive(Debug, Clone)]
pub struct Location {
    /// What the client library connects to (no fragment, none of our options).
    pub url: String,
    /// The location with any password masked: for messages.
    pub shown: String,
    /// The map's name within the database.
    pub map: String,
    /// TLS requested (`rediss://`).
    pub tls: bool,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Read and write timeout.
    pub timeout: Duration,
    /// The password, if any (scrubbed from every message).
    pub secret: Option<String>,
}

fn secs(name: &str, v: &str, shown: &str) -> Result<Duration> {
    match v.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 86400.0 => Ok(Duration::from_secs_f64(s)),
        _ => Err(Error::new(format!(
            "{shown}: {name} must be a number of seconds above 0 (such as 2 or 0.5), got '{v}'"
        ))),
    }
}

/// Mask the password of a location: `redis://user:***@host…`; also the
/// value of a `pass` / `password` query option.
pub fn mask(s: &str) -> String {
    let Some(start) = s.find("://").map(|i| i + 3) else {
        return s.to_string();
    };
    let mut out = s.to_string();
    // the authority ends at the first '/', '?' or '#'
    let rest = &s[start..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if let Some(at) = rest[..end].rfind('@') {
        if let Some(colon) = rest[..at].find(':') {
            out = format!("{}{}***{}", &s[..start], &rest[..=colon], &rest[at..]);
        }
    }
    // query options carrying a password
    if let Some(q) = out.find('?') {
        let (head, tail) = out.split_at(q + 1);
        let (query, frag) = match tail.find('#') {
            Some(h) => tail.split_at(h),
            None => (tail, ""),
        };
        let masked: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k == "pass" || k == "password" => format!("{k}=***"),
                _ => kv.to_string(),
            })
            .collect();
        out = format!("{head}{}{frag}", masked.join("&"));
    }
    out
}

fn password_of(s: &str) -> Option<String> {
    let start = s.find("://")? + 3;
    let rest = &s[start..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = rest[..end].rfind('@')?;
    let colon = rest[..at].find(':')?;
    let p = &rest[colon + 1..at];
    (!p.is_empty()).then(|| p.to_string())
}

impl Location {
    /// Parse a location string.
    pub fn parse(s: &str) -> Result<Location> {
        let shown = mask(s);
        let Some((base, map)) = s.rsplit_once('#') else {
            return Err(Error::new(format!(
                "{shown}: a location must end with #NAME, naming the map within the \
                 database (such as redis://localhost:6379/0#sessions)"
            )));
        };
        if map.is_empty() {
            return Err(Error::new(format!(
                "{shown}: the map name after '#' is empty; name the map, such as #sessions"
            )));
        }
        let mut connect_timeout = Duration::from_secs_f64(CONNECT_TIMEOUT);
        let mut timeout = Duration::from_secs_f64(TIMEOUT);
        let mut secret = password_of(s);
        let url = match base.split_once('?') {
            None => base.to_string(),
            Some((head, query)) => {
                let mut keep = Vec::new();
                for kv in query.split('&').filter(|kv| !kv.is_empty()) {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    match k {
                        "connect_timeout" => connect_timeout = secs(k, v, &shown)?,
                        "timeout" => timeout = secs(k, v, &shown)?,
                        _ => {
                            if (k == "pass" || k == "password") && !v.is_empty() {
                                secret = Some(v.to_string());
                            }
                            keep.push(kv)
                        }
                    }
                }
                if keep.is_empty() {
                    head.to_string()
                } else {
                    format!("{head}?{}", keep.join("&"))
                }
            }
        };
        Ok(Location {
            tls: s.starts_with("rediss://") || s.starts_with("valkeys://"),
            url,
            shown,
            map: map.to_string(),
            connect_timeout,
            timeout,
            secret,
        })
    }

    /// `msg` with the password (if any) replaced by `***`.
    pub fn scrub(&self, msg: &str) -> String {
        match &self.secret {
            Some(p) if p.len() >= 3 => msg.replace(p.as_str(), "***"),
            _ => msg.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_masks() {
        let l =
            Location::parse("redis://u:s3cret@h:7/2?timeout=1.5&connect_timeout=2#m.0").unwrap();
        assert_eq!(l.url, "redis://u:s3cret@h:7/2");
        assert_eq!(
            l.shown,
            "redis://u:***@h:7/2?timeout=1.5&connect_timeout=2#m.0"
        );
        assert_eq!(l.map, "m.0");
        assert_eq!(l.timeout, Duration::from_millis(1500));
        assert_eq!(l.connect_timeout, Duration::from_secs(2));
        assert_eq!(l.scrub("bad s3cret here"), "bad *** here");
        let u = Location::parse("redis+unix:///tmp/s.sock?db=3&pass=pw1#x").unwrap();
        assert_eq!(u.url, "redis+unix:///tmp/s.sock?db=3&pass=pw1");
        assert_eq!(u.shown, "redis+unix:///tmp/s.sock?db=3&pass=***#x");
        assert!(Location::parse("redis://h").is_err());
        assert!(Location::parse("redis://h#").is_err());
        assert!(Location::parse("redis://h?timeout=0#m").is_err());
        assert!(is_location("rediss://h#m") && !is_location("/tmp/redis://x"));
        assert_eq!(mask("redis://:pw@h#m"), "redis://:***@h#m");
    }
}

//! `wait`: a bounded readiness gate evaluated on the host: a TCP port that accepts, an HTTP URL
//! answering an expected status, or a command that succeeds (e.g. `pg_isready`). It never
//! changes anything: it is `ok` once ready, and fails with the last output after `timeout`.
//! In plan mode it is not evaluated (what it waits for may not exist yet).

use super::shell::{HTTP_STATUS_FN, poll};
use super::{Action, Decision, Kind, PrepareCx, PrepareError, Probe, StepKind};
use crate::transport::script::quote;
use crate::value::Dur;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// "host:port" that must accept a TCP connection.
    pub tcp: Option<String>,
    /// URL that must answer with `status`.
    pub http: Option<String>,
    pub status: Option<u16>,
    /// Command that must exit 0.
    pub command: Option<String>,
    pub timeout: Option<Dur>,
    pub interval: Option<Dur>,
}

impl Kind for Spec {
    const NAME: &'static str = "wait";

    fn target(&self) -> String {
        self.tcp
            .clone()
            .or(self.http.clone())
            .or(self.command.clone())
            .unwrap_or_default()
    }

    fn prepare(&self, _cx: &PrepareCx<'_>) -> Result<Box<dyn StepKind>, PrepareError> {
        Ok(Box::new(Desired::prepare(self)?))
    }
}

#[derive(Debug, Clone)]
pub struct Desired {
    /// What is awaited, for messages.
    what: String,
    check: String,
    timeout: Duration,
    interval: Duration,
}

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

impl Desired {
    pub fn prepare(spec: &Spec) -> Result<Desired, String> {
        let timeout = spec.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0);
        let interval = spec.interval.map_or(Duration::from_secs(2), |d| d.0);
        match (&spec.tcp, &spec.http, &spec.command) {
            (Some(tcp), None, None) => Desired::tcp(tcp, timeout, interval),
            (None, Some(url), None) => Ok(Desired::http(
                url,
                spec.status.unwrap_or(200),
                timeout,
                interval,
            )),
            (None, None, Some(cmd)) => Ok(Desired::command(cmd, timeout, interval)),
            _ => Err("give exactly one of `tcp`, `http` or `command`".into()),
        }
    }

    fn tcp(target: &str, timeout: Duration, interval: Duration) -> Result<Desired, String> {
        let (host, port) = target
            .rsplit_once(':')
            .filter(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
            .ok_or_else(|| format!("tcp `{target}` is not host:port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.starts_with('-')
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_:".contains(c))
        {
            return Err(format!(
                "tcp `{target}`: `{host}` is not a host name or address"
            ));
        }
        let (h, p) = (quote(host), quote(port));
        // bash's /dev/tcp where bash exists, else nc. The host and port reach bash as
        // positional parameters: its script is a constant, never parsed with their text in it.
        let check = format!(
            "if command -v bash >/dev/null 2>&1; then last=$(timeout 3 bash -c 'exec 3<>\"/dev/tcp/$1/$2\"' wait {h} {p} 2>&1) && ok=1; \
             elif command -v nc >/dev/null 2>&1; then last=$(nc -z -w 3 {h} {p} 2>&1) && ok=1; \
             else last='neither bash nor nc is installed'; fi"
        );
        Ok(Desired {
            what: format!("tcp {target}"),
            check,
            timeout,
            interval,
        })
    }

    pub fn http(url: &str, status: u16, timeout: Duration, interval: Duration) -> Desired {
        let check = format!(
            "{HTTP_STATUS_FN}code=$(http_status {u}); last=\"HTTP status $code\"; [ \"$code\" = {status} ] && ok=1",
            u = quote(url)
        );
        Desired {
            what: format!("{url} → {status}"),
            check,
            timeout,
            interval,
        }
    }

    fn command(cmd: &str, timeout: Duration, interval: Duration) -> Desired {
        let check = format!("if last=$( ( {cmd}\n ) 2>&1 ); then ok=1; fi");
        Desired {
            what: format!("`{cmd}`"),
            check,
            timeout,
            interval,
        }
    }
}

impl StepKind for Desired {
    fn probe(&self, check: bool) -> Option<String> {
        (!check).then(|| poll(&self.check, self.timeout, self.interval))
    }

    fn probe_ahead(&self) -> bool {
        false
    }

    fn probe_once(&self, check: bool) -> Option<String> {
        (!check).then(|| poll(&self.check, Duration::ZERO, self.interval))
    }

    fn decide(&self, observed: Option<&Probe>) -> Decision {
        let Some(p) = observed else {
            return Decision::Ok(format!("{} (checked during up)", self.what));
        };
        let waited = p.field("waited").unwrap_or("?");
        if p.field("ready") == Some("1") {
            return Decision::Ok(format!("{} ready after {waited}s", self.what));
        }
        let last = p
            .out
            .split_once("last:\n")
            .map(|(_, l)| super::tail(l, 10))
            .unwrap_or_default();
        Decision::Fail(format!(
            "{} not ready after {}s (timeout {}); last output: {}",
            self.what,
            waited,
            humantime::format_duration(self.timeout),
            if last.trim().is_empty() {
                "(none)".to_string()
            } else {
                last
            }
        ))
    }

    fn apply(&self) -> Action {
        // decide never asks for a change.
        Action {
            script: "true".into(),
            ..Action::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_target() {
        let s = Spec {
            tcp: None,
            http: None,
            status: None,
            command: None,
            timeout: None,
            interval: None,
        };
        assert!(Desired::prepare(&s).is_err());
        let s = Spec {
            tcp: Some("db:5432".into()),
            http: Some("http://x".into()),
            ..s
        };
        assert!(Desired::prepare(&s).is_err());
    }

    #[test]
    fn bad_tcp_target() {
        let s = Spec {
            tcp: Some("db".into()),
            http: None,
            status: None,
            command: None,
            timeout: None,
            interval: None,
        };
        assert!(Desired::prepare(&s).unwrap_err().contains("host:port"));
    }

    #[test]
    fn decides_ready_and_timeout() {
        let d = Desired::command("pg_isready", Duration::from_secs(5), Duration::from_secs(1));
        let ok = Probe::with_out("ready=1\nwaited=3\nlast:\naccepting\n");
        assert_eq!(
            d.decide(Some(&ok)),
            Decision::Ok("`pg_isready` ready after 3s".into())
        );
        let no = Probe::with_out("ready=0\nwaited=5\nlast:\nno response\n");
        match d.decide(Some(&no)) {
            Decision::Fail(m) => assert!(
                m.contains("not ready after 5s") && m.contains("no response"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
        assert!(d.probe(true).is_none());
        assert!(matches!(d.decide(None), Decision::Ok(_)));
    }

    #[test]
    fn polling_really_times_out_in_sh() {
        let d = Desired::command("false", Duration::from_secs(1), Duration::from_millis(200));
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(d.probe(false).unwrap())
            .output()
            .unwrap();
        let p = Probe::with_out(String::from_utf8_lossy(&out.stdout));
        assert_eq!(p.field("ready"), Some("0"));
    }
}

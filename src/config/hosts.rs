//! The `hosts` of an environment: a list of hosts, or a table of role = [hosts]. A host is a
//! `user@host:port` string or a table `{ host = "...", name = "web1", vars = { ... } }`. Each
//! entry keeps its byte span so a bad host is reported at its line.

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_spanned::Spanned;
use std::collections::BTreeMap;
use std::fmt;

/// Hosts as written: role name → host entries, in the order written. A plain list is stored
/// under role "all".
#[derive(Debug, Clone, Default)]
pub struct HostsDef(pub BTreeMap<String, Vec<Spanned<HostDef>>>);

/// One host entry as written: the string form, or the table form with a name and vars.
#[derive(Debug, Clone, PartialEq)]
pub struct HostDef {
    /// `[user@]host[:port]`, with its span (the string itself, or the table's `host`).
    pub host: Spanned<String>,
    /// `name = "web1"`: what events, `--limit` and templates call the host (default: the
    /// host string's `host[:port]`).
    pub name: Option<Spanned<String>>,
    /// `vars = { weight = 2 }`: this host's own values (`host.vars` in templates), typed.
    pub vars: toml::Table,
}

/// The table form, keys checked by serde (an unknown key is an error naming it).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HostTable {
    host: Spanned<String>,
    name: Option<Spanned<String>>,
    #[serde(default)]
    vars: toml::Table,
}

impl<'de> Deserialize<'de> for HostDef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(HostDefVisitor)
    }
}

struct HostDefVisitor;

impl<'de> Visitor<'de> for HostDefVisitor {
    type Value = HostDef;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"a host like "deploy@10.0.0.5:22", or a table like { host = "deploy@10.0.0.5:22", name = "web1", vars = { weight = 2 } }"#)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<HostDef, E> {
        // The span of a string entry is the Spanned<HostDef> around it: filled in by the caller.
        Ok(HostDef {
            host: Spanned::new(0..0, s.to_string()),
            name: None,
            vars: toml::Table::new(),
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<HostDef, A::Error> {
        let t = HostTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(HostDef {
            host: t.host,
            name: t.name,
            vars: t.vars,
        })
    }
}

/// A spanned entry whose string form gets the entry's own span.
fn entry(mut h: Spanned<HostDef>) -> Spanned<HostDef> {
    let span = h.span();
    let def = h.get_mut();
    if def.host.span() == (0..0) {
        def.host = Spanned::new(span, def.host.get_ref().clone());
    }
    h
}

impl<'de> Deserialize<'de> for HostsDef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(HostsVisitor)
    }
}

struct HostsVisitor;

impl<'de> Visitor<'de> for HostsVisitor {
    type Value = HostsDef;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"a list of hosts like ["deploy@203.0.113.10:22"], or a table of roles like { web = ["10.0.0.1"], db = ["10.0.0.2"] }"#)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<HostsDef, A::Error> {
        let mut list = Vec::new();
        while let Some(h) = seq.next_element::<Spanned<HostDef>>()? {
            list.push(entry(h));
        }
        Ok(HostsDef(BTreeMap::from([("all".to_string(), list)])))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<HostsDef, A::Error> {
        let mut roles = BTreeMap::new();
        while let Some(role) = map.next_key::<String>()? {
            let hosts: Vec<Spanned<HostDef>> = map.next_value::<Vec<Spanned<HostDef>>>()?;
            let hosts = hosts.into_iter().map(entry).collect();
            if !is_name(&role) {
                return Err(de::Error::custom(format!(
                    "role name `{role}` is not valid: roles are names without spaces or `,` (--limit takes a comma-separated list of them)"
                )));
            }
            if roles.insert(role.clone(), hosts).is_some() {
                return Err(de::Error::custom(format!("role `{role}` is listed twice")));
            }
        }
        Ok(HostsDef(roles))
    }
}

/// A role or host name: not empty, no blanks or `,` (`--limit` takes a comma-separated list).
pub fn is_name(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c == ',')
}

/// One parsed host string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAddr {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl HostAddr {
    /// Parse `[user@]host[:port]`, with IPv6 written `[::1]:2222`.
    pub fn parse(s: &str) -> Result<HostAddr, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty host".into());
        }
        if s.chars().any(|c| c.is_whitespace() || c == '/' || c == ',') {
            return Err(format!(
                "`{s}` is not a host: it contains a space, `/` or `,`"
            ));
        }
        let (user, rest) = match s.rsplit_once('@') {
            Some((u, r)) if !u.is_empty() => (Some(u.to_string()), r),
            Some(_) => return Err(format!("`{s}` has an empty user before `@`")),
            None => (None, s),
        };
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (h, after) = inner
                .split_once(']')
                .ok_or_else(|| format!("`{s}`: missing `]` after an IPv6 address"))?;
            let port = match after {
                "" => None,
                p => Some(parse_port(
                    s,
                    p.strip_prefix(':')
                        .ok_or_else(|| format!("`{s}`: expected `:port` after `]`"))?,
                )?),
            };
            (h.to_string(), port)
        } else if rest.matches(':').count() > 1 {
            (rest.to_string(), None) // bare IPv6 without port
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h.to_string(), Some(parse_port(s, p)?)),
                None => (rest.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(format!("`{s}` has no host name"));
        }
        Ok(HostAddr { user, host, port })
    }

    /// Display name: host, plus `:port` when a port is given (so several sshd on one address
    /// stay apart).
    pub fn name(&self) -> String {
        match (self.port, self.host.contains(':')) {
            (Some(p), true) => format!("[{}]:{p}", self.host),
            (Some(p), false) => format!("{}:{p}", self.host),
            (None, _) => self.host.clone(),
        }
    }
}

fn parse_port(whole: &str, p: &str) -> Result<u16, String> {
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!(
            "`{whole}`: port `{p}` is not a number from 1 to 65535"
        )),
        Ok(n) => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_forms() {
        let h = HostAddr::parse("deploy@10.0.0.1:2222").unwrap();
        assert_eq!(
            (h.user.as_deref(), h.host.as_str(), h.port),
            (Some("deploy"), "10.0.0.1", Some(2222))
        );
        assert_eq!(h.name(), "10.0.0.1:2222");
        let h = HostAddr::parse("web1").unwrap();
        assert_eq!((h.user, h.host.as_str(), h.port), (None, "web1", None));
        let h = HostAddr::parse("root@[::1]:22").unwrap();
        assert_eq!((h.host.as_str(), h.port), ("::1", Some(22)));
        assert_eq!(h.name(), "[::1]:22");
        assert_eq!(HostAddr::parse("fe80::1").unwrap().host, "fe80::1");
    }

    #[test]
    fn rejects_bad_hosts() {
        for bad in [
            "",
            "a b",
            "@host",
            "host:0",
            "host:99999",
            "host:x",
            "[::1",
            "[::1]x",
            "u@:22",
        ] {
            assert!(HostAddr::parse(bad).is_err(), "{bad} should fail");
        }
    }
}

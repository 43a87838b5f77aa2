//! Rolling deploys: an env's `serial`, `max_fail_percentage` and `max_failures`, and how a
//! run's hosts split into batches. Ansible's semantics: `serial` is a count (`2`), a
//! percentage of the run's hosts (`"50%"`, rounded down, at least 1) or a list of them
//! (`[1, "50%"]`: a canary first) whose last element repeats until every host has a batch;
//! `0` puts every remaining host in one batch.

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use std::fmt;
use std::str::FromStr;

/// One element of `serial`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SerialItem {
    /// This many hosts (0: all that are left).
    Count(usize),
    /// This percentage of the run's hosts, rounded down, at least one.
    Percent(u32),
}

impl SerialItem {
    /// The batch size it gives among `total` hosts (0: all that are left).
    fn size(self, total: usize) -> usize {
        match self {
            SerialItem::Count(n) => n,
            SerialItem::Percent(p) => (total * p as usize / 100).max(1),
        }
    }
}

impl FromStr for SerialItem {
    type Err = String;

    /// `2` or `50%` (what `--serial` and a string in `serial` take).
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let bad = || {
            format!(
                "`{s}` is not a batch size: write a number of hosts (2) or a percentage (\"50%\")"
            )
        };
        match t.strip_suffix('%') {
            Some(p) => p.trim().parse().map(SerialItem::Percent).map_err(|_| bad()),
            None => t.parse().map(SerialItem::Count).map_err(|_| bad()),
        }
    }
}

impl fmt::Display for SerialItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SerialItem::Count(n) => write!(f, "{n}"),
            SerialItem::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// `serial`: batch sizes in order, the last one repeating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serial(pub Vec<SerialItem>);

impl Serial {
    /// The sizes of the batches `total` hosts split into (they add up to `total`; no host:
    /// no batch).
    pub fn batch_sizes(&self, total: usize) -> Vec<usize> {
        let mut sizes = Vec::new();
        let mut left = total;
        let mut items = self.0.iter().copied();
        let mut item = items.next().unwrap_or(SerialItem::Count(0));
        while left > 0 {
            let size = match item.size(total) {
                0 => left,
                n => n.min(left),
            };
            sizes.push(size);
            left -= size;
            item = items.next().unwrap_or(item);
        }
        sizes
    }
}

impl FromStr for Serial {
    type Err = String;

    /// `--serial 2`, `--serial 50%` or a list: `--serial 1,50%`.
    fn from_str(s: &str) -> Result<Self, String> {
        s.split(',')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map(Serial)
    }
}

impl<'de> Deserialize<'de> for Serial {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SerialVisitor)
    }
}

/// One element: an integer or a string like "50%".
struct ItemVisitor;

impl Visitor<'_> for ItemVisitor {
    type Value = SerialItem;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number of hosts (2) or a percentage (\"50%\")")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<SerialItem, E> {
        usize::try_from(v)
            .map(SerialItem::Count)
            .map_err(|_| E::custom(format!("serial `{v}` is negative: write 0 or more hosts")))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<SerialItem, E> {
        self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<SerialItem, E> {
        v.parse().map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for SerialItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ItemVisitor)
    }
}

struct SerialVisitor;

impl<'de> Visitor<'de> for SerialVisitor {
    type Value = Serial;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a number of hosts (2), a percentage (\"50%\") or a list of them ([1, \"50%\"])",
        )
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Serial, E> {
        ItemVisitor.visit_i64(v).map(|i| Serial(vec![i]))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Serial, E> {
        ItemVisitor.visit_u64(v).map(|i| Serial(vec![i]))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Serial, E> {
        ItemVisitor.visit_str(v).map(|i| Serial(vec![i]))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Serial, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<SerialItem>()? {
            items.push(item);
        }
        if items.is_empty() {
            return Err(de::Error::custom(
                "serial is an empty list: give at least one batch size, or leave serial out",
            ));
        }
        Ok(Serial(items))
    }
}

/// An env's rollout settings (`[env.<name>]`): all optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rollout {
    /// None: every host in one batch.
    pub serial: Option<Serial>,
    /// The rollout stops after a batch in which more than this percentage of hosts failed.
    pub max_fail_percentage: Option<u32>,
    /// The rollout stops after a batch once more than this many hosts failed in all.
    pub max_failures: Option<usize>,
}

impl Rollout {
    /// Whether the rollout stops after a batch of `batch` hosts of which `batch_failed`
    /// failed, `failed` having failed so far in all. Without either limit, any failure stops
    /// it; with both, the first one exceeded does.
    pub fn stops(&self, batch: usize, batch_failed: usize, failed: usize) -> bool {
        let pct = self
            .max_fail_percentage
            .map(|p| batch_failed * 100 > p as usize * batch);
        let count = self.max_failures.map(|n| failed > n);
        match (pct, count) {
            (None, None) => failed > 0,
            (p, c) => p.unwrap_or(false) || c.unwrap_or(false),
        }
    }

    /// The limits as written, for the message saying why a rollout stopped.
    pub fn limits(&self) -> String {
        match (self.max_fail_percentage, self.max_failures) {
            (None, None) => "any failed host stops it".to_string(),
            (Some(p), None) => format!("max_fail_percentage = {p}"),
            (None, Some(n)) => format!("max_failures = {n}"),
            (Some(p), Some(n)) => format!("max_fail_percentage = {p}, max_failures = {n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(serial: &str, total: usize) -> Vec<usize> {
        serial.parse::<Serial>().unwrap().batch_sizes(total)
    }

    #[test]
    fn counts_split_hosts_and_the_last_batch_takes_what_is_left() {
        assert_eq!(sizes("1", 3), [1, 1, 1]);
        assert_eq!(sizes("2", 5), [2, 2, 1]);
        assert_eq!(sizes("5", 5), [5]);
        assert_eq!(sizes("9", 4), [4], "more than there are hosts");
        assert_eq!(sizes("0", 4), [4], "0 = all at once");
        assert_eq!(sizes("3", 0), Vec::<usize>::new(), "no host, no batch");
    }

    #[test]
    fn percentages_are_of_all_hosts_rounded_down_and_at_least_one() {
        assert_eq!(sizes("50%", 4), [2, 2]);
        assert_eq!(sizes("50%", 5), [2, 2, 1]);
        assert_eq!(sizes("30%", 10), [3, 3, 3, 1]);
        assert_eq!(sizes("10%", 3), [1, 1, 1], "0.3 hosts is one host");
        assert_eq!(sizes("0%", 2), [1, 1], "as Ansible: at least one");
        assert_eq!(sizes("100%", 3), [3]);
        assert_eq!(sizes("150%", 3), [3], "over 100%: one batch");
    }

    #[test]
    fn a_list_runs_in_order_and_its_last_element_repeats() {
        assert_eq!(sizes("1,50%", 4), [1, 2, 1]);
        assert_eq!(sizes("1,50%,100%", 4), [1, 2, 1]);
        assert_eq!(sizes("1,50%,100%", 10), [1, 5, 4]);
        assert_eq!(sizes("1,2,3", 10), [1, 2, 3, 3, 1]);
        assert_eq!(sizes("1,0", 10), [1, 9]);
        assert_eq!(sizes("5,1", 3), [3], "the first batch took every host");
    }

    #[test]
    fn serial_is_read_from_toml_as_a_number_a_percentage_or_a_list() {
        #[derive(Deserialize)]
        struct T {
            serial: Serial,
        }
        let read = |t: &str| toml::from_str::<T>(t).map(|t| t.serial);
        assert_eq!(
            read("serial = 2").unwrap(),
            Serial(vec![SerialItem::Count(2)])
        );
        assert_eq!(
            read("serial = [1, \"50%\"]").unwrap(),
            Serial(vec![SerialItem::Count(1), SerialItem::Percent(50)])
        );
        for (bad, says) in [
            ("serial = -1", "negative"),
            ("serial = \"half\"", "not a batch size"),
            ("serial = []", "empty list"),
            ("serial = 1.5", "a number of hosts"),
        ] {
            let e = read(bad).err().unwrap().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
        assert!("1,x".parse::<Serial>().is_err());
    }

    #[test]
    fn by_default_any_failure_stops_the_rollout() {
        let r = Rollout::default();
        assert!(!r.stops(2, 0, 0));
        assert!(r.stops(2, 1, 1));
    }

    #[test]
    fn max_failures_counts_every_batch_and_max_fail_percentage_each_batch() {
        let n = Rollout {
            max_failures: Some(1),
            ..Rollout::default()
        };
        assert!(!n.stops(1, 1, 1), "one failure is tolerated");
        assert!(n.stops(1, 1, 2), "the second one (in another batch) is not");
        let p = Rollout {
            max_fail_percentage: Some(50),
            ..Rollout::default()
        };
        assert!(!p.stops(2, 1, 1), "50% is not more than 50%");
        assert!(p.stops(3, 2, 2));
        assert!(!p.stops(4, 2, 9), "per batch, whatever failed before");
        let both = Rollout {
            max_fail_percentage: Some(50),
            max_failures: Some(2),
            ..Rollout::default()
        };
        assert!(both.stops(4, 1, 3), "the count is exceeded");
        assert!(both.stops(1, 1, 1), "the percentage is exceeded");
    }
}

//! `state = "present" | "absent"`, shared by the kinds that can remove what they make
//! (`file`, `directory`, `docker_run`, `line_in_file`, `user`, `group`; the removal of a path
//! or container is in `absent.rs`), and [`one_of`] for such word-valued fields.

use serde::{Deserialize, Serialize};

/// Whether the step's object should exist (`present`, the default) or be removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    #[default]
    Present,
    Absent,
}

impl<'de> Deserialize<'de> for State {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<State, D::Error> {
        one_of(d, &["present", "absent"], &[State::Present, State::Absent])
    }
}

/// A value written as one of `names` (the matching one of `values`). A derived enum reads a
/// wrong type (`state = false`) as "wanted string or table"; this says "expected a string",
/// and a typo still gets serde's "unknown variant" (which the playbook turns into "did you
/// mean").
pub fn one_of<'de, D, T>(d: D, names: &'static [&'static str], values: &[T]) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Copy,
{
    let word = String::deserialize(d)?;
    match names.iter().position(|n| *n == word) {
        Some(i) => Ok(values[i]),
        None => Err(serde::de::Error::unknown_variant(&word, names)),
    }
}

impl State {
    pub fn is_absent(self) -> bool {
        self == State::Absent
    }
}
